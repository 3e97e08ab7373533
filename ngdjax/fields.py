"""The method's networks: the dynamic Jacobian field ``f_G`` (docs/method.md 4.5) and the dynamic
texture network (docs/method.md 8.4), pure functions of a plain parameter pytree.

Both are tcnn hash-grid encoders (:mod:`ngdjax.hashgrid`) followed by a tcnn-style MLP: no biases,
ReLU hidden layers, linear output, Xavier-uniform weights. tcnn pads every layer width to a
multiple of 16 and draws Xavier bounds from the padded shapes, so we do too (the last layer of
the 9-output net gets ``sqrt(6 / (64 + 16))``). Compute is float32 (tcnn runs fp16).

Parameters are a dict of ``jax.Array`` (grids by name, ``"layers"``: a list of ``(in, out)``
weight matrices, applied as ``h @ W``), ready for optax. The MLP is three matmuls, so it is
written directly rather than through a flax module: no module state, nothing to split.
Configs are frozen dataclasses and must be passed to ``jax.jit`` as static arguments.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ngdjax.hashgrid import HashGridConfig, encode, init_hash_grid

TCNN_WIDTH_MULTIPLE = 16  # tcnn pads MLP widths to this multiple (Xavier bounds use padded fans)


def _check_hidden(name: str, hidden: tuple[int, ...]) -> None:
    if not hidden or any(width < 1 for width in hidden):
        raise ValueError(f"{name}.hidden must list at least one positive width, got {hidden}")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """A network's size: its hash-grid encoders and its MLP (one block of settings, used by the fit's
    configs as they are and by both networks below). Hashable, so it can be a static jit argument."""

    n_levels: int = 16  # hash-grid resolution levels per encoder
    n_features: int = 2  # features per level and table entry
    log2_table_size: int = 19  # each level holds at most 2^k entries: 19 as the method (GPU), 14 on the CPU demo
    base_resolution: int = 16  # grid vertices per dimension at level 0
    per_level_scale: float = 2.0  # resolution growth factor between levels
    hidden: tuple[int, ...] = (64, 64)  # hidden widths of the bias-free ReLU MLP

    def __post_init__(self):
        _check_hidden(type(self).__name__, self.hidden)

    def grid(self, input_dim: int) -> HashGridConfig:
        """The hash-grid config of one encoder of ``input_dim`` inputs."""
        return HashGridConfig(input_dim, self.n_levels, self.n_features, self.log2_table_size,
                              self.base_resolution, self.per_level_scale)

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for a config file (:mod:`ngdjax.config`)."""
        checks = [("n_levels", self.n_levels >= 1, ">= 1"), ("n_features", self.n_features >= 1, ">= 1"),
                  ("log2_table_size", 4 <= self.log2_table_size <= 24, "within [4, 24]"),
                  ("base_resolution", self.base_resolution >= 2, ">= 2"),
                  ("per_level_scale", self.per_level_scale >= 1.0, ">= 1"),
                  ("hidden", bool(self.hidden) and min(self.hidden) >= 1, "one or more widths >= 1")]
        return [(name, f"must be {rule}, got {getattr(self, name)!r}") for name, ok, rule in checks if not ok]


@dataclasses.dataclass(frozen=True)
class DynamicJacobianConfig:
    """``f_G``: three hash grids (centroid, normal, pose code) -> MLP -> 3x3 per face.

    ``out_dim`` 9 is the method's (a 3x3 Jacobian per face); 3 gives per-vertex displacements
    for the ``vertex_offsets`` baseline, with the same encoders and MLP.
    """

    pose_dim: int = 4  # C, length of the PCA pose code z_t
    out_dim: int = 9  # MLP outputs per element
    network: NetworkConfig = NetworkConfig()

    def grid(self, input_dim: int) -> HashGridConfig:
        """The hash-grid config of one encoder of ``input_dim`` inputs."""
        return self.network.grid(input_dim)

    @property
    def widths(self) -> tuple[int, ...]:
        """MLP widths from input to output: ``(3 * L * F, *hidden, out_dim)``."""
        return (3 * self.network.n_levels * self.network.n_features, *self.network.hidden, self.out_dim)


@dataclasses.dataclass(frozen=True)
class TextureNetConfig:
    """Dynamic texture: one hash grid on (u, v, pose code) -> MLP -> RGB residual."""

    code_dim: int = 2  # length of the texture pose code z^(2)_t
    network: NetworkConfig = NetworkConfig()

    def grid(self) -> HashGridConfig:
        """The hash-grid config on ``2 + code_dim`` inputs."""
        return self.network.grid(2 + self.code_dim)

    @property
    def widths(self) -> tuple[int, ...]:
        """MLP widths from input to output: ``(L * F, *hidden, 3)``."""
        return (self.network.n_levels * self.network.n_features, *self.network.hidden, 3)


