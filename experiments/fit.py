"""``python -m experiments.fit --cfg CFG [--out DIR] [--resume] [--overwrite] [key=value ...]``: the main job.

Fits the garment of a sequence (geometry, then appearance when ``texture.enabled``) and writes
the run directory: run.json (the manifest, first), config.yaml, meshes/frame_XXXX.obj,
canonical.obj, renders/, metrics.json, log.jsonl, checkpoint/. The sequence is generated first
when its directory does not exist or is empty and the config names a synthetic generator (the
built-in demo). A run directory that holds a run is refused without --resume or --overwrite, and
one that holds anything else always (docs/reliability.md). Exit codes: 0 ok; 2 bad input or
config (one line per problem on stderr, before any long computation); 1 other failure, including
a loss or parameter that went non-finite (the last good checkpoint is kept).
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.fit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="a YAML config (configs/*.yaml)")
    parser.add_argument("--out", help="run directory (default outputs/<config name>, from the current directory)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the run directory from its last "
                        "checkpoint (docs/reliability.md lists the keys that may change)")
    parser.add_argument("--overwrite", action="store_true", help="remove the previous run in the run directory first")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.epochs=10")
    args = parser.parse_intermixed_args(argv)
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ngdjax.config import load_config
    from ngdjax.errors import InputError
    from ngdjax.fit_config import FitConfig
    from ngdjax.nonfinite import NonFiniteError
    from ngdjax.pipeline import run_fit

    command = ["python", "-m", "experiments.fit", *(sys.argv[1:] if argv is None else argv)]
    try:
        config = load_config(args.cfg, FitConfig, args.overrides)
        run_fit(config, args.out, args.resume, args.overwrite, command)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
