"""The pure-JAX rasterize, interpolate and texture ops against naive references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ngdjax.render.jax.interpolate import interpolate
from ngdjax.render.jax.rasterize import rasterize
from ngdjax.render.jax.texture import texture


def _naive_rasterize(clip_pos: np.ndarray, tris: np.ndarray, height: int, width: int) -> np.ndarray:
    """Triangle id + 1 per pixel by looping over pixels and triangles (docs/render.md section 1)."""
    ndc = clip_pos[:, :3] / clip_pos[:, 3:]
    sx = np.round(ndc[:, 0] * width * 8).astype(np.int64)
    sy = np.round(ndc[:, 1] * height * 8).astype(np.int64)
    ids = np.zeros((height, width), np.int64)
    best = np.full((height, width), np.inf)
    for t, (i0, i1, i2) in enumerate(tris):
        corners = [i0, i1, i2]
        x, y = sx[corners], sy[corners]
        area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
        if area == 0:
            continue
        if area < 0:
            corners = [i0, i2, i1]
            x, y = sx[corners], sy[corners]
        for r in range(height):
            for c in range(width):
                px, py = 16 * c + 8 - 8 * width, 16 * r + 8 - 8 * height
                inside = True
                for k in range(3):
                    ax, ay, ex, ey = x[k], y[k], x[(k + 1) % 3] - x[k], y[(k + 1) % 3] - y[k]
                    value = (ax - px) * ey - (ay - py) * ex
                    inside &= value > 0 or (value == 0 and not (ey > 0 or (ey == 0 and ex <= 0)))
                if not inside:
                    continue
                fx, fy = (2 * c + 1) / width - 1, (2 * r + 1) / height - 1
                q = clip_pos[[i0, i1, i2]]
                qx, qy = q[:, 0] - fx * q[:, 3], q[:, 1] - fy * q[:, 3]
                a = np.array([qx[1] * qy[2] - qy[1] * qx[2], qx[2] * qy[0] - qy[2] * qx[0], qx[0] * qy[1] - qy[0] * qx[1]])
                depth = (q[:, 2] @ a) / (q[:, 3] @ a)
                if -1 <= depth <= 1 and depth <= best[r, c]:
                    best[r, c], ids[r, c] = depth, t + 1
    return ids


def _random_scene(seed: int, n_tris: int = 12):
    """Random triangles in front of the camera, overlapping on screen at distinct depths."""
    rng = np.random.default_rng(seed)
    n_vertices = 3 * n_tris
    w = rng.uniform(1.0, 2.0, n_vertices)
    xy = rng.uniform(-1.1, 1.1, (n_vertices, 2))
    # Distinct, well separated depth layers (no intersecting triangles: near-equal depths are
    # resolved differently by any two depth-test implementations, docs/render.md section 6).
    z = np.repeat(rng.permutation(np.linspace(-0.9, 0.9, n_tris)), 3) + rng.uniform(-0.02, 0.02, n_vertices)
    clip = np.concatenate([xy * w[:, None], (z * w)[:, None], w[:, None]], axis=1).astype(np.float32)
    tris = np.arange(n_vertices, dtype=np.int32).reshape(-1, 3)
    return clip, tris


@pytest.mark.parametrize("seed", range(4))
def test_rasterize_ids_match_naive_reference(seed):
    clip, tris = _random_scene(seed)
    height, width = 24, 32
    rast = np.asarray(rasterize(jnp.asarray(clip), jnp.asarray(tris), (height, width)))
    expected = _naive_rasterize(clip.astype(np.float64), tris, height, width)
    assert (expected > 0).mean() > 0.3  # the scene covers a good part of the image
    assert len(np.unique(expected)) > 5  # and shows several triangles (occlusion)
    np.testing.assert_array_equal(rast[0, :, :, 3], expected)


def test_shared_edges_are_covered_exactly_once():
    # A fan of triangles around a centre vertex, vertices on pixel centres and edges: no gaps or
    # double coverage, which the fill rule guarantees; depth ties resolve to the higher index.
    angles = np.linspace(0, 2 * np.pi, 9)[:-1]
    ring = np.stack([0.75 * np.cos(angles), 0.75 * np.sin(angles)], 1)
    xy = np.concatenate([[[0.0, 0.0]], ring])
    clip = np.concatenate([xy, np.zeros((9, 1)), np.ones((9, 1))], 1).astype(np.float32)
    tris = np.array([[0, 1 + i, 1 + (i + 1) % 8] for i in range(8)], np.int32)
    rast = np.asarray(rasterize(jnp.asarray(clip), jnp.asarray(tris), (16, 16)))
    np.testing.assert_array_equal(rast[0, :, :, 3], _naive_rasterize(clip.astype(np.float64), tris, 16, 16))


def test_rasterize_barycentrics_and_depth():
    clip, tris = _random_scene(7)
    rast = rasterize(jnp.asarray(clip), jnp.asarray(tris), (20, 20))
    # Interpolating the clip positions must give points on each pixel's ray: x/w = fx, y/w = fy,
    # and z/w equals rast's depth channel.
    covered = np.asarray(rast)[0, :, :, 3] > 0
    xyzw = np.asarray(interpolate(jnp.asarray(clip), rast, jnp.asarray(tris)))[0][covered]
    centres = (2 * np.arange(20) + 1) / 20 - 1
    np.testing.assert_allclose(xyzw[:, 0] / xyzw[:, 3], np.broadcast_to(centres, (20, 20))[covered], atol=2e-5)
    np.testing.assert_allclose(xyzw[:, 1] / xyzw[:, 3], np.broadcast_to(centres[:, None], (20, 20))[covered], atol=2e-5)
    np.testing.assert_allclose(xyzw[:, 2] / xyzw[:, 3], np.asarray(rast)[0, :, :, 2][covered], atol=2e-5)
    assert np.all(np.asarray(rast)[0][~covered] == 0)


def test_rasterize_batch_and_jit_and_capacity_error():
    clip, tris = _random_scene(1)
    batch = jnp.stack([jnp.asarray(clip), jnp.asarray(clip) * jnp.array([[-1.0, 1, 1, 1]], jnp.float32)])
    rast = jax.jit(rasterize, static_argnums=(2,))(batch, jnp.asarray(tris), (16, 16))
    single = rasterize(batch[1], jnp.asarray(tris), (16, 16))
    np.testing.assert_array_equal(np.asarray(rast[1, ..., 3]), np.asarray(single[0, ..., 3]))
    np.testing.assert_allclose(np.asarray(rast[1]), np.asarray(single[0]), atol=1e-6)
    with pytest.raises(Exception, match="fragment_capacity >="):
        jax.block_until_ready(rasterize(jnp.asarray(clip), jnp.asarray(tris), (16, 16), fragment_capacity=10))


def test_uv_gradient_matches_regularised_finite_differences():
    """d(sum w * uv)/d clip_pos: the custom backward is the derivative of the unclamped formula."""
    clip, tris = _random_scene(3, n_tris=4)
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.normal(size=(1, 16, 16, 2)), jnp.float32)
    with jax.enable_x64(True):
        clip64 = jnp.asarray(clip, jnp.float64)
        tris_j = jnp.asarray(tris)
        ids = rasterize(clip64.astype(jnp.float32), tris_j, (16, 16))[..., 3]

        def loss(pos):
            rast = rasterize(pos, tris_j, (16, 16))
            return jnp.sum(weights.astype(jnp.float64) * rast[..., :2])

        grad = jax.grad(loss)(clip64)
        direction = jnp.asarray(rng.normal(size=clip.shape)) * 1e-7
        numeric = (loss(clip64 + direction) - loss(clip64 - direction)) / 2
        # Same coverage at the perturbed points (visibility has no gradient).
        assert np.array_equal(rasterize(clip64 + direction, tris_j, (16, 16))[..., 3], ids)
        np.testing.assert_allclose(float(jnp.sum(grad * direction)), float(numeric), rtol=2e-3)


def test_interpolate_is_exact_on_affine_attributes_and_gradients_check():
    clip, tris = _random_scene(5)
    rast = rasterize(jnp.asarray(clip), jnp.asarray(tris), (12, 12))
    with jax.enable_x64(True):
        attr = jnp.asarray(np.random.default_rng(1).normal(size=(len(clip), 3)))
        rast64 = rast.astype(jnp.float64)

        def interpolate_uv(a, uv):  # gradients w.r.t. attributes and u, v (ids are not differentiable)
            return interpolate(a, jnp.concatenate([uv, rast64[..., 2:]], axis=-1), jnp.asarray(tris))

        check_grads(interpolate_uv, (attr, rast64[..., :2]), order=1, modes=["rev"])
    # Per-image attributes (B, V, C) and shared (V, C) agree.
    attr32 = jnp.asarray(clip[:, :3])
    np.testing.assert_array_equal(np.asarray(interpolate(attr32, rast, jnp.asarray(tris))),
                                  np.asarray(interpolate(attr32[None], rast, jnp.asarray(tris))))


@pytest.mark.parametrize("boundary_mode", ["wrap", "clamp"])
def test_texture_is_exact_on_affine_textures(boundary_mode):
    height, width = 8, 16
    j, i = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    tex = jnp.asarray(np.stack([2.0 * i + 3.0 * j, -1.0 * i], -1), jnp.float32)  # (h, w, 2) affine in texel
    rng = np.random.default_rng(2)
    uv = rng.uniform(0.5 / np.array([width, height]), 1 - 0.5 / np.array([width, height]), (1, 5, 7, 2))
    out = np.asarray(texture(tex, jnp.asarray(uv, jnp.float32), boundary_mode))
    ti, tj = uv[..., 0] * width - 0.5, uv[..., 1] * height - 0.5
    np.testing.assert_allclose(out[..., 0], 2 * ti + 3 * tj, atol=1e-4)
    np.testing.assert_allclose(out[..., 1], -ti, atol=1e-4)


def test_texture_wraps_and_gradients_check():
    rng = np.random.default_rng(3)
    tex = jnp.asarray(rng.normal(size=(1, 6, 5, 3)), jnp.float32)
    uv = jnp.asarray(rng.uniform(-1.5, 2.5, (1, 4, 4, 2)), jnp.float32)
    np.testing.assert_allclose(np.asarray(texture(tex, uv)), np.asarray(texture(tex, uv + 1.0)), atol=1e-5)
    with jax.enable_x64(True):
        check_grads(lambda t, c: texture(t, c), (tex.astype(jnp.float64), uv.astype(jnp.float64)),
                    order=1, modes=["rev"], eps=1e-6)
