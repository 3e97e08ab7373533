"""The built-in Anny body against body-models' own forward pass (a reference pose exported by
tools/export_anny.py), plus rest, rigid and gradient behaviour."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from ngdjax.body.anny import body_vertices, bone_transforms, load_anny
from ngdjax.body.skinning import linear_blend_skinning

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "anny_reference.npz")
ZERO3 = jnp.zeros(3, jnp.float32)


def test_posed_body_matches_body_models():
    model = load_anny()
    reference = np.load(REFERENCE)
    vertices = jax.jit(body_vertices)(model, jnp.asarray(reference["body_pose"]), ZERO3, ZERO3)
    assert vertices.shape == (13718, 3) and model.triangles.shape == (27420, 3)
    np.testing.assert_allclose(vertices, reference["vertices"], atol=1e-5)


def test_rest_pose_is_a_shift_and_global_motion_is_rigid():
    model = load_anny()
    rest_pose = jnp.zeros((64, 3), jnp.float32)
    transforms = bone_transforms(model, rest_pose, ZERO3, ZERO3)
    np.testing.assert_allclose(transforms[:, :3, :3], np.broadcast_to(np.eye(3), (len(model.parents), 3, 3)), atol=1e-5)
    at_rest = body_vertices(model, rest_pose, ZERO3, ZERO3)
    shift = np.asarray(at_rest - model.rest_vertices)
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-5)
    rotation = jnp.array([0.0, 0.0, np.pi / 2], jnp.float32)
    moved = body_vertices(model, rest_pose, rotation, jnp.array([1.0, 2.0, 3.0], jnp.float32))
    expected = np.asarray(at_rest) @ np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]).T + [1.0, 2.0, 3.0]
    np.testing.assert_allclose(moved, expected, atol=1e-5)
    # Garment skinning with the body's own dense weights reproduces the body.
    dense = jnp.asarray(model.dense_weights(), jnp.float32)
    np.testing.assert_allclose(linear_blend_skinning(model.rest_vertices, dense,
                                                     bone_transforms(model, rest_pose, rotation, ZERO3)),
                               body_vertices(model, rest_pose, rotation, ZERO3), atol=1e-5)


def test_pose_gradient_is_finite_at_rest():
    model = load_anny()
    grad = jax.jit(jax.grad(lambda p: jnp.sum(body_vertices(model, p, ZERO3, ZERO3) ** 2)))
    assert bool(jnp.all(jnp.isfinite(grad(jnp.zeros((64, 3), jnp.float32)))))
