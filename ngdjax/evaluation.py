"""Per-frame evaluation of fitted meshes against a sequence (metrics of ngdjax/metrics.py).

Geometry metrics against the sequence's ground-truth meshes, on the frames that have one (the
others are named in one log line), and the mask IoU
of each mesh's silhouette, rendered with the sequence's camera at its resolution (the method's
silhouette: covered and front-facing, antialiased, thresholded at 0.5), against the garment mask
with occluder pixels ignored.

Given the body model, also the seen/unseen split of the geometry metrics
(:func:`ngdjax.metrics.geometry_metrics` with ``gt_seen``): per evaluated frame with a ground-truth mesh,
the truth faces visible from that frame's camera with the body posed by that frame's parameters
occluding (:func:`ngdjax.visibility.visible_faces`, one rasterisation of body + truth per frame
at the sequence's resolution); a face is *seen* when visible in at least one of those frames.
When the truth meshes do not all share one topology, each frame's seen faces are its own
visible faces (logged once).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from ngdjax.body.model import Body, body_vertices
from ngdjax.data.loader import Sequence
from ngdjax.errors import InputError
from ngdjax.io import read_mesh
from ngdjax.metrics import (
    GEOMETRY_METRICS,
    N_SAMPLES,
    SPLIT_METRICS,
    geometry_metrics,
    mask_iou,
    summarise,
)
from ngdjax.render.backend import Renderer, get_renderer, jit_where_possible
from ngdjax.render.shading import render_geometry
from ngdjax.render.topology import antialias_topology
from ngdjax.visibility import seen_faces, visible_faces

log = logging.getLogger("ngdjax")

Mesh = tuple[Float[np.ndarray, "V 3"], Int[np.ndarray, "F 3"]]


@functools.cache
def silhouette_renderer(renderer: Renderer, resolution: tuple[int, int]) -> Callable:
    """``render(vertices (V, 3), tris (F, 3) int32, topology (F, 3), mv (4, 4), proj (4, 4)) ->
    silhouette (H, W)`` float32, jitted where the backend allows; one function per backend and
    resolution for the whole process, so each mesh size compiles once."""

    def render(vertices, tris, topology, mv, proj):
        return render_geometry(renderer, vertices, tris, topology, mv, proj, resolution).silhouette[0]

    return jit_where_possible(renderer, render)


def ground_truth_paths(sequence: Sequence, frames: list[int]) -> dict[int, str]:
    """Frame index -> ground-truth mesh file for those of ``frames`` that have one; when the
    sequence has ground truth but some of ``frames`` lack it, one log line names them."""
    if sequence.gt_mesh_paths is None:
        return {}
    paths = dict(zip(sequence.frames, sequence.gt_mesh_paths, strict=True))
    skipped = [frame for frame in frames if paths[frame] is None]
    if skipped:
        log.warning("%s: no ground-truth mesh for %d frame(s) %s%s; geometry metrics use the other %d",
                    sequence.directory, len(skipped), skipped[:10], " ..." if len(skipped) > 10 else "",
                    len(frames) - len(skipped))
    return {frame: paths[frame] for frame in frames if paths[frame] is not None}


class GroundTruth(NamedTuple):
    """A sequence's ground truth for some frames, read once for every set of meshes scored
    against it: ``meshes`` frame index -> (vertices, faces); ``seen`` frame index -> (F,) bool
    seen flags of that frame's truth faces (empty without a body: no seen/unseen split)."""

    meshes: dict[int, Mesh]
    seen: dict[int, np.ndarray]


def load_ground_truth(sequence: Sequence, frames: list[int], body: Body | None = None,
                      renderer: Renderer | None = None) -> GroundTruth:
    """The ground-truth meshes of those of ``frames`` that have one (the others named in one log
    line), and, given the body model, their seen faces (:func:`truth_seen_faces`)."""
    meshes = {frame: read_mesh(path) for frame, path in ground_truth_paths(sequence, sorted(frames)).items()}
    seen = truth_seen_faces(meshes, sequence, body, renderer) if meshes and body is not None else {}
    return GroundTruth(meshes, seen)


