"""The appearance stage (docs/method.md section 8): a UV atlas on the static canonical mesh, a static
texture ``T^S`` (R, R, 3) and a pose-conditioned dynamic texture ``T^D`` (hash grid + MLP on
(u, v, z^(2)_t + noise)), fitted to the frames with the geometry frozen: the model and its
jitted step (the loop is :mod:`ngdjax.appearance_fit`, the textured outputs :mod:`ngdjax.outputs`).

Per frame the colour is ``clamp(bilinear(T^S, uv) + T^D(uv, z^(2)_t + nu), 0, 1)`` times coverage,
at the UVs interpolated over the rasterised, frozen posed garment; the loss is the relative L2
of docs/method.md 8.7 over the eroded garment mask without occluder pixels.

Deviations from the method (each keeps the function being fitted, and saves work):

- The method evaluates ``T^D`` on every texel of its 1024^2 map each step (1M queries) and then
  samples the map. Here ``T^D`` is evaluated only at the UVs of the pixels the loss sees (covered
  by the garment and inside the loss mask): the same function of (u, v, code), thousands of
  queries instead of a million. The full texel grid is evaluated once per frame for the output
  texture maps and the re-rendered frames (the method's path: the map sampled bilinearly).
- The geometry is frozen, so each frame is rasterised once before the fit and the pixels' UVs
  are stacked on the device; a step is a texture lookup, the network and the loss.
- Texel centres: the output maps query ``T^D`` at texel centres ((j + 0.5)/R, (i + 0.5)/R) (the
  method uses j/R, i/R), so that sampling the map at a UV reproduces the trained ``T^D``.
- xatlas packs at the texture resolution with 2 texels of padding between charts (the method
  keeps xatlas's defaults), so bilinear lookups do not mix charts.
- The code noise decays over ``static.decay_steps`` (the method's 100k, rescaled with the
  configs' schedules).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.ndimage
from jaxtyping import Array, Float, Int

from ngdjax import fields, losses, metrics
from ngdjax.camera import to_clip
from ngdjax.data.loader import Sequence
from ngdjax.fit_config import TextureConfig
from ngdjax.geometry import update
from ngdjax.loop import log_linear_schedule
from ngdjax.nonfinite import finite_by_group
from ngdjax.pose_code import pose_codes
from ngdjax.render.backend import Renderer
from ngdjax.render.shading import render_texture


INITIAL_TEXEL = 0.2  # T^S starts grey (docs/method.md 8.3)
ATLAS_PADDING = 2  # texels between xatlas charts
NOISE_SCALE = 0.01  # nu ~ NOISE_SCALE * N * s(step) N(0, I), s from NOISE_START to 0 (docs/method.md 8.4)
NOISE_START = 0.01


class UVAtlas(NamedTuple):
    """UVs with their own index buffer: ``uv`` (T, 2) float32 in [0, 1] (u along texel columns,
    v along memory rows, as :func:`ngdjax.render.jax.texture.texture`), ``uv_faces`` (F, 3) int32,
    face f's corners in the order of the geometry's face f."""

    uv: np.ndarray
    uv_faces: np.ndarray


def uv_atlas(vertices: np.ndarray, faces: np.ndarray, resolution: int = 1024) -> UVAtlas:
    """xatlas charts and packing of a mesh (V, 3) / (F, 3), for an R x R texture ``resolution``.

    The geometry keeps its own vertex indexing; xatlas's seam-split vertices appear only as UV
    indices. Raises ValueError if xatlas drops or reorders faces (degenerate input)."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(vertices, np.float32), np.asarray(faces, np.uint32))
    packing = xatlas.PackOptions()
    packing.resolution, packing.padding = resolution, ATLAS_PADDING
    atlas.generate(pack_options=packing)
    vertex_of_uv, uv_faces, uv = atlas[0]
    if uv_faces.shape != np.shape(faces) or not np.array_equal(vertex_of_uv[uv_faces], faces):
        raise ValueError(f"uv_atlas: xatlas returned {len(uv_faces)} faces that do not match the mesh's "
                         f"{len(faces)} (degenerate faces?)")
    return UVAtlas(np.clip(uv, 0.0, 1.0).astype(np.float32), uv_faces.astype(np.int32))


