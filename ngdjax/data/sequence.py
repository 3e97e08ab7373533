"""The ngdjax sequence format (documented in docs/sequence_format.md) and its validator.

A sequence directory holds ``sequence.yaml`` (metadata), ``body.npz`` (per-frame body
parameters), ``camera.npz`` (world-to-view ``mv`` and view-to-clip ``proj``, per sequence or per
frame, in the convention of :mod:`ngdjax.camera`), the garment template, and per-frame files
named by the frame index zero-padded to 4 digits: ``frames/XXXX.png`` (RGB), ``masks/XXXX.png``
(garment mask), and optionally ``occluders/XXXX.png``, ``diffuse/XXXX.png``, ``depth/XXXX.npy``
and ``gt_meshes/XXXX.obj`` (optional per frame: evaluation skips frames without one).

:func:`validate_sequence` reads everything once and returns every problem found, each line
naming its file; it never stops at the first one.
"""

from __future__ import annotations

import os

import numpy as np
import yaml

from ngdjax.errors import InputError
from ngdjax.io import read_image

FORMAT = "ngdjax-sequence-1"
# A camera matrix whose |det| is below this fraction of the product of its column norms (Hadamard's
# bound, so 1 for orthogonal columns) is singular: a pinhole ``perspective`` scores about 0.7 for
# any near plane, a rigid ``mv`` 1 / |(t, 1)| (t its translation in metres: 0.01 at 100 m), a rank-3
# matrix rounded to float32 at most 4e-8 (2000 random ones).
SINGULAR_CAMERA = 1e-6
METADATA_KEYS = {"format", "body_model", "body_model_path", "resolution", "frames", "template"}
REQUIRED_METADATA = ("format", "body_model", "resolution", "frames", "template")
BODY_MODELS = ("anny", "smpl", "smplx")
BODY_KEYS = {"shape", "pose", "global_rotation", "translation"}
CAMERA_KEYS = {"mv", "proj"}
REQUIRED_FOLDERS = ("frames", "masks")
OPTIONAL_IMAGE_FOLDERS = ("occluders", "diffuse")


def frame_name(index: int, suffix: str) -> str:
    """File name of frame ``index``: ``0007.png`` for (7, ".png")."""
    return f"{index:04d}{suffix}"


def validate_sequence(directory: str) -> list[str]:
    """Every problem of the sequence in ``directory``, one line each naming its file ([] if valid)."""
    metadata_path = os.path.join(directory, "sequence.yaml")
    if not os.path.isdir(directory):
        return [f"{directory}: not a directory"]
    if not os.path.isfile(metadata_path):
        return [f"{metadata_path}: missing (the sequence's metadata; see docs/sequence_format.md)"]
    try:
        with open(metadata_path) as file:
            metadata = yaml.safe_load(file)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        return [f"{metadata_path}: not valid YAML ({error})"]
    problems = _check_metadata(metadata_path, metadata)
    if problems:
        return problems
    frames = [int(i) for i in metadata["frames"]]
    height, width = (int(n) for n in metadata["resolution"])
    problems += _check_template(os.path.join(directory, str(metadata["template"])))
    problems += _check_body(os.path.join(directory, "body.npz"), len(frames))
    problems += _check_camera(os.path.join(directory, "camera.npz"), frames)
    for folder in REQUIRED_FOLDERS + OPTIONAL_IMAGE_FOLDERS:
        required = folder in REQUIRED_FOLDERS
        if required or os.path.isdir(os.path.join(directory, folder)):
            problems += _check_images(directory, folder, frames, (height, width), colour=folder == "frames",
                                      must_be_non_empty=folder == "masks")
    if os.path.isdir(os.path.join(directory, "depth")):
        problems += _check_depth(directory, frames, (height, width))
    if os.path.isdir(os.path.join(directory, "gt_meshes")):
        problems += _check_gt_meshes(directory, frames)
    return problems


def require_valid_sequence(directory: str) -> None:
    """Raise :class:`InputError` listing every problem, if the sequence has any."""
    problems = validate_sequence(directory)
    if problems:
        raise InputError(*problems)


