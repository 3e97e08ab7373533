"""``python -m experiments.validate DIR``: check a sequence directory and print every problem.

Exit 0 when valid; otherwise one line per problem on stderr (each naming its file) and exit 2.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.validate", description=__doc__)
    parser.add_argument("directory", help="the sequence directory (docs/sequence_format.md)")
    args = parser.parse_args(argv)

    from ngdjax.data.sequence import validate_sequence

    problems = validate_sequence(args.directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.directory}", file=sys.stderr)
        return 2
    print(f"{args.directory}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
