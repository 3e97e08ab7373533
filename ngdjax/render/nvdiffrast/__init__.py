"""The nvdiffrast backend: nvdiffrast's CUDA kernels as JAX functions (a GPU and the gpu extra).

- :mod:`ngdjax.render.nvdiffrast.loader` finds, patches, builds and loads nvdiffrast and its
  plugin;
- :mod:`ngdjax.render.nvdiffrast.kernels` calls the four ops on torch tensors, forward and
  backward;
- :mod:`ngdjax.render.nvdiffrast.ops` makes them JAX functions on the generic torch bridge
  (:mod:`ngdjax.render.torch_bridge`), eager (DLPack) or inside ``jax.jit`` (wrap_torch2jax).
"""

from ngdjax.render.nvdiffrast.loader import (
    NvdiffrastUnavailableError as NvdiffrastUnavailableError,
    nvdiffrast_available as nvdiffrast_available,
)
from ngdjax.render.nvdiffrast.ops import NvdiffrastOps as NvdiffrastOps, ops_for as ops_for

__all__ = ["NvdiffrastOps", "NvdiffrastUnavailableError", "nvdiffrast_available", "ops_for"]
