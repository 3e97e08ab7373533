"""Cameras and the one coordinate convention of ngdjax.

- World units are metres; right-handed coordinates.
- A camera is a world-to-view matrix ``mv`` (4, 4) and a view-to-clip matrix ``proj`` (4, 4),
  column-vector convention: ``clip = proj @ mv @ [x, y, z, 1]``. View space is OpenGL's: the
  camera looks down -z, so +z of view space points toward the camera (a surface facing the
  camera has view-space normal z > 0).
- Clip space is nvdiffrast's (OpenGL-like): NDC = clip.xyz / clip.w in [-1, 1]; smaller NDC z
  is nearer. **Image row 0 is at y_ndc = -1** (nvdiffrast never flips): for an upright image
  with rows going down, ``proj`` maps view-space +y (up) to -y_ndc, i.e. it flips y (see
  :func:`perspective`).
- Pixel (c, r) of an H x W image has its centre at NDC ((2c + 1)/W - 1, (2r + 1)/H - 1).
Loaders convert every dataset into this convention; nothing downstream branches on the dataset.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def perspective(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                near: float = 0.05, far: float = 100.0) -> np.ndarray:
    """OpenGL-style projection (4, 4) from pinhole intrinsics in pixels (OpenCV meaning: x right,
    y down, principal point (cx, cy)), producing images whose row 0 is the top row."""
    return np.array([
        [2 * fx / width, 0.0, 1.0 - 2 * cx / width, 0.0],
        [0.0, -2 * fy / height, 1.0 - 2 * cy / height, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-view matrix (4, 4) of a camera at ``eye`` looking at ``target`` (OpenGL view)."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    rotation = np.stack([right, true_up, back])
    mv = np.eye(4)
    mv[:3, :3] = rotation
    mv[:3, 3] = -rotation @ eye
    return mv


def to_clip(vertices: Float[Array, "V 3"], mv: Float[Array, "4 4"], proj: Float[Array, "4 4"]) -> Float[Array, "V 4"]:
    """Clip-space positions (V, 4) of world-space ``vertices``."""
    homogeneous = jnp.concatenate([vertices, jnp.ones_like(vertices[:, :1])], axis=1)
    return homogeneous @ (proj @ mv).T


def to_view_directions(vectors: Float[Array, "V 3"], mv: Float[Array, "4 4"]) -> Float[Array, "V 3"]:
    """World directions (e.g. normals) rotated into view space with ``mv``'s rotation part."""
    return vectors @ mv[:3, :3].T
