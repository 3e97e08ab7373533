"""Where a fitting step's GPU time goes, kernel by kernel (issue 7's profiling aid).

``python -m benchmarks.profile_step [--stage geometry|texture] [--steps N] [--out DIR]`` builds
the step suite's workload (:mod:`benchmarks.step`), runs N steps (geometry: network on; texture:
``T^D`` on, the method's texture settings, on the posed template) under ``jax.profiler.trace``,
reads the Perfetto trace back and prints the GPU kernels by total time per step, each with the
JAX op its HLO fusion came from (the compiled step's HLO metadata). XLA names a kernel after the
first of identical fusions, so one row can sum several fusions (e.g. the three Poisson passes).
The trace, the HLO and the table stay in DIR.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import time

import jax
import jax.numpy as jnp


def fusion_sources(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> 'op_name @ file:line' from the metadata of each instruction."""
    sources = {}
    pattern = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{([^}]*)\}")
    for line in hlo_text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        meta = match.group(2)
        op = re.search(r'op_name="([^"]*)"', meta)
        where = re.search(r'source_file="([^"]*)".*?source_line=(\d+)', meta)
        text = (op.group(1)[-90:] if op else "") + (f" @ {os.path.basename(where.group(1))}:{where.group(2)}"
                                                     if where else "")
        sources[match.group(1).replace(".", "_").replace("-", "_")] = text
    return sources


def geometry_runner(ngd):
    """(run_step(i) -> loss, lower() -> jax Lowered) of the geometry step, network on."""
    def lower():
        return ngd.step_fn.lower(ngd.params, ngd.opt_state, ngd.problem, ngd.frames, jnp.int32(0),
                                 jax.random.PRNGKey(0), None, network_on=True, collect_statistic=False)
    return ngd, lower


def texture_runner(ngd, sequence):
    """(run_step(i) -> loss, lower()) of the appearance step with ``T^D`` on, the method's texture
    settings, on the template posed in each frame."""
    from ngdjax.fit_config import TextureConfig
    from ngdjax.outputs import posed_template
    from ngdjax.appearance import (init_texture_params, make_texture_optimizer, make_texture_step,
                                prepare_texture_frames, rasterize_frames, uv_atlas)

    texture = TextureConfig()
    posed = posed_template(sequence.template_vertices, ngd.body, sequence.shape[0], ngd.frames)
    atlas = uv_atlas(sequence.template_vertices, sequence.template_faces, texture.resolution)
    rasts = rasterize_frames(ngd.renderer, posed, sequence.template_faces, sequence.mv, sequence.proj,
                             sequence.resolution)
    frames = prepare_texture_frames(sequence, rasts, atlas, ngd.renderer, texture)
    print(f"  texture workload: {frames.valid.shape[1]} loss pixels per frame (padded)", flush=True)
    step = make_texture_step(ngd.renderer, texture, ngd.n_frames, tuple(sequence.resolution))
    state = {"params": init_texture_params(jax.random.PRNGKey(0), texture)}
    state["opt"] = make_texture_optimizer(texture, ngd.n_frames).init(state["params"])
    key = jax.random.PRNGKey(1)

    def run_step(i):
        state["params"], state["opt"], loss, _ = step(state["params"], state["opt"], frames,
                                                   jnp.int32(i % ngd.n_frames), jax.random.fold_in(key, i),
                                                   jnp.int32(i), dynamic=True)
        return loss

    def lower():
        return step.lower(state["params"], state["opt"], frames, jnp.int32(0), key, jnp.int32(0), dynamic=True)
    return run_step, lower


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("geometry", "texture"), default="geometry")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", default="/tmp/ngdjax_profile")
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args(argv)

    from benchmarks.step import NgdjaxStep, configs, make_sequence
    from benchmarks.timing import gpu_time_per_call
    from ngdjax.render.backend import get_renderer

    sequence = make_sequence(8)
    field, weights, optim = configs(19)
    ngd = NgdjaxStep(sequence, get_renderer("auto"), field, weights, optim)
    run_step, lower = geometry_runner(ngd) if args.stage == "geometry" else texture_runner(ngd, sequence)
    for i in range(20):
        jax.block_until_ready(run_step(i))
    hlo = lower().compile().as_text()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "step_hlo.txt"), "w") as handle:
        handle.write(hlo)
    step_index = itertools.count(100)
    per_call = gpu_time_per_call(lambda: jax.block_until_ready(run_step(next(step_index))), args.steps, args.out)
    t0 = time.perf_counter()
    for i in range(200):
        last = run_step(200 + i)
    jax.block_until_ready(last)
    pipelined_ms = (time.perf_counter() - t0) / 200 * 1e3
    sources = fusion_sources(hlo)
    per_step = sorted(((us, name) for name, us in per_call.items()), reverse=True)
    lines = [f"{args.stage} step: {pipelined_ms:.3f} ms pipelined (200 steps); GPU time per step "
             f"{sum(t for t, _ in per_step) / 1e3:.3f} ms over {len(per_step)} kernel names"]
    for us, name in per_step[:args.top]:
        key_name = re.sub(r"[.\-]", "_", name)
        lines.append(f"{us:8.1f} us  {name[:60]:60s}  {sources.get(key_name, '')}")
    report = "\n".join(lines)
    print(report)
    with open(os.path.join(args.out, "kernels.txt"), "w") as handle:
        handle.write(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
