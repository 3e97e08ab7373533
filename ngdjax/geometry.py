"""The geometry model and its step (docs/method.md sections 4, 6, 9): the problem, the parameters,
and one jitted step made of four named pure stages,

    deform -> render_views -> frame_losses -> update

each under ``jax.named_scope`` so that profiles show the names. The loop around the step is
:mod:`ngdjax.geometry_fit`.

Host-built, static for a template (:class:`FitProblem`): the Poisson solver, skinning weights,
triangles and antialias topology, the body. Per-frame data (:class:`Frames`) are stacked device
arrays indexed by the frame number inside the step, so one compiled step serves every frame.
Parameters are a plain pytree ``{"static": ..., "net": ...}``:

- ``jacobian_fields`` (the method): ``static`` (F, 3, 3) per-face Jacobians initialised from the
  template; ``net`` the pose-conditioned hash-grid network giving residual Jacobians from the
  posed static mesh's face centroids and normals and the pose code.
- ``vertex_offsets`` (the baseline): ``static`` (V, 3) displacements of the template; ``net`` the
  same kind of network giving per-vertex displacements from the posed static mesh's vertices and
  vertex normals; a Laplacian regulariser replaces the Jacobian one.

Our priors for the never-seen surface (``field.smooth_modes``, ``field.vertical_shift``,
``field.body_offset_scale``) add a third group ``coarse``: ``modes`` (K, 3, 3), the coefficients of
the template's smooth modes added to the static Jacobians (:mod:`ngdjax.smooth_modes`), ``shift``
(), the canonical mesh's translation along the body's up axis in metres, and ``offset_scale`` (),
the fraction of the template's offset from the body added to the canonical mesh. All start at 0
(the method's fit).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import igl
import jax
import jax.numpy as jnp
import numpy as np
import optax
import trimesh
from jaxtyping import Array, Float, Int

from ngdjax import fields, losses
from ngdjax.body.model import (
    Body,
    bone_transforms,
    rest_vertices_host,
    skinning_weights_host,
)
from ngdjax.body.skinning import linear_blend_skinning, rbf_skinning_weights
from ngdjax.data.loader import Sequence
from ngdjax.fit_config import FieldConfig, LossConfig, OptimConfig
from ngdjax.garment import body_frame
from ngdjax.loop import log_linear_schedule
from ngdjax.mesh import edges as mesh_edges
from ngdjax.mesh import face_centroids, face_normals, vertex_normals
from ngdjax.nonfinite import finite_by_group
from ngdjax.poisson import (
    PoissonSolver,
    build_poisson_solver,
    jacobians_from_vertices,
    solve,
)
from ngdjax.pose_code import pose_codes
from ngdjax.render.backend import Renderer
from ngdjax.render.shading import GeometryImages, render_geometry
from ngdjax.render.topology import antialias_topology
from ngdjax.smooth_modes import face_modes


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["solver", "template", "template_mean", "skin_weights", "tris", "topology", "body", "edges", "degree",
                 "adjacent_faces", "smoothness_pairs", "modes", "up", "body_offset"],
    meta_fields=["resolution", "deformation", "network", "has_diffuse", "has_depth", "vertical_shift",
                 "body_offset_scale"],
)
@dataclasses.dataclass(frozen=True)
class FitProblem:
    """Everything fixed while the template's topology is fixed (a pytree; pass it into ``jit``).

    Attributes:
        solver: the template's Poisson solver. template: (V, 3) float32 rest-pose template.
        template_mean: (1, 3) its vertex mean. skin_weights: (V, K). tris, topology: (F, 3) int32.
        body: the body model. edges: (E, 2) int32 undirected edges, degree: (V,) (Laplacian).
        adjacent_faces: (A, 2) int32 pairs of faces sharing an edge. smoothness_pairs: () float32,
        the pair count the smoothness prior divides by: the fit's input template's, kept across
        remeshing (:func:`ngdjax.losses.jacobian_smoothness`). modes: (F, K) float32 the template's
        smooth modes per face (K = 0: off). up: (3,) float32 the body's up axis in the rest pose.
        body_offset: (V, 3) float32 each template vertex minus its closest point on the rest-pose
        body (zeros when ``body_offset_scale`` is off).
        resolution: (H, W). deformation: "jacobian_fields" or "vertex_offsets".
        network: the network's config (static). has_diffuse, has_depth: which targets exist.
        vertical_shift: whether the canonical mesh has a learnt shift along ``up``.
        body_offset_scale: whether it has a learnt fraction of ``body_offset`` added.
    """

    solver: PoissonSolver
    template: Float[Array, "V 3"]
    template_mean: Float[Array, "1 3"]
    skin_weights: Float[Array, "V K"]
    tris: Int[Array, "F 3"]
    topology: Int[Array, "F 3"]
    body: Body
    edges: Int[Array, "E 2"]
    degree: Float[Array, " V"]
    adjacent_faces: Int[Array, "A 2"]
    smoothness_pairs: Float[Array, ""]
    modes: Float[Array, "F K"]
    up: Float[Array, " 3"]
    body_offset: Float[Array, "V 3"]
    resolution: tuple[int, int]
    deformation: str
    network: fields.DynamicJacobianConfig
    has_diffuse: bool
    has_depth: bool
    vertical_shift: bool
    body_offset_scale: bool


class Frames(NamedTuple):
    """Per-frame data stacked over T frames (device arrays; images (T, H, W) float32).
    ``transforms`` (T, K, 4, 4): the body's bone transforms of each frame, computed once from
    the body parameters (which are kept for diagnostics such as gradient checks).
    ``input_transforms`` (T, K, 4, 4): those that pose the static mesh the network reads; the
    same, or without the global rotation and translation (``field.zero_root``)."""

    shape: Float[Array, "T S"]
    pose: Float[Array, "T P"]
    global_rotation: Float[Array, "T 3"]
    translation: Float[Array, "T 3"]
    transforms: Float[Array, "T K 4 4"]
    input_transforms: Float[Array, "T K 4 4"]
    mv: Float[Array, "T 4 4"]
    proj: Float[Array, "T 4 4"]
    code: Float[Array, "T C"]
    mask: Float[Array, "T H W"]
    occluders: Float[Array, "T H W"]
    diffuse: Float[Array, "T H W"]
    depth: Float[Array, "T H W"]


def network_config(field: FieldConfig) -> fields.DynamicJacobianConfig:
    """The network's static config for a deformation model (its outputs per element)."""
    return fields.DynamicJacobianConfig(pose_dim=field.pose_code_dim, out_dim=DEFORMATIONS[field.deformation].out_dim,
                                        network=field.network)


