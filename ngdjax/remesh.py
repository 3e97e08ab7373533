"""Adaptive, gradient-driven remeshing of the template and state transfer (docs/method.md section 7).

During a remesh epoch the fitting loop accumulates, per template face, the mean image gradient
of the geometry loss over the pixels the face covers (:func:`face_gradient_statistic`, jittable).
At the remesh event, on the host, :func:`remesh_template` refines the template where that
statistic is high:

1. :func:`select_faces`: faces whose min-max normalised statistic exceeds a quantile;
2. :func:`split_edges`: every edge with both endpoints in the selected faces and longer than a
   minimum length is split at its midpoint (Continuous Remeshing's split: a face is re-triangulated
   into 2, 3 or 4 triangles by how many of its edges split);
3. :func:`flip_edges`: valence-improving flips of interior edges;
4. :func:`merge_close_vertices`: coincident vertices merged, order kept.

Afterwards the per-face state (the static Jacobians, Adam's moments) moves to the new faces by
inverse-distance weighting over the nearest old face centroids (:func:`idw_transfer`,
:func:`transfer_face_state`).

Everything but :func:`face_gradient_statistic` is host-side numpy (float64 vertices, int64 faces).
Meshes are triangle meshes ``vertices`` (V, 3), ``faces`` (F, 3) with the conventions of
:mod:`ngdjax.mesh`; inputs are clean (manifold, consistently oriented) open or closed meshes, and
so are the outputs, with the same boundary loops (refined where boundary edges split).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
from jaxtyping import Array, Bool, Float, Int
from scipy.spatial import cKDTree

from ngdjax.mesh import edges as unique_edges
from ngdjax.mesh import face_centroids, face_cross

log = logging.getLogger("ngdjax")

IDW_EPSILON = 1e-10  # docs/method.md 7.4: weights 1 / (d + 1e-10)


# --- 7.2: the per-face gradient statistic (on device, inside the jitted step) --------------------


@functools.partial(jax.jit, static_argnames="n_faces")
def face_gradient_statistic(
    grad_image: Float[Array, "H W *C"],
    target_mask: Float[Array, "H W"],
    face_ids: Int[Array, "H W"],
    n_faces: int,
) -> tuple[Float[Array, " F"], Float[Array, " F"]]:
    """Per-face mean of the normalised image gradient for one image (docs/method.md 7.2).

    ``g = |dL/dD|`` (the Euclidean norm over channels for (H, W, C), the absolute value for (H, W)),
    times the target mask, min-max normalised over the image (all zeros if the image is constant);
    then, for each face ``f``, the mean of ``g`` over the pixels with ``face_ids == f + 1`` where the
    target mask is non-zero.

    Args:
        grad_image: (H, W) or (H, W, C) gradient of the loss w.r.t. the rendered (diffuse) image.
        target_mask: (H, W) target garment mask (0 outside), bool or numeric.
        face_ids: (H, W) int (or the float ids of rast channel 3), 0 for background and ``f + 1``
            for face ``f``.
        n_faces: F (static).

    Returns:
        ``(means, seen)``, both (F,) in ``grad_image``'s dtype: the per-face mean (0 for faces not
        seen under the mask) and 1.0 where the face was seen, else 0.0. Accumulate
        ``acc += means; cnt += seen`` over the epoch and use ``acc / max(cnt, 1)``.
    """
    dtype = grad_image.dtype
    magnitude = jnp.linalg.norm(grad_image, axis=-1) if grad_image.ndim == 3 else jnp.abs(grad_image)
    mask = target_mask.astype(dtype)
    ids = face_ids.astype(jnp.int32)
    masked = magnitude * mask
    low, high = jnp.min(masked), jnp.max(masked)
    span = high - low
    normalised = jnp.where(span > 0, (masked - low) / jnp.where(span > 0, span, jnp.ones_like(span)), 0)
    counted = (mask != 0) & (ids > 0)
    # Pixels that do not count get the out-of-range segment n_faces, which segment_sum drops
    # (one real extra segment would serialise the background's many updates on it).
    segment = jnp.where(counted, ids - 1, n_faces).reshape(-1)
    sums = jax.ops.segment_sum(normalised.reshape(-1), segment, num_segments=n_faces)
    counts = jax.ops.segment_sum(jnp.ones_like(normalised).reshape(-1), segment, num_segments=n_faces)
    seen = counts > 0
    means = jnp.where(seen, sums / jnp.maximum(counts, jnp.ones_like(counts)), 0)
    return means, seen.astype(dtype)


# --- 7.3: selection and topology edit (host) ------------------------------------------------------


def select_faces(statistic: Float[np.ndarray, " F"], quantile: float) -> Bool[np.ndarray, " F"]:
    """Faces to refine: min-max normalised ``statistic`` strictly above its ``quantile`` over all
    faces, zeros included (docs/method.md 7.3 step 1). A constant statistic selects nothing."""
    statistic = np.asarray(statistic, dtype=np.float64)
    span = statistic.max() - statistic.min()
    normalised = (statistic - statistic.min()) / span if span > 0 else np.zeros_like(statistic)
    return normalised > np.quantile(normalised, quantile)


def _face_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2) as :func:`ngdjax.mesh.edges` and, per face, the index of its
    edge ``i`` from corner ``i`` to corner ``i + 1`` (F, 3)."""
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edge_list, inverse = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True)
    return edge_list, inverse.reshape(-1, 3)


