"""The geometry loop (METHOD 9): epochs over shuffled frames, one jitted step per frame, warm-up
with the network off, remeshing events, a JSON-lines log, checkpoints and resume.

Determinism: the frame order of epoch ``e`` comes from ``(seed, e)`` and the step's random key from
``(seed, global step)``, so a resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ngdjax import checkpoint
from ngdjax.body.model import Body
from ngdjax.data.loader import Sequence
from ngdjax.fit import FitProblem, Frames, build_problem, init_params, make_geometry_step, make_optimizer
from ngdjax.fit_config import FitConfig
from ngdjax.pose_code import pose_codes
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


def prepare_frames(sequence: Sequence, pose_code_dim: int) -> Frames:
    """Stack a sequence's per-frame data as device arrays; missing optional targets become zeros."""
    zeros = np.zeros(sequence.masks.shape, np.float32)
    as_float = lambda a: zeros if a is None else np.asarray(a, np.float32)  # noqa: E731
    return Frames(
        shape=jnp.asarray(sequence.shape), pose=jnp.asarray(sequence.pose),
        global_rotation=jnp.asarray(sequence.global_rotation), translation=jnp.asarray(sequence.translation),
        mv=jnp.asarray(sequence.mv), proj=jnp.asarray(sequence.proj),
        code=jnp.asarray(pose_codes(sequence.pose, pose_code_dim)),
        mask=jnp.asarray(as_float(sequence.masks)), occluders=jnp.asarray(as_float(sequence.occluders)),
        diffuse=jnp.asarray(as_float(sequence.diffuse)), depth=jnp.asarray(as_float(sequence.depth)),
    )


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
    frames = prepare_frames(sequence, config.field.pose_code_dim)
    template_vertices, template_faces = sequence.template_vertices, sequence.template_faces
    ckpt_dir = os.path.join(run_dir, "checkpoint")
    start_epoch, start_position, step_count = 0, 0, 0
    meta, arrays = (checkpoint.load_checkpoint_meta(ckpt_dir) if resume and checkpoint.has_checkpoint(ckpt_dir)
                    else (None, None))
    if meta is not None:
        template_vertices, template_faces = arrays["template_vertices"], arrays["template_faces"]
        start_epoch, start_position, step_count = int(meta["epoch"]), int(meta["position"]), int(meta["step"])
        log.info("resuming from %s at epoch %d (step %d)", ckpt_dir, start_epoch, step_count)

    def build(vertices, faces):
        return build_problem(vertices, faces, body, sequence.shape[0], sequence.resolution, config.field,
                             has_diffuse, has_depth)

    problem = build(template_vertices, template_faces)
    optimizer = make_optimizer(optim, n_frames)
    params = init_params(jax.random.PRNGKey(optim.seed), problem)
    opt_state = optimizer.init(params)
    if meta is not None:
        params, opt_state = checkpoint.load_checkpoint_state(ckpt_dir, meta, (params, opt_state))
    step = make_geometry_step(renderer, optimizer, config.loss)
    base_key = jax.random.PRNGKey(optim.seed + 1)
    total_steps = optim.epochs * n_frames
    bar = tqdm(total=total_steps, initial=step_count, desc="geometry", unit="step", disable=not progress,
               dynamic_ncols=True)
    log_path = os.path.join(run_dir, "log.jsonl")
    _truncate_log(log_path, step_count)
    for epoch in range(start_epoch, optim.epochs):
        network_on = config.field.dynamic and epoch >= optim.warmup_epochs
        records = []
        position = start_position if epoch == start_epoch else 0
        for index in epoch_order(optim.seed, epoch, n_frames)[position:]:
            key = jax.random.fold_in(base_key, step_count)
            params, opt_state, out = step(params, opt_state, problem, frames, jnp.int32(index), key,
                                          network_on=network_on, collect_statistic=False)
            records.append((step_count, int(index), out.terms))
            step_count += 1
            bar.update(1)
            if stop_after_steps is not None and step_count >= stop_after_steps:
                break
        _append_log(log_path, epoch, sequence.frames, records)
        last = jax.device_get(records[-1][2])
        bar.set_postfix({name: f"{float(value):.4g}" for name, value in last.items()})
        finished_epoch = position + len(records) == n_frames
        stop = stop_after_steps is not None and step_count >= stop_after_steps
        if stop or (epoch + 1) % optim.checkpoint_every == 0 or epoch + 1 == optim.epochs:
            checkpoint.save_checkpoint(
                ckpt_dir, (params, opt_state),
                {"template_vertices": template_vertices, "template_faces": template_faces},
                {"epoch": epoch + 1 if finished_epoch else epoch,
                 "position": 0 if finished_epoch else position + len(records), "step": step_count})
        if stop:
            break
    bar.close()
    return GeometryResult(params, problem, frames, np.asarray(template_vertices), np.asarray(template_faces),
                          time.perf_counter() - started)


def _truncate_log(path: str, first_step: int) -> None:
    """Keep only the log lines of steps before ``first_step`` (those a resumed run will not redo)."""
    if not os.path.exists(path):
        return
    with open(path) as file:
        kept = [line for line in file if line.strip() and json.loads(line)["step"] < first_step]
    with open(path, "w") as file:
        file.writelines(kept)


def _append_log(path: str, epoch: int, frame_ids: list[int], records: list) -> None:
    """Append one JSON line per step (fetched from the device once per epoch)."""
    host = jax.device_get([terms for _, _, terms in records])
    with open(path, "a") as file:
        for (step, index, _), terms in zip(records, host):
            line = {"step": step, "epoch": epoch, "frame": frame_ids[index]}
            line.update({name: float(value) for name, value in terms.items()})
            file.write(json.dumps(line) + "\n")
