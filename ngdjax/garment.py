"""Garment templates in the body's rest pose: load and check a template mesh (:func:`load_template`),
or generate one around a body (:func:`make_template`)."""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import igl
import numpy as np
import scipy.interpolate
import scipy.spatial
import trimesh

from ngdjax.errors import InputError
from ngdjax.mesh import (
    non_manifold_edges,
    validate_mesh,
    vertex_normals,
)
from ngdjax.mesh_edit import cut_along_isoline, decimate, faces_away_from, largest_piece, push_out_of, relax
from ngdjax.procedural import tube_faces

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
    except Exception as error:
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

GARMENT_KINDS = ("tshirt", "skirt", "shorts", "trousers", "leggings")

# Named joints of each body model: Anny bone names, SMPL joint indices (the standard 24-joint order).
_JOINTS = {
    "anny": {"left_hip": "upperleg01.L", "right_hip": "upperleg01.R", "left_knee": "lowerleg01.L",
             "right_knee": "lowerleg01.R", "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
             "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R", "neck": "neck01",
             "left_ankle": "foot.L", "right_ankle": "foot.R"},
    "smpl": {"left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_shoulder": 16,
             "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "neck": 12, "left_ankle": 7,
             "right_ankle": 8},
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
    - ``tshirt``: short sleeves, open at the neck, the waist and both cuffs (four boundary
      loops): the body's offset surface at ``offset`` (marching cubes of its distance field),
      cut along smooth curves (a plane at the waist, a tilted plane round the neck, planes across
      the upper arms), decimated to the target edge length and relaxed (see :func:`_tshirt`).
    - ``shorts``, ``trousers``, ``leggings``: two-legged garments made the t-shirt's way (see
      :func:`_legwear`): the body's offset surface from a waist plane (the skirt's top) down to a
      plane across each leg: shorts at mid-thigh, trousers just above the ankle, leggings at
      mid-calf. Three boundary loops (waist, two leg openings). Their clearance is ``offset``
      times :data:`LEGWEAR_FIT`: shorts 1 (1.5 cm at the default), trousers 5/3 (loose, 2.5 cm),
      leggings 0.4 (tight, 0.6 cm).

    Sizes come from the body's joints and surface, so any body model works. Faces are oriented
    with normals pointing away from the body.

    Args:
        kind: one of :data:`GARMENT_KINDS`.
        body: a :class:`ngdjax.body.model.Body`; shape: its shape parameters (empty for Anny).
        target_edge_length: desired mean edge length in metres (e.g. 0.015 gives about 3k
            vertices for a skirt).
        offset: clearance from the skin in metres (scaled per kind for legwear, see above).

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
    build = {"skirt": _skirt, "tshirt": _tshirt}.get(kind)
    if build is None:
        vertices, faces = _legwear(kind, frame, body, float(target_edge_length), float(offset))
    else:
        vertices, faces = build(frame, body, float(target_edge_length), float(offset))
    vertices = frame.to_world(vertices)
    validate_mesh(vertices, faces, name=f"generated {kind}")
    return vertices, faces


SKIRT_TOP = 0.2  # waistband height above the hip joints, as a fraction of the hip-to-shoulder height
SKIRT_HEM = 0.1  # hem height above the knees, as a fraction of the knee-to-hip height
SKIRT_FLARE = 0.25  # extra hem radius, as a fraction of the skirt's length


def _mean_height(joints: dict, name: str) -> float:
    """Mean height (body z) of the left and right joints ``name`` (e.g. "hip")."""
    return 0.5 * (joints[f"left_{name}"][2] + joints[f"right_{name}"][2])


