"""torch functions as JAX functions: an eager DLPack bridge and an in-jit bridge (wrap_torch2jax).

Two generic helpers turn a torch function ``f(*tensors) -> tensor | tuple[tensor, ...]`` into a
JAX function with a ``jax.custom_vjp`` whose backward is torch autograd:

- :func:`eager_bridge`: arrays cross by DLPack, zero-copy (``torch.from_dlpack(array)`` one way,
  ``jax.dlpack.from_dlpack(tensor)`` the other). Works eagerly and under ``jax.grad`` /
  ``jax.value_and_grad``, but not under ``jax.jit``, ``vmap`` or any other tracing transformation
  (a tracer holds no buffer): there it raises :class:`BridgeTracingError`.
- :func:`jit_bridge`: the torch function runs inside the XLA program as a wrap_torch2jax FFI call
  (zero-copy, on XLA's CUDA stream). Shapes and dtypes are fixed per wrapped function, so the ops
  below cache one wrapped function per (op, static parameters, input shapes/dtypes).

Both take their gradients from the same torch code, :func:`torch_vjp`: the backward re-runs the
torch function on the saved inputs with autograd on and calls ``torch.autograd.grad``. In the
in-jit bridge the forward and that backward are two separate FFI calls joined by our own
``jax.custom_vjp`` (wrap_torch2jax's own vjp would try ``torch.func.vjp``, which nvdiffrast's
old-style autograd Functions do not support, infer output shapes by running the op on meta
tensors, and hand integer inputs non-float0 cotangents).

DLPack rules followed (../shared/DEPS.md "JAX <-> torch"): tensors are detached before export;
strided views are made contiguous; int32 stays int32; a torch function must never write into
its inputs, which alias JAX memory (clone first if it needs to).

The nvdiffrast ops, with the signatures of the pure-JAX ops plus a keyword ``bridge``
("eager" default, or "jit"): :func:`rasterize`, :func:`interpolate`, :func:`antialias`,
:func:`texture`; :func:`ops_for` gives the four bound to one bridge.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import torch
from jaxtyping import Array, Float, Int

from ngdjax.render import nvdiffrast_ops as nv

log = logging.getLogger(__name__)

Bridge = Literal["eager", "jit"]
TorchFn = Callable[..., "torch.Tensor | tuple[torch.Tensor, ...]"]

JIT_INSTALL_HINT = (
    "install the GPU extra: pip install 'ngdjax[gpu]' (it brings wrap-torch2jax, imported as "
    "wrap_torch2jax; the PyPI package named torch2jax is an unrelated project)"
)

_jit_bridges: dict[Hashable, Callable] = {}
_jit_bridges_lock = threading.Lock()


class BridgeTracingError(RuntimeError):
    """The eager bridge was called on tracers (inside jax.jit, vmap, scan, ...)."""


# ----------------------------------------------------------------------------------------------
# DLPack exchange


def jax_to_torch(array: jax.Array, name: str = "argument") -> torch.Tensor:
    """A torch tensor viewing ``array``'s buffer (zero-copy where DLPack allows; same dtype).

    Raises:
        BridgeTracingError: ``array`` is a tracer (the call is inside a JAX transformation).
    """
    if isinstance(array, jax.core.Tracer):
        raise BridgeTracingError(
            f"the eager torch bridge got a JAX tracer for {name} ({type(array).__name__}): it exchanges "
            "buffers with torch through DLPack and cannot run under jax.jit, vmap, scan or other "
            "tracing transformations (jax.grad outside jit is fine). Inside jax.jit use the in-jit "
            "bridge instead: bridge='jit' in ngdjax.render.bridge (wrap_torch2jax)."
        )
    return torch.from_dlpack(array)


def torch_to_jax(tensor: torch.Tensor) -> jax.Array:
    """A JAX array viewing ``tensor``'s memory (detached and made contiguous first; same dtype)."""
    tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    # torch exports a CUDA tensor through DLPack only from its own device
    with torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext():
        return jax.dlpack.from_dlpack(tensor)


