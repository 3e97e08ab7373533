"""A benchmark suite: several synthetic cases, each generated, fitted and scored by one command
(``python -m experiments.suite SUITE.yaml --out DIR``; docs/suite.md).

A suite file names a fit config and a synthetic config that every case starts from, and the
cases, each a few keys set over them::

    fit: ../default_cpu.yaml       # the fit config of every case
    synth: ../synth/demo.yaml      # the synthetic config every case starts from
    fit_set: {}                    # optional: keys set over the fit config for every case
    synth_set: {}                  # optional: keys set over the synthetic config for every case
    cases:
      - name: artist_tshirt_walk
        synth_set:
          garment: tshirt
          outfit: {folder: ../../ngdjax/data/garments/female_casualsuit01, piece: top}
          motion: {bvh: ../../ngdjax/data/mocap/131_01.bvh, bvh_start_s: 4.4}
        fit_set: {}                # optional: keys set over the fit config for this case

Relative paths in a suite file start at its directory. Under DIR the suite writes only:
``suite_run.json`` (its manifest, first), ``sequences/NAME-DIGEST/`` (each case's sequence,
reused while the synthetic config and the files it names are unchanged) with
``NAME-DIGEST.difficulty.json``, ``runs/NAME-DIGEST/`` (each case's run directory, as
``experiments.fit --out`` writes it; a finished run is not fitted again, an interrupted one
resumes), and ``suite.json``, ``suite.md``, ``suite.png`` (:mod:`ngdjax.suite_report`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
import traceback

from ngdjax import outputs, run_dir
from ngdjax.config import Layer, load_config, read_yaml_mapping, to_dict
from ngdjax.data import synthetic
from ngdjax.data.loader import clear_sequence_dir
from ngdjax.errors import InputError
from ngdjax.fit_config import FitConfig
from ngdjax.io import write_text

log = logging.getLogger("ngdjax")

SUITE_KEYS = ("fit", "synth", "fit_set", "synth_set", "cases")
CASE_KEYS = ("name", "fit_set", "synth_set")
MANIFEST = "suite_run.json"
FORMAT = "ngdjax-suite-1"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclasses.dataclass(frozen=True)
class SuiteCase:
    """One case, its configs checked: ``synth`` generates ``sequence_dir``; ``fit`` (its
    ``data.sequence`` set to ``sequence_dir``) fits it into ``run_dir``."""

    name: str
    synth: synthetic.SynthConfig
    fit: FitConfig
    sequence_dir: str
    run_dir: str

    @property
    def difficulty_path(self) -> str:
        return self.sequence_dir + ".difficulty.json"


def load_suite(path: str, out: str, overrides: tuple[str, ...] = ()) -> list[SuiteCase]:
    """Read and check a suite file and every case's configs (nothing is computed or written).

    Args:
        path: the suite YAML. out: the suite's output directory.
        overrides: ``key=value`` for the fit config of every case, ``synth.key=value`` for the
            synthetic config.

    Raises:
        InputError: one line per problem, naming the file, the case and the key.
    """
    raw = read_yaml_mapping(path, "suite file not found")
    directory = os.path.dirname(os.path.abspath(path))
    problems = [f"{path}: unknown key '{key}' (known: {', '.join(SUITE_KEYS)})" for key in raw if key not in SUITE_KEYS]
    problems += [f"{path}: missing key '{key}'" for key in ("fit", "synth", "cases") if key not in raw]
    for key in ("fit_set", "synth_set"):
        if not isinstance(raw.get(key, {}), dict):
            problems.append(f"{path}: '{key}' must be a mapping of keys to values")
    cases = raw.get("cases", [])
    if not isinstance(cases, list) or not cases or not all(isinstance(case, dict) for case in cases):
        problems.append(f"{path}: 'cases' must be a non-empty list of mappings")
        cases = []
    problems += _case_problems(path, cases)
    if problems:
        raise InputError(*problems)
    fit_path, synth_path = (os.path.normpath(os.path.join(directory, str(raw[key]))) for key in ("fit", "synth"))
    synth_overrides = tuple(o.removeprefix("synth.") for o in overrides if o.startswith("synth."))
    fit_overrides = tuple(o for o in overrides if not o.startswith("synth."))
    loaded, problems = [], []
    for case in cases:
        try:
            loaded.append(_load_case(path, directory, raw, case, fit_path, synth_path, fit_overrides, synth_overrides, out))
        except InputError as error:
            problems += error.problems
    if problems:
        raise InputError(*problems)
    return loaded


def select_cases(cases: list[SuiteCase], names: list[str], path: str) -> list[SuiteCase]:
    """The cases named in ``names`` (``--cases``), in the suite's order; InputError for a name the
    suite at ``path`` does not have."""
    known = [case.name for case in cases]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(f"--cases: no case named {', '.join(unknown)} in {path} (cases: {', '.join(known)})")
    return [case for case in cases if case.name in names]


def _case_problems(path: str, cases: list[dict]) -> list[str]:
    problems, seen = [], set()
    for i, case in enumerate(cases):
        name = case.get("name")
        where = f"{path}: case {i + 1}"
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problems.append(f"{where}: 'name' must be a name of letters, digits, '_', '-' or '.', got {name!r}")
        elif name in seen:
            problems.append(f"{where}: the name '{name}' is used twice")
        seen.add(name)
        problems += [f"{where}: unknown key '{key}' (known: {', '.join(CASE_KEYS)})" for key in case if key not in CASE_KEYS]
        problems += [f"{where}: '{key}' must be a mapping of keys to values" for key in ("fit_set", "synth_set")
                     if not isinstance(case.get(key, {}), dict)]
    return problems


def _load_case(path: str, directory: str, raw: dict, case: dict, fit_path: str, synth_path: str,
               fit_overrides: tuple[str, ...], synth_overrides: tuple[str, ...], out: str) -> SuiteCase:
    """One case's configs: the suite's and the case's keys set over the files, then the overrides."""
    name = case["name"]
    source = f"{path}: case '{name}'"
    synth_layers = (Layer(raw.get("synth_set", {}), f"{path}: 'synth_set'", directory),
                    Layer(case.get("synth_set", {}), f"{source}: 'synth_set'", directory))
    synth = load_config(synth_path, synthetic.SynthConfig, synth_overrides, synth_layers)
    synthetic.check_config(synth, source=source)
    sequence_dir = os.path.join(os.path.abspath(out), "sequences", f"{name}-{content_digest(to_dict(synth))}")
    data = {"name": name, "data": {"sequence": sequence_dir, "synth_config": None}}
    fit_layers = (Layer(raw.get("fit_set", {}), f"{path}: 'fit_set'", directory),
                  Layer(case.get("fit_set", {}), f"{source}: 'fit_set'", directory),
                  Layer(data, f"{path}: the suite", directory))
    fit = load_config(fit_path, FitConfig, fit_overrides, fit_layers)
    digest = content_digest({**to_dict(fit), "data": {"sequence": os.path.basename(sequence_dir)}})
    return SuiteCase(name, synth, fit, sequence_dir, os.path.join(os.path.abspath(out), "runs", f"{name}-{digest}"))


