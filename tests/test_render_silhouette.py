"""Silhouette gradients through the pure-JAX backend recover an object's pose."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngdjax import procedural
from ngdjax.camera import look_at, perspective
from ngdjax.errors import InputError
from ngdjax.render.backend import get_renderer
from ngdjax.render.shading import render_geometry
from ngdjax.render.topology import antialias_topology

RESOLUTION = (128, 128)


def test_silhouette_fit_recovers_translation_and_scale():
    vertices, faces = procedural.garment(600)
    diameter = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    renderer = get_renderer("jax")
    tris = jnp.asarray(faces, jnp.int32)
    topology = jnp.asarray(antialias_topology(faces))
    mv = jnp.asarray(look_at([0.3, 0.2, 2.5], [0.0, 0.0, 0.0]), jnp.float32)
    proj = jnp.asarray(perspective(256, 256, 64, 64, *RESOLUTION), jnp.float32)
    source = jnp.asarray(vertices, jnp.float32)

    @jax.jit  # one compilation (the target and the losses below would otherwise run op by op)
    def silhouette(params):
        posed = source * params["scale"] + params["translation"][None, :]
        return render_geometry(renderer, posed, tris, topology, mv, proj, RESOLUTION).silhouette

    # Translation in the image plane and scale: depth and scale are nearly interchangeable in a
    # single view, so the test keeps the depth fixed.
    truth = {"translation": jnp.array([0.02, -0.03, 0.0], jnp.float32), "scale": jnp.array(1.0, jnp.float32)}
    target = silhouette(truth)
    params = {"translation": jnp.array([-0.04, 0.03, 0.0], jnp.float32), "scale": jnp.array(1.12, jnp.float32)}
    mask = {"translation": jnp.array([1.0, 1.0, 0.0], jnp.float32), "scale": jnp.array(1.0, jnp.float32)}

    def loss_fn(p):
        return jnp.mean((silhouette(p) - target) ** 2)

    optimizer = optax.adam(optax.exponential_decay(4e-3, 300, 0.05))

    @jax.jit
    def step(p, state):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        grads = jax.tree.map(lambda g, m: g * m, grads, mask)
        with jax.numpy_dtype_promotion("standard"):  # optax's schedules mix int32 counts and floats
            updates, state = optimizer.update(grads, state)
        return optax.apply_updates(p, updates), state, loss

    state = optimizer.init(params)
    initial = float(loss_fn(params))
    for _ in range(300):
        params, state, _ = step(params, state)
    final = float(loss_fn(params))
    assert final < initial / 100
    translation_error = float(jnp.linalg.norm(params["translation"] - truth["translation"]))
    assert translation_error < 0.01 * diameter
    assert abs(float(params["scale"]) - 1.0) * diameter / 2 < 0.01 * diameter


@pytest.mark.parametrize(
    "clip_pos, tris, resolution, message",
    [
        (np.zeros((3, 3)), np.array([[0, 1, 2]]), (8, 8), r"clip_pos must have shape \(V, 4\)"),
        (np.zeros((3, 4)), np.array([[0, 1]]), (8, 8), r"tris must have shape \(F, 3\)"),
        (np.zeros((3, 4)), np.array([[0.0, 1, 2]]), (8, 8), r"tris must be int32"),
        (np.zeros((3, 4)), np.array([[0, 1, 2]]), (0, 8), r"resolution must be two positive ints"),
        (np.array([[0.0, 0, 0, 1], [np.nan, 0, 0, 1], [1, 1, 0, 1]]), np.array([[0, 1, 2]]), (8, 8),
         r"1 clip positions are NaN/inf, e.g. rows \[1\]"),
        (np.eye(3, 4), np.array([[0, 1, 2], [0, 1, 5]]), (8, 8), r"1 triangles index vertices outside 0..2, e.g. triangles \[1\]"),
    ],
)
def test_bad_render_inputs_raise_before_any_kernel(clip_pos, tris, resolution, message):
    renderer = get_renderer("jax")
    with pytest.raises(InputError, match=message):
        renderer.rasterize(jnp.asarray(clip_pos, jnp.float32), jnp.asarray(tris), resolution)


_RAST, _COLOR, _CLIP, _TRIS = np.zeros((1, 2, 2, 4)), np.zeros((1, 2, 2, 3)), np.eye(3, 4), np.array([[0, 1, 2]])


@pytest.mark.parametrize(
    "op, args, message",
    [
        ("interpolate", (np.zeros(3), _RAST, _TRIS), r"interpolate: attr must have shape \(V, C\) or \(B, V, C\)"),
        ("interpolate", (np.zeros((3, 2)), _COLOR, _TRIS), r"interpolate: rast must have shape \(B, H, W, 4\)"),
        ("interpolate", (np.zeros((3, 2)), _RAST, np.array([[0, 1]])), r"interpolate: tris must have shape \(F, 3\)"),
        ("antialias", (np.zeros((1, 2, 3, 3)), _RAST, _CLIP, _TRIS), r"antialias: image must have shape \(1, 2, 2\)"),
        ("antialias", (_COLOR, _RAST, np.zeros((3, 3)), _TRIS), r"antialias: clip_pos must have shape \(V, 4\)"),
        ("antialias", (_COLOR, _RAST, _CLIP, np.array([0, 1, 2])), r"antialias: tris must have shape \(F, 3\)"),
        ("texture", (np.zeros((4, 4)), np.zeros((1, 2, 2, 2))), r"texture: tex must have shape \(h, w, C\)"),
        ("texture", (np.zeros((4, 4, 3)), np.zeros((1, 2, 2, 3))), r"texture: uv must have shape \(B, H, W, 2\)"),
    ],
)
def test_bad_op_inputs_raise_before_any_kernel(op, args, message):
    """The checks of ngdjax.render.checks run in front of every backend's interpolate, antialias
    and texture (here the jax backend's; the nvdiffrast backends get the same wrapper)."""
    with pytest.raises(InputError, match=message):
        getattr(get_renderer("jax"), op)(*(jnp.asarray(a) for a in args))
