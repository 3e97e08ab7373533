"""Garment skinning: weight transfer from any body model, and linear blend skinning (docs/method.md 3.3-3.4).

Written for any body: ``body_vertices`` (N, 3) and ``body_weights`` (N, K) of the body's own
vertex count and bone count (SMPL: 6890 x 24; Anny has its own).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def rbf_skinning_weights(
    garment_vertices: np.ndarray, body_vertices: np.ndarray, body_weights: np.ndarray, chunk: int = 512
) -> np.ndarray:
    """Skinning weights (G, K) for garment vertices by the method's soft nearest-neighbour kernel.

    For garment vertex x and body vertices b: ``D_b = |x - b|``, ``d = min_b D_b``,
    ``sigma = d + 1e-7``, ``w_b = exp(-(D_b - d)^2 / (0.25 sigma^2))`` normalised to sum 1, and the
    garment weights are ``sum_b w_b W_b``. The kernel's width scales with the distance to the
    body, so vertices near the skin copy their nearest body vertex and loose ones blend more.
    Host numpy, float64, processed ``chunk`` garment vertices at a time (memory chunk x N).

    Args:
        garment_vertices: (G, 3) in the body's rest pose.
        body_vertices: (N, 3) rest-pose body vertices.
        body_weights: (N, K) the body's skinning weights (rows sum to 1).

    Returns:
        (G, K) float64, rows summing to 1.
    """
    garment_vertices = np.asarray(garment_vertices, dtype=np.float64)
    body_vertices = np.asarray(body_vertices, dtype=np.float64)
    body_weights = np.asarray(body_weights, dtype=np.float64)
    out = np.empty((len(garment_vertices), body_weights.shape[1]))
    for start in range(0, len(garment_vertices), chunk):
        x = garment_vertices[start:start + chunk]
        distance = np.linalg.norm(x[:, None, :] - body_vertices[None, :, :], axis=-1)  # (c, N)
        nearest = distance.min(axis=1, keepdims=True)
        sigma = nearest + 1e-7
        kernel = np.exp(-((distance - nearest) ** 2) / (0.25 * sigma**2))
        out[start:start + chunk] = (kernel / kernel.sum(axis=1, keepdims=True)) @ body_weights
    return out


def linear_blend_skinning(
    vertices: Float[Array, "V 3"], weights: Float[Array, "V K"], transforms: Float[Array, "K 4 4"]
) -> Float[Array, "V 3"]:
    """Posed vertices ``(sum_k W_vk A_k) [x_v; 1]`` (V, 3), with ``A_k`` the bones' rest-to-posed
    4x4 transforms (rest-pose joint already removed, global translation included)."""
    blended = jnp.einsum("vk,kij->vij", weights, transforms)  # (V, 4, 4)
    return jnp.einsum("vij,vj->vi", blended[:, :3, :3], vertices) + blended[:, :3, 3]