def _to_torch_all(arrays: Sequence[jax.Array], name: str) -> tuple[torch.Tensor, ...]:
    return tuple(jax_to_torch(array, f"{name} argument {i}") for i, array in enumerate(arrays))


def _as_tuple(outputs: Any) -> tuple:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _like_outputs(template: Any, leaves: Sequence[Any]) -> Any:
    """``leaves`` as a tuple when ``template`` is a tuple/list, else the single leaf."""
    return tuple(leaves) if isinstance(template, (tuple, list)) else leaves[0]


def _is_float(dtype: Any) -> bool:
    if isinstance(dtype, torch.dtype):
        return dtype.is_floating_point
    return bool(jnp.issubdtype(dtype, jnp.floating))


def _input_cotangents(differentiable: Sequence[bool], grads: Sequence[Any]) -> tuple:
    """One cotangent per primal input: the next of ``grads`` where differentiable, else None."""
    grads = iter(grads)
    return tuple(next(grads) if is_diff else None for is_diff in differentiable)


# ----------------------------------------------------------------------------------------------
# The torch side of every backward


def torch_vjp(
    torch_fn: TorchFn,
    differentiable: Sequence[bool],
    inputs: Sequence[torch.Tensor],
    cotangents: Sequence[torch.Tensor | None],
) -> tuple[torch.Tensor, ...]:
    """Vector-Jacobian product of ``torch_fn`` at ``inputs`` by torch autograd.

    Re-runs ``torch_fn`` on detached copies-by-reference of ``inputs`` (no data copied) with
    ``requires_grad`` on the differentiable ones, then ``torch.autograd.grad``.

    Args:
        torch_fn: ``f(*tensors) -> tensor | tuple[tensor, ...]``; must not write into its inputs.
        differentiable: one flag per input; flagged inputs must be floating point.
        inputs: the forward's inputs.
        cotangents: one per output, same shape and dtype; None for an output that carries none.

    Returns:
        One gradient per differentiable input, in input order, same shape and dtype (zeros where
        the outputs do not depend on it).
    """
    with torch.enable_grad():
        leaves = []
        for i, (tensor, is_diff) in enumerate(zip(inputs, differentiable, strict=True)):
            if is_diff and not tensor.is_floating_point():
                raise TypeError(f"input {i} is marked differentiable but has dtype {tensor.dtype}")
            leaves.append(tensor.detach().requires_grad_(is_diff))
        outputs = _as_tuple(torch_fn(*leaves))
        pulled = [
            (out, cot) for out, cot in zip(outputs, cotangents, strict=True) if cot is not None and out.requires_grad
        ]
        wrt = [leaf for leaf, is_diff in zip(leaves, differentiable) if is_diff]
        if pulled:
            grads = torch.autograd.grad(
                [out for out, _ in pulled], wrt, grad_outputs=[cot for _, cot in pulled], allow_unused=True
            )
        else:
            grads = [None] * len(wrt)
    return tuple(torch.zeros_like(leaf) if grad is None else grad for grad, leaf in zip(grads, wrt))


# ----------------------------------------------------------------------------------------------
# Eager bridge (DLPack + custom_vjp; outside jit)


