"""The appearance stage (ngdjax/appearance.py, appearance_fit.py): UV atlas, static texture recovery, a pose-dependent
dynamic texture, textured OBJ files."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import trimesh

from ngdjax import appearance, appearance_fit, losses, outputs, procedural
from ngdjax.camera import look_at, perspective
from ngdjax.data.loader import Sequence
from ngdjax.fields import NetworkConfig
from ngdjax.fit_config import DataConfig, FitConfig, OptimConfig, ScheduleConfig, TextureConfig
from ngdjax.metrics import psnr_masked
from ngdjax.render.backend import get_renderer

RESOLUTION = (96, 96)
TEXTURE = 32


def flat_sheet(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A 0.8 m square grid in the z = 0 plane, facing +z: vertices (n*n, 3), faces (2(n-1)^2, 3)."""
    ticks = np.linspace(-0.4, 0.4, n)
    x, y = np.meshgrid(ticks, ticks)
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1)
    corner = (np.arange(n - 1)[:, None] * n + np.arange(n - 1)[None, :]).ravel()
    faces = np.concatenate([np.stack([corner, corner + 1, corner + n + 1], 1),
                            np.stack([corner, corner + n + 1, corner + n], 1)])
    return vertices, faces


def known_texture(resolution: int) -> np.ndarray:
    """(R, R, 3) in [0.1, 0.9]: smooth colour gradients plus a soft-edged stripe pattern."""
    s, t = np.meshgrid((np.arange(resolution) + 0.5) / resolution, (np.arange(resolution) + 0.5) / resolution)
    stripes = 0.5 + 0.5 * np.tanh(2 * np.sin(2 * np.pi * 3 * (s + t)))
    return (0.1 + 0.8 * np.stack([s, t, stripes], axis=-1)).astype(np.float32)


def cameras(n_views: int):
    """(n, 4, 4) world-to-view matrices around the sheet's front, and one projection (4, 4)."""
    angles = np.linspace(-0.35, 0.35, n_views)
    mv = np.stack([look_at([1.6 * np.sin(a), 0.1 * np.cos(3 * a), 1.6 * np.cos(a)], [0, 0, 0]) for a in angles])
    proj = perspective(110, 110, RESOLUTION[1] / 2, RESOLUTION[0] / 2, RESOLUTION[1], RESOLUTION[0])
    return mv.astype(np.float32), np.broadcast_to(proj, (n_views, 4, 4)).astype(np.float32)


def toy_sequence(vertices, faces, atlas, textures, mv, proj, poses) -> Sequence:
    """A sequence of the static sheet seen by the cameras ``mv``, frame t coloured by ``textures[t]``
    (T, R, R, 3) through the atlas, with the flat pose vectors ``poses`` (T, P)."""
    renderer = get_renderer("jax")
    n = len(mv)
    rasts = appearance.rasterize_frames(renderer, np.broadcast_to(vertices, (n, *vertices.shape)), faces, mv, proj,
                                     RESOLUTION)
    images = np.stack([np.asarray(appearance.render_textured(renderer, jnp.asarray(rast), jnp.asarray(atlas.uv),
                                                          jnp.asarray(atlas.uv_faces), jnp.asarray(tex)))
                       for rast, tex in zip(rasts, textures)])
    zeros = np.zeros((n, 3), np.float32)
    return Sequence(
        directory="toy", frames=list(range(n)), resolution=RESOLUTION,
        images=np.round(images * 255).astype(np.uint8), masks=rasts[..., 3] > 0, occluders=None, diffuse=None,
        depth=None, mv=mv, proj=proj, shape=np.zeros((n, 1), np.float32), pose=np.asarray(poses, np.float32),
        global_rotation=zeros, translation=zeros, body_model="anny", body_model_path=None,
        template_vertices=vertices, template_faces=faces, gt_mesh_paths=None)


def toy_config(epochs: int, warmup_epochs: int) -> FitConfig:
    """One step configuration for every fit here (so they share the compiled step)."""
    settings = TextureConfig(resolution=TEXTURE, epochs=epochs, warmup_epochs=warmup_epochs,
                             static=ScheduleConfig((3e-2, 3e-3), 4 * 120), net=ScheduleConfig((1e-2, 1e-3), 4 * 120),
                             network=NetworkConfig(n_levels=8, log2_table_size=12, hidden=(32,)), erode_iterations=1)
    return FitConfig(name="toy", data=DataConfig(sequence="toy"), optim=OptimConfig(seed=3), texture=settings)


