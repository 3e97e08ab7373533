"""Parity of the pure-JAX backend with nvdiffrast on a GPU (docs/render.md section 6).

Scene: a ~30k-face garment-like mesh covering most of a 1080^2 image (the render benchmark's).
Runs only where CUDA and nvdiffrast are present (marked ``gpu``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.render import scene
from ngdjax.render.backend import get_renderer
from ngdjax.render.topology import antialias_topology

pytestmark = pytest.mark.gpu
RESOLUTION = 1080


@pytest.fixture(scope="module")
def setup():
    clip, tris, colours, _ = scene(30_000, RESOLUTION)
    topology = jnp.asarray(antialias_topology(np.asarray(tris)))
    return clip, tris, colours, topology, get_renderer("jax"), get_renderer("nvdiffrast-eager")


def _neighbourhood_agrees(ids_a: np.ndarray, ids_b: np.ndarray) -> np.ndarray:
    """Pixels whose id and 4-neighbours' ids agree in both images (antialias reads neighbours)."""
    same = ids_a == ids_b
    agree = same.copy()
    agree[1:] &= same[:-1]
    agree[:-1] &= same[1:]
    agree[:, 1:] &= same[:, :-1]
    agree[:, :-1] &= same[:, 1:]
    return agree


def test_triangle_ids_interpolation_and_antialias_agree(setup):
    clip, tris, colours, topology, jax_r, nv_r = setup
    rast_j = jax_r.rasterize(clip, tris, (RESOLUTION, RESOLUTION))
    rast_n = nv_r.rasterize(clip, tris, (RESOLUTION, RESOLUTION))
    ids_j, ids_n = np.asarray(rast_j[0, ..., 3]), np.asarray(rast_n[0, ..., 3])
    assert (ids_n > 0).mean() > 0.4
    id_agreement = (ids_j == ids_n).mean()
    print(f"triangle ids agree on {100 * id_agreement:.4f}% of pixels")
    assert id_agreement >= 0.999
    same = ids_j == ids_n
    _assert_close_on("rast u, v, z/w", np.asarray(rast_j)[0][same][:, :3], np.asarray(rast_n)[0][same][:, :3])
    image_j = jax_r.interpolate(colours, rast_j, tris)
    image_n = nv_r.interpolate(colours, rast_n, tris)
    _assert_close_on("interpolate", np.asarray(image_j)[0][same], np.asarray(image_n)[0][same])
    aa_j = np.asarray(jax_r.antialias(image_j, rast_j, clip, tris, topology))[0]
    aa_n = np.asarray(nv_r.antialias(image_n, rast_n, clip, tris, topology))[0]
    agree = _neighbourhood_agrees(ids_j, ids_n)
    _assert_close_on("antialias", aa_j[agree], aa_n[agree], max_abs=1.0)


def _assert_close_on(name: str, ours: np.ndarray, theirs: np.ndarray, max_abs: float = 1e-2) -> None:
    """At least 99.99% of the values within 1e-4, and none beyond ``max_abs``.

    Not all within 1e-4 (measured on an H200, 2026-11-22):
    - rast u, v and interpolate: on triangles seen edge-on (the garment's sides) u and v are
      ratios of nearly cancelling products, where nvcc's fused multiply-adds and XLA's rounding
      differ in the last bits: 99.9990% of u, v, z/w values within 1e-4, at most 4.2e-3;
      interpolated colours 99.9992% within 1e-4, at most 2.8e-4.
    - antialias: a pixel pair at a floating-point tie of the acceptance rules (docs/render.md
      section 6) can be blended by one implementation and not the other, which changes that
      pixel by up to half the colour step: 99.9992% within 1e-4, at most 0.41.
    """
    difference = np.abs(ours - theirs)
    within = float(np.mean(difference <= 1e-4))
    print(f"{name}: max abs difference {difference.max():.2e}, {100 * within:.4f}% of values within 1e-4")
    assert within >= 0.9999 and difference.max() <= max_abs


def test_silhouette_loss_position_gradients_agree(setup):
    clip, tris, _, topology, jax_r, nv_r = setup
    shifted = clip + jnp.array([[0.01, -0.02, 0.0, 0.0]], jnp.float32) * clip[:, 3:4]

    def silhouette(renderer, positions):
        rast = renderer.rasterize(positions, tris, (RESOLUTION, RESOLUTION))
        coverage = (rast[..., 3:4] > 0).astype(jnp.float32)
        return renderer.antialias(coverage, rast, positions, tris, topology)

    def loss(renderer, positions, target):
        return jnp.mean((silhouette(renderer, positions) - target) ** 2)

    target = silhouette(nv_r, shifted)
    grad_n = np.asarray(jax.grad(lambda p: loss(nv_r, p, target))(clip)).ravel()
    grad_j = np.asarray(jax.jit(jax.grad(lambda p: loss(jax_r, p, target)))(clip)).ravel()
    cosine = grad_j @ grad_n / (np.linalg.norm(grad_j) * np.linalg.norm(grad_n))
    print(f"silhouette-loss position gradient cosine similarity: {cosine:.5f}")
    assert cosine >= 0.99
