"""A sustained segment of the full GPU fit (issue 7), and the full fit's time projected from it.

``python -m benchmarks.sustained --cfg configs/method/gpu.yaml --steps 41100 --json FILE [key=value ...]``

1. Generates the config's sequence if it is absent (timed), loads it.
2. Compiles the geometry step's variants the fit uses (network off/on, with/without the remeshing
   statistic) on the real shapes, so that the segment measures running, not compiling.
3. Runs the library's ``fit_geometry`` from scratch with ``stop_after_steps`` (the full
   configuration: the method's epochs, warm-up, remeshing at 400/600, checkpoints), recording the
   host time after every step through its ``on_step`` callback (``fit_geometry`` waits for the
   device once per epoch, when it fetches the epoch's losses, so epoch boundaries are real device
   times; an epoch is timed from the previous epoch's last step to its own last step).
4. The appearance stage (``ngdjax.appearance_fit.fit_texture``) on the fitted geometry for
   ``--texture-epochs`` epochs (``--texture-warmup`` of them without the dynamic texture), timed
   per epoch the same way.
5. Projects the whole fit: the measured segment, then the remaining geometry epochs at the measured
   network-on rate, the second remeshing event at the measured cost of the first, and the
   appearance stage's epochs at its measured rates.

Writes one JSON object (``--json``) and prints a summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time

import jax
import jax.numpy as jnp


def recorder(calls: list):
    """An ``on_step`` callback appending (host time, dynamic part on) after every step."""
    return lambda event: calls.append((time.perf_counter(), event.dynamic))


def epoch_times(calls: list, n_frames: int, end: float) -> list[dict]:
    """Per-epoch wall seconds from the after-step timestamps: epoch e runs from the last step of
    epoch e - 1 (the first step, for epoch 0) to its own last step; the last epoch ends at ``end``."""
    lasts = [calls[min(i + n_frames, len(calls)) - 1][0] for i in range(0, len(calls), n_frames)]
    bounds = [calls[0][0]] + lasts[:-1] + [end]
    return [{"epoch": e, "seconds": bounds[e + 1] - bounds[e], "on": calls[e * n_frames][1],
             "steps": min(n_frames, len(calls) - e * n_frames)} for e in range(len(bounds) - 1)]


def peak_gb() -> float | None:
    from benchmarks.step import peak_memory_gb
    return peak_memory_gb()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sustained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="configs/method/gpu.yaml")
    parser.add_argument("--steps", type=int, default=41_100, help="stop the geometry fit after this many steps")
    parser.add_argument("--texture-epochs", type=int, default=30)
    parser.add_argument("--texture-warmup", type=int, default=10)
    parser.add_argument("--run-dir", default="/tmp/ngdjax_sustained")
    parser.add_argument("--json", help="write the summary here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import numpy as np

    from ngdjax import outputs
    from ngdjax.appearance_fit import fit_texture
    from ngdjax.body.model import load_body
    from ngdjax.config import load_config
    from ngdjax.data.loader import load_sequence
    from ngdjax.fit_config import FitConfig
    from ngdjax.geometry import (
        build_problem,
        canonical_vertices,
        init_params,
        make_geometry_step,
        make_optimizer,
        prepare_frames,
    )
    from ngdjax.geometry_fit import fit_geometry
    from ngdjax.pipeline import ensure_sequence
    from ngdjax.render.backend import get_renderer

    summary: dict = {"device_name": jax.devices()[0].device_kind, "cfg": args.cfg, "overrides": args.overrides}

    def save():
        if args.json:
            with open(args.json, "w") as file:
                json.dump(summary, file, indent=1)

    config = load_config(args.cfg, FitConfig, args.overrides)
    t0 = time.perf_counter()
    ensure_sequence(config)
    summary["sequence_generate_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    sequence = load_sequence(config.data.sequence)
    summary["sequence_load_s"] = round(time.perf_counter() - t0, 1)
    body = load_body(sequence.body_model, sequence.body_model_path)
    renderer = get_renderer(config.render)
    optim, n_frames = config.optim, sequence.n_frames
    summary.update(frames=n_frames, resolution=list(sequence.resolution), vertices=len(sequence.template_vertices),
                   faces=len(sequence.template_faces), renderer=renderer.name, epochs=optim.epochs,
                   warmup_epochs=optim.warmup_epochs, remesh_epochs=list(config.remesh.epochs),
                   log2_table_size=config.field.network.log2_table_size, checkpoint_every=optim.checkpoint_every)
    print(f"sequence: {n_frames} frames {sequence.resolution}, V={summary['vertices']}, generated in "
          f"{summary['sequence_generate_s']} s, loaded in {summary['sequence_load_s']} s", flush=True)

    # 2. Compile the variants on the real shapes (the fit's own cached jitted step)
    t0 = time.perf_counter()
    problem = build_problem(sequence.template_vertices, sequence.template_faces, body, sequence.shape[0],
                            sequence.resolution, config.field, sequence.diffuse is not None, sequence.depth is not None)
    frames = prepare_frames(sequence, config.field.pose_code_dim, body, config.field.zero_root)
    step = make_geometry_step(renderer, optim, n_frames, config.loss)  # the cached step fit_geometry uses
    optimizer = make_optimizer(optim, n_frames)
    for network_on in (False, True):
        for collect in (False, True):
            params = init_params(jax.random.PRNGKey(0), problem)
            out = step(params, optimizer.init(params), problem, frames, jnp.int32(0), jax.random.PRNGKey(1), None,
                       network_on=network_on, collect_statistic=collect)
            jax.block_until_ready(out)
    del problem, frames, params, out
    summary["precompile_s"] = round(time.perf_counter() - t0, 1)
    print(f"compiled 4 step variants in {summary['precompile_s']} s", flush=True)

    # 3. The sustained geometry segment
    calls: list = []
    t0 = time.perf_counter()
    result = fit_geometry(config, sequence, body, renderer, args.run_dir, resume=False, progress=False,
                          stop_after_steps=args.steps, on_step=recorder(calls))
    jax.block_until_ready(result.params)
    end = time.perf_counter()
    epochs = epoch_times(calls, n_frames, end)
    segment_s = end - calls[0][0]
    setup_s = calls[0][0] - t0
    summary["geometry"] = geometry = {
        "steps": len(calls), "wall_s": round(end - t0, 2), "setup_s": round(setup_s, 2),
        "segment_s": round(segment_s, 2), "steps_per_s": round(len(calls) / segment_s, 1),
        "final_vertices": len(result.template_vertices), "final_faces": len(result.template_faces),
        "peak_mem_gb": peak_gb(), "epoch_seconds": [round(e["seconds"], 4) for e in epochs]}
    remesh_epochs = set(config.remesh.epochs)
    after_remesh = {e + k for e in remesh_epochs for k in range(1, config.remesh.blend_epochs + 1)}
    off = [e["seconds"] for e in epochs[1:] if not e["on"] and e["steps"] == n_frames]
    on = [e["seconds"] for e in epochs if e["on"] and e["steps"] == n_frames and e["epoch"] != optim.warmup_epochs
          and e["epoch"] not in remesh_epochs and e["epoch"] not in after_remesh]
    geometry["off_epoch_s_mean"] = round(statistics.fmean(off), 4) if off else None
    geometry["on_epoch_s_mean"] = round(statistics.fmean(on), 4) if on else None
    geometry["off_step_ms_median"] = round(1e3 * statistics.median(off) / n_frames, 4) if off else None
    geometry["on_step_ms_median"] = round(1e3 * statistics.median(on) / n_frames, 4) if on else None
    remesh_cost = {}
    for event in sorted(remesh_epochs):
        covered = [e for e in epochs if event <= e["epoch"] <= event + config.remesh.blend_epochs
                   and e["steps"] == n_frames]
        if on and len(covered) == config.remesh.blend_epochs + 1:
            remesh_cost[event] = round(sum(e["seconds"] for e in covered) - len(covered) * statistics.fmean(on), 2)
    geometry["remesh_event_extra_s"] = remesh_cost
    print(f"geometry segment: {len(calls)} steps in {segment_s:.1f} s ({len(calls) / segment_s:.1f} steps/s), "
          f"setup {setup_s:.1f} s, warm-up step {geometry['off_step_ms_median']} ms, network-on step "
          f"{geometry['on_step_ms_median']} ms (epoch means {geometry['off_epoch_s_mean']} / "
          f"{geometry['on_epoch_s_mean']} s), remesh extra {remesh_cost}, V -> {geometry['final_vertices']}, "
          f"peak {geometry['peak_mem_gb']} GB", flush=True)
    save()

    # 4. The appearance stage on the fitted geometry
    appearance = None
    if config.texture.enabled and args.texture_epochs > 0:
        try:
            import xatlas  # noqa: F401
            tex_calls: list = []
            network_on = len(calls) > optim.warmup_epochs * n_frames
            posed = outputs.predict_posed(result.params, result.problem, result.frames, network_on)
            canonical = np.asarray(canonical_vertices(result.params, result.problem))
            short = dataclasses.replace(config, texture=dataclasses.replace(
                config.texture, epochs=args.texture_epochs, warmup_epochs=args.texture_warmup))
            t0 = time.perf_counter()
            tex = fit_texture(short, sequence, posed, canonical, result.template_faces, renderer, args.run_dir,
                              progress=False, on_step=recorder(tex_calls))
            tex_end = time.perf_counter()
            tex_epochs = epoch_times(tex_calls, n_frames, tex_end)
            static = [e["seconds"] for e in tex_epochs[1:] if not e["on"]]
            dynamic = [e["seconds"] for e in tex_epochs if e["on"] and e["epoch"] != args.texture_warmup]
            appearance = {
                "epochs": args.texture_epochs, "setup_s": round(tex_calls[0][0] - t0, 2),
                "wall_s": round(tex_end - t0, 2), "peak_mem_gb": peak_gb(),
                "static_epoch_s_mean": round(statistics.fmean(static), 4) if static else None,
                "dynamic_epoch_s_mean": round(statistics.fmean(dynamic), 4) if dynamic else None,
                "static_step_ms_median": round(1e3 * statistics.median(static) / n_frames, 4) if static else None,
                "dynamic_step_ms_median": round(1e3 * statistics.median(dynamic) / n_frames, 4) if dynamic else None,
                "epoch_seconds": [round(e["seconds"], 4) for e in tex_epochs], "fit_seconds": round(tex.seconds, 2)}
            if static and dynamic:  # the first epoch of each variant also compiled it
                appearance["compile_extra_s"] = round(
                    tex_epochs[0]["seconds"] - statistics.fmean(static)
                    + tex_epochs[args.texture_warmup]["seconds"] - statistics.fmean(dynamic), 2)
            print(f"appearance: setup {appearance['setup_s']} s, static step {appearance['static_step_ms_median']} ms,"
                  f" dynamic step {appearance['dynamic_step_ms_median']} ms, peak {appearance['peak_mem_gb']} GB",
                  flush=True)
        except Exception as error:  # noqa: BLE001 - measured what we could; say why the rest is missing
            appearance = {"error": f"{type(error).__name__}: {error}"}
            print(f"appearance stage not measured: {appearance['error']}", flush=True)
    summary["appearance"] = appearance

    # 5. Projection of the whole fit (100 frames x epochs geometry + texture epochs)
    measured_epochs = len(epochs)
    remaining_on = max(0, optim.epochs - measured_epochs)
    projected = geometry["setup_s"] + sum(e["seconds"] for e in epochs)
    if geometry["on_epoch_s_mean"]:
        projected += remaining_on * geometry["on_epoch_s_mean"]
    measured_events = [v for v in remesh_cost.values()]
    missing_events = [e for e in remesh_epochs if e >= measured_epochs]
    if measured_events:
        projected += len(missing_events) * statistics.fmean(measured_events)
    projection = {"geometry_s": round(projected, 1), "precompile_s": summary["precompile_s"]}
    if appearance and appearance.get("dynamic_epoch_s_mean"):
        tex_cfg = config.texture
        tex_s = (appearance["setup_s"] + appearance.get("compile_extra_s", 0.0) + tex_cfg.warmup_epochs * appearance["static_epoch_s_mean"]
                 + (tex_cfg.epochs - tex_cfg.warmup_epochs) * appearance["dynamic_epoch_s_mean"])
        projection["appearance_s"] = round(tex_s, 1)
    projection["total_s"] = round(sum(v for k, v in projection.items() if k != "total_s"), 1)
    projection["total_min"] = round(projection["total_s"] / 60, 2)
    summary["projection"] = projection
    print(f"projection: {projection}", flush=True)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