def _padded(width: int) -> int:
    return -(-width // TCNN_WIDTH_MULTIPLE) * TCNN_WIDTH_MULTIPLE


def xavier_bound(fan_in: int, fan_out: int) -> float:
    """tcnn's Xavier-uniform bound ``sqrt(6 / (fan_in + fan_out))`` on widths padded to 16."""
    return (6.0 / (_padded(fan_in) + _padded(fan_out))) ** 0.5


def init_mlp(key: Array, widths: tuple[int, ...]) -> list[Float[Array, "in out"]]:
    """Bias-free MLP weights: one ``(widths[i], widths[i+1])`` Xavier-uniform matrix per layer.

    One uniform draw for all layers, scaled per layer (one random-number kernel to compile).
    """
    shapes = list(itertools.pairwise(widths))
    sizes = [n_in * n_out for n_in, n_out in shapes]
    unit = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [
        jnp.float32(xavier_bound(n_in, n_out)) * unit[start:start + size].reshape(n_in, n_out)
        for (n_in, n_out), start, size in zip(shapes, starts, sizes)
    ]


def apply_mlp(layers: list[Array], h: Float[Array, "N in"]) -> Float[Array, "N out"]:
    """ReLU between layers, linear output, no biases."""
    for weights in layers[:-1]:
        h = jax.nn.relu(h @ weights)
    return h @ layers[-1]


def init_dynamic_field(key: Array, config: DynamicJacobianConfig) -> dict:
    """Parameters of ``f_G``: ``{"position_grid", "normal_grid", "pose_grid", "layers"}``."""
    k_pos, k_nrm, k_pose, k_mlp = jax.random.split(key, 4)
    return {
        "position_grid": init_hash_grid(k_pos, config.grid(3)),
        "normal_grid": init_hash_grid(k_nrm, config.grid(3)),
        "pose_grid": init_hash_grid(k_pose, config.grid(config.pose_dim)),
        "layers": init_mlp(k_mlp, config.widths),
    }


def dynamic_field(
    params: dict,
    config: DynamicJacobianConfig,
    positions: Float[Array, "N 3"],
    normals: Float[Array, "N 3"],
    pose_code: Float[Array, " C"],
) -> Float[Array, "N O"]:
    """The network's (N, out_dim) outputs at N elements (faces or vertices) of the posed mesh.

    ``h = concat(E_pos(x_n), E_nrm(n_n), E_pose(z_t))``. The pose code is shared by all elements,
    so it is encoded once and its block of the first layer, ``E_pose(z_t) @ W0[2LF:]``
    (1, hidden), is added to every row: the same value as concatenating N copies, without
    encoding them. Inputs carry no gradient (the method detaches them).
    """
    n = positions.shape[0]
    if positions.shape != (n, 3) or normals.shape != (n, 3):
        raise ValueError(f"dynamic_field: positions and normals must both be (N, 3), "
                         f"got {positions.shape} and {normals.shape}")
    if pose_code.shape != (config.pose_dim,):
        raise ValueError(f"dynamic_field: pose_code must be ({config.pose_dim},), got {pose_code.shape}")
    width = config.network.n_levels * config.network.n_features
    first, *rest = params["layers"]
    features = jnp.concatenate(
        [encode(params["position_grid"], config.grid(3), positions),
         encode(params["normal_grid"], config.grid(3), normals)], axis=1)  # (N, 2LF)
    pose_features = encode(params["pose_grid"], config.grid(config.pose_dim), pose_code[None, :])  # (1, LF)
    pre_activation = features @ first[: 2 * width] + pose_features @ first[2 * width:]
    return apply_mlp(rest, jax.nn.relu(pre_activation))


def dynamic_jacobians(
    params: dict,
    config: DynamicJacobianConfig,
    centroids: Float[Array, "F 3"],
    normals: Float[Array, "F 3"],
    pose_code: Float[Array, " C"],
) -> Float[Array, "F 3 3"]:
    """Per-face dynamic Jacobians ``J^D_t`` (F, 3, 3), the MLP's 9 outputs row-major, from the
    posed static mesh's face centroids and unit normals (``config.out_dim`` must be 9)."""
    return dynamic_field(params, config, centroids, normals, pose_code).reshape(-1, 3, 3)


def dynamic_offsets(
    params: dict,
    config: DynamicJacobianConfig,
    vertices: Float[Array, "V 3"],
    normals: Float[Array, "V 3"],
    pose_code: Float[Array, " C"],
) -> Float[Array, "V 3"]:
    """Per-vertex displacements (V, 3) for the ``vertex_offsets`` baseline (``out_dim`` 3)."""
    return dynamic_field(params, config, vertices, normals, pose_code)


def init_texture_net(key: Array, config: TextureNetConfig) -> dict:
    """Parameters of the dynamic texture net: ``{"grid", "layers"}``."""
    k_grid, k_mlp = jax.random.split(key)
    return {"grid": init_hash_grid(k_grid, config.grid()), "layers": init_mlp(k_mlp, config.widths)}


def dynamic_texture(
    params: dict, config: TextureNetConfig, uv: Float[Array, "N 2"], pose_code: Float[Array, " K"]
) -> Float[Array, "N 3"]:
    """RGB residual ``T^D_t`` (N, 3) at texel coordinates ``uv`` (N, 2) for one pose code (K,).

    The grid is 4-D on ``(u, v, code_0, code_1)`` (the code varies the hashed cell), so the code is
    broadcast to every query before encoding. The method queries every texel of an R x R map at
    ``u = column / R``, ``v = row / R`` with the noisy code ``z^(2)_t + nu`` (docs/method.md 8.4).
    """
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"dynamic_texture: uv must be (N, 2), got {uv.shape}")
    if pose_code.shape != (config.code_dim,):
        raise ValueError(f"dynamic_texture: pose_code must be ({config.code_dim},), got {pose_code.shape}")
    codes = jnp.broadcast_to(pose_code.astype(uv.dtype)[None, :], (uv.shape[0], config.code_dim))
    features = encode(params["grid"], config.grid(), jnp.concatenate([uv, codes], axis=1))
    return apply_mlp(params["layers"], features)
