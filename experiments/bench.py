"""``python -m experiments.bench SUITE [--json FILE]``: run a benchmark suite, print a table, and
write its rows (format fixed in ../shared/CONTRACTS.md) as one JSON list."""

from __future__ import annotations

import argparse
import json
import os
import sys

SUITES = ("poisson", "render")
COLUMNS = {
    "poisson": ["impl", "device", "vertices", "ms", "reps", "roundtrip_error", "build_s"],
    "render": ["impl", "device", "faces", "resolution", "ms", "reps", "coverage"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--json", metavar="FILE", help="write the rows to FILE")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                        help="poisson only: comma-separated vertex counts instead of the default")
    args = parser.parse_args(argv)

    import importlib

    from benchmarks.timing import print_table

    suite = importlib.import_module(f"benchmarks.{args.suite}")
    rows = suite.run(**({"sizes": args.sizes} if args.sizes else {}))
    print_table(rows, COLUMNS[args.suite])
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, args.json)
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