def test_uv_atlas_covers_every_face_inside_the_unit_square():
    vertices, faces = procedural.garment(500)
    atlas = appearance.uv_atlas(vertices, faces, resolution=256)
    assert atlas.uv.dtype == np.float32 and atlas.uv_faces.dtype == np.int32
    assert atlas.uv_faces.shape == faces.shape
    assert atlas.uv.min() >= 0.0 and atlas.uv.max() <= 1.0
    corners = atlas.uv[atlas.uv_faces]  # (F, 3, 2)
    edges = corners[:, 1:] - corners[:, :1]
    uv_areas = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0])
    assert np.all(uv_areas > 0), "every face gets a non-degenerate UV triangle"
    assert uv_areas.sum() <= 1.0, "charts do not overlap"
    # A UV corner belongs to one geometry vertex: seams split UVs, never positions.
    owners = np.full(len(atlas.uv), -1)
    owners[atlas.uv_faces.ravel()] = faces.ravel()
    assert np.array_equal(owners[atlas.uv_faces], faces)


def test_static_texture_is_recovered_on_the_texels_the_views_cover(tmp_path):
    vertices, faces = flat_sheet()
    atlas = appearance.uv_atlas(vertices, faces, resolution=TEXTURE)
    truth = known_texture(TEXTURE)
    mv, proj = cameras(4)
    sequence = toy_sequence(vertices, faces, atlas, [truth] * 4, mv, proj, np.eye(4))
    config = toy_config(epochs=100, warmup_epochs=100)
    renderer = get_renderer("jax")
    posed = np.broadcast_to(vertices, (4, *vertices.shape))
    result = appearance_fit.fit_texture(config, sequence, posed, vertices, faces, renderer, str(tmp_path), progress=False)

    # Texels by their total bilinear weight over the pixels the loss sees.
    frames = appearance.prepare_texture_frames(sequence, result.rasts, atlas, renderer, config.texture)
    used = frames.uv.reshape(-1, 2)[np.asarray(frames.valid).ravel() > 0]
    weight = jax.grad(lambda tex: jnp.sum(renderer.texture(tex[None], used[None, None])))(jnp.zeros_like(truth))
    covered = np.asarray(weight[..., 0]) >= 1.0
    assert covered.mean() > 0.3
    recovered = np.asarray(result.params["static"])
    assert psnr_masked(recovered, truth, covered) >= 35.0
    assert psnr_masked(np.full_like(truth, 0.2), truth, covered) < 15.0  # the starting point is far off

    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 400 and all(line["stage"] == "texture" for line in lines)
    assert lines[-1]["relative_l2"] < lines[0]["relative_l2"] / 100


def test_pixel_list_loss_equals_the_full_image_relative_l2():
    """The step's loss from the seen pixels alone has the value and gradient of losses.relative_l2
    on the full image (seen pixels scattered in, zero elsewhere, occluded mask pixels included)."""
    vertices, faces = flat_sheet()
    atlas = appearance.uv_atlas(vertices, faces, resolution=TEXTURE)
    mv, proj = cameras(2)
    sequence = toy_sequence(vertices, faces, atlas, [known_texture(TEXTURE)] * 2, mv, proj, np.eye(2))
    renderer = get_renderer("jax")
    rasts = appearance.rasterize_frames(renderer, np.broadcast_to(vertices, (2, *vertices.shape)), faces, mv, proj,
                                     RESOLUTION)
    rasts[1, :20] = 0.0  # rows the garment no longer covers: mask pixels with a constant loss
    frames = appearance.prepare_texture_frames(sequence, rasts, atlas, renderer, TextureConfig(erode_iterations=0))
    height, width = RESOLUTION
    seen = ((rasts[1, ..., 3] > 0) & sequence.masks[1]).ravel()
    assert 0 < seen.sum() < sequence.masks[1].sum()
    colour = jnp.asarray(np.random.default_rng(0).uniform(0.0, 1.0, (int(frames.valid.shape[1]), 3)), jnp.float32)

    def from_pixels(c):
        terms = losses.relative_l2_terms(c, frames.colours[1]) * frames.valid[1][:, None]
        return (jnp.sum(terms) + frames.unseen[1]) / (height * width * 3)

    def full_image(c):
        image = jnp.zeros((height * width, 3)).at[np.flatnonzero(seen)].set(c[:int(seen.sum())])
        return losses.relative_l2(image.reshape(height, width, 3), jnp.asarray(sequence.images[1] / 255.0, jnp.float32),
                                  jnp.asarray(sequence.masks[1], jnp.float32))

    np.testing.assert_allclose(float(from_pixels(colour)), float(full_image(colour)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.grad(from_pixels)(colour)), np.asarray(jax.grad(full_image)(colour)),
                               rtol=1e-4, atol=1e-9)


