"""Opposite-vertex table for ``antialias`` (docs/render.md section 5.1), host numpy.

``opp[t, k]`` is the vertex of the neighbouring triangle across edge k of triangle t, or -1. Edge k
is the edge that does not contain corner k: it runs from ``tris[t, (k+1) % 3]`` to
``tris[t, (k+2) % 3]``.

The rule is nvdiffrast's edge hash made deterministic. Every valid triangle (indices >= 0, below
``n_vertices`` when given, pairwise distinct) inserts, for each edge {a, b}, its own third vertex.
Insertion order is triangle index, then k. Each edge keeps the first two *distinct* third
vertices inserted (nvdiffrast keeps the first two too, but in a GPU-race order). The query for
triangle t with own third vertex r returns the other kept value when one kept value equals r, and
-1 otherwise. Consequences:

- boundary edge: -1;
- manifold interior edge: the neighbour's third vertex;
- duplicated face (two faces with the same three vertices): -1 on the edges that only they
  share, since the one third vertex is stored once;
- non-manifold edge: the two lowest-index triangles with distinct third vertices see each other;
  every other triangle on that edge gets -1 (or, if its third vertex equals a kept one, i.e. it
  duplicates a kept face across that edge, the other kept vertex);
- invalid triangles get -1 on all three edges and insert nothing.
"""

from __future__ import annotations

import numpy as np


def antialias_topology(tris: np.ndarray, n_vertices: int | None = None) -> np.ndarray:
    """Opposite vertex across every triangle edge, for ``antialias``.

    Args:
        tris: (F, 3) integer vertex indices (any integer dtype). Shared vertices are required:
            triangles that do not share indices never see each other as neighbours.
        n_vertices: V; when given, triangles with an index >= V count as invalid.

    Returns:
        (F, 3) int32: ``opp[t, k]`` = the vertex opposite edge k of triangle t in the neighbouring
        triangle, or -1 (boundary, duplicated face, dropped non-manifold neighbour, invalid
        triangle). See the module docstring for the exact rule.
    """
    tris = np.asarray(tris, dtype=np.int64).reshape(-1, 3)
    n_faces = len(tris)
    opposite = np.full((n_faces, 3), -1, dtype=np.int32)
    valid = _valid_triangles(tris, n_vertices)
    if not np.any(valid):
        return opposite
    # One entry per (valid triangle, edge k), in insertion order: triangle index, then k.
    face_index = np.repeat(np.flatnonzero(valid), 3)
    corner = np.tile(np.arange(3), int(np.sum(valid)))
    third = tris[face_index, corner]
    a = tris[face_index, (corner + 1) % 3]
    b = tris[face_index, (corner + 2) % 3]
    _, edge_id = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0, return_inverse=True)
    edge_id = edge_id.reshape(-1)
    kept_first, kept_second = _first_two_distinct_thirds(edge_id, third)
    other = np.where(
        kept_first[edge_id] == third,
        kept_second[edge_id],
        np.where(kept_second[edge_id] == third, kept_first[edge_id], -1),
    )
    opposite[face_index, corner] = other
    return opposite


def _valid_triangles(tris: np.ndarray, n_vertices: int | None) -> np.ndarray:
    """(F,) bool: all indices in range and pairwise distinct."""
    in_range = np.all(tris >= 0, axis=1)
    if n_vertices is not None:
        in_range &= np.all(tris < n_vertices, axis=1)
    distinct = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 2] != tris[:, 0])
    return in_range & distinct


def _first_two_distinct_thirds(edge_id: np.ndarray, third: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per edge, the first and second distinct third vertex in entry order (-1 where missing).

    Args:
        edge_id: (N,) int, edge of each entry, in 0..E-1; entries are in insertion order.
        third: (N,) int, the inserting triangle's third vertex.

    Returns:
        Two (E,) int64 arrays.
    """
    n_edges = int(edge_id.max()) + 1
    # First occurrence of each distinct (edge, third) pair: its entry position is its insertion time.
    pairs = np.stack([edge_id, third], axis=1)
    unique_pairs, first_entry = np.unique(pairs, axis=0, return_index=True)
    # Order the distinct pairs by (edge, insertion time) and rank them within each edge.
    order = np.lexsort((first_entry, unique_pairs[:, 0]))
    edges_sorted, thirds_sorted = unique_pairs[order, 0], unique_pairs[order, 1]
    group_start = np.searchsorted(edges_sorted, edges_sorted, side="left")
    rank = np.arange(len(order)) - group_start
    kept_first = np.full(n_edges, -1, dtype=np.int64)
    kept_second = np.full(n_edges, -1, dtype=np.int64)
    kept_first[edges_sorted[rank == 0]] = thirds_sorted[rank == 0]
    kept_second[edges_sorted[rank == 1]] = thirds_sorted[rank == 1]
    return kept_first, kept_second
