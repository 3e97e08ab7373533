"""The Poisson suite: forward + backward of one solve, per path and mesh size.

Impls:
- ``host``: the project's CPU path (scipy LU through ``jax.pure_callback``), whole step jitted.
- ``dense``: the project's GPU path (dense pseudo-inverse on the device), whole step jitted.
- ``scipy-lu-host``: the original implementation's way: right-hand side on the device, copied to
  the host, scipy LU solve in float64, copied back; the backward pass likewise; eager.

The loss is ``sum(w * solve(J))`` with random ``w``; ``J`` are the Jacobians of a smooth non-rigid
deformation of the mesh, whose round trip gives ``roundtrip_error`` (max abs / diameter).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_row_fields, time_ms
from ngdjax import procedural
from ngdjax.mesh import connected_components
from ngdjax.operators import poisson_matrix
from ngdjax.poisson import HostPoissonFactor, build_poisson_solver, jacobians_from_vertices, poisson_rhs, solve

SIZES = (2000, 8000, 15000, 30000)


_jitted_step = jax.jit(jax.value_and_grad(lambda j, w, solver: jnp.sum(w * solve(solver, j))))


def _project_step(solver):
    """Jitted forward + backward of the loss through the project's solve; the solver's arrays are
    arguments of the jitted function, never baked-in constants."""
    return (lambda j, w: _jitted_step(j, w, solver)), lambda j: solve(solver, j)


def _scipy_lu_host_step(solver, vertices, faces):
    """Eager forward + backward with host LU solves and explicit device<->host copies."""
    labels = connected_components(faces, len(vertices))
    host = HostPoissonFactor(poisson_matrix(vertices, faces), labels, symmetric=False)  # scipy's default splu
    rhs = jax.jit(lambda j: poisson_rhs(solver, j))
    rhs_transpose = jax.jit(lambda j, b: jax.vjp(lambda jj: poisson_rhs(solver, jj), j)[1](b)[0])

    def forward(jacobians):
        return jnp.asarray(host.solve(np.asarray(rhs(jacobians))), jnp.float32)  # device -> host -> device

    def step(jacobians, weights):
        value = jnp.sum(weights * forward(jacobians))
        rhs_cotangent = jnp.asarray(host.solve_adjoint(np.asarray(weights)), jnp.float32)
        return value, rhs_transpose(jacobians, rhs_cotangent)

    return step, forward


def run(sizes=SIZES, dense_max_vertices_cpu: int = 10000) -> list[dict]:
    """Rows for every path at every size; ``dense`` on a CPU only up to ``dense_max_vertices_cpu``
    (building the dense inverse there is O(V^3) on few cores)."""
    device = device_row_fields()
    rows = []
    for target_v in sizes:
        vertices, faces = procedural.garment(target_v)
        deformed = vertices * np.array([1.2, 0.9, 1.1]) + 0.05 * np.sin(5.0 * vertices[:, [1, 2, 0]])
        diameter = float(np.linalg.norm(deformed.max(0) - deformed.min(0)))
        weights = jnp.asarray(np.random.default_rng(0).normal(size=vertices.shape), jnp.float32)
        methods = ["host", "scipy-lu-host"]
        if device["device"] == "gpu" or len(vertices) <= dense_max_vertices_cpu:
            methods.insert(0, "dense")
        for impl in methods:
            t0 = time.perf_counter()
            solver = build_poisson_solver(vertices, faces, method="host" if impl == "scipy-lu-host" else impl)
            jax.block_until_ready(solver)
            build_s = time.perf_counter() - t0
            make = _scipy_lu_host_step if impl == "scipy-lu-host" else lambda s, *_: _project_step(s)
            step, forward = make(solver, vertices, faces)
            jacobians = jacobians_from_vertices(solver, jnp.asarray(deformed, jnp.float32))
            error = float(np.abs(np.asarray(forward(jacobians)) - (deformed - deformed.mean(0))).max() / diameter)
            ms, reps = time_ms(lambda: step(jacobians, weights))
            rows.append(dict(suite="poisson", impl=impl, **device, ms=ms, reps=reps, vertices=len(vertices),
                             roundtrip_error=error, build_s=round(build_s, 3)))
            print(f"  poisson {impl:14s} V={len(vertices):6d}  {ms:8.3f} ms  err {error:.2e}", flush=True)
    return rows
