"""A whole run, as a library call: ``run_fit(config) -> RunResult``.

``python -m experiments.fit`` only parses its arguments and calls :func:`run_fit`. A run has two
halves:

1. :func:`prepare_run` does everything that can fail on bad input, before any long computation
   and before anything is written: the config's run directory (:mod:`ngdjax.run_dir`), the
   sequence (generated into a new or empty directory when the config names a synthetic
   generator, then validated), the renderer, the body model, its parameters and the camera. It
   raises :class:`~ngdjax.errors.InputError` with one line per problem. Then it takes the run
   directory: the manifest first, then the resolved config.
2. :func:`fit_and_write` runs the geometry fit (:mod:`ngdjax.geometry_fit`), writes the meshes,
   renders and metrics (:mod:`ngdjax.outputs`), then the appearance stage
   (:mod:`ngdjax.appearance_fit`). The manifest's state ends as ``finished``, or ``failed`` with
   the error (a :class:`~ngdjax.nonfinite.NonFiniteError` names the stage, epoch and frame).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import yaml

from ngdjax import checkpoint, evaluation, outputs, run_dir
from ngdjax.appearance_fit import fit_texture
from ngdjax.body.model import Body, check_parameters, load_body
from ngdjax.config import load_config, to_dict
from ngdjax.data import synthetic
from ngdjax.data.camera_check import camera_problems
from ngdjax.data.loader import Sequence, load_sequence, output_problem
from ngdjax.errors import InputError
from ngdjax.fit_config import FitConfig
from ngdjax.geometry import canonical_vertices
from ngdjax.geometry_fit import fit_geometry
from ngdjax.io import background_writes, write_text
from ngdjax.loop import OnStep
from ngdjax.render.backend import Renderer, get_renderer

log = logging.getLogger("ngdjax")


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """A run whose inputs all passed their checks and whose directory is taken."""

    config: FitConfig
    sequence: Sequence
    body: Body
    renderer: Renderer
    run_dir: str
    resume: bool


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A finished run: its directory and the contents of its metrics.json."""

    run_dir: str
    metrics: dict


def run_fit(config: FitConfig, out: str | None = None, resume: bool = False, overwrite: bool = False,
            command: list[str] | None = None, progress: bool = True, on_step: OnStep | None = None) -> RunResult:
    """Fit ``config`` end to end into ``out`` (default ``outputs/<name>`` under the current
    directory), resuming or replacing a previous run there when asked.

    Raises:
        InputError: bad input, config or run directory (nothing written or deleted).
        NonFiniteError: the fit went non-finite (the last good checkpoint is kept).
    """
    run = prepare_run(config, out, resume, overwrite, command or ["ngdjax.run_fit"])
    try:
        metrics = fit_and_write(run, progress, on_step)
    except BaseException as error:
        run_dir.mark(run.run_dir, "failed", str(error) if str(error) else type(error).__name__)
        raise
    run_dir.mark(run.run_dir, "finished")
    return RunResult(run.run_dir, metrics)


def prepare_run(config: FitConfig, out: str | None, resume: bool, overwrite: bool, command: list[str]) -> PreparedRun:
    """Check every input (see the module docstring), then take the run directory."""
    if resume and overwrite:
        raise InputError("resume and overwrite exclude each other")
    directory = os.path.abspath(out or os.path.join("outputs", config.name))
    resolved = to_dict(config)
    plan = run_dir.inspect_run_dir(directory, resolved, resume, overwrite, reached_epoch(directory))
    if resume and plan.mode == "new":
        log.info("--resume: no run in %s yet, starting from the beginning", directory)
    synth_config = check_sequence_source(config)
    try:
        renderer = get_renderer(config.render)
    except (ValueError, ImportError, RuntimeError) as error:
        raise InputError(f"render: {config.render!r} cannot run here ({error})") from error
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
    write_text(os.path.join(directory, outputs.CONFIG), yaml.safe_dump(resolved, sort_keys=False))
    has_checkpoint = checkpoint.has_checkpoint(outputs.checkpoint_dir(directory))
    return PreparedRun(config, sequence, body, renderer, directory, plan.mode == "resume" and has_checkpoint)


def reached_epoch(directory: str) -> int | None:
    """The geometry epoch of the run's latest checkpoint, or None."""
    ckpt_dir = outputs.checkpoint_dir(directory)
    return int(checkpoint.load_checkpoint_meta(ckpt_dir)[0]["epoch"]) if checkpoint.has_checkpoint(ckpt_dir) else None


def check_sequence_source(config: FitConfig) -> synthetic.SynthConfig | None:
    """None when ``data.sequence`` holds a sequence; else the checked synthetic config that will
    generate it, after making sure that the directory is new or empty (a user's files are never
    written over)."""
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


