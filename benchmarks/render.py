"""The render suite: rasterize + interpolate + antialias, forward and backward.

Scene: ``ngdjax.procedural.garment`` with about F faces, seen from the front by a camera that
makes it fill about 85% of the image in each direction (at least 40% of the pixels covered; the
row records the measured coverage). Loss: ``sum(w * antialias(interpolate(colours)))`` with
fixed random ``w``; gradients with respect to clip positions and colours.

Impls: ``nvdiffrast-torch`` (plain nvdiffrast in torch: the floor), ``bridge-eager`` (nvdiffrast
through the DLPack custom_vjp, eager ``jax.grad``), ``bridge-jit`` (nvdiffrast inside
``jax.jit``), ``jax`` (the pure-JAX backend, jitted).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_row_fields, time_ms
from ngdjax import procedural
from ngdjax.render.backend import get_renderer
from ngdjax.render.topology import antialias_topology

GPU_FACES = (5_000, 30_000, 130_000)
GPU_RESOLUTIONS = (512, 1080, 2048)
CPU_CASES = ((5_000, 256), (5_000, 512))


def scene(n_faces: int, resolution: int, seed: int = 0):
    """Clip positions (V, 4) float32, triangles (F, 3) int32, colours (V, 3), loss weights."""
    vertices, faces = procedural.garment(n_faces // 2)
    rng = np.random.default_rng(seed)
    # Jitter the vertices by ~2% of an edge: the procedural surface is exactly symmetric, which
    # puts vertices of its edge-on sides at identical screen positions, where antialias's
    # silhouette test is an exact floating-point tie that any two implementations may break
    # differently (docs/render.md section 6); real garments have no such ties.
    edge = np.linalg.norm(vertices[faces[:, 1]] - vertices[faces[:, 0]], axis=1).mean()
    vertices = vertices + rng.normal(scale=0.02 * edge, size=vertices.shape)
    centre = (vertices.max(0) + vertices.min(0)) / 2
    half_extent = (vertices.max(0) - vertices.min(0)) / 2
    xy = (vertices[:, :2] - centre[:2]) / half_extent[:2] * 0.85
    z = (vertices[:, 2] - centre[2]) / half_extent[2] * 0.5  # NDC depth in [-0.5, 0.5]
    w = 1.0 + 0.2 * (vertices[:, 2] - vertices[:, 2].min())  # mild perspective
    clip = np.concatenate([xy * w[:, None], (z * w)[:, None], w[:, None]], axis=1)
    colours = rng.uniform(0.0, 1.0, (len(vertices), 3))
    weights = rng.normal(size=(1, resolution, resolution, 3))
    return (jnp.asarray(clip, jnp.float32), jnp.asarray(faces, jnp.int32), jnp.asarray(colours, jnp.float32),
            jnp.asarray(weights, jnp.float32))


def _jax_step(renderer, tris, topology, resolution: int, jit: bool):
    def loss(clip, colours, weights):
        rast = renderer.rasterize(clip, tris, (resolution, resolution))
        image = renderer.antialias(renderer.interpolate(colours, rast, tris), rast, clip, tris, topology)
        return jnp.sum(weights * image)

    step = jax.value_and_grad(loss, argnums=(0, 1))
    return jax.jit(step) if jit else step


def _torch_step(clip, tris, colours, weights, resolution: int):
    """Plain nvdiffrast in torch, one rasteriser context and topology hash for the run: the floor."""
    import torch

    from ngdjax.render.nvdiffrast import kernels as nv

    pos = torch.from_dlpack(clip).clone()[None].requires_grad_(True)
    col = torch.from_dlpack(colours).clone().requires_grad_(True)
    tri = torch.from_dlpack(tris).clone()
    w = torch.from_dlpack(weights).clone()
    topology = nv.topology_hash(tri, key=("bench", tri.shape[0]))

    def step():
        rast = nv.torch_rasterize(pos, tri, (resolution, resolution))
        image = nv.torch_antialias(nv.torch_interpolate(col, rast, tri), rast, pos, tri, topology)
        loss = torch.sum(w * image)
        grads = torch.autograd.grad(loss, [pos, col])
        torch.cuda.synchronize()
        return loss, grads

    return step


def run() -> list[dict]:
    """Rows for every impl available on this machine."""
    device = device_row_fields()
    on_gpu = device["device"] == "gpu"
    cases = [(f, r) for f in GPU_FACES for r in GPU_RESOLUTIONS] if on_gpu else list(CPU_CASES)
    impls = ["nvdiffrast-torch", "bridge-eager", "bridge-jit", "jax"] if on_gpu else ["jax"]
    rows = []
    for n_faces, resolution in cases:
        clip, tris, colours, weights = scene(n_faces, resolution)
        topology = jnp.asarray(antialias_topology(np.asarray(tris)))
        coverage = float(jnp.mean(get_renderer("jax").rasterize(clip, tris, (resolution, resolution))[..., 3] > 0))
        for impl in impls:
            if impl == "nvdiffrast-torch":
                step = _torch_step(clip, tris, colours, weights, resolution)
                run_once = step
            else:
                backend = {"bridge-eager": "nvdiffrast-eager", "bridge-jit": "nvdiffrast-jit", "jax": "jax"}[impl]
                step = _jax_step(get_renderer(backend), tris, topology, resolution, jit=impl != "bridge-eager")
                run_once = lambda: step(clip, colours, weights)  # noqa: E731
            ms, reps = time_ms(run_once, min_reps=10, min_seconds=0.5, max_reps=200)
            rows.append(dict(suite="render", impl=impl, **device, ms=ms, reps=reps, faces=int(tris.shape[0]),
                             resolution=resolution, coverage=round(coverage, 3)))
            print(f"  render {impl:16s} F={tris.shape[0]:7d} {resolution:5d}^2  {ms:9.3f} ms", flush=True)
    return rows