def split_candidates(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], vertex_mask: Bool[np.ndarray, " V"],
    min_length: float,
) -> Bool[np.ndarray, " E"]:
    """Edges (in :func:`ngdjax.mesh.edges` order) with both endpoints masked and length > ``min_length``."""
    edge_list = unique_edges(faces)
    lengths = np.linalg.norm(vertices[edge_list[:, 0]] - vertices[edge_list[:, 1]], axis=1)
    return vertex_mask[edge_list].all(axis=1) & (lengths > min_length)


def split_marked_edges(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], split: Bool[np.ndarray, " E"]
) -> tuple[Float[np.ndarray, "V2 3"], Int[np.ndarray, "F2 3"], Int[np.ndarray, "N 2"]]:
    """Split the marked edges (``split`` in :func:`ngdjax.mesh.edges` order) at their midpoints.

    A face with ``s`` split edges becomes ``s + 1`` triangles, each with the orientation of its
    parent, as in Continuous Remeshing, except that a face with 2 splits cuts its remaining
    quadrilateral along the shorter diagonal (theirs always starts at the same midpoint).
    Each split edge gets one new vertex, shared by both its faces. Original vertices keep their
    indices; new vertices are appended in edge order. Unsplit faces keep their order; the new
    triangles follow.

    Returns:
        ``(vertices', faces', parents)``: (V + N, 3), (F + N_extra, 3) and (N, 2), the endpoints of
        the edge each new vertex ``V + n`` splits.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    edge_list, face_edge = _face_edges(faces)
    parents = edge_list[split]
    midpoint_index = np.full(len(edge_list), -1, dtype=np.int64)
    midpoint_index[split] = len(vertices) + np.arange(len(parents))
    new_vertices = np.concatenate([vertices, vertices[parents].mean(axis=1)])

    midpoints = midpoint_index[face_edge]  # (F, 3): new vertex on edge i, or -1
    n_split = (midpoints >= 0).sum(axis=1)
    # Rotate each face so that its pattern is canonical: with one split, edge 0 splits; with two,
    # edge 2 stays whole. Then a, b, c are the rotated corners and m0, m1, m2 the midpoints of
    # edges ab, bc, ca.
    first_split = np.argmax(midpoints >= 0, axis=1)
    whole_edge = np.argmin(midpoints >= 0, axis=1)
    shift = np.where(n_split == 2, (whole_edge + 1) % 3, first_split)
    rotation = (shift[:, None] + np.arange(3)) % 3
    a, b, c = np.take_along_axis(faces, rotation, axis=1).T
    m0, m1, m2 = np.take_along_axis(midpoints, rotation, axis=1).T

    one, two, three = (n_split == 1), (n_split == 2), (n_split == 3)
    # Two splits: the quadrilateral a, m0, m1, c is cut along a-m1 or m0-c, whichever is shorter.
    diagonal_a_m1 = np.linalg.norm(new_vertices[a] - new_vertices[np.maximum(m1, 0)], axis=1)
    diagonal_m0_c = np.linalg.norm(new_vertices[np.maximum(m0, 0)] - new_vertices[c], axis=1)
    from_a = two & (diagonal_a_m1 <= diagonal_m0_c)
    from_m0 = two & ~from_a
    new_faces = np.concatenate([
        faces[n_split == 0],
        _triangles(one, (a, m0, c), (m0, b, c)),
        _triangles(two, (m0, b, m1)),
        _triangles(from_a, (a, m0, m1), (a, m1, c)),
        _triangles(from_m0, (a, m0, c), (m0, m1, c)),
        _triangles(three, (a, m0, m2), (m0, b, m1), (m2, m1, c), (m0, m1, m2)),
    ])
    return new_vertices, new_faces, parents


def _triangles(where: np.ndarray, *corners: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Triangles (K * len(corners), 3) built from per-face corner arrays, for the faces in ``where``."""
    return np.concatenate([np.stack([c[where] for c in triangle], axis=1) for triangle in corners])


