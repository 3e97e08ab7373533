"""The geometry and appearance losses of the method (docs/method.md sections 6 and 8), pure JAX.

Images are (H, W) float arrays in [0, 1]; masks are (H, W) float 0/1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ngdjax.ssim import ssim


def huber(error: Float[Array, "*S"], delta: float) -> Float[Array, ""]:
    """Mean Huber loss: 0.5 e^2 where |e| < delta, else delta (|e| - 0.5 delta)."""
    magnitude = jnp.abs(error)
    return jnp.mean(jnp.where(magnitude < delta, 0.5 * error**2, delta * (magnitude - 0.5 * delta)))


def shading_loss(
    diffuse: Float[Array, "H W"], target: Float[Array, "H W"], mask: Float[Array, "H W"], delta: float,
    ssim_weight: float,
) -> Float[Array, ""]:
    """(1 - w) Huber + w (1 - SSIM) of the rendered shading, masked by the target garment mask,
    against the target shading (docs/method.md 6: w = 0.35, delta = 0.005)."""
    masked = diffuse * mask
    return (1.0 - ssim_weight) * huber(masked - target, delta) + ssim_weight * (1.0 - ssim(masked, target))


def silhouette_loss(
    silhouette: Float[Array, "H W"], target: Float[Array, "H W"], occluders: Float[Array, "H W"]
) -> Float[Array, ""]:
    """Mean squared error of the rendered silhouette, with occluded pixels removed from the
    prediction, against the target garment mask."""
    return jnp.mean((silhouette * (1.0 - occluders) - target) ** 2)


def jacobian_regulariser(
    jacobians: Float[Array, "F 3 3"], visible: Bool[Array, " F"] | None
) -> Float[Array, ""]:
    """mean (J~ - I)^2 over all F * 9 entries, J~ = J on visible faces and I elsewhere
    (``visible=None``: every face counts, as in the method's warm-up)."""
    identity = jnp.eye(3, dtype=jacobians.dtype)[None]
    if visible is not None:
        jacobians = jnp.where(visible[:, None, None], jacobians, identity)
    return jnp.mean((jacobians - identity) ** 2)


def depth_pairs(key: Array, shape: tuple[int, int], n_boxes: int, box: int) -> tuple[Array, Array]:
    """Random pixel pairs for depth ranking: ``n_boxes`` boxes of ``box`` x ``box`` placed
    uniformly in the image, one random pair inside each. Returns two (n_boxes, 2) int32 (row, col)."""
    height, width = shape
    box_h, box_w = min(box, height), min(box, width)
    corner_key, first_key, second_key = jax.random.split(key, 3)

    def draw(k, limits):  # uniform integers in [0, limits) per column
        return jnp.floor(jax.random.uniform(k, (n_boxes, 2)) * jnp.array([limits], jnp.float32)).astype(jnp.int32)

    corners = draw(corner_key, (height - box_h + 1, width - box_w + 1))
    first = corners + draw(first_key, (box_h, box_w))
    second = corners + draw(second_key, (box_h, box_w))
    return first, second


def depth_ranking_loss(
    depth: Float[Array, "H W"], target_depth: Float[Array, "H W"], first: Array, second: Array, margin: float
) -> Float[Array, ""]:
    """Hinge ranking loss mean max(0, -y (d1 - d2) + margin), y = sign(t2 - t1) (docs/method.md 6).

    ``depth`` is the rendered inverted depth (larger = nearer), ``target_depth`` camera-space z
    in metres (larger = farther; 0 = unknown). Unlike the authors' code, a pair counts only where
    both target depths are known: a background pixel of depth 0 would otherwise pass for the
    nearest point in the scene. Returns 0 when no pair is usable.
    """
    t1, t2 = target_depth[first[:, 0], first[:, 1]], target_depth[second[:, 0], second[:, 1]]
    d1, d2 = depth[first[:, 0], first[:, 1]], depth[second[:, 0], second[:, 1]]
    usable = ((t1 > 0) & (t2 > 0) & (t1 != t2)).astype(depth.dtype)
    hinge = jnp.maximum(0.0, -jnp.sign(t2 - t1) * (d1 - d2) + margin)
    return jnp.sum(hinge * usable) / jnp.maximum(jnp.sum(usable), 1.0)


def relative_l2(
    colour: Float[Array, "H W 3"], target: Float[Array, "H W 3"], mask: Float[Array, "H W"]
) -> Float[Array, ""]:
    """Appearance loss mean((I^ S - I S)^2 / (sg(I^ S)^2 + 0.01)) (docs/method.md 8)."""
    predicted = colour * mask[..., None]
    return jnp.mean(relative_l2_terms(predicted, target * mask[..., None]))


def relative_l2_terms(colour: Float[Array, "*N 3"], target: Float[Array, "*N 3"]) -> Float[Array, "*N 3"]:
    """The summands of :func:`relative_l2` inside the mask: (I^ - I)^2 / (sg(I^)^2 + 0.01)."""
    return (colour - target) ** 2 / (jax.lax.stop_gradient(colour) ** 2 + 0.01)


def uniform_laplacian_energy(offsets: Float[Array, "V 3"], edges: Array, degree: Float[Array, " V"]) -> Float[Array, ""]:
    """mean |L d|^2 of per-vertex offsets with the uniform graph Laplacian
    (L d)_v = d_v - mean of the neighbours' d; ``edges`` (E, 2) undirected, ``degree`` (V,)."""
    neighbour_sum = jnp.zeros_like(offsets).at[edges[:, 0]].add(offsets[edges[:, 1]]).at[edges[:, 1]].add(offsets[edges[:, 0]])
    laplacian = offsets - neighbour_sum / jnp.maximum(degree, 1.0)[:, None]
    return jnp.mean(jnp.sum(laplacian**2, axis=-1))


def jacobian_smoothness(
    jacobians: Float[Array, "F 3 3"], adjacent: Array, reference_pairs: Float[Array, ""]
) -> Float[Array, ""]:
    """Sum over adjacent face pairs (A, 2) of |J_a - J_b|_F^2, divided by ``reference_pairs``.

    With ``reference_pairs = A`` this is the mean over pairs. A fit that refines its template
    keeps the pair count of the template it started from: splitting a face halves the Jacobian
    jumps of a smooth field across the new, shorter edges and quadruples their number, so the sum
    (a discrete Dirichlet energy of the field) does not depend on the resolution, while the mean
    would weaken the prior everywhere by the factor the pair count grew. (On a curved template the
    jumps across its own creases, which midpoint splits keep, count once per piece of a split
    crease edge.)"""
    difference = jacobians[adjacent[:, 0]] - jacobians[adjacent[:, 1]]
    return jnp.sum(difference**2) / reference_pairs
