"""``python -m experiments.gradcheck --cfg CFG [key=value ...]``: per-stage gradient table.

On the config's sequence (first frame, the config's template and network), compares analytic
directional derivatives with central finite differences for each stage of the fitting step:
the dynamic field, the Poisson solve, skinning, antialiasing with the rasterisation held fixed,
the full render, the losses, and the whole step. Rasterisation is piecewise constant and the
antialias gradient is nvdiffrast's edge formula (docs/render.md), so the render rows say
what they are checked against. Exit 0 when every stage is within its tolerance, 1 otherwise,
2 for bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.gradcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="a fit config (configs/*.yaml)")
    parser.add_argument("--directions", type=int, default=4, help="random directions per stage")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import jax

    jax.config.update("jax_enable_x64", True)  # finite differences need float64 where the stage allows it

    from ngdjax.body.model import check_parameters, load_body
    from ngdjax.config import load_config
    from ngdjax.data.loader import load_sequence
    from ngdjax.errors import InputError
    from ngdjax.fit_config import FitConfig
    from ngdjax.pipeline import ensure_sequence

    try:
        config = load_config(args.cfg, FitConfig, args.overrides)
        ensure_sequence(config)
        sequence = load_sequence(config.data.sequence)
        body = load_body(sequence.body_model, sequence.body_model_path)
        problems = check_parameters(body, sequence.shape, sequence.pose, sequence.directory)
        if problems:
            raise InputError(*problems)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    results = run_checks(config, sequence, body, args.directions)
    from ngdjax.gradcheck import format_table

    print(format_table(results))
    failed = [r.stage for r in results if not r.passed]
    if failed:
        print(f"outside tolerance: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_checks(config, sequence, body, directions: int):
    """Build the first frame's step pieces and check each stage; returns the table rows."""
    import jax
    import chex
    import jax.numpy as jnp

    from ngdjax import fields
    from ngdjax.body.model import bone_transforms
    from ngdjax.body.skinning import linear_blend_skinning
    from ngdjax.camera import to_clip
    from ngdjax.geometry import (
        build_problem,
        deform,
        frame_at,
        frame_losses,
        init_params,
        prepare_frames,
        render_views,
    )
    from ngdjax.gradcheck import check_stage
    from ngdjax.mesh import face_centroids, face_normals
    from ngdjax.poisson import solve
    from ngdjax.render.backend import get_renderer
    from ngdjax.render.jax.rasterize import barycentrics_for_ids, unclamped_barycentrics_for_ids

    renderer = get_renderer("jax")  # the checks use the pure-JAX ops (nvdiffrast's are compared with them in tests)
    problem = build_problem(sequence.template_vertices, sequence.template_faces, body, sequence.shape[0],
                            sequence.resolution, config.field, sequence.diffuse is not None,
                            sequence.depth is not None)
    frames = prepare_frames(sequence, config.field.pose_code_dim, body, config.field.zero_root)
    key = jax.random.PRNGKey(config.optim.seed)
    params = init_params(key, problem)
    # float64 everywhere; the pure-JAX renderer decides visibility on float32 positions, as
    # nvdiffrast, and computes everything differentiable in the positions' float64.
    to64 = lambda tree: jax.tree_util.tree_map(  # noqa: E731
        lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)
    problem, params, frames = to64(problem), to64(params), to64(frames)
    frame = frame_at(frames, jnp.int32(0))
    # A non-trivial network, so its gradient is not degenerate at the tiny initial tables.
    params["net"] = jax.tree_util.tree_map(
        lambda a: a + 0.05 * jax.random.normal(jax.random.PRNGKey(7), a.shape, a.dtype), params["net"])
    keys = iter(jax.random.split(key, 16))
    weights_of = lambda shape: jax.random.normal(next(keys), shape, jnp.float32)
    posed, _, field = deform(params, problem, frame, network_on=True)
    chex.assert_tree_all_finite((params, posed, field))  # a NaN here would make every check below meaningless
    chex.assert_shape(posed, problem.template.shape)
    rows = []

    if problem.deformation == "jacobian_fields":
        centroids, normals = face_centroids(posed, problem.tris), face_normals(posed, problem.tris)
        w_field = weights_of((problem.tris.shape[0], 3, 3))
        rows.append(check_stage(
            "dynamic field", "finite differences (network parameters)",
            lambda net: jnp.sum(w_field * fields.dynamic_jacobians(net, problem.network, centroids, normals, frame.code)),
            params["net"], next(keys), 1e-3, 1e-7, directions))
        w_solve = weights_of(problem.template.shape)
        rows.append(check_stage(
            "poisson solve", "finite differences (Jacobians)",
            lambda jac: jnp.sum(w_solve * solve(problem.solver, jac)), params["static"], next(keys), 1e-2, 1e-3,
            directions))
    w_lbs = weights_of(problem.template.shape)
    rows.append(check_stage(
        "skinning", "finite differences (canonical vertices, body pose)",
        lambda xp: jnp.sum(w_lbs * linear_blend_skinning(
            xp[0], problem.skin_weights,
            bone_transforms(body, frame.shape, xp[1], frame.global_rotation, frame.translation))),
        (problem.template, frame.pose), next(keys), 1e-2, 1e-3, directions))

    clip = lambda v: to_clip(v, frame.mv, frame.proj)  # noqa: E731
    rast = renderer.rasterize(clip(posed), problem.tris, problem.resolution)
    colour = renderer.interpolate(posed, rast, problem.tris)  # a smooth per-pixel attribute
    w_aa = weights_of(colour.shape)
    rows.append(check_stage(
        "antialias", "finite differences with the rasterisation held fixed (nvdiffrast's edge formula)",
        lambda v: jnp.sum(w_aa * renderer.antialias(colour, rast, clip(v), problem.tris, problem.topology)),
        posed, next(keys), 1e-2, 1e-5, directions))

    height, width = problem.resolution

    def visibility_fixed_at(v, barycentrics=barycentrics_for_ids):
        """The same ops with visibility held at the triangle ids of mesh v."""
        ids = renderer.rasterize(clip(v), problem.tris, problem.resolution)[0, ..., 3].astype(jnp.int32)
        return renderer._replace(
            rasterize=lambda c, tris, resolution, *_, **__: barycentrics(c, tris, ids, resolution))

    def rendered(v, ops=renderer):
        out = render_views(ops, v, problem, frame)
        return tuple(image[0] for image in (out.silhouette, out.diffuse, out.depth))

    fixed, unclamped = (visibility_fixed_at(posed, b) for b in (barycentrics_for_ids, unclamped_barycentrics_for_ids))
    w_img = weights_of((3, height, width))
    rows.append(check_stage(
        "render passes", "finite differences with the triangle ids held fixed and u, v unclamped (as nvdiffrast's gradient)",
        lambda v: sum(jnp.sum(w * image) for w, image in zip(w_img, rendered(v, fixed))),
        posed, next(keys), 2e-2, 1e-5, directions,
        reference=lambda v: sum(jnp.sum(w * image) for w, image in zip(w_img, rendered(v, unclamped)))))

    images = rendered(posed)
    visible = render_views(renderer, posed, problem, frame).visible_faces
    rows.append(check_stage(
        "losses", "finite differences (rendered images)",
        lambda imgs: frame_losses(imgs, field, visible, frame, problem, config.loss, key, True)[0],
        images, next(keys), 2e-2, 1e-3, directions))
    static_posed = deform(params, problem, frame, False)[0]
    fixed_static, unclamped_static = (visibility_fixed_at(static_posed, b)
                                      for b in (barycentrics_for_ids, unclamped_barycentrics_for_ids))

    def step_loss(static, ops):
        posed_v, _, jacobians = deform(dict(params, static=static), problem, frame, False)
        return frame_losses(rendered(posed_v, ops), jacobians, visible, frame, problem, config.loss, key, True)[0]

    rows.append(check_stage(
        "whole step", "finite differences of the total loss (static field; network off: its inputs are detached by design), ids fixed, u, v unclamped",
        lambda static: step_loss(static, fixed_static), params["static"], next(keys), 2e-2, 1e-3, directions,
        reference=lambda static: step_loss(static, unclamped_static)))
    return rows


if __name__ == "__main__":
    sys.exit(main())
