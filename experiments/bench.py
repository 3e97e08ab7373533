"""``python -m experiments.bench SUITE [--json FILE]``: run a benchmark suite, print a table, and
write its rows (format fixed in docs/contracts.md section 6) as one JSON list."""

from __future__ import annotations

import argparse
import json
import sys

SUITES = ("poisson", "render", "step")
COLUMNS = {
    "poisson": ["impl", "device", "vertices", "ms", "reps", "roundtrip_error", "build_s"],
    "render": ["impl", "device", "faces", "resolution", "ms", "reps", "coverage"],
    "step": ["impl", "device", "vertices", "faces", "resolution", "ms", "pipelined_ms", "reps", "peak_mem_gb"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--json", metavar="FILE", help="write the rows to FILE")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                        help="poisson only: comma-separated vertex counts instead of the default")
    parser.add_argument("--steps", type=int, help="step only: timed steps per impl (default 200)")
    parser.add_argument("--frames", type=int, help="step only: frames generated for the workload (default 8)")
    args = parser.parse_args(argv)

    import importlib

    from benchmarks.timing import print_table

    suite = importlib.import_module(f"benchmarks.{args.suite}")
    kwargs = {"sizes": args.sizes, "steps": args.steps, "n_frames": args.frames}
    rows = suite.run(**{key: value for key, value in kwargs.items() if value is not None})
    print_table(rows, COLUMNS[args.suite])
    if args.suite == "step":
        print_table([{"impl": row["impl"], **row["breakdown"]} for row in rows], ["impl", *rows[0]["breakdown"]])
    if args.json:
        from ngdjax.io import write_text

        write_text(args.json, json.dumps(rows, indent=1))
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
