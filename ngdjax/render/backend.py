"""One rendering API, several backends.

``get_renderer(name)`` returns a :class:`Renderer` whose four ops share nvdiffrast's semantics
and our signatures (see ``ngdjax/render/README.md``):

- ``rasterize(clip_pos, tris, resolution) -> rast``
- ``interpolate(attr, rast, tris) -> image``
- ``antialias(color, rast, clip_pos, tris, topology) -> image`` (``topology`` from
  :func:`ngdjax.render.topology.antialias_topology`; nvdiffrast builds its own and ignores it)
- ``texture(tex, uv) -> image``

Backends: ``jax`` (pure JAX, CPU or GPU, inside ``jax.jit``), ``nvdiffrast-jit`` (nvdiffrast's
CUDA ops inside ``jax.jit`` through wrap_torch2jax), ``nvdiffrast-eager`` (nvdiffrast through a
DLPack ``custom_vjp``; ``jax.grad`` works but not ``jax.jit``). ``auto`` picks ``nvdiffrast-jit``
when CUDA and the packages are present, else ``jax``, and logs the choice. The ops live in
``ngdjax/render/jax/`` and ``ngdjax/render/nvdiffrast/``; every backend's ops get the same input
checks in front (:mod:`ngdjax.render.checks`, raising :class:`ngdjax.errors.InputError`).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Literal, NamedTuple, get_args

import jax

from ngdjax.render.checks import (
    check_antialias_inputs,
    check_interpolate_inputs,
    check_rasterize_inputs,
    check_texture_inputs,
)

log = logging.getLogger("ngdjax")

RenderBackend = Literal["auto", "jax", "nvdiffrast-jit", "nvdiffrast-eager"]
BACKENDS = get_args(RenderBackend)


class Renderer(NamedTuple):
    """The four rendering ops of one backend."""

    name: str
    rasterize: Callable
    interpolate: Callable
    antialias: Callable
    texture: Callable


def _with_checks(renderer: Renderer) -> Renderer:
    """The same renderer with the input checks of :mod:`ngdjax.render.checks` in front of its ops
    (the only checks: no backend repeats them)."""

    def rasterize(clip_pos, tris, resolution, *args, **kwargs):
        check_rasterize_inputs(clip_pos, tris, resolution)
        return renderer.rasterize(clip_pos, tris, tuple(int(n) for n in resolution), *args, **kwargs)

    def antialias(color, rast, clip_pos, tris, topology=None):
        check_antialias_inputs(color, rast, clip_pos, tris)
        return renderer.antialias(color, rast, clip_pos, tris, topology)

    def interpolate(attr, rast, tris):
        check_interpolate_inputs(attr, rast, tris)
        return renderer.interpolate(attr, rast, tris)

    def texture(tex, uv, *args, **kwargs):
        check_texture_inputs(tex, uv)
        return renderer.texture(tex, uv, *args, **kwargs)

    return renderer._replace(rasterize=rasterize, interpolate=interpolate, antialias=antialias, texture=texture)


def jit_where_possible(renderer: Renderer, function: Callable) -> Callable:
    """``jax.jit(function)``, or ``function`` itself on the one backend that cannot run inside
    ``jax.jit`` (``nvdiffrast-eager``)."""
    return function if renderer.name == "nvdiffrast-eager" else jax.jit(function)


@functools.cache
def get_renderer(name: str = "auto") -> Renderer:
    """The renderer for backend ``name`` (one of :data:`BACKENDS`); one object per name, so
    functions jitted or cached on a renderer are reused.

    Raises:
        ValueError: unknown name, or an nvdiffrast backend asked for where it cannot run.
    """
    if name not in BACKENDS:
        raise ValueError(f"render backend {name!r} is not one of {BACKENDS}")
    if name != "jax":
        from ngdjax.render.nvdiffrast import nvdiffrast_available

        if name == "auto":
            name = "nvdiffrast-jit" if nvdiffrast_available() else "jax"
            log.info("render backend: %s (auto)", name)
        elif not nvdiffrast_available():
            raise ValueError(f"{name} needs a CUDA GPU and the gpu extra (pip install 'ngdjax[gpu]'); "
                             "use render=jax or render=auto")
    if name == "jax":
        return _with_checks(_jax_renderer())
    return _with_checks(_nvdiffrast_renderer(jit=name == "nvdiffrast-jit"))


def _jax_renderer() -> Renderer:
    from ngdjax.render.jax.antialias import antialias
    from ngdjax.render.jax.interpolate import interpolate
    from ngdjax.render.jax.rasterize import rasterize
    from ngdjax.render.jax.texture import texture

    return Renderer("jax", rasterize, interpolate, antialias, texture)


def _nvdiffrast_renderer(jit: bool) -> Renderer:
    from ngdjax.render.nvdiffrast import ops_for

    ops = ops_for("jit" if jit else "eager")
    return Renderer(
        "nvdiffrast-jit" if jit else "nvdiffrast-eager",
        ops.rasterize,
        ops.interpolate,
        lambda color, rast, clip_pos, tris, topology=None: ops.antialias(color, rast, clip_pos, tris),
        ops.texture,
    )