def _along_limb(joints: dict, side: str, upper: str, lower: str, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The point ``fraction`` of the way from joint ``upper`` to ``lower`` on ``side`` (body
    coordinates), and the limb's unit direction there."""
    start, end = joints[f"{side}_{upper}"], joints[f"{side}_{lower}"]
    return start + fraction * (end - start), _unit(end - start)


def _skirt(frame: BodyFrame, body, edge: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Skirt in body coordinates (see :func:`make_template`). Rings are spaced in proportion to
    their circumference, so the grid's cells are close to square from waistband to hem."""
    joints = frame.joints
    hip = _mean_height(joints, "hip")
    knee = 0.5 * (joints["left_knee"][2] + joints["right_knee"][2])
    shoulder = _mean_height(joints, "shoulder")
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
    # rings go down (-z), angles counter-clockwise seen from above: normals point outwards
    return rings.reshape(-1, 3), tube_faces(n_rings, n_around)


def _polar(radius: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Points (..., A, 2) at ``radius`` (..., A) along directions ``angles`` (A,)."""
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], -1)


TSHIRT_HEM = 0.12  # hem height above the hip joints, as a fraction of the hip-to-shoulder height
TSHIRT_SLEEVE = 0.55  # sleeve length, as a fraction of the shoulder-to-elbow distance
TSHIRT_NECK_DROP = 0.03  # the neckline's depth below the neck joint at the back (metres)
TSHIRT_NECK_SLOPE = 0.5  # how much lower the neckline is in front (metres per metre forward)
TSHIRT_NECK_REACH = 0.12  # the neck cut only acts this close to the neck's axis (metres)


def _tshirt(frame: BodyFrame, body, edge: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """T-shirt in body coordinates (see :func:`make_template`).

    1. The offset surface: marching cubes of (signed distance to the body - ``offset``) on a grid
       of spacing ``edge / 2`` around the torso and upper arms (exact distances near the surface,
       winding-number signs farther away).
    2. Cuts where a smooth field is positive: below the hem plane; above a tilted plane near the
       neck's axis; beyond a plane across each upper arm, on surface parts nearest to that arm.
       The largest remaining piece is the shirt.
    3. Edge-collapse decimation to the target edge length (igl), tangential relaxation, and a
       push out to at least ``offset`` from the skin.
    """
    joints = frame.joints
    hip = _mean_height(joints, "hip")
    shoulder = _mean_height(joints, "shoulder")
    hem = hip + TSHIRT_HEM * (shoulder - hip)
    cuffs = {side: _along_limb(joints, side, "shoulder", "elbow", TSHIRT_SLEEVE) for side in ("left", "right")}
    body_faces = np.asarray(body.triangles, np.int64)
    low = np.array([frame.vertices[:, 0].min(), cuffs["right"][0][1], hem]) - 0.08
    high = np.array([frame.vertices[:, 0].max(), cuffs["left"][0][1], joints["neck"][2]]) + 0.08

    def cut(vertices):
        nearest_arm = frame.arm_weight[scipy.spatial.cKDTree(frame.vertices).query(vertices)[1]] > 0.5
        field = hem - vertices[:, 2]
        for centre, direction in cuffs.values():
            on_arm = nearest_arm & (np.sign(vertices[:, 1]) == np.sign(centre[1]))
            field = np.maximum(field, np.where(on_arm, (vertices - centre) @ direction, -np.inf))
        neck = joints["neck"]
        neckline = vertices[:, 2] - (neck[2] - TSHIRT_NECK_DROP) + TSHIRT_NECK_SLOPE * (vertices[:, 0] - neck[0])
        reach = TSHIRT_NECK_REACH - np.linalg.norm(vertices[:, :2] - neck[:2], axis=1)
        return np.maximum(field, np.minimum(neckline, reach))

    return _cut_offset_surface(frame, body_faces, edge, offset, (low, high), cut)


# Legwear: kind -> (hem joints, fraction of the way from the first joint to the second, clearance
# as a multiple of make_template's offset).
LEGWEAR_FIT = {
    "shorts": (("hip", "knee"), 0.5, 1.0),  # mid-thigh, medium fit
    "trousers": (("knee", "ankle"), 0.9, 5.0 / 3.0),  # just above the ankle, loose
    "leggings": (("knee", "ankle"), 0.55, 0.4),  # mid-calf, tight
}


def _legwear(kind: str, frame: BodyFrame, body, edge: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Shorts, trousers or leggings in body coordinates (see :func:`make_template`): the body's
    offset surface (as :func:`_tshirt`) at ``offset * LEGWEAR_FIT[kind][2]``, cut above the
    skirt's waist plane and, on each side (by the sign of y), beyond a plane across the leg
    through the hem point, normal to the leg bone there."""
    (upper, lower), fraction, fit = LEGWEAR_FIT[kind]
    joints = frame.joints
    hip = _mean_height(joints, "hip")
    shoulder = _mean_height(joints, "shoulder")
    top = hip + SKIRT_TOP * (shoulder - hip)
    hems = {side: _along_limb(joints, side, upper, lower, fraction) for side in ("left", "right")}
    bottom = min(centre[2] for centre, _ in hems.values()) - 0.05
    trunk = frame.vertices[(frame.arm_weight < 0.5) & (frame.vertices[:, 2] >= bottom) & (frame.vertices[:, 2] <= top)]
    low = np.array([*trunk[:, :2].min(axis=0), bottom]) - 0.08
    high = np.array([*trunk[:, :2].max(axis=0), top]) + 0.08

    def cut(vertices):
        field = vertices[:, 2] - top
        for centre, direction in hems.values():
            same_side = np.sign(vertices[:, 1]) == np.sign(centre[1])
            field = np.maximum(field, np.where(same_side, (vertices - centre) @ direction, -np.inf))
        return field

    body_faces = np.asarray(body.triangles, np.int64)
    vertices, faces = _cut_offset_surface(frame, body_faces, edge, offset * fit, (low, high), cut)
    return push_in_front(vertices, frame.vertices, vertex_normals(frame.vertices, body_faces), LEGWEAR_FRONT * offset * fit,
                         rounds=2), faces


LEGWEAR_FRONT = 0.75  # legwear vertices lie at least this fraction of their clearance in front of the skin's vertices


def push_in_front(points: np.ndarray, body_vertices: np.ndarray, body_normals: np.ndarray, clearance: float,
                  rounds: int = 1) -> np.ndarray:
    """(V, 3) ``points`` moved along the normal of their nearest body vertex until they lie at
    least ``clearance`` in front of its tangent plane; each of ``rounds`` passes looks the nearest
    vertex up again (a garment must not sink into the skin; over coarse body triangles a point
    ``offset`` from the surface can be closer than that to a nearby vertex's tangent plane).

    Args:
        points: (V, 3). body_vertices, body_normals: (N, 3) the body and its vertex normals.
    """
    tree = scipy.spatial.cKDTree(body_vertices)
    for _ in range(rounds):
        nearest = tree.query(points)[1]
        in_front = np.einsum("vi,vi->v", points - body_vertices[nearest], body_normals[nearest])
        points = points + np.maximum(clearance - in_front, 0.0)[:, None] * body_normals[nearest]
    return points


def _cut_offset_surface(frame: BodyFrame, body_faces: np.ndarray, edge: float, offset: float, box, cut):
    """The body's offset surface at ``offset`` inside ``box`` = (low (3,), high (3,)), cut where
    ``cut(vertices (V, 3)) -> (V,)`` is positive, largest piece kept, decimated to the target edge
    length, relaxed, pushed out to at least ``offset`` and oriented away from the body.
    Returns vertices (V, 3) and faces (F, 3) in body coordinates."""
    vertices, faces = _offset_surface(frame.vertices, body_faces, offset, *box, edge / 2)
    vertices, faces = largest_piece(*cut_along_isoline(vertices, faces, cut(vertices)))
    vertices, faces = decimate(vertices, faces, edge)
    vertices = relax(vertices, faces, iterations=3)
    vertices = push_out_of(vertices, frame.vertices, body_faces, offset)
    return vertices, faces_away_from(vertices, faces, frame.vertices, body_faces)


def _offset_surface(body_vertices, body_faces, offset, low, high, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes mesh of {x : signed distance to the body = offset} in the box [low, high]."""
    counts = np.ceil((high - low) / spacing).astype(int) + 1
    axes = [low[i] + spacing * np.arange(counts[i]) for i in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")  # x fastest, as igl expects
    points = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    approximate, _ = scipy.spatial.cKDTree(body_vertices).query(points)
    near = approximate < offset + 2 * spacing + 0.01
    distance = np.empty(len(points))
    distance[near] = igl.signed_distance(points[near], body_vertices, body_faces)[0]
    inside = igl.fast_winding_number(body_vertices, body_faces, points[~near]) > 0.5
    distance[~near] = np.where(inside, -1.0, 1.0)
    vertices, faces, _ = igl.marching_cubes(distance - offset, points, *[int(n) for n in counts])
    return vertices, faces


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
