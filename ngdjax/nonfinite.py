"""Stopping a fit at its first non-finite value, cheaply.

Each step returns, next to its loss terms, one flag per parameter group (:func:`finite_by_group`:
every entry of the updated group is finite); the flags stay on the device with the losses, and the
loops fetch both once per epoch (one transfer, no sync per step). :func:`first_non_finite` then
names the first step whose loss or parameters went non-finite, and the loop raises
:class:`NonFiniteError` before it saves a checkpoint or writes a mesh, so the last good checkpoint
stays the latest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(RuntimeError):
    """The fit produced a NaN or inf; the message names the stage, epoch, step, frame, the loss
    terms of that step and the parameter group that first went non-finite."""


def finite_by_group(params: dict) -> dict[str, jax.Array]:
    """{group: bool scalar}: whether every leaf of ``params[group]`` is finite (inside a jitted step)."""
    return {group: jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))
            for group, tree in params.items()}


def first_non_finite(stage: str, epoch: int, steps: list[int], frames: list[int], terms: dict[str, np.ndarray],
                     finite: dict[str, np.ndarray]) -> str | None:
    """The message for the first bad step of an epoch, or None when all is finite.

    Args:
        stage: "geometry" or "appearance". steps, frames: the epoch's global step numbers and
            sequence frame indices (n,). terms: {name: (n,)} loss terms. finite: {group: (n,)} flags.
    """
    loss_ok = np.all([np.isfinite(values) for values in terms.values()], axis=0)
    params_ok = np.all([flags for flags in finite.values()], axis=0)
    bad = np.flatnonzero(~(loss_ok & params_ok))
    if not len(bad):
        return None
    row = int(bad[0])
    values = ", ".join(f"{name} {float(v[row]):.4g}" for name, v in terms.items())
    groups = [(group, int(np.flatnonzero(~flags)[0])) for group, flags in finite.items() if not flags.all()]
    first_group = min(groups, key=lambda item: item[1]) if groups else None
    where = (f"parameter group '{first_group[0]}' first non-finite after step {steps[first_group[1]]} "
             f"(frame {frames[first_group[1]]:04d})" if first_group else "parameters still finite")
    return (f"{stage} stage: non-finite values at epoch {epoch}, step {steps[row]} (frame {frames[row]:04d}): "
            f"loss terms {values}; {where}. Stopped; the last good checkpoint is kept (lower the learning rates "
            "or check the sequence's inputs, then --resume)")
