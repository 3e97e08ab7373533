"""``python -m experiments.fit_many --cfg CFG SEQ_DIR... | --suite SUITE.yaml --out DIR [--address ADDR]
[--gpus-per-fit N] [key=value ...]``: one fit per sequence, scheduled by Ray (docs/fit_many.md).

Each sequence is fitted with CFG (its ``data.sequence`` set to the sequence, then the overrides)
in a worker process of its own, into DIR/NAME (NAME: the sequence directory's name), exactly as
``python -m experiments.fit --cfg CFG --out DIR/NAME`` would; with ``--suite``, every case of a
suite is generated, fitted and scored as ``experiments.suite`` does (its DIR layout, docs/suite.md).
Without ``--address`` a local Ray instance is started (one fit per GPU, or per CPU where there is
no GPU); ``--address HOST:PORT`` (or ``auto``) joins a running Ray cluster. A worker that dies is
retried and its fit resumes from its last checkpoint; a fit that fails on its own (bad input) is
reported and not retried; a re-run skips finished fits and resumes the others. Writes only under
DIR: the run directories, RUN.attempts.jsonl and RUN.log beside each, fit_many.json (the
manifest, first), summary.json and summary.md (one row per fit: status, metrics, seconds, device,
attempts). Exit codes: 0 every fit finished; 1 some fit failed (its row says why); 2 bad input
(one line per problem on stderr, before any fit starts).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import uuid

MANIFEST = "fit_many.json"
FORMAT = "ngdjax-fit-many-1"


def fit_sequence(cfg: str, overrides: tuple[str, ...], sequence: str, run_dir: str, cwd: str,
                 command: list[str]) -> dict:
    """One fit of ``sequence`` into ``run_dir`` (in a Ray worker): the path of
    ``experiments.fit --cfg CFG --out RUN_DIR``, resuming the run already there. ``cwd`` is the
    command's directory (relative paths in overrides start there)."""
    from ngdjax.config import load_config
    from ngdjax.fit_config import FitConfig
    from ngdjax.outputs import MANIFEST as RUN_MANIFEST
    from ngdjax.pipeline import run_fit

    os.chdir(cwd)
    config = load_config(cfg, FitConfig, overrides, (sequence_layer(sequence, cwd),))
    resume = os.path.isfile(os.path.join(run_dir, RUN_MANIFEST))
    run_fit(config, run_dir, resume=resume, command=command, progress=False)
    return {}


def sequence_layer(sequence: str, cwd: str):
    """The config layer that points ``data.sequence`` at ``sequence``."""
    from ngdjax.config import Layer

    return Layer({"data": {"sequence": sequence}}, f"fit_many: sequence {sequence}", cwd)


def plan_sequences(cfg: str | None, sequences: list[str], overrides: list[str], out: str, command: list[str]) -> list:
    """One :class:`~ngdjax.fit_many.Fit` per sequence, every input checked (nothing is written).
    Raises InputError with one line per problem."""
    from ngdjax.config import load_config
    from ngdjax.errors import InputError
    from ngdjax.fit_config import FitConfig
    from ngdjax.fit_many import Fit, sequence_problems

    if cfg is None:
        raise InputError("give --cfg CFG and sequence directories, or --suite SUITE.yaml")
    problems = sequence_problems(sequences)
    if problems:
        raise InputError(*problems)
    # the task names fit_sequence by its module (not __main__ under "python -m"), so workers import it
    cwd, fits = os.getcwd(), []
    for sequence in map(os.path.abspath, sequences):
        try:
            load_config(cfg, FitConfig, overrides, (sequence_layer(sequence, cwd),))
        except InputError as error:
            problems += error.problems
        run_dir = os.path.join(os.path.abspath(out), os.path.basename(sequence))
        fits.append(Fit(os.path.basename(sequence), run_dir, importlib.import_module("experiments.fit_many").fit_sequence,
                        (os.path.abspath(cfg), tuple(overrides), sequence, run_dir, cwd, command)))
    if problems:
        raise InputError(*dict.fromkeys(problems))  # the config's problems, once
    return fits


def plan_suite(suite: str, overrides: list[str], out: str) -> list:
    """One :class:`~ngdjax.fit_many.Fit` per case of ``suite`` (``ngdjax.suite.run_case``)."""
    from ngdjax.fit_many import Fit
    from ngdjax.suite import load_suite, run_case

    return [Fit(case.name, case.run_dir, run_case, (case, False)) for case in load_suite(suite, out, tuple(overrides))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.fit_many", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", help="the fit config of every sequence (configs/*.yaml)")
    parser.add_argument("--suite", help="a suite file (configs/suite/*.yaml) instead of --cfg and sequences")
    parser.add_argument("--out", required=True, help="the output directory (new, empty, or this command's before)")
    parser.add_argument("--address", help="join the Ray cluster at HOST:PORT (or auto); default: start a local one")
    parser.add_argument("--gpus-per-fit", type=float, help="GPUs each fit reserves (default 1 where the cluster has "
                        "GPUs, else 0); 0.5 lets two fits share a card")
    parser.add_argument("--cpus-per-fit", type=float, default=1, help="CPUs each fit reserves (default 1)")
    parser.add_argument("--retries", type=int, default=3, help="how often a fit whose worker died is run again")
    parser.add_argument("items", nargs="*", metavar="SEQ_DIR | key=value", help="sequence directories and overrides")
    args = parser.parse_intermixed_args(argv)
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ngdjax.errors import InputError
    from ngdjax.fit_many import run_fits, start, summary_row, write_summary
    from ngdjax.run_dir import claim_output_dir
    from ngdjax.suite import finished, take_suite_dir

    command = ["python", "-m", "experiments.fit_many", *(sys.argv[1:] if argv is None else argv)]
    overrides = [item for item in args.items if "=" in item]
    sequences = [item for item in args.items if "=" not in item]
    try:
        if args.suite and (args.cfg or sequences):
            raise InputError("--suite runs a suite's cases: give it without --cfg and sequence directories")
        fits = (plan_suite(args.suite, overrides, args.out) if args.suite
                else plan_sequences(args.cfg, sequences, overrides, args.out, command))
        ray, gpus_per_fit = start(args.address, args.gpus_per_fit, args.cpus_per_fit)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        if args.suite:
            take_suite_dir(args.out, args.suite)
        else:  # new, empty, or this command's earlier output (its manifest's format checked)
            claim_output_dir(args.out, MANIFEST, {"format": FORMAT, "command": command}, "fit_many output")
    except InputError as error:
        ray.shutdown()
        print(*error.problems, sep="\n", file=sys.stderr)
        return 2
    invocation = uuid.uuid4().hex[:12]
    rows = {fit.name: summary_row(fit, None, invocation) for fit in fits if finished(fit.run_dir)}
    todo = [fit for fit in fits if fit.name not in rows]
    logging.getLogger("ngdjax").info("%d fits: %d finished before, %d to run (%g GPU, %g CPU each)", len(fits),
                                     len(rows), len(todo), gpus_per_fit, args.cpus_per_fit)
    try:
        for fit, outcome in run_fits(ray, todo, invocation, gpus_per_fit, args.cpus_per_fit, args.retries):
            rows[fit.name] = summary_row(fit, outcome, invocation)
            write_summary(args.out, [rows[f.name] for f in fits if f.name in rows])  # survives an interruption
    finally:
        ray.shutdown()
    print(write_summary(args.out, [rows[fit.name] for fit in fits]))
    return 1 if any(row["status"] == "failed" for row in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
