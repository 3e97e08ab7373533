"""Read and write sequences in the ngdjax format (docs/sequence_format.md).

:func:`load_sequence` validates first (every problem, one line each naming its file) and then
loads everything into host arrays; :func:`write_sequence` is what the synthetic generator and the
dataset converters use, so every sequence on disk is written by one function.

Writing never replaces a user's files: a sequence is written only into a directory that does not
exist, is empty, or holds an interrupted write of ours (the marker ``.ngdjax-writing``, written
first and removed after ``sequence.yaml``); :func:`output_problem` says why not, and
:func:`clear_sequence_dir` empties one of ours (``--overwrite``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import yaml

from ngdjax.data.sequence import FORMAT, frame_name, require_valid_sequence
from ngdjax.errors import InputError
from ngdjax.garment import load_template
from ngdjax.io import read_image, write_atomic, write_image, write_mesh, write_text


@dataclasses.dataclass(frozen=True)
class Sequence:
    """A monocular sequence in host memory (T frames, H x W pixels).

    Attributes:
        directory: where it was read from. frames: the T frame indices.
        resolution: (H, W). images: (T, H, W, 3) uint8. masks: (T, H, W) bool garment masks.
        occluders, diffuse, depth: (T, H, W) bool / float32 in [0, 1] / float32 metres, or None.
        mv, proj: (T, 4, 4) float32 cameras (:mod:`ngdjax.camera`).
        shape: (T, S), pose: (T, P), global_rotation: (T, 3), translation: (T, 3) float32.
        body_model: "anny", "smpl" or "smplx"; body_model_path: its file, or None.
        template_vertices: (V, 3) float64, template_faces: (F, 3) int64 (rest pose).
        gt_mesh_paths: per frame its ground-truth mesh file or None (the file is optional per
            frame), or None when the sequence has no ``gt_meshes`` folder.
    """

    directory: str
    frames: list[int]
    resolution: tuple[int, int]
    images: np.ndarray
    masks: np.ndarray
    occluders: np.ndarray | None
    diffuse: np.ndarray | None
    depth: np.ndarray | None
    mv: np.ndarray
    proj: np.ndarray
    shape: np.ndarray
    pose: np.ndarray
    global_rotation: np.ndarray
    translation: np.ndarray
    body_model: str
    body_model_path: str | None
    template_vertices: np.ndarray
    template_faces: np.ndarray
    gt_mesh_paths: list[str | None] | None

    @property
    def n_frames(self) -> int:
        return len(self.frames)


def load_sequence(directory: str) -> Sequence:
    """Validate and load the sequence in ``directory``.

    Raises:
        InputError: listing every problem of the sequence, each naming its file.
    """
    require_valid_sequence(directory)
    with open(os.path.join(directory, "sequence.yaml")) as file:
        metadata = yaml.safe_load(file)
    frames = [int(i) for i in metadata["frames"]]
    n = len(frames)

    def images(folder: str, suffix: str = ".png", reader=read_image) -> np.ndarray | None:
        if not os.path.isdir(os.path.join(directory, folder)):
            return None
        return np.stack([reader(os.path.join(directory, folder, frame_name(i, suffix))) for i in frames])

    with np.load(os.path.join(directory, "body.npz")) as body, np.load(os.path.join(directory, "camera.npz")) as camera:
        shape = np.broadcast_to(body["shape"], (n,) + body["shape"].shape[-1:]).astype(np.float32)
        params = {key: body[key].astype(np.float32) for key in ("pose", "global_rotation", "translation")}
        mv, proj = (np.broadcast_to(camera[key], (n, 4, 4)).astype(np.float32) for key in ("mv", "proj"))
    masks, occluders, diffuse = images("masks"), images("occluders"), images("diffuse")
    template_vertices, template_faces = load_template(os.path.join(directory, str(metadata["template"])))
    gt_folder = os.path.join(directory, "gt_meshes")
    gt_paths = [os.path.join(gt_folder, frame_name(i, ".obj")) for i in frames]
    path = metadata.get("body_model_path")
    return Sequence(
        directory=directory, frames=frames, resolution=tuple(int(v) for v in metadata["resolution"]),
        images=images("frames"), masks=_grey(masks) > 0,
        occluders=None if occluders is None else _grey(occluders) > 0,
        diffuse=None if diffuse is None else _grey(diffuse).astype(np.float32) / 255.0,
        depth=images("depth", ".npy", np.load), mv=mv, proj=proj, shape=shape, **params,
        body_model=str(metadata["body_model"]),
        body_model_path=None if path is None else os.path.join(directory, os.path.expanduser(str(path))),
        template_vertices=template_vertices, template_faces=template_faces,
        gt_mesh_paths=[p if os.path.isfile(p) else None for p in gt_paths] if os.path.isdir(gt_folder) else None,
    )


def _grey(pixels: np.ndarray) -> np.ndarray:
    """(T, H, W) from (T, H, W) or (T, H, W, 3) images (the first channel)."""
    return pixels if pixels.ndim == 3 else pixels[..., 0]


WRITING_MARKER = ".ngdjax-writing"


def output_problem(directory: str, overwrite: bool = False) -> str | None:
    """Why a sequence may not be written into ``directory`` (None when it may). With ``overwrite``,
    a directory holding a sequence (``sequence.yaml``) may be replaced; anything else never."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        return f"{directory}: exists and is not a directory; choose another output directory"
    if not os.path.isdir(directory) or not os.listdir(directory) or os.path.exists(os.path.join(directory, WRITING_MARKER)):
        return None
    if not os.path.isfile(os.path.join(directory, "sequence.yaml")):
        return (f"{directory}: not empty and holds no sequence (no sequence.yaml); a sequence is written only into a "
                "new or empty directory, so nothing there is overwritten: choose another directory")
    if overwrite:
        return None
    return f"{directory}: already holds a sequence; pass --overwrite to replace it, or choose another directory"


