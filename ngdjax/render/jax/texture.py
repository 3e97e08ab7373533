"""Pure-JAX bilinear ``texture`` with nvdiffrast semantics (docs/render.md section 4).

uv (0, 0) is the outer corner of texel (0, 0) (the first memory row); texel centres sit at
((i + 0.5)/w, (j + 0.5)/h). Filter: bilinear (nvdiffrast's ``'linear'``). Boundary modes
``wrap`` (default) and ``clamp``. Autodiff of the bilinear blend gives nvdiffrast's texel and uv
gradients. Mipmaps are not implemented (the method samples its textures bilinearly).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

BOUNDARY_MODES = ("wrap", "clamp")


def texture(
    tex: Float[Array, "*B h w C"], uv: Float[Array, "B H W 2"], boundary_mode: str = "wrap"
) -> Float[Array, "B H W C"]:
    """Sample ``tex`` bilinearly at ``uv``.

    Args:
        tex: (h, w, C), (1, h, w, C) shared, or (B, h, w, C) per image.
        uv: (B, H, W, 2) texture coordinates (s to the right, t along memory rows).
        boundary_mode: ``"wrap"`` or ``"clamp"``.

    Returns:
        (B, H, W, C).
    """
    if boundary_mode not in BOUNDARY_MODES:
        raise ValueError(f"texture: boundary_mode {boundary_mode!r} is not one of {BOUNDARY_MODES}")
    if tex.ndim == 3:
        tex = tex[None]
    tex = jnp.broadcast_to(tex, (uv.shape[0],) + tex.shape[1:])
    return jax.vmap(lambda t, c: _sample(t, c, boundary_mode))(tex, uv)


def _axis_taps(coord, size: int, boundary_mode: str):
    """Integer taps (i0, i1) and the weight of i1 along one axis."""
    if boundary_mode == "wrap":
        coord = coord - jnp.floor(coord)
    texel = coord * size - 0.5
    if boundary_mode == "clamp":
        texel = jnp.clip(texel, 0.0, size - 1.0)
    i0 = jnp.floor(jax.lax.stop_gradient(texel))
    frac = texel - i0
    i0 = i0.astype(jnp.int32)
    if boundary_mode == "wrap":
        return jnp.mod(i0, size), jnp.mod(i0 + 1, size), frac
    return i0, jnp.minimum(i0 + 1, size - 1), frac


def _sample(tex: Float[Array, "h w C"], uv: Float[Array, "H W 2"], boundary_mode: str):
    height, width = tex.shape[:2]
    i0, i1, fu = _axis_taps(uv[..., 0], width, boundary_mode)
    j0, j1, fv = _axis_taps(uv[..., 1], height, boundary_mode)
    fu, fv = fu[..., None], fv[..., None]
    t00, t10, t01, t11 = tex[j0, i0], tex[j0, i1], tex[j1, i0], tex[j1, i1]
    top = t00 + fu * (t10 - t00)
    bottom = t01 + fu * (t11 - t01)
    return top + fv * (bottom - top)
