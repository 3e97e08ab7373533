"""Who owns a run directory: the manifest ``run.json``, written before any other file of a run.

A fit writes only into a run directory that is new, empty, or a run of ours (it holds ``run.json``).
:func:`inspect_run_dir` decides, writing nothing, whether the run may go ahead:

- a new or empty directory: a fresh run;
- a run of ours: refused unless ``--resume`` (continue it) or ``--overwrite`` (replace all of it);
- anything else (a file, a directory with other content): refused, even with ``--overwrite``, so
  that no file we did not write is ever deleted.

``--resume`` compares the resolved config with the run's: a change to a key outside
:data:`RESUME_SAFE` (network sizes, deformation model, sequence, seed, remeshing ...), or to the
sequence's files, is refused with the list of differences. :func:`take_run_dir` then, once every
input has been checked, removes the previous run (``--overwrite``) and writes the manifest.
The manifest's ``state`` is ``running``, ``finished`` or ``failed`` (with the error).

Commands that write many runs under one ``--out`` (``experiments.suite``, ``experiments.fit_many``)
claim it the same way with :func:`claim_output_dir`: new, empty, or holding their own manifest.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
from importlib import metadata

from ngdjax.config import flatten
from ngdjax.errors import InputError
from ngdjax.io import write_text
from ngdjax.outputs import MANIFEST
FORMAT = "ngdjax-run-1"
# Keys that may change on --resume: they change neither the state's shapes nor what it means.
# The appearance stage restarts on every resume, so all of texture.* is safe; optim.epochs may grow
# (or shrink to no less than the epoch already reached).
RESUME_SAFE = ("name", "render", "output.", "data.synth_config", "optim.epochs", "optim.checkpoint_every",
               "optim.static.", "optim.net.", "optim.adam_eps", "optim.clip_static", "loss.", "texture.")
SEQUENCE_FILES = ("sequence.yaml", "body.npz", "camera.npz")


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a run will do with its directory: ``mode`` is "new", "resume" or "overwrite";
    ``changed`` lists the safe keys that differ from the resumed run's config."""

    directory: str
    mode: str
    changed: tuple[str, ...] = ()


def inspect_run_dir(directory: str, config: dict, resume: bool, overwrite: bool,
                    reached_epoch: int | None = None) -> RunPlan:
    """Decide what the run may do with ``directory`` (nothing is written). ``config``: the resolved
    config as nested data; ``reached_epoch``: the geometry epoch of the run's checkpoint, if any.

    Raises:
        InputError: the directory is not ours to write, or --resume would change what the state means.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise InputError(f"{directory}: exists and is not a directory; choose another --out")
    if not os.path.isdir(directory) or not os.listdir(directory):
        return RunPlan(directory, "new")
    manifest_path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(manifest_path):
        raise InputError(f"{directory}: not empty and not an ngdjax run (no {MANIFEST}); nothing is written or "
                         "deleted there: choose a new or empty --out")
    manifest = read_manifest(directory)
    if overwrite:
        return RunPlan(directory, "overwrite")
    if not resume:
        raise InputError(f"{directory}: holds a {manifest['state']} run ({MANIFEST}); pass --resume to continue it, "
                         "--overwrite to replace it, or --out for another directory")
    unsafe, safe = config_differences(manifest["config"], config)
    new_epochs = config["optim"]["epochs"]
    if reached_epoch is not None and new_epochs < reached_epoch:
        unsafe.append(f"optim.epochs: {new_epochs} is below the epoch the run already reached ({reached_epoch})")
    if unsafe:
        raise InputError(*[f"{directory}: --resume with a different config: {line}" for line in unsafe],
                         f"{directory}: these keys would change the saved state's shapes or meaning; use --overwrite "
                         f"or another --out (keys safe to change on resume: {', '.join(RESUME_SAFE)})")
    return RunPlan(directory, "resume", tuple(safe))


def claim_output_dir(out: str, manifest_name: str, record: dict, owner: str) -> None:
    """Make ``out`` the output directory of a command that writes many runs (a suite, fit_many):
    it must be new, empty, or hold that command's own manifest ``manifest_name`` whose ``format``
    is ``record["format"]``; then ``record`` is written as the manifest (first, before any other
    file). Nothing is written or deleted when the check fails.

    Args:
        out: the directory (``--out``).
        manifest_name: the manifest's file name under ``out`` (e.g. ``suite_run.json``).
        record: the manifest to write; its ``format`` key names whose output this is.
        owner: the command's output in words (``suite``, ``fit_many output``), for the messages.

    Raises:
        InputError: one line: ``out`` is a file, a directory with other content and no
            manifest, or one whose manifest is unreadable or of another format.
    """
    manifest = os.path.join(out, manifest_name)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out}: exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(manifest):
        raise InputError(f"--out {out}: not empty and holds no {owner} ({manifest_name}); a {owner} is written only "
                         "into a new or empty directory or its own earlier output, so nothing there is overwritten")
    if os.path.isfile(manifest):
        try:
            with open(manifest) as file:
                found = json.load(file)
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict) or found.get("format") != record["format"]:
            raise InputError(f"{manifest}: not an ngdjax {owner} manifest (format {record['format']}); nothing is "
                             "written or deleted there: choose a new or empty --out")
    os.makedirs(out, exist_ok=True)
    write_text(manifest, json.dumps(record, indent=1))


def sequence_problems(directory: str, sequence_dir: str) -> list[str]:
    """[a line] when the sequence's files differ from those the run in ``directory`` started on."""
    if read_manifest(directory).get("sequence") == sequence_fingerprint(sequence_dir):
        return []
    return [f"{directory}: --resume on a changed sequence: the files of {sequence_dir} ({', '.join(SEQUENCE_FILES)} "
            "or the template) differ from those the run started on; use --overwrite or another --out"]


