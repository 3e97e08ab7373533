"""``python -m experiments.validate DIR``: check a sequence directory and print every problem.

First every file (ngdjax/data/sequence.py); when they are sound, the body model and its
parameters, then the camera against the body and the masks (ngdjax/data/camera_check.py: the body
projects into the image and the garment masks lie on it).
Exit 0 when valid; otherwise one line per problem on stderr (each naming its file) and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="the sequence directory (docs/sequence_format.md)")
    args = parser.parse_args(argv)

    from ngdjax.data.sequence import validate_sequence

    problems = validate_sequence(args.directory) or consistency_problems(args.directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.directory}", file=sys.stderr)
        return 2
    print(f"{args.directory}: valid")
    return 0


def consistency_problems(directory: str) -> list[str]:
    """Problems of a sequence whose files are sound: its body model (a missing SMPL file), the
    body parameters for that model, then the camera against the body and the masks."""
    from ngdjax.body.model import check_parameters, load_body
    from ngdjax.data.camera_check import camera_problems
    from ngdjax.data.loader import load_sequence
    from ngdjax.errors import InputError

    sequence = load_sequence(directory)
    try:
        body = load_body(sequence.body_model, sequence.body_model_path)
    except InputError as error:
        return error.problems
    problems = check_parameters(body, sequence.shape, sequence.pose, os.path.join(directory, "body.npz"))
    return problems or camera_problems(sequence, body)


if __name__ == "__main__":
    sys.exit(main())
