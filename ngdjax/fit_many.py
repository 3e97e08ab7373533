"""Many fits at once, scheduled by Ray (``python -m experiments.fit_many``, ``experiments.suite --parallel``;
docs/fit_many.md).

Each fit is a :class:`Fit`: a name, the run directory it owns and a module-level function that
fits into it (``function(*args) -> dict``). :func:`run_fits` runs every fit as one Ray task in a
worker process of its own, reserving ``gpus_per_fit`` of Ray's GPU resource (so two fits share a
card only when asked, e.g. 0.5) and ``cpus_per_fit`` CPUs, and yields one outcome per fit as it
ends. Faults:

- a worker that dies (killed, out of memory, node lost) is a system failure: Ray runs the task
  again (up to ``retries`` times) and the fit resumes from its run directory's last checkpoint;
- an exception of the fit itself (bad input, a non-finite loss) is an application error: the
  task returns it as a ``failed`` outcome with its one-line error, and it is not retried.

Beside each run directory ``RUN`` the scheduler writes only ``RUN.attempts.jsonl`` (one line per
attempt: the command's invocation id, start time, process id, node) and ``RUN.log`` (the fit's log
lines, every attempt appended). ``ray`` (the ``cluster`` extra) is imported only when fits run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator

from ngdjax.errors import InputError
from ngdjax.io import write_text
from ngdjax.outputs import METRICS

log = logging.getLogger("ngdjax")

SUMMARY = "summary.json"
TABLE = "summary.md"
RAY_TEMP_DIR = os.path.join(tempfile.gettempdir(), "ray")  # a local instance's session logs (short: Unix sockets)
# (column title, metric, number format) of the summary table
COLUMNS = (("Chamfer", "chamfer_x1e3", "{:.3f}"), ("NC", "normal_consistency", "{:.3f}"),
           ("F@1cm", "fscore_1cm", "{:.3f}"), ("IoU", "mask_iou", "{:.3f}"), ("PSNR", "psnr", "{:.2f}"))


@dataclasses.dataclass(frozen=True)
class Fit:
    """One fit: ``function(*args)`` (a module-level function, so that a worker imports it) fits
    into ``run_dir`` and returns a dict; ``{"status": "failed", "error": line}`` or an exception
    is the fit's own failure."""

    name: str
    run_dir: str
    function: Callable[..., dict]
    args: tuple


# --- Inputs --------------------------------------------------------------------------------------

def sequence_problems(sequences: list[str]) -> list[str]:
    """One line per problem of the sequence directories given: none, one that is not a sequence,
    one listed twice, two with the same name (their run directories DIR/NAME would collide)."""
    if not sequences:
        return ["no sequences given: name one or more sequence directories (or --suite SUITE.yaml)"]
    problems, seen, names = [], set(), {}
    for path in sequences:
        real = os.path.realpath(path)
        if not os.path.isfile(os.path.join(path, "sequence.yaml")):
            problems.append(f"{path}: not a sequence directory (no sequence.yaml; docs/sequence_format.md)")
        elif real in seen:
            problems.append(f"{path}: listed twice")
        elif os.path.basename(real) in names:
            problems.append(f"{path}: has the same name as {names[os.path.basename(real)]}; their run directories "
                            f"would be the same (DIR/{os.path.basename(real)}): rename one")
        seen.add(real)
        names.setdefault(os.path.basename(real), path)
    return problems


def address_problem(address: str | None) -> str | None:
    """A line when ``--address`` names a host:port that does not answer within 5 s (Ray itself
    would wait minutes); None for a reachable one, ``auto`` or no address."""
    if address is None or address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return f"--address {address}: expected HOST:PORT (the head node's GCS, default port 6379), ray://HOST:PORT or auto"
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        return f"--address {address}: no Ray cluster answers there ({error})"
    return None


def connect(address: str | None):
    """Join the Ray cluster at ``address``, or start a local instance (its session files under
    :data:`RAY_TEMP_DIR`) when None. Workers' output stays in Ray's session logs; each fit's own
    log is ``RUN.log``. Returns the ``ray`` module. Raises InputError when no cluster answers."""
    problem = address_problem(address)
    if problem:
        raise InputError(problem)
    import ray

    try:
        if address is None:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, _temp_dir=RAY_TEMP_DIR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError) as error:
        hint = "" if os.environ.get("RAY_AUTH_MODE") else "; a cluster with token authentication needs RAY_AUTH_MODE=token"
        raise InputError(f"--address {address}: cannot join the Ray cluster ({str(error).splitlines()[0]}{hint})"
                         ) from error
    return ray


