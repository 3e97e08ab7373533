"""Pieces shared by the dataset converters (:mod:`ngdjax.data.dress4d`,
:mod:`ngdjax.data.people_snapshot`): reading the releases' files with errors that name the file
and key, OpenCV cameras into the project's convention (:mod:`ngdjax.camera`), and resizing.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
from PIL import Image

from ngdjax.camera import perspective
from ngdjax.errors import InputError

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])  # camera y down / z forward -> y up / z backward


def opencv_to_opengl(intrinsics: np.ndarray, world_to_camera: np.ndarray, width: int, height: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``mv`` (4, 4) and ``proj`` (4, 4) of an OpenCV pinhole camera.

    Args:
        intrinsics: (3, 3) K in pixels, OpenCV meaning: pixel (c, r) has its centre at (u, v) =
            (c, r), x right, y down. Skew is ignored.
        world_to_camera: (3, 4) or (4, 4) [R | t], x_cam = R x_world + t, camera looking down +z.
        width, height: the image size in pixels.

    Returns:
        mv: world to OpenGL view (the camera looks down -z); proj: view to clip with image row 0 at
        y_ndc = -1, so a point OpenCV projects to (u, v) lands on the pixel whose centre is (u, v).
    """
    extrinsic = np.eye(4)
    extrinsic[:3, :] = np.asarray(world_to_camera, np.float64)[:3, :4]
    k = np.asarray(intrinsics, np.float64)
    # perspective() puts the image's left/top edge at 0; OpenCV puts the first pixel centre at 0.
    proj = perspective(k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5, width, height)
    return OPENCV_TO_OPENGL @ extrinsic, proj


def scaled_intrinsics(intrinsics: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """(3, 3) K of the same camera after resizing its image by (scale_x, scale_y) (OpenCV pixel centres)."""
    k = np.array(intrinsics, np.float64)
    k[0, 0], k[0, 2] = k[0, 0] * scale_x, (k[0, 2] + 0.5) * scale_x - 0.5
    k[1, 1], k[1, 2] = k[1, 1] * scale_y, (k[1, 2] + 0.5) * scale_y - 0.5
    return k


def resize(pixels: np.ndarray, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) resized to ``size`` = (H', W') (bilinear, or nearest for masks); unchanged if None."""
    if size is None or tuple(pixels.shape[:2]) == tuple(size):
        return pixels
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(pixels).resize((size[1], size[0]), resample))


def load_pickle(path: str):
    """The object in a pickle file (Python 2 pickles read as latin1).

    Raises:
        InputError: the file is missing or cannot be unpickled, naming it.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: missing")
    try:
        with open(path, "rb") as file:
            return pickle.load(file, encoding="latin1")
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise InputError(f"{path}: could not be read as a pickle ({error})") from error


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file. Raises InputError naming the file if it is missing or unreadable."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:  # noqa: BLE001 - any failure to read is a bad file for the user
        raise InputError(f"{path}: could not be read as .npz ({error})") from error


def missing_keys(path: str, mapping, keys) -> list[str]:
    """One problem line per key of ``keys`` that ``mapping`` (read from ``path``) lacks."""
    if not isinstance(mapping, dict):
        return [f"{path}: expected a dict with keys {', '.join(keys)}, got {type(mapping).__name__}"]
    return [f"{path}: missing key '{key}'" for key in keys if key not in mapping]


def require_keys(path: str, mapping, keys) -> None:
    """Raise InputError naming ``path`` and every key of ``keys`` that ``mapping`` lacks."""
    problems = missing_keys(path, mapping, keys)
    if problems:
        raise InputError(*problems)


def vector(path: str, mapping, key: str, size: int | None = None) -> np.ndarray:
    """``mapping[key]`` flattened to float64 (size,), or InputError naming the file, key and sizes."""
    values = np.asarray(mapping[key], np.float64).reshape(-1)
    if size is not None and values.size != size:
        raise InputError(f"{path}: '{key}' has {values.size} values, expected {size}")
    return values


def missing_files(paths) -> list[str]:
    """One problem line per path that is not a file."""
    return [f"{path}: missing" for path in paths if not os.path.isfile(path)]


def attempt(function, *args):
    """``(function(*args), [])``, or ``(None, problems)`` if it raised InputError: to collect every problem."""
    try:
        return function(*args), []
    except InputError as error:
        return None, error.problems
