"""Finding, patching and loading nvdiffrast and its compiled CUDA plugin.

nvdiffrast is a dependency, never vendored (NVIDIA Source Code License, non-commercial): install
the GPU extra, ``pip install 'ngdjax[gpu]'``, which brings the PyPI package ``diffrp-nvdiffrast``
(upstream nvdiffrast 0.3.3 as sources that torch JIT-compiles at first use; needs nvcc + ninja).

- :func:`load_nvdiffrast` applies the loader fix and the warp-safe build once and imports
  ``nvdiffrast.torch``; :func:`require_nvdiffrast` also requires a CUDA device.
- :func:`nvdiffrast_available` says whether the ops can run here (CUDA and the package); never
  raises.
- :func:`plugin` / :func:`build_plugin`: the compiled CUDA plugin whose entry points
  :mod:`ngdjax.render.nvdiffrast.kernels` calls, compiled or loaded once.

The loader fix: with torch>=2.9 (pybind11 3) an extension module imported by
``torch.utils.cpp_extension._import_module_from_library`` is no longer put in ``sys.modules``, and
nvdiffrast's ``importlib.import_module(plugin_name)`` right after it fails with
``ModuleNotFoundError: nvdiffrast_plugin_...``. We wrap that function so that, when
``is_python_module``, the module it returns is also stored in ``sys.modules[name]``.

The warp-safe build: nvdiffrast 0.3.3 sums gradients with "coalesced atomics" on GPUs of
compute capability >= 7.0 (``common/common.h``): a warp leader zeroes a shared slot, the lanes
add into it, the leader adds the slot to global memory, with no warp synchronisation between the
steps. With independent thread scheduling that is a data race: on an H200 the antialias position
gradient of plain nvdiffrast differed between two identical runs by up to 53% of its largest
entry, and with the coalescing disabled the runs agreed to 1e-7. So we build nvdiffrast from a
copy of its installed sources (in ``~/.cache/ngdjax``, never in this repository) in which that
block is compiled out and every atomic add goes straight to global memory, under a plugin name of
its own. Nothing else in nvdiffrast changes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import threading
from types import ModuleType

import torch
import torch.utils.cpp_extension

from ngdjax.io import write_text

INSTALL_HINT = (
    "install the GPU extra: pip install 'ngdjax[gpu]' (it brings the package diffrp-nvdiffrast, "
    "nvdiffrast 0.3.3; its CUDA sources are compiled at first use, which needs nvcc and ninja)"
)
_LOADER_FIX_MARK = "_ngdjax_registers_module_in_sys_modules"

_lock = threading.RLock()


class NvdiffrastUnavailableError(RuntimeError):
    """nvdiffrast cannot run here: the package is missing or there is no CUDA device."""



def apply_loader_fix() -> None:
    """Make ``torch.utils.cpp_extension`` register imported extension modules in ``sys.modules``.

    Idempotent: applying it twice wraps the original function once.
    """
    cpp_extension = torch.utils.cpp_extension
    with _lock:
        current = cpp_extension._import_module_from_library
        if getattr(current, _LOADER_FIX_MARK, False):
            return

        @functools.wraps(current)
        def import_and_register(module_name, path, is_python_module):
            module = current(module_name, path, is_python_module)
            if is_python_module:
                sys.modules[module_name] = module
            return module

        setattr(import_and_register, _LOADER_FIX_MARK, True)
        cpp_extension._import_module_from_library = import_and_register


_PLUGIN_PREFIX = "nvdiffrast_plugin"
_WARP_SAFE_SUFFIX = "_ngdjax_warpsafe"
_COALESCING_GUARD = "#if __CUDA_ARCH__ >= 700 // Warp match instruction"
_WARP_SAFE_MARK = "_ngdjax_warp_safe_build"


def _is_nvdiffrast_cuda_plugin(name: str) -> bool:
    return name.startswith(_PLUGIN_PREFIX) and not name.endswith(("_gl", _WARP_SAFE_SUFFIX))


def warp_safe_sources(sources: list[str]) -> list[str]:
    """Copy the installed nvdiffrast package into the user cache with coalesced atomics
    compiled out (module docstring), and return the copied source paths.

    Raises:
        RuntimeError: the installed ``common/common.h`` does not have the expected block (a
            different nvdiffrast version): refuse rather than build something unknown.
    """
    import nvdiffrast

    package = os.path.dirname(os.path.realpath(nvdiffrast.__file__))
    with open(os.path.join(package, "common", "common.h"), "rb") as file:
        version = hashlib.sha256(file.read()).hexdigest()[:12]  # a new nvdiffrast gets a new copy
    cache = os.path.join(os.path.expanduser(os.environ.get("XDG_CACHE_HOME", "~/.cache")), "ngdjax",
                         f"nvdiffrast-warpsafe-{version}")
    header = os.path.join(cache, "common", "common.h")
    if not os.path.exists(header):
        shutil.copytree(package, cache, dirs_exist_ok=True)
        with open(header) as file:
            text = file.read()
        if _COALESCING_GUARD not in text:
            raise RuntimeError(f"{header}: the coalesced-atomics block of nvdiffrast 0.3.3 was not found; "
                               "this nvdiffrast version is not supported by ngdjax's warp-safe build")
        write_text(header, text.replace(_COALESCING_GUARD, "#if 0 // ngdjax: coalesced atomics race on sm_70+"))
    return [os.path.join(cache, os.path.relpath(os.path.realpath(path), package)) for path in sources]


def apply_warp_safe_build() -> None:
    """Make nvdiffrast's CUDA plugin load from (and, first time, build) the warp-safe copy.

    Idempotent. Applied by :func:`load_nvdiffrast`; requires :func:`apply_loader_fix` first.
    """
    cpp_extension = torch.utils.cpp_extension
    with _lock:
        if getattr(cpp_extension.load, _WARP_SAFE_MARK, False):
            return
        original_load = cpp_extension.load
        original_import = cpp_extension._import_module_from_library

        @functools.wraps(original_load)
        def load(name, sources, *args, **kwargs):
            if not _is_nvdiffrast_cuda_plugin(name):
                return original_load(name, sources, *args, **kwargs)
            module = original_load(name + _WARP_SAFE_SUFFIX, warp_safe_sources(list(sources)), *args, **kwargs)
            sys.modules[name] = module
            return module

        @functools.wraps(original_import)
        def import_module(module_name, path, is_python_module):
            if not _is_nvdiffrast_cuda_plugin(module_name):
                return original_import(module_name, path, is_python_module)
            safe_name = module_name + _WARP_SAFE_SUFFIX  # never load an unpatched build
            module = original_import(safe_name, cpp_extension._get_build_directory(safe_name, False), True)
            sys.modules[module_name] = module
            return module

        setattr(load, _WARP_SAFE_MARK, True)
        cpp_extension.load = load
        cpp_extension._import_module_from_library = import_module


def load_nvdiffrast() -> ModuleType:
    """Apply the loader fix and the warp-safe build, and return the ``nvdiffrast.torch`` module.

    Importing works without CUDA; running an op does not (see :func:`require_nvdiffrast`).

    Raises:
        NvdiffrastUnavailableError: the package is not installed (names the pip extra).
    """
    apply_loader_fix()
    apply_warp_safe_build()
    try:
        import nvdiffrast.torch as dr
    except ImportError as error:
        raise NvdiffrastUnavailableError(f"nvdiffrast is not installed; {INSTALL_HINT}") from error
    return dr


def nvdiffrast_available() -> bool:
    """True when nvdiffrast's ops can run here: torch sees a CUDA device and the package imports.

    Never raises (a CPU-only torch, a missing package or a broken install all give False).
    """
    try:
        if not torch.cuda.is_available():
            return False
        load_nvdiffrast()
    except Exception:  # noqa: BLE001 - availability probe: any failure means "not available"
        return False
    return True


def require_nvdiffrast() -> ModuleType:
    """``nvdiffrast.torch``, or a clear error when it cannot run here (no package or no CUDA)."""
    dr = load_nvdiffrast()
    if not torch.cuda.is_available():
        raise NvdiffrastUnavailableError(
            "nvdiffrast needs a CUDA GPU, and torch.cuda.is_available() is False here "
            f"(torch {torch.__version__}); use the pure-JAX render backend on this machine"
        )
    return dr


@functools.cache
def plugin() -> ModuleType:
    """nvdiffrast's compiled CUDA plugin (``nvdiffrast.torch.ops._get_plugin()``), loaded once.

    The first call compiles it (~20 s) or loads it; later calls cost a dict lookup. Its entry points
    used here are those nvdiffrast's own autograd Functions call (nvdiffrast/torch/ops.py, 0.3.3).
    """
    require_nvdiffrast()
    from nvdiffrast.torch import ops

    return ops._get_plugin()


def build_plugin() -> None:
    """Compile (first time, ~20 s) or load nvdiffrast's CUDA plugin now rather than inside an op."""
    plugin()