def start(address: str | None, gpus_per_fit: float | None, cpus_per_fit: float):
    """:func:`connect`, then check the resources a fit asks for against the cluster's nodes.

    Returns:
        (the ``ray`` module, connected; the GPUs per fit: ``gpus_per_fit``, or when None 1 where
        the cluster has GPUs and 0 where it has none).

    Raises:
        InputError: no cluster answers, or no node has the GPUs or CPUs one fit asks for.
    """
    if gpus_per_fit is not None and gpus_per_fit < 0 or cpus_per_fit <= 0:
        raise InputError("--gpus-per-fit must be >= 0 and --cpus-per-fit > 0")
    ray = connect(address)
    nodes = ray.nodes()
    gpus = default_gpus_per_fit(nodes) if gpus_per_fit is None else gpus_per_fit
    problem = resource_problem(nodes, gpus, cpus_per_fit)
    if problem:
        ray.shutdown()
        raise InputError(problem)
    return ray, gpus


def resource_problem(nodes: list[dict], gpus_per_fit: float, cpus_per_fit: float) -> str | None:
    """A line when no alive node of ``ray.nodes()`` has ``gpus_per_fit`` GPUs and ``cpus_per_fit`` CPUs."""
    alive = [node["Resources"] for node in nodes if node.get("Alive")]
    most_gpus = max((r.get("GPU", 0) for r in alive), default=0)
    most_cpus = max((r.get("CPU", 0) for r in alive), default=0)
    if gpus_per_fit > most_gpus:
        return f"--gpus-per-fit {gpus_per_fit:g}: no node of the Ray cluster has that many GPUs (the most is {most_gpus:g})"
    if cpus_per_fit > most_cpus:
        return f"--cpus-per-fit {cpus_per_fit:g}: no node of the Ray cluster has that many CPUs (the most is {most_cpus:g})"
    return None


def default_gpus_per_fit(nodes: list[dict]) -> float:
    """1 where the cluster has GPUs (one fit per card), else 0 (fits on CPU)."""
    return 1.0 if any(node["Resources"].get("GPU", 0) for node in nodes if node.get("Alive")) else 0.0


# --- Running -------------------------------------------------------------------------------------

def attempts_path(run_dir: str) -> str:
    return run_dir.rstrip(os.sep) + ".attempts.jsonl"


def log_path(run_dir: str) -> str:
    return run_dir.rstrip(os.sep) + ".log"


def read_attempts(run_dir: str, invocation: str) -> list[dict]:
    """The attempts of the command ``invocation`` at the fit of ``run_dir``, in order."""
    try:
        with open(attempts_path(run_dir)) as file:
            lines = [json.loads(line) for line in file if line.strip()]
    except (OSError, ValueError):
        return []
    return [line for line in lines if line.get("invocation") == invocation]


def attempt(fit: Fit, invocation: str) -> dict:
    """One attempt at ``fit``, in a Ray worker: record it, run it with its log lines going to
    ``RUN.log``, and return its outcome ``{"status", "error", "result", "ended", "node"}`` (the
    fit's own exception is a ``failed`` outcome; a dying worker returns nothing)."""
    os.makedirs(os.path.dirname(os.path.abspath(fit.run_dir)), exist_ok=True)
    node = socket.gethostname()
    with open(attempts_path(fit.run_dir), "a") as file:
        file.write(json.dumps({"invocation": invocation, "started": time.time(), "pid": os.getpid(), "node": node}) + "\n")
    handler = logging.FileHandler(log_path(fit.run_dir))
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        result = fit.function(*fit.args) or {}
        status, error = result.get("status", "ok"), result.get("error")
    except Exception as exception:  # noqa: BLE001  the fit's own failure: reported, not retried
        result, status = {}, "failed"
        problems = getattr(exception, "problems", None) or [f"{type(exception).__name__}: {exception}"]
        error = "; ".join(line for problem in problems for line in str(problem).splitlines()[:1])
        log.error("%s: failed: %s", fit.name, error)
    finally:
        log.removeHandler(handler)
        handler.close()
    return {"status": status, "error": error, "result": result, "ended": time.time(), "node": node}


