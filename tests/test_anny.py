"""The built-in Anny body against body-models' own forward pass (a reference pose exported by
tools/export_anny.py), plus rest, rigid and gradient behaviour."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from ngdjax.body.anny import body_vertices, bone_transforms, load_anny
from ngdjax.body.model import Body
from ngdjax.body.model import body_vertices as model_body_vertices
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


# Gradients against central finite differences, in float64. f is a fixed random projection of
# the posed vertices; each input gets 3 random unit directions v and we compare grad(f) . v with
# (f(x + h v) - f(x - h v)) / 2h at h = 1e-4. Central differences err by O(h^2 f''') and
# rounding by eps |f| / h; measured |error| / |grad| is at most about 1e-9 (global rotation;
# pose 3e-11, translation 3e-12; rest and posed). The tolerance, 1e-6 of the gradient's norm,
# leaves a 1000x margin above that, while a wrong or missing gradient term is an O(1) relative
# error (it fails at once).
FD_STEP, FD_RTOL, FD_DIRECTIONS = 1e-4, 1e-6, 3


def test_gradients_match_finite_differences_at_rest_and_posed(as_float64, fd_errors):
    """d/d(pose, global rotation, translation) of the posed body (Anny has no shape parameters).
    The rest point runs Rodrigues' small-angle branch for every bone and the global rotation."""
    with jax.enable_x64(True):
        body = Body(as_float64(load_anny()), "anny")
        rng = np.random.default_rng(0)
        projection = jnp.asarray(rng.normal(size=(len(body.model.rest_vertices), 3)))

        def objective(shape, pose, rotation, translation):
            return jnp.sum(projection * model_body_vertices(body, shape, pose, rotation, translation))

        argnums, names = (1, 2, 3), ("shape", "pose", "global_rotation", "translation")
        value_and_grad = jax.jit(jax.value_and_grad(objective, argnums=argnums))
        translation = jnp.asarray(rng.normal(size=3))
        for label, scale in (("rest", 0.0), ("posed", 0.3)):
            args = (jnp.zeros(0), jnp.asarray(scale * rng.normal(size=body.pose_size)),
                    jnp.asarray(scale * rng.normal(size=3)), translation)
            errors = {names[i]: e for i, e in fd_errors(value_and_grad, args, argnums, rng, FD_STEP, FD_DIRECTIONS).items()}
            print(label, errors)
            assert max(errors.values()) < FD_RTOL, (label, errors)
