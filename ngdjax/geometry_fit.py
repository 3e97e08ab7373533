"""The geometry loop (docs/method.md 9): epochs over shuffled frames, one jitted step per frame
(:mod:`ngdjax.geometry`), warm-up with the network off, remeshing events, the log, checkpoints
and resume; the machinery it shares with the appearance loop is in :mod:`ngdjax.loop`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ngdjax import checkpoint, outputs
from ngdjax.body.model import Body
from ngdjax.data.loader import Sequence
from ngdjax.fit_config import FitConfig
from ngdjax.geometry import (
    DEFORMATIONS,
    FitProblem,
    Frames,
    all_dynamic_residuals,
    build_problem,
    canonical_vertices,
    fold_smooth_modes,
    has_coarse,
    init_params,
    make_geometry_step,
    make_optimizer,
    prepare_frames,
)
from ngdjax.loop import OnStep, StepEvent, close_epoch, epoch_order, keep_log_lines, step_keys
from ngdjax.remesh import RemeshSchedule, remesh_template, transfer_face_state
from ngdjax.render.backend import Renderer

log = logging.getLogger("ngdjax")


@dataclasses.dataclass
class GeometryResult:
    """A finished (or resumed-and-finished) geometry fit: parameters, the problem of the final
    template, the per-frame data, and host copies of the final template mesh."""

    params: dict
    problem: FitProblem
    frames: Frames
    template_vertices: np.ndarray
    template_faces: np.ndarray
    seconds: float


def switch_off_missing_targets(sequence: Sequence) -> tuple[bool, bool]:
    """Which optional targets exist; one log line per loss switched off."""
    has_diffuse, has_depth = sequence.diffuse is not None, sequence.depth is not None
    if not has_diffuse:
        log.info("no diffuse/ targets in %s: shading loss (Huber + SSIM) off", sequence.directory)
    if not has_depth:
        log.info("no depth/ targets in %s: depth-ranking loss off", sequence.directory)
    if sequence.occluders is None:
        log.info("no occluders/ masks in %s: the silhouette loss sees every predicted pixel", sequence.directory)
    return has_diffuse, has_depth


def fit_geometry(
    config: FitConfig, sequence: Sequence, body: Body, renderer: Renderer, run_dir: str, resume: bool,
    progress: bool = True, stop_after_steps: int | None = None, on_step: OnStep | None = None,
    on_epoch: Callable[[int, GeometryResult], None] | None = None,
) -> GeometryResult:
    """Run (or resume) the geometry stage; writes the log and the checkpoints in ``run_dir``.

    ``stop_after_steps`` ends the run early after that many global steps (a checkpoint is
    written first), for tests and for measuring a sustained segment; ``on_step`` is called after
    every step (:class:`ngdjax.loop.StepEvent`); ``on_epoch(epochs_done, state)`` after every
    finished epoch (its remeshing event included) with the fit so far (benchmarks scoring a
    time-to-quality curve; ``state.seconds`` is the wall time since the call began; its arrays are
    valid during the call only: the next step donates their buffers).

    Raises:
        NonFiniteError: a loss or parameter went non-finite (checked once per epoch, before the
            epoch's checkpoint, so the last good checkpoint stays the latest).
    """
    started = time.perf_counter()
    optim, n_frames = config.optim, sequence.n_frames
    has_diffuse, has_depth = switch_off_missing_targets(sequence)
    frames = prepare_frames(sequence, config.field.pose_code_dim, body, config.field.zero_root)
    template_vertices, template_faces = sequence.template_vertices, sequence.template_faces
    ckpt_dir = outputs.checkpoint_dir(run_dir)
    start_epoch, start_position, step_count, remesh_events = 0, 0, 0, 0
    blend_field, blend_epoch = None, -1
    meta, arrays = (checkpoint.load_checkpoint_meta(ckpt_dir) if resume and checkpoint.has_checkpoint(ckpt_dir)
                    else (None, None))
    if meta is not None:
        template_vertices, template_faces = arrays["template_vertices"], arrays["template_faces"]
        start_epoch, start_position, step_count = int(meta["epoch"]), int(meta["position"]), int(meta["step"])
        remesh_events, blend_epoch = int(meta["remesh_events"]), int(meta["blend_epoch"])
        blend_field = jnp.asarray(arrays["blend_field"]) if "blend_field" in arrays else None
        log.info("resuming from %s at epoch %d (step %d)", ckpt_dir, start_epoch, step_count)

    def build(vertices, faces):
        return build_problem(vertices, faces, body, sequence.shape[0], sequence.resolution, config.field,
                             has_diffuse, has_depth, input_faces=sequence.template_faces)

    problem = build(template_vertices, template_faces)
    if arrays is not None and "canonical_offset" in arrays:
        problem = dataclasses.replace(problem, template_mean=jnp.asarray(arrays["canonical_offset"]))
    optimizer = make_optimizer(optim, n_frames, has_coarse(config.field))
    params = init_params(jax.random.PRNGKey(optim.seed), problem)
    remesh = config.remesh.enabled and DEFORMATIONS[config.field.deformation].remeshable
    opt_state = optimizer.init(params)
    if meta is not None:
        params, opt_state = checkpoint.load_checkpoint_state(ckpt_dir, meta, (params, opt_state))
    step = make_geometry_step(renderer, optim, n_frames, config.loss, has_coarse(config.field))
    base_key = jax.random.PRNGKey(optim.seed + 1)
    total_steps = optim.epochs * n_frames
    bar = tqdm(total=total_steps, initial=step_count, desc="geometry", unit="step", disable=not progress,
               dynamic_ncols=True)
    os.makedirs(run_dir, exist_ok=True)
    log_path = outputs.log_path(run_dir)
    keep_log_lines(log_path, lambda line: "stage" not in line and line["step"] < step_count)
    for epoch in range(start_epoch, optim.epochs):
        network_on = config.field.dynamic and epoch >= optim.warmup_epochs
        collect = remesh and epoch in config.remesh.epochs
        # After the blending epochs alpha stays 1 (the stored residuals then drop out exactly), so
        # the step keeps the signature it was compiled with instead of compiling a blend-free one.
        alpha = min((epoch - blend_epoch) / config.remesh.blend_epochs, 1.0)
        blend = (blend_field, jnp.float32(alpha)) if blend_field is not None and network_on else None
        steps, frame_ids, terms, finite, accumulated, seen = [], [], [], [], 0.0, 0.0
        position = start_position if epoch == start_epoch else 0
        order = epoch_order(optim.seed, epoch, n_frames)[position:]
        keys = step_keys(base_key, step_count, len(order))
        for index, key in zip(order, keys):
            params, opt_state, out = step(params, opt_state, problem, frames, np.int32(index), key, blend,
                                          network_on=network_on, collect_statistic=collect)
            if collect:
                accumulated, seen = accumulated + out.face_statistic[0], seen + out.face_statistic[1]
            steps.append(step_count)
            frame_ids.append(sequence.frames[index])
            terms.append(out.terms)
            finite.append(out.finite)
            if on_step is not None:
                on_step(StepEvent("geometry", epoch, step_count, sequence.frames[index], network_on))
            step_count += 1
            bar.update(1)
            if stop_after_steps is not None and step_count >= stop_after_steps:
                break
        host_terms = close_epoch("geometry", epoch, steps, frame_ids, terms, finite, log_path)
        bar.set_postfix({name: f"{float(values[-1]):.4g}" for name, values in host_terms.items()})
        finished_epoch = position + len(steps) == n_frames
        if collect and finished_epoch:
            statistic = np.asarray(accumulated) / np.maximum(np.asarray(seen), 1.0)
            stored = all_dynamic_residuals(params, problem, frames) if network_on else None
            old_canonical = canonical_vertices(params, problem)
            params = fold_smooth_modes(params, problem)
            new_vertices, new_faces, params, opt_state, blend_field = remesh_event(
                template_vertices, template_faces, statistic, remesh_events, config, params, opt_state, stored)
            if len(new_faces) != len(template_faces):
                template_vertices, template_faces, blend_epoch = new_vertices, new_faces, epoch
                problem = build(template_vertices, template_faces)
                problem = dataclasses.replace(problem, template_mean=canonical_offset(params, problem, old_canonical))
            remesh_events += 1
        if on_epoch is not None and finished_epoch:
            on_epoch(epoch + 1, GeometryResult(params, problem, frames, np.asarray(template_vertices),
                                               np.asarray(template_faces), time.perf_counter() - started))
        stop = stop_after_steps is not None and step_count >= stop_after_steps
        if stop or (epoch + 1) % optim.checkpoint_every == 0 or epoch + 1 == optim.epochs:
            host = {"template_vertices": template_vertices, "template_faces": template_faces,
                    "canonical_offset": np.asarray(problem.template_mean)}
            if blend_field is not None:
                host["blend_field"] = np.asarray(blend_field)
            checkpoint.save_checkpoint(
                ckpt_dir, (params, opt_state), host,
                {"epoch": epoch + 1 if finished_epoch else epoch,
                 "position": 0 if finished_epoch else position + len(steps), "step": step_count,
                 "remesh_events": remesh_events, "blend_epoch": blend_epoch})
        if stop:
            break
    bar.close()
    return GeometryResult(params, problem, frames, np.asarray(template_vertices), np.asarray(template_faces),
                          time.perf_counter() - started)


def canonical_offset(params: dict, problem: FitProblem, old_canonical: jnp.ndarray) -> jnp.ndarray:
    """(1, 3) translation that keeps the canonical mesh in place across a remesh: the Poisson
    solution is zero-mean over the vertices, and refining one region moves the vertex mean of
    the deformed surface by a different amount than that of the template (the method's
    ``delta_transform``). Old vertices keep their indices, so align on them."""
    kept = min(len(old_canonical), problem.template.shape[0])
    zero_mean = canonical_vertices(params, dataclasses.replace(problem, template_mean=jnp.zeros((1, 3), jnp.float32)))
    return jnp.mean(old_canonical[:kept] - zero_mean[:kept], axis=0, keepdims=True)


def remesh_event(vertices: np.ndarray, faces: np.ndarray, statistic: np.ndarray, event_index: int,
                 config: FitConfig, params: dict, opt_state, stored_residuals):
    """One remesh of the template (docs/method.md 7.3-7.4) and the transfer of the state onto it: static
    Jacobians, the static group's Adam moments and the stored residuals (T, F, 3, 3) each from the
    nearest old face (by template face centroids). The method averages the Jacobians of the 3
    nearest faces; on a fitted, non-smooth field that blurs the fit (the loss jumped by 12% at the
    event on the demo), while a split face that keeps its parent's Jacobian reproduces the same
    surface exactly. The ``coarse`` group and its Adam state are kept as they are: the smooth modes
    must have been folded into the static field first (:func:`ngdjax.geometry.fold_smooth_modes`),
    and the new template's modes span nearly the same smooth functions. Returns the new
    template, params, optimizer state and transferred residuals (None without a network yet).
    The network and its optimizer state are untouched (they do not depend on the faces)."""
    settings = config.remesh
    schedule = RemeshSchedule(settings.quantile[0], settings.quantile[1], settings.edge_length[0],
                              settings.edge_length[1], settings.schedule_steps, settings.max_vertices)
    started = time.perf_counter()
    result = remesh_template(vertices, faces, statistic, event_index, schedule)
    if result.n_split == 0:
        log.info("remesh event %d: no edge to split, template kept", event_index)
        return vertices, faces, params, opt_state, None
    transfer = lambda tree, k: transfer_face_state(vertices, faces, result.vertices, result.faces, tree, k)
    params = dict(params, static=transfer(params["static"], 1))
    inner = dict(opt_state.inner_states)
    inner["static"] = transfer(inner["static"], 1)
    opt_state = opt_state._replace(inner_states=inner)
    blend = None
    if stored_residuals is not None:
        moved = transfer(jnp.moveaxis(stored_residuals, 0, 1), 1)  # faces first for the transfer
        blend = jnp.moveaxis(moved, 1, 0)
    log.info("remesh event %d: %d -> %d vertices (%d edges split) in %.2f s", event_index, len(vertices),
             len(result.vertices), result.n_split, time.perf_counter() - started)
    return result.vertices, result.faces, params, opt_state, blend
