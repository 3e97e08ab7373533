"""Runs a fit in a subprocess that kills itself with SIGKILL at one chosen point, for
tests/test_faults.py: ``python tests/fault_driver.py POINT N -- --cfg CFG --out DIR [--resume] [key=value ...]``.

POINT is where the N-th event (counted from 1) sends SIGKILL to the process itself: ``step`` (after
the N-th geometry step) and ``appearance`` (after the N-th appearance step), through the loops'
``on_step`` callback; ``checkpoint`` (inside the N-th checkpoint save, after its state files are
written and before ``latest.json`` names them) and ``remesh`` (right after the N-th remesh event,
before the epoch's checkpoint), by wrapping those two functions here, in the test harness only;
or ``none``.
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def killer(n: int):
    """A function that, called once per event, kills the process at the ``n``-th call."""
    calls = {"count": 0}

    def event(*_):
        calls["count"] += 1
        if calls["count"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
    return event


def wrap_checkpoint_and_remesh(point: str, event) -> None:
    from ngdjax import checkpoint, geometry_fit

    if point == "checkpoint":
        write = checkpoint.write_atomic

        def write_then_maybe_die(path, writer):
            write(path, writer)
            if path.endswith(".npz"):  # the state and host arrays are written; latest.json is not
                event()
        checkpoint.write_atomic = write_then_maybe_die
    elif point == "remesh":
        remesh_event = geometry_fit.remesh_event

        def remesh_then_maybe_die(*args, **kwargs):
            result = remesh_event(*args, **kwargs)
            event()
            return result
        geometry_fit.remesh_event = remesh_then_maybe_die


def main() -> int:
    point, n, separator, *fit_args = sys.argv[1:]
    assert separator == "--" and point in ("step", "appearance", "checkpoint", "remesh", "none")
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg")
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(fit_args)

    from ngdjax.config import load_config
    from ngdjax.fit_config import FitConfig
    from ngdjax.pipeline import run_fit

    event = killer(int(n))
    wrap_checkpoint_and_remesh(point, event)
    stage = {"step": "geometry", "appearance": "appearance"}.get(point)
    on_step = (lambda step: event() if step.stage == stage else None) if stage else None
    config = load_config(args.cfg, FitConfig, args.overrides)
    run_fit(config, args.out, resume=args.resume, progress=False, on_step=on_step)
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
