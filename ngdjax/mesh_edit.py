"""Mesh surgery on host arrays (vertices (V, 3) float64, faces (F, 3) int64): cutting along an
isoline, keeping the largest piece, decimating, relaxing, pushing out of a body and orienting away
from it. The garment templates (:mod:`ngdjax.garment`) and the templates derived from a user's
garment (:mod:`ngdjax.derived_template`) are built from these."""

from __future__ import annotations

import igl
import numpy as np
import trimesh

from ngdjax.mesh import boundary_loops, face_areas, vertex_normals


def cut_along_isoline(vertices: np.ndarray, faces: np.ndarray, field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of a mesh where the per-vertex ``field`` (V,) is negative, cut exactly along its
    zero isoline (linear along edges); face orientation kept."""
    negative = field[faces] < 0  # (F, 3)
    count = negative.sum(axis=1)
    edge_list = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    crossing = np.unique(edge_list[(field[edge_list[:, 0]] < 0) != (field[edge_list[:, 1]] < 0)], axis=0)
    a, b = field[crossing[:, 0]], field[crossing[:, 1]]
    t = (a / (a - b))[:, None]
    new_vertices = vertices[crossing[:, 0]] + t * (vertices[crossing[:, 1]] - vertices[crossing[:, 0]])
    lookup = {(int(p), int(q)): len(vertices) + i for i, (p, q) in enumerate(crossing)}

    def on_edge(p, q):
        return np.array([lookup[(min(i, j), max(i, j))] for i, j in zip(p.tolist(), q.tolist(), strict=True)], np.int64)

    pieces = [faces[count == 3]]
    for k in (1, 2):  # one corner kept (a triangle) or two kept (a quad, two triangles)
        odd = negative[count == k] if k == 1 else ~negative[count == k]
        rolled = np.take_along_axis(faces[count == k], (np.arange(3)[None] + np.argmax(odd, axis=1)[:, None]) % 3, axis=1)
        a, b, c = rolled.T
        ab, ca = on_edge(a, b), on_edge(c, a)
        pieces += [np.stack([a, ab, ca], 1)] if k == 1 else [np.stack([ab, b, c], 1), np.stack([ab, c, ca], 1)]
    return np.concatenate([vertices, new_vertices]), np.concatenate(pieces)


def largest_piece(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The connected piece with the most faces, unreferenced vertices dropped."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    piece = max(mesh.split(only_watertight=False), key=lambda m: len(m.faces))
    return np.asarray(piece.vertices, np.float64), np.asarray(piece.faces, np.int64)


def decimate(vertices: np.ndarray, faces: np.ndarray, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Edge-collapse decimation (igl) to about the face count of equilateral triangles of side
    ``edge`` covering the same area; a mesh already that coarse is returned unchanged."""
    target_faces = int(np.sum(face_areas(vertices, faces)) / (np.sqrt(3) / 4 * edge**2))
    if target_faces >= len(faces):
        return vertices, faces
    vertices, faces, _, _ = igl.decimate(np.asfortranarray(vertices), np.asfortranarray(faces, dtype=np.int32), target_faces)
    return np.ascontiguousarray(vertices), np.ascontiguousarray(faces, dtype=np.int64)


def relax(vertices: np.ndarray, faces: np.ndarray, iterations: int, step: float = 0.5) -> np.ndarray:
    """Even out a mesh: interior vertices move towards their neighbours' mean within their tangent
    plane; boundary vertices towards the mean of their two boundary neighbours."""
    adjacency = trimesh.Trimesh(vertices, faces, process=False).vertex_neighbors
    loops = boundary_loops(faces)
    on_boundary = np.zeros(len(vertices), bool)
    on_boundary[np.concatenate(loops)] = True
    for _ in range(iterations):
        normals = vertex_normals(vertices, faces)
        means = np.stack([vertices[n].mean(axis=0) for n in adjacency])
        move = means - vertices
        move -= np.einsum("vi,vi->v", move, normals)[:, None] * normals
        for loop in loops:
            move[loop] = 0.5 * (vertices[np.roll(loop, 1)] + vertices[np.roll(loop, -1)]) - vertices[loop]
        vertices = vertices + step * move
    return vertices


def push_out_of(vertices: np.ndarray, body_vertices: np.ndarray, body_faces: np.ndarray, clearance: float) -> np.ndarray:
    """Vertices closer than ``clearance`` to the body's surface moved straight away from it."""
    distance, _, closest, _ = igl.signed_distance(vertices, body_vertices, body_faces)
    away = (vertices - closest) * np.sign(distance)[:, None]
    away /= np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-12)
    return vertices + np.maximum(clearance - distance, 0.0)[:, None] * away


def faces_away_from(vertices: np.ndarray, faces: np.ndarray, body_vertices: np.ndarray, body_faces: np.ndarray) -> np.ndarray:
    """``faces`` (F, 3), flipped if most vertex normals point towards the body's surface."""
    _, _, closest, _ = igl.signed_distance(vertices, body_vertices, body_faces)
    away = np.einsum("vi,vi->v", vertex_normals(vertices, faces), vertices - closest)
    return np.ascontiguousarray(faces[:, ::-1] if np.mean(away) < 0 else faces)