def eager_bridge(torch_fn: TorchFn, differentiable: Sequence[bool], name: str = "torch function") -> Callable:
    """``torch_fn`` as a JAX function with a custom VJP, exchanging buffers by DLPack.

    Args:
        torch_fn: ``f(*tensors) -> tensor | tuple[tensor, ...]`` (static parameters bound
            beforehand, e.g. with ``functools.partial``); must not write into its inputs.
        differentiable: one flag per positional input; other inputs get a zero (None) cotangent.
        name: used in error messages.

    Returns:
        ``g(*arrays) -> array | tuple[array, ...]`` (a tuple exactly when ``torch_fn`` returns
        one), with dtypes and shapes as torch gives them. Differentiable with ``jax.grad``
        outside ``jax.jit``; the backward re-runs ``torch_fn`` (see :func:`torch_vjp`). Under
        ``jax.jit`` (or any tracing) it raises :class:`BridgeTracingError`.
    """
    differentiable = tuple(bool(flag) for flag in differentiable)

    def forward(*arrays):
        inputs = _to_torch_all(arrays, name)
        with torch.no_grad():
            outputs = torch_fn(*inputs)
        return _like_outputs(outputs, [torch_to_jax(out) for out in _as_tuple(outputs)])

    def forward_with_residuals(*arrays):
        return forward(*arrays), arrays

    def backward(arrays, cotangent):
        inputs = _to_torch_all(arrays, name)
        cotangents = tuple(
            jax_to_torch(cot, f"{name} cotangent") if _is_float(cot.dtype) else None for cot in _as_tuple(cotangent)
        )
        grads = torch_vjp(torch_fn, differentiable, inputs, cotangents)
        return _input_cotangents(differentiable, [torch_to_jax(grad) for grad in grads])

    bridged = jax.custom_vjp(forward)
    bridged.defvjp(forward_with_residuals, backward)
    return bridged


# ----------------------------------------------------------------------------------------------
# In-jit bridge (wrap_torch2jax FFI call + custom_vjp)


def _import_wrap_torch2jax():
    try:
        import wrap_torch2jax
    except ImportError as error:
        raise ImportError(f"the in-jit torch bridge needs wrap_torch2jax; {JIT_INSTALL_HINT}") from error
    return wrap_torch2jax


def jit_bridge(
    torch_fn: TorchFn,
    differentiable: Sequence[bool],
    input_avals: Sequence[jax.ShapeDtypeStruct],
    output_avals: jax.ShapeDtypeStruct | tuple[jax.ShapeDtypeStruct, ...],
) -> Callable:
    """``torch_fn`` as a JAX function that runs inside ``jax.jit`` (wrap_torch2jax), with a VJP.

    The first call in a process compiles wrap_torch2jax's small C++/CUDA extension (about a
    minute; cached under ~/.cache/torch2jax afterwards).

    Args:
        torch_fn: as in :func:`eager_bridge`; never run at wrap time (no shape inference).
        differentiable: one flag per input.
        input_avals: the fixed shape and dtype of each input; calling with others is an error
            (wrap one function per shape set; the ops below cache them).
        output_avals: shape and dtype of the output, or a tuple of them for a tuple output.

    Returns:
        ``g(*arrays)``, jit-compatible and differentiable: forward and backward are two FFI calls;
        the backward runs :func:`torch_vjp` (``torch.autograd.grad`` over a re-run forward).
    """
    t2j = _import_wrap_torch2jax()
    differentiable = tuple(bool(flag) for flag in differentiable)
    input_avals = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in input_avals)
    output_leaves = _as_tuple(output_avals)
    float_outputs = tuple(_is_float(aval.dtype) for aval in output_leaves)
    n_inputs = len(input_avals)

    forward_call = t2j.torch2jax(torch_fn, *input_avals, output_shapes=output_avals, depth=0)
    if not any(differentiable):
        return forward_call

    def backward_torch(*inputs_and_cotangents):
        inputs, float_cotangents = inputs_and_cotangents[:n_inputs], iter(inputs_and_cotangents[n_inputs:])
        cotangents = tuple(next(float_cotangents) if is_float else None for is_float in float_outputs)
        return torch_vjp(torch_fn, differentiable, inputs, cotangents)

    cotangent_avals = tuple(aval for aval, is_float in zip(output_leaves, float_outputs) if is_float)
    grad_avals = tuple(aval for aval, is_diff in zip(input_avals, differentiable) if is_diff)
    backward_call = t2j.torch2jax(backward_torch, *input_avals, *cotangent_avals, output_shapes=grad_avals, depth=0)

    def forward_with_residuals(*arrays):
        return forward_call(*arrays), arrays

    def backward(arrays, cotangent):
        float_cotangents = [cot for cot, is_float in zip(_as_tuple(cotangent), float_outputs) if is_float]
        return _input_cotangents(differentiable, backward_call(*arrays, *float_cotangents))

    bridged = jax.custom_vjp(lambda *arrays: forward_call(*arrays))
    bridged.defvjp(forward_with_residuals, backward)
    return bridged


