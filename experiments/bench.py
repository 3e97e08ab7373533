"""``python -m experiments.bench SUITE [--json FILE]``: run a benchmark suite, print a table, and
write its rows (format fixed in docs/contracts.md section 6) as one JSON list.

``fit`` times the whole fit of one case of a suite (``--suite-file``, ``--case``, ``--out``; fit config
overrides as ``key=value``), end to end or as a time-to-quality curve (``--geometry-at``,
``--texture-at``): benchmarks/fit.py."""

from __future__ import annotations

import argparse
import json
import sys

SUITES = ("poisson", "render", "step", "fit")
COLUMNS = {
    "poisson": ["impl", "device", "vertices", "ms", "reps", "roundtrip_error", "build_s"],
    "render": ["impl", "device", "faces", "resolution", "ms", "reps", "coverage"],
    "step": ["impl", "device", "vertices", "faces", "resolution", "ms", "pipelined_ms", "reps", "peak_mem_gb"],
    "fit": ["case", "stage", "epochs", "wall_s", "fit_s", "geometry_s", "outputs_s", "texture_s", "texture_outputs_s",
            "chamfer_x1e3", "normal_consistency", "mask_iou", "psnr", "peak_mem_gb"],
}


def epoch_list(text: str) -> list[int]:
    """``150,300,600`` -> [150, 300, 600] (ascending, positive)."""
    values = [int(v) for v in text.split(",")]
    if values != sorted(set(values)) or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give ascending positive epochs, e.g. 150,300,600")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--json", metavar="FILE", help="write the rows to FILE")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                        help="poisson only: comma-separated vertex counts instead of the default")
    parser.add_argument("--steps", type=int, help="step only: timed steps per impl (default 200)")
    parser.add_argument("--frames", type=int, help="step only: frames generated for the workload (default 8)")
    parser.add_argument("--suite-file", default="configs/suite/gpu.yaml", help="fit only: the suite of the case")
    parser.add_argument("--case", help="fit only: the case's name (required for fit)")
    parser.add_argument("--out", help="fit only: the run folder (its sequence is cached beside it, in sequences/)")
    parser.add_argument("--geometry-at", type=epoch_list, help="fit only: score the geometry at these epochs")
    parser.add_argument("--texture-at", type=epoch_list, help="fit only: score the appearance at these epochs")
    parser.add_argument("--resume", action="store_true", help="fit only: continue the run in --out")
    parser.add_argument("--profile", metavar="FILE", help="fit only: write the 60 costliest calls (cProfile) to FILE")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="fit only: fit config overrides")
    args = parser.parse_intermixed_args(argv)
    if args.suite == "fit" and not (args.case and args.out):
        parser.error("fit needs --case and --out")
    if args.suite != "fit" and args.overrides:
        parser.error(f"{args.suite} takes no key=value overrides")

    import importlib

    from benchmarks.timing import print_table

    suite = importlib.import_module(f"benchmarks.{args.suite}")
    if args.suite == "fit":
        kwargs = {"suite": args.suite_file, "case": args.case, "out": args.out, "overrides": tuple(args.overrides),
                  "geometry_at": args.geometry_at, "texture_at": args.texture_at, "resume": args.resume,
                  "json_path": args.json, "profile_path": args.profile}
    else:
        kwargs = {"sizes": args.sizes, "steps": args.steps, "n_frames": args.frames}
    rows = suite.run(**{key: value for key, value in kwargs.items() if value is not None})
    print_table(rows, COLUMNS[args.suite])
    if args.suite == "step":
        print_table([{"impl": row["impl"], **row["breakdown"]} for row in rows], ["impl", *rows[0]["breakdown"]])
    if args.json and args.suite != "fit":  # fit writes its rows after every point
        from ngdjax.io import write_text

        write_text(args.json, json.dumps(rows, indent=1))
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
