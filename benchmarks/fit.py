"""The whole fit on one suite case, timed end to end, and its time-to-quality curve (issue 22).

``python -m experiments.bench fit --suite-file SUITE --case NAME --out DIR [key=value ...]``

The case's sequence is generated unless the suite's cache has it (timed apart: generation is not
part of a fit's time). Then, one of:

- **end to end** (the default): ``ngdjax.pipeline.run_fit`` into ``DIR``, the same library call as
  ``python -m experiments.fit``, with every output. One row: wall seconds of the whole call
  (compiling included), seconds per stage, steps per second of both loops, peak device memory and
  the case's metrics beside the un-fitted template's.
- **curve** (``--geometry-at E1,E2,...`` and/or ``--texture-at A1,A2,...``): the geometry fit of
  the case's config, its schedule unchanged, stopped after the last of ``E`` (a checkpoint is
  written there, so ``--resume`` continues it in a later call); at each ``E`` the fit so far is
  scored (meshes of every frame against the truth). Then the appearance stage on the final
  geometry, its schedule unchanged up to the last of ``A``, scored at each ``A`` (PSNR, SSIM). One
  row per point: the stage's wall seconds so far (compiling included, the scoring excluded) and
  the metrics. With ``--texture-at`` alone the geometry comes from ``DIR``'s finished checkpoint.

Rows are written to ``--json`` after every point, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import cProfile
import dataclasses
import io
import json
import logging
import os
import pstats
import time

log = logging.getLogger("ngdjax")

METRIC_KEYS = ("chamfer_x1e3", "normal_consistency", "fscore_1cm", "mask_iou", "chamfer_seen_x1e3",
               "normal_consistency_seen", "chamfer_unseen_x1e3", "psnr", "ssim")


def means(metrics: dict) -> dict:
    """The means of the scored metrics (and the template's) from a metrics.json-shaped dict."""
    found = {}
    for key in METRIC_KEYS:
        for name in (key, f"template_{key}"):
            if isinstance(metrics.get(name), dict) and metrics[name].get("mean") is not None:
                found[name] = metrics[name]["mean"]
    return found


def peak_memory() -> float | None:
    from benchmarks.step import peak_memory_gb

    return peak_memory_gb()


def load_case(suite: str, case: str, out: str, overrides: tuple[str, ...]):
    """The suite case (its configs checked) whose fit runs into ``out``; its sequence is the
    suite's cache under ``out``'s parent ``sequences/`` folder."""
    from ngdjax.suite import load_suite, select_cases

    cases = select_cases(load_suite(suite, os.path.dirname(os.path.abspath(out)), overrides), [case], suite)
    return dataclasses.replace(cases[0], run_dir=os.path.abspath(out))


def run(suite: str, case: str, out: str, overrides: tuple[str, ...] = (), geometry_at: list[int] | None = None,
        texture_at: list[int] | None = None, resume: bool = False, json_path: str | None = None,
        profile_path: str | None = None) -> list[dict]:
    """Run the benchmark (module docstring); returns its rows. With ``profile_path``, the fit (not
    the generation) runs under cProfile and its 60 costliest calls (cumulative time) are written there."""
    import jax

    from ngdjax.suite import ensure_case_sequence

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = load_case(suite, case, out, overrides)
    started = time.perf_counter()
    ensure_case_sequence(chosen)
    device = jax.devices()[0]
    head = {"suite": "fit", "impl": "ngdjax", "device": "gpu" if device.platform == "gpu" else "cpu",
            "device_name": device.device_kind, "case": case, "suite_file": suite, "overrides": list(overrides),
            "generate_s": round(time.perf_counter() - started, 1)}
    rows: list[dict] = []

    def keep(row: dict) -> None:
        rows.append({**head, **row, "peak_mem_gb": peak_memory()})
        log.info("bench fit: %s", {k: v for k, v in rows[-1].items() if k not in head})
        if json_path:
            from ngdjax.io import write_text

            write_text(json_path, json.dumps(rows, indent=1))

    profiler = cProfile.Profile() if profile_path else None
    if profiler:
        profiler.enable()
    try:
        if geometry_at or texture_at:
            curve(chosen, geometry_at or [], texture_at or [], resume, keep)
        else:
            end_to_end(chosen, resume, keep)
    finally:
        if profiler:
            profiler.disable()
            report = io.StringIO()
            pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(60)
            from ngdjax.io import write_text

            write_text(profile_path, report.getvalue())
    return rows


def end_to_end(case, resume: bool, keep) -> None:
    """One row of the whole ``run_fit`` (module docstring)."""
    from ngdjax.pipeline import run_fit

    fit = case.fit
    started = time.perf_counter()
    metrics = run_fit(fit, case.run_dir, resume=resume, command=["experiments.bench", "fit", case.name],
                      progress=False).metrics
    wall = time.perf_counter() - started
    seconds = metrics["seconds"]
    n_frames = len(metrics["mask_iou"]["per_frame"])
    row = {"stage": "end_to_end", "geometry_epochs": fit.optim.epochs,
           "texture_epochs": fit.texture.epochs if fit.texture.enabled else 0,
           "wall_s": round(wall, 1), **{f"{k}_s": round(v, 1) for k, v in seconds.items()},
           "geometry_steps_per_s": round(fit.optim.epochs * n_frames / seconds["geometry"], 1)}
    if fit.texture.enabled:
        row["texture_steps_per_s"] = round(fit.texture.epochs * n_frames / seconds["texture"], 1)
    keep({**row, **means(metrics)})


def curve(case, geometry_at: list[int], texture_at: list[int], resume: bool, keep) -> None:
    """One row per scored point of the geometry and appearance stages (module docstring)."""
    from ngdjax.appearance import appearance_metrics, textured_renders
    from ngdjax.appearance_fit import fit_texture
    from ngdjax.evaluation import load_ground_truth
    from ngdjax.geometry import canonical_vertices
    from ngdjax.geometry_fit import fit_geometry
    from ngdjax.outputs import predict_posed
    from ngdjax.pipeline import geometry_metrics, prepare_run, template_metrics

    fit = case.fit
    if max(geometry_at, default=0) > fit.optim.epochs or max(texture_at, default=0) > fit.texture.epochs:
        raise ValueError(f"the points must lie within the schedule ({fit.optim.epochs} geometry, "
                         f"{fit.texture.epochs} appearance epochs)")
    run = prepare_run(fit, case.run_dir, resume, False, ["experiments.bench", "fit", case.name])
    sequence, body, renderer = run.sequence, run.body, run.renderer
    if not geometry_at and not run.resume:
        raise ValueError(f"--texture-at alone needs the finished geometry checkpoint of an earlier call in {case.run_dir}")
    truth = load_ground_truth(sequence, sequence.frames, body, renderer)
    scoring, reference = [0.0], {}

    def network_on(epochs: int) -> bool:
        return fit.field.dynamic and epochs > fit.optim.warmup_epochs

    def score_geometry(epochs: int, state) -> None:
        if epochs not in geometry_at:
            return
        began = time.perf_counter()
        posed = predict_posed(state.params, state.problem, state.frames, network_on(epochs))
        if not reference:
            reference.update(template_metrics(sequence, body, renderer, state.frames, truth))
        metrics = geometry_metrics(sequence, body, renderer, posed, state, truth, reference)
        keep({"stage": "geometry", "epochs": epochs, "fit_s": round(state.seconds - scoring[0], 1),
              "score_s": round(time.perf_counter() - began, 1), **means(metrics)})
        scoring[0] += time.perf_counter() - began

    last = max(geometry_at, default=None)
    stop = None if last is None or last == fit.optim.epochs else last * sequence.n_frames
    result = fit_geometry(fit, sequence, body, renderer, run.run_dir, run.resume, progress=False,
                          stop_after_steps=stop, on_epoch=score_geometry)
    if not texture_at:
        return
    epochs = last or fit.optim.epochs
    posed = predict_posed(result.params, result.problem, result.frames, network_on(epochs))
    canonical = canonical_vertices(result.params, result.problem)
    scoring[0] = 0.0

    def score_texture(epochs: int, state) -> None:
        if epochs not in texture_at:
            return
        began = time.perf_counter()
        _, images = textured_renders(state, renderer, sequence, fit.texture)
        metrics = appearance_metrics(images, sequence)
        keep({"stage": "appearance", "epochs": epochs, "fit_s": round(state.seconds - scoring[0], 1),
              "score_s": round(time.perf_counter() - began, 1), **means(metrics)})
        scoring[0] += time.perf_counter() - began

    shortened = dataclasses.replace(fit, texture=dataclasses.replace(fit.texture, epochs=max(texture_at)))
    fit_texture(shortened, sequence, posed, canonical, result.template_faces, renderer, run.run_dir, progress=False,
                on_epoch=score_texture)
