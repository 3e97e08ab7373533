"""The dynamic Jacobian field and the dynamic texture net (ngdjax/fields.py) against a direct
composition of encoders and matmuls, plus jit/retrace and gradient checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngdjax.fields import (
    DynamicJacobianConfig,
    NetworkConfig,
    TextureNetConfig,
    dynamic_jacobians,
    dynamic_texture,
    init_dynamic_field,
    init_texture_net,
    xavier_bound,
)
from ngdjax.hashgrid import HashGridConfig, encode

# Jitted once per config: eager dispatch compiles every small op separately (slow on 2 cores).
encode_jit = jax.jit(encode, static_argnums=1)
field_jit = jax.jit(dynamic_jacobians, static_argnums=1)

SMALL = NetworkConfig(n_levels=3, log2_table_size=10, base_resolution=4, hidden=(16, 16))
FIELD = DynamicJacobianConfig(network=SMALL)
TEXTURE = TextureNetConfig(network=SMALL)
N_FACES = 50


def _face_inputs(seed=0):
    rng = np.random.default_rng(seed)
    centroids = rng.uniform(-0.8, 0.8, size=(N_FACES, 3))
    normals = rng.normal(size=(N_FACES, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return jnp.asarray(centroids, jnp.float32), jnp.asarray(normals, jnp.float32)


def _params_with_visible_tables(params, seed=1):
    """Tables scaled up from U(+-1e-4) so the encodings visibly matter in comparisons."""
    rng = np.random.default_rng(seed)
    return {name: (value if name == "layers" else jnp.asarray(rng.normal(size=value.shape), jnp.float32))
            for name, value in params.items()}


def _reference_jacobians(params, config, centroids, normals, pose_code):
    """The method's formula literally: concat of three encodings of per-face inputs, plain MLP."""
    grid3, grid_pose = config.grid(3), config.grid(config.pose_dim)
    codes = np.repeat(np.asarray(pose_code)[None, :], centroids.shape[0], axis=0)
    h = np.concatenate([np.asarray(encode_jit(params["position_grid"], grid3, centroids)),
                        np.asarray(encode_jit(params["normal_grid"], grid3, normals)),
                        np.asarray(encode_jit(params["pose_grid"], grid_pose, jnp.asarray(codes)))], axis=1)
    layers = [np.asarray(w, np.float64) for w in params["layers"]]
    for weights in layers[:-1]:
        h = np.maximum(h @ weights, 0.0)
    return (h @ layers[-1]).reshape(-1, 3, 3)


def test_dynamic_jacobians_match_direct_composition():
    params = _params_with_visible_tables(init_dynamic_field(jax.random.key(0), FIELD))
    centroids, normals = _face_inputs()
    pose_code = jnp.asarray([0.3, -1.2, 2.5, 0.05], jnp.float32)
    with jax.default_matmul_precision("highest"):  # no TF32 on GPU: compare against float64 numpy
        result = field_jit(params, FIELD, centroids, normals, pose_code)
    assert result.shape == (N_FACES, 3, 3) and result.dtype == jnp.float32
    expected = _reference_jacobians(params, FIELD, centroids, normals, pose_code)
    np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected).max() > 0.1


def test_pose_code_changes_the_output_and_jit_does_not_retrace():
    params = _params_with_visible_tables(init_dynamic_field(jax.random.key(1), FIELD))
    centroids, normals = _face_inputs(seed=2)
    traces = []

    def field(params, centroids, normals, pose_code):
        traces.append(1)
        return dynamic_jacobians(params, FIELD, centroids, normals, pose_code)

    jitted = jax.jit(field)
    codes = [jnp.asarray(c, jnp.float32) for c in ([0.1, 0.2, 0.3, 0.4], [-2.0, 1.0, 0.5, 3.0], [5.0, -5.0, 0.0, 0.0])]
    outputs = [np.asarray(jitted(params, centroids, normals, code)) for code in codes]
    assert len(traces) == 1
    assert not np.allclose(outputs[0], outputs[1]) and not np.allclose(outputs[1], outputs[2])


def test_zero_last_layer_gives_zero_jacobians():
    params = init_dynamic_field(jax.random.key(2), FIELD)
    params["layers"][-1] = jnp.zeros_like(params["layers"][-1])
    centroids, normals = _face_inputs(seed=3)
    result = field_jit(params, FIELD, centroids, normals, jnp.ones((4,), jnp.float32))
    np.testing.assert_array_equal(np.asarray(result), 0.0)


