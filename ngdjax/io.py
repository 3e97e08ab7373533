"""Files in and out: images and meshes, with atomic writes (a temporary name, then a rename), and
a pool of threads that writes many of them while the caller goes on (:func:`background_writes`)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from PIL import Image


def read_image(path: str) -> np.ndarray:
    """An image file as uint8 (H, W) for greyscale or (H, W, 3) for colour (alpha dropped)."""
    with Image.open(path) as image:
        if image.mode in ("L", "1", "I", "I;16"):
            return np.asarray(image.convert("L"))
        return np.asarray(image.convert("RGB"))


def write_image(path: str, pixels: np.ndarray) -> None:
    """Write uint8 (H, W) or (H, W, 3) pixels to ``path`` atomically (format from the suffix)."""
    write_atomic(path, Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save)


def write_mesh(path: str, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh (V, 3) / (F, 3) to ``path`` atomically, vertex order kept (.obj, .ply)."""
    import trimesh

    write_atomic(path, trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=False).export)


def read_mesh(path: str) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh file as vertices (V, 3) float64 and faces (F, 3) int64, vertex order kept."""
    import trimesh

    mesh = trimesh.load(path, force="mesh", process=False)
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def read_checked_mesh(path: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_mesh` checked for what metrics need: the file exists and reads as a triangle
    mesh with faces, finite vertices (V, 3) float64 and faces (F, 3) int64 indexing them.

    Raises:
        InputError: one line naming ``path`` and the problem.
    """
    from ngdjax.errors import InputError

    if not os.path.isfile(path):
        raise InputError(f"{path}: missing")
    try:
        vertices, faces = read_mesh(path)
    except Exception as error:  # noqa: BLE001 - any failure to parse is a bad file for the user
        raise InputError(f"{path}: could not be read as a mesh ({error})") from error
    if len(faces) == 0:
        raise InputError(f"{path}: holds no triangles")
    if not np.all(np.isfinite(vertices)):
        raise InputError(f"{path}: has NaN/inf vertices")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(f"{path}: faces index missing vertices")
    return vertices, faces


def write_atomic(path: str, write) -> None:
    """Call ``write(temporary_path)``, then rename the result to ``path``."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(path)
    temporary = f"{stem}.tmp{suffix}"
    write(temporary)
    os.replace(temporary, path)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    def write(temporary: str) -> None:
        with open(temporary, "w") as file:
            file.write(text)
    write_atomic(path, write)


Submit = Callable[..., None]
"""``submit(write, *args)``: have ``write(*args)`` done, now or later (:func:`background_writes`)."""


def immediately(write: Callable[..., None], *args) -> None:
    """The :data:`Submit` that writes at once, in the calling thread."""
    write(*args)


@contextlib.contextmanager
def background_writes(workers: int | None = None, max_pending: int = 32) -> Iterator[Submit]:
    """A :data:`Submit` whose writes run on a pool of threads (PNG encoding and file I/O release
    the GIL), so that encoding a run's images overlaps with its next stage.

    At most ``max_pending`` writes wait at a time (their arrays are held until written); submitting
    one more blocks until a slot frees. On leaving the block every write has finished, and the
    first write that failed raises its error (an error of the block itself wins: the writes still
    finish first, so no half-written set is left behind).
    """
    slots = threading.BoundedSemaphore(max_pending)
    futures = []
    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1), thread_name_prefix="ngdjax-write") as pool:
        def submit(write: Callable[..., None], *args) -> None:
            slots.acquire()
            future = pool.submit(write, *args)
            future.add_done_callback(lambda _: slots.release())
            futures.append(future)

        try:
            yield submit
        finally:
            wait(futures)
    for future in futures:
        future.result()
