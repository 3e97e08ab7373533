"""``python -m experiments.synth --cfg CFG --out DIR [--overwrite] [key=value ...]``: write a synthetic sequence.

Generates the sequence of a ``configs/synth/*.yaml`` config (:class:`ngdjax.data.synthetic.SynthConfig`)
with its ground-truth garment meshes into DIR, in the format of docs/sequence_format.md, and
prints the measured difficulty. DIR must not exist or be empty; ``--overwrite`` replaces a
sequence written there before (its old files are removed first); a directory holding anything
else is never written into. Exit 0 when written; a bad config or output prints one line per
problem on stderr (naming the key or path) and exits 2 before any computation; other failures exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.synth", description=__doc__)
    parser.add_argument("--cfg", required=True, help="a configs/synth/*.yaml file")
    parser.add_argument("--out", required=True, help="the sequence directory to write (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace a sequence already in --out")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. n_frames=8")
    args = parser.parse_intermixed_args(argv)

    from ngdjax.config import load_config
    from ngdjax.data.loader import clear_sequence_dir, output_problem
    from ngdjax.data.synthetic import SynthConfig, check_config
    from ngdjax.errors import InputError

    try:
        config = load_config(args.cfg, SynthConfig, args.overrides)
        check_config(config, source=args.cfg)
        problem = output_problem(args.out, args.overwrite)
        if problem:
            raise InputError(f"--out {problem}")
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2

    import tqdm

    from ngdjax.data import synthetic

    start = time.perf_counter()
    sequence = synthetic.generate(config, progress=tqdm.tqdm)
    clear_sequence_dir(args.out)  # empty, an interrupted write of ours, or --overwrite of a sequence
    synthetic.write(sequence, args.out)
    seconds = time.perf_counter() - start
    print(f"{args.out}: {config.n_frames} frames at {config.resolution[0]}x{config.resolution[1]}, "
          f"{config.garment} of {len(sequence.template_vertices)} vertices, {seconds:.1f} s")
    print(json.dumps(synthetic.measure_difficulty(sequence), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
