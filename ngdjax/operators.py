"""Differential operators of a triangle mesh, built on the host in float64 (docs/method.md section 4.1).

- ``hat_gradients``: gradient of each corner's piecewise-linear hat function on its face.
- ``gradient_operator`` G (3F x V), rows blocked like ``igl.grad``:
  ``[d/dx of all faces; d/dy of all faces; d/dz of all faces]``.
- ``face_mass_matrix`` M = diag([2A; 2A; 2A]) (3F x 3F), double face areas.
- ``poisson_matrix`` L = G^T M G (V x V), symmetric positive semi-definite; equals
  -2 x the cotangent Laplacian (``igl.cotmatrix``). Its null space is the constants on each
  connected component.
- ``vertex_mass_matrix``: lumped barycentric vertex areas (as ``igl.massmatrix`` BARYCENTRIC).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ngdjax.mesh import face_cross


def hat_gradients(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-face gradients of the three hat functions, (F, 3 corners, 3 xyz) float64.

    ``grad_phi[f, i] = n_f x e_i / (2 A_f)`` with ``e_i`` the edge opposite corner ``i``,
    oriented counter-clockwise; the three rows of a face sum to zero.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    x = vertices[faces]  # (F, 3, 3)
    cross = face_cross(vertices, faces)
    double_area = np.linalg.norm(cross, axis=-1)
    unit_normal = cross / double_area[:, None]
    opposite_edges = x[:, [2, 0, 1]] - x[:, [1, 2, 0]]  # e_i = x_{i+2} - x_{i+1}
    return np.cross(unit_normal[:, None, :], opposite_edges) / double_area[:, None, None]


def gradient_operator(vertices: np.ndarray, faces: np.ndarray) -> scipy.sparse.csr_matrix:
    """Gradient operator G (3F x V) float64, rows blocked by coordinate as ``igl.grad``."""
    faces = np.asarray(faces)
    n_faces = len(faces)
    grad_phi = hat_gradients(vertices, faces)  # (F, 3, 3) [face, corner, coordinate]
    rows = np.arange(n_faces)[:, None, None] + n_faces * np.arange(3)[None, None, :]
    rows = np.broadcast_to(rows, grad_phi.shape)
    cols = np.broadcast_to(faces[:, :, None], grad_phi.shape)
    return scipy.sparse.csr_matrix(
        (grad_phi.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * n_faces, len(vertices))
    )


def face_mass_matrix(vertices: np.ndarray, faces: np.ndarray) -> scipy.sparse.dia_matrix:
    """M = diag([2A; 2A; 2A]) (3F x 3F) float64: double face areas, one block per coordinate."""
    double_area = np.linalg.norm(face_cross(np.asarray(vertices, dtype=np.float64), faces), axis=-1)
    return scipy.sparse.diags(np.tile(double_area, 3))


def poisson_matrix(vertices: np.ndarray, faces: np.ndarray) -> scipy.sparse.csr_matrix:
    """L = G^T M G (V x V) float64, symmetric positive semi-definite."""
    grad = gradient_operator(vertices, faces)
    return (grad.T @ face_mass_matrix(vertices, faces) @ grad).tocsr()


def vertex_mass_matrix(vertices: np.ndarray, faces: np.ndarray) -> scipy.sparse.dia_matrix:
    """Lumped barycentric vertex mass (V x V) float64: a third of the area of each adjacent face."""
    area = 0.5 * np.linalg.norm(face_cross(np.asarray(vertices, dtype=np.float64), faces), axis=-1)
    lumped = np.bincount(np.asarray(faces).ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(vertices))
    return scipy.sparse.diags(lumped)
