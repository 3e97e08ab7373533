"""What a fit writes into its run directory (docs/contracts.md, "Fit outputs"), and every name in
it: the manifest, the resolved config, the log, the checkpoints, posed meshes per frame, the
canonical mesh, side-by-side renders and their animation, a turntable of one frame's fit beside
its truth, textured meshes, metrics.json.

Every file is written under a temporary name and renamed (:mod:`ngdjax.io`).
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from ngdjax.appearance import TextureResult, UVAtlas, appearance_metrics, textured_renders
from ngdjax.body.model import Body, rest_vertices_host, skinning_weights_host
from ngdjax.body.skinning import linear_blend_skinning, rbf_skinning_weights
from ngdjax.data.loader import Sequence
from ngdjax.data.sequence import frame_name
from ngdjax.fit_config import TextureConfig
from ngdjax.geometry import FitProblem, Frames, deform, frame_at
from ngdjax.evaluation import ground_truth_paths
from ngdjax.io import Submit, immediately, read_mesh, write_atomic, write_image, write_mesh, write_text
from ngdjax.mesh_views import turntable
from ngdjax.render.backend import Renderer, jit_where_possible
from ngdjax.render.shading import render_geometry

MANIFEST = "run.json"
CONFIG = "config.yaml"
LOG = "log.jsonl"
METRICS = "metrics.json"
CHECKPOINT = "checkpoint"
MESHES = "meshes"
CANONICAL = "canonical.obj"
RENDERS = "renders"
ANIMATION = "fit.gif"
TURNTABLE = "turntable.png"
MATERIAL = "garment"  # the material name in the textured OBJs


def log_path(run_dir: str) -> str:
    return os.path.join(run_dir, LOG)


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, CHECKPOINT)


def mesh_path(run_dir: str, frame: int) -> str:
    """``meshes/frame_XXXX.obj`` of sequence frame ``frame``."""
    return os.path.join(run_dir, MESHES, f"frame_{frame:04d}.obj")


def predict_posed(params: dict, problem: FitProblem, frames: Frames, network_on: bool) -> np.ndarray:
    """(T, V, 3) posed garment vertices of every frame (world space)."""
    return np.stack([np.asarray(_posed_frame(params, problem, frames, jnp.int32(i), network_on))
                     for i in range(frames.pose.shape[0])])


@functools.partial(jax.jit, static_argnames="network_on")
def _posed_frame(params: dict, problem: FitProblem, frames: Frames, index, network_on: bool):
    """Frame ``index``'s posed vertices (V, 3); one jitted function for every run of the process, so
    a second fit of the same template (a resumed run, a suite's next case) compiles nothing again."""
    return deform(params, problem, frame_at(frames, index), network_on)[0]


def posed_template(template: np.ndarray, body: Body, body_shape: np.ndarray, frames: Frames) -> np.ndarray:
    """(T, V, 3) the sequence's un-fitted template (V, 3) posed by skinning in every frame (the
    metrics' reference point; independent of any remeshing during the fit)."""
    weights = jnp.asarray(rbf_skinning_weights(template, rest_vertices_host(body, body_shape),
                                               skinning_weights_host(body)), jnp.float32)
    vertices = jnp.asarray(template, jnp.float32)
    return np.stack([np.asarray(_skinned_frame(vertices, weights, frames.transforms, jnp.int32(i)))
                     for i in range(frames.pose.shape[0])])


@jax.jit
def _skinned_frame(vertices, weights, transforms, index):
    """Frame ``index``'s skinned vertices; one jitted function for every run of the process (the
    template an argument, not a constant), so a second run of the same template compiles nothing."""
    return linear_blend_skinning(vertices, weights, transforms[index])


def write_meshes(run_dir: str, frame_ids: list[int], posed: np.ndarray, faces: np.ndarray,
                 submit: Submit = immediately) -> None:
    """``meshes/frame_XXXX.obj`` for each frame (through ``submit``: :func:`ngdjax.io.background_writes`)."""
    for index, vertices in zip(frame_ids, posed):
        submit(write_mesh, mesh_path(run_dir, index), vertices, faces)


def write_canonical(run_dir: str, vertices: np.ndarray, faces: np.ndarray) -> None:
    """``canonical.obj``: the static canonical garment (V, 3) / (F, 3)."""
    write_mesh(os.path.join(run_dir, CANONICAL), vertices, faces)


def write_renders(run_dir: str, sequence: Sequence, posed: np.ndarray, problem: FitProblem, renderer: Renderer,
                  video: bool, submit: Submit = immediately) -> None:
    """``renders/XXXX.png``: the target frame next to the fit's shading drawn over it (written
    through ``submit``); and ``renders/fit.gif`` of them all (10 fps)."""
    render = frame_renderer(renderer, tuple(sequence.resolution))
    panels = []
    for t, index in enumerate(sequence.frames):
        images = render(jnp.asarray(posed[t], jnp.float32), problem.tris, problem.topology, sequence.mv[t],
                        sequence.proj[t])
        coverage = np.clip(np.asarray(images.silhouette[0]), 0, 1)[..., None]
        shading = np.repeat(np.asarray(images.diffuse[0])[..., None], 3, axis=-1)
        target = sequence.images[t].astype(np.float32) / 255.0
        overlay = coverage * (0.2 + 0.8 * shading) + (1 - coverage) * 0.35 * target
        panel = np.concatenate([target, overlay], axis=1)
        panel = np.round(np.clip(panel, 0, 1) * 255).astype(np.uint8)
        submit(write_image, os.path.join(run_dir, RENDERS, frame_name(index, ".png")), panel)
        if video:
            panels.append(panel)
    if video and panels:
        frames = [Image.fromarray(p) for p in panels]
        write_atomic(os.path.join(run_dir, RENDERS, ANIMATION), lambda path: frames[0].save(
            path, save_all=True, append_images=frames[1:], duration=100, loop=0))


@functools.cache
def frame_renderer(renderer: Renderer, resolution: tuple[int, int]):
    """``render(vertices (V, 3), tris, topology, mv, proj) -> GeometryImages``, jitted where the
    backend allows; one function per backend and resolution for the process (the mesh an argument,
    not a constant), so a second run of the same template (a suite's next case) compiles nothing."""
    return jit_where_possible(renderer, functools.partial(render_geometry, renderer, resolution=resolution))


def write_turntable(run_dir: str, sequence: Sequence, posed: np.ndarray, faces: np.ndarray, renderer: Renderer,
                    submit: Submit = immediately) -> None:
    """``renders/turntable.png``: the middle frame's fit seen from eight sides (0 degrees: from
    the training camera), and below it the truth where the sequence has one, each coloured by its
    distance to the other (:func:`ngdjax.mesh_views.turntable`). From the training camera alone a
    fit whose never-seen back is wrong looks perfect."""
    t = len(sequence.frames) // 2
    truth_path = ground_truth_paths(sequence, [sequence.frames[t]]).get(sequence.frames[t])
    truth_v, truth_f = read_mesh(truth_path) if truth_path else (None, None)
    mv = np.asarray(sequence.mv[t], np.float64)
    picture = turntable(renderer, posed[t], faces, up=mv[1, :3], forward=mv[2, :3], truth_v=truth_v, truth_f=truth_f)
    submit(write_image, os.path.join(run_dir, RENDERS, TURNTABLE), picture)


def write_metrics(run_dir: str, metrics: dict) -> None:
    """``metrics.json`` (pretty-printed)."""
    write_text(os.path.join(run_dir, METRICS), json.dumps(metrics, indent=1))


def textured_obj(vertices: np.ndarray, faces: np.ndarray, atlas: UVAtlas, mtl_name: str) -> str:
    """OBJ text of a mesh (V, 3) / (F, 3) with the atlas's UVs (``vt`` flipped to OBJ's
    bottom-up v, for a PNG whose first row is the map's first memory row) and material
    ``garment`` from ``mtl_name``."""
    uv = np.asarray(atlas.uv, np.float64)
    corners = np.stack([np.asarray(faces) + 1, atlas.uv_faces + 1], axis=-1)  # (F, 3, 2), 1-based
    return (f"mtllib {mtl_name}\nusemtl {MATERIAL}\n"
            + rows_text("v %.6f %.6f %.6f\n", np.asarray(vertices, np.float64))
            + rows_text("vt %.6f %.6f\n", np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1))
            + rows_text("f %d/%d %d/%d %d/%d\n", corners.reshape(len(corners), 6)))


