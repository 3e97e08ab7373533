"""A template derived from a true garment: what a user would start from when the garment they own
is similar to, but not the one in the video (:func:`derived_template`).

The true mesh is smoothed, shortened, coarsened and shrunk towards the body:

1. Taubin smoothing (uniform weights; interior vertices towards the mean of their neighbours,
   boundary vertices towards the mean of their two boundary neighbours): removes wrinkles
   without shrinking the garment as plain Laplacian smoothing would.
2. Shortening by ``shorten_m``: the *lower* boundary loops (mean height below the garment's
   mid-height along ``up``: a skirt's hem, trouser legs, a t-shirt's hem; not a waistband, a
   neckline or short sleeves) move up. Every vertex within reach of a lower loop (along the
   mesh's edges) is compared with the loop vertex nearest to it along the mesh; where it lies
   less than ``shorten_m`` above that vertex it is cut away, exactly along that isoline. The new
   hem thus follows the old one's shape, ``shorten_m`` higher, whatever the hem's tilt or flare.
3. Coarsening to ``edge_length``: igl edge-collapse decimation, then tangential relaxation.
4. Shrinking by ``shrink_m``: every vertex moves inwards along its normal by ``shrink_m``, or less
   where that would bring it closer than ``clearance`` to the body (and vertices already closer
   are pushed out to ``clearance``).
"""

from __future__ import annotations

import igl
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ngdjax.errors import InputError
from ngdjax.mesh import boundary_loops, edges, validate_mesh, vertex_normals
from ngdjax.mesh_edit import cut_along_isoline, decimate, faces_away_from, largest_piece, push_out_of, relax

TAUBIN_LAMBDA, TAUBIN_MU = 0.5, -0.53  # Taubin's smoothing / inflation steps (|mu| > lambda: no shrinking)


def derived_template(vertices: np.ndarray, faces: np.ndarray, body_rest_vertices: np.ndarray, body_faces: np.ndarray,
                     *, edge_length: float = 0.03, smooth_iterations: int = 10, shrink_m: float = 0.0,
                     shorten_m: float = 0.0, up=(0.0, 0.0, 1.0), clearance: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """A simplified, smaller version of a true garment mesh (see the module's docstring).

    Args:
        vertices: (V, 3) the true garment in the body's rest pose (metres); faces: (F, 3).
        body_rest_vertices: (N, 3) the body in its rest pose; body_faces: (M, 3).
        edge_length: target mean edge length in metres (a finer input is decimated; a coarser one
            is left as is).
        smooth_iterations: Taubin smoothing iterations (each one shrink step and one inflate step).
        shrink_m: how far the garment moves towards the body along its normals (metres).
        shorten_m: how much higher the lower boundary loops end up (metres, along ``up``).
        up: (3,) the body's up direction (Anny: +Z; SMPL: +Y).
        clearance: the closest the result comes to the body's surface (metres).

    Returns:
        vertices (V', 3) float64 and faces (F', 3) int64: one piece, as many boundary loops as the
        input, faces oriented with normals pointing away from the body.

    Raises:
        InputError: an invalid input mesh, negative sizes, or a shortening that removes or
        merges openings.
    """
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    body_rest_vertices, body_faces = np.asarray(body_rest_vertices, np.float64), np.asarray(body_faces, np.int64)
    validate_mesh(vertices, faces, name="true garment")
    if not edge_length > 0 or shrink_m < 0 or shorten_m < 0 or smooth_iterations < 0 or clearance < 0:
        raise InputError(f"derived_template: edge_length ({edge_length}) must be positive; shrink_m ({shrink_m}), "
                         f"shorten_m ({shorten_m}), smooth_iterations and clearance must not be negative")
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    n_loops = len(boundary_loops(faces))
    vertices = taubin_smooth(vertices, faces, smooth_iterations)
    if shorten_m > 0:
        vertices, faces = shorten(vertices, faces, up, shorten_m)
    vertices, faces = decimate(vertices, faces, edge_length)
    vertices = relax(vertices, faces, iterations=3)
    faces = faces_away_from(vertices, faces, body_rest_vertices, body_faces)
    vertices = shrink(vertices, faces, body_rest_vertices, body_faces, shrink_m, clearance)
    faces = faces_away_from(vertices, faces, body_rest_vertices, body_faces)
    validate_mesh(vertices, faces, name="derived template")
    if len(boundary_loops(faces)) != n_loops:
        raise InputError(f"derived_template: {len(boundary_loops(faces))} boundary loops instead of the input's "
                         f"{n_loops} (shorten_m {shorten_m} too large?)")
    return vertices, faces


def smoothing_operator(faces: np.ndarray, n_vertices: int) -> scipy.sparse.csr_matrix:
    """Row-stochastic (V, V) averaging matrix: interior vertices average their edge neighbours,
    boundary vertices their two neighbours along the boundary (so that openings stay in place
    along the surface and are smoothed only along themselves)."""
    pairs = edges(faces)
    on_boundary = np.zeros(n_vertices, bool)
    loops = boundary_loops(faces)
    if loops:
        on_boundary[np.concatenate(loops)] = True
    rows, cols = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
    keep = ~on_boundary[rows]
    rows, cols = [rows[keep]], [cols[keep]]
    for loop in loops:
        rows += [loop, loop]
        cols += [np.roll(loop, 1), np.roll(loop, -1)]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    matrix = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vertices, n_vertices))
    degree = np.maximum(np.asarray(matrix.sum(axis=1)).ravel(), 1.0)
    return scipy.sparse.diags(1.0 / degree) @ matrix


