"""Structural similarity (SSIM) as the method computes it (docs/method.md section 6), in pure JAX.

Local statistics come from an 11 x 11 Gaussian window (sigma 1.5, normalised to sum 1), applied
to each channel separately with zero padding of 5 pixels (the map has the image's size), and
C1 = 0.01^2, C2 = 0.03^2 (images in [0, 1]):

    SSIM = (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2))

The Gaussian window is separable, so it is two 1-D convolutions. Jittable and differentiable;
used by the rendering loss and by the appearance metrics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

WINDOW_SIZE = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


def gaussian_window_1d(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """(size,) float64 Gaussian weights centred on the middle tap, summing to 1."""
    x = np.arange(size, dtype=np.float64) - size // 2
    weights = np.exp(-(x**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def _blur_along(images: Float[Array, "C H W"], axis: int) -> Float[Array, "C H W"]:
    """The 1-D Gaussian window along ``axis`` with zero padding: a sum of shifted copies, which
    XLA fuses into one elementwise pass (a one-channel convolution fits GPUs poorly)."""
    taps = gaussian_window_1d()
    pad = WINDOW_SIZE // 2
    widths = [(0, 0)] * images.ndim
    widths[axis] = (pad, pad)
    padded = jnp.pad(images, widths)
    n = images.shape[axis]
    return sum(float(w) * jax.lax.slice_in_dim(padded, k, k + n, axis=axis) for k, w in enumerate(taps))


def _gaussian_blur(images: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
    """Each channel filtered by the 2-D Gaussian window, zero padding, same size."""
    return _blur_along(_blur_along(images, 1), 2)


def ssim_map(a: Float[Array, "H W *C"], b: Float[Array, "H W *C"]) -> Float[Array, "H W *C"]:
    """Per-pixel SSIM of two images of the same shape, (H, W) or (H, W, C), values in [0, 1].

    Returns:
        The SSIM map, same shape and dtype as the inputs (1 where the images agree).
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"ssim: images must both be (H, W) or (H, W, C), got {a.shape} and {b.shape}")
    two_d = a.ndim == 2
    a, b = (x[None] if two_d else jnp.moveaxis(x, -1, 0) for x in (a, b))  # (C, H, W)
    n = a.shape[0]
    blurred = _gaussian_blur(jnp.concatenate([a, b, a * a, b * b, a * b]))
    mu_a, mu_b, aa, bb, ab = (blurred[i * n:(i + 1) * n] for i in range(5))
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    numerator = (2.0 * mu_a * mu_b + C1) * (2.0 * cov + C2)
    denominator = (mu_a * mu_a + mu_b * mu_b + C1) * (var_a + var_b + C2)
    result = numerator / denominator
    return result[0] if two_d else jnp.moveaxis(result, 0, -1)


def ssim(a: Float[Array, "H W *C"], b: Float[Array, "H W *C"]) -> Float[Array, ""]:
    """Mean SSIM over the map (and channels) of two images (H, W) or (H, W, C) in [0, 1]."""
    return jnp.mean(ssim_map(a, b))