def test_initialisation_follows_tcnn():
    params = init_dynamic_field(jax.random.key(3), FIELD)
    shapes = [(18, 16), (16, 16), (16, 9)]
    assert [w.shape for w in params["layers"]] == shapes
    for weights, (fan_in, fan_out) in zip(params["layers"], shapes):
        bound = xavier_bound(fan_in, fan_out)
        assert weights.dtype == jnp.float32 and 0.9 * bound < float(jnp.abs(weights).max()) <= bound
    assert xavier_bound(64, 9) == pytest.approx((6.0 / 80.0) ** 0.5)  # output padded to 16
    assert xavier_bound(18, 16) == pytest.approx((6.0 / 48.0) ** 0.5)  # input padded to 32
    for name in ("position_grid", "normal_grid", "pose_grid"):
        assert params[name].dtype == jnp.float32 and float(jnp.abs(params[name]).max()) <= 1e-4


def test_gradients_reach_every_parameter_and_match_finite_differences():
    centroids, normals = _face_inputs(seed=4)
    pose_code = jnp.asarray([0.4, -0.3, 1.1, 0.7], jnp.float32)
    target = jax.random.normal(jax.random.key(5), (N_FACES, 3, 3), jnp.float32)

    def loss(params):
        jacobians = dynamic_jacobians(params, FIELD, centroids, normals, pose_code)
        return jnp.mean((jacobians - target.astype(jacobians.dtype)) ** 2)

    params = _params_with_visible_tables(init_dynamic_field(jax.random.key(4), FIELD))
    grads = jax.jit(jax.grad(loss))(params)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert float(jnp.abs(leaf).max()) > 0.0
    with jax.enable_x64(True):  # central differences along random directions, in float64
        params64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        loss64, grads64 = jax.jit(loss), jax.jit(jax.grad(loss))(params64)
        rng, eps = np.random.default_rng(6), 1e-6

        def shifted(step, direction):
            return float(loss64(jax.tree_util.tree_map(lambda a, v: a + step * v, params64, direction)))

        for _ in range(3):
            direction = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), params64)
            numeric = (shifted(eps, direction) - shifted(-eps, direction)) / (2 * eps)
            analytic = sum(float(jnp.vdot(g, v)) for g, v in zip(jax.tree_util.tree_leaves(grads64),
                                                                  jax.tree_util.tree_leaves(direction)))
            assert numeric == pytest.approx(analytic, rel=1e-5)


def test_field_rejects_wrong_shapes():
    params = init_dynamic_field(jax.random.key(6), FIELD)
    centroids, normals = _face_inputs()
    with pytest.raises(ValueError, match=r"pose_code must be \(4,\)"):
        dynamic_jacobians(params, FIELD, centroids, normals, jnp.zeros((3,), jnp.float32))
    with pytest.raises(ValueError, match="positions and normals"):
        dynamic_jacobians(params, FIELD, centroids, normals[:-1], jnp.zeros((4,), jnp.float32))
    with pytest.raises(ValueError, match="hidden must list"):
        NetworkConfig(hidden=())


def test_configs_are_hashable_static_arguments():
    assert hash(FIELD) == hash(dataclasses.replace(FIELD))
    assert FIELD.grid(4) == HashGridConfig(4, n_levels=3, log2_table_size=10, base_resolution=4)
    assert DynamicJacobianConfig().widths == (96, 64, 64, 9) and TextureNetConfig().widths == (32, 64, 64, 3)


def test_dynamic_texture_matches_direct_composition_without_retrace():
    params = init_texture_net(jax.random.key(7), TEXTURE)
    params["grid"] = jnp.asarray(np.random.default_rng(8).normal(size=params["grid"].shape), jnp.float32)
    uv = jnp.asarray(np.random.default_rng(9).uniform(0.0, 1.0, size=(40, 2)), jnp.float32)
    traces = []

    def texture(params, uv, code):
        traces.append(1)
        return dynamic_texture(params, TEXTURE, uv, code)

    jitted = jax.jit(texture)
    for code in ([0.2, -0.7], [1.5, 0.3]):
        code = jnp.asarray(code, jnp.float32)
        with jax.default_matmul_precision("highest"):  # no TF32 on GPU
            result = jitted(params, uv, code)
        assert result.shape == (40, 3) and result.dtype == jnp.float32
        inputs = jnp.concatenate([uv, jnp.broadcast_to(code[None, :], (40, 2))], axis=1)
        h = np.asarray(encode_jit(params["grid"], TEXTURE.grid(), inputs), np.float64)
        layers = [np.asarray(w, np.float64) for w in params["layers"]]
        expected = np.maximum(np.maximum(h @ layers[0], 0.0) @ layers[1], 0.0) @ layers[2]
        np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-4, atol=1e-5)
    assert len(traces) == 1
    grads = jax.jit(jax.grad(lambda p: jnp.sum(dynamic_texture(p, TEXTURE, uv, code) ** 2)))(params)
    assert all(float(jnp.abs(leaf).max()) > 0.0 for leaf in jax.tree_util.tree_leaves(grads))