def texture_net_config(texture: TextureConfig) -> fields.TextureNetConfig:
    """The dynamic texture network of a texture config."""
    return fields.TextureNetConfig(code_dim=texture.pose_code_dim, network=texture.network)


def init_texture_params(key: Array, texture: TextureConfig) -> dict:
    """``{"static": (R, R, 3) filled with 0.2, "net": the dynamic texture net's parameters}``."""
    resolution = texture.resolution
    return {"static": jnp.full((resolution, resolution, 3), INITIAL_TEXEL, jnp.float32),
            "net": fields.init_texture_net(key, texture_net_config(texture))}


def make_texture_optimizer(texture: TextureConfig, n_frames: int) -> optax.GradientTransformation:
    """Adam (``texture.adam_eps``) with log-linear decays: ``static`` counts steps from 0, ``net``
    from N (docs/method.md 9: the static texture's counter is the exception)."""
    def adam(lr, decay_steps, offset):
        return optax.chain(optax.scale_by_adam(eps=texture.adam_eps),
                           optax.scale_by_learning_rate(log_linear_schedule(*lr, decay_steps, offset)))
    return optax.multi_transform(
        {"static": adam(texture.static.lr, texture.static.decay_steps, 0),
         "net": adam(texture.net.lr, texture.net.decay_steps, n_frames)},
        {"static": "static", "net": "net"})


def code_noise_std(step: Array, n_frames: int, decay_steps: int) -> Array:
    """Standard deviation of the pose-code noise at global step ``step`` (step counter (e+1)N + it):
    0.01 N s, with s decaying linearly from 0.01 to 0 over ``decay_steps`` (docs/method.md 8.4)."""
    decay = jnp.clip(1.0 - (step.astype(jnp.float32) + n_frames) / decay_steps, 0.0, 1.0)
    return NOISE_SCALE * n_frames * NOISE_START * decay


def loss_masks(masks: np.ndarray, occluders: np.ndarray | None, erode_iterations: int) -> np.ndarray:
    """(T, H, W) bool: each garment mask eroded with a 3x3 square ``erode_iterations`` times,
    occluder pixels removed."""
    square = np.ones((1, 3, 3), bool)  # no erosion across frames
    eroded = (scipy.ndimage.binary_erosion(masks, square, iterations=erode_iterations) if erode_iterations
              else np.asarray(masks, bool))
    return eroded if occluders is None else eroded & ~np.asarray(occluders, bool)


@functools.partial(jax.jit, static_argnames=("renderer", "resolution"))
def rasterize_posed(renderer: Renderer, vertices: Float[Array, "V 3"], tris: Int[Array, "F 3"],
                    mv: Float[Array, "4 4"], proj: Float[Array, "4 4"], resolution: tuple[int, int]
                    ) -> Float[Array, "H W 4"]:
    """The rasteriser's output (H, W, 4) for world-space vertices seen by camera (mv, proj)."""
    return renderer.rasterize(to_clip(vertices, mv, proj), tris, resolution)[0]


def rasterize_frames(renderer: Renderer, posed: np.ndarray, faces: np.ndarray, mv: np.ndarray,
                     proj: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 4) rasteriser outputs of the posed garment (T, V, 3) in every frame's camera (T, 4, 4)."""
    tris = jnp.asarray(faces, jnp.int32)
    return np.stack([np.asarray(rasterize_posed(renderer, jnp.asarray(v, jnp.float32), tris, jnp.asarray(m),
                                                jnp.asarray(p), tuple(resolution)))
                     for v, m, p in zip(posed, mv, proj)])


@functools.partial(jax.jit, static_argnames=("renderer",))
def render_textured(renderer: Renderer, rast: Float[Array, "H W 4"], uv: Float[Array, "T 2"],
                    uv_faces: Int[Array, "F 3"], tex: Float[Array, "R R 3"]) -> Float[Array, "H W 3"]:
    """The method's textured render (H, W, 3): UVs interpolated, ``tex`` sampled bilinearly, times coverage."""
    return render_texture(renderer, rast[None], uv, uv_faces, tex)[0]


@functools.partial(jax.jit, static_argnames=("renderer",))
def interpolate_uv(renderer: Renderer, rast: Float[Array, "H W 4"], uv: Float[Array, "T 2"],
                   uv_faces: Int[Array, "F 3"]) -> Float[Array, "H W 2"]:
    """Per-pixel UVs (H, W, 2) interpolated over the rasterised faces."""
    return renderer.interpolate(uv, rast[None], uv_faces)[0]


