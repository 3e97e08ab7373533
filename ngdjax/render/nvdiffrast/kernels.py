"""The torch side of the four nvdiffrast ops: plain torch functions on CUDA tensors.

- :func:`cuda_context` gives one ``RasterizeCudaContext`` per CUDA device for the whole run.
- :func:`topology_hash` builds antialias's topology hash once per triangle tensor (cached by a key
  the caller chooses, see the function).
- ``torch_rasterize`` / ``torch_interpolate`` / ``torch_antialias`` / ``torch_texture``: the ops
  on torch tensors (torch autograd), in the project's conventions (docs/render.md;
  ngdjax/render/README.md). They never write into their inputs, so inputs may alias JAX buffers
  (DLPack).
- ``*_forward`` / ``*_backward``: the same ops as direct calls of the plugin's forward and
  gradient kernels (what nvdiffrast's autograd Functions call), for the explicit VJPs of
  :mod:`ngdjax.render.nvdiffrast.ops`: a backward takes the forward's inputs, its outputs where
  needed and antialias's work buffer, and never re-runs the forward.

nvdiffrast itself and its plugin come from :mod:`ngdjax.render.nvdiffrast.loader`.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Hashable
from typing import Any

import torch

from ngdjax.render.nvdiffrast.loader import NvdiffrastUnavailableError, plugin, require_nvdiffrast

_TOPOLOGY_CACHE_SIZE = 8

_lock = threading.RLock()
_contexts: dict[int, Any] = {}
_topology_hashes: collections.OrderedDict[Hashable, tuple[Any, Any]] = collections.OrderedDict()


# ----------------------------------------------------------------------------------------------
# Cached state: one rasterizer context per device, one topology hash per triangle tensor


def _device_index(device: torch.device | int | None) -> int:
    if device is None:
        return torch.cuda.current_device()
    if isinstance(device, int):
        return device
    device = torch.device(device)
    if device.type != "cuda":
        raise NvdiffrastUnavailableError(f"nvdiffrast runs on CUDA tensors only, got device {device}")
    return torch.cuda.current_device() if device.index is None else device.index


def cuda_context(device: torch.device | int | None = None):
    """The run's one ``RasterizeCudaContext`` for ``device`` (default: the current CUDA device).

    Created at first use and kept for the whole process; never one per call.
    """
    index = _device_index(device)
    with _lock:
        if index not in _contexts:
            _contexts[index] = require_nvdiffrast().RasterizeCudaContext(device=index)
        return _contexts[index]


def topology_hash(tris: torch.Tensor, key: Hashable | None):
    """nvdiffrast's antialias topology hash of ``tris`` (F, 3) int32 CUDA, built once per ``key``.

    Args:
        tris: the triangle tensor the hash is built from.
        key: identifies ``tris``'s contents for the cache; the caller guarantees that equal keys
            mean equal contents. The entry keeps ``tris`` alive, so a key made from the address
            of an immutable buffer that ``tris`` views (a JAX array through DLPack) stays valid
            while cached. ``None`` builds a fresh hash and caches nothing (nvdiffrast's own
            per-call behaviour).

    The cache keeps the :data:`_TOPOLOGY_CACHE_SIZE` most recently used hashes.
    """
    dr = require_nvdiffrast()
    if key is None:
        return dr.antialias_construct_topology_hash(tris)
    with _lock:
        if key in _topology_hashes:
            _topology_hashes.move_to_end(key)
            return _topology_hashes[key][0]
        built = dr.antialias_construct_topology_hash(tris)
        _topology_hashes[key] = (built, tris)  # tris kept alive: its address stays unique
        while len(_topology_hashes) > _TOPOLOGY_CACHE_SIZE:
            _topology_hashes.popitem(last=False)
        return built


# ----------------------------------------------------------------------------------------------
# The ops on torch tensors (CUDA, contiguous; float32 and int32 as stated)


def torch_rasterize(clip_pos: torch.Tensor, tris: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Instanced-mode rasterization, ``grad_db=False``.

    Args:
        clip_pos: (B, V, 4) float32 clip-space positions.
        tris: (F, 3) int32 vertex indices.
        resolution: (H, W) Python ints.

    Returns:
        rast: (B, H, W, 4) float32 = (u, v, z/w, triangle_id + 1); background all zeros.
        Differentiable with respect to ``clip_pos`` through u, v only.
    """
    dr = require_nvdiffrast()
    height, width = (int(size) for size in resolution)
    rast, _ = dr.rasterize(cuda_context(clip_pos.device), clip_pos, tris, (height, width), grad_db=False)
    return rast


