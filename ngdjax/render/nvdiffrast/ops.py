"""The four nvdiffrast ops as JAX functions, on the generic torch bridge.

Each op is a :class:`~ngdjax.render.torch_bridge.TorchOp` over nvdiffrast's own forward and
gradient kernels (:mod:`ngdjax.render.nvdiffrast.kernels`), so a backward never re-runs a forward,
run through :func:`~ngdjax.render.torch_bridge.call_op`. The ops have the signatures of the
pure-JAX ops plus a keyword ``bridge`` ("eager" default, or "jit"): :func:`rasterize`,
:func:`interpolate`, :func:`antialias`, :func:`texture`; :func:`ops_for` gives the four bound to
one bridge.

Arguments are converted here (float32 / int32 arrays, a (V, 4) ``clip_pos`` or an (h, w, C)
``tex`` given a batch axis of 1), not checked: :mod:`ngdjax.render.checks` checks them in front
of every backend (:func:`ngdjax.render.get_renderer`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ngdjax.render.nvdiffrast import kernels, loader
from ngdjax.render.torch_bridge import Bridge, TorchOp, call_op, check_bridge, jax_to_torch

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# nvdiffrast's forward and gradient kernels as TorchOps


def _rasterize_op(resolution: tuple[int, int]) -> TorchOp:
    """(clip_pos (B, V, 4), tris (F, 3)) -> rast (B, H, W, 4); backward needs rast."""
    return TorchOp(
        forward=lambda clip_pos, tris: (kernels.rasterize_forward(clip_pos, tris, resolution), ()),
        backward=lambda inputs, outputs, _, cotangents: (kernels.rasterize_backward(*inputs, *outputs, *cotangents),),
        differentiable=(True, False),
    )


_INTERPOLATE_OP = TorchOp(  # (attr, rast, tris) -> (B, H, W, C)
    forward=lambda attr, rast, tris: (kernels.interpolate_forward(attr, rast, tris), ()),
    backward=lambda inputs, _, __, cotangents: kernels.interpolate_backward(*inputs, *cotangents),
    differentiable=(True, True, False),
)


def _antialias_op(topology: Any) -> TorchOp:
    """(color, rast, clip_pos, tris) -> (B, H, W, C), residual: the work buffer."""

    def forward(color, rast, clip_pos, tris):
        out, work_buffer = kernels.antialias_forward(color, rast, clip_pos, tris, topology)
        return out, (work_buffer,)

    return TorchOp(
        forward=forward,
        backward=lambda inputs, _, residuals, cotangents: kernels.antialias_backward(*inputs, *residuals, *cotangents),
        differentiable=(True, False, True, False),
    )


_TEXTURE_OP = TorchOp(  # (tex, uv) -> (B, H, W, C)
    forward=lambda tex, uv: (kernels.texture_forward(tex, uv), ()),
    backward=lambda inputs, _, __, cotangents: kernels.texture_backward(*inputs, *cotangents),
    differentiable=(True, True),
)


def _call(
    bridge: Bridge,
    key: Hashable,
    op: TorchOp,
    arrays: Sequence[jax.Array],
    output_aval: jax.ShapeDtypeStruct,
    residual_avals: Sequence[jax.ShapeDtypeStruct] = (),
) -> jax.Array:
    """Run the nvdiffrast op ``op`` on ``arrays`` through the chosen bridge, with the plugin
    compiled or loaded first (under jit at trace time, not inside the first FFI call)."""
    check_bridge(bridge)
    loader.build_plugin()
    return call_op(bridge, key, op, arrays, output_aval, residual_avals)


# ----------------------------------------------------------------------------------------------
# Argument conversion (the checks are ngdjax.render.checks')


def _float32(x: Any) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.float32)


def _triangles(tris: Any) -> jax.Array:
    """(F, 3) int32; host arrays stay concrete even inside jit (for the cached topology hash)."""
    with jax.ensure_compile_time_eval():
        return jnp.asarray(tris, dtype=jnp.int32)


def _batched(x: Any, ndim: int) -> jax.Array:
    """float32 ``x`` with a leading batch axis of 1 added when it has ``ndim - 1`` axes."""
    x = _float32(x)
    return x[None] if x.ndim == ndim - 1 else x


# ----------------------------------------------------------------------------------------------
# The ops


def rasterize(
    clip_pos: Float[Array, "*B V 4"],
    tris: Int[Array, "F 3"],
    resolution: tuple[int, int],
    *,
    bridge: Bridge = "eager",
) -> Float[Array, "B H W 4"]:
    """nvdiffrast rasterization (instanced mode, ``grad_db=False``).

    Args:
        clip_pos: (B, V, 4) or (V, 4) float32 clip-space positions; (V, 4) means B = 1.
        tris: (F, 3) int32 vertex indices.
        resolution: (H, W) positive ints (static).
        bridge: "eager" (DLPack, outside jit) or "jit" (inside jax.jit, wrap_torch2jax).

    Returns:
        rast: (B, H, W, 4) float32 = (u, v, z/w, triangle_id + 1), background all zeros; row 0 at
        y_ndc = -1. Gradient flows to ``clip_pos`` through u, v only (as nvdiffrast gives it).
    """
    clip_pos, tris = _batched(clip_pos, 3), _triangles(tris)
    height, width = (int(size) for size in resolution)
    output = jax.ShapeDtypeStruct((clip_pos.shape[0], height, width, 4), jnp.float32)
    op = _rasterize_op((height, width))
    return _call(bridge, ("rasterize", height, width), op, (clip_pos, tris), output)


def interpolate(
    attr: Float[Array, "*B V C"],
    rast: Float[Array, "B H W 4"],
    tris: Int[Array, "F 3"],
    *,
    bridge: Bridge = "eager",
) -> Float[Array, "B H W C"]:
    """nvdiffrast attribute interpolation (no image-space derivatives).

    Args:
        attr: (V, C) or (B, V, C) float32 per-vertex attributes (B may be 1 to broadcast).
        rast: (B, H, W, 4) float32 from :func:`rasterize`.
        tris: (F, 3) int32, the triangles ``rast`` was made from (or a UV index set of the same
            F).
        bridge: "eager" or "jit".

    Returns:
        (B, H, W, C) float32: ``u*attr[i0] + v*attr[i1] + (1-u-v)*attr[i2]`` at covered pixels,
        zeros at background. Gradients to ``attr`` and to ``rast``'s u, v channels.
    """
    attr, rast, tris = _float32(attr), _float32(rast), _triangles(tris)
    batch, height, width, _ = rast.shape
    output = jax.ShapeDtypeStruct((batch, height, width, attr.shape[-1]), jnp.float32)
    return _call(bridge, ("interpolate",), _INTERPOLATE_OP, (attr, rast, tris), output)


def _antialias_topology(tris: jax.Array, bridge: Bridge) -> tuple[Any, Hashable | None]:
    """nvdiffrast's topology hash of ``tris`` and the cache key it was built under.

    Concrete ``tris`` (eager, or closed over by a jitted function) are hashed once and cached:
    eagerly by buffer address (the cache keeps the buffer alive), at jit trace time by content.
    ``tris`` traced as a jit argument give (None, None): the hash is then built inside every
    call, as nvdiffrast does by default; close over ``tris`` to avoid that.
    """
    if isinstance(tris, jax.core.Tracer):
        _warn_topology_per_call()
        return None, None
    tensor = jax_to_torch(tris, "tris")
    if bridge == "eager":
        key = ("buffer", str(tensor.device), tensor.data_ptr(), tuple(tris.shape))
    else:
        key = ("content", tuple(tris.shape), hashlib.sha256(np.asarray(tris).tobytes()).hexdigest())
    return kernels.topology_hash(tensor, key), key


@functools.cache
def _warn_topology_per_call() -> None:
    log.warning(
        "antialias: tris is a jit argument, so nvdiffrast's topology hash is rebuilt at every call; "
        "close over tris (a concrete array) in the jitted function to build it once"
    )


def antialias(
    color: Float[Array, "B H W C"],
    rast: Float[Array, "B H W 4"],
    clip_pos: Float[Array, "*B V 4"],
    tris: Int[Array, "F 3"],
    *,
    bridge: Bridge = "eager",
) -> Float[Array, "B H W C"]:
    """nvdiffrast analytic antialiasing, with a topology hash built once per ``tris`` and cached.

    Args:
        color: (B, H, W, C) float32 image to antialias.
        rast: (B, H, W, 4) float32 from :func:`rasterize`; receives no gradient.
        clip_pos: (B, V, 4) or (V, 4) float32, the positions ``rast`` was made from.
        tris: (F, 3) int32 welded triangles (shared vertices; see docs/render.md 5.1).
        bridge: "eager" or "jit".

    Returns:
        (B, H, W, C) float32. Gradients to ``color`` and ``clip_pos`` (visibility gradients).
    """
    color, rast = _float32(color), _float32(rast)
    clip_pos, tris = _batched(clip_pos, 3), _triangles(tris)
    topology, topology_key = _antialias_topology(tris, bridge)
    output = jax.ShapeDtypeStruct(color.shape, jnp.float32)
    work_buffer = jax.ShapeDtypeStruct(kernels.antialias_work_buffer_shape(*color.shape[:3]), jnp.float32)
    op = _antialias_op(topology)
    return _call(bridge, ("antialias", topology_key), op, (color, rast, clip_pos, tris), output, (work_buffer,))


def texture(
    tex: Float[Array, "*B h w C"],
    uv: Float[Array, "B H W 2"],
    *,
    bridge: Bridge = "eager",
) -> Float[Array, "B H W C"]:
    """nvdiffrast bilinear texture lookup, wrap boundary, no mipmaps.

    Args:
        tex: (B, h, w, C) or (h, w, C) float32 (B may be 1 to broadcast over uv's batch; (h, w, C)
            means B = 1); uv (0, 0) is the outer corner of texel ``tex[:, 0, 0]``.
        uv: (B, H, W, 2) float32 texture coordinates.
        bridge: "eager" or "jit".

    Returns:
        (B, H, W, C) float32. Gradients to ``tex`` and ``uv``.
    """
    tex, uv = _batched(tex, 4), _float32(uv)
    batch, height, width, _ = uv.shape
    output = jax.ShapeDtypeStruct((batch, height, width, tex.shape[-1]), jnp.float32)
    return _call(bridge, ("texture",), _TEXTURE_OP, (tex, uv), output)


class NvdiffrastOps(NamedTuple):
    """The four nvdiffrast ops bound to one bridge, with the pure-JAX ops' signatures."""

    rasterize: Callable[..., jax.Array]
    interpolate: Callable[..., jax.Array]
    antialias: Callable[..., jax.Array]
    texture: Callable[..., jax.Array]


def ops_for(bridge: Bridge) -> NvdiffrastOps:
    """rasterize(clip_pos, tris, resolution), interpolate(attr, rast, tris),
    antialias(color, rast, clip_pos, tris), texture(tex, uv), all through ``bridge``."""
    check_bridge(bridge)
    bind = lambda op: functools.wraps(op)(functools.partial(op, bridge=bridge))  # noqa: E731
    return NvdiffrastOps(bind(rasterize), bind(interpolate), bind(antialias), bind(texture))