def _avals(arrays: Sequence[jax.Array]) -> tuple[jax.ShapeDtypeStruct, ...]:
    return tuple(jax.ShapeDtypeStruct(tuple(a.shape), a.dtype) for a in arrays)


def cached_jit_bridge(
    key: Hashable,
    torch_fn: TorchFn,
    differentiable: Sequence[bool],
    input_avals: Sequence[jax.ShapeDtypeStruct],
    output_avals: jax.ShapeDtypeStruct | tuple[jax.ShapeDtypeStruct, ...],
) -> Callable:
    """:func:`jit_bridge`, wrapped once per ``(key, input shapes/dtypes)`` for the whole process.

    ``key`` must name the torch function and every static parameter bound into it.
    """
    full_key = (key, tuple((tuple(a.shape), np.dtype(a.dtype).name) for a in input_avals))
    with _jit_bridges_lock:
        if full_key not in _jit_bridges:
            _jit_bridges[full_key] = jit_bridge(torch_fn, differentiable, input_avals, output_avals)
        return _jit_bridges[full_key]


# ----------------------------------------------------------------------------------------------
# nvdiffrast ops through either bridge


def _call_through(
    bridge: Bridge,
    key: Hashable,
    torch_fn: TorchFn,
    differentiable: Sequence[bool],
    arrays: Sequence[jax.Array],
    output_aval: jax.ShapeDtypeStruct,
) -> jax.Array:
    """Run the nvdiffrast op ``torch_fn`` on ``arrays`` through the chosen bridge."""
    if bridge == "eager":
        nv.require_nvdiffrast()
        return eager_bridge(torch_fn, differentiable, name=str(key[0]))(*arrays)
    if bridge == "jit":
        nv.build_plugin()  # compile/load at trace time, not inside the first FFI call
        return cached_jit_bridge(key, torch_fn, differentiable, _avals(arrays), output_aval)(*arrays)
    raise ValueError(f"bridge must be 'eager' or 'jit', got {bridge!r}")


def _float32(x: Any, name: str, ndims: tuple[int, ...], last: int | None = None) -> jax.Array:
    x = jnp.asarray(x, dtype=jnp.float32)
    if x.ndim not in ndims or (last is not None and x.shape[-1] != last):
        expected = " or ".join(f"{n}-D" for n in ndims) + (f" with last axis {last}" if last else "")
        raise ValueError(f"{name} must be {expected} float32, got shape {x.shape}")
    return x


def _triangles(tris: Any) -> jax.Array:
    """(F, 3) int32; host arrays stay concrete even inside jit (for the cached topology hash)."""
    with jax.ensure_compile_time_eval():
        tris = jnp.asarray(tris, dtype=jnp.int32)
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise ValueError(f"tris must be (F, 3) int32, got shape {tris.shape}")
    return tris


def _batched_positions(clip_pos: Any) -> jax.Array:
    """(V, 4) or (B, V, 4) -> (B, V, 4) float32; (V, 4) means B = 1."""
    clip_pos = _float32(clip_pos, "clip_pos", (2, 3), last=4)
    return clip_pos[None] if clip_pos.ndim == 2 else clip_pos


def _rast(rast: Any) -> jax.Array:
    return _float32(rast, "rast", (4,), last=4)


