"""Pure-JAX ``interpolate`` with nvdiffrast semantics (docs/render.md section 3).

``out = u A[i0] + v A[i1] + (1 - u - v) A[i2]`` per covered pixel, 0 on background. Plain
autodiff of this linear formula is exactly nvdiffrast's backward (attribute scatter-add and
d/du, d/dv into rast channels 0 and 1). Image-space derivatives (``rast_db``/``diff_attrs``) are
not implemented: the method does not use them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def interpolate(
    attr: Float[Array, "*B V C"], rast: Float[Array, "B H W 4"], tris: Int[Array, "F 3"]
) -> Float[Array, "B H W C"]:
    """Interpolate vertex attributes over the rasterised image.

    Args:
        attr: (V, C) shared by every image, or (B, V, C) per image (a leading 1 broadcasts).
        rast: (B, H, W, 4) from ``rasterize``.
        tris: (F, 3) int32; may differ from rasterize's (e.g. a UV index buffer) as long as the
            triangle count and order match.

    Returns:
        (B, H, W, C) with attr's dtype; exactly 0 on background pixels.
    """
    batch = rast.shape[0]
    if attr.ndim == 2:
        attr = attr[None]
    attr = jnp.broadcast_to(attr, (batch,) + attr.shape[1:])
    ids = rast[..., 3].astype(jnp.int32)
    corners = tris[jnp.maximum(ids - 1, 0)]  # (B, H, W, 3)
    values = jax.vmap(lambda a, c: a[c])(attr, corners)  # (B, H, W, 3, C)
    u, v = rast[..., 0:1], rast[..., 1:2]
    out = u * values[..., 0, :] + v * values[..., 1, :] + ((1.0 - u) - v) * values[..., 2, :]
    return jnp.where((ids > 0)[..., None], out, 0.0)