def _check_metadata(path: str, metadata) -> list[str]:
    if not isinstance(metadata, dict):
        return [f"{path}: must be a mapping of keys to values"]
    problems = [f"{path}: unknown key '{key}' (known: {', '.join(sorted(METADATA_KEYS))})"
                for key in metadata if key not in METADATA_KEYS]
    problems += [f"{path}: missing key '{key}'" for key in REQUIRED_METADATA if key not in metadata]
    if problems:
        return problems
    if metadata["format"] != FORMAT:
        problems.append(f"{path}: format is '{metadata['format']}', expected '{FORMAT}'")
    if metadata["body_model"] not in BODY_MODELS:
        problems.append(f"{path}: body_model '{metadata['body_model']}' is not one of {BODY_MODELS}")
    resolution = metadata["resolution"]
    if not (isinstance(resolution, list) and len(resolution) == 2 and all(isinstance(n, int) and n > 0 for n in resolution)):
        problems.append(f"{path}: resolution must be [H, W] positive integers, got {resolution!r}")
    frames = metadata["frames"]
    if not (isinstance(frames, list) and frames and all(isinstance(i, int) and 0 <= i <= 9999 for i in frames)):
        problems.append(f"{path}: frames must be a non-empty list of frame indices 0..9999")
    elif len(set(frames)) != len(frames):
        problems.append(f"{path}: frames has repeated indices")
    return problems


def _check_template(path: str) -> list[str]:
    from ngdjax.garment import load_template

    try:
        load_template(path)
    except InputError as error:
        return error.problems
    return []


NPZ_SIGNATURE, NPY_SIGNATURE = b"PK", b"\x93NUMPY"  # a zip archive; numpy's .npy magic string


def _signature_problem(path: str, signature: bytes, what: str) -> list[str]:
    """[] if the file at ``path`` starts with ``signature``, else one line saying it is no ``what``
    (np.load would try to unpickle it and suggest allow_pickle, the wrong advice)."""
    with open(path, "rb") as file:
        head = file.read(len(signature))
    return [] if head == signature else [f"{path}: could not be read (not {what}: truncated, empty or another format)"]


def _load_npz(path: str) -> tuple[dict | None, list[str]]:
    if not os.path.isfile(path):
        return None, [f"{path}: missing"]
    problems = _signature_problem(path, NPZ_SIGNATURE, "an .npz archive")
    if problems:
        return None, problems
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}, []
    except Exception as error:  # noqa: BLE001 - any failure to read is a bad file for the user
        return None, [f"{path}: could not be read ({error})"]


def _check_body(path: str, n_frames: int) -> list[str]:
    data, problems = _load_npz(path)
    if data is None:
        return problems
    problems += [f"{path}: unknown key '{key}' (known: {', '.join(sorted(BODY_KEYS))})" for key in data if key not in BODY_KEYS]
    problems += [f"{path}: missing key '{key}'" for key in sorted(BODY_KEYS) if key not in data]
    expected = {"pose": (n_frames, None), "global_rotation": (n_frames, 3), "translation": (n_frames, 3)}
    for key, (rows, cols) in expected.items():
        if key in data and (data[key].ndim != 2 or data[key].shape[0] != rows or (cols and data[key].shape[1] != cols)):
            problems.append(f"{path}: '{key}' has shape {data[key].shape}, expected ({rows}, {cols or 'P'})")
    if "shape" in data and not (data["shape"].ndim == 1 or (data["shape"].ndim == 2 and data["shape"].shape[0] == n_frames)):
        problems.append(f"{path}: 'shape' has shape {data['shape'].shape}, expected (S,) or ({n_frames}, S)")
    for key, value in data.items():
        if not np.issubdtype(value.dtype, np.number):
            problems.append(f"{path}: '{key}' is not numeric (dtype {value.dtype})")
        elif not np.isfinite(value).all():
            rows = np.flatnonzero(~np.isfinite(value.reshape(len(value), -1)).all(axis=1)) if value.ndim else []
            problems.append(f"{path}: '{key}' has NaN/inf values, e.g. rows {list(map(int, rows[:5]))}")
    return problems


