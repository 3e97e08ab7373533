"""``python -m experiments.evaluate --pred RUN_DIR --gt SEQ_DIR [--json FILE]``: metrics of a fit
against a sequence (definitions in ngdjax/metrics.py).

RUN_DIR holds ``meshes/frame_XXXX.obj`` for every frame of the sequence (XXXX its frame index,
4 digits). Prints a table (metric, mean) and, with ``--json``, writes the metrics.json layout.
Exit 0 ok; 2 for bad input (a missing or unreadable RUN_DIR or mesh, missing frames, an invalid
sequence), with one line per problem on stderr naming the file, before any JAX compilation;
1 for any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BACKENDS = ("jax", "auto", "nvdiffrast-jit", "nvdiffrast-eager")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", required=True, metavar="RUN_DIR", help="a fit's output directory")
    parser.add_argument("--gt", required=True, metavar="SEQ_DIR", help="the sequence directory")
    parser.add_argument("--json", metavar="FILE", help="write the metrics to FILE")
    parser.add_argument("--backend", choices=BACKENDS, default="jax", help="render backend for the silhouettes")
    args = parser.parse_args(argv)

    from ngdjax.errors import InputError

    try:
        sequence, meshes = load_inputs(args.pred, args.gt)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2

    from ngdjax.evaluation import evaluate_meshes
    from ngdjax.render.backend import get_renderer

    metrics = evaluate_meshes(meshes, sequence, get_renderer(args.backend))
    width = max(len(name) for name in metrics)
    print(f"{'metric':<{width}}  mean")
    for name, values in metrics.items():
        print(f"{name:<{width}}  {values['mean']:.6g}")
    if args.json:
        from ngdjax.io import write_atomic

        write_atomic(args.json, lambda path: _write_json(path, metrics))
        print(f"wrote {args.json}")
    return 0


def load_inputs(run_dir: str, sequence_dir: str):
    """The loaded sequence and the fit's meshes ``{frame: (vertices, faces)}``.

    Raises:
        InputError: every problem of both directories, one line each naming its file.
    """
    from ngdjax.data.loader import load_sequence
    from ngdjax.errors import InputError
    from ngdjax.io import read_checked_mesh
    from ngdjax.outputs import MESHES, mesh_path

    problems, sequence, meshes = [], None, {}
    try:
        sequence = load_sequence(sequence_dir)
    except InputError as error:
        problems += error.problems
    mesh_dir = os.path.join(run_dir, MESHES)
    if not os.path.isdir(run_dir):
        problems.append(f"{run_dir}: not a directory (the fit's output directory)")
    elif not os.path.isdir(mesh_dir):
        problems.append(f"{mesh_dir}: missing (the fit's per-frame meshes, frame_XXXX.obj)")
    elif sequence is not None:
        for frame in sequence.frames:
            path = mesh_path(run_dir, frame)
            try:
                meshes[frame] = read_checked_mesh(path)
            except InputError as error:
                problems += error.problems
    if problems:
        raise InputError(*problems)
    return sequence, meshes


def _write_json(path: str, metrics: dict) -> None:
    with open(path, "w") as file:
        json.dump(metrics, file, indent=1)


if __name__ == "__main__":
    sys.exit(main())
