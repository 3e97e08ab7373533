"""The fit's typed configuration (YAML files under configs/, loaded by :func:`ngdjax.config.load_config`).

Defaults are the method's (METHOD sections 6, 7, 8, 9); configs rescale epochs, schedules and
table sizes. Every loss weight is here.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """sequence: the sequence directory. synth_config: a configs/synth/*.yaml that generates it
    when the directory does not exist yet (the built-in demo). Relative paths are taken from the
    current directory."""

    sequence: str
    synth_config: str | None = None


@dataclasses.dataclass(frozen=True)
class FieldConfig:
    """The deformation model. ``jacobian_fields``: static per-face Jacobians + the pose-conditioned
    hash-grid network (the method). ``vertex_offsets``: static + pose-conditioned per-vertex
    displacements with a Laplacian regulariser (the baseline). ``dynamic: false`` keeps the
    network off for the whole fit (the static-only ablation). ``zero_root``: the network reads the
    static mesh posed without the body's global rotation and translation (METHOD 4.5, as for
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


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights (METHOD 6): rendering x [(1 - ssim) Huber + ssim (1 - SSIM) + silhouette MSE]
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


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam with log-linear learning-rate decays (METHOD 9); ``epochs`` passes over the frames,
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


@dataclasses.dataclass(frozen=True)
class RemeshConfig:
    """Adaptive remeshing (METHOD 7): after each epoch in ``epochs``."""

    enabled: bool = True
    epochs: tuple[int, ...] = (400, 600)
    quantile: tuple[float, float] = (0.85, 0.95)
    edge_length: tuple[float, float] = (0.010, 0.007)
    schedule_steps: int = 10
    max_vertices: int = 15_000
    blend_epochs: int = 10


@dataclasses.dataclass(frozen=True)
class TextureConfig:
    """The appearance stage (METHOD 8)."""

    enabled: bool = True
    resolution: int = 1024
    epochs: int = 1100
    warmup_epochs: int = 100
    lr_static: tuple[float, float] = (1e-2, 1.6e-5)
    static_decay_steps: int = 100_000
    lr_net: tuple[float, float] = (1.5e-3, 1.6e-7)
    net_decay_steps: int = 140_000
    pose_code_dim: int = 2
    n_levels: int = 16
    log2_table_size: int = 19
    hidden: tuple[int, ...] = (64, 64)
    erode_iterations: int = 2


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """What the run writes besides meshes and metrics."""

    renders: bool = True
    video: bool = True


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """A whole run. ``render``: backend name for :func:`ngdjax.render.backend.get_renderer`."""

    name: str
    data: DataConfig
    field: FieldConfig = FieldConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    remesh: RemeshConfig = RemeshConfig()
    texture: TextureConfig = TextureConfig()
    output: OutputConfig = OutputConfig()
    render: str = "auto"
