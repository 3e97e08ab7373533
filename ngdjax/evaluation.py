"""Per-frame evaluation of fitted meshes against a sequence (metrics of ngdjax/metrics.py).

Geometry metrics against the sequence's ground-truth meshes, on the frames that have one (the
others are named in one log line), and the mask IoU
of each mesh's silhouette, rendered with the sequence's camera at its resolution (the method's
silhouette: covered and front-facing, antialiased, thresholded at 0.5), against the garment mask
with occluder pixels ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from ngdjax.data.loader import Sequence
from ngdjax.errors import InputError
from ngdjax.io import read_mesh
from ngdjax.metrics import (
    GEOMETRY_METRICS,
    N_SAMPLES,
    geometry_metrics,
    mask_iou,
    summarise,
)
from ngdjax.render.backend import Renderer, get_renderer
from ngdjax.render.shading import render_geometry
from ngdjax.render.topology import antialias_topology

log = logging.getLogger("ngdjax")

Mesh = tuple[Float[np.ndarray, "V 3"], Int[np.ndarray, "F 3"]]


_COMPILED: dict[tuple[str, tuple[int, int]], Callable] = {}


def silhouette_renderer(renderer: Renderer, resolution: tuple[int, int]) -> Callable:
    """``render(vertices (V, 3), tris (F, 3) int32, topology (F, 3), mv (4, 4), proj (4, 4)) ->
    silhouette (H, W)`` float32, jitted where the backend allows; one jitted function per backend
    and resolution for the whole process, so each mesh size compiles once."""

    def render(vertices, tris, topology, mv, proj):
        return render_geometry(renderer, vertices, tris, topology, mv, proj, resolution).silhouette[0]

    if renderer.name == "nvdiffrast-eager":
        return render
    key = (renderer.name, tuple(resolution))
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(render)
    return _COMPILED[key]


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


def evaluate_meshes(
    meshes: dict[int, Mesh],
    sequence: Sequence,
    renderer: Renderer | None = None,
    n_samples: int = N_SAMPLES,
    seed: int = 0,
) -> dict[str, dict]:
    """Metrics of world-space meshes, one per frame index, against ``sequence``.

    Args:
        meshes: frame index -> (vertices (V, 3), faces (F, 3)); frames must be the sequence's.
        sequence: the loaded sequence (:func:`ngdjax.data.loader.load_sequence`).
        renderer: render backend; the pure-JAX one by default.
        n_samples, seed: surface samples per mesh for the geometry metrics.

    Returns:
        :func:`ngdjax.metrics.summarise` of ``mask_iou`` and, when some evaluated frame has a
        ground-truth mesh, ``chamfer_x1e3``, ``normal_consistency`` and ``fscore_1cm`` over
        those frames (the frames without one are logged).

    Raises:
        InputError: a frame that the sequence does not have.
    """
    position = {frame: i for i, frame in enumerate(sequence.frames)}
    unknown = sorted(set(meshes) - set(position))
    if unknown:
        raise InputError(f"{sequence.directory}: has no frames {unknown} (its frames: {sequence.frames})")
    render = silhouette_renderer(renderer or get_renderer("jax"), sequence.resolution)
    truth = ground_truth_paths(sequence, sorted(meshes))
    with_geometry = bool(truth)
    per_frame = {name: {} for name in (GEOMETRY_METRICS if with_geometry else ()) + ("mask_iou",)}
    last_faces, topology = None, None
    for frame in sorted(meshes):
        vertices, faces = meshes[frame]
        i = position[frame]
        if last_faces is None or not np.array_equal(faces, last_faces):
            last_faces, topology = faces, jnp.asarray(antialias_topology(faces, len(vertices)))
        silhouette = render(jnp.asarray(vertices, jnp.float32), jnp.asarray(faces, jnp.int32), topology,
                            jnp.asarray(sequence.mv[i]), jnp.asarray(sequence.proj[i]))
        occluders = None if sequence.occluders is None else sequence.occluders[i]
        per_frame["mask_iou"][frame] = mask_iou(np.asarray(silhouette), sequence.masks[i], occluders)
        if frame in truth:
            gt_vertices, gt_faces = read_mesh(truth[frame])
            for name, value in geometry_metrics(vertices, faces, gt_vertices, gt_faces, n_samples, seed).items():
                per_frame[name][frame] = value
    return summarise(per_frame)