def take_run_dir(plan: RunPlan, config: dict, sequence_dir: str, command: list[str]) -> None:
    """Make ``plan.directory`` this run's: remove the previous run (overwrite), then write the
    manifest (state ``running``), keeping the history of earlier commands on resume."""
    history = []
    if plan.mode == "resume":
        previous = read_manifest(plan.directory)
        history = previous.get("history", []) + [{"command": previous["command"], "at": previous["updated"],
                                                  "state": previous["state"]}]
    if plan.mode == "overwrite":
        for entry in os.listdir(plan.directory):
            path = os.path.join(plan.directory, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    now = _now()
    write_manifest(plan.directory, {
        "format": FORMAT, "state": "running", "config_hash": config_hash(config), "config": config,
        "sequence": sequence_fingerprint(sequence_dir), "command": command, "version": _version(),
        "created": now if plan.mode != "resume" else previous["created"], "updated": now,
        "resumed_with_changes": list(plan.changed), "history": history,
    })


def mark(directory: str, state: str, error: str | None = None) -> None:
    """Set the manifest's ``state`` ("finished" or "failed", with ``error``)."""
    manifest = read_manifest(directory)
    manifest.update(state=state, updated=_now())
    if error is None:
        manifest.pop("error", None)
    else:
        manifest["error"] = error
    write_manifest(directory, manifest)


def read_manifest(directory: str) -> dict:
    """The run's manifest. Raises InputError when it is unreadable or not ours."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as file:
            manifest = json.load(file)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: unreadable run manifest ({error}); remove the directory or choose another --out"
                         ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not an ngdjax run manifest (format {FORMAT})")
    return manifest


def write_manifest(directory: str, manifest: dict) -> None:
    os.makedirs(directory, exist_ok=True)
    write_text(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=1))


def config_differences(old: dict, new: dict) -> tuple[list[str], list[str]]:
    """(unsafe, safe) lines ``key: old -> new`` for every dotted key whose value differs."""
    old_flat, new_flat = flatten(old), flatten(new)
    unsafe, safe = [], []
    for key in sorted(set(old_flat) | set(new_flat)):
        if old_flat.get(key) != new_flat.get(key):
            line = f"{key}: {old_flat.get(key)!r} -> {new_flat.get(key)!r}"
            (safe if is_resume_safe(key) else unsafe).append(line)
    return unsafe, safe


def is_resume_safe(key: str) -> bool:
    return any(key == safe or (safe.endswith(".") and key.startswith(safe)) for safe in RESUME_SAFE)


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def sequence_fingerprint(sequence_dir: str) -> str | None:
    """A hash of the sequence's metadata, body, camera and template files (None without sequence.yaml)."""
    import yaml

    metadata_path = os.path.join(sequence_dir, "sequence.yaml")
    if not os.path.isfile(metadata_path):
        return None
    with open(metadata_path) as file:
        template = str((yaml.safe_load(file) or {}).get("template", ""))
    digest = hashlib.sha256()
    for name in SEQUENCE_FILES + (template,):
        path = os.path.join(sequence_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as file:
                digest.update(name.encode() + b"\0" + file.read())
    return digest.hexdigest()[:16]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    try:
        return metadata.version("ngdjax")
    except metadata.PackageNotFoundError:
        return "unknown"
