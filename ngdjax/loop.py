"""The loop machinery both fitting stages share (docs/method.md 9): the shuffled frame order of each
epoch, the steps' random keys, the learning-rate schedules, fetching an epoch's device values in
one transfer, the non-finite check, and the JSON-lines log.

Determinism: the frame order of epoch ``e`` comes from ``(seed, e)`` and a step's random key from
``(base key, global step)``, so a resumed run repeats exactly what an uninterrupted one does.

A loop reports each finished step to an optional ``on_step(StepEvent)`` callback (progress
displays, benchmarks timing the steps, tests injecting faults): the loops are never patched.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ngdjax.io import write_text
from ngdjax.nonfinite import NonFiniteError, first_non_finite


class StepEvent(NamedTuple):
    """One finished step: the stage ("geometry" or "appearance"), its epoch, global step number,
    sequence frame index, and whether the dynamic part (network or ``T^D``) was on."""

    stage: str
    epoch: int
    step: int
    frame: int
    dynamic: bool


OnStep = Callable[[StepEvent], None]


def epoch_order(seed: int, epoch: int, n_frames: int) -> np.ndarray:
    """The shuffled frame order of ``epoch`` (a permutation of range(n_frames))."""
    return np.random.default_rng([seed, epoch]).permutation(n_frames)


@functools.partial(jax.jit, static_argnums=2)
def _fold_in_range(base_key: Array, first: Array, count: int) -> Array:
    return jax.vmap(lambda step: jax.random.fold_in(base_key, step))(first + jnp.arange(count))


def step_keys(base_key: Array, first_step: int, count: int) -> np.ndarray:
    """(count, 2) host copies of ``fold_in(base_key, s)`` for steps ``first_step, ...``: one
    device call per epoch instead of one per step (per-step dispatches cost host time that
    the GPU step is short enough to feel)."""
    return np.asarray(_fold_in_range(base_key, jnp.int32(first_step), count))


def log_linear_schedule(lr_start: float, lr_end: float, decay_steps: int, offset: int) -> Callable[[Array], Array]:
    """lr(s) = exp((1 - t) ln lr_start + t ln lr_end), t = clip((count + offset) / decay_steps, 0, 1)
    (docs/method.md 9; the method's step counter starts at N, the number of frames: ``offset``)."""
    log_start, log_end = float(np.log(lr_start)), float(np.log(lr_end))

    def schedule(count: Array) -> Array:
        t = jnp.clip((count.astype(jnp.float32) + offset) / decay_steps, 0.0, 1.0)
        return jnp.exp((1.0 - t) * log_start + t * log_end)

    return schedule


@jax.jit
def _stack_steps(values: list):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *values)


def fetch_epoch(values: list):
    """Host copies of an epoch's per-step device values (a list of equal pytrees), stacked on the
    device first: one transfer per leaf instead of one per step and leaf (600 small transfers
    cost 40 ms an epoch on a GPU, 0.4 ms a step)."""
    return jax.device_get(_stack_steps(values))


def close_epoch(stage: str, epoch: int, steps: list[int], frames: list[int], terms: list[dict], finite: list[dict],
                log_path: str, log_stage: str | None = None) -> dict[str, np.ndarray]:
    """The end of an epoch in both loops: fetch the per-step loss ``terms`` and parameter
    ``finite`` flags (device pytrees, one per step) in one transfer, append the epoch's log lines
    (with ``"stage": log_stage``), and raise :class:`NonFiniteError` if any step went non-finite.
    Returns the host terms {name: (n,)}."""
    host_terms, host_finite = fetch_epoch(list(zip(terms, finite)))
    append_log(log_path, step_lines(epoch, steps, frames, host_terms, log_stage))
    failure = first_non_finite(stage, epoch, steps, frames, host_terms, host_finite)
    if failure:
        raise NonFiniteError(failure)
    return host_terms


def append_log(path: str, lines: list[dict]) -> None:
    """Append one JSON line per step to the run's log."""
    with open(path, "a") as file:
        file.writelines(json.dumps(line) + "\n" for line in lines)


def step_lines(epoch: int, steps: list[int], frames: list[int], terms: dict, stage: str | None = None) -> list[dict]:
    """The log lines of an epoch: step, epoch, frame and every term's value (``terms`` {name: (n,)})."""
    head = {} if stage is None else {"stage": stage}
    return [dict(head, step=step, epoch=epoch, frame=frame, **{name: float(values[row]) for name, values in terms.items()})
            for row, (step, frame) in enumerate(zip(steps, frames))]


def keep_log_lines(path: str, keep: Callable[[dict], bool]) -> None:
    """Rewrite the log with only the lines ``keep`` accepts (a resumed stage drops what it redoes)."""
    if not os.path.exists(path):
        return
    with open(path) as file:
        kept = [line for line in file if line.strip() and keep(json.loads(line))]
    write_text(path, "".join(kept))