def rows_text(line: str, rows: np.ndarray) -> str:
    """``line`` (a %-format with one field per column, ending in a newline) filled with each row
    of ``rows`` (N, C): one formatting call for the whole array instead of one per row."""
    return (line * len(rows)) % tuple(rows.ravel().tolist())


def material(texture_name: str) -> str:
    """MTL text of the ``garment`` material, its diffuse colour from ``texture_name``."""
    return f"newmtl {MATERIAL}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {texture_name}\n"


def write_textured_mesh(path: str, vertices: np.ndarray, faces: np.ndarray, atlas: UVAtlas,
                        texture: np.ndarray) -> None:
    """``path`` (.obj) with its ``.mtl`` and ``.png`` (the map (R, R, 3) in [0, 1]) beside it, atomically."""
    stem = os.path.splitext(path)[0]
    name = os.path.basename(stem)
    write_image(stem + ".png", np.round(np.clip(texture, 0.0, 1.0) * 255).astype(np.uint8))
    write_text(stem + ".mtl", material(name + ".png"))
    write_text(path, textured_obj(vertices, faces, atlas, name + ".mtl"))


def write_texture_outputs(run_dir: str, sequence: Sequence, posed: np.ndarray, canonical: np.ndarray,
                          faces: np.ndarray, result: TextureResult, renderer: Renderer,
                          texture: TextureConfig, renders: bool = True, submit: Submit = immediately) -> dict:
    """Textured ``meshes/frame_XXXX.obj`` (+ .mtl, .png of T^S + T^D_t), ``canonical.obj``
    (+ .mtl, .png of T^S), ``renders/textured_XXXX.png`` (target | textured render over the
    dimmed target), each written through ``submit``; returns the ``psnr``/``ssim`` metrics."""
    maps, images = textured_renders(result, renderer, sequence, texture)
    for t, index in enumerate(sequence.frames):
        submit(write_textured_mesh, mesh_path(run_dir, index), posed[t], faces, result.atlas, maps[t])
        if renders:
            target = sequence.images[t].astype(np.float32) / 255.0
            coverage = (result.rasts[t, ..., 3:4] > 0).astype(np.float32)
            panel = np.concatenate([target, images[t] + (1.0 - coverage) * 0.35 * target], axis=1)
            submit(write_image, os.path.join(run_dir, RENDERS, f"textured_{index:04d}.png"),
                   np.round(np.clip(panel, 0.0, 1.0) * 255).astype(np.uint8))
    submit(write_textured_mesh, os.path.join(run_dir, CANONICAL), canonical, faces, result.atlas,
           np.asarray(result.params["static"]))
    return appearance_metrics(images, sequence)