def build_problem(
    template_vertices: np.ndarray, template_faces: np.ndarray, body: Body, body_shape: np.ndarray,
    resolution: tuple[int, int], field: FieldConfig, has_diffuse: bool, has_depth: bool,
    poisson_method: str = "auto", input_faces: np.ndarray | None = None,
) -> FitProblem:
    """Host-side construction for a template (re-run after remeshing). ``input_faces``: the faces
    of the template the fit started from, whose adjacent-pair count the smoothness prior keeps
    dividing by (default: this template is the input)."""
    adjacent = trimesh.graph.face_adjacency(np.asarray(template_faces))
    input_pairs = len(adjacent) if input_faces is None else len(trimesh.graph.face_adjacency(np.asarray(input_faces)))
    weights = rbf_skinning_weights(template_vertices, rest_vertices_host(body, body_shape), skinning_weights_host(body))
    edge_list = mesh_edges(template_faces)
    degree = np.bincount(edge_list.ravel(), minlength=len(template_vertices))
    modes = (face_modes(template_vertices, template_faces, field.smooth_modes) if field.smooth_modes
             else np.zeros((len(template_faces), 0), np.float32))
    return FitProblem(
        solver=build_poisson_solver(template_vertices, template_faces, method=poisson_method),
        template=jnp.asarray(template_vertices, jnp.float32),
        template_mean=jnp.asarray(template_vertices.mean(axis=0, keepdims=True), jnp.float32),
        skin_weights=jnp.asarray(weights, jnp.float32), tris=jnp.asarray(template_faces, jnp.int32),
        topology=jnp.asarray(antialias_topology(template_faces), jnp.int32), body=body,
        edges=jnp.asarray(edge_list, jnp.int32), degree=jnp.asarray(degree, jnp.float32),
        adjacent_faces=jnp.asarray(adjacent, jnp.int32),
        smoothness_pairs=jnp.float32(input_pairs), modes=jnp.asarray(modes),
        up=jnp.asarray(body_frame(body, body_shape).axes[2], jnp.float32),
        body_offset=jnp.asarray(offset_from_body(template_vertices, body, body_shape) if field.body_offset_scale
                                else np.zeros((len(template_vertices), 3)), jnp.float32),
        resolution=tuple(resolution), deformation=field.deformation, network=network_config(field),
        has_diffuse=has_diffuse, has_depth=has_depth, vertical_shift=field.vertical_shift,
        body_offset_scale=field.body_offset_scale,
    )


