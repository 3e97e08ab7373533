"""The geometry loop (docs/method.md 9): epochs over shuffled frames, one jitted step per frame, warm-up
with the network off, remeshing events, a JSON-lines log, checkpoints and resume.

Determinism: the frame order of epoch ``e`` comes from ``(seed, e)`` and the step's random key from
``(seed, global step)``, so a resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array
from tqdm import tqdm

from ngdjax import checkpoint
from ngdjax.body.model import Body, bone_transforms
from ngdjax.data.loader import Sequence
from ngdjax.fit import (
    FitProblem,
    Frames,
    all_dynamic_residuals,
    build_problem,
    canonical_vertices,
    init_params,
    make_geometry_step,
    make_optimizer,
    optimizer_settings,
)
from ngdjax.fit_config import FitConfig
from ngdjax.nonfinite import NonFiniteError, first_non_finite
from ngdjax.poisson import solve
from ngdjax.pose_code import pose_codes
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


_all_bone_transforms = jax.jit(jax.vmap(bone_transforms, in_axes=(None, 0, 0, 0, 0)))


def prepare_frames(sequence: Sequence, pose_code_dim: int, body: Body, zero_root: bool = False) -> Frames:
    """Stack a sequence's per-frame data as device arrays, with each frame's bone transforms of
    ``body`` (and, with ``zero_root``, the network's input transforms without the global rotation
    and translation); missing optional targets become zeros."""
    zeros = np.zeros(sequence.masks.shape, np.float32)
    as_float = lambda a: zeros if a is None else np.asarray(a, np.float32)
    body_parameters = [jnp.asarray(a) for a in (sequence.shape, sequence.pose, sequence.global_rotation,
                                                sequence.translation)]
    transforms = _all_bone_transforms(body, *body_parameters)
    if zero_root:
        shape, pose, rotation, translation = body_parameters
        input_transforms = _all_bone_transforms(body, shape, pose, jnp.zeros_like(rotation), jnp.zeros_like(translation))
    else:
        input_transforms = transforms
    return Frames(
        *body_parameters, transforms=transforms, input_transforms=input_transforms,
        mv=jnp.asarray(sequence.mv), proj=jnp.asarray(sequence.proj),
        code=jnp.asarray(pose_codes(sequence.pose, pose_code_dim)),
        mask=jnp.asarray(as_float(sequence.masks)), occluders=jnp.asarray(as_float(sequence.occluders)),
        diffuse=jnp.asarray(as_float(sequence.diffuse)), depth=jnp.asarray(as_float(sequence.depth)),
    )


@functools.partial(jax.jit, static_argnums=2)
def _fold_in_range(base_key: Array, first: Array, count: int) -> Array:
    return jax.vmap(lambda step: jax.random.fold_in(base_key, step))(first + jnp.arange(count))


def step_keys(base_key: Array, first_step: int, count: int) -> np.ndarray:
    """(count, 2) host copies of ``fold_in(base_key, s)`` for steps ``first_step, ...``: one
    device call per epoch instead of one per step (per-step dispatches cost host time that
    the GPU step is short enough to feel)."""
    return np.asarray(_fold_in_range(base_key, jnp.int32(first_step), count))


@jax.jit
def _stack_steps(values: list):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *values)


def fetch_epoch(values: list):
    """Host copies of an epoch's per-step device values (a list of equal pytrees), stacked on the
    device first: one transfer per leaf instead of one per step and leaf (600 small transfers
    cost 40 ms an epoch on a GPU, 0.4 ms a step)."""
    return jax.device_get(_stack_steps(values))


def epoch_order(seed: int, epoch: int, n_frames: int) -> np.ndarray:
    """The shuffled frame order of ``epoch`` (a permutation of range(n_frames))."""
    return np.random.default_rng([seed, epoch]).permutation(n_frames)


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
    progress: bool = True, stop_after_steps: int | None = None,
) -> GeometryResult:
    """Run (or resume) the geometry stage; writes ``log.jsonl`` and ``checkpoint/`` in ``run_dir``.

    ``stop_after_steps`` ends the run early after that many global steps (a checkpoint is
    written first), for tests and for measuring a sustained segment.
    """
    started = time.perf_counter()
    optim, n_frames = config.optim, sequence.n_frames
    has_diffuse, has_depth = switch_off_missing_targets(sequence)
    frames = prepare_frames(sequence, config.field.pose_code_dim, body, config.field.zero_root)
    template_vertices, template_faces = sequence.template_vertices, sequence.template_faces
    ckpt_dir = os.path.join(run_dir, "checkpoint")
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
    optimizer = make_optimizer(optim, n_frames)
    params = init_params(jax.random.PRNGKey(optim.seed), problem)
    remesh = config.remesh.enabled and config.field.deformation == "jacobian_fields"
    opt_state = optimizer.init(params)
    if meta is not None:
        params, opt_state = checkpoint.load_checkpoint_state(ckpt_dir, meta, (params, opt_state))
    step = make_geometry_step(renderer, optimizer_settings(optim), n_frames, config.loss)
    base_key = jax.random.PRNGKey(optim.seed + 1)
    total_steps = optim.epochs * n_frames
    bar = tqdm(total=total_steps, initial=step_count, desc="geometry", unit="step", disable=not progress,
               dynamic_ncols=True)
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "log.jsonl")
    _truncate_log(log_path, step_count)
    for epoch in range(start_epoch, optim.epochs):
        network_on = config.field.dynamic and epoch >= optim.warmup_epochs
        collect = remesh and epoch in config.remesh.epochs
        # After the blending epochs alpha stays 1 (the stored residuals then drop out exactly), so
        # the step keeps the signature it was compiled with instead of compiling a blend-free one.
        alpha = min((epoch - blend_epoch) / config.remesh.blend_epochs, 1.0)
        blend = (blend_field, jnp.float32(alpha)) if blend_field is not None and network_on else None
        records, accumulated, seen = [], 0.0, 0.0
        position = start_position if epoch == start_epoch else 0
        order = epoch_order(optim.seed, epoch, n_frames)[position:]
        keys = step_keys(base_key, step_count, len(order))
        for index, key in zip(order, keys):
            params, opt_state, out = step(params, opt_state, problem, frames, np.int32(index), key, blend,
                                          network_on=network_on, collect_statistic=collect)
            if collect:
                accumulated, seen = accumulated + out.face_statistic[0], seen + out.face_statistic[1]
            records.append((step_count, int(index), out.terms, out.finite))
            step_count += 1
            bar.update(1)
            if stop_after_steps is not None and step_count >= stop_after_steps:
                break
        terms, finite = fetch_epoch([(terms, finite) for _, _, terms, finite in records])
        _append_log(log_path, epoch, sequence.frames, records, terms)
        failure = first_non_finite("geometry", epoch, [r[0] for r in records], [sequence.frames[r[1]] for r in records],
                                   terms, finite)
        if failure:
            bar.close()
            raise NonFiniteError(failure)
        bar.set_postfix({name: f"{float(values[-1]):.4g}" for name, values in terms.items()})
        finished_epoch = position + len(records) == n_frames
        if collect and finished_epoch:
            statistic = np.asarray(accumulated) / np.maximum(np.asarray(seen), 1.0)
            stored = all_dynamic_residuals(params, problem, frames) if network_on else None
            old_canonical = canonical_vertices(params, problem)
            new_vertices, new_faces, params, opt_state, blend_field = remesh_event(
                template_vertices, template_faces, statistic, remesh_events, config, params, opt_state, stored)
            if len(new_faces) != len(template_faces):
                template_vertices, template_faces, blend_epoch = new_vertices, new_faces, epoch
                problem = build(template_vertices, template_faces)
                problem = dataclasses.replace(problem, template_mean=canonical_offset(params, problem, old_canonical))
            remesh_events += 1
        stop = stop_after_steps is not None and step_count >= stop_after_steps
        if stop or (epoch + 1) % optim.checkpoint_every == 0 or epoch + 1 == optim.epochs:
            host = {"template_vertices": template_vertices, "template_faces": template_faces,
                    "canonical_offset": np.asarray(problem.template_mean)}
            if blend_field is not None:
                host["blend_field"] = np.asarray(blend_field)
            checkpoint.save_checkpoint(
                ckpt_dir, (params, opt_state), host,
                {"epoch": epoch + 1 if finished_epoch else epoch,
                 "position": 0 if finished_epoch else position + len(records), "step": step_count,
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
    zero_mean = solve(problem.solver, params["static"])
    return jnp.mean(old_canonical[:kept] - zero_mean[:kept], axis=0, keepdims=True)


def remesh_event(vertices: np.ndarray, faces: np.ndarray, statistic: np.ndarray, event_index: int,
                 config: FitConfig, params: dict, opt_state, stored_residuals):
    """One remesh of the template (docs/method.md 7.3-7.4) and the transfer of the state onto it: static
    Jacobians, the static group's Adam moments and the stored residuals (T, F, 3, 3) each from the
    nearest old face (by template face centroids). The method averages the Jacobians of the 3
    nearest faces; on a fitted, non-smooth field that blurs the fit (the loss jumped by 12% at the
    event on the demo), while a split face that keeps its parent's Jacobian reproduces the same
    surface exactly. Returns the new
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


def _truncate_log(path: str, first_step: int) -> None:
    """Keep only the log lines of steps before ``first_step`` (those a resumed run will not redo)."""
    if not os.path.exists(path):
        return
    with open(path) as file:
        kept = [line for line in file if line.strip() and json.loads(line)["step"] < first_step]
    with open(path, "w") as file:
        file.writelines(kept)


def _append_log(path: str, epoch: int, frame_ids: list[int], records: list, host: dict) -> None:
    """Append one JSON line per step: ``records`` (step, frame position, ...), ``host`` the epoch's
    loss terms {name: (n,)} fetched from the device once."""
    with open(path, "a") as file:
        for row, (step, index, *_) in enumerate(records):
            line = {"step": step, "epoch": epoch, "frame": frame_ids[index]}
            line.update({name: float(values[row]) for name, values in host.items()})
            file.write(json.dumps(line) + "\n")
