"""Runs ``experiments.fit`` in a subprocess that kills itself with SIGKILL at one chosen point,
for tests/test_faults.py: ``python tests/fault_driver.py POINT N -- FIT ARGS...``.

POINT is where the N-th event (counted from 1) sends SIGKILL to the process itself:
``step`` (the N-th geometry step), ``checkpoint`` (inside the N-th checkpoint save, after its state
file is written and before ``latest.json`` names it), ``remesh`` (right after the N-th remesh
event, before the epoch's checkpoint), ``appearance`` (the N-th appearance step), or ``none``.
The library's functions are wrapped here, in the test harness only.
"""

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def killer(point: str, n: int):
    """A function that, called once per event, kills the process at the ``n``-th call."""
    calls = {"count": 0}

    def event(*_):
        calls["count"] += 1
        if calls["count"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
    return event


def counting(function, event, before: bool = False):
    def wrapped(*args, **kwargs):
        if before:
            event()
        result = function(*args, **kwargs)
        if not before:
            event()
        return result
    return wrapped


def install(point: str, n: int) -> None:
    from ngdjax import checkpoint, texture, train

    event = killer(point, n)
    if point == "step":
        make = train.make_geometry_step
        train.make_geometry_step = lambda *a, **k: counting(make(*a, **k), event, before=True)
    elif point == "checkpoint":
        write = checkpoint.write_atomic

        def write_then_maybe_die(path, writer):
            write(path, writer)
            if path.endswith(".npz"):  # the state and host arrays are written; latest.json is not
                event()
        checkpoint.write_atomic = write_then_maybe_die
    elif point == "remesh":
        train.remesh_event = counting(train.remesh_event, event)
    elif point == "appearance":
        make = texture.make_texture_step
        texture.make_texture_step = lambda *a, **k: counting(make(*a, **k), event, before=True)
    elif point != "none":
        raise SystemExit(f"unknown kill point {point}")


if __name__ == "__main__":
    point, n, separator, *fit_args = sys.argv[1:]
    assert separator == "--"
    install(point, int(n))
    from experiments import fit

    sys.exit(fit.main(fit_args))