def _check_camera(path: str, frames: list[int]) -> list[str]:
    data, problems = _load_npz(path)
    if data is None:
        return problems
    n_frames = len(frames)
    problems += [f"{path}: unknown key '{key}' (known: mv, proj)" for key in data if key not in CAMERA_KEYS]
    for key in sorted(CAMERA_KEYS):
        if key not in data:
            problems.append(f"{path}: missing key '{key}'")
        elif not np.issubdtype(data[key].dtype, np.number):
            problems.append(f"{path}: '{key}' is not numeric (dtype {data[key].dtype})")
        elif data[key].shape not in ((4, 4), (n_frames, 4, 4)):
            problems.append(f"{path}: '{key}' has shape {data[key].shape}, expected (4, 4) or ({n_frames}, 4, 4)")
        else:
            matrices = data[key].reshape(-1, 4, 4).astype(np.float64)
            finite = np.isfinite(matrices).all(axis=(1, 2))
            zero = finite & ~matrices.any(axis=(1, 2))
            singular = finite & ~zero & (relative_determinant(np.where(finite[:, None, None], matrices, 0.0))
                                         < SINGULAR_CAMERA)
            for bad, what in ((~finite, "has NaN/inf values"), (zero, "is all zero"),
                              (singular, f"is singular (|det| < {SINGULAR_CAMERA:g} of its column norms' product)")):
                if bad.any():
                    problems.append(f"{path}: '{key}' {what}{_in_frames(bad, frames)}")
    return problems


def relative_determinant(matrices: np.ndarray) -> np.ndarray:
    """|det| / product of column norms (B,) of square matrices (B, N, N): 1 for orthogonal
    columns, 0 for singular ones (a zero column included); invariant to scaling any column."""
    norms = np.linalg.norm(matrices, axis=1).prod(axis=1)
    determinants = np.abs(np.linalg.det(matrices))
    return np.where(norms > 0, determinants / np.where(norms > 0, norms, 1.0), 0.0)


def _in_frames(bad: np.ndarray, frames: list[int]) -> str:
    """Which frames the per-frame flags ``bad`` (B,) name: "" for one matrix shared by every frame
    (B = 1), else the count and the first few frame indices."""
    if len(bad) == 1:
        return ""
    indices = [frames[i] for i in np.flatnonzero(bad)]
    return f" in {len(indices)} frame(s), e.g. frames {indices[:5]}"


def _check_images(directory, folder, frames, resolution, colour: bool, must_be_non_empty: bool) -> list[str]:
    problems = []
    for index in frames:
        path = os.path.join(directory, folder, frame_name(index, ".png"))
        if not os.path.isfile(path):
            problems.append(f"{path}: missing")
            continue
        try:
            pixels = read_image(path)
        except Exception as error:  # noqa: BLE001 - unreadable image
            problems.append(f"{path}: could not be read ({error})")
            continue
        if pixels.shape[:2] != resolution:
            problems.append(f"{path}: size {pixels.shape[1]}x{pixels.shape[0]}, expected {resolution[1]}x{resolution[0]} (W x H)")
        if colour and pixels.ndim != 3:
            problems.append(f"{path}: must be an RGB image")
        if must_be_non_empty and not pixels.any():
            problems.append(f"{path}: the mask is empty")
    return problems


def _check_depth(directory, frames, resolution) -> list[str]:
    problems = []
    for index in frames:
        path = os.path.join(directory, "depth", frame_name(index, ".npy"))
        if not os.path.isfile(path):
            problems.append(f"{path}: missing")
            continue
        signature = _signature_problem(path, NPY_SIGNATURE, "a .npy array")
        if signature:
            problems += signature
            continue
        try:
            depth = np.load(path)
        except Exception as error:  # noqa: BLE001 - truncated, garbage or pickled: a bad file for the user
            problems.append(f"{path}: could not be read ({error})")
            continue
        if not np.issubdtype(depth.dtype, np.number):
            problems.append(f"{path}: not numeric (dtype {depth.dtype})")
        elif depth.shape != resolution:
            problems.append(f"{path}: shape {depth.shape}, expected {resolution}")
        elif not np.isfinite(depth).all():
            problems.append(f"{path}: NaN/inf values (use 0 where the depth is unknown)")
    return problems


def _check_gt_meshes(directory, frames) -> list[str]:
    """Problems of the ground-truth meshes present (a frame without one is allowed: optional per frame)."""
    from ngdjax.io import read_checked_mesh

    problems = []
    for index in frames:
        path = os.path.join(directory, "gt_meshes", frame_name(index, ".obj"))
        if os.path.isfile(path):
            try:
                read_checked_mesh(path)
            except InputError as error:
                problems += error.problems
    return problems
