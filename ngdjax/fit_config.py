"""The fit's typed configuration (YAML files under configs/, loaded by :func:`ngdjax.config.load_config`).

Defaults are the method's (docs/method.md sections 6, 7, 8, 9); configs rescale epochs, schedules and
table sizes. Every loss weight is here. Two blocks are shared: :class:`~ngdjax.fields.NetworkConfig`
(a network's size, for the deformation field and the dynamic texture) and :class:`ScheduleConfig`
(a learning rate and its decay, for each parameter group of each stage). Every class lists the
range problems of its own fields (``problems()``), checked when a config is loaded; ``RENAMED``
maps a key's earlier name to its current one, so an old config gets a pointer instead of a puzzle.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ngdjax.config import path_field
from ngdjax.fields import NetworkConfig
from ngdjax.render.backend import RenderBackend

DeformationName = Literal["jacobian_fields", "vertex_offsets"]  # keys of ngdjax.geometry.DEFORMATIONS


def at_least(value, bound, name: str) -> list[tuple[str, str]]:
    """[(name, message)] when ``value < bound``."""
    return [(name, f"must be >= {bound}, got {value}")] if value < bound else []


def positive(value, name: str) -> list[tuple[str, str]]:
    """[(name, message)] when ``value <= 0``."""
    return [(name, f"must be > 0, got {value}")] if value <= 0 else []


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """A log-linear learning-rate decay from ``lr[0]`` to ``lr[1]`` over ``decay_steps`` steps
    (docs/method.md 9)."""

    lr: tuple[float, float] = (1.5e-3, 1.6e-7)  # (start, end) learning rate
    decay_steps: int = 140_000  # steps from the start rate to the end rate, held after

    def problems(self) -> list[tuple[str, str]]:
        rates = [] if min(self.lr) > 0 else [("lr", f"must be two rates > 0 (start, end), got {list(self.lr)}")]
        return rates + at_least(self.decay_steps, 1, "decay_steps")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the sequence is. Relative paths are taken from the config file's directory (an
    override's from the current directory)."""

    sequence: str = path_field()  # the sequence directory (docs/sequence_format.md)
    synth_config: str | None = path_field(None)  # a configs/synth/*.yaml generating it when the directory is new or empty


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """The deformation model (``ngdjax.geometry.DEFORMATIONS``). ``zero_root``: the network reads
    the static mesh posed without the body's global rotation and translation (docs/method.md 4.5,
    as for PeopleSnapshot, where the subject turns in place), so a garment point keeps its input
    position however the body is turned.

    Priors for the surface the camera never sees (ours; docs/method_notes.md, "Priors for the
    never-seen surface"): ``smooth_modes`` adds the template's K lowest Laplacian eigenfunctions
    beneath the static Jacobians (:mod:`ngdjax.smooth_modes`), so a change seen on one side reaches
    the other; ``vertical_shift`` frees the canonical mesh's position along the body's up axis (the
    Poisson solve fixes it at the template's vertex mean); ``body_offset_scale`` learns one factor
    of the template's offset from the body, so a garment that the silhouette shows tighter (or
    looser) at its sides is so at its front and back too, which the camera sees only head-on."""

    RENAMED = {name: f"network.{name}" for name in
               ("n_levels", "n_features", "log2_table_size", "base_resolution", "per_level_scale", "hidden")}

    deformation: DeformationName = "jacobian_fields"  # the method's per-face Jacobians, or the vertex_offsets baseline
    dynamic: bool = True  # false: the network stays off (the static-only ablation)
    zero_root: bool = False  # the network's input ignores the body's global rotation and translation
    pose_code_dim: int = 4  # length of the PCA pose code the network reads
    network: NetworkConfig = NetworkConfig()  # the dynamic field's hash grids and MLP
    smooth_modes: int = 0  # ours, 0 = the method: K smooth Jacobian modes beneath the static per-face field
    vertical_shift: bool = False  # ours, off = the method: a learnt shift of the canonical mesh along the body's up axis
    body_offset_scale: bool = False  # ours, off = the method: a learnt factor of the template's offset from the body

    def problems(self) -> list[tuple[str, str]]:
        modes = [("smooth_modes", "needs deformation: jacobian_fields (the modes are Jacobians)")
                 ] if self.smooth_modes and self.deformation != "jacobian_fields" else []
        return at_least(self.pose_code_dim, 1, "pose_code_dim") + at_least(self.smooth_modes, 0, "smooth_modes") + modes


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights (docs/method.md 6): rendering x [(1 - ssim) Huber + ssim (1 - SSIM) + silhouette MSE]
    + jacobian x regulariser + depth x ranking; laplacian only for ``vertex_offsets``."""

    rendering: float = 5.0  # weight of the whole rendering term
    huber_weight: float = 0.65  # shading: Huber share
    ssim_weight: float = 0.35  # shading: (1 - SSIM) share
    silhouette: float = 0.4  # silhouette MSE within the rendering term
    huber_delta: float = 0.005  # Huber loss threshold
    jacobian: float = 0.25  # Jacobian regulariser (identity pull of the dynamic part)
    depth: float = 1.0  # depth-ranking loss
    depth_boxes: int = 50  # depth-ranking boxes sampled per step
    depth_box: int = 64  # their side in pixels
    depth_margin: float = 0.1  # ranking margin in metres
    laplacian: float = 1.0  # Laplacian regulariser (vertex_offsets only)
    jacobian_smoothness: float = 0.0  # ours, 0 = the method: adjacent faces' Jacobians alike (over the input template's pairs)

    def problems(self) -> list[tuple[str, str]]:
        weights = ("rendering", "huber_weight", "ssim_weight", "silhouette", "jacobian", "depth", "laplacian",
                   "jacobian_smoothness", "depth_margin")
        problems = [(name, f"must be >= 0, got {getattr(self, name)}") for name in weights if getattr(self, name) < 0]
        return (problems + positive(self.huber_delta, "huber_delta") + at_least(self.depth_boxes, 1, "depth_boxes")
                + at_least(self.depth_box, 1, "depth_box"))


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """The geometry stage's optimisation (docs/method.md 9): Adam per parameter group with its own
    schedule; ``epochs`` passes over the frames, one shuffled frame per step."""

    RENAMED = {"lr_static": "static.lr", "static_decay_steps": "static.decay_steps", "lr_net": "net.lr",
               "net_decay_steps": "net.decay_steps"}

    epochs: int = 1200  # passes over the frames
    warmup_epochs: int = 100  # epochs with the network off
    static: ScheduleConfig = ScheduleConfig((1.5e-3, 8e-7), 100_000)  # the static Jacobians' learning rate
    net: ScheduleConfig = ScheduleConfig((1.5e-3, 1.6e-7), 140_000)  # the network's learning rate
    adam_eps: float = 1e-15  # Adam's epsilon
    clip_static: float = 1.0  # global-norm clip of the static group's gradient
    seed: int = 99  # parameters, frame orders and step keys
    checkpoint_every: int = 10  # epochs between checkpoints

    def problems(self) -> list[tuple[str, str]]:
        return (at_least(self.epochs, 1, "epochs") + at_least(self.warmup_epochs, 0, "warmup_epochs")
                + positive(self.adam_eps, "adam_eps") + positive(self.clip_static, "clip_static")
                + at_least(self.checkpoint_every, 1, "checkpoint_every"))


@dataclasses.dataclass(frozen=True)
class RemeshConfig:
    """Adaptive remeshing (docs/method.md 7): after each epoch in ``epochs``."""

    enabled: bool = True  # remesh at all (jacobian_fields only)
    epochs: tuple[int, ...] = (400, 600)  # remesh after these epochs
    quantile: tuple[float, float] = (0.85, 0.95)  # faces above this gradient quantile split, per event
    edge_length: tuple[float, float] = (0.010, 0.007)  # target edge length in metres, per event
    schedule_steps: int = 10  # refinement steps per event
    max_vertices: int = 15_000  # no split beyond this many vertices
    blend_epochs: int = 10  # epochs over which the network's residual blends in after an event

    def problems(self) -> list[tuple[str, str]]:
        problems = [("epochs", f"must be distinct epochs >= 0 in increasing order, got {list(self.epochs)}")
                    ] if list(self.epochs) != sorted(set(self.epochs)) or any(e < 0 for e in self.epochs) else []
        problems += [(f"quantile[{i}]", f"must be within (0, 1), got {q}") for i, q in enumerate(self.quantile)
                     if not 0 < q < 1]
        problems += [(f"edge_length[{i}]", f"must be > 0 metres, got {e}") for i, e in enumerate(self.edge_length)
                     if e <= 0]
        return (problems + at_least(self.schedule_steps, 1, "schedule_steps")
                + at_least(self.max_vertices, 3, "max_vertices") + at_least(self.blend_epochs, 1, "blend_epochs"))


@dataclasses.dataclass(frozen=True)
class TextureConfig:
    """The appearance stage (docs/method.md 8): a static texture and a pose-conditioned dynamic one."""

    RENAMED = {"lr_static": "static.lr", "static_decay_steps": "static.decay_steps", "lr_net": "net.lr",
               "net_decay_steps": "net.decay_steps", "n_levels": "network.n_levels",
               "log2_table_size": "network.log2_table_size", "hidden": "network.hidden"}

    enabled: bool = True  # run the appearance stage
    resolution: int = 1024  # texture maps are R x R texels
    epochs: int = 1100  # passes over the frames
    warmup_epochs: int = 100  # epochs with the dynamic texture off
    static: ScheduleConfig = ScheduleConfig((1e-2, 1.6e-5), 100_000)  # the static texture's learning rate
    net: ScheduleConfig = ScheduleConfig((1.5e-3, 1.6e-7), 140_000)  # the dynamic texture network's
    adam_eps: float = 1e-15  # Adam's epsilon
    pose_code_dim: int = 2  # length of the pose code the dynamic texture reads
    network: NetworkConfig = NetworkConfig()  # the dynamic texture's hash grid and MLP
    erode_iterations: int = 2  # 3x3 erosions of the garment mask for the loss (0 for exact masks)

    def problems(self) -> list[tuple[str, str]]:
        return (at_least(self.resolution, 8, "resolution") + at_least(self.epochs, 1, "epochs")
                + at_least(self.warmup_epochs, 0, "warmup_epochs") + positive(self.adam_eps, "adam_eps")
                + at_least(self.pose_code_dim, 1, "pose_code_dim")
                + at_least(self.erode_iterations, 0, "erode_iterations"))


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """What the run writes besides meshes and metrics."""

    renders: bool = True  # renders/: target | fit per frame
    video: bool = True  # renders/fit.gif of them


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """A whole run."""

    name: str  # names the default run directory outputs/<name>
    data: DataConfig  # the sequence
    field: FieldConfig = FieldConfig()  # the deformation model
    loss: LossConfig = LossConfig()  # loss weights
    optim: OptimConfig = OptimConfig()  # the geometry stage's schedule
    remesh: RemeshConfig = RemeshConfig()  # adaptive remeshing
    texture: TextureConfig = TextureConfig()  # the appearance stage
    output: OutputConfig = OutputConfig()  # optional outputs
    render: RenderBackend = "auto"  # jax, nvdiffrast-jit, nvdiffrast-eager, or auto (nvdiffrast where it runs)

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.name.strip() and "/" not in self.name else [
            ("name", f"must be a non-empty name without '/', got {self.name!r}")]