def content_digest(tree: dict) -> str:
    """A short digest of a config tree in which every value that names an existing file or
    directory stands for its contents (so a suite's cache survives moving the repository, and a
    changed BVH clip or garment is noticed)."""
    def contents(value):
        if isinstance(value, dict):
            return {key: contents(v) for key, v in value.items()}
        if isinstance(value, list):
            return [contents(v) for v in value]
        if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
            return "sha256:" + _path_digest(value)
        return value
    return hashlib.sha256(json.dumps(contents(tree), sort_keys=True).encode()).hexdigest()[:10]


def _path_digest(path: str) -> str:
    digest = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    for name in files:
        digest.update(os.path.relpath(name, path).encode() + b"\0")
        with open(name, "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()


# --- Running -------------------------------------------------------------------------------------

def take_suite_dir(out: str, suite_path: str) -> None:
    """Make ``out`` the suite's (new, empty, or a suite's before: :func:`ngdjax.run_dir.claim_output_dir`)
    and write its manifest; raise InputError otherwise."""
    run_dir.claim_output_dir(out, MANIFEST, {"format": FORMAT, "suite": os.path.abspath(suite_path)}, "suite")


def run_case(case: SuiteCase, progress: bool = True) -> dict:
    """Generate (unless cached), fit (unless finished; resumed if interrupted) and score one case.

    Returns:
        its suite.json row (docs/contracts.md, "suite.json"): a failure of the case, whatever
        its cause, is the row's ``status: failed`` and ``error``, never an exception.
    """
    from ngdjax.pipeline import run_fit

    row = {"name": case.name, "status": "ok", "synth": to_dict(case.synth), "fit": to_dict(case.fit),
           "sequence": case.sequence_dir, "run_dir": case.run_dir}
    try:
        difficulty = ensure_case_sequence(case, progress)
        row["difficulty"] = {k: v for k, v in difficulty.items() if k != "seconds"}
        if finished(case.run_dir):
            log.info("%s: finished before, not fitted again (%s)", case.name, case.run_dir)
            with open(os.path.join(case.run_dir, outputs.METRICS)) as file:
                metrics = json.load(file)
        else:
            resume = os.path.isfile(os.path.join(case.run_dir, outputs.MANIFEST))
            metrics = run_fit(case.fit, case.run_dir, resume=resume, command=["experiments.suite", case.name],
                              progress=progress).metrics
    except Exception as error:  # noqa: BLE001  a failed case is a row, not a crash of the suite
        log.error("%s: failed: %s", case.name, error)
        log.debug("%s", traceback.format_exc())
        return {**row, "status": "failed", "error": f"{type(error).__name__}: {error}".splitlines()[0]}
    means = {key: value["mean"] for key, value in metrics.items() if isinstance(value, dict) and "mean" in value}
    seconds = {"generate": difficulty["seconds"], **metrics.get("seconds", {})}
    return {**row, **means, "seconds": seconds, "device": metrics.get("device")}


def ensure_case_sequence(case: SuiteCase, progress: bool = True) -> dict:
    """The case's sequence, generated unless a complete one is cached; returns its difficulty
    (the generator's measured floors) and the seconds its generation took."""
    complete = os.path.isfile(os.path.join(case.sequence_dir, "sequence.yaml")) and os.path.isfile(case.difficulty_path)
    if complete:
        with open(case.difficulty_path) as file:
            return json.load(file)
    import tqdm

    log.info("%s: generating its sequence into %s", case.name, case.sequence_dir)
    started = time.perf_counter()
    sequence = synthetic.generate(case.synth, progress=tqdm.tqdm if progress else None)
    clear_sequence_dir(case.sequence_dir)  # ours: an interrupted write, or a sequence without its difficulty
    synthetic.write(sequence, case.sequence_dir)
    difficulty = {**synthetic.measure_difficulty(sequence), "seconds": time.perf_counter() - started}
    write_text(case.difficulty_path, json.dumps(difficulty, indent=1))
    return difficulty


def finished(directory: str) -> bool:
    """Whether ``directory`` holds a finished run with its metrics."""
    if not os.path.isfile(os.path.join(directory, outputs.METRICS)):
        return False
    try:
        return run_dir.read_manifest(directory).get("state") == "finished"
    except InputError:
        return False
