"""``python -m experiments.fit --cfg CFG [--out DIR] [--resume] [--overwrite] [key=value ...]``: the main job.

Fits the garment of a sequence (geometry, then appearance when ``texture.enabled``) and writes
the run directory of ../shared/CONTRACTS.md: config.yaml, meshes/frame_XXXX.obj, canonical.obj,
renders/, metrics.json, log.jsonl, checkpoint/. The sequence is generated first when it does not
exist and the config names a synthetic generator (the built-in demo). Exit codes: 0 ok; 2 bad
input or config (one line per problem on stderr, before any compilation); 1 other failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

log = logging.getLogger("ngdjax")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.fit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="a YAML config (configs/*.yaml)")
    parser.add_argument("--out", help="run directory (default outputs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in the run directory")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.epochs=10")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ngdjax.errors import InputError

    try:
        run = prepare(args)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    return execute(*run)


def prepare(args):
    """Everything that can fail on bad input, before any JAX compilation: the config, the
    sequence (generated if needed, then validated), the body model and its parameters."""
    import yaml

    from ngdjax import checkpoint
    from ngdjax.body.model import check_parameters, load_body
    from ngdjax.config import load_config, to_dict
    from ngdjax.data.loader import load_sequence
    from ngdjax.errors import InputError
    from ngdjax.fit_config import FitConfig
    from ngdjax.io import write_text

    config = load_config(args.cfg, FitConfig, args.overrides)
    run_dir = args.out or os.path.join("outputs", config.name)
    has_previous = checkpoint.has_checkpoint(os.path.join(run_dir, "checkpoint"))
    if has_previous and not (args.resume or args.overwrite):
        raise InputError(f"{run_dir}: holds a previous run; pass --resume to continue it, --overwrite to replace "
                         "it, or --out for another directory")
    if args.resume and not has_previous:
        log.info("--resume: no checkpoint in %s, starting from the beginning", run_dir)
    if args.overwrite and has_previous and not args.resume:
        import shutil
        shutil.rmtree(os.path.join(run_dir, "checkpoint"))
    ensure_sequence(config)
    sequence = load_sequence(config.data.sequence)
    body = load_body(sequence.body_model, sequence.body_model_path)
    problems = check_parameters(body, sequence.shape, sequence.pose, os.path.join(sequence.directory, "body.npz"))
    if problems:
        raise InputError(*problems)
    os.makedirs(run_dir, exist_ok=True)
    write_text(os.path.join(run_dir, "config.yaml"), yaml.safe_dump(to_dict(config), sort_keys=False))
    return config, sequence, body, run_dir, args.resume and has_previous


def ensure_sequence(config) -> None:
    """Generate the synthetic sequence named by ``data.synth_config`` when its directory is absent."""
    from ngdjax.errors import InputError

    directory = config.data.sequence
    if os.path.isfile(os.path.join(directory, "sequence.yaml")):
        return
    if config.data.synth_config is None:
        raise InputError(f"data.sequence: {directory} holds no sequence (no sequence.yaml) and data.synth_config "
                         "is not set to generate one")
    from ngdjax.config import load_config
    from ngdjax.data import synthetic

    synth_config = load_config(config.data.synth_config, synthetic.SynthConfig)
    synthetic.check_config(synth_config, source=config.data.synth_config)
    log.info("generating the synthetic sequence %s from %s", directory, config.data.synth_config)
    from tqdm import tqdm
    synthetic.write(synthetic.generate(synth_config, progress=tqdm), directory)


def execute(config, sequence, body, run_dir: str, resume: bool) -> int:
    """Fit and write every output; returns the exit code."""
    import jax
    import numpy as np

    from ngdjax import evaluation, outputs
    from ngdjax.fit import canonical_vertices
    from ngdjax.render.backend import get_renderer
    from ngdjax.train import fit_geometry

    seconds = {}
    renderer = get_renderer(config.render)
    result = fit_geometry(config, sequence, body, renderer, run_dir, resume)
    seconds["geometry"] = result.seconds
    started = time.perf_counter()
    network_on = config.field.dynamic and config.optim.epochs > config.optim.warmup_epochs
    posed = outputs.predict_posed(result.params, result.problem, result.frames, network_on)
    outputs.write_meshes(run_dir, sequence.frames, posed, result.template_faces)
    from ngdjax.io import write_mesh
    write_mesh(os.path.join(run_dir, "canonical.obj"), np.asarray(canonical_vertices(result.params, result.problem)),
               result.template_faces)
    if config.output.renders:
        outputs.write_renders(run_dir, sequence, posed, result.problem, renderer, config.output.video)
    fitted = {i: (posed[t], result.template_faces) for t, i in enumerate(sequence.frames)}
    template = outputs.posed_template(sequence.template_vertices, body, sequence.shape[0], result.frames)
    metrics = evaluation.evaluate_meshes(fitted, sequence, renderer)
    reference = evaluation.evaluate_meshes(
        {i: (template[t], sequence.template_faces) for t, i in enumerate(sequence.frames)}, sequence, renderer)
    metrics.update({f"template_{name}": value for name, value in reference.items()})
    seconds["outputs"] = time.perf_counter() - started
    if config.texture.enabled:
        from ngdjax.texture import run_appearance
        appearance, texture_seconds = run_appearance(
            config, sequence, posed, np.asarray(canonical_vertices(result.params, result.problem)), result.template_faces,
            renderer, run_dir)
        metrics.update(appearance)
        seconds.update(texture_seconds)
    metrics["seconds"] = seconds
    metrics["device"] = jax.devices()[0].device_kind
    outputs.write_metrics(run_dir, metrics)
    summary = ", ".join(f"{name} {value['mean']:.4g}" for name, value in metrics.items()
                        if isinstance(value, dict) and "mean" in value)
    log.info("%s: %s", run_dir, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
