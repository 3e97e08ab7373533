"""A custom fitting step from the library's stages (the README's example; tests/test_custom_step.py
runs it): ``python -m experiments.custom_step SEQUENCE_DIR [STEPS]``. The geometry model's own
stages (deform, render_views, update) with a loss of our own: the silhouette alone."""

import argparse
import sys

import jax
import jax.numpy as jnp
import optax

import ngdjax
from ngdjax import losses
from ngdjax.fields import NetworkConfig
from ngdjax.fit_config import FieldConfig


def fit(sequence_dir: str, steps: int = 60) -> list[float]:
    seq = ngdjax.load_sequence(sequence_dir)
    body, renderer = ngdjax.load_body(seq.body_model), ngdjax.get_renderer("auto")
    field = FieldConfig(network=NetworkConfig(log2_table_size=12, n_levels=8))
    problem = ngdjax.build_problem(seq.template_vertices, seq.template_faces, body, seq.shape[0], seq.resolution,
                                   field, has_diffuse=False, has_depth=False)
    frames = ngdjax.prepare_frames(seq, field.pose_code_dim, body)
    params, optimizer = ngdjax.init_params(jax.random.PRNGKey(0), problem), optax.adam(1e-3, eps=1e-15)

    def loss_fn(p, t):  # the library's stages (static + dynamic Jacobians -> Poisson -> skinning -> render)
        frame = ngdjax.frame_at(frames, t)
        posed, _, _ = ngdjax.deform(p, problem, frame, network_on=True)
        image = ngdjax.render_views(renderer, posed, problem, frame)
        return losses.silhouette_loss(image.silhouette[0], frame.mask, frame.occluders)

    @jax.jit
    def step(p, state, t):
        loss, grads = jax.value_and_grad(loss_fn)(p, t)
        return *ngdjax.update(optimizer, grads, state, p), loss

    state, history = optimizer.init(params), []
    for i in range(steps):
        params, state, loss = step(params, state, jnp.int32(i % seq.n_frames))
        history.append(float(loss))
    return history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.custom_step", description=__doc__)
    parser.add_argument("sequence_dir", help="the sequence directory (docs/sequence_format.md)")
    parser.add_argument("steps", nargs="?", type=_positive_int, default=60, help="fitting steps (default 60)")
    args = parser.parse_args(argv)
    try:
        history = fit(args.sequence_dir, args.steps)
    except ngdjax.InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    print(history[-1])
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