def test_dynamic_texture_learns_a_pose_dependent_colour_without_retracing(tmp_path, compiled_variants):
    vertices, faces = flat_sheet()
    atlas = appearance.uv_atlas(vertices, faces, resolution=TEXTURE)
    base = known_texture(TEXTURE)
    tint = np.array([0.3, -0.2, 0.0], np.float32)
    pose_sign = np.array([1, -1, 1, -1])
    textures = [np.clip(base + sign * tint / 2, 0, 1) for sign in pose_sign]
    mv, proj = cameras(4)
    poses = pose_sign[:, None] * np.array([[1.0, 0.5, 0.0]]) + 0.05 * np.eye(4, 3)
    sequence = toy_sequence(vertices, faces, atlas, textures, mv, proj, poses)
    config = toy_config(epochs=60, warmup_epochs=5)
    renderer = get_renderer("jax")
    posed = np.broadcast_to(vertices, (4, *vertices.shape))
    result = appearance_fit.fit_texture(config, sequence, posed, vertices, faces, renderer, str(tmp_path), progress=False)
    step = appearance.make_texture_step(renderer, config.texture, 4,
                                        tuple(sequence.resolution))  # the (cached) step the fit ran
    assert compiled_variants(step) == 2  # one with T^D off and one with it on, for 240 steps
    assert result.dynamic

    _, images = appearance.textured_renders(result, renderer, sequence, config.texture)
    found = appearance.appearance_metrics(images, sequence)
    assert found["psnr"]["mean"] >= 28.0
    assert set(found["psnr"]["per_frame"]) == {f"{i:04d}" for i in range(4)}
    static_only = dataclasses.replace(result, dynamic=False)
    _, static_images = appearance.textured_renders(static_only, renderer, sequence, config.texture)
    assert appearance.appearance_metrics(static_images, sequence)["psnr"]["mean"] < found["psnr"]["mean"] - 8.0
    inside = sequence.masks
    difference = images[pose_sign > 0][inside[pose_sign > 0]].mean(0) - images[pose_sign < 0][inside[pose_sign < 0]].mean(0)
    np.testing.assert_allclose(difference, tint, atol=0.03)


def test_textured_obj_reads_back_in_trimesh_with_its_uvs_and_texture(tmp_path):
    vertices, faces = procedural.garment(300)
    atlas = appearance.uv_atlas(vertices, faces, resolution=64)
    colours = known_texture(64)
    path = tmp_path / "meshes" / "frame_0003.obj"
    outputs.write_textured_mesh(str(path), vertices, faces, atlas, colours)
    assert sorted(p.name for p in path.parent.iterdir()) == ["frame_0003.mtl", "frame_0003.obj", "frame_0003.png"]

    mesh = trimesh.load(path, process=False)
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert np.asarray(mesh.visual.material.image).shape[:2] == (64, 64)
    assert len(mesh.faces) == len(faces)
    np.testing.assert_allclose(mesh.vertices[mesh.faces], vertices[faces], atol=1e-5)
    # trimesh's own lookup of the PNG at the OBJ's vt matches our texture op at the atlas UVs.
    theirs = trimesh.visual.uv_to_color(mesh.visual.uv, mesh.visual.material.image)[:, :3] / 255.0
    uv_of_loaded = np.zeros((len(mesh.vertices), 2), np.float32)
    uv_of_loaded[mesh.faces.ravel()] = atlas.uv[atlas.uv_faces.ravel()]
    ours = np.asarray(get_renderer("jax").texture(jnp.asarray(colours)[None], jnp.asarray(uv_of_loaded)[None, None]))
    assert np.abs(theirs - ours[0, 0]).mean() < 0.02
