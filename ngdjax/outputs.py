"""What a fit writes into its run directory (docs/contracts.md, section 3): posed meshes
per frame, the canonical mesh, side-by-side renders and their animation, metrics.json.

Every file is written under a temporary name and renamed (:mod:`ngdjax.io`).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from ngdjax.body.model import (
    Body,
    rest_vertices_host,
    skinning_weights_host,
)
from ngdjax.body.skinning import linear_blend_skinning, rbf_skinning_weights
from ngdjax.data.loader import Sequence
from ngdjax.data.sequence import frame_name
from ngdjax.fit import FitProblem, Frames, frame_at, garment_shapes
from ngdjax.io import write_atomic, write_image, write_mesh, write_text
from ngdjax.render.backend import Renderer
from ngdjax.render.shading import render_geometry


def predict_posed(params: dict, problem: FitProblem, frames: Frames, network_on: bool) -> np.ndarray:
    """(T, V, 3) posed garment vertices of every frame (world space)."""
    posed = jax.jit(lambda p, pr, fr, i: garment_shapes(p, pr, frame_at(fr, i), network_on)[0])
    return np.stack([np.asarray(posed(params, problem, frames, jnp.int32(i))) for i in range(frames.pose.shape[0])])


def posed_template(template: np.ndarray, body: Body, body_shape: np.ndarray, frames: Frames) -> np.ndarray:
    """(T, V, 3) the sequence's un-fitted template (V, 3) posed by skinning in every frame (the
    metrics' reference point; independent of any remeshing during the fit)."""
    weights = jnp.asarray(rbf_skinning_weights(template, rest_vertices_host(body, body_shape),
                                               skinning_weights_host(body)), jnp.float32)
    vertices = jnp.asarray(template, jnp.float32)

    def pose(i):
        return linear_blend_skinning(vertices, weights, frames.transforms[i])
    pose = jax.jit(pose)
    return np.stack([np.asarray(pose(jnp.int32(i))) for i in range(frames.pose.shape[0])])


def write_meshes(run_dir: str, frame_ids: list[int], posed: np.ndarray, faces: np.ndarray) -> None:
    """``meshes/frame_XXXX.obj`` for each frame."""
    for index, vertices in zip(frame_ids, posed):
        write_mesh(os.path.join(run_dir, "meshes", f"frame_{index:04d}.obj"), vertices, faces)


def write_renders(run_dir: str, sequence: Sequence, posed: np.ndarray, problem: FitProblem, renderer: Renderer,
                  video: bool) -> None:
    """``renders/XXXX.png``: the target frame next to the fit's shading drawn over it; and
    ``renders/fit.gif`` of them all (10 fps)."""
    tris, topology = problem.tris, problem.topology
    render = jax.jit(lambda v, mv, proj: render_geometry(renderer, v, tris, topology, mv, proj, sequence.resolution))
    panels = []
    for t, index in enumerate(sequence.frames):
        images = render(jnp.asarray(posed[t], jnp.float32), sequence.mv[t], sequence.proj[t])
        coverage = np.clip(np.asarray(images.silhouette[0]), 0, 1)[..., None]
        shading = np.repeat(np.asarray(images.diffuse[0])[..., None], 3, axis=-1)
        target = sequence.images[t].astype(np.float32) / 255.0
        overlay = coverage * (0.2 + 0.8 * shading) + (1 - coverage) * 0.35 * target
        panel = np.concatenate([target, overlay], axis=1)
        panel = np.round(np.clip(panel, 0, 1) * 255).astype(np.uint8)
        write_image(os.path.join(run_dir, "renders", frame_name(index, ".png")), panel)
        panels.append(panel)
    if video and panels:
        frames = [Image.fromarray(p) for p in panels]
        write_atomic(os.path.join(run_dir, "renders", "fit.gif"), lambda path: frames[0].save(
            path, save_all=True, append_images=frames[1:], duration=100, loop=0))


def write_metrics(run_dir: str, metrics: dict) -> None:
    """``metrics.json`` (pretty-printed)."""
    write_text(os.path.join(run_dir, "metrics.json"), json.dumps(metrics, indent=1))