def taubin_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Taubin's lambda/mu smoothing of (V, 3) ``vertices`` with :func:`smoothing_operator`."""
    average = smoothing_operator(faces, len(vertices))
    for _ in range(iterations):
        for step in (TAUBIN_LAMBDA, TAUBIN_MU):
            vertices = vertices + step * (average @ vertices - vertices)
    return vertices


def lower_loops(vertices: np.ndarray, faces: np.ndarray, up: np.ndarray) -> list[np.ndarray]:
    """The boundary loops (vertex indices) whose mean height along ``up`` (3,) is below the
    garment's mid-height: the openings that a shorter garment has higher."""
    height = vertices @ up
    middle = 0.5 * (height.min() + height.max())
    return [loop for loop in boundary_loops(faces) if height[loop].mean() < middle]


def shorten(vertices: np.ndarray, faces: np.ndarray, up: np.ndarray, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut away the band within ``amount`` (metres, along ``up`` (3,)) above each lower boundary
    loop (:func:`lower_loops`), measured from the loop vertex nearest along the mesh's edges.
    Returns the remaining (V', 3) vertices and (F', 3) faces (largest piece)."""
    loops = lower_loops(vertices, faces, up)
    if not loops:
        return vertices, faces
    pairs = edges(faces)
    lengths = np.linalg.norm(vertices[pairs[:, 0]] - vertices[pairs[:, 1]], axis=1)
    graph = scipy.sparse.csr_matrix((lengths, (pairs[:, 0], pairs[:, 1])), shape=(len(vertices),) * 2)
    reach = 4.0 * amount  # along the surface; beyond it nothing is cut
    distance, _, source = scipy.sparse.csgraph.dijkstra(graph, directed=False, indices=np.concatenate(loops),
                                                        limit=reach, min_only=True, return_predecessors=True)
    height = vertices @ up
    reached = np.isfinite(distance)
    above = np.where(reached, height - height[np.where(reached, source, 0)], np.inf)
    vertices, faces = cut_along_isoline(vertices, faces, amount - above)
    if len(faces) == 0:
        raise InputError(f"derived_template: shortening by shorten_m = {amount} m leaves nothing of the garment")
    return largest_piece(vertices, faces)


def shrink(vertices: np.ndarray, faces: np.ndarray, body_vertices: np.ndarray, body_faces: np.ndarray,
           amount: float, clearance: float) -> np.ndarray:
    """(V, 3) vertices moved inwards along their normals (faces (F, 3) oriented away from the
    body) by ``amount``, or only as far as keeps them ``clearance`` from the body's surface."""
    distance = igl.signed_distance(vertices, body_vertices, body_faces)[0]
    step = np.clip(distance - clearance, 0.0, amount)
    moved = vertices - step[:, None] * vertex_normals(vertices, faces)
    return push_out_of(moved, body_vertices, body_faces, clearance)
