"""Files in and out: images, with atomic writes (a temporary name, then a rename)."""

from __future__ import annotations

import os

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
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(path)
    temporary = f"{stem}.tmp{suffix}"
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(temporary)
    os.replace(temporary, path)
