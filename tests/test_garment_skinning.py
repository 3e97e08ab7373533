import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh
from jax.test_util import check_grads

from ngdjax import procedural
from ngdjax.body.skinning import linear_blend_skinning, rbf_skinning_weights
from ngdjax.errors import InputError
from ngdjax.garment import load_template


def test_rbf_weights_match_a_naive_loop_and_copy_coincident_vertices():
    rng = np.random.default_rng(0)
    body = rng.normal(size=(40, 3))
    body_weights = rng.dirichlet(np.ones(5), size=40)
    garment = np.concatenate([body[:3], rng.normal(size=(7, 3))])  # 3 on the skin, 7 off it
    weights = rbf_skinning_weights(garment, body, body_weights, chunk=4)
    for g, x in enumerate(garment):
        distance = np.array([np.linalg.norm(x - b) for b in body])
        sigma = distance.min() + 1e-7
        kernel = np.exp(-((distance - distance.min()) ** 2) / (0.25 * sigma**2))
        np.testing.assert_allclose(weights[g], kernel @ body_weights / kernel.sum(), rtol=1e-12)
    np.testing.assert_allclose(weights[:3], body_weights[:3], atol=1e-12)
    np.testing.assert_allclose(weights.sum(1), 1.0)


def test_lbs_identity_rigid_and_blended():
    vertices, _ = procedural.sphere(1)
    x = jnp.asarray(vertices, jnp.float32)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    rigid = np.eye(4)
    rigid[:3, :3], rigid[:3, 3] = rotation, [0.1, -0.2, 0.3]
    transforms = jnp.asarray(np.stack([np.eye(4), rigid]), jnp.float32)
    one_hot = lambda k: jnp.zeros((len(vertices), 2), jnp.float32).at[:, k].set(1.0)  # noqa: E731
    np.testing.assert_allclose(linear_blend_skinning(x, one_hot(0), transforms), vertices, atol=1e-6)
    np.testing.assert_allclose(linear_blend_skinning(x, one_hot(1), transforms),
                               vertices @ rotation.T + rigid[:3, 3], atol=1e-6)
    half = jnp.full((len(vertices), 2), 0.5, jnp.float32)
    expected = 0.5 * (vertices + vertices @ rotation.T + rigid[:3, 3])
    np.testing.assert_allclose(linear_blend_skinning(x, half, transforms), expected, atol=1e-6)
    with jax.enable_x64(True):
        check_grads(linear_blend_skinning, (x.astype(jnp.float64), half.astype(jnp.float64),
                                            transforms.astype(jnp.float64)), order=1, modes=["rev"])


def test_load_template_round_trip_and_errors(tmp_path, caplog):
    vertices, faces = procedural.garment(300)
    path = str(tmp_path / "shirt.obj")
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    loaded_v, loaded_f = load_template(path)
    np.testing.assert_allclose(loaded_v, vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded_f, faces)

    with pytest.raises(InputError, match="missing.obj: garment template not found"):
        load_template(str(tmp_path / "missing.obj"))
    centimetres = str(tmp_path / "cm.obj")
    trimesh.Trimesh(vertices * 100, faces, process=False).export(centimetres)
    with pytest.raises(InputError, match=r"cm.obj: bounding-box diagonal is .* \(centimetres or millimetres"):
        load_template(centimetres)
    broken = str(tmp_path / "nan.obj")
    nan_vertices = vertices.copy()
    nan_vertices[5] = np.nan
    trimesh.Trimesh(nan_vertices, faces, process=False).export(broken)
    with pytest.raises(InputError, match=r"nan.obj: 1 vertices are NaN/inf, e.g. \[5\]"):
        load_template(broken)