def truth_seen_faces(
    truth_meshes: dict[int, Mesh], sequence: Sequence, body: Body, renderer: Renderer | None = None
) -> dict[int, np.ndarray]:
    """Frame index -> (F,) bool seen flags of that frame's truth faces (module docstring): the
    faces visible in at least one of the given frames, or, when the truth meshes' faces differ
    between frames, in that frame."""
    renderer = renderer or get_renderer("jax")
    position = {frame: i for i, frame in enumerate(sequence.frames)}
    body_faces = np.asarray(body.triangles, np.int32)
    visible = {}
    for frame, (vertices, faces) in sorted(truth_meshes.items()):
        i = position[frame]
        posed = _posed_body(body, *(jnp.asarray(a[i], jnp.float32) for a in (
            sequence.shape, sequence.pose, sequence.global_rotation, sequence.translation)))
        visible[frame] = visible_faces(vertices, faces, np.asarray(posed), body_faces, sequence.mv[i], sequence.proj[i],
                                       sequence.resolution, renderer)
    faces = [mesh[1] for mesh in truth_meshes.values()]
    if all(f.shape == faces[0].shape and np.array_equal(f, faces[0]) for f in faces[1:]):
        seen = seen_faces(np.stack(list(visible.values())))
        return {frame: seen for frame in visible}
    log.warning("%s: the ground-truth meshes do not share one topology; seen/unseen faces are per frame",
                sequence.directory)
    return visible


_posed_body = jax.jit(body_vertices)


def evaluate_meshes(
    meshes: dict[int, Mesh],
    sequence: Sequence,
    renderer: Renderer | None = None,
    n_samples: int = N_SAMPLES,
    seed: int = 0,
    truth: GroundTruth | None = None,
) -> dict[str, dict]:
    """Metrics of world-space meshes, one per frame index, against ``sequence``.

    Args:
        meshes: frame index -> (vertices (V, 3), faces (F, 3)); frames must be the sequence's.
        sequence: the loaded sequence (:func:`ngdjax.data.loader.load_sequence`).
        renderer: render backend; the pure-JAX one by default.
        n_samples, seed: surface samples per mesh for the geometry metrics.
        truth: the sequence's ground truth for these frames (:func:`load_ground_truth`, which is
            called without a body when not given); when it holds seen faces, the seen/unseen
            split is added.

    Returns:
        :func:`ngdjax.metrics.summarise` of ``mask_iou`` and, when some evaluated frame has a
        ground-truth mesh, ``chamfer_x1e3``, ``normal_consistency`` and ``fscore_1cm`` over
        those frames (the frames without one are logged), and with seen faces the
        :data:`ngdjax.metrics.SPLIT_METRICS` (a class empty in a frame is skipped there).

    Raises:
        InputError: a frame that the sequence does not have.
    """
    position = {frame: i for i, frame in enumerate(sequence.frames)}
    unknown = sorted(set(meshes) - set(position))
    if unknown:
        raise InputError(f"{sequence.directory}: has no frames {unknown} (its frames: {sequence.frames})")
    renderer = renderer or get_renderer("jax")
    render = silhouette_renderer(renderer, sequence.resolution)
    truth = load_ground_truth(sequence, list(meshes)) if truth is None else truth
    names = (GEOMETRY_METRICS if truth.meshes else ()) + (SPLIT_METRICS if truth.seen else ()) + ("mask_iou",)
    per_frame = {name: {} for name in names}
    last_faces, topology, jobs = None, None, {}
    for frame in sorted(meshes):
        vertices, faces = meshes[frame]
        i = position[frame]
        if last_faces is None or not np.array_equal(faces, last_faces):
            last_faces, topology = faces, jnp.asarray(antialias_topology(faces, len(vertices)))
        silhouette = render(jnp.asarray(vertices, jnp.float32), jnp.asarray(faces, jnp.int32), topology,
                            jnp.asarray(sequence.mv[i]), jnp.asarray(sequence.proj[i]))
        occluders = None if sequence.occluders is None else sequence.occluders[i]
        per_frame["mask_iou"][frame] = mask_iou(np.asarray(silhouette), sequence.masks[i], occluders)
        if frame in truth.meshes:
            jobs[frame] = (vertices, faces, *truth.meshes[frame], n_samples, seed, truth.seen.get(frame))
    # The frames' geometry metrics (sampling, nearest neighbours: numpy and scipy, which release
    # the GIL) on a pool of threads; each frame's are the same as computed alone.
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for frame, values in zip(jobs, pool.map(lambda job: geometry_metrics(*job), jobs.values())):
            for name, value in values.items():
                per_frame[name][frame] = value
    return summarise(per_frame)
