"""Does the camera see the body where the masks are? A cheap consistency check of camera.npz.

The file checks of :mod:`ngdjax.data.sequence` accept any finite, invertible camera; a wrong focal
length, principal point or axis convention passes them and the fit then chases a garment the
rendered body never reaches. :func:`camera_problems` poses the body of every frame (one jitted,
vmapped call), projects its vertices with the frame's ``mv``/``proj`` into pixels exactly as the
renderer maps clip space (:mod:`ngdjax.camera`: pixel (c, r) has its centre at NDC
((2c + 1)/W - 1, (2r + 1)/H - 1), row 0 at y_ndc = -1) and reports

(a) frames where the body does not project into the image: at most :data:`MIN_VISIBLE` of its
    vertices are in front of the camera (clip w > 0) and inside the image;
(b) frames where the garment mask does not lie on the projected body: of up to
    :data:`MAX_SAMPLES` mask pixels (evenly spaced in row-major order, deterministic), less than
    :data:`MIN_COVERAGE` lie within ``r`` of a projected body vertex, where ``r`` is
    :data:`RADIUS_FRACTION` of the body's projected height (rows spanned by its vertices in front
    of the camera), at least :data:`MIN_RADIUS_PX`.

Margins measured on correct synthetic sequences (``synthetic.SynthConfig`` at target edge length
0.03; skirt and t-shirt; seed 0 with 30 frames at 256x256 and 64x64, the skirt turning round
once as in configs/synth/demo.yaml; seed 1 with 4 frames at 256x256; seed 2 with 6 frames at
128x128, turning): in every frame at least 0.50 of the body's vertices are visible (threshold
0.02) and the mask coverage is at least 0.90 for the skirt (its flared hem and sway hang up to
about 14 cm off the legs) and 0.999 for the t-shirt (threshold 0.8). The same sequences with a
broken camera: focal length 4x too small covers at most 0.44; shifted sideways by a body width
(0.5 m in view space) at most 0.60; turned away (180 degrees about the view's up axis) shows 0.0
of the body. Not caught: an image flipped upside down (a proj without the y flip) when the camera
is centred on the garment (coverage stays >= 0.84, the body being nearly symmetric about it).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import scipy.spatial
from jaxtyping import Array, Bool, Float

from ngdjax.body.model import Body, body_vertices
from ngdjax.camera import to_clip
from ngdjax.data.loader import Sequence
from ngdjax.data.sequence import frame_name

MIN_VISIBLE = 0.02  # fraction of body vertices in front of the camera and inside the image
MIN_COVERAGE = 0.8  # fraction of mask pixels near the projected body
RADIUS_FRACTION = 0.07  # near = within this fraction of the body's projected height...
MIN_RADIUS_PX = 2.0  # ...and at least this many pixels
MAX_SAMPLES = 2000  # mask pixels tested per frame
MAX_NAMED = 3  # frames reported by name; the rest are counted
HINT = "check camera.npz: focal length, principal point, and the OpenGL convention of docs/sequence_format.md"


@jax.jit
def _project(body: Body, shape, pose, global_rotation, translation, mv, proj) -> Float[Array, "T N 4"]:
    """Clip-space positions (T, N, 4) of every frame's posed body vertices."""
    def one(s, p, r, t, m, q):
        return to_clip(body_vertices(body, s, p, r, t), m, q)

    return jax.vmap(one)(shape, pose, global_rotation, translation, mv, proj)


def project_body(sequence: Sequence, body: Body) -> tuple[Float[np.ndarray, "T N 2"], Bool[np.ndarray, "T N"]]:
    """Pixel coordinates (T, N, 2) as (column, row), and whether each vertex is in front of the
    camera (T, N), of the posed body of every frame of ``sequence``."""
    arrays = [jnp.asarray(a, jnp.float32) for a in (sequence.shape, sequence.pose, sequence.global_rotation,
                                                     sequence.translation, sequence.mv, sequence.proj)]
    clip = np.asarray(_project(body, *arrays), np.float64)
    w = clip[..., 3]
    in_front = w > 0
    ndc = clip[..., :2] / np.where(in_front, w, 1.0)[..., None]
    height, width = sequence.resolution
    pixels = (ndc + 1.0) * 0.5 * np.array([width, height]) - 0.5
    return pixels, in_front