def clear_sequence_dir(directory: str) -> None:
    """Remove everything inside ``directory`` (after :func:`output_problem` allowed it)."""
    for entry in os.listdir(directory) if os.path.isdir(directory) else []:
        path = os.path.join(directory, entry)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)


def write_sequence(
    directory: str, *, frames: list[int], images: np.ndarray, masks: np.ndarray, mv: np.ndarray, proj: np.ndarray,
    shape: np.ndarray, pose: np.ndarray, global_rotation: np.ndarray, translation: np.ndarray, body_model: str,
    template_vertices: np.ndarray, template_faces: np.ndarray, occluders: np.ndarray | None = None,
    diffuse: np.ndarray | None = None, depth: np.ndarray | None = None,
    gt_meshes: list[tuple[np.ndarray, np.ndarray]] | None = None, body_model_path: str | None = None,
) -> None:
    """Write a sequence in the ngdjax format (arguments as :class:`Sequence`; ``diffuse`` float in
    [0, 1] or uint8; ``gt_meshes`` one (vertices, faces) per frame). Every file is written
    atomically; ``sequence.yaml`` is written last, so a directory with it is complete.

    Raises:
        InputError: ``directory`` is not new, empty or an interrupted write of ours (:func:`output_problem`).
    """
    problem = output_problem(directory)
    if problem:
        raise InputError(problem)
    clear_sequence_dir(directory)  # an interrupted write of ours, or nothing
    os.makedirs(directory, exist_ok=True)
    write_text(os.path.join(directory, WRITING_MARKER), "a sequence is being written here\n")
    as_uint8 = lambda a: a if a.dtype == np.uint8 else np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    per_frame = {"frames": images, "masks": as_uint8(np.asarray(masks, np.float32)),
                 "occluders": None if occluders is None else as_uint8(np.asarray(occluders, np.float32)),
                 "diffuse": None if diffuse is None else as_uint8(np.asarray(diffuse))}
    for folder, stack in per_frame.items():
        for index, pixels in zip(frames, stack if stack is not None else [], strict=False):
            write_image(os.path.join(directory, folder, frame_name(index, ".png")), pixels)
    for index, values in zip(frames, depth if depth is not None else [], strict=False):
        write_atomic(os.path.join(directory, "depth", frame_name(index, ".npy")),
                     lambda path, v=values: np.save(path, np.asarray(v, np.float32)))
    for index, (vertices, faces) in zip(frames, gt_meshes or [], strict=False):
        write_mesh(os.path.join(directory, "gt_meshes", frame_name(index, ".obj")), vertices, faces)
    write_mesh(os.path.join(directory, "template.obj"), template_vertices, template_faces)
    write_atomic(os.path.join(directory, "body.npz"), lambda path: np.savez(
        path, shape=np.asarray(shape, np.float32), pose=np.asarray(pose, np.float32),
        global_rotation=np.asarray(global_rotation, np.float32), translation=np.asarray(translation, np.float32)))
    write_atomic(os.path.join(directory, "camera.npz"), lambda path: np.savez(
        path, mv=np.asarray(mv, np.float32), proj=np.asarray(proj, np.float32)))
    metadata = {"format": FORMAT, "body_model": body_model, "resolution": [int(images.shape[1]), int(images.shape[2])],
                "frames": [int(i) for i in frames], "template": "template.obj"}
    if body_model_path is not None:
        metadata["body_model_path"] = body_model_path
    write_text(os.path.join(directory, "sequence.yaml"), yaml.safe_dump(metadata, sort_keys=False))
    os.remove(os.path.join(directory, WRITING_MARKER))