class TextureFrames(NamedTuple):
    """Per-frame data of the appearance fit, stacked over T frames on the device.

    uv: (T, P, 2) interpolated UVs of the pixels the loss sees (covered by the garment, inside the
    loss mask), padded with zeros; colours: (T, P, 3) their target colours in [0, 1]; valid:
    (T, P) 1 for a real pixel, 0 for padding; unseen: (T,) the loss's constant part, the sum of
    (0 - I)^2 / 0.01 over the pixels inside the mask that the garment does not cover; code:
    (T, K) texture pose codes z^(2)_t. With ``n_values = H W 3`` the loss of
    :func:`losses.relative_l2` on the full image is ``(sum(valid * terms) + unseen) / n_values``:
    the same value and gradient without an image-sized scatter."""

    uv: Float[Array, "T P 2"]
    colours: Float[Array, "T P 3"]
    valid: Float[Array, "T P"]
    unseen: Float[Array, " T"]
    code: Float[Array, "T K"]


def prepare_texture_frames(sequence: Sequence, rasts: np.ndarray, atlas: UVAtlas, renderer: Renderer,
                           texture: TextureConfig) -> TextureFrames:
    """Stack what the appearance fit reads per frame (:class:`TextureFrames`) from the frames'
    rasterisations (T, H, W, 4)."""
    mask = loss_masks(sequence.masks, sequence.occluders, texture.erode_iterations)
    seen = (rasts[..., 3] > 0) & mask
    capacity = max(int(seen.reshape(len(seen), -1).sum(axis=1).max()), 1)
    atlas_uv, uv_faces = jnp.asarray(atlas.uv), jnp.asarray(atlas.uv_faces)
    uv = np.zeros((len(seen), capacity, 2), np.float32)
    colours = np.zeros((len(seen), capacity, 3), np.float32)
    valid = np.zeros((len(seen), capacity), np.float32)
    unseen = np.zeros(len(seen), np.float32)
    for t, frame_seen in enumerate(seen):
        flat = np.flatnonzero(frame_seen)
        target = sequence.images[t].reshape(-1, 3).astype(np.float32) / 255.0
        uv[t, :len(flat)] = np.asarray(interpolate_uv(renderer, jnp.asarray(rasts[t]), atlas_uv, uv_faces)).reshape(-1, 2)[flat]
        colours[t, :len(flat)] = target[flat]
        valid[t, :len(flat)] = 1.0
        unseen[t] = np.sum(target[np.flatnonzero(mask[t] & ~frame_seen)] ** 2) / 0.01
    return TextureFrames(uv=jnp.asarray(uv), colours=jnp.asarray(colours), valid=jnp.asarray(valid),
                         unseen=jnp.asarray(unseen), code=jnp.asarray(pose_codes(sequence.pose, texture.pose_code_dim)))


def texel_colours(params: dict, config: fields.TextureNetConfig, renderer: Renderer, uv: Float[Array, "N 2"],
                  code: Float[Array, " K"], dynamic: bool) -> Float[Array, "N 3"]:
    """``clamp(bilinear(T^S, uv) + T^D(uv, code), 0, 1)`` at N UVs (``T^D`` only when ``dynamic``)."""
    colour = renderer.texture(params["static"][None], uv[None, None])[0, 0]
    if dynamic:
        colour = colour + fields.dynamic_texture(params["net"], config, uv, code)
    return jnp.clip(colour, 0.0, 1.0)


def texel_centres(resolution: int) -> Float[Array, "RR 2"]:
    """(R * R, 2) UVs of the texel centres of an R x R map, row-major (u = (j + 0.5)/R, v = (i + 0.5)/R)."""
    centres = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) / resolution
    v, u = jnp.meshgrid(centres, centres, indexing="ij")
    return jnp.stack([u.ravel(), v.ravel()], axis=1)


@functools.partial(jax.jit, static_argnames=("config", "dynamic"))
def texture_map(params: dict, config: fields.TextureNetConfig, code: Float[Array, " K"],
                dynamic: bool) -> Float[Array, "R R 3"]:
    """The frame's texture map ``clamp(T^S + T^D_t, 0, 1)`` (R, R, 3), ``T^D`` on every texel centre."""
    static = params["static"]
    if not dynamic:
        return jnp.clip(static, 0.0, 1.0)
    resolution = static.shape[0]
    residual = fields.dynamic_texture(params["net"], config, texel_centres(resolution), code)
    return jnp.clip(static + residual.reshape(static.shape), 0.0, 1.0)


