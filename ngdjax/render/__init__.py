"""Differentiable rendering with nvdiffrast's semantics: one API (:func:`get_renderer`), a pure-JAX
backend (``ngdjax/render/jax/``) and nvdiffrast through a JAX <-> torch bridge
(``ngdjax/render/nvdiffrast/``, ``torch_bridge.py``); the method's render passes
(:func:`render_geometry`, :func:`render_texture`) on any backend. Conventions: README.md in this
folder and docs/render.md."""

from ngdjax.render.backend import (
    BACKENDS as BACKENDS,
    Renderer as Renderer,
    RenderBackend as RenderBackend,
    get_renderer as get_renderer,
)
from ngdjax.render.shading import (
    GeometryImages as GeometryImages,
    render_geometry as render_geometry,
    render_texture as render_texture,
)
from ngdjax.render.topology import antialias_topology as antialias_topology

__all__ = [
    "BACKENDS",
    "GeometryImages",
    "RenderBackend",
    "Renderer",
    "antialias_topology",
    "get_renderer",
    "render_geometry",
    "render_texture",
]
