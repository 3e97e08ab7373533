"""The smoothness prior keeps its strength per area when the template is refined."""

import jax.numpy as jnp
import numpy as np
import trimesh

from ngdjax import procedural
from ngdjax.losses import jacobian_smoothness
from ngdjax.poisson import build_poisson_solver, jacobians_from_vertices
from ngdjax.remesh import split_edges


def drape(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) -> (V, 3): the sheet stretched and folded by smooth waves."""
    x, y = vertices[:, 0], vertices[:, 1]
    return np.stack([1.1 * x + 0.05 * np.sin(4 * y), 0.9 * y, 0.15 * np.sin(5 * x) * np.cos(3 * y)], axis=1)


def draped_field(vertices: np.ndarray, faces: np.ndarray):
    """The drape's per-face Jacobians (F, 3, 3) and the adjacent face pairs (A, 2)."""
    solver = build_poisson_solver(vertices, faces, method="host")
    jacobians = jacobians_from_vertices(solver, jnp.asarray(drape(vertices), jnp.float32))
    return jacobians, jnp.asarray(trimesh.graph.face_adjacency(faces), jnp.int32)


def test_smoothness_of_a_smooth_field_does_not_depend_on_the_resolution():
    # Flat, so the template itself has no creases; one diagonal direction, as alternating ones add
    # jumps of the interpolation error between neighbours that split faces do not reproduce.
    vertices, faces = procedural.flat_grid(25, alternate_diagonals=False)
    fine_vertices, fine_faces, _ = split_edges(vertices, faces, np.ones(len(vertices), bool), 0.0)
    assert len(fine_faces) == 4 * len(faces)
    coarse, coarse_pairs = draped_field(vertices, faces)
    fine, fine_pairs = draped_field(fine_vertices, fine_faces)
    reference = jnp.float32(len(coarse_pairs))

    at_coarse = float(jacobian_smoothness(coarse, coarse_pairs, reference))
    at_fine = float(jacobian_smoothness(fine, fine_pairs, reference))
    assert at_coarse > 0
    np.testing.assert_allclose(at_fine, at_coarse, rtol=0.1)
    # The mean over the fine mesh's own pairs would have weakened the prior about four-fold.
    own_mean = float(jacobian_smoothness(fine, fine_pairs, jnp.float32(len(fine_pairs))))
    assert own_mean < 0.3 * at_coarse