def ensure_sequence(config: FitConfig) -> None:
    """Generate the sequence of ``data.synth_config`` into ``data.sequence`` when that holds none
    (and is new or empty); raise InputError when it may not be generated there."""
    synth_config = check_sequence_source(config)
    if synth_config is not None:
        generate_sequence(synth_config, config.data.sequence, config.data.synth_config)


def generate_sequence(synth_config: synthetic.SynthConfig, directory: str, source: str) -> None:
    """Generate the synthetic sequence of ``synth_config`` into ``directory`` (new or empty)."""
    from tqdm import tqdm

    log.info("generating the synthetic sequence %s from %s", directory, source)
    synthetic.write(synthetic.generate(synth_config, progress=tqdm), directory)


def fit_and_write(run: PreparedRun, progress: bool = True, on_step: OnStep | None = None) -> dict:
    """The geometry fit, its meshes, renders and metrics, then the appearance stage; returns the
    metrics written to metrics.json."""
    import jax

    config, sequence, renderer, directory = run.config, run.sequence, run.renderer, run.run_dir
    seconds = {}
    result = fit_geometry(config, sequence, run.body, renderer, directory, run.resume, progress, on_step=on_step)
    seconds["geometry"] = result.seconds
    # The meshes' and renders' files are written by a pool of threads while the metrics and the
    # appearance stage run; every file is written before the metrics (and the manifest's state).
    with background_writes() as submit:
        started = time.perf_counter()
        network_on = config.field.dynamic and config.optim.epochs > config.optim.warmup_epochs
        posed = outputs.predict_posed(result.params, result.problem, result.frames, network_on)
        canonical = np.asarray(canonical_vertices(result.params, result.problem))
        outputs.write_meshes(directory, sequence.frames, posed, result.template_faces, submit)
        outputs.write_canonical(directory, canonical, result.template_faces)
        if config.output.renders:
            outputs.write_renders(directory, sequence, posed, result.problem, renderer, config.output.video, submit)
            outputs.write_turntable(directory, sequence, posed, result.template_faces, renderer, submit)
        metrics = geometry_metrics(sequence, run.body, renderer, posed, result)
        seconds["outputs"] = time.perf_counter() - started
        if config.texture.enabled:
            texture = fit_texture(config, sequence, posed, canonical, result.template_faces, renderer, directory,
                                  progress, on_step=on_step)
            started = time.perf_counter()
            found = outputs.write_texture_outputs(directory, sequence, posed, canonical, result.template_faces, texture,
                                                  renderer, config.texture, config.output.renders, submit)
            log.info("appearance: psnr %.2f dB, ssim %.4f (masked, training frames)", found["psnr"]["mean"],
                     found["ssim"]["mean"])
            metrics.update(found)
            seconds["texture"] = texture.seconds
        waiting = time.perf_counter()
    # Leaving the block waits for the last writes: they count towards the last stage's outputs.
    if config.texture.enabled:
        seconds["texture_outputs"] = time.perf_counter() - started
    else:
        seconds["outputs"] += time.perf_counter() - waiting
    metrics["seconds"] = seconds
    metrics["device"] = jax.devices()[0].device_kind
    outputs.write_metrics(directory, metrics)
    summary = ", ".join(f"{name} {value['mean']:.4g}" for name, value in metrics.items()
                        if isinstance(value, dict) and value.get("mean") is not None)
    log.info("%s: %s", directory, summary)
    return metrics


def geometry_metrics(sequence: Sequence, body: Body, renderer: Renderer, posed: np.ndarray, result,
                     truth: evaluation.GroundTruth | None = None, reference: dict | None = None) -> dict:
    """The fit's metrics per frame and mean (the seen/unseen split included, ``body`` occluding),
    and the same for the un-fitted template (``template_*``). ``posed`` (T, V, 3) on the faces
    of ``result`` (a :class:`~ngdjax.geometry_fit.GeometryResult`); ``truth`` and ``reference``
    (:func:`template_metrics`), when given, are not computed again (a benchmark scoring many
    states of one fit)."""
    truth = truth or evaluation.load_ground_truth(sequence, sequence.frames, body, renderer)
    fitted = {i: (posed[t], result.template_faces) for t, i in enumerate(sequence.frames)}
    metrics = evaluation.evaluate_meshes(fitted, sequence, renderer, truth=truth)
    metrics.update(reference or template_metrics(sequence, body, renderer, result.frames, truth))
    return metrics


def template_metrics(sequence: Sequence, body: Body, renderer: Renderer, frames, truth: evaluation.GroundTruth) -> dict:
    """The metrics of the un-fitted template posed by skinning in every frame (``frames``: the
    fit's :class:`~ngdjax.geometry.Frames`), each name prefixed ``template_``."""
    template = outputs.posed_template(sequence.template_vertices, body, sequence.shape[0], frames)
    reference = evaluation.evaluate_meshes(
        {i: (template[t], sequence.template_faces) for t, i in enumerate(sequence.frames)}, sequence, renderer,
        truth=truth)
    return {f"template_{name}": value for name, value in reference.items()}
