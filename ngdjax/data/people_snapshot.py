"""PeopleSnapshot subjects, as preprocessed by InstantAvatar, into the ngdjax sequence format
(layout and assumptions: docs/datasets.md).

One subject folder written by InstantAvatar's ``scripts/peoplesnapshot/preprocess_PeopleSnapshot.py``
(tijiang13/InstantAvatar; also read by 3DGS-Avatar, GaussianAvatar, SplattingAvatar)::

    <subject>/
      images/image_XXXX.png     undistorted RGB frames (frame XXXX = row XXXX of poses.npz)
      masks/mask_XXXX.npy       undistorted full-body masks, (H, W) uint8 0/1
      cameras.npz               intrinsic (3, 3), extrinsic (4, 4) world-to-camera (OpenCV), height, width
      poses.npz                 betas (10,), thetas (N, 72) (root first), transl (N, 3)
                                (or global_orient (N, 3) + body_pose (N, 69) instead of thetas)

PeopleSnapshot has no garment masks and no ground-truth meshes: give a folder of garment masks
(``XXXX.png`` per frame, non-zero = garment), or the full-body mask stands in with a warning.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np
from tqdm import tqdm

from ngdjax.data.conversion import (
    attempt,
    load_npz,
    missing_files,
    missing_keys,
    opencv_to_opengl,
    resize,
    scaled_intrinsics,
)
from ngdjax.data.loader import write_sequence
from ngdjax.data.sequence import frame_name
from ngdjax.errors import InputError
from ngdjax.garment import load_template
from ngdjax.io import read_image

log = logging.getLogger("ngdjax")

IMAGE_NAME = re.compile(r"image_(\d+)\.png")
CAMERA_KEYS = ("intrinsic", "extrinsic", "height", "width")


def subject_files(subject_dir: str, index: int) -> dict[str, str]:
    """The files of frame ``index`` in a preprocessed subject folder."""
    return {"image": os.path.join(subject_dir, "images", f"image_{index:04d}.png"),
            "mask": os.path.join(subject_dir, "masks", f"mask_{index:04d}.npy")}


def check_subject(subject_dir: str, template_path: str, frames: list[int] | None = None,
                  garment_masks: str | None = None) -> tuple[list[int], dict, dict]:
    """Check a subject folder before any heavy work.

    Returns:
        the frame indices to convert, the camera arrays and the SMPL parameters as
        {'betas': (S,), 'global_orient': (N, 3), 'body_pose': (N, 69), 'transl': (N, 3)}.

    Raises:
        InputError: every problem found, one line each naming its file or key.
    """
    problems = [] if os.path.isfile(template_path) else [f"{template_path}: garment template not found"]
    if not os.path.isdir(subject_dir):
        raise InputError(*problems, f"{subject_dir}: not a directory (a preprocessed PeopleSnapshot subject)")
    problems += [f"{os.path.join(subject_dir, folder)}: missing folder" for folder in ("images", "masks")
                 if not os.path.isdir(os.path.join(subject_dir, folder))]
    if garment_masks is not None and not os.path.isdir(garment_masks):
        problems.append(f"{garment_masks}: garment mask folder not found")
    camera_path, poses_path = os.path.join(subject_dir, "cameras.npz"), os.path.join(subject_dir, "poses.npz")
    camera, camera_problems = attempt(load_npz, camera_path)
    poses, pose_problems = attempt(load_npz, poses_path)
    problems += camera_problems + pose_problems
    if camera is not None:
        problems += missing_keys(camera_path, camera, CAMERA_KEYS)
    if poses is not None:
        rotation_keys = ("thetas",) if "thetas" in poses else ("global_orient", "body_pose")
        problems += missing_keys(poses_path, poses, ("betas",) + rotation_keys + ("transl",))
    if problems:
        raise InputError(*problems)
    smpl = _smpl_parameters(poses_path, poses)
    indices = _select_frames(subject_dir, frames, len(smpl["transl"]), poses_path)
    for index in indices:
        problems += missing_files(subject_files(subject_dir, index).values())
        if garment_masks is not None:
            problems += missing_files([os.path.join(garment_masks, frame_name(index, ".png"))])
    if problems:
        raise InputError(*problems)
    return indices, camera, smpl


def convert_people_snapshot(subject_dir: str, out_dir: str, template_path: str, frames: list[int] | None = None,
                            garment_masks: str | None = None, body_model_path: str | None = None,
                            size: tuple[int, int] | None = None) -> None:
    """Convert one preprocessed PeopleSnapshot subject into the sequence ``out_dir``.

    Args:
        subject_dir: the subject folder (layout in the module docstring).
        template_path: garment template .obj in the SMPL rest pose, metres.
        frames: frame indices (the XXXX of ``image_XXXX.png``) to convert; default all.
        garment_masks: folder of garment masks ``XXXX.png``; default: the full-body masks, with a warning.
        body_model_path: the SMPL model file to record in sequence.yaml (never shipped with ngdjax).
        size: (H, W) to resize to; default the images' own size.

    Raises:
        InputError: naming the file or key of every problem (checked before any heavy work).
    """
    indices, camera, smpl = check_subject(subject_dir, template_path, frames, garment_masks)
    template_vertices, template_faces = load_template(template_path)
    camera_path = os.path.join(subject_dir, "cameras.npz")
    native = (int(camera["height"]), int(camera["width"]))
    height, width = size or native
    intrinsics, extrinsic = (np.asarray(camera[key], np.float64) for key in ("intrinsic", "extrinsic"))
    if intrinsics.shape != (3, 3) or extrinsic.shape not in ((3, 4), (4, 4)):
        raise InputError(f"{camera_path}: 'intrinsic' {intrinsics.shape} and 'extrinsic' {extrinsic.shape}, "
                         "expected (3, 3) and (4, 4)")
    mv, proj = opencv_to_opengl(scaled_intrinsics(intrinsics, width / native[1], height / native[0]), extrinsic,
                                width, height)
    if garment_masks is None:
        log.warning("%s: PeopleSnapshot masks cover the whole body; using them as the garment masks "
                    "(give a folder of garment masks for a real garment fit)", subject_dir)
    images, masks = [], []
    for index in tqdm(indices, desc="PeopleSnapshot", unit="frame"):
        files = subject_files(subject_dir, index)
        mask_path = files["mask"] if garment_masks is None else os.path.join(garment_masks, frame_name(index, ".png"))
        image, mask = read_image(files["image"]), _read_mask(mask_path)
        for path, pixels in ((files["image"], image), (mask_path, mask)):
            if pixels.shape[:2] != native:
                raise InputError(f"{path}: size {pixels.shape[1]}x{pixels.shape[0]}, expected "
                                 f"{native[1]}x{native[0]} ({camera_path} 'width', 'height')")
        images.append(resize(image, (height, width)))
        masks.append(resize(mask, (height, width), nearest=True) > 0)
    rows = np.asarray(indices)
    write_sequence(
        out_dir, frames=list(indices), images=np.stack(images), masks=np.stack(masks), mv=mv, proj=proj,
        shape=smpl["betas"], pose=smpl["body_pose"][rows], global_rotation=smpl["global_orient"][rows],
        translation=smpl["transl"][rows], body_model="smpl",
        body_model_path=None if body_model_path is None else os.path.abspath(os.path.expanduser(body_model_path)),
        template_vertices=template_vertices, template_faces=template_faces,
    )


def _smpl_parameters(path: str, poses: dict) -> dict[str, np.ndarray]:
    """betas (S,), global_orient (N, 3), body_pose (N, 69), transl (N, 3) from poses.npz (InstantAvatar's
    ``load_smpl_param``: ``thetas`` (N, 72) split into root and body when present)."""
    if "thetas" in poses:
        thetas = np.asarray(poses["thetas"], np.float64)
        rotations = {"global_orient": thetas[..., :3], "body_pose": thetas[..., 3:]}
    else:
        rotations = {key: np.asarray(poses[key], np.float64) for key in ("global_orient", "body_pose")}
    smpl = {"betas": np.asarray(poses["betas"], np.float64).reshape(-1), **rotations,
            "transl": np.asarray(poses["transl"], np.float64)}
    expected = {"global_orient": 3, "body_pose": 69, "transl": 3}
    problems = [f"{path}: '{key}' has shape {smpl[key].shape}, expected (N, {size})"
                for key, size in expected.items() if smpl[key].ndim != 2 or smpl[key].shape[1] != size]
    if not problems and len({len(smpl[key]) for key in expected}) != 1:
        problems.append(f"{path}: the per-frame arrays have different frame counts "
                        f"{ {key: len(smpl[key]) for key in expected} }")
    if problems:
        raise InputError(*problems)
    return smpl


def _select_frames(subject_dir: str, frames: list[int] | None, n_poses: int, poses_path: str) -> list[int]:
    """The frame indices to convert: ``frames``, or every ``images/image_XXXX.png``; each must have a pose row."""
    image_dir = os.path.join(subject_dir, "images")
    available = sorted(int(match.group(1)) for match in map(IMAGE_NAME.fullmatch, os.listdir(image_dir)) if match)
    wanted = available if frames is None else list(frames)
    problems = [] if wanted else [f"{image_dir}: no image_XXXX.png frames"]
    problems += [f"{poses_path}: no pose for frame {index} (it holds {n_poses} frames)"
                 for index in wanted if not 0 <= index < n_poses]
    problems += [f"frame {index} is beyond 9999 (the sequence format's largest frame index)"
                 for index in wanted if index > 9999]
    if problems:
        raise InputError(*problems)
    return wanted


def _read_mask(path: str) -> np.ndarray:
    """A mask as uint8 (H, W): .npy (InstantAvatar) or an image (first channel)."""
    pixels = np.load(path) if path.endswith(".npy") else read_image(path)
    pixels = pixels if pixels.ndim == 2 else pixels[..., 0]
    return (pixels > 0).astype(np.uint8) * 255
