"""Which faces of the ground-truth garment the camera sees (for the seen/unseen split metrics of
:func:`ngdjax.metrics.geometry_metrics` with ``gt_seen``; definitions in docs/contracts.md section 4).

One frame (:func:`visible_faces`): the truth garment and the posed body are rasterised as one
mesh at the sequence's resolution with the depth test (no culling), so the body occludes. A truth
face is *visible* when

1. some pixel shows it (its triangle id wins the depth test at a pixel centre), or
2. its centroid projects into the image, in front of the camera, and at the centroid's pixel the
   rasteriser shows the background or a surface not nearer to the camera than the centroid by
   more than ``tolerance_m`` (view-space depth, metres; :data:`DEPTH_TOLERANCE_M`).

Test 1 alone counts a face that covers no pixel centre (small, or seen at a grazing angle) as
not visible even where nothing hides it; test 2 catches most of those. Its tolerance absorbs the
depth difference between the centroid and the pixel centre on the same surface (up to half a
pixel away); at grazing angles that difference can exceed it, so a thin face near a silhouette
that covers no pixel centre may still be missed.

Measured against test 1 at ~1024^2 (where faces cover many pixels), per frame: on the demo
sequence (256^2, 4,920 truth faces, ~1,950 visible) test 1 alone misses ~190 visible faces
(10%, all of them faces covering no pixel centre) and adds none; tests 1 or 2 miss ~90 and add
~80 (~50 of them remain at a 1 mm tolerance: most likely faces whose centroid lies within half
a pixel of an occluding edge), so the visible set is about as accurate and no longer biased
toward "not visible". On the 64^2 skirt of tests/test_fit.py (1,230 faces, ~590 visible): test
1 alone misses ~150 (25%); tests 1 or 2 miss ~60 and add ~30.

Over a sequence (:func:`seen_faces`): a face is *seen* when visible in at least one frame, *never
seen* otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ngdjax.camera import to_clip
from ngdjax.render.backend import Renderer, jit_where_possible

DEPTH_TOLERANCE_M = 0.01

def visible_faces(
    truth_vertices: Float[np.ndarray, "V 3"],
    truth_faces: Int[np.ndarray, "F 3"],
    body_vertices: Float[np.ndarray, "B 3"],
    body_faces: Int[np.ndarray, "G 3"],
    mv: Float[np.ndarray, "4 4"],
    proj: Float[np.ndarray, "4 4"],
    resolution: tuple[int, int],
    renderer: Renderer,
    tolerance_m: float | None = DEPTH_TOLERANCE_M,
) -> Bool[np.ndarray, " F"]:
    """(F,) bool: the truth faces visible from the camera (``mv``, ``proj``; :mod:`ngdjax.camera`)
    with the body occluding (module docstring). ``tolerance_m=None`` keeps test 1 only (a face is
    visible iff some pixel shows it). One rasterisation of body + garment at ``resolution`` (H, W);
    jitted per backend, resolution and tolerance where the backend allows."""
    visible = _visibility_function(renderer, tuple(int(n) for n in resolution), tolerance_m)
    arrays = [jnp.asarray(a, jnp.float32) for a in (truth_vertices, body_vertices, mv, proj)]
    faces = [jnp.asarray(f, jnp.int32) for f in (truth_faces, body_faces)]
    return np.asarray(visible(arrays[0], faces[0], arrays[1], faces[1], arrays[2], arrays[3]))


@functools.cache
def _visibility_function(renderer: Renderer, resolution: tuple[int, int], tolerance_m: float | None) -> Callable:
    """One (jitted where the backend allows) :func:`_visible` per backend, resolution and tolerance."""
    return jit_where_possible(renderer, functools.partial(_visible, renderer, resolution, tolerance_m))


def _visible(renderer: Renderer, resolution: tuple[int, int], tolerance_m: float | None,
             truth_vertices: Float[Array, "V 3"], truth_faces: Int[Array, "F 3"], body_vertices: Float[Array, "B 3"],
             body_faces: Int[Array, "G 3"], mv: Float[Array, "4 4"], proj: Float[Array, "4 4"]) -> Bool[Array, " F"]:
    height, width = resolution
    n_faces = truth_faces.shape[0]
    # Truth faces first, so that triangle ids 1..F are the truth's own faces.
    tris = jnp.concatenate([truth_faces, body_faces + truth_vertices.shape[0]])
    clip = to_clip(jnp.concatenate([truth_vertices, body_vertices]), mv, proj)
    rast = renderer.rasterize(clip, tris, resolution)
    ids = rast[0, ..., 3].astype(jnp.int32) - 1  # -1 background, >= F body
    shown = jnp.where((ids >= 0) & (ids < n_faces), ids, n_faces).reshape(-1)
    visible = jnp.zeros(n_faces, bool).at[shown].set(True, mode="drop")
    if tolerance_m is None:
        return visible
    # View-space depth (clip w) of the shown surface at each pixel; background is infinitely far.
    covered = rast[0, ..., 3] > 0
    surface_w = renderer.interpolate(clip[:, 3:4], rast, tris)[0, ..., 0]
    surface_w = jnp.where(covered, surface_w, jnp.inf)
    centroid = to_clip(jnp.mean(truth_vertices[truth_faces], axis=1), mv, proj)
    w = centroid[:, 3]
    ndc = centroid[:, :3] / jnp.where(w > 0, w, 1.0)[:, None]
    col = jnp.floor((ndc[:, 0] + 1.0) * (width / 2)).astype(jnp.int32)
    row = jnp.floor((ndc[:, 1] + 1.0) * (height / 2)).astype(jnp.int32)
    inside = (w > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height) & (jnp.abs(ndc[:, 2]) <= 1.0)
    in_front = w <= surface_w[jnp.clip(row, 0, height - 1), jnp.clip(col, 0, width - 1)] + tolerance_m
    return visible | (inside & in_front)


def seen_faces(visible: Bool[np.ndarray, "T F"]) -> Bool[np.ndarray, " F"]:
    """(F,) faces visible in at least one of the frames (rows of ``visible``, shared topology)."""
    visible = np.asarray(visible, bool)
    if visible.ndim != 2:
        raise ValueError(f"seen_faces: expected (frames, faces) flags, got shape {visible.shape}")
    return visible.any(axis=0)
