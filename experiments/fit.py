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
import os
import sys
import time

log = logging.getLogger("ngdjax")


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

    from ngdjax.errors import InputError

    command = ["python", "-m", "experiments.fit", *(sys.argv[1:] if argv is None else argv)]
    try:
        run = prepare(args, command)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    return execute(*run)


def prepare(args, command: list[str]):
    """Everything that can fail on bad input, before any long computation and before anything is
    written: the config, the run directory's ownership, the sequence (generated if needed, then
    validated), the renderer, the body model, its parameters and the camera. Then the run
    directory is taken (its manifest written first) and the resolved config written."""
    import yaml

    from ngdjax import checkpoint, run_dir
    from ngdjax.body.model import check_parameters, load_body
    from ngdjax.config import load_config, to_dict
    from ngdjax.data.camera_check import camera_problems
    from ngdjax.data.loader import load_sequence
    from ngdjax.errors import InputError
    from ngdjax.fit_config import FitConfig
    from ngdjax.io import write_text
    from ngdjax.render.backend import get_renderer

    config = load_config(args.cfg, FitConfig, args.overrides)
    directory = os.path.abspath(args.out or os.path.join("outputs", config.name))
    resolved = to_dict(config)
    plan = run_dir.inspect_run_dir(directory, resolved, args.resume, args.overwrite, reached_epoch(directory))
    if args.resume and plan.mode == "new":
        log.info("--resume: no run in %s yet, starting from the beginning", directory)
    synth_config = check_sequence_source(config)
    try:
        renderer = get_renderer(config.render)
    except (ValueError, ImportError, RuntimeError) as error:
        raise InputError(f"{args.cfg}: 'render' {config.render!r} cannot run here ({error})") from error
    if synth_config is not None:
        generate_sequence(synth_config, config.data.sequence, config.data.synth_config)
    sequence = load_sequence(config.data.sequence)
    body = load_body(sequence.body_model, sequence.body_model_path)
    problems = check_parameters(body, sequence.shape, sequence.pose, os.path.join(sequence.directory, "body.npz"))
    problems = problems or camera_problems(sequence, body)
    if plan.mode == "resume":
        problems += run_dir.sequence_problems(directory, sequence.directory)
    if problems:
        raise InputError(*problems)
    if plan.changed:
        log.info("--resume with changed keys: %s", "; ".join(plan.changed))
    run_dir.take_run_dir(plan, resolved, sequence.directory, command)
    write_text(os.path.join(directory, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False))
    return config, sequence, body, renderer, directory, plan.mode == "resume" and checkpoint.has_checkpoint(
        os.path.join(directory, "checkpoint"))


def reached_epoch(directory: str) -> int | None:
    """The geometry epoch of the run's latest checkpoint, or None."""
    from ngdjax import checkpoint

    ckpt_dir = os.path.join(directory, "checkpoint")
    return int(checkpoint.load_checkpoint_meta(ckpt_dir)[0]["epoch"]) if checkpoint.has_checkpoint(ckpt_dir) else None


def check_sequence_source(config):
    """None when ``data.sequence`` holds a sequence; else the checked synthetic config that will
    generate it, after making sure that the directory is new or empty (a user's files are never
    written over)."""
    from ngdjax.config import load_config
    from ngdjax.data import synthetic
    from ngdjax.data.loader import output_problem
    from ngdjax.errors import InputError

    directory = config.data.sequence
    if os.path.isfile(os.path.join(directory, "sequence.yaml")):
        return None
    if config.data.synth_config is None:
        raise InputError(f"data.sequence: {directory} holds no sequence (no sequence.yaml) and data.synth_config "
                         "is not set to generate one")
    problem = output_problem(directory)
    if problem:
        raise InputError(f"data.sequence: {problem} (data.synth_config would generate a synthetic sequence into it; "
                         "to fit your own sequence, give it a sequence.yaml: docs/sequence_format.md)")
    synth_config = load_config(config.data.synth_config, synthetic.SynthConfig)
    synthetic.check_config(synth_config, source=config.data.synth_config)
    return synth_config


def ensure_sequence(config) -> None:
    """Generate the sequence of ``data.synth_config`` into ``data.sequence`` when that holds none
    (and is new or empty); raise InputError when it may not be generated there."""
    synth_config = check_sequence_source(config)
    if synth_config is not None:
        generate_sequence(synth_config, config.data.sequence, config.data.synth_config)


def generate_sequence(synth_config, directory: str, source: str) -> None:
    """Generate the synthetic sequence of ``synth_config`` into ``directory`` (new or empty)."""
    from tqdm import tqdm

    from ngdjax.data import synthetic

    log.info("generating the synthetic sequence %s from %s", directory, source)
    synthetic.write(synthetic.generate(synth_config, progress=tqdm), directory)


def execute(config, sequence, body, renderer, run_dir: str, resume: bool) -> int:
    """Fit and write every output; returns the exit code (0, or 1 when the fit went non-finite:
    the message names the stage, epoch, step and frame). The manifest's state follows."""
    from ngdjax import run_dir as ownership
    from ngdjax.nonfinite import NonFiniteError

    try:
        fit_and_write(config, sequence, body, renderer, run_dir, resume)
    except NonFiniteError as error:
        ownership.mark(run_dir, "failed", str(error))
        print(error, file=sys.stderr)
        return 1
    except BaseException as error:
        ownership.mark(run_dir, "failed", f"{type(error).__name__}: {error}")
        raise
    ownership.mark(run_dir, "finished")
    return 0


def fit_and_write(config, sequence, body, renderer, run_dir: str, resume: bool) -> None:
    """The geometry fit, its meshes, renders and metrics, then the appearance stage."""
    import jax
    import numpy as np

    from ngdjax import evaluation, outputs
    from ngdjax.fit import canonical_vertices
    from ngdjax.train import fit_geometry

    seconds = {}
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


if __name__ == "__main__":
    sys.exit(main())
