"""Triangle-mesh geometry and topology.

Geometry (normals, areas, centroids) runs on numpy arrays on the host (keeping float64, for
operator construction) and on JAX arrays inside ``jax.jit`` (posed meshes): each function uses the
array module of its input. Topology (edges, boundary loops,
components) is host-side numpy: it changes only when the mesh is remeshed.

Conventions: ``vertices`` (V, 3) float, ``faces`` (F, 3) int with counter-clockwise corners seen
from the side the normal points to. Garments are open meshes: boundary loops are expected.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp
import scipy.sparse
import scipy.sparse.csgraph
from jaxtyping import Array, Float, Int

from ngdjax.errors import InputError


def _xp(array):
    """The array module of ``array``: numpy for host arrays, jax.numpy otherwise."""
    return np if isinstance(array, np.ndarray) else jnp


def face_cross(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "F 3"]:
    """Unnormalised face normals ``(x1 - x0) x (x2 - x0)``; their length is twice the face area."""
    x0, x1, x2 = (vertices[faces[:, i]] for i in range(3))
    return _xp(vertices).cross(x1 - x0, x2 - x0)


def face_areas(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "F"]:
    """Face areas (F,)."""
    return 0.5 * _xp(vertices).linalg.norm(face_cross(vertices, faces), axis=-1)


def face_normals(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], eps: float = 1e-12
) -> Float[Array, "F 3"]:
    """Unit face normals (F, 3); a degenerate face gets a zero normal instead of NaN."""
    xp = _xp(vertices)
    cross = face_cross(vertices, faces)
    return cross / xp.maximum(xp.linalg.norm(cross, axis=-1, keepdims=True), eps)


def face_centroids(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]) -> Float[Array, "F 3"]:
    """Face centroids (F, 3)."""
    return vertices[faces].mean(axis=1)


def vertex_normals(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], eps: float = 1e-6
) -> Float[Array, "V 3"]:
    """Area-weighted unit vertex normals (V, 3): the sum of the unnormalised cross products of the
    faces around each vertex, normalised (as docs/method.md section 5.1)."""
    xp = _xp(vertices)
    corner_values = xp.repeat(face_cross(vertices, faces), 3, axis=0)
    if xp is np:
        summed = np.zeros_like(vertices)
        np.add.at(summed, faces.reshape(-1), corner_values)
    else:
        summed = jnp.zeros_like(vertices).at[faces.reshape(-1)].add(corner_values)
    return summed / xp.maximum(xp.linalg.norm(summed, axis=-1, keepdims=True), eps)


def edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges (E, 2), each sorted so that ``e[0] < e[1]``, in lexicographic order."""
    directed = np.asarray(faces)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    return np.unique(np.sort(directed, axis=1), axis=0)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Directed boundary edges (B, 2): half-edges ``(a, b)`` of a face whose twin ``(b, a)`` is
    missing. Following them walks each boundary loop with the surface on the left."""
    directed = np.asarray(faces)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    undirected = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    return directed[counts[inverse.reshape(-1)] == 1]


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Boundary loops as ordered vertex-index arrays, longest first.

    Raises:
        InputError: if the boundary is not a set of simple loops (a vertex where two boundary
            loops touch, i.e. a non-manifold "bow-tie" vertex).
    """
    half_edges = boundary_edges(faces)
    starts, counts = np.unique(half_edges[:, 0], return_counts=True)
    if np.any(counts > 1):
        raise InputError(
            f"mesh: {int(np.sum(counts > 1))} boundary vertices are shared by several boundary loops "
            f"(non-manifold), e.g. vertex {int(starts[counts > 1][0])}"
        )
    successor = dict(zip(half_edges[:, 0].tolist(), half_edges[:, 1].tolist()))
    loops = []
    while successor:
        start, nxt = successor.popitem()
        loop = [start]
        while nxt != start:
            loop.append(nxt)
            nxt = successor.pop(nxt)
        loops.append(np.asarray(loop, dtype=np.int64))
    return sorted(loops, key=len, reverse=True)


def connected_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Component label per vertex (V,) int, through shared edges; labels are 0..C-1."""
    e = edges(faces)
    adjacency = scipy.sparse.coo_matrix(
        (np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices)
    )
    _, labels = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
    return labels


def non_manifold_edges(faces: np.ndarray) -> np.ndarray:
    """Undirected edges (K, 2) shared by more than two faces."""
    undirected = np.sort(np.asarray(faces)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, counts = np.unique(undirected, axis=0, return_counts=True)
    return unique[counts > 2]


def validate_mesh(vertices, faces, name: str = "mesh", min_area: float = 1e-14) -> None:
    """Check a triangle mesh before any computation and report every problem at once.

    Checks: vertices (V, 3) finite; faces (F, 3) integer triangles that index existing vertices;
    no zero-area faces; every vertex used by some face.

    Args:
        vertices: (V, 3) array-like.
        faces: (F, 3) array-like of integers.
        name: what to call the mesh in messages (e.g. its file name).
        min_area: faces with area <= this (in squared mesh units) count as degenerate.

    Raises:
        InputError: one line per problem, naming ``name``, the count and the first offending indices.
    """
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    problems = []
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        problems.append(f"{name}: vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        problems.append(
            f"{name}: faces must be triangles with shape (F, 3), got {faces.shape}"
            + (" (quads or polygons: triangulate first)" if faces.ndim == 2 and faces.shape[1] > 3 else "")
        )
    if problems:
        raise InputError(*problems)
    if not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"{name}: faces must be integers, got dtype {faces.dtype}")
    if len(faces) == 0:
        raise InputError(f"{name}: has no faces")
    bad_vertices = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if len(bad_vertices):
        problems.append(f"{name}: {len(bad_vertices)} vertices are NaN/inf, e.g. {_first(bad_vertices)}")
    out_of_range = np.flatnonzero(((faces < 0) | (faces >= len(vertices))).any(axis=1))
    if len(out_of_range):
        problems.append(
            f"{name}: {len(out_of_range)} faces index missing vertices (valid 0..{len(vertices) - 1}), "
            f"e.g. faces {_first(out_of_range)}"
        )
    if not problems:
        areas = face_areas(vertices.astype(np.float64), faces)
        degenerate = np.flatnonzero(areas <= min_area)
        if len(degenerate):
            problems.append(f"{name}: {len(degenerate)} degenerate (zero-area) faces, e.g. {_first(degenerate)}")
        unused = np.setdiff1d(np.arange(len(vertices)), faces)
        if len(unused):
            problems.append(f"{name}: {len(unused)} vertices are used by no face, e.g. {_first(unused)}")
    if problems:
        raise InputError(*problems)


def _first(indices: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:n])
    return f"[{shown}{', ...' if len(indices) > n else ''}]"
