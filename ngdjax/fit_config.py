"""The fit's typed configuration (YAML files under configs/, loaded by :func:`ngdjax.config.load_config`).

Defaults are the method's (docs/method.md sections 6, 7, 8, 9); configs rescale epochs, schedules and
table sizes. Every loss weight is here.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ngdjax.config import path_field
from ngdjax.render.backend import RenderBackend


def at_least(value, bound, name: str) -> list[tuple[str, str]]:
    """[(name, message)] when ``value < bound``."""
    return [(name, f"must be >= {bound}, got {value}")] if value < bound else []


def positive(value, name: str) -> list[tuple[str, str]]:
    """[(name, message)] when ``value <= 0``."""
    return [(name, f"must be > 0, got {value}")] if value <= 0 else []


def in_unit_interval(value, name: str) -> list[tuple[str, str]]:
    """[(name, message)] unless ``0 <= value <= 1``."""
    return [] if 0 <= value <= 1 else [(name, f"must be within [0, 1], got {value}")]


def learning_rate_schedule(rates: tuple[float, float], decay_steps: int, rates_name: str,
                           steps_name: str) -> list[tuple[str, str]]:
    """Problems of a log-linear decay from ``rates[0]`` to ``rates[1]`` over ``decay_steps``."""
    problems = [(rates_name, f"must be two rates > 0 (start, end), got {list(rates)}")] if min(rates) <= 0 else []
    return problems + at_least(decay_steps, 1, steps_name)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """sequence: the sequence directory. synth_config: a configs/synth/*.yaml that generates it
    when the directory does not exist yet (the built-in demo). Relative paths are taken from the
    config file's directory (an override's from the current directory)."""

    sequence: str = path_field()
    synth_config: str | None = path_field(None)


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """The deformation model. ``jacobian_fields``: static per-face Jacobians + the pose-conditioned
    hash-grid network (the method). ``vertex_offsets``: static + pose-conditioned per-vertex
    displacements with a Laplacian regulariser (the baseline). ``dynamic: false`` keeps the
    network off for the whole fit (the static-only ablation). ``zero_root``: the network reads the
    static mesh posed without the body's global rotation and translation (docs/method.md 4.5, as for
    PeopleSnapshot, where the subject turns in place), so a garment point keeps its input
    position however the body is turned."""

    deformation: Literal["jacobian_fields", "vertex_offsets"] = "jacobian_fields"
    dynamic: bool = True
    zero_root: bool = False
    pose_code_dim: int = 4
    n_levels: int = 16
    n_features: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 2.0
    hidden: tuple[int, ...] = (64, 64)

    def problems(self) -> list[tuple[str, str]]:
        return (at_least(self.pose_code_dim, 1, "pose_code_dim") + at_least(self.n_levels, 1, "n_levels")
                + at_least(self.n_features, 1, "n_features") + network_size_problems(self.log2_table_size, self.hidden)
                + at_least(self.base_resolution, 1, "base_resolution") + at_least(self.per_level_scale, 1.0, "per_level_scale"))


def network_size_problems(log2_table_size: int, hidden: tuple[int, ...]) -> list[tuple[str, str]]:
    """Problems of a hash table size (2^k entries) and an MLP's hidden widths."""
    problems = [] if 4 <= log2_table_size <= 24 else [("log2_table_size", f"must be within [4, 24], got {log2_table_size}")]
    return problems + ([("hidden", f"widths must be >= 1, got {list(hidden)}")] if any(w < 1 for w in hidden) else [])


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights (docs/method.md 6): rendering x [(1 - ssim) Huber + ssim (1 - SSIM) + silhouette MSE]
    + jacobian x regulariser + depth x ranking; laplacian only for ``vertex_offsets``.
    ``jacobian_smoothness`` (our addition, 0 = the method): squared difference of the full
    Jacobians of adjacent faces, summed and divided by the input template's pair count (so
    remeshing does not weaken it), which carries what the camera sees to faces it never sees."""

    rendering: float = 5.0
    huber_weight: float = 0.65
    ssim_weight: float = 0.35
    silhouette: float = 0.4
    huber_delta: float = 0.005
    jacobian: float = 0.25
    depth: float = 1.0
    depth_boxes: int = 50
    depth_box: int = 64
    depth_margin: float = 0.1
    laplacian: float = 1.0
    jacobian_smoothness: float = 0.0

    def problems(self) -> list[tuple[str, str]]:
        weights = ("rendering", "huber_weight", "ssim_weight", "silhouette", "jacobian", "depth", "laplacian",
                   "jacobian_smoothness", "depth_margin")
        problems = [(name, f"must be >= 0, got {getattr(self, name)}") for name in weights if getattr(self, name) < 0]
        return (problems + positive(self.huber_delta, "huber_delta") + at_least(self.depth_boxes, 1, "depth_boxes")
                + at_least(self.depth_box, 1, "depth_box"))


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam with log-linear learning-rate decays (docs/method.md 9); ``epochs`` passes over the frames,
    one shuffled frame per step; the network is off for ``warmup_epochs``."""

    epochs: int = 1200
    warmup_epochs: int = 100
    lr_static: tuple[float, float] = (1.5e-3, 8e-7)
    static_decay_steps: int = 100_000
    lr_net: tuple[float, float] = (1.5e-3, 1.6e-7)
    net_decay_steps: int = 140_000
    adam_eps: float = 1e-15
    clip_static: float = 1.0
    seed: int = 99
    checkpoint_every: int = 10

    def problems(self) -> list[tuple[str, str]]:
        return (at_least(self.epochs, 1, "epochs") + at_least(self.warmup_epochs, 0, "warmup_epochs")
                + learning_rate_schedule(self.lr_static, self.static_decay_steps, "lr_static", "static_decay_steps")
                + learning_rate_schedule(self.lr_net, self.net_decay_steps, "lr_net", "net_decay_steps")
                + positive(self.adam_eps, "adam_eps") + positive(self.clip_static, "clip_static")
                + at_least(self.checkpoint_every, 1, "checkpoint_every"))


@dataclasses.dataclass(frozen=True)
class RemeshConfig:
    """Adaptive remeshing (docs/method.md 7): after each epoch in ``epochs``."""

    enabled: bool = True
    epochs: tuple[int, ...] = (400, 600)
    quantile: tuple[float, float] = (0.85, 0.95)
    edge_length: tuple[float, float] = (0.010, 0.007)
    schedule_steps: int = 10
    max_vertices: int = 15_000
    blend_epochs: int = 10

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
    """The appearance stage (docs/method.md 8)."""

    enabled: bool = True
    resolution: int = 1024
    epochs: int = 1100
    warmup_epochs: int = 100
    lr_static: tuple[float, float] = (1e-2, 1.6e-5)
    static_decay_steps: int = 100_000
    lr_net: tuple[float, float] = (1.5e-3, 1.6e-7)
    net_decay_steps: int = 140_000
    adam_eps: float = 1e-15
    pose_code_dim: int = 2
    n_levels: int = 16
    log2_table_size: int = 19
    hidden: tuple[int, ...] = (64, 64)
    erode_iterations: int = 2

    def problems(self) -> list[tuple[str, str]]:
        return (at_least(self.resolution, 8, "resolution") + at_least(self.epochs, 1, "epochs")
                + at_least(self.warmup_epochs, 0, "warmup_epochs")
                + learning_rate_schedule(self.lr_static, self.static_decay_steps, "lr_static", "static_decay_steps")
                + learning_rate_schedule(self.lr_net, self.net_decay_steps, "lr_net", "net_decay_steps")
                + positive(self.adam_eps, "adam_eps")
                + at_least(self.pose_code_dim, 1, "pose_code_dim") + at_least(self.n_levels, 1, "n_levels")
                + network_size_problems(self.log2_table_size, self.hidden)
                + at_least(self.erode_iterations, 0, "erode_iterations"))


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """What the run writes besides meshes and metrics."""

    renders: bool = True
    video: bool = True


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """A whole run. ``render``: backend name for :func:`ngdjax.render.backend.get_renderer`;
    ``name`` names the default run directory ``outputs/<name>``."""

    name: str
    data: DataConfig
    field: FieldConfig = FieldConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    remesh: RemeshConfig = RemeshConfig()
    texture: TextureConfig = TextureConfig()
    output: OutputConfig = OutputConfig()
    render: RenderBackend = "auto"

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.name.strip() and "/" not in self.name else [
            ("name", f"must be a non-empty name without '/', got {self.name!r}")]
