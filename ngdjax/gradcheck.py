"""Gradient checks, stage by stage: analytic directional derivatives against central finite
differences along random unit directions.

For a scalar function ``f`` of a pytree ``x`` and a random unit direction ``d`` (same tree):
analytic = <grad f(x), d>, numeric = (f(x + eps d) - f(x - eps d)) / (2 eps), and the stage's
error is max |analytic - numeric| / max(|analytic|, |numeric|, floor) over the directions.
Where an op's gradient is by design the derivative of a slightly different function (nvdiffrast's
barycentrics ignore their clamp), ``numeric`` differentiates that ``reference`` function instead.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class StageResult:
    """One row of the table. ``how`` says what the check compares (for ops whose gradient is by
    design not a finite-difference derivative, what it is checked against instead)."""

    stage: str
    how: str
    directions: int
    max_relative_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_relative_error) and self.max_relative_error <= self.tolerance)


def random_direction(key: jax.Array, tree) -> object:
    """A random direction with the structure of ``tree``, unit norm over all its leaves."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    parts = [jax.random.normal(k, jnp.shape(leaf), jnp.result_type(leaf)) for k, leaf in zip(keys, leaves)]
    norm = jnp.sqrt(sum(jnp.sum(p.astype(jnp.float64) ** 2) for p in parts)) if parts else 1.0
    return jax.tree_util.tree_unflatten(treedef, [(p / norm).astype(p.dtype) for p in parts])


def directional_errors(
    function: Callable, x, key: jax.Array, directions: int, eps: float, floor: float = 1e-8,
    reference: Callable | None = None,
) -> list[float]:
    """Relative errors of the analytic directional derivative of scalar ``function`` at ``x``
    along ``directions`` random unit directions, against central differences of ``reference``
    (default ``function``)."""
    value_and_grad = jax.jit(jax.value_and_grad(function))
    evaluate = jax.jit(reference or function)
    _, grad = value_and_grad(x)
    errors = []
    for k in jax.random.split(key, directions):
        d = random_direction(k, x)
        analytic = float(sum(jnp.vdot(g.astype(jnp.float64), v.astype(jnp.float64))
                             for g, v in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(d))))
        shift = lambda s: jax.tree_util.tree_map(lambda a, b: a + (s * eps) * b, x, d)  # noqa: E731
        numeric = (float(evaluate(shift(1.0))) - float(evaluate(shift(-1.0)))) / (2.0 * eps)
        errors.append(abs(analytic - numeric) / max(abs(analytic), abs(numeric), floor))
    return errors


def check_stage(stage: str, how: str, function: Callable, x, key: jax.Array, tolerance: float,
                eps: float, directions: int = 4, reference: Callable | None = None) -> StageResult:
    """Run :func:`directional_errors` and package the row."""
    errors = directional_errors(function, x, key, directions, eps, reference=reference)
    return StageResult(stage, how, directions, float(np.max(errors)), tolerance)


def format_table(results: list[StageResult]) -> str:
    """A fixed-width text table of the results."""
    rows = [("stage", "directions", "max rel. error", "tolerance", "ok", "checked against")]
    rows += [(r.stage, str(r.directions), f"{r.max_relative_error:.2e}", f"{r.tolerance:.0e}",
              "yes" if r.passed else "NO", r.how) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)