def split_edges(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], vertex_mask: Bool[np.ndarray, " V"],
    min_length: float,
) -> tuple[Float[np.ndarray, "V2 3"], Int[np.ndarray, "F2 3"], Int[np.ndarray, "N 2"]]:
    """Split at its midpoint every edge with both endpoints in ``vertex_mask`` and length
    ``> min_length`` (docs/method.md 7.3 step 3); see :func:`split_marked_edges` for the outputs."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    return split_marked_edges(vertices, faces, split_candidates(vertices, faces, np.asarray(vertex_mask), min_length))


def _half_edge_twins(faces: np.ndarray) -> np.ndarray:
    """For half-edge ``3 f + i`` (corner ``i`` to corner ``i + 1`` of face ``f``), the index of its
    opposite half-edge, or -1 on the boundary (F * 3,). Needs a consistently oriented manifold mesh."""
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    n = int(faces.max()) + 1
    keys = directed[:, 0] * n + directed[:, 1]
    order = np.argsort(keys)
    twin_keys = directed[:, 1] * n + directed[:, 0]
    position = np.minimum(np.searchsorted(keys[order], twin_keys), len(keys) - 1)
    return np.where(keys[order][position] == twin_keys, order[position], -1)


def valence_energy(faces: Int[np.ndarray, "F 3"], n_vertices: int, boundary_valence: int = 4) -> int:
    """``sum_v (valence_v - target_v)^2`` with target 6 inside and ``boundary_valence`` on the boundary."""
    return int(np.sum(_valence_offsets(np.asarray(faces), n_vertices, boundary_valence) ** 2))


def _valence_offsets(faces: np.ndarray, n_vertices: int, boundary_valence: int) -> np.ndarray:
    """``valence - target`` per vertex (V,) int."""
    valence = np.bincount(unique_edges(faces).reshape(-1), minlength=n_vertices)
    on_boundary = np.zeros(n_vertices, dtype=bool)
    on_boundary[faces.reshape(-1)[_half_edge_twins(faces) < 0]] = True
    return valence - np.where(on_boundary, boundary_valence, 6)


SLIVER_FRACTION = 1e-2  # a flip may not make a face smaller than this fraction of the two faces' area


def flip_edges(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], boundary_valence: int = 4
) -> Int[np.ndarray, "F 3"]:
    """One round of valence-improving flips of interior edges (docs/method.md 7.3 step 4).

    An interior edge ``(a, b)`` between faces ``(a, b, c)`` and ``(b, a, d)`` becomes ``(c, d)``,
    giving faces ``(c, a, d)`` and ``(d, b, c)`` in the same face slots, when that lowers
    :func:`valence_energy` (target valence 6 inside, ``boundary_valence`` on the boundary: 4 as in
    Continuous Remeshing's ``with_border=True``; the NGD authors pass ``with_border=False``, i.e.
    6). Candidates are rejected when either new face's normal does not point along the sum of the
    two old normals, when either new face has less than ``SLIVER_FRACTION`` of the pair's area
    (a split edge's midpoint ``a`` lies on the segment ``c d``: the orientation test then reads
    rounding noise), or when ``(c, d)`` is already an edge (the flip would make it non-manifold).
    The rest are taken greedily, largest energy decrease first (ties in lexicographic edge order),
    such that no two flips touch a common vertex: the energy changes then add up, so the energy
    strictly decreases whenever something flips. Boundary edges never flip. (Continuous
    Remeshing also keeps flips vertex-disjoint, by a one-pass rank test that can leave more
    candidates unflipped, and checks normals after the selection.)

    Returns:
        faces' (F, 3): same count and order of faces; only flipped pairs change.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    twins = _half_edge_twins(faces)
    half_edges = np.flatnonzero(twins >= 0)
    first = half_edges[half_edges < twins[half_edges]]  # one half-edge per interior edge
    second = twins[first]
    face_1, corner_1 = np.divmod(first, 3)
    face_2, corner_2 = np.divmod(second, 3)
    a, b = faces[face_1, corner_1], faces[face_1, (corner_1 + 1) % 3]
    c, d = faces[face_1, (corner_1 + 2) % 3], faces[face_2, (corner_2 + 2) % 3]

    offsets = _valence_offsets(faces, len(vertices), boundary_valence)
    # (energy after - energy before) / 2 for this flip alone: a, b lose an edge, c, d gain one.
    energy_change = 2 + offsets[c] + offsets[d] - offsets[a] - offsets[b]
    old_normal = face_cross(vertices, faces[face_1]) + face_cross(vertices, faces[face_2])
    new_1, new_2 = np.stack([c, a, d], axis=1), np.stack([d, b, c], axis=1)
    cross_1, cross_2 = face_cross(vertices, new_1), face_cross(vertices, new_2)
    keeps_orientation = (np.einsum("ij,ij->i", cross_1, old_normal) > 0) & (
        np.einsum("ij,ij->i", cross_2, old_normal) > 0
    )
    smallest = np.minimum(np.linalg.norm(cross_1, axis=1), np.linalg.norm(cross_2, axis=1))
    no_sliver = smallest > SLIVER_FRACTION * np.linalg.norm(old_normal, axis=1)
    existing = unique_edges(faces)
    new_edges = np.sort(np.stack([c, d], axis=1), axis=1)
    edge_exists = _rows_in(new_edges, existing, len(vertices))
    candidates = np.flatnonzero((energy_change < 0) & keeps_orientation & no_sliver & ~edge_exists & (c != d))

    touched = np.zeros(len(vertices), dtype=bool)
    chosen = []
    low, high = np.minimum(a, b)[candidates], np.maximum(a, b)[candidates]
    for k in candidates[np.lexsort((high, low, energy_change[candidates]))]:
        quad = [a[k], b[k], c[k], d[k]]
        if not touched[quad].any():
            touched[quad] = True
            chosen.append(k)
    chosen = np.asarray(chosen, dtype=np.int64)
    new_faces = faces.copy()
    new_faces[face_1[chosen]] = new_1[chosen]
    new_faces[face_2[chosen]] = new_2[chosen]
    return new_faces