def offset_from_body(vertices: np.ndarray, body: Body, body_shape: np.ndarray) -> np.ndarray:
    """(V, 3) each vertex (V, 3) minus its closest point on the body's rest-pose surface."""
    body_vertices = rest_vertices_host(body, body_shape)
    _, _, closest, _ = igl.signed_distance(np.asarray(vertices, np.float64), np.asarray(body_vertices, np.float64),
                                           np.asarray(body.triangles, np.int64))
    return np.asarray(vertices, np.float64) - closest


def init_params(key: Array, problem: FitProblem) -> dict:
    """Initial parameters: the deformation model's static part for the template, a fresh network,
    and, where a prior asks for them, the ``coarse`` group at 0 (:func:`has_coarse`)."""
    params = {"static": DEFORMATIONS[problem.deformation].initial_static(problem),
              "net": fields.init_dynamic_field(key, problem.network)}
    coarse = {}
    if problem.modes.shape[1]:
        coarse["modes"] = jnp.zeros((problem.modes.shape[1], 3, 3), jnp.float32)
    if problem.vertical_shift:
        coarse["shift"] = jnp.zeros((), jnp.float32)
    if problem.body_offset_scale:
        coarse["offset_scale"] = jnp.zeros((), jnp.float32)
    return dict(params, coarse=coarse) if coarse else params


def has_coarse(field: FieldConfig) -> bool:
    """Whether the parameters have the ``coarse`` group (smooth modes or the vertical shift)."""
    return field.smooth_modes > 0 or field.vertical_shift or field.body_offset_scale


def make_optimizer(optim: OptimConfig, n_frames: int, coarse: bool = False) -> optax.GradientTransformation:
    """Adam (eps from the config) per parameter group with log-linear decays; the static group's
    gradient is clipped to a global norm of ``clip_static``. ``coarse``: the parameters have the
    ``coarse`` group, which gets its own Adam with the static group's clip and schedule."""
    def static_like():
        return optax.chain(
            optax.clip_by_global_norm(optim.clip_static),
            optax.scale_by_adam(eps=optim.adam_eps),
            optax.scale_by_learning_rate(log_linear_schedule(*optim.static.lr, optim.static.decay_steps, n_frames)),
        )
    net = optax.chain(
        optax.scale_by_adam(eps=optim.adam_eps),
        optax.scale_by_learning_rate(log_linear_schedule(*optim.net.lr, optim.net.decay_steps, n_frames)),
    )
    groups = {"static": static_like(), "net": net} | ({"coarse": static_like()} if coarse else {})
    return optax.multi_transform(groups, {name: name for name in groups})


def frame_at(frames: Frames, index: Array) -> Frames:
    """Frame ``index`` (a traced int) of the stacked data."""
    return jax.tree_util.tree_map(lambda a: a[index], frames)


def deform(
    params: dict, problem: FitProblem, frame: Frames, network_on: bool,
    blend: tuple[Float[Array, "F 3 3"], Float[Array, ""]] | None = None,
) -> tuple[Float[Array, "V 3"], Float[Array, "V 3"], Array]:
    """Stage 1, deform: posed (world) and canonical vertices (V, 3) of the garment for one frame,
    and the field the regulariser acts on: the full Jacobians (F, 3, 3) or the full offsets (V, 3).

    ``blend = (stored, alpha)``: in the epochs after a remesh, the network's residual Jacobians
    are ``alpha J^D + (1 - alpha) stored`` (docs/method.md 7.4), ``stored`` this frame's residual from
    the remesh epoch transferred to the new faces."""
    model = DEFORMATIONS[problem.deformation]
    field = static_field(params, problem)
    if network_on:
        residual = model.residual(params["net"], problem, network_input(params, problem, frame), frame.code)
        if blend is not None:
            residual = blend[1] * residual + (1.0 - blend[1]) * blend[0]
        field = field + residual
    canonical = model.canonical(field, problem) + canonical_shift(params, problem)
    return linear_blend_skinning(canonical, problem.skin_weights, frame.transforms), canonical, field


