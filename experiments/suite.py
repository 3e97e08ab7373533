"""``python -m experiments.suite SUITE.yaml --out DIR [--cases A,B] [key=value ...]``: score a suite.

Generates each case's synthetic sequence (cached under DIR/sequences by the content of its
config), fits it with the case's fit config (DIR/runs/NAME-DIGEST, as ``experiments.fit --out``
writes it), evaluates it, and writes DIR/suite.json (one row per case: every metric and its
template value, the seen / never-seen split, the difficulty floors, seconds per stage, device),
DIR/suite.md (the table) and DIR/suite.png (the contact sheet). A re-run skips finished cases
and resumes interrupted ones; with ``--cases``, the report also lists the suite's other cases
already finished in DIR with the same configs. Overrides: ``key=value`` sets a key of every case's fit config,
``synth.key=value`` of every case's synthetic config (e.g. ``synth.n_frames=8``). Format of a
suite file: docs/suite.md. Exit codes: 0 every case ran; 1 some case failed (its row says why);
2 bad input (one line per problem on stderr, before any computation). ``--parallel`` runs the
cases at once through Ray, as ``experiments.fit_many`` does (one case per GPU, or per CPU where
there is none; ``--address`` joins a Ray cluster; docs/fit_many.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", help="a suite file (configs/suite/*.yaml)")
    parser.add_argument("--out", required=True, help="the suite's output directory (new, empty, or this suite's before)")
    parser.add_argument("--cases", help="comma-separated names of the cases to run (default: all)")
    parser.add_argument("--parallel", action="store_true", help="run the cases at once through Ray (docs/fit_many.md)")
    parser.add_argument("--address", help="with --parallel: join the Ray cluster at HOST:PORT (default: a local one)")
    parser.add_argument("--gpus-per-fit", type=float, help="with --parallel: GPUs each case reserves (default 1 where "
                        "there are GPUs, else 0)")
    parser.add_argument("overrides", nargs="*", help="key=value for the fit configs, synth.key=value for the sequences")
    args = parser.parse_intermixed_args(argv)
    if (args.address or args.gpus_per_fit is not None) and not args.parallel:
        parser.error("--address and --gpus-per-fit need --parallel")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ngdjax.errors import InputError
    from ngdjax.fit_many import start
    from ngdjax.suite import finished, load_suite, run_case, select_cases, take_suite_dir
    from ngdjax.suite_report import write_contact_sheet, write_suite_json, write_suite_table

    cluster = None
    names = [name.strip() for name in args.cases.split(",") if name.strip()] if args.cases else None
    try:
        cases = load_suite(args.suite, args.out, tuple(args.overrides))
        selected = select_cases(cases, names, args.suite) if names else cases
        cluster = start(args.address, args.gpus_per_fit, 1) if args.parallel else None
        take_suite_dir(args.out, args.suite)
    except InputError as error:
        if cluster:
            cluster[0].shutdown()
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    log = logging.getLogger("ngdjax")
    # The report lists the selected cases and every other case already finished with these configs.
    chosen = {case.name for case in selected}
    reported = [case for case in cases if case.name in chosen or finished(case.run_dir)]
    started = time.perf_counter()
    if cluster:
        rows = parallel_rows(cluster, reported, args.out)
    else:
        rows = []
        for i, case in enumerate(reported):
            log.info("case %d/%d: %s", i + 1, len(reported), case.name)
            rows.append(run_case(case))
            write_suite_json(args.out, rows)  # a partial table survives an interrupted suite
    write_suite_table(args.out, rows)
    write_contact_sheet(args.out, rows)
    failed = [row["name"] for row in rows if row["status"] != "ok"]
    log.info("%s: %d cases in %.1f minutes%s", args.out, len(rows), (time.perf_counter() - started) / 60,
             f"; failed: {', '.join(failed)}" if failed else "")
    print(open(f"{args.out}/suite.md").read())
    return 1 if failed else 0


def parallel_rows(cluster, cases: list, out: str) -> list[dict]:
    """The cases' suite.json rows, the unfinished ones run at once as Ray tasks (``cluster``:
    ``(ray, gpus per case)`` from :func:`ngdjax.fit_many.start`); suite.json is rewritten as each ends."""
    import uuid

    from ngdjax.config import to_dict
    from ngdjax.fit_many import Fit, run_fits
    from ngdjax.suite import finished, run_case
    from ngdjax.suite_report import write_suite_json

    ray, gpus_per_fit = cluster
    rows = {case.name: run_case(case) for case in cases if finished(case.run_dir)}
    fits = [Fit(case.name, case.run_dir, run_case, (case, False)) for case in cases if case.name not in rows]
    try:
        for fit, outcome in run_fits(ray, fits, uuid.uuid4().hex[:12], gpus_per_fit):
            case = fit.args[0]
            rows[fit.name] = outcome["result"] or {"name": case.name, "status": "failed", "error": outcome["error"],
                                                   "synth": to_dict(case.synth), "fit": to_dict(case.fit),
                                                   "sequence": case.sequence_dir, "run_dir": case.run_dir}
            write_suite_json(out, [rows[case.name] for case in cases if case.name in rows])
    finally:
        ray.shutdown()
    return [rows[case.name] for case in cases]


if __name__ == "__main__":
    sys.exit(main())
