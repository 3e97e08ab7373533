"""Hash encoding (ngdjax/hashgrid.py) against a per-point loop written from tcnn's rules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ngdjax.hashgrid import HashGridConfig, encode, init_hash_grid, level_layout

encode_jit = jax.jit(encode, static_argnums=1)

TCNN_PRIMES = (1, 2654435761, 805459861, 3674653429)
UINT32 = 2**32


def _reference_encode(table: np.ndarray, config: HashGridConfig, x: np.ndarray) -> np.ndarray:
    """tcnn's grid.h, one point, one level, one corner at a time, in Python integers."""
    d, n_features = config.input_dim, config.n_features
    out = np.zeros((x.shape[0], config.n_levels * n_features))
    offset = 0
    for level in range(config.n_levels):
        # grid_scale: exp2f(level * log2f(per_level_scale)) * base_resolution - 1.0f
        growth = np.exp2(np.float32(level) * np.log2(np.float32(config.per_level_scale)))
        scale = np.float32(growth * np.float32(config.base_resolution) - np.float32(1.0))
        resolution = math.ceil(scale) + 1
        size = min((resolution**d + 7) // 8 * 8, 2**config.log2_table_size)
        for n in range(x.shape[0]):
            pos = [np.float32(x[n, dim]) * scale + np.float32(0.5) for dim in range(d)]
            cell = [int(np.floor(p)) % UINT32 for p in pos]  # int32 -> uint32
            frac = [float(p - np.floor(p)) for p in pos]
            for corner in range(2**d):
                weight, coords = 1.0, []
                for dim in range(d):
                    upper = (corner >> dim) & 1
                    weight *= frac[dim] if upper else 1.0 - frac[dim]
                    coords.append((cell[dim] + upper) % UINT32)
                if resolution**d <= size:
                    index = sum(c * resolution**dim for dim, c in enumerate(coords)) % UINT32
                else:
                    index = 0
                    for dim, c in enumerate(coords):
                        index ^= (c * TCNN_PRIMES[dim]) % UINT32
                row = offset + index % size
                out[n, level * n_features:(level + 1) * n_features] += weight * table[row]
        offset += size
    return out


def _random_table(config: HashGridConfig, seed: int = 0) -> np.ndarray:
    rows = level_layout(config).n_rows
    return np.random.default_rng(seed).normal(size=(rows, config.n_features)).astype(np.float32)


@pytest.mark.parametrize(
    "config, low, high",
    [
        # res 4, 8, 16, 32 against T = 1024: levels 0-1 dense (64, 512 cells), 2-3 hashed
        (HashGridConfig(3, n_levels=4, log2_table_size=10, base_resolution=4), -2.5, 2.5),
        # 4-D: res 4 dense (256 cells), res 8 hashed (4096 > 1024)
        (HashGridConfig(4, n_levels=3, log2_table_size=10, base_resolution=4), -1.5, 1.5),
        # 2-D, scales 6, 9.5, 14.75 -> res 7, 11, 16 against T = 128: dense with T = 56 > 49,
        # dense with T = 128 > 121 (wrapped cells taken mod 128, not mod 121), hashed; far outside [0, 1]
        (HashGridConfig(2, n_levels=3, n_features=3, log2_table_size=7, base_resolution=7, per_level_scale=1.5),
         -40.0, 40.0),
    ],
)
def test_matches_per_point_reference(config, low, high):
    x = np.random.default_rng(1).uniform(low, high, size=(24, config.input_dim)).astype(np.float32)
    x[0] = 0.0
    table = _random_table(config)
    expected = _reference_encode(table, config, x)
    result = encode_jit(jnp.asarray(table), config, jnp.asarray(x))
    assert result.shape == (24, config.n_levels * config.n_features) and result.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-5, atol=1e-5)


def test_methods_levels_dense_then_hashed():
    """docs/method.md 4.5: 3-D encoders have levels 0-2 dense, the 4-D pose encoder only level 0."""
    three, four = level_layout(HashGridConfig(3)), level_layout(HashGridConfig(4))
    assert list(three.dense) == [True] * 3 + [False] * 13
    assert list(four.dense) == [True] + [False] * 15
    np.testing.assert_array_equal(three.resolutions, 16 * 2 ** np.arange(16))
    assert list(three.table_sizes[:4]) == [16**3, 32**3, 64**3, 2**19]


def test_exact_at_grid_vertices():
    """Where x * scale + 0.5 is an integer vertex k, the encoding is that vertex's table row."""
    config = HashGridConfig(3, n_levels=1, log2_table_size=12, base_resolution=9)  # scale 8, res 9
    vertices = np.array([[0, 0, 0], [3, 5, 7], [8, 1, 4], [2, 8, 8]])
    x = ((vertices - 0.5) / 8.0).astype(np.float32)  # exact in float32
    table = _random_table(config, seed=2)
    result = encode_jit(jnp.asarray(table), config, jnp.asarray(x))
    rows = vertices[:, 0] + 9 * vertices[:, 1] + 81 * vertices[:, 2]
    np.testing.assert_allclose(np.asarray(result), table[rows], atol=1e-6)


def test_wrap_around_reads_the_table_modulo_its_size():
    """A negative cell wraps through uint32: cell -1 of a dense 1-D level reads row (2**32-1) % T."""
    config = HashGridConfig(1, n_levels=1, log2_table_size=6, base_resolution=12)  # scale 11, T=16
    x = np.array([[(-1 - 0.5) / 11.0]], np.float32)  # vertex -1 exactly
    table = _random_table(config, seed=3)
    result = encode_jit(jnp.asarray(table), config, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(result)[0], table[(UINT32 - 1) % 16], atol=1e-6)


def test_init_range_and_size():
    config = HashGridConfig(3, n_levels=4, log2_table_size=10, base_resolution=4)
    table = init_hash_grid(jax.random.key(0), config)
    assert table.shape == (64 + 512 + 1024 + 1024, 2) and table.dtype == jnp.float32
    assert float(jnp.abs(table).max()) <= 1e-4 and float(jnp.abs(table).max()) > 0.9e-4


def test_gradients_tables_finite_differences_and_none_for_x():
    config = HashGridConfig(3, n_levels=3, log2_table_size=8, base_resolution=4)
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 2, size=(6, 3)), jnp.float32)
    with jax.enable_x64(True):
        table = jnp.asarray(_random_table(config, seed=5), jnp.float64)
        check_grads(lambda t: encode_jit(t, config, x), (table,), order=1, modes=["rev"], eps=1e-3)
    table32 = jnp.asarray(_random_table(config, seed=5))
    grad_x = jax.jit(jax.grad(lambda p: encode(table32, config, p).sum()))(x)
    np.testing.assert_array_equal(np.asarray(grad_x), 0.0)


def test_rejects_wrong_input_width():
    config = HashGridConfig(3, n_levels=2, log2_table_size=8)
    with pytest.raises(ValueError, match=r"encode: x must be \(N, 3\)"):
        encode(init_hash_grid(jax.random.key(0), config), config, jnp.zeros((4, 2), jnp.float32))
