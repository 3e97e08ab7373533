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
    columns = body_vertices.T.copy()  # (3, N): one contiguous row per coordinate
    for start in range(0, len(garment_vertices), chunk):
        x = garment_vertices[start:start + chunk]
        # |x - b| coordinate by coordinate, in place (the same operations, in the same order, as
        # np.linalg.norm(x[:, None] - b[None], axis=-1), without its (c, N, 3) temporaries)
        kernel = np.subtract(x[:, 0:1], columns[0])
        np.multiply(kernel, kernel, out=kernel)
        for axis in (1, 2):
            difference = np.subtract(x[:, axis:axis + 1], columns[axis])
            np.multiply(difference, difference, out=difference)
            kernel += difference
        np.sqrt(kernel, out=kernel)  # the distances D (c, N)
        nearest = kernel.min(axis=1, keepdims=True)
        sigma = nearest + 1e-7
        kernel -= nearest
        np.multiply(kernel, kernel, out=kernel)
        np.negative(kernel, out=kernel)
        kernel /= 0.25 * sigma**2
        np.exp(kernel, out=kernel)
        kernel /= kernel.sum(axis=1, keepdims=True)
        out[start:start + chunk] = kernel @ body_weights
    return out


def linear_blend_skinning(
    vertices: Float[Array, "V 3"], weights: Float[Array, "V K"], transforms: Float[Array, "K 4 4"]
) -> Float[Array, "V 3"]:
    """Posed vertices ``(sum_k W_vk A_k) [x_v; 1]`` (V, 3), with ``A_k`` the bones' rest-to-posed
    4x4 transforms (rest-pose joint already removed, global translation included)."""
    blended = jnp.einsum("vk,kij->vij", weights, transforms)  # (V, 4, 4)
    return jnp.einsum("vij,vj->vi", blended[:, :3, :3], vertices) + blended[:, :3, 3]
