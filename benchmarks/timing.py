"""Timing helpers shared by the benchmark suites (rows as docs/contracts.md section 6 fixes them)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import jax


def device_row_fields() -> dict:
    """``device`` ("gpu"/"cpu") and ``device_name`` of JAX's default device."""
    device = jax.devices()[0]
    if device.platform == "gpu":
        return {"device": "gpu", "device_name": device.device_kind}
    return {"device": "cpu", "device_name": f"{_cpu_model()} x{os.cpu_count()}"}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_ms(run: Callable[[], object], warmup: int = 3, min_reps: int = 20, min_seconds: float = 1.0,
            max_reps: int = 1000) -> tuple[float, int]:
    """Median wall time (ms) of ``run()`` with its device work finished, and the number of reps.

    ``run`` must return what it computed, so that it can be waited for
    (``jax.block_until_ready``) before the clock is read.
    """
    for _ in range(warmup):
        jax.block_until_ready(run())
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times), len(times)


def print_table(rows: list[dict], columns: list[str]) -> None:
    """Print rows as an aligned text table."""
    cells = [[_format(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.3f}"
    return str(value)