def network_input(params: dict, problem: FitProblem, frame: Frames) -> Float[Array, "V 3"]:
    """(V, 3) the static canonical mesh posed by the frame's input transforms: what the network
    reads (without a gradient to it)."""
    rest = canonical_vertices(params, problem)
    return jax.lax.stop_gradient(linear_blend_skinning(rest, problem.skin_weights, frame.input_transforms))


def render_views(renderer: Renderer, posed: Float[Array, "V 3"], problem: FitProblem, frame: Frames) -> GeometryImages:
    """Stage 2, render: the posed garment's silhouette, diffuse shading and depth (1, H, W) in the
    frame's camera, with the visible faces and the rasterisation."""
    return render_geometry(renderer, posed, problem.tris, problem.topology, frame.mv, frame.proj, problem.resolution)


def update(optimizer: optax.GradientTransformation, grads: dict, opt_state, params: dict) -> tuple[dict, object]:
    """Stage 4, update: one optimizer step; the new parameters and optimizer state."""
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with floats
        updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def canonical_vertices(params: dict, problem: FitProblem) -> Float[Array, "V 3"]:
    """(V, 3) static canonical garment: Solve(J^S) + offset, or template + static offsets (each
    shifted along the body's up axis where the fit has the vertical shift)."""
    return (DEFORMATIONS[problem.deformation].canonical(static_field(params, problem), problem)
            + canonical_shift(params, problem))


def static_field(params: dict, problem: FitProblem) -> Array:
    """The static Jacobians (F, 3, 3): ``params["static"]``, each mapped by the smooth modes' linear
    map (I + sum_k phi_k(f) C_k) where the fit has them (a Jacobian maps as the positions do:
    x -> A x gives J -> A J, so with one constant mode ``C_0`` is a linear map of the whole garment)."""
    coarse = params.get("coarse", {})
    if "modes" not in coarse:
        return params["static"]
    maps = jnp.einsum("fk,kij->fij", problem.modes, coarse["modes"])
    return params["static"] + jnp.einsum("fij,fjl->fil", maps, params["static"])


def canonical_shift(params: dict, problem: FitProblem) -> Float[Array, "V 3"] | float:
    """(1, 3) or (V, 3) what our priors add to the canonical mesh, or 0: the learnt translation
    along the body's up axis, and the learnt fraction of the template's offset from the body (-0.5:
    every vertex halfway from the template to the body)."""
    coarse = params.get("coarse", {})
    shift = coarse["shift"] * problem.up[None] if "shift" in coarse else 0.0
    return shift + (coarse["offset_scale"] * problem.body_offset if "offset_scale" in coarse else 0.0)


def fold_smooth_modes(params: dict, problem: FitProblem) -> dict:
    """The same fit with the smooth modes' part moved into ``params["static"]`` and their
    coefficients at 0 (before a remesh, whose new template has modes of its own)."""
    if "modes" not in params.get("coarse", {}):
        return params
    coarse = dict(params["coarse"], modes=jnp.zeros_like(params["coarse"]["modes"]))
    return dict(params, static=static_field(params, problem), coarse=coarse)


def dynamic_residual(net: dict, problem: FitProblem, posed_static: Float[Array, "V 3"],
                     code: Float[Array, " C"]) -> Float[Array, "F 3 3"]:
    """The network's residual Jacobians J^D (F, 3, 3) from the posed static mesh (no gradient to it)."""
    posed_static = jax.lax.stop_gradient(posed_static)
    return fields.dynamic_jacobians(net, problem.network, face_centroids(posed_static, problem.tris),
                                    face_normals(posed_static, problem.tris), code)


@jax.jit
def all_dynamic_residuals(params: dict, problem: FitProblem, frames: Frames) -> Float[Array, "T F 3 3"]:
    """J^D of every frame (stored at a remesh epoch for the blending that follows)."""
    def one(frame):
        return dynamic_residual(params["net"], problem, network_input(params, problem, frame), frame.code)
    return jax.lax.map(one, frames)