def make_texture_step(renderer: Renderer, texture: TextureConfig, n_frames: int, resolution: tuple[int, int]):
    """The jitted step ``step(params, opt_state, frames, index, key, step_count, dynamic) ->
    (params, opt_state, loss, finite)`` for frame ``index`` (traced) of :class:`TextureFrames`;
    ``finite``: {group: all finite after the update}; ``dynamic`` (static) switches ``T^D`` on.
    ``step_count`` is the global step (for the code noise). Cached on what the step reads:
    settings that differ only in the stage's epochs or mask erosion give the same jitted function."""
    step_only = dataclasses.replace(texture, epochs=1, warmup_epochs=0, erode_iterations=0)
    return _texture_step(renderer, step_only, n_frames, tuple(resolution))


@functools.lru_cache(maxsize=8)
def _texture_step(renderer: Renderer, texture: TextureConfig, n_frames: int, resolution: tuple[int, int]):
    optimizer = make_texture_optimizer(texture, n_frames)
    config = texture_net_config(texture)
    height, width = resolution

    def step(params, opt_state, frames: TextureFrames, index, key, step_count, dynamic: bool):
        noise = code_noise_std(step_count, n_frames, texture.static.decay_steps) * jax.random.normal(
            key, (config.code_dim,))
        code = frames.code[index] + noise

        def loss_of(p):  # losses.relative_l2 of the full image, from the pixels it sees
            colour = texel_colours(p, config, renderer, frames.uv[index], code, dynamic)
            terms = losses.relative_l2_terms(colour, frames.colours[index]) * frames.valid[index][:, None]
            return (jnp.sum(terms) + frames.unseen[index]) / (height * width * 3)

        with jax.named_scope("texture_losses"):
            loss, grads = jax.value_and_grad(loss_of)(params)
        with jax.named_scope("update"):
            params, opt_state = update(optimizer, grads, opt_state, params)
        return params, opt_state, loss, finite_by_group(params)

    return jax.jit(step, static_argnames=("dynamic",), donate_argnums=(0, 1))


@dataclasses.dataclass
class TextureResult:
    """A finished appearance fit: parameters, the atlas, each frame's rasterisation (T, H, W, 4),
    whether ``T^D`` was on at the end, and the fit's wall time."""

    params: dict
    atlas: UVAtlas
    rasts: np.ndarray
    dynamic: bool
    seconds: float


def textured_renders(result: TextureResult, renderer: Renderer, sequence: Sequence,
                     texture: TextureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's texture map (T, R, R, 3) and the re-rendered frames (T, H, W, 3) (the maps
    sampled bilinearly at the interpolated UVs, times coverage: the method's render)."""
    config = texture_net_config(texture)
    codes = jnp.asarray(pose_codes(sequence.pose, texture.pose_code_dim))
    uv, uv_faces = jnp.asarray(result.atlas.uv), jnp.asarray(result.atlas.uv_faces)
    maps, images = [], []
    for t in range(sequence.n_frames):
        maps.append(np.asarray(texture_map(result.params, config, codes[t], result.dynamic)))
        images.append(np.asarray(render_textured(renderer, jnp.asarray(result.rasts[t]), uv, uv_faces, jnp.asarray(maps[-1]))))
    return np.stack(maps), np.stack(images)


def appearance_metrics(images: np.ndarray, sequence: Sequence) -> dict:
    """``psnr`` and ``ssim`` of the re-rendered frames (T, H, W, 3) against the frames over the
    garment masks (docs/contracts.md 4), in the metrics.json layout."""
    targets = sequence.images.astype(np.float32) / 255.0
    per_frame = {"psnr": {}, "ssim": {}}
    for t, index in enumerate(sequence.frames):
        per_frame["psnr"][index] = metrics.psnr_masked(images[t], targets[t], sequence.masks[t])
        per_frame["ssim"][index] = metrics.ssim_masked(images[t], targets[t], sequence.masks[t])
    return metrics.summarise(per_frame)