def torch_interpolate(attr: torch.Tensor, rast: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Barycentric interpolation of vertex attributes, without image-space derivatives.

    Args:
        attr: (V, C) or (B, V, C) float32 (B may be 1 to broadcast).
        rast: (B, H, W, 4) float32 from :func:`torch_rasterize`.
        tris: (F, 3) int32.

    Returns:
        (B, H, W, C) float32; zeros at background pixels. Differentiable with respect to ``attr``
        and to ``rast``'s u, v channels.
    """
    out, _ = require_nvdiffrast().interpolate(attr, rast, tris)
    return out


def torch_antialias(
    color: torch.Tensor, rast: torch.Tensor, clip_pos: torch.Tensor, tris: torch.Tensor, topology
) -> torch.Tensor:
    """Analytic antialiasing of silhouette edges (docs/render.md section 5).

    Args:
        color: (B, H, W, C) float32.
        rast: (B, H, W, 4) float32 from :func:`torch_rasterize`; no gradient flows to it.
        clip_pos: (B, V, 4) float32, the positions ``rast`` was made from.
        tris: (F, 3) int32.
        topology: from :func:`topology_hash` for these ``tris``, or None to build one now.

    Returns:
        (B, H, W, C) float32. Differentiable with respect to ``color`` and ``clip_pos``.
    """
    return require_nvdiffrast().antialias(color, rast, clip_pos, tris, topology_hash=topology)


def torch_texture(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup, wrap boundary, no mipmaps.

    Args:
        tex: (B, h, w, C) float32 (B may be 1 to broadcast); uv (0, 0) is the outer corner of
            texel ``tex[:, 0, 0]``.
        uv: (B, H, W, 2) float32.

    Returns:
        (B, H, W, C) float32. Differentiable with respect to ``tex`` and ``uv``.
    """
    return require_nvdiffrast().texture(tex, uv, filter_mode="linear", boundary_mode="wrap")


# ----------------------------------------------------------------------------------------------
# The ops as direct plugin calls, forward and backward (the explicit VJPs of ops.py). Same
# conventions as above: CUDA, contiguous, float32 / int32; nothing is written into an input,
# except antialias_backward's reset of a counter in the work buffer (see there).

_NO_RANGES = torch.empty((0, 2), dtype=torch.int32)  # instanced mode: nvdiffrast's CPU `ranges`
_FILTER_LINEAR, _BOUNDARY_WRAP = 1, 1  # nvdiffrast's texture enums (common/texture.h)


def _raster_state(device: torch.device):
    """The C++ rasterizer state of :func:`cuda_context` for ``device`` (a dict lookup once made)."""
    context = _contexts.get(device.index)
    return (context if context is not None else cuda_context(device)).cpp_wrapper


def rasterize_forward(clip_pos: torch.Tensor, tris: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """As :func:`torch_rasterize`: clip_pos (B, V, 4), tris (F, 3), (H, W) -> rast (B, H, W, 4)."""
    rast, _ = plugin().rasterize_fwd_cuda(_raster_state(clip_pos.device), clip_pos, tris, resolution, _NO_RANGES, -1)
    return rast


def rasterize_backward(
    clip_pos: torch.Tensor, tris: torch.Tensor, rast: torch.Tensor, d_rast: torch.Tensor
) -> torch.Tensor:
    """Gradient of :func:`rasterize_forward` (``grad_db=False``).

    Args:
        clip_pos: (B, V, 4), tris: (F, 3): the forward's inputs; rast: (B, H, W, 4) its output.
        d_rast: (B, H, W, 4) cotangent of rast (only u, v are used).

    Returns:
        d_clip_pos: (B, V, 4).
    """
    return plugin().rasterize_grad(clip_pos, tris, rast, d_rast)


def interpolate_forward(attr: torch.Tensor, rast: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """As :func:`torch_interpolate`: attr (V, C) or (B, V, C), rast (B, H, W, 4), tris (F, 3) ->
    (B, H, W, C)."""
    return plugin().interpolate_fwd(attr, rast, tris)[0]


def interpolate_backward(
    attr: torch.Tensor, rast: torch.Tensor, tris: torch.Tensor, d_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of :func:`interpolate_forward`: the forward's inputs and d_out (B, H, W, C) ->
    (d_attr shaped like attr, d_rast (B, H, W, 4))."""
    return plugin().interpolate_grad(attr, rast, tris, d_out)


def antialias_work_buffer_shape(batch: int, height: int, width: int) -> tuple[int]:
    """Shape of :func:`antialias_forward`'s float32 work buffer: one int4 header plus two int4
    work items per pixel (nvdiffrast/torch/torch_antialias.cpp)."""
    return (batch * height * width * 8 + 4,)


def antialias_forward(
    color: torch.Tensor, rast: torch.Tensor, clip_pos: torch.Tensor, tris: torch.Tensor, topology
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`torch_antialias`, also returning what the backward needs.

    Args:
        color: (B, H, W, C); rast: (B, H, W, 4); clip_pos: (B, V, 4); tris: (F, 3).
        topology: from :func:`topology_hash` for these ``tris``, or None to build one now.

    Returns:
        out: (B, H, W, C); work_buffer: float32 of :func:`antialias_work_buffer_shape` (B, H, W),
        the silhouette work items :func:`antialias_backward` consumes.
    """
    if topology is None:
        topology = plugin().antialias_construct_topology_hash(tris)
    return plugin().antialias_fwd(color, rast, clip_pos, tris, topology)


def antialias_backward(
    color: torch.Tensor,
    rast: torch.Tensor,
    clip_pos: torch.Tensor,
    tris: torch.Tensor,
    work_buffer: torch.Tensor,
    d_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of :func:`antialias_forward` (``pos_gradient_boost=1``).

    Args:
        color, rast, clip_pos, tris: the forward's inputs; work_buffer: its second output.
        d_out: (B, H, W, C) cotangent of out.

    Returns:
        d_color: (B, H, W, C); d_clip_pos: (B, V, 4).

    nvdiffrast zeroes and then counts with one int of the work buffer's header (the gradient
    kernel's work counter): the only write into an input, harmless because it is reset before
    use (two backward calls on one buffer, one after the other, give the same result).
    """
    return plugin().antialias_grad(color, rast, clip_pos, tris, d_out, work_buffer)


def texture_forward(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """As :func:`torch_texture` (linear, wrap): tex (B, h, w, C), uv (B, H, W, 2) -> (B, H, W, C)."""
    return plugin().texture_fwd(tex, uv, _FILTER_LINEAR, _BOUNDARY_WRAP)


def texture_backward(
    tex: torch.Tensor, uv: torch.Tensor, d_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of :func:`texture_forward`: the forward's inputs and d_out (B, H, W, C) ->
    (d_tex shaped like tex, d_uv (B, H, W, 2))."""
    return plugin().texture_grad_linear(tex, uv, d_out, _FILTER_LINEAR, _BOUNDARY_WRAP)