def frame_losses(
    images: tuple[Array, Array, Array], field: Array, visible: Array, frame: Frames, problem: FitProblem,
    weights: LossConfig, key: Array, network_on: bool,
) -> tuple[Array, dict]:
    """Stage 3, losses: the total loss and its terms for one frame from the rendered (silhouette,
    diffuse, depth) (H, W) each and the field."""
    silhouette, diffuse, depth = images
    terms = {"silhouette": losses.silhouette_loss(silhouette, frame.mask, frame.occluders)}
    rendering = weights.silhouette * terms["silhouette"]
    if problem.has_diffuse:
        masked = diffuse * frame.mask
        terms["huber"] = losses.huber(masked - frame.diffuse, weights.huber_delta)
        terms["ssim"] = 1.0 - losses.ssim(masked, frame.diffuse)
        rendering = rendering + weights.huber_weight * terms["huber"] + weights.ssim_weight * terms["ssim"]
    total = weights.rendering * rendering
    regularisers = DEFORMATIONS[problem.deformation].regularisers(field, visible if network_on else None, problem,
                                                                  weights)
    for name, (weight, value) in regularisers.items():
        terms[name] = value
        total = total + weight * value
    if problem.has_depth:
        first, second = losses.depth_pairs(key, problem.resolution, weights.depth_boxes, weights.depth_box)
        terms["depth"] = losses.depth_ranking_loss(depth, frame.depth, first, second, weights.depth_margin)
        total = total + weights.depth * terms["depth"]
    terms["total"] = total
    return total, terms


class StepOutput(NamedTuple):
    """What a step returns besides the new state: loss terms, one flag per parameter group (all
    finite after the update; :mod:`ngdjax.nonfinite`), and, when asked, the per-face image-gradient
    statistic of the remeshing (means (F,), seen (F,)), else None."""

    terms: dict
    finite: dict
    face_statistic: tuple[Array, Array] | None


def make_geometry_step(renderer: Renderer, optim: OptimConfig, n_frames: int, weights: LossConfig,
                       coarse: bool = False):
    """The jitted per-frame step ``step(params, opt_state, problem, frames, index, key, blend,
    network_on, collect_statistic) -> (params, opt_state, StepOutput)`` with the optimizer of
    :func:`make_optimizer`; ``blend`` is None or (stored residuals (T, F, 3, 3), alpha).
    ``network_on`` and ``collect_statistic`` are static; everything else is traced, so frames never
    retrace. ``coarse``: the parameters have the ``coarse`` group (:func:`has_coarse`). Cached on
    what the step reads: settings that differ only in the fit's length, seed or checkpointing give
    the same jitted function."""
    optimizer_only = dataclasses.replace(OptimConfig(), static=optim.static, net=optim.net, adam_eps=optim.adam_eps,
                                         clip_static=optim.clip_static)
    return _geometry_step(renderer, optimizer_only, n_frames, weights, coarse)


@functools.lru_cache(maxsize=8)
def _geometry_step(renderer: Renderer, optim: OptimConfig, n_frames: int, weights: LossConfig, coarse: bool):
    from ngdjax.remesh import face_gradient_statistic

    optimizer = make_optimizer(optim, n_frames, coarse)

    def step(params, opt_state, problem: FitProblem, frames: Frames, index, key, blend, network_on: bool,
             collect_statistic: bool):
        frame = frame_at(frames, index)
        frame_blend = None if blend is None else (blend[0][index], blend[1])

        def forward(p):
            with jax.named_scope("deform"):
                posed, _, field = deform(p, problem, frame, network_on, frame_blend)
            with jax.named_scope("render_views"):
                out = render_views(renderer, posed, problem, frame)
            return (out.silhouette[0], out.diffuse[0], out.depth[0], field), (out.visible_faces, out.rast[0, ..., 3])

        (sil, diffuse, depth, field), pullback, (visible, face_ids) = jax.vjp(forward, params, has_aux=True)

        def loss_of(images, f):
            with jax.named_scope("frame_losses"):
                return frame_losses(images, f, visible, frame, problem, weights, key, network_on)
        (_, terms), (image_grads, field_grad) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(
            (sil, diffuse, depth), field)
        (grads,) = pullback((*image_grads, field_grad))
        with jax.named_scope("update"):
            params, opt_state = update(optimizer, grads, opt_state, params)
        statistic = None
        if collect_statistic:
            statistic = face_gradient_statistic(image_grads[1], frame.mask, face_ids.astype(jnp.int32),
                                                problem.tris.shape[0])
        return params, opt_state, StepOutput(terms, finite_by_group(params), statistic)

    return jax.jit(step, static_argnames=("network_on", "collect_statistic"), donate_argnums=(0, 1))


