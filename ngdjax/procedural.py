"""Procedural surfaces for tests, benchmarks and examples: a sphere, a flat grid, an open cylinder
and a garment-like open surface with four boundary loops, each sized by an approximate vertex count.

All are clean, consistently oriented triangle meshes in metres (a torso-sized scale).
"""

from __future__ import annotations

import numpy as np
import trimesh


def sphere(subdivisions: int = 3, radius: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Closed icosphere: vertices (V, 3) float64, faces (F, 3) int64 (V = 10 * 4^s + 2)."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def flat_grid(
    n: int = 3, jitter: float = 0.0, seed: int = 0, alternate_diagonals: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Flat n x n vertex grid on [0, 1]^2 (z = 0), normals +z, each square cut along alternating
    diagonals (or all along the same one); interior vertices moved in the plane by up to
    ``jitter`` (seeded). Vertices (n^2, 3) float64, faces (2 (n-1)^2, 3) int64."""
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="xy")
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1)
    interior = (vertices[:, :2] > 0) & (vertices[:, :2] < 1)
    vertices[:, :2] += jitter * interior * np.random.default_rng(seed).uniform(-1, 1, (n * n, 2))
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            along_ad = (i + j) % 2 == 0 or not alternate_diagonals
            faces += [[a, b, d], [a, d, c]] if along_ad else [[a, b, c], [b, d, c]]
    return vertices, np.asarray(faces)


def _grid_cylinder(n_around: int, n_along: int, radius, height: float):
    """Open tube of ``n_along`` vertex rings with ``n_around`` vertices each, alternating diagonals.

    ``radius`` is a function of the normalised height t in [0, 1]. Returns vertices, faces and the
    per-face (ring, column) cell index.
    """
    t = np.linspace(0.0, 1.0, n_along)
    angle = 2 * np.pi * np.arange(n_around) / n_around
    r = radius(t)[:, None]
    y = np.broadcast_to(height * (t[:, None] - 0.5), (n_along, n_around))
    vertices = np.stack([r * np.cos(angle), y, r * np.sin(angle)], axis=-1).reshape(-1, 3)
    ring, col = np.meshgrid(np.arange(n_along - 1), np.arange(n_around), indexing="ij")
    cells = np.repeat(np.stack([ring, col], -1).reshape(-1, 2), 2, axis=0)
    return vertices, tube_faces(n_along, n_around), cells


def tube_faces(n_rings: int, n_around: int) -> np.ndarray:
    """Faces (2 (R - 1) A, 3) int64 of a structured tube of R rings of A vertices (vertex r A + a),
    two triangles per cell with alternating diagonals, cells in (ring, column) order."""
    ring, col = np.meshgrid(np.arange(n_rings - 1), np.arange(n_around), indexing="ij")
    a = ring * n_around + col
    b = ring * n_around + (col + 1) % n_around
    c, d = a + n_around, b + n_around
    flip = ((ring + col) % 2 == 0)[..., None]
    first = np.where(flip, np.stack([a, c, b], -1), np.stack([a, c, d], -1))
    second = np.where(flip, np.stack([b, c, d], -1), np.stack([a, d, b], -1))
    return np.stack([first, second], axis=2).reshape(-1, 3).astype(np.int64)


def open_cylinder(n_vertices: int = 1000, radius: float = 0.15, height: float = 0.5):
    """Open tube with two boundary loops: vertices (V, 3), faces (F, 3); V close to ``n_vertices``."""
    n_around, n_along = _grid_shape(n_vertices, 2 * np.pi * radius, height)
    vertices, faces, _ = _grid_cylinder(n_around, n_along, lambda t: np.full_like(t, radius), height)
    return vertices, faces


def garment(n_vertices: int = 2000, height: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """A sleeveless-shirt-like open surface with four boundary loops (neck, waist, two armholes).

    A tube with a torso-like radius profile, flattened front-to-back, with two elliptical
    armholes cut on its sides. Returns vertices (V, 3) float64 (V close to ``n_vertices``, without
    the removed armhole vertices) and faces (F, 3) int64.
    """
    profile = lambda t: 0.15 + 0.03 * np.sin(np.pi * t) - 0.04 * t**2
    n_around, n_along = _grid_shape(n_vertices * 1.08, 2 * np.pi * 0.16, height)
    vertices, faces, cells = _grid_cylinder(n_around, n_along, profile, height)
    vertices[:, 2] *= 0.7
    # Cut an elliptical hole on each side (angles 0 and pi) in the upper part.
    t_cell = (cells[:, 0] + 0.5) / (n_along - 1)
    angle_cell = 2 * np.pi * (cells[:, 1] + 0.5) / n_around
    keep = np.ones(len(faces), dtype=bool)
    for side in (0.0, np.pi):
        d_angle = np.angle(np.exp(1j * (angle_cell - side)))
        keep &= (d_angle / 0.45) ** 2 + ((t_cell - 0.72) / 0.14) ** 2 > 1.0
    mesh = trimesh.Trimesh(vertices, faces[keep], process=False)
    mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _grid_shape(n_vertices: float, circumference: float, height: float) -> tuple[int, int]:
    """Grid size (around, along) with about ``n_vertices`` vertices and near-square cells."""
    n_around = max(8, int(round(np.sqrt(n_vertices * circumference / height))))
    n_along = max(3, int(round(n_vertices / n_around)))
    return n_around, n_along
