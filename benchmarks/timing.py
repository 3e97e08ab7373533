"""Timing helpers shared by the benchmark suites (rows as docs/contracts.md section 6 fixes them)."""

from __future__ import annotations

import collections
import glob
import gzip
import json
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


def gpu_kernel_times(trace_file: str) -> dict[str, float]:
    """Total microseconds per event name on the trace's GPU device tracks."""
    with gzip.open(trace_file, "rt") as handle:
        trace = json.load(handle)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names = {e["pid"]: e.get("args", {}).get("name", "") for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    gpu = {pid for pid, name in names.items() if "GPU" in name or "/device:" in name}
    totals = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event.get("pid") in gpu:
            totals[event["name"]] += float(event.get("dur", 0.0))
    return dict(totals)


def gpu_time_per_call(call, calls: int, directory: str) -> dict[str, float]:
    """Microseconds of GPU time per call of ``call()``, per kernel name, from a profiler trace of
    ``calls`` calls written to ``directory``. ``call`` must wait for its own device work, so that
    every kernel of a call lands in the trace; CUPTI records every kernel of the process, so the
    torch kernels of an in-jit callback or of plain torch code count as well as XLA's."""
    with jax.profiler.trace(directory, create_perfetto_trace=True):
        for _ in range(calls):
            call()
    trace_file = sorted(glob.glob(os.path.join(directory, "**", "*perfetto_trace.json.gz"), recursive=True))[-1]
    return {name: us / calls for name, us in gpu_kernel_times(trace_file).items()}