def _rows_in(rows: np.ndarray, table: np.ndarray, n: int) -> np.ndarray:
    """Whether each sorted index pair of ``rows`` (K, 2) is a row of ``table`` (E, 2); indices < n."""
    return np.isin(rows[:, 0] * n + rows[:, 1], table[:, 0] * n + table[:, 1])


def merge_close_vertices(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], tolerance: float = 1e-6
) -> tuple[Float[np.ndarray, "V2 3"], Int[np.ndarray, "F2 3"], Int[np.ndarray, " V"]]:
    """Merge vertices closer than ``tolerance`` (docs/method.md 7.3 step 5), keeping the vertex order.

    Vertices within ``tolerance`` of each other (transitively) become the first of them, at its
    position. Faces that become degenerate (a repeated index) are dropped, then vertices no face
    uses. Unlike the authors' rounding-and-unique, the surviving vertices keep their relative
    order, so a mesh with nothing to merge comes back unchanged.

    Returns:
        ``(vertices', faces', old_to_new)``: old_to_new (V,) maps each old vertex to its new index,
        -1 for a vertex that no longer exists.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    n = len(vertices)
    pairs = cKDTree(vertices).query_pairs(tolerance, output_type="ndarray")
    graph = scipy.sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, cluster = scipy.sparse.csgraph.connected_components(graph, directed=False)
    first_of_cluster = np.full(cluster.max() + 1, n, dtype=np.int64)
    np.minimum.at(first_of_cluster, cluster, np.arange(n))
    representative = first_of_cluster[cluster]  # (V,) the first vertex of each vertex's cluster

    merged_faces = representative[faces]
    merged_faces = merged_faces[
        (merged_faces[:, 0] != merged_faces[:, 1])
        & (merged_faces[:, 1] != merged_faces[:, 2])
        & (merged_faces[:, 2] != merged_faces[:, 0])
    ]
    used = np.zeros(n, dtype=bool)
    used[merged_faces.reshape(-1)] = True
    kept_index = np.cumsum(used) - 1
    old_to_new = np.where(used[representative], kept_index[representative], -1)
    return vertices[used], kept_index[merged_faces], old_to_new


@dataclasses.dataclass(frozen=True)
class RemeshSchedule:
    """Linear schedules of the remesh events (docs/method.md 7.3): event ``k`` uses the quantile and the
    minimum edge length interpolated at ``min(k, steps) / steps``."""

    start_quantile: float = 0.85  # faces above this quantile of the statistic are refined at event 0
    end_quantile: float = 0.95  # ... and at event ``steps``
    start_edge_length: float = 0.010  # metres: shorter edges are not split at event 0
    end_edge_length: float = 0.007  # metres, at event ``steps``
    steps: int = 10  # events over which the schedules run (constant afterwards)
    max_vertices: int | None = None  # vertex budget of the remeshed template (None: unlimited)
    boundary_valence: int = 4  # flip target on the boundary (Continuous Remeshing; the authors' 6)

    def _fraction(self, event_index: int) -> float:
        return min(event_index, self.steps) / self.steps

    def quantile(self, event_index: int) -> float:
        """Selection quantile of event ``event_index`` (0, 1, ...)."""
        return self.start_quantile + (self.end_quantile - self.start_quantile) * self._fraction(event_index)

    def edge_length(self, event_index: int) -> float:
        """Minimum length of a split edge at event ``event_index`` (0, 1, ...)."""
        return self.start_edge_length + (self.end_edge_length - self.start_edge_length) * self._fraction(event_index)


class RemeshResult(NamedTuple):
    """The remeshed template.

    Attributes:
        vertices: (V', 3) float64; the original vertices first, at their old indices, unless
            merging removed some.
        faces: (F', 3) int64.
        n_split: number of edges split.
        stopped_by_budget: True when ``max_vertices`` left some candidate edges unsplit.
    """

    vertices: np.ndarray
    faces: np.ndarray
    n_split: int
    stopped_by_budget: bool


def remesh_template(
    vertices: Float[np.ndarray, "V 3"],
    faces: Int[np.ndarray, "F 3"],
    statistic: Float[np.ndarray, " F"],
    event_index: int,
    schedule: RemeshSchedule = RemeshSchedule(),
) -> RemeshResult:
    """One remesh event on the template (docs/method.md 7.3): select, split, flip, merge.

    Args:
        vertices: (V, 3) template vertices (metres).
        faces: (F, 3) template faces.
        statistic: (F,) per-face gradient statistic ``acc / cnt`` (0 for faces never seen).
        event_index: k = 0, 1, ... (which point of the schedules to use).
        schedule: quantile and edge-length schedules, the vertex budget, the flips' boundary valence.

    When splitting every candidate edge would exceed ``schedule.max_vertices``, only the longest
    candidates that fit are split, and one line is logged.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    selected = select_faces(statistic, schedule.quantile(event_index))
    vertex_mask = np.zeros(len(vertices), dtype=bool)
    vertex_mask[faces[selected].reshape(-1)] = True
    split = split_candidates(vertices, faces, vertex_mask, schedule.edge_length(event_index))

    n_candidates = int(split.sum())
    room = n_candidates if schedule.max_vertices is None else max(schedule.max_vertices - len(vertices), 0)
    stopped_by_budget = n_candidates > room
    if stopped_by_budget:
        edge_list = unique_edges(faces)
        lengths = np.linalg.norm(vertices[edge_list[:, 0]] - vertices[edge_list[:, 1]], axis=1)
        candidates = np.flatnonzero(split)
        longest = candidates[np.argsort(-lengths[candidates], kind="stable")[:room]]
        split = np.zeros_like(split)
        split[longest] = True
        log.info(
            "remesh event %d: vertex budget %d reached, splitting %d of %d candidate edges",
            event_index, schedule.max_vertices, room, n_candidates,
        )
    new_vertices, new_faces, parents = split_marked_edges(vertices, faces, split)
    new_faces = flip_edges(new_vertices, new_faces, schedule.boundary_valence)
    new_vertices, new_faces, _ = merge_close_vertices(new_vertices, new_faces)
    return RemeshResult(new_vertices, new_faces, len(parents), stopped_by_budget)


# --- 7.4: state transfer (host) -------------------------------------------------------------------


def _idw_weights(old_points: np.ndarray, new_points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (M, k) of the ``k`` nearest old points of each new point and their normalised
    weights (M, k) ``∝ 1 / (d + 1e-10)``."""
    k = min(k, len(old_points))
    distances, indices = cKDTree(np.asarray(old_points, dtype=np.float64)).query(
        np.asarray(new_points, dtype=np.float64), k=k
    )
    distances, indices = distances.reshape(len(new_points), k), indices.reshape(len(new_points), k)
    weights = 1.0 / (distances + IDW_EPSILON)
    return indices, weights / weights.sum(axis=1, keepdims=True)


def _apply_idw(indices: np.ndarray, weights: np.ndarray, values):
    """``sum_i w_i values[idx_i]`` (M, ...) in float64, returned as ``values``' array type and dtype."""
    host = np.asarray(values)
    gathered = host[indices].astype(np.float64)  # (M, k, ...)
    blended = np.einsum("mk,mk...->m...", weights, gathered).astype(host.dtype)
    return blended if isinstance(values, np.ndarray) else jnp.asarray(blended, dtype=values.dtype)


def idw_transfer(
    old_points: Float[np.ndarray, "N 3"], old_values: Float[Any, "N ..."], new_points: Float[np.ndarray, "M 3"], k: int
) -> Float[Any, "M ..."]:
    """Inverse-distance-weighted transfer of per-point values (docs/method.md 7.4).

    Each new point gets ``sum_i w_i old_values[i]`` over its ``k`` nearest old points (a
    ``scipy.spatial.cKDTree`` query), with ``w_i ∝ 1 / (d_i + 1e-10)``; k = 3 for the static
    Jacobians, k = 1 (nearest value, copied exactly) for Adam's moments. Computed in float64.

    Args:
        old_points: (N, 3); old_values: (N, ...) numpy or JAX array; new_points: (M, 3).

    Returns:
        (M, ...) of the same array type (numpy or JAX) and dtype as ``old_values``.
    """
    return _apply_idw(*_idw_weights(old_points, new_points, k), old_values)


def transfer_face_state(
    old_vertices: Float[np.ndarray, "V 3"],
    old_faces: Int[np.ndarray, "F 3"],
    new_vertices: Float[np.ndarray, "V2 3"],
    new_faces: Int[np.ndarray, "F2 3"],
    tree: Any,
    k: int,
) -> Any:
    """Carry per-face state to a remeshed template: every array leaf of ``tree`` whose leading axis
    is F (the old face count) is :func:`idw_transfer`-ed from the old to the new face centroids
    (template space); other leaves (a step count, network weights) are returned untouched.

    Typical uses: ``transfer_face_state(..., jacobians, k=3)`` and, for an optax Adam state over
    the Jacobians, ``transfer_face_state(..., opt_state, k=1)`` (mu and nu move, count stays).
    Pass only the per-face part of a larger state: any leaf with leading axis F is transferred.
    """
    old_faces = np.asarray(old_faces)
    indices, weights = _idw_weights(
        face_centroids(np.asarray(old_vertices, dtype=np.float64), old_faces),
        face_centroids(np.asarray(new_vertices, dtype=np.float64), np.asarray(new_faces)),
        k,
    )

    def transfer(leaf):
        per_face = isinstance(leaf, (np.ndarray, jax.Array)) and leaf.ndim >= 1 and leaf.shape[0] == len(old_faces)
        return _apply_idw(indices, weights, leaf) if per_face else leaf

    return jax.tree_util.tree_map(transfer, tree)