def _resolution(resolution: Sequence[int]) -> tuple[int, int]:
    height, width = (int(size) for size in resolution)
    if height <= 0 or width <= 0:
        raise ValueError(f"resolution must be positive (H, W), got {tuple(resolution)}")
    return height, width


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
        resolution: (H, W) Python ints (static).
        bridge: "eager" (DLPack, outside jit) or "jit" (inside jax.jit, wrap_torch2jax).

    Returns:
        rast: (B, H, W, 4) float32 = (u, v, z/w, triangle_id + 1), background all zeros; row 0 at
        y_ndc = -1. Gradient flows to ``clip_pos`` through u, v only (as nvdiffrast gives it).
    """
    clip_pos, tris = _batched_positions(clip_pos), _triangles(tris)
    height, width = _resolution(resolution)
    torch_fn = functools.partial(nv.torch_rasterize, resolution=(height, width))
    output = jax.ShapeDtypeStruct((clip_pos.shape[0], height, width, 4), jnp.float32)
    return _call_through(bridge, ("rasterize", height, width), torch_fn, (True, False), (clip_pos, tris), output)


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
    attr, rast, tris = _float32(attr, "attr", (2, 3)), _rast(rast), _triangles(tris)
    batch, height, width, _ = rast.shape
    output = jax.ShapeDtypeStruct((batch, height, width, attr.shape[-1]), jnp.float32)
    return _call_through(
        bridge, ("interpolate",), nv.torch_interpolate, (True, True, False), (attr, rast, tris), output
    )


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
    return nv.topology_hash(tensor, key), key


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
        tris: (F, 3) int32 welded triangles (shared vertices; see RENDER.md 5.1).
        bridge: "eager" or "jit".

    Returns:
        (B, H, W, C) float32. Gradients to ``color`` and ``clip_pos`` (visibility gradients).
    """
    color, rast = _float32(color, "color", (4,)), _rast(rast)
    clip_pos, tris = _batched_positions(clip_pos), _triangles(tris)
    topology, topology_key = _antialias_topology(tris, bridge)
    torch_fn = functools.partial(nv.torch_antialias, topology=topology)
    output = jax.ShapeDtypeStruct(color.shape, jnp.float32)
    return _call_through(
        bridge, ("antialias", topology_key), torch_fn, (True, False, True, False), (color, rast, clip_pos, tris), output
    )


def texture(
    tex: Float[Array, "B h w C"],
    uv: Float[Array, "B H W 2"],
    *,
    bridge: Bridge = "eager",
) -> Float[Array, "B H W C"]:
    """nvdiffrast bilinear texture lookup, wrap boundary, no mipmaps.

    Args:
        tex: (B, h, w, C) float32 (B may be 1 to broadcast over uv's batch); uv (0, 0) is the
            outer corner of texel ``tex[:, 0, 0]``.
        uv: (B, H, W, 2) float32 texture coordinates.
        bridge: "eager" or "jit".

    Returns:
        (B, H, W, C) float32. Gradients to ``tex`` and ``uv``.
    """
    tex, uv = _float32(tex, "tex", (4,)), _float32(uv, "uv", (4,), last=2)
    batch, height, width, _ = uv.shape
    output = jax.ShapeDtypeStruct((batch, height, width, tex.shape[-1]), jnp.float32)
    return _call_through(bridge, ("texture",), nv.torch_texture, (True, True), (tex, uv), output)


class NvdiffrastOps(NamedTuple):
    """The four nvdiffrast ops bound to one bridge, with the pure-JAX ops' signatures."""

    rasterize: Callable[..., jax.Array]
    interpolate: Callable[..., jax.Array]
    antialias: Callable[..., jax.Array]
    texture: Callable[..., jax.Array]


def ops_for(bridge: Bridge) -> NvdiffrastOps:
    """rasterize(clip_pos, tris, resolution), interpolate(attr, rast, tris),
    antialias(color, rast, clip_pos, tris), texture(tex, uv), all through ``bridge``."""
    if bridge not in ("eager", "jit"):
        raise ValueError(f"bridge must be 'eager' or 'jit', got {bridge!r}")
    bind = lambda op: functools.wraps(op)(functools.partial(op, bridge=bridge))  # noqa: E731
    return NvdiffrastOps(bind(rasterize), bind(interpolate), bind(antialias), bind(texture))