def visible_fraction(pixels: Float[np.ndarray, "N 2"], in_front: Bool[np.ndarray, " N"],
                     resolution: tuple[int, int]) -> float:
    """Fraction of the N vertices in front of the camera whose pixel (column, row) lies in the
    H x W image (pixel centres at integers, so the image spans -0.5 .. W - 0.5)."""
    height, width = resolution
    inside = (pixels[:, 0] >= -0.5) & (pixels[:, 0] <= width - 0.5) & (pixels[:, 1] >= -0.5) & (pixels[:, 1] <= height - 0.5)
    return float(np.mean(in_front & inside))


def mask_coverage(mask: Bool[np.ndarray, "H W"], pixels: Float[np.ndarray, "N 2"],
                  in_front: Bool[np.ndarray, " N"]) -> tuple[float, float]:
    """(fraction of mask pixels within the radius of a projected body vertex, the radius in
    pixels) for one frame: up to :data:`MAX_SAMPLES` mask pixels, evenly spaced in row-major
    order; only the vertices in front of the camera count. (0, radius) when none is in front."""
    front = pixels[in_front]
    radius = max(MIN_RADIUS_PX, RADIUS_FRACTION * float(np.ptp(front[:, 1]))) if len(front) else MIN_RADIUS_PX
    rows, cols = np.nonzero(mask)
    if len(rows) == 0 or len(front) == 0:
        return 0.0, radius
    chosen = np.linspace(0, len(rows) - 1, min(len(rows), MAX_SAMPLES)).astype(np.int64)
    distances, _ = scipy.spatial.cKDTree(front).query(np.stack([cols[chosen], rows[chosen]], axis=1),
                                                      distance_upper_bound=radius)
    return float(np.mean(np.isfinite(distances))), radius


def camera_problems(sequence: Sequence, body: Body) -> list[str]:
    """Problems of the sequence's camera against its body and masks (module docstring), one line
    each naming camera.npz or the mask file; [] when the camera is consistent."""
    pixels, in_front = project_body(sequence, body)
    camera_path = os.path.join(sequence.directory, "camera.npz")
    visible = np.array([visible_fraction(p, f, sequence.resolution) for p, f in zip(pixels, in_front, strict=True)])
    unseen = [frame for frame, v in zip(sequence.frames, visible, strict=True) if v <= MIN_VISIBLE]
    problems = []
    if unseen:
        problems.append(f"{camera_path}: the body does not project into the image in {len(unseen)} frame(s), e.g. "
                        f"frames {unseen[:5]} (at most {100 * MIN_VISIBLE:g}% of its vertices in front of the camera "
                        f"and inside the {sequence.resolution[1]}x{sequence.resolution[0]} image); {HINT}")
    off = []
    for t, frame in enumerate(sequence.frames):
        if frame in unseen:
            continue
        coverage, radius = mask_coverage(sequence.masks[t], pixels[t], in_front[t])
        if coverage < MIN_COVERAGE:
            off.append((frame, coverage, radius))
    for frame, coverage, radius in off[:MAX_NAMED]:
        path = os.path.join(sequence.directory, "masks", frame_name(frame, ".png"))
        problems.append(f"{path}: only {100 * coverage:.0f}% of the garment mask lies within {radius:.1f} px of the "
                        f"projected body (expected at least {100 * MIN_COVERAGE:g}%); {HINT}")
    if len(off) > MAX_NAMED:
        more = [frame for frame, _, _ in off[MAX_NAMED:]]
        problems.append(f"{os.path.join(sequence.directory, 'masks')}: {len(more)} more frame(s) with the garment "
                        f"mask off the projected body, e.g. frames {more[:5]}")
    return problems
