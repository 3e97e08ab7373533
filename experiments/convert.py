"""``python -m experiments.convert {dress4d,people_snapshot} SRC OUT [options]``: convert a dataset
release into an ngdjax sequence (docs/datasets.md), then validate the result.

Exit 0 when the sequence was written and is valid; otherwise one line per problem on stderr (each
naming its file or key) and exit 2. The input's layout is checked before any heavy work.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.convert", description=__doc__)
    datasets = parser.add_subparsers(dest="dataset", required=True)
    dress4d = datasets.add_parser("dress4d", help="one 4D-DRESS take: <subject>/<outfit>/<take>")
    dress4d.add_argument("--camera", default="0004", help="camera id (0004, 0028, 0052 or 0076; default 0004)")
    dress4d.add_argument("--garment", default="upper", choices=("upper", "lower", "outer"))
    snapshot = datasets.add_parser("people_snapshot", help="one PeopleSnapshot subject preprocessed by InstantAvatar")
    snapshot.add_argument("--garment-masks", help="folder of garment masks XXXX.png (default: the body masks, with a warning)")
    for sub in (dress4d, snapshot):
        sub.add_argument("src", help="the dataset folder")
        sub.add_argument("out", help="the sequence directory to write")
        sub.add_argument("--template", required=sub is snapshot,
                         help="garment template .obj in the SMPL rest pose, metres (required)")
        sub.add_argument("--frames", type=_frame_list, help="frame indices to convert, e.g. 11,12,20 (default: all)")
        sub.add_argument("--body-model", help="the SMPL model file to record in sequence.yaml")
        sub.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize to H x W (default: as released)")
    args = parser.parse_args(argv)

    from ngdjax.data.sequence import validate_sequence
    from ngdjax.errors import InputError

    size = tuple(args.size) if args.size else None
    try:
        if args.dataset == "dress4d":
            from ngdjax.data.dress4d import convert_dress4d

            convert_dress4d(args.src, args.out, camera_id=args.camera, garment=args.garment,
                            template_path=args.template, frames=args.frames, body_model_path=args.body_model, size=size)
        else:
            from ngdjax.data.people_snapshot import convert_people_snapshot

            convert_people_snapshot(args.src, args.out, template_path=args.template, frames=args.frames,
                                    garment_masks=args.garment_masks, body_model_path=args.body_model, size=size)
    except InputError as error:
        return _report(error.problems, f"{args.src}: not converted")
    problems = validate_sequence(args.out)
    if problems:
        return _report(problems, f"{args.out}: written but not valid")
    print(f"{args.out}: valid")
    return 0


def _frame_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--frames must be comma-separated integers, got {text!r}") from error


def _report(problems: list[str], summary: str) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{summary} ({len(problems)} problem(s))", file=sys.stderr)
    return 2


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
