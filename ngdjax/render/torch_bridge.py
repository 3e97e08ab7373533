"""torch functions as JAX functions: an eager DLPack bridge and an in-jit bridge (wrap_torch2jax).

Generic: nothing here knows which torch functions are bridged (the nvdiffrast ops are built on it
in :mod:`ngdjax.render.nvdiffrast.ops`).

A :class:`TorchOp` is a torch forward with an explicit backward: the forward returns its outputs
and any residuals the backward needs (device tensors of shapes known from the inputs' shapes);
the backward takes the forward's inputs, outputs and residuals and the output cotangents. Two
bridges turn one into a JAX function with a ``jax.custom_vjp``:

- :func:`eager_op_bridge`: arrays cross by DLPack, zero-copy (``torch.from_dlpack(array)`` one
  way, ``jax.dlpack.from_dlpack(tensor)`` the other). Works eagerly and under ``jax.grad`` /
  ``jax.value_and_grad``, but not under ``jax.jit``, ``vmap`` or any other tracing transformation
  (a tracer holds no buffer): there it raises :class:`BridgeTracingError`.
- :func:`jit_op_bridge`: forward and backward run inside the XLA program as wrap_torch2jax FFI
  calls (zero-copy inputs, on XLA's CUDA stream; residuals are extra FFI outputs, so they stay on
  the device). Shapes and dtypes are fixed per wrapped op, so :func:`cached_jit_bridge` keeps one
  per (op, static parameters, input shapes/dtypes).

:func:`call_op` runs a :class:`TorchOp` through the bridge named by a :data:`Bridge` ("eager" or
"jit"), the in-jit one through :func:`cached_jit_bridge`. An op with its own gradient kernels
never re-runs its forward in the backward. Any torch function ``f(*tensors)`` can be bridged too,
with :func:`eager_bridge` / :func:`jit_bridge`: its backward (:func:`torch_vjp`) re-runs ``f``
with autograd on and calls ``torch.autograd.grad``. The in-jit VJP is our own
``jax.custom_vjp`` over two FFI calls (wrap_torch2jax's would try ``torch.func.vjp``, which
old-style autograd Functions such as nvdiffrast's do not support, infer output shapes by running
the op on meta tensors, and hand integer inputs non-float0 cotangents).

DLPack rules followed (docs/render.md section 8): tensors are detached before export;
strided views are made contiguous; int32 stays int32; a torch function must never write into
its inputs, which alias JAX memory (clone first if it needs to).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import torch


Bridge = Literal["eager", "jit"]
BRIDGES = get_args(Bridge)
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
            "bridge instead: bridge='jit' (wrap_torch2jax; ngdjax.render.torch_bridge)."
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
# Torch ops with an explicit backward


class TorchOp(NamedTuple):
    """A torch forward and its backward, as both bridges call them.

    Attributes:
        forward: ``forward(*inputs) -> (outputs, residuals)``: ``outputs`` a tensor or a tuple of
            tensors (the op's results; the bridged function returns the same structure),
            ``residuals`` a tuple of further tensors only the backward needs (may be empty; for
            the in-jit bridge their shapes must follow from the inputs' shapes).
        backward: ``backward(inputs, outputs, residuals, cotangents) -> grads``, all tuples:
            ``cotangents`` has one entry per output (None for a non-float output); ``grads`` one
            per differentiable input, in input order, same shape and dtype.
        differentiable: one flag per input; other inputs get a None (zero) cotangent.

    Neither may write into its arguments, which alias JAX buffers (nvdiffrast's antialias
    backward resets a counter in its work buffer first; see ``ngdjax.render.nvdiffrast.kernels``).
    """

    forward: Callable[..., tuple[Any, tuple[torch.Tensor, ...]]]
    backward: Callable[..., Sequence[torch.Tensor]]
    differentiable: tuple[bool, ...]


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


def autograd_op(torch_fn: TorchFn, differentiable: Sequence[bool]) -> TorchOp:
    """``torch_fn`` as a :class:`TorchOp` with no residuals, whose backward is :func:`torch_vjp`
    (so it runs ``torch_fn`` a second time)."""
    differentiable = tuple(bool(flag) for flag in differentiable)

    def forward(*inputs):
        with torch.no_grad():
            return torch_fn(*inputs), ()

    def backward(inputs, outputs, residuals, cotangents):
        return torch_vjp(torch_fn, differentiable, inputs, cotangents)

    return TorchOp(forward, backward, differentiable)


# ----------------------------------------------------------------------------------------------
# Eager bridge (DLPack + custom_vjp; outside jit)


def eager_op_bridge(op: TorchOp, name: str = "torch function") -> Callable:
    """``op`` as a JAX function with a custom VJP, exchanging buffers by DLPack.

    Returns:
        ``g(*arrays) -> array | tuple[array, ...]`` (the structure of ``op``'s outputs), with
        dtypes and shapes as torch gives them. Differentiable with ``jax.grad`` outside
        ``jax.jit``: outputs and residuals are kept (as zero-copy JAX views) for ``op.backward``.
        Under ``jax.jit`` (or any tracing) it raises :class:`BridgeTracingError`.
    """

    def forward_with_residuals(*arrays):
        outputs, residuals = op.forward(*_to_torch_all(arrays, name))
        jax_outputs = tuple(torch_to_jax(out) for out in _as_tuple(outputs))
        saved = (arrays, jax_outputs, tuple(torch_to_jax(residual) for residual in residuals))
        return _like_outputs(outputs, jax_outputs), saved

    def backward(saved, cotangent):
        inputs, outputs, residuals = (_to_torch_all(arrays, name) for arrays in saved)
        cotangents = tuple(
            jax_to_torch(cot, f"{name} cotangent") if _is_float(cot.dtype) else None for cot in _as_tuple(cotangent)
        )
        grads = op.backward(inputs, outputs, residuals, cotangents)
        return _input_cotangents(op.differentiable, [torch_to_jax(grad) for grad in grads])

    bridged = jax.custom_vjp(lambda *arrays: forward_with_residuals(*arrays)[0])
    bridged.defvjp(forward_with_residuals, backward)
    return bridged


def eager_bridge(torch_fn: TorchFn, differentiable: Sequence[bool], name: str = "torch function") -> Callable:
    """Any torch function ``f(*tensors) -> tensor | tuple[tensor, ...]`` (static parameters bound
    beforehand, e.g. with ``functools.partial``; must not write into its inputs) as a JAX function:
    :func:`eager_op_bridge` of :func:`autograd_op` (the backward re-runs ``torch_fn``).

    Args:
        differentiable: one flag per positional input; other inputs get a zero (None) cotangent.
        name: used in error messages.
    """
    return eager_op_bridge(autograd_op(torch_fn, differentiable), name)


# ----------------------------------------------------------------------------------------------
# In-jit bridge (wrap_torch2jax FFI calls + custom_vjp)


def _import_wrap_torch2jax():
    try:
        import wrap_torch2jax
    except ImportError as error:
        raise ImportError(f"the in-jit torch bridge needs wrap_torch2jax; {JIT_INSTALL_HINT}") from error
    return wrap_torch2jax


Avals = jax.ShapeDtypeStruct | tuple[jax.ShapeDtypeStruct, ...]


def _avals(arrays: Sequence[Any]) -> tuple[jax.ShapeDtypeStruct, ...]:
    """Shape and dtype of each array (or aval)."""
    return tuple(jax.ShapeDtypeStruct(tuple(a.shape), a.dtype) for a in arrays)


def jit_op_bridge(
    op: TorchOp,
    input_avals: Sequence[jax.ShapeDtypeStruct],
    output_avals: Avals,
    residual_avals: Sequence[jax.ShapeDtypeStruct] = (),
) -> Callable:
    """``op`` as a JAX function that runs inside ``jax.jit`` (wrap_torch2jax FFI calls), with a VJP.

    The first call in a process compiles wrap_torch2jax's small C++/CUDA extension (about a
    minute; cached under ~/.cache/torch2jax afterwards). Nothing is run at wrap time.

    Args:
        op: the torch op (:class:`TorchOp`).
        input_avals: the fixed shape and dtype of each input; calling with others is an error
            (wrap one op per shape set; :func:`cached_jit_bridge` does).
        output_avals: shape and dtype of the output, or a tuple of them for a tuple output.
        residual_avals: shape and dtype of each residual ``op.forward`` returns.

    Returns:
        ``g(*arrays)``, jit-compatible and differentiable. Without differentiation it is one FFI
        call returning the outputs; under ``jax.grad`` the forward FFI call also returns the
        residuals (they stay in device memory, owned by XLA) and the backward is a second FFI
        call of ``op.backward`` on inputs, outputs, residuals and cotangents.
    """
    t2j = _import_wrap_torch2jax()
    input_avals, residual_avals = _avals(input_avals), _avals(residual_avals)
    output_leaves = _as_tuple(output_avals)
    float_outputs = tuple(_is_float(aval.dtype) for aval in output_leaves)

    def wrap(torch_fn, avals, output_shapes):
        return t2j.torch2jax(torch_fn, *avals, output_shapes=output_shapes, depth=0)

    primal_call = wrap(lambda *inputs: op.forward(*inputs)[0], input_avals, output_avals)
    if not any(op.differentiable):
        return primal_call
    forward_call = wrap(op.forward, input_avals, (output_avals, residual_avals)) if residual_avals else None

    n_in, n_out, n_res = len(input_avals), len(output_leaves), len(residual_avals)

    def backward_torch(*flat):
        inputs, outputs, residuals = flat[:n_in], flat[n_in : n_in + n_out], flat[n_in + n_out : n_in + n_out + n_res]
        float_cotangents = iter(flat[n_in + n_out + n_res :])
        cotangents = tuple(next(float_cotangents) if is_float else None for is_float in float_outputs)
        return tuple(op.backward(inputs, outputs, residuals, cotangents))

    cotangent_avals = tuple(aval for aval, is_float in zip(output_leaves, float_outputs) if is_float)
    grad_avals = tuple(aval for aval, is_diff in zip(input_avals, op.differentiable) if is_diff)
    backward_avals = (*input_avals, *output_leaves, *residual_avals, *cotangent_avals)
    backward_call = wrap(backward_torch, backward_avals, grad_avals)

    def forward_with_residuals(*arrays):
        outputs, residuals = forward_call(*arrays) if forward_call else (primal_call(*arrays), ())
        return outputs, (arrays, _as_tuple(outputs), tuple(residuals))

    def backward(saved, cotangent):
        arrays, outputs, residuals = saved
        float_cotangents = [cot for cot, is_float in zip(_as_tuple(cotangent), float_outputs) if is_float]
        return _input_cotangents(op.differentiable, backward_call(*arrays, *outputs, *residuals, *float_cotangents))

    bridged = jax.custom_vjp(lambda *arrays: primal_call(*arrays))
    bridged.defvjp(forward_with_residuals, backward)
    return bridged


def jit_bridge(
    torch_fn: TorchFn,
    differentiable: Sequence[bool],
    input_avals: Sequence[jax.ShapeDtypeStruct],
    output_avals: Avals,
) -> Callable:
    """Any torch function (as in :func:`eager_bridge`) inside ``jax.jit``: :func:`jit_op_bridge`
    of :func:`autograd_op` (the backward FFI call re-runs ``torch_fn`` under autograd)."""
    return jit_op_bridge(autograd_op(torch_fn, differentiable), input_avals, output_avals)


def cached_jit_bridge(
    key: Hashable,
    op: TorchOp,
    input_avals: Sequence[jax.ShapeDtypeStruct],
    output_avals: Avals,
    residual_avals: Sequence[jax.ShapeDtypeStruct] = (),
) -> Callable:
    """:func:`jit_op_bridge`, wrapped once per ``(key, input shapes/dtypes)`` for the whole process
    (so retracing or a new ``jax.jit`` of the same shapes reuses the FFI registrations).

    ``key`` must name the op and every static parameter bound into it; ``op`` is used only the
    first time a key is seen.
    """
    full_key = (key, tuple((tuple(a.shape), np.dtype(a.dtype).name) for a in input_avals))
    with _jit_bridges_lock:
        if full_key not in _jit_bridges:
            _jit_bridges[full_key] = jit_op_bridge(op, input_avals, output_avals, residual_avals)
        return _jit_bridges[full_key]


# ----------------------------------------------------------------------------------------------
# Either bridge, by name


def check_bridge(bridge: str) -> None:
    """Raise ValueError unless ``bridge`` is one of :data:`BRIDGES`."""
    if bridge not in BRIDGES:
        raise ValueError(f"bridge must be 'eager' or 'jit', got {bridge!r}")


def call_op(
    bridge: Bridge,
    key: Hashable,
    op: TorchOp,
    arrays: Sequence[jax.Array],
    output_avals: Avals,
    residual_avals: Sequence[jax.ShapeDtypeStruct] = (),
) -> Any:
    """Run ``op`` on ``arrays`` through the chosen bridge.

    Args:
        bridge: "eager" (:func:`eager_op_bridge`, outside jit) or "jit" (:func:`cached_jit_bridge`,
            inside jax.jit).
        key: a tuple naming the op (``key[0]``, also used in error messages) and every static
            parameter bound into it, for :func:`cached_jit_bridge`.
        op, output_avals, residual_avals: as in :func:`jit_op_bridge` (the avals are used by the
            in-jit bridge only).

    Returns:
        ``op``'s outputs as JAX arrays (a tuple for a tuple output), differentiable.
    """
    check_bridge(bridge)
    if bridge == "eager":
        return eager_op_bridge(op, name=str(key[0]))(*arrays)
    return cached_jit_bridge(key, op, _avals(arrays), output_avals, residual_avals)(*arrays)
