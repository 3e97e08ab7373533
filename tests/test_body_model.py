"""The common body interface: flat pose vectors, dispatch to Anny and SMPL, parameter checks."""

import jax.numpy as jnp
import numpy as np
import pytest

from ngdjax.body import anny
from ngdjax.body.model import (Body, body_vertices, bone_transforms, check_parameters, load_body,
                               rest_vertices_host, skinning_weights_host)
from ngdjax.body.skinning import linear_blend_skinning
from ngdjax.errors import InputError


def test_anny_through_the_interface_matches_the_model():
    body = load_body("anny")
    assert body.pose_size == 192 and body.n_bones == len(body.model.parents)
    pose = jnp.asarray(np.random.default_rng(0).normal(scale=0.2, size=192), jnp.float32)
    rotation, translation = jnp.array([0.1, 0.2, 0.3]), jnp.array([0.5, 0.0, -1.0])
    expected = anny.body_vertices(body.model, pose.reshape(64, 3), rotation, translation)
    np.testing.assert_allclose(body_vertices(body, jnp.zeros(0), pose, rotation, translation), expected, atol=1e-6)
    transforms = bone_transforms(body, jnp.zeros(0), pose, rotation, translation)
    weights = jnp.asarray(skinning_weights_host(body), jnp.float32)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    rest = jnp.asarray(rest_vertices_host(body, np.zeros(0)), jnp.float32)
    np.testing.assert_allclose(linear_blend_skinning(rest, weights, transforms), expected, atol=1e-5)


def test_parameter_problems_name_the_field():
    body = load_body("anny")
    problems = check_parameters(body, np.zeros(3), np.zeros((5, 69)), "seq/body.npz")
    assert any("pose has shape (5, 69)" in p and "seq/body.npz" in p for p in problems)
    assert any("shape must be empty" in p for p in problems)
    assert check_parameters(body, np.zeros(0), np.zeros((5, 192)), "x") == []


def test_unknown_or_missing_models_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="unknown body model 'mano'"):
        load_body("mano")
    with pytest.raises(InputError, match="body_model_path: required"):
        load_body("smpl")
    with pytest.raises(InputError, match="licence forbids redistribution"):
        load_body("smpl", str(tmp_path / "SMPL_NEUTRAL.pkl"))
    assert isinstance(load_body("anny"), Body)
