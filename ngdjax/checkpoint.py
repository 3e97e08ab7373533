"""Checkpoints that survive interruption: each save writes ``step_XXXXXXXX.msgpack`` (the state
pytree, flax serialisation) and ``step_XXXXXXXX.npz`` (host arrays such as the current template),
then atomically replaces ``latest.json`` naming them; older files are removed afterwards. A crash
at any point leaves the previous checkpoint readable."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
from flax import serialization

from ngdjax.io import write_atomic

LATEST = "latest.json"


def save_checkpoint(directory: str, state, host_arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Save ``state`` (a pytree of arrays), ``host_arrays`` and JSON-able ``meta`` (must hold ``step``)."""
    os.makedirs(directory, exist_ok=True)
    stem = f"step_{int(meta['step']):08d}"
    payload = serialization.to_bytes(state)
    write_atomic(os.path.join(directory, stem + ".msgpack"), lambda path: _write_bytes(path, payload))
    write_atomic(os.path.join(directory, stem + ".npz"), lambda path: np.savez(path, **host_arrays))
    record = dict(meta, state=stem + ".msgpack", arrays=stem + ".npz")
    write_atomic(os.path.join(directory, LATEST), lambda path: _write_bytes(path, json.dumps(record).encode()))
    for old in glob.glob(os.path.join(directory, "step_*")):
        if not os.path.basename(old).startswith(stem):
            os.remove(old)


def has_checkpoint(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, LATEST))


def load_checkpoint_meta(directory: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The latest checkpoint's meta and host arrays."""
    with open(os.path.join(directory, LATEST)) as file:
        meta = json.load(file)
    with np.load(os.path.join(directory, meta["arrays"])) as data:
        arrays = {key: data[key] for key in data.files}
    return meta, arrays


def load_checkpoint_state(directory: str, meta: dict, target):
    """The saved state, restored into the structure of ``target`` (same tree, same shapes)."""
    with open(os.path.join(directory, meta["state"]), "rb") as file:
        return serialization.from_bytes(target, file.read())


def _write_bytes(path: str, payload: bytes) -> None:
    with open(path, "wb") as file:
        file.write(payload)
