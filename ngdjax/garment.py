"""Garment templates: load and check a template mesh given in the body's rest pose."""

from __future__ import annotations

import logging
import os

import numpy as np
import trimesh

from ngdjax.errors import InputError
from ngdjax.mesh import non_manifold_edges, validate_mesh

log = logging.getLogger("ngdjax")

SANE_DIAGONAL_M = (0.05, 5.0)  # a garment's bounding-box diagonal in metres


def load_template(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a garment template mesh (.obj, .ply, ...) and check it before any computation.

    Checks: the file exists and holds one triangle mesh; finite vertices, valid faces, no
    zero-area faces (:func:`ngdjax.mesh.validate_mesh`); a bounding-box diagonal within
    :data:`SANE_DIAGONAL_M` (templates are in metres, in the body's rest pose). Non-manifold
    edges are reported in the log (they hinder antialiasing and remeshing) but allowed.
    Polygons are triangulated by trimesh on load. Vertices are kept in file order.

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64.

    Raises:
        InputError: naming the file and every problem found.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: garment template not found")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # noqa: BLE001 - any parser failure is a bad file for the user
        raise InputError(f"{path}: could not be read as a mesh ({error})") from error
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    if len(faces) == 0:
        raise InputError(f"{path}: holds no triangles")
    validate_mesh(vertices, faces, name=path)
    diagonal = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    low, high = SANE_DIAGONAL_M
    if not low <= diagonal <= high:
        hint = " (centimetres or millimetres? templates are in metres)" if diagonal > high else ""
        raise InputError(f"{path}: bounding-box diagonal is {diagonal:.4g}, expected {low}-{high} m{hint}")
    bad_edges = non_manifold_edges(faces)
    if len(bad_edges):
        log.warning("%s: %d non-manifold edges, e.g. %s", path, len(bad_edges), bad_edges[:3].tolist())
    return vertices, faces
