"""``python -m experiments.evaluate --pred RUN_DIR --gt SEQ_DIR [--json FILE]``: metrics of a fit
against a sequence (definitions in ngdjax/metrics.py).

The geometry metrics include the seen/unseen split (the sequence's body model occluding the
ground truth; left out, with a line on stderr, when the body model cannot be loaded or the
sequence's body parameters do not fit it). RUN_DIR holds ``meshes/frame_XXXX.obj`` for every frame of the sequence (XXXX its frame index,
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

    from ngdjax.evaluation import evaluate_meshes, load_ground_truth
    from ngdjax.render.backend import get_renderer

    renderer = get_renderer(args.backend)
    truth = load_ground_truth(sequence, list(meshes), load_occluding_body(sequence), renderer)
    metrics = evaluate_meshes(meshes, sequence, renderer, truth=truth)
    width = max(len(name) for name in metrics)
    print(f"{'metric':<{width}}  mean")
    for name, values in metrics.items():
        print(f"{name:<{width}}  {'-' if values['mean'] is None else format(values['mean'], '.6g')}")
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


def load_occluding_body(sequence):
    """The sequence's body model, for the seen/unseen split; None (the split left out, with a
    line on stderr saying why) when the model cannot be loaded or the sequence's parameters do
    not fit it."""
    from ngdjax.body.model import check_parameters, load_body
    from ngdjax.errors import InputError

    try:
        body = load_body(sequence.body_model, sequence.body_model_path)
        problems = check_parameters(body, sequence.shape, sequence.pose, os.path.join(sequence.directory, "body.npz"))
    except InputError as error:
        problems = list(error.problems)
    if problems:
        print(f"no seen/unseen split ({problems[0]})", file=sys.stderr)
        return None
    return body


def _write_json(path: str, metrics: dict) -> None:
    with open(path, "w") as file:
        json.dump(metrics, file, indent=1)


if __name__ == "__main__":
    sys.exit(main())