def run_fits(ray, fits: list[Fit], invocation: str, gpus_per_fit: float, cpus_per_fit: float = 1,
             retries: int = 3, poll_s: float = 1.0) -> Iterator[tuple[Fit, dict]]:
    """Run every fit as a Ray task (see the module docstring) and yield ``(fit, outcome)`` as each
    ends; logs a progress line (done / running / queued / failed) whenever it changes. A fit whose
    worker died more than ``retries`` times ends ``failed`` with Ray's error."""
    env = {}
    if 0 < gpus_per_fit < 1:  # JAX would take 75% of the card; a share takes its fraction of it
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpus_per_fit:.3f}"
    task = ray.remote(attempt).options(num_cpus=cpus_per_fit, num_gpus=gpus_per_fit, max_retries=retries,
                                       retry_exceptions=False, runtime_env={"env_vars": env} if env else None)
    pending = {task.remote(fit, invocation): fit for fit in fits}
    done = failed = 0
    shown = None
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
        for ref in ready:
            fit = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as error:  # the worker died more often than retried
                line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                outcome = {"status": "failed", "error": f"{type(error).__name__}: {line}", "result": {},
                           "ended": time.time(), "node": None}
            done += 1
            failed += outcome["status"] != "ok"
            yield fit, outcome
        running = sum(bool(read_attempts(fit.run_dir, invocation)) for fit in pending.values())
        state = (done, failed, running)
        if state != shown:
            log.info("fits: %d/%d done (%d failed), %d running, %d queued", done, len(fits), failed, running,
                     len(pending) - running)
            shown = state


# --- Summary -------------------------------------------------------------------------------------

def read_metrics(run_dir: str) -> dict:
    """The run's metrics.json, or {} when it has none."""
    try:
        with open(os.path.join(run_dir, METRICS)) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def summary_row(fit: Fit, outcome: dict | None, invocation: str) -> dict:
    """The summary row of ``fit``: ``outcome`` None for a fit finished before (skipped).

    Returns:
        ``{"name", "status"`` (``ok``, ``failed`` or ``skipped``: finished before), ``"error"``
        (one line, failed only), ``"metrics"`` (every metric's mean), ``"seconds"`` (wall time in
        this command, retries included; 0 when skipped), ``"device"``, ``"node"``, ``"attempts"``
        (in this command), ``"run_dir"}``.
    """
    attempts = read_attempts(fit.run_dir, invocation)
    metrics = read_metrics(fit.run_dir) if outcome is None or outcome["status"] == "ok" else {}
    row = {"name": fit.name, "status": "skipped" if outcome is None else outcome["status"]}
    if outcome is not None and outcome["status"] != "ok":
        row["error"] = outcome["error"]
    seconds = outcome["ended"] - attempts[0]["started"] if outcome is not None and attempts else 0.0
    return {**row, "metrics": {key: value["mean"] for key, value in metrics.items()
                               if isinstance(value, dict) and "mean" in value},
            "seconds": round(seconds, 2), "device": metrics.get("device"),
            "node": outcome["node"] if outcome else None, "attempts": len(attempts), "run_dir": fit.run_dir}


def summary_table(rows: list[dict]) -> str:
    """A markdown table, one line per fit (a failed fit shows its error)."""
    head = ["sequence", "status", *[title for title, _, _ in COLUMNS], "seconds", "device", "attempts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        status = f"failed: {row['error']}" if row["status"] == "failed" else row["status"]
        values = [row["metrics"].get(key) for _, key, _ in COLUMNS]
        cells = ["-" if value is None else form.format(value) for value, (_, _, form) in zip(values, COLUMNS)]
        lines.append("| " + " | ".join([row["name"], status.replace("|", "/"), *cells, f"{row['seconds']:.1f}",
                                        row["device"] or "-", str(row["attempts"])]) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: str, rows: list[dict]) -> str:
    """Write ``out/summary.json`` and ``out/summary.md``; returns the table."""
    table = summary_table(rows)
    write_text(os.path.join(out, SUMMARY), json.dumps(rows, indent=1))
    write_text(os.path.join(out, TABLE), table)
    return table
