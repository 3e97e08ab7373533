"""A custom fitting step from the library's pieces (the README's example; tests/test_custom_step.py
runs it): ``python -m experiments.custom_step SEQUENCE_DIR [STEPS]`` fits the sequence's
silhouettes for STEPS steps (default 60) and prints the last loss. Exit 0 ok; 2 for bad input,
one line per problem on stderr naming its file."""

import argparse
import sys

import jax
import jax.numpy as jnp
import optax

from ngdjax import fields, losses
from ngdjax.body.model import (
    bone_transforms,
    load_body,
    rest_vertices_host,
    skinning_weights_host,
)
from ngdjax.body.skinning import linear_blend_skinning, rbf_skinning_weights
from ngdjax.data.loader import load_sequence
from ngdjax.errors import InputError
from ngdjax.mesh import face_centroids, face_normals
from ngdjax.poisson import build_poisson_solver, jacobians_from_vertices, solve
from ngdjax.pose_code import pose_codes
from ngdjax.render.backend import get_renderer
from ngdjax.render.shading import render_geometry
from ngdjax.render.topology import antialias_topology


def fit(sequence_dir: str, steps: int = 60) -> list[float]:
    seq, renderer = load_sequence(sequence_dir), get_renderer("auto")
    body, template, faces = load_body(seq.body_model), seq.template_vertices, seq.template_faces
    solver = build_poisson_solver(template, faces)
    skin = rbf_skinning_weights(template, rest_vertices_host(body, seq.shape[0]), skinning_weights_host(body))
    skin, tris, topology = (jnp.asarray(a) for a in (skin.astype("float32"), faces.astype("int32"),
                                                      antialias_topology(faces).astype("int32")))
    data = jax.tree_util.tree_map(jnp.asarray, dict(
        shape=seq.shape, pose=seq.pose, rot=seq.global_rotation, trans=seq.translation, mv=seq.mv,
        proj=seq.proj, code=pose_codes(seq.pose, 4), mask=seq.masks.astype("float32")))
    net = fields.DynamicJacobianConfig(log2_table_size=12, n_levels=8)
    params = {"static": jacobians_from_vertices(solver, jnp.asarray(template, jnp.float32)),
              "net": fields.init_dynamic_field(jax.random.PRNGKey(0), net)}
    mean, optimizer = jnp.asarray(template.mean(0, keepdims=True), jnp.float32), optax.adam(1e-3, eps=1e-15)

    def loss_fn(p, t):  # static + dynamic Jacobians -> Poisson -> skinning -> render -> silhouette loss
        bones = bone_transforms(body, data["shape"][t], data["pose"][t], data["rot"][t], data["trans"][t])
        static = linear_blend_skinning(solve(solver, jax.lax.stop_gradient(p["static"])) + mean, skin, bones)
        jac = p["static"] + fields.dynamic_jacobians(p["net"], net, face_centroids(static, tris),
                                                     face_normals(static, tris), data["code"][t])
        posed = linear_blend_skinning(solve(solver, jac) + mean, skin, bones)
        image = render_geometry(renderer, posed, tris, topology, data["mv"][t], data["proj"][t], seq.resolution)
        return losses.silhouette_loss(image.silhouette[0], data["mask"][t], jnp.zeros_like(data["mask"][t]))

    @jax.jit
    def step(p, state, t):
        loss, grads = jax.value_and_grad(loss_fn)(p, t)
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

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
    except InputError as error:
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
