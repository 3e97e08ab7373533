"""The built-in synthetic benchmark: the Anny body walking in place in a garment, seen by one fixed
camera, with ground truth (``python -m experiments.synth``).

What is generated (``generate``), all deterministic from ``SynthConfig.seed``:

1. The **template** the fit starts from: :func:`ngdjax.garment.make_template` around Anny, or
   one derived from an artist's garment (``outfit.template: derived``).
2. The **true garment** (:func:`garments`): the template moved (:func:`true_canonical`: wider,
   longer), so the static difference is several centimetres; same topology, or with
   ``truth_edge_length`` the same garment meshed on its own at that edge length (other vertices
   and faces) and moved alike. Or an **artist-made garment** (``outfit``): a piece of a CC0
   MakeHuman outfit bound to Anny through its ``.mhclo`` binding (:mod:`ngdjax.data.outfit`).
3. Per frame, the true garment's **dynamic deformation** in its canonical (rest) space
   (:func:`dynamic_offsets`): a smooth function of the frame's pose features
   (:func:`ngdjax.data.motion.pose_features`), with folds whose phase and depth change with the
   pose and, for the skirt, a hem that swirls with the steps. Then LBS with the true garment's RBF
   skinning weights, then a push-out that keeps every vertex ``clearance_m`` outside the posed
   skin (the only step not driven by the pose alone; it rarely moves anything).
4. **Rendering** (:func:`render_frame`): body and garment as one mesh with the depth test, so
   the body occludes the garment exactly. Outputs per frame: RGB (textured garment with mild
   shading, shaded body, plain background, antialiased), garment mask (visible, front-facing
   garment pixels), occluders (body pixels over the garment), diffuse (clamp(n_z, 0, 1) on the
   mask, docs/method.md section 5.4), depth (camera-space distance in metres on the mask).

:func:`measure_difficulty` measures the floors of docs/contracts.md section 7 on the generated data.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal, NamedTuple

import igl
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.spatial
from jaxtyping import Array, Bool, Float, Int

from ngdjax.body.model import (
    Body,
    bone_transforms,
    load_body,
    rest_vertices_host,
    skinning_weights_host,
)
from ngdjax.body.skinning import linear_blend_skinning, rbf_skinning_weights
from ngdjax.camera import look_at, perspective, to_clip, to_view_directions
from ngdjax.config import path_field
from ngdjax.data.motion import (
    Motion,
    MotionConfig,
    pose_features,
    primitive_poses,
    procedural_motion,
)
from ngdjax.errors import InputError
from ngdjax.garment import GARMENT_KINDS, BodyFrame, body_frame, make_template, push_in_front
from ngdjax.mesh import boundary_loops, vertex_normals
from ngdjax.render.backend import Renderer, get_renderer
from ngdjax.render.topology import antialias_topology


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """The fixed camera, looking at the garment's centre from the body's front."""

    distance_m: float = 2.2  # from the garment's centre
    fov_deg: float = 32.0  # vertical field of view
    elevation_deg: float = 8.0  # above the horizontal (looking slightly down)


@dataclasses.dataclass(frozen=True)
class DifficultyConfig:
    """How far the true garment is from the template and how much it moves beyond LBS."""

    widen_m: float = 0.035  # true garment farther from the body than the template (at the hem; 40% at the top)
    lengthen_m: float = 0.07  # true hem lower than the template's (sleeves: half of it)
    fold_m: float = 0.02  # fold amplitude where the garment hangs free (smaller near the waistband)
    fold_wavelength_m: float = 0.12  # fold spacing around the garment
    sway_m: float = 0.07  # skirt hem swirl at full step (only for the skirt)
    clearance_m: float = 0.004  # minimum distance of the true garment from the posed skin


@dataclasses.dataclass(frozen=True)
class PatternConfig:
    """The true garment's painted pattern (the synthetic sequence's, not the fit's texture): a
    colour gradient from top to bottom with sharp stripes."""

    stripe_period_m: float = 0.07  # stripes along the height
    stripe_width: float = 0.35  # fraction of a period that is striped
    check_period_m: float = 0.2  # vertical pinstripes around the garment (arc length)


@dataclasses.dataclass(frozen=True)
class OutfitConfig:
    """An artist-made garment as the truth (docs/garments.md): a piece of an outfit folder
    (``NAME.obj`` + its ``NAME.mhclo`` binding, e.g. ``ngdjax/data/garments/female_casualsuit01``)
    bound to the body, instead of a generated garment moved away from the template."""

    folder: str | None = path_field(None)  # the outfit folder (None: the truth is generated, as the template)
    piece: str = "top"  # which connected part: "top" or "bottom" (by height on the body)
    # The template given to the fit: "generic" = our generated garment of class `garment`;
    # "derived" = the true piece smoothed, coarsened to target_edge_length, shrunk towards the body
    # and shortened (ngdjax.derived_template), as a user starting from a similar garment.
    template: Literal["generic", "derived"] = "generic"
    smooth_iterations: int = 20  # derived template: smoothing passes
    shrink_m: float = 0.02  # derived template: moved towards the body (never into it)
    shorten_m: float = 0.05  # derived template: openings at the garment's lower end raised


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """One synthetic sequence (``configs/synth/*.yaml``)."""

    seed: int = 0  # sets the motion's phases and the garment's colours
    # The garment's class: the generated template's kind and the dynamics' (the skirt's hem sways).
    garment: Literal["skirt", "tshirt", "shorts", "trousers", "leggings"] = "skirt"
    n_frames: int = 30
    resolution: tuple[int, int] = (256, 256)  # (H, W)
    target_edge_length: float = 0.015  # template edge length in metres (0.015: about 2.5k vertices)
    # The true garment's own mesh: the same procedure at this edge length (None: the template's
    # mesh and resolution; normal consistency against a truth that coarse favours a fit at the
    # template's resolution over a refined one: docs/method_notes.md, "Remeshing and normal
    # consistency").
    truth_edge_length: float | None = None
    offset_m: float = 0.015  # template clearance from the skin
    render_backend: str = "jax"  # ngdjax.render.backend name ("auto" picks nvdiffrast on a GPU)
    motion: MotionConfig = dataclasses.field(default_factory=MotionConfig)
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    difficulty: DifficultyConfig = dataclasses.field(default_factory=DifficultyConfig)
    texture: PatternConfig = dataclasses.field(default_factory=PatternConfig)
    outfit: OutfitConfig = dataclasses.field(default_factory=OutfitConfig)  # an artist-made true garment


def check_config(config: SynthConfig, source: str = "config") -> None:
    """Raise :class:`InputError` naming every out-of-range value (before any computation)."""
    problems = []
    positive = {"n_frames": config.n_frames, "target_edge_length": config.target_edge_length,
                "offset_m": config.offset_m, "camera.distance_m": config.camera.distance_m,
                "motion.step_period": config.motion.step_period, "motion.turn_period": config.motion.turn_period,
                "difficulty.fold_wavelength_m": config.difficulty.fold_wavelength_m,
                "texture.stripe_period_m": config.texture.stripe_period_m,
                "texture.check_period_m": config.texture.check_period_m}
    if config.truth_edge_length is not None:
        positive["truth_edge_length"] = config.truth_edge_length
    problems += [f"{source}: '{key}' must be positive, got {value}" for key, value in positive.items() if not value > 0]
    if config.garment not in GARMENT_KINDS:
        problems.append(f"{source}: 'garment' is '{config.garment}', expected one of {list(GARMENT_KINDS)}")
    if not all(8 <= n <= 4096 for n in config.resolution):
        problems.append(f"{source}: 'resolution' must be two sizes in 8..4096, got {list(config.resolution)}")
    if not 1.0 <= config.camera.fov_deg <= 150.0:
        problems.append(f"{source}: 'camera.fov_deg' must be in 1..150, got {config.camera.fov_deg}")
    if config.n_frames > 10000:
        problems.append(f"{source}: 'n_frames' must be at most 10000 (4-digit frame names), got {config.n_frames}")
    if not 0.0 < config.texture.stripe_width < 1.0:
        problems.append(f"{source}: 'texture.stripe_width' must be in (0, 1), got {config.texture.stripe_width}")
    if config.motion.bvh is not None:
        if not config.motion.bvh_fps > 0:
            problems.append(f"{source}: 'motion.bvh_fps' must be positive, got {config.motion.bvh_fps}")
        else:
            from ngdjax.data.retarget import check_clip

            try:
                check_clip(config.motion, config.n_frames)
            except InputError as error:
                problems += [f"{source}: 'motion.bvh': {problem}" for problem in error.problems]
    negative = [key for key, value in dataclasses.asdict(config.difficulty).items() if value < 0]
    problems += [f"{source}: 'difficulty.{key}' must not be negative" for key in negative]
    problems += _outfit_problems(config.outfit, source)
    if problems:
        raise InputError(*problems)


def _outfit_problems(outfit: OutfitConfig, source: str) -> list[str]:
    """Problems of the ``outfit`` section: out-of-range values, a derived template without a true
    piece, an outfit folder or piece that cannot be bound (read now, before any computation)."""
    problems = [f"{source}: 'outfit.{key}' must not be negative" for key in ("smooth_iterations", "shrink_m", "shorten_m")
                if getattr(outfit, key) < 0]
    if outfit.folder is None:
        if outfit.template == "derived":
            problems.append(f"{source}: 'outfit.template' is 'derived' but 'outfit.folder' names no garment to derive it from")
        return problems
    from ngdjax.data.outfit import bound_piece

    try:
        bound_piece(outfit.folder, outfit.piece)
    except InputError as error:
        problems += [f"{source}: 'outfit': {problem}" for problem in error.problems]
    return problems


class SyntheticSequence(NamedTuple):
    """A generated sequence in memory (T frames, H x W, a garment of V vertices).

    Attributes:
        images: (T, H, W, 3) uint8. masks, occluders: (T, H, W) bool. diffuse: (T, H, W) float32
        in [0, 1]. depth: (T, H, W) float32 metres (0 off the mask).
        mv, proj: (4, 4) the fixed camera. motion: the body's :class:`~ngdjax.data.motion.Motion`.
        template_vertices (V, 3), faces (F, 3): the template given to the fit (rest pose, world).
        template_truth: (V, 3) the template's vertices moved as the truth is (the static
        difference), or None where the truth is an artist's garment (``outfit.folder``).
        true_vertices (W, 3), true_faces (G, 3): the true garment in the rest pose, before any
        dynamics, on its own mesh (the template's unless ``truth_edge_length`` or ``outfit`` is set).
        gt_vertices: (T, W, 3) the true garment per frame (world space).
        lbs_vertices: (T, W, 3) ``true_vertices`` posed by LBS alone (what the dynamics go beyond).
        body_vertices: (T, N, 3) the posed body (world space).
        frame: the body's :class:`~ngdjax.garment.BodyFrame`. kind: "skirt" or "tshirt".
    """

    images: np.ndarray
    masks: np.ndarray
    occluders: np.ndarray
    diffuse: np.ndarray
    depth: np.ndarray
    mv: np.ndarray
    proj: np.ndarray
    motion: Motion
    template_vertices: np.ndarray
    faces: np.ndarray
    template_truth: np.ndarray | None
    true_vertices: np.ndarray
    true_faces: np.ndarray
    gt_vertices: np.ndarray
    lbs_vertices: np.ndarray
    body_vertices: np.ndarray
    frame: BodyFrame
    kind: str


# --- The true garment ----------------------------------------------------------------------------

def garments(config: SynthConfig, body: Body, frame: BodyFrame) -> tuple:
    """The template and the true garment in the rest pose (world frame of the body).

    Returns:
        template (V, 3), faces (F, 3); template_truth (V, 3) or None (see
        :class:`SyntheticSequence`); truth (W, 3), true_faces (G, 3).
    """
    shape = np.zeros(0)
    outfit = config.outfit
    if outfit.folder is not None:
        from ngdjax.data.outfit import bound_piece

        truth, true_faces = bound_piece(outfit.folder, outfit.piece)
        if outfit.template == "derived":
            from ngdjax.derived_template import derived_template

            template, faces = derived_template(
                truth, true_faces, rest_vertices_host(body, shape), np.asarray(body.triangles), edge_length=config.target_edge_length,
                smooth_iterations=outfit.smooth_iterations, shrink_m=outfit.shrink_m, shorten_m=outfit.shorten_m,
                up=frame.axes[2])
        else:
            template, faces = make_template(config.garment, body, shape, config.target_edge_length, config.offset_m)
        return template, faces, None, truth, true_faces
    template, faces = make_template(config.garment, body, shape, config.target_edge_length, config.offset_m)
    template_truth = true_canonical(config.garment, template, faces, frame, config.difficulty)
    if config.truth_edge_length is None:
        return template, faces, template_truth, template_truth, faces
    own, true_faces = make_template(config.garment, body, shape, config.truth_edge_length, config.offset_m)
    return template, faces, template_truth, true_canonical(config.garment, own, true_faces, frame, config.difficulty), true_faces


def true_canonical(kind: str, template: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], frame: BodyFrame,
                   difficulty: DifficultyConfig) -> Float[np.ndarray, "V 3"]:
    """The true garment in the rest pose: the template (world, rest pose) moved away from the
    body by ``widen_m`` along its normals (40% of it at the top, all of it at the hem) and
    stretched down by up to ``lengthen_m`` (skirt, shorts, trousers, leggings: the lower end;
    t-shirt: the hem below the chest and, by half of it, the sleeves along the arms). Same
    vertices and faces."""
    local = _to_local(frame, template)
    normals = vertex_normals(local, faces)
    height = local[:, 2]
    top, bottom = height.max(), height.min()
    if kind != "tshirt":  # skirts and legged garments: the hem (or the leg openings) lower
        down = (top - height) / (top - bottom)  # 0 at the waistband, 1 at the hem
        stretch = difficulty.lengthen_m * down[:, None] * np.array([0.0, 0.0, -1.0])
    else:
        chest = 0.5 * (frame.joints["left_shoulder"][2] + frame.joints["left_elbow"][2])
        down = np.clip((chest - height) / (chest - bottom), 0.0, 1.0)
        stretch = difficulty.lengthen_m * down[:, None] * np.array([0.0, 0.0, -1.0])
        for side in ("left", "right"):
            shoulder, elbow = frame.joints[f"{side}_shoulder"], frame.joints[f"{side}_elbow"]
            arm = elbow - shoulder
            along = np.clip((local - shoulder) @ arm / (arm @ arm), 0.0, 1.0)
            sleeve = along * (np.abs(local[:, 1]) > np.abs(shoulder[1]))
            stretch += 0.5 * difficulty.lengthen_m * sleeve[:, None] * (arm / np.linalg.norm(arm))
            down = np.maximum(down, sleeve)
    moved = local + difficulty.widen_m * (0.4 + 0.6 * down)[:, None] * normals + stretch
    return frame.to_world(moved)


def dynamic_offsets(kind: str, true_local: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"],
                    features: Float[np.ndarray, "T M"], motion: MotionConfig,
                    difficulty: DifficultyConfig) -> Float[np.ndarray, "T V 3"]:
    """Per-frame displacements (T, V, 3) of the true garment in body coordinates (rest pose),
    a smooth function of the pose features (T, M) of :func:`ngdjax.data.motion.pose_features`.

    With s = step / step amplitude and w = twist / twist amplitude (each in [-1, 1]) and k =
    knee_l - knee_r normalised likewise:
    - folds along the normal of the rest-pose garment: ``fold_m * h * (0.8 + 0.4 s^2) *
      sin(n theta + pi (s + w / 2))`` plus a slanted family ``0.6 fold_m * h *
      sin(2 n theta + 2 pi z / (2 lambda) - pi k)``, with theta the angle about the vertical axis
      (``n`` folds of about ``fold_wavelength_m`` around the hem) and h = how freely the
      vertex hangs (0 at the waistband, 1 at the hem; for the t-shirt, also along the sleeves);
    - skirt: the hem swirls about the vertical axis: ``-sway_m h^2 s`` along the tangent, plus
      ``sway_m h^2 w / 2`` sideways.
    """
    rad = np.radians
    s = features[:, 0] / rad(motion.step_deg) if motion.step_deg else np.zeros(len(features))
    w = features[:, 5] / rad(motion.twist_deg) if motion.twist_deg else np.zeros(len(features))
    k = (features[:, 1] - features[:, 2]) / rad(motion.knee_deg) if motion.knee_deg else np.zeros(len(features))
    height = true_local[:, 2]
    hang = (height.max() - height) / (height.max() - height.min())
    theta = np.arctan2(true_local[:, 1], true_local[:, 0])
    radius = np.linalg.norm(true_local[:, :2], axis=1)
    normals = vertex_normals(true_local, faces)
    tangent = np.stack([-np.sin(theta), np.cos(theta), np.zeros_like(theta)], -1)
    n_folds = max(3, round(2 * np.pi * np.percentile(radius, 90) / difficulty.fold_wavelength_m))
    wave = difficulty.fold_wavelength_m
    first = (0.8 + 0.4 * s[:, None] ** 2) * np.sin(n_folds * theta[None] + np.pi * (s + 0.5 * w)[:, None])
    second = 0.6 * np.sin(2 * n_folds * theta[None] + np.pi * height[None] / wave - np.pi * k[:, None])
    folds = difficulty.fold_m * hang[None] * (first + second)  # (T, V)
    offsets = folds[..., None] * normals[None]
    if kind == "skirt":
        swirl = -s[:, None, None] * tangent[None] + 0.5 * w[:, None, None] * np.array([0.0, 1.0, 0.0])
        offsets = offsets + difficulty.sway_m * (hang**2)[None, :, None] * swirl
    return offsets


def _to_local(frame: BodyFrame, points: np.ndarray) -> np.ndarray:
    return (points - frame.origin) @ frame.axes.T


# --- Rendering -----------------------------------------------------------------------------------

class FrameImages(NamedTuple):
    """One rendered frame (H, W [, 3]): see the module docstring."""

    rgb: Float[Array, "H W 3"]
    mask: Bool[Array, "H W"]
    occluders: Bool[Array, "H W"]
    diffuse: Float[Array, "H W"]
    depth: Float[Array, "H W"]


BACKGROUND = (0.93, 0.93, 0.9)
SKIN = (0.86, 0.68, 0.58)


def garment_albedo(points: Float[Array, "*B 3"], colours: Float[Array, "3 3"], texture: PatternConfig,
                   height_range: tuple[float, float]) -> Float[Array, "*B 3"]:
    """Solid texture at body-frame rest positions ``points`` (..., 3): a vertical gradient from
    ``colours[0]`` (top) to ``colours[1]`` (bottom) with sharp stripes of ``colours[2]`` along
    the height and thin pinstripes around the garment."""
    top, bottom = height_range
    t = jnp.clip((top - points[..., 2]) / (top - bottom), 0.0, 1.0)[..., None]
    first, second, third = (jnp.reshape(c, (1,) * (points.ndim - 1) + (3,)) for c in colours)
    base = (1.0 - t) * first + t * second
    band = jnp.mod(points[..., 2] / texture.stripe_period_m, 1.0) < texture.stripe_width
    arc = jnp.arctan2(points[..., 1], points[..., 0]) * 0.2
    pin = jnp.mod(arc / texture.check_period_m, 1.0) < 0.08
    stripe = (band | pin)[..., None]
    return jnp.where(stripe, 0.35 * base + 0.65 * third, base)


@functools.partial(jax.jit, static_argnames=("renderer", "resolution", "texture", "height_range"))
def render_frame(
    renderer: Renderer, body_tris: Int[Array, "Fb 3"], garment_tris: Int[Array, "Fg 3"], topology: Int[Array, "F 3"],
    body_v: Float[Array, "N 3"], garment_v: Float[Array, "V 3"], garment_rest: Float[Array, "V 3"],
    mv: Float[Array, "4 4"], proj: Float[Array, "4 4"], colours: Float[Array, "3 3"], *,
    resolution: tuple[int, int], texture: PatternConfig, height_range: tuple[float, float],
) -> FrameImages:
    """Render body + garment as one mesh (depth-tested) and the garment alone (for occluders).

    Args:
        body_tris (Fb, 3), garment_tris (Fg, 3): int32; ``topology`` (Fb + Fg, 3): the antialias
            topology of the combined triangles ``[body_tris; garment_tris + N]``.
        body_v (N, 3), garment_v (V, 3): world-space posed vertices, float32.
        garment_rest: (V, 3) body-frame rest positions (texture coordinates of the solid texture).
        mv, proj: camera. colours: (3, 3) the texture's colours. resolution: (H, W), static.
        texture, height_range: the solid texture's settings and (top, bottom) heights, static.
    """
    tris = jnp.concatenate([body_tris, garment_tris + body_v.shape[0]])
    vertices = jnp.concatenate([body_v, garment_v])
    clip = to_clip(vertices, mv, proj)
    normals = jnp.concatenate([vertex_normals(body_v, body_tris), vertex_normals(garment_v, garment_tris)])
    view_normals = to_view_directions(normals, mv)
    view_z = vertices @ mv[2, :3] + mv[2, 3]
    rest = jnp.concatenate([jnp.zeros_like(body_v), garment_rest])
    attributes = jnp.concatenate([view_normals, view_z[:, None], rest], axis=1)  # (N + V, 7)
    rast = renderer.rasterize(clip, tris, resolution)
    pixels = renderer.interpolate(attributes, rast, tris)[0]
    triangle = rast[0, ..., 3]
    covered = triangle > 0
    on_garment = triangle > float(body_tris.shape[0])  # ids are triangle index + 1
    n_z = pixels[..., 2]
    mask = on_garment & (n_z > 0)
    on_body = covered & ~on_garment
    garment_rast = renderer.rasterize(to_clip(garment_v, mv, proj), garment_tris, resolution)
    occluders = on_body & (garment_rast[0, ..., 3] > 0)
    facing = jnp.clip(n_z, 0.0, 1.0)[..., None]
    albedo = garment_albedo(pixels[..., 4:7], colours, texture, height_range)
    cloth = albedo * (0.85 + 0.15 * facing)
    skin = jnp.asarray([[SKIN]], jnp.float32) * (0.35 + 0.65 * facing)
    background = jnp.broadcast_to(jnp.asarray(BACKGROUND, jnp.float32), cloth.shape)
    colour = jnp.where(on_garment[..., None], cloth, jnp.where(on_body[..., None], skin, background))
    rgb = renderer.antialias(colour[None], rast, clip, tris, topology)[0]
    maskf = mask.astype(jnp.float32)
    return FrameImages(rgb=jnp.clip(rgb, 0.0, 1.0), mask=mask, occluders=occluders,
                       diffuse=jnp.clip(n_z, 0.0, 1.0) * maskf, depth=-pixels[..., 3] * maskf)


def camera_for(config: CameraConfig, frame: BodyFrame, target: np.ndarray, resolution: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The fixed camera (mv, proj), (4, 4) each: in front of the body, ``distance_m`` from
    ``target`` (world), ``elevation_deg`` above it, vertical field of view ``fov_deg``."""
    forward, up = frame.axes[0], frame.axes[2]
    elevation = np.radians(config.elevation_deg)
    eye = target + config.distance_m * (np.cos(elevation) * forward + np.sin(elevation) * up)
    height, width = resolution
    focal = 0.5 * height / np.tan(0.5 * np.radians(config.fov_deg))
    return look_at(eye, target, up), perspective(focal, focal, 0.5 * width, 0.5 * height, width, height)


# --- The whole sequence --------------------------------------------------------------------------

def generate(config: SynthConfig, progress=None) -> SyntheticSequence:
    """Generate the sequence of ``config`` (see the module docstring).

    Args:
        progress: optional wrapper of the frame loop, e.g. ``tqdm.tqdm`` (called with an iterable
            and ``total``/``desc`` keywords).
    """
    check_config(config)
    body = load_body("anny")
    shape = np.zeros(0)
    frame = body_frame(body, shape)
    template, faces, template_truth, truth, true_faces = garments(config, body, frame)
    weights = rbf_skinning_weights(truth, rest_vertices_host(body, shape), skinning_weights_host(body))
    if config.motion.bvh is None:
        motion = procedural_motion(config.motion, config.n_frames, frame, config.seed)
    else:
        from ngdjax.data.retarget import bvh_motion

        motion = bvh_motion(config.motion, config.n_frames, frame)
    features = pose_features(motion.pose, primitive_poses(frame))
    true_local = _to_local(frame, truth)
    rest_frames = true_local[None] + dynamic_offsets(config.garment, true_local, true_faces, features, config.motion,
                                                     config.difficulty)
    rest_world = frame.to_world(rest_frames)
    transforms, bodies = _pose_bodies(body, motion)
    weights32 = jnp.asarray(weights, jnp.float32)
    gt_raw = np.asarray(_pose_garments(jnp.asarray(rest_world, jnp.float32), weights32, transforms), np.float64)
    lbs = np.asarray(_pose_garments(jnp.asarray(np.broadcast_to(truth, rest_world.shape), jnp.float32), weights32,
                                    transforms), np.float64)
    body_tris = np.asarray(body.triangles, np.int32)
    gt = np.stack([push_in_front(g, b, vertex_normals(b, body_tris), config.difficulty.clearance_m)
                   for g, b in zip(gt_raw, bodies.astype(np.float64), strict=True)])

    mv, proj = camera_for(config.camera, frame, 0.5 * (truth.min(0) + truth.max(0)), config.resolution)
    renderer = _renderer(config.render_backend)
    garment_tris = true_faces.astype(np.int32)
    topology = antialias_topology(np.concatenate([body_tris, garment_tris + len(bodies[0])]))
    static = {"resolution": tuple(config.resolution), "texture": config.texture,
              "height_range": (float(true_local[:, 2].max()), float(true_local[:, 2].min()))}
    constants = [jnp.asarray(a) for a in (body_tris, garment_tris, topology)]
    rest32, mv32, proj32 = (jnp.asarray(a, jnp.float32) for a in (true_local, mv, proj))
    colours = jnp.asarray(_colours(config.seed), jnp.float32)
    frames = range(config.n_frames)
    if progress is not None:
        frames = progress(frames, total=config.n_frames, desc="rendering frames")
    rendered = [jax.device_get(render_frame(renderer, *constants, jnp.asarray(bodies[t], jnp.float32),
                                            jnp.asarray(gt[t], jnp.float32), rest32, mv32, proj32, colours, **static))
                for t in frames]
    stack = lambda name: np.stack([getattr(r, name) for r in rendered])
    return SyntheticSequence(
        images=np.round(stack("rgb") * 255).astype(np.uint8), masks=stack("mask"), occluders=stack("occluders"),
        diffuse=stack("diffuse").astype(np.float32), depth=stack("depth").astype(np.float32), mv=mv, proj=proj,
        motion=motion, template_vertices=template, faces=faces, template_truth=template_truth,
        true_vertices=truth, true_faces=true_faces, gt_vertices=gt,
        lbs_vertices=lbs, body_vertices=bodies, frame=frame, kind=config.garment)


@functools.cache
def _renderer(name: str) -> Renderer:
    """One renderer per backend name, so that :func:`render_frame` (static in it) compiles once."""
    return get_renderer(name)


_pose_garments = jax.jit(jax.vmap(linear_blend_skinning, in_axes=(0, None, 0)))
_bone_transforms = jax.jit(jax.vmap(bone_transforms, in_axes=(None, None, 0, 0, 0)))


def _pose_bodies(body: Body, motion: Motion) -> tuple[Float[Array, "T K 4 4"], np.ndarray]:
    """Bone transforms (T, K, 4, 4) and posed body vertices (T, N, 3) of every frame (Anny's
    body is plain LBS of its rest vertices, so both come from one kinematic-chain evaluation)."""
    shape = np.zeros(0)
    args = [jnp.asarray(a, jnp.float32) for a in (motion.pose, motion.global_rotation, motion.translation)]
    transforms = _bone_transforms(body, jnp.zeros(0, jnp.float32), *args)
    rest = jnp.asarray(rest_vertices_host(body, shape), jnp.float32)
    weights = jnp.asarray(skinning_weights_host(body), jnp.float32)
    vertices = jax.vmap(linear_blend_skinning, in_axes=(None, None, 0))(rest, weights, transforms)
    return transforms, np.asarray(vertices)


def _colours(seed: int) -> np.ndarray:
    """The texture's three colours (3, 3) in [0, 1]: two for the gradient, one for the stripes."""
    rng = np.random.default_rng(seed + 1)
    hue = rng.uniform(0.0, 1.0)
    hues = np.array([hue, hue + 0.12, hue + 0.5]) % 1.0
    angles = 2 * np.pi * hues[:, None] + np.array([0.0, 2.0943951, 4.1887902])[None]
    colours = 0.5 + 0.35 * np.cos(angles)
    colours[2] *= 0.4  # dark stripes
    return colours


def write(sequence: SyntheticSequence, directory: str) -> None:
    """Write the sequence with its ground-truth meshes through
    :func:`ngdjax.data.loader.write_sequence`."""
    from ngdjax.data.loader import write_sequence

    n = len(sequence.images)
    write_sequence(
        directory, frames=list(range(n)), images=sequence.images, masks=sequence.masks, mv=sequence.mv,
        proj=sequence.proj, shape=np.zeros(0), pose=sequence.motion.pose,
        global_rotation=sequence.motion.global_rotation, translation=sequence.motion.translation,
        body_model="anny", template_vertices=sequence.template_vertices, template_faces=sequence.faces,
        occluders=sequence.occluders, diffuse=sequence.diffuse, depth=sequence.depth,
        gt_meshes=[(v, sequence.true_faces) for v in sequence.gt_vertices])


# --- Difficulty, measured -----------------------------------------------------------------------

# The floors of docs/contracts.md section 7, by measure_difficulty's key (metres).
DIFFICULTY_FLOORS = {"static_rms_m": 0.03, "fold_amplitude_m": 0.01, "hem_sway_m": 0.05}


def measure_difficulty(sequence: SyntheticSequence) -> dict:
    """The floors of docs/contracts.md section 7 ("The synthetic benchmark's difficulty") measured on generated data.

    - ``static_rms_m``: RMS distance between the template and the true rest garment
      (:func:`static_difference`).
    - ``fold_amplitude_m``: the residual beyond LBS (``gt - lbs``) along the posed normals,
      band-passed over the rest garment (Gaussian smoothing at 1 cm minus at 5 cm keeps
      wavelengths of about 5-30 cm), 95th percentile of its magnitude, mean over frames.
    - ``fold_change_m``: 95th percentile over vertices of the band-passed residual's standard
      deviation across frames (the folds change from frame to frame).
    - ``hem_sway_m`` (skirt): the largest, over frames, mean over the hem of the low-passed (5 cm)
      residual's length.
    - ``occluded_frames``: frames where the body covers some of the garment.
    - ``texture_edge_fraction``: fraction of neighbouring garment pixel pairs (both inside the
      mask) whose colours differ by more than 0.2 (sharp pattern edges), mean over frames.
    - ``texture_gradient``: colour distance between the mean garment colour of the top and the
      bottom thirds of the garment's rows, mean over frames (the smooth gradient).
    """
    rest = sequence.true_vertices
    residual = sequence.gt_vertices - sequence.lbs_vertices  # (T, V, 3)
    normals = np.stack([vertex_normals(v, sequence.true_faces) for v in sequence.lbs_vertices])
    along_normal = np.einsum("tvi,tvi->tv", residual, normals)
    fine, coarse = (_surface_smoother(rest, sigma) for sigma in (0.01, 0.05))
    band = (fine @ along_normal.T - coarse @ along_normal.T).T  # (T, V)
    result = {
        "static_rms_m": static_difference(sequence),
        "fold_amplitude_m": float(np.mean(np.percentile(np.abs(band), 95, axis=1))),
        "fold_change_m": float(np.percentile(band.std(axis=0), 95)),
        "occluded_frames": int(np.sum(sequence.occluders.any(axis=(1, 2)))),
    }
    if sequence.kind == "skirt":
        up = sequence.frame.axes[2]
        hem = min(boundary_loops(sequence.true_faces), key=lambda loop: float(np.mean(rest[loop] @ up)))
        low = np.einsum("uv,tvi->tui", coarse[hem].toarray() if scipy.sparse.issparse(coarse) else coarse[hem], residual)
        result["hem_sway_m"] = float(np.max(np.mean(np.linalg.norm(low, axis=-1), axis=1)))
    result.update(_texture_measures(sequence.images, sequence.masks))
    return result


def static_difference(sequence: SyntheticSequence) -> float:
    """RMS distance (metres) between the template and the true rest garment: per vertex, where the
    truth is the template moved (same vertices); else, for an artist's garment on its own mesh,
    each mesh's vertices to the other's surface, both directions pooled (no correspondence is
    assumed, so this is a lower bound on any vertex-to-vertex distance)."""
    if sequence.template_truth is not None:
        return float(np.sqrt(np.mean(np.sum((sequence.template_truth - sequence.template_vertices) ** 2, axis=1))))
    one_way = lambda points, vertices, faces: igl.point_mesh_squared_distance(points, vertices, faces)[0]  # noqa: E731
    squared = np.concatenate([
        one_way(sequence.template_vertices, sequence.true_vertices, sequence.true_faces.astype(np.int64)),
        one_way(sequence.true_vertices, sequence.template_vertices, sequence.faces.astype(np.int64))])
    return float(np.sqrt(np.mean(squared)))


def _surface_smoother(points: np.ndarray, sigma: float) -> scipy.sparse.csr_matrix:
    """Row-normalised Gaussian weights (V, V) over ``points`` (Euclidean, cut at 3 sigma)."""
    tree = scipy.spatial.cKDTree(points)
    pairs = tree.sparse_distance_matrix(tree, 3 * sigma, output_type="coo_matrix")
    weights = scipy.sparse.coo_matrix((np.exp(-0.5 * (pairs.data / sigma) ** 2), (pairs.row, pairs.col)), shape=pairs.shape)
    weights = (weights + scipy.sparse.identity(len(points))).tocsr()  # the zero self-distances are not stored
    return scipy.sparse.diags(1.0 / np.asarray(weights.sum(axis=1)).ravel()) @ weights


def _texture_measures(images: np.ndarray, masks: np.ndarray) -> dict:
    colour = images.astype(np.float32) / 255.0
    inside = masks[:, 1:, :] & masks[:, :-1, :]
    jumps = np.abs(colour[:, 1:] - colour[:, :-1]).max(axis=-1) > 0.2
    edge_fraction = np.mean([jumps[t][inside[t]].mean() for t in range(len(images)) if inside[t].any()])
    gradients = []
    for t in range(len(images)):
        rows = np.flatnonzero(masks[t].any(axis=1))
        if len(rows) < 3:
            continue
        third = (rows[-1] - rows[0]) // 3
        top = colour[t][: rows[0] + third][masks[t][: rows[0] + third]].mean(axis=0)
        bottom = colour[t][rows[-1] - third:][masks[t][rows[-1] - third:]].mean(axis=0)
        gradients.append(float(np.linalg.norm(top - bottom)))
    return {"texture_edge_fraction": float(edge_fraction), "texture_gradient": float(np.mean(gradients))}


def mask_round_trip_iou(renderer: Renderer, vertices: np.ndarray, faces: np.ndarray, mv: np.ndarray, proj: np.ndarray,
                        mask: np.ndarray, occluders: np.ndarray) -> float:
    """IoU between a garment mask (H, W) and the silhouette of the mesh rendered alone as the fit
    renders it (:func:`ngdjax.render.shading.render_geometry`, thresholded at 0.5), both
    without the occluder pixels (H, W)."""
    tris = np.asarray(faces, np.int32)
    silhouette = np.asarray(_silhouette(renderer, jnp.asarray(vertices, jnp.float32), jnp.asarray(tris),
                                        jnp.asarray(antialias_topology(tris)), jnp.asarray(mv, jnp.float32),
                                        jnp.asarray(proj, jnp.float32), resolution=tuple(mask.shape))) > 0.5
    keep = ~occluders
    union = np.sum((silhouette | mask) & keep)
    return float(np.sum(silhouette & mask & keep) / max(union, 1))


@functools.partial(jax.jit, static_argnames=("renderer", "resolution"))
def _silhouette(renderer, vertices, tris, topology, mv, proj, resolution):
    from ngdjax.render.shading import render_geometry

    return render_geometry(renderer, vertices, tris, topology, mv, proj, resolution).silhouette[0]