_all_bone_transforms = jax.jit(jax.vmap(bone_transforms, in_axes=(None, 0, 0, 0, 0)))


def prepare_frames(sequence: Sequence, pose_code_dim: int, body: Body, zero_root: bool = False) -> Frames:
    """Stack a sequence's per-frame data as device arrays, with each frame's bone transforms of
    ``body`` (and, with ``zero_root``, the network's input transforms without the global rotation
    and translation); missing optional targets become zeros."""
    zeros = np.zeros(sequence.masks.shape, np.float32)
    as_float = lambda a: zeros if a is None else np.asarray(a, np.float32)  # noqa: E731
    body_parameters = [jnp.asarray(a) for a in (sequence.shape, sequence.pose, sequence.global_rotation,
                                                sequence.translation)]
    transforms = _all_bone_transforms(body, *body_parameters)
    if zero_root:
        shape, pose, rotation, translation = body_parameters
        input_transforms = _all_bone_transforms(body, shape, pose, jnp.zeros_like(rotation), jnp.zeros_like(translation))
    else:
        input_transforms = transforms
    return Frames(
        *body_parameters, transforms=transforms, input_transforms=input_transforms,
        mv=jnp.asarray(sequence.mv), proj=jnp.asarray(sequence.proj),
        code=jnp.asarray(pose_codes(sequence.pose, pose_code_dim)),
        mask=jnp.asarray(as_float(sequence.masks)), occluders=jnp.asarray(as_float(sequence.occluders)),
        diffuse=jnp.asarray(as_float(sequence.diffuse)), depth=jnp.asarray(as_float(sequence.depth)),
    )


def _jacobian_regularisers(field: Float[Array, "F 3 3"], visible: Array | None, problem: FitProblem,
                           weights: LossConfig) -> dict:
    terms = {"jacobian": (weights.jacobian, losses.jacobian_regulariser(field, visible))}
    if weights.jacobian_smoothness:
        terms["smoothness"] = (weights.jacobian_smoothness,
                               losses.jacobian_smoothness(field, problem.adjacent_faces, problem.smoothness_pairs))
    return terms


def _vertex_offset_residual(net: dict, problem: FitProblem, posed_static: Float[Array, "V 3"],
                            code: Float[Array, " C"]) -> Float[Array, "V 3"]:
    return fields.dynamic_offsets(net, problem.network, posed_static, vertex_normals(posed_static, problem.tris), code)


class DeformationModel(NamedTuple):
    """How a deformation model turns its parameters into the garment (one registry entry).

    ``out_dim``: the network's outputs per element; ``initial_static(problem)``: the static part for
    the template; ``residual(net, problem, posed_static (V, 3), code (C,))``: the network's
    pose-dependent part; ``canonical(field, problem) -> (V, 3)``: the rest-pose garment of a full
    field; ``regularisers(field, visible or None, problem, weights) -> {name: (weight, value)}``;
    ``remeshable``: whether adaptive remeshing applies (per-face state can be transferred).
    """

    out_dim: int
    initial_static: Callable[[FitProblem], Array]
    residual: Callable[[dict, FitProblem, Array, Array], Array]
    canonical: Callable[[Array, FitProblem], Array]
    regularisers: Callable[[Array, Array | None, FitProblem, LossConfig], dict]
    remeshable: bool


DEFORMATIONS: dict[str, DeformationModel] = {
    # The method: per-face Jacobians (static + network), Poisson solve, Jacobian regulariser.
    "jacobian_fields": DeformationModel(
        out_dim=9,
        initial_static=lambda problem: jacobians_from_vertices(problem.solver, problem.template),
        residual=dynamic_residual,
        canonical=lambda field, problem: solve(problem.solver, field) + problem.template_mean,
        regularisers=_jacobian_regularisers,
        remeshable=True),
    # The baseline: per-vertex displacements (static + network), Laplacian regulariser.
    "vertex_offsets": DeformationModel(
        out_dim=3,
        initial_static=lambda problem: jnp.zeros_like(problem.template),
        residual=_vertex_offset_residual,
        canonical=lambda field, problem: problem.template + field,
        regularisers=lambda field, visible, problem, weights: {
            "laplacian": (weights.laplacian, losses.uniform_laplacian_energy(field, problem.edges, problem.degree))},
        remeshable=False),
}
