"""Axis-angle rotations, shared by every body model."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def rotation_matrices(axis_angle: Float[Array, "*B 3"]) -> Float[Array, "*B 3 3"]:
    """Rodrigues' formula with a series expansion near zero angle (finite gradients at rest)."""
    theta2 = jnp.sum(axis_angle * axis_angle, axis=-1)[..., None, None]
    small = theta2 < 1e-8
    safe2 = jnp.where(small, 1.0, theta2)
    theta = jnp.sqrt(safe2)
    x, y, z = axis_angle[..., 0], axis_angle[..., 1], axis_angle[..., 2]
    zero = jnp.zeros_like(x)
    skew = jnp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis_angle.shape[:-1] + (3, 3))
    sin_term = jnp.where(small, 1.0 - theta2 / 6.0, jnp.sin(theta) / theta)
    cos_term = jnp.where(small, 0.5 - theta2 / 24.0, (1.0 - jnp.cos(theta)) / safe2)
    identity = jnp.broadcast_to(jnp.eye(3, dtype=axis_angle.dtype), skew.shape)
    return identity + sin_term * skew + cos_term * (skew @ skew)
