"""SSIM (ngdjax/ssim.py) against a direct numpy/scipy evaluation of the method's formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.ndimage import correlate

from ngdjax.ssim import gaussian_window_1d, ssim, ssim_map


def _reference_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The formula written out with a 2-D 11x11 window and scipy's zero-padded correlation."""
    window = np.outer(gaussian_window_1d(), gaussian_window_1d())

    def blur(x):
        return correlate(x, window, mode="constant", cval=0.0)

    channels = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[-1])]
    others = [b] if b.ndim == 2 else [b[..., c] for c in range(b.shape[-1])]
    maps = []
    for x, y in zip(channels, others, strict=True):
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        c1, c2 = 0.01**2, 0.03**2
        maps.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return maps[0] if a.ndim == 2 else np.stack(maps, axis=-1)


def _images(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = np.clip(a + 0.2 * rng.normal(size=shape), 0.0, 1.0)
    return a, b


def test_window_is_the_methods_gaussian():
    window = gaussian_window_1d()
    assert window.shape == (11,) and np.isclose(window.sum(), 1.0)
    np.testing.assert_allclose(window / window[5], np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2)))


@pytest.mark.parametrize("shape", [(20, 17), (16, 13, 3)])
def test_matches_reference(shape):
    a, b = _images(shape)
    expected = _reference_ssim_map(a, b)
    result = ssim_map(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    assert result.shape == shape and result.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(result), expected, atol=2e-5)
    np.testing.assert_allclose(float(ssim(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))),
                               expected.mean(), atol=2e-6)


def test_identical_images_give_one_and_different_images_less():
    a, b = _images((16, 16, 3), seed=1)
    a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    np.testing.assert_allclose(np.asarray(ssim_map(a32, a32)), 1.0, atol=1e-6)
    assert float(ssim(a32, b32)) < 0.9


def test_jit_and_gradients():
    a, b = _images((12, 12, 3), seed=2)
    jitted = jax.jit(ssim)(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(float(jitted), _reference_ssim_map(a, b).mean(), atol=2e-6)
    with jax.enable_x64(True):
        check_grads(ssim, (jnp.asarray(a, jnp.float64), jnp.asarray(b, jnp.float64)), order=1, modes=["fwd", "rev"])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="ssim: images must both be"):
        ssim(jnp.zeros((8, 8), jnp.float32), jnp.zeros((8, 8, 3), jnp.float32))
