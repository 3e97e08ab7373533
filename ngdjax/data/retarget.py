"""Retargeting captured motion (a CMU-skeleton BVH, :mod:`ngdjax.data.bvh`) to the Anny rig.

Method (docs/mocap.md):

1. **Axes.** BVH (CMU) is Y up with the subject facing +Z at rest; Anny is Z up facing -Y; both
   have the subject's left along +X. A vector v in BVH coordinates is ``AXES @ v`` in Anny's:
   (x, y, z) -> (x, -z, y), a +90 degree rotation about X.
2. **Global deltas.** For each mapped BVH joint j, its global rotation relative to its rest,
   ``G_j(t) G_j(rest)^-1`` (the rest is all channels zero, where ``G_j(rest)`` is the identity),
   is conjugated into Anny's axes: ``D_j(t) = AXES G_j(t) G_j(rest)^-1 AXES^T``. Unmapped BVH
   joints (LHipJoint, lowerneck's siblings, lhand, ...) are never skipped in the chain: their
   rotations are inside their descendants' global rotations.
3. **Rest alignment.** The two rest poses differ (the CMU legs splay 20 degrees, its arms hang
   straight down; Anny stands in an A pose with bent elbows), so a limb bone with a direction
   pair in :data:`JOINT_MAP` first gets the smallest rotation ``C_k`` that turns Anny's rest bone
   direction (bone head to the head of the given Anny child) onto the BVH rest bone direction
   (in Anny's axes). Anny bone k then has the global rotation ``W_k(t) = D_j(t) C_k``, so its
   direction follows the BVH bone's direction exactly. Spine, neck, collar and pelvis bones take
   the delta alone (their rests nearly agree; aligning a collar would shrug the shoulders).
   Unmapped Anny bones keep their rest pose relative to their parent (``W_k = W_parent``).
4. **Root.** The heading ``psi(t)`` (the hips' forward direction projected on the ground) is
   taken out of every bone (``W'_k = Rz(psi)^T W_k``) and becomes ``global_rotation``
   ``(psi(t) - psi(0)) * z``; the translation is the hips' displacement (metres), horizontally
   from the first output frame, rotated by ``-psi(0)`` (the output starts at the origin facing
   Anny's forward, the synthetic camera), vertically from the clip's first captured frame (where
   the subject stands: a window starting mid-stride, hips low, must not lift the feet).
5. **Local axis-angles.** ``ngdjax.body.anny.bone_transforms`` composes
   ``rest_k R_k rest_k^-1`` down the chain, so ``R_k = rest_k^T W'_parent^T W'_k rest_k`` (rotation
   parts), converted to axis-angle for the 64 body bones.

Resampling: frame t of the output shows the clip at time ``start_s + t / fps``, taken from the
nearest captured frame (no interpolation: at 120 fps captured, the error is at most 1/240 s).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ngdjax.body import anny
from ngdjax.data.bvh import BVH
from ngdjax.errors import InputError

AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Anny = AXES @ BVH
ANNY_FORWARD = np.array([0.0, -1.0, 0.0])
ANNY_UP = np.array([0.0, 0.0, 1.0])

# CMU joint -> (Anny bones it drives, direction pair for the rest alignment or None):
# the pair (BVH child joint, Anny child bone) defines both rest bone directions.
JOINT_MAP: dict[str, tuple[tuple[str, ...], tuple[str, str] | None]] = {
    "Hips": (("pelvis.L", "pelvis.R", "spine05"), None),
    "lowerback": (("spine04",), None),
    "Chest": (("spine03",), None),
    "Chest2": (("spine02",), None),  # spine01 and the breasts follow it
    "lowerneck": (("neck01",), None),
    "Neck": (("neck02",), None),
    "Head": (("neck03",), None),  # Anny's head bone is not a body bone: it follows neck03
    "LeftCollar": (("clavicle.L",), None),  # shoulder01.L follows it
    "LeftShoulder": (("upperarm01.L",), ("LeftElbow", "lowerarm01.L")),
    "LeftElbow": (("lowerarm01.L",), ("LeftWrist", "wrist.L")),
    "LeftWrist": (("wrist.L",), ("LFingers", "finger3-1.L")),
    "RightCollar": (("clavicle.R",), None),
    "RightShoulder": (("upperarm01.R",), ("RightElbow", "lowerarm01.R")),
    "RightElbow": (("lowerarm01.R",), ("RightWrist", "wrist.R")),
    "RightWrist": (("wrist.R",), ("RFingers", "finger3-1.R")),
    "LeftHip": (("upperleg01.L",), ("LeftKnee", "lowerleg01.L")),
    "LeftKnee": (("lowerleg01.L",), ("LeftAnkle", "foot.L")),
    "LeftAnkle": (("foot.L",), ("LeftToe", "toe3-1.L")),
    "RightHip": (("upperleg01.R",), ("RightKnee", "lowerleg01.R")),
    "RightKnee": (("lowerleg01.R",), ("RightAnkle", "foot.R")),
    "RightAnkle": (("foot.R",), ("RightToe", "toe3-1.R")),
}


def required_joints() -> list[str]:
    """Every BVH joint the map reads (mapped joints and the children giving directions)."""
    names = list(JOINT_MAP)
    names += [pair[0] for _, pair in JOINT_MAP.values() if pair and pair[0] not in names]
    return names


def check_joints(bvh: BVH) -> None:
    """Raise :class:`InputError` (one line) if the file lacks joints the map needs."""
    missing = [name for name in required_joints() if name not in bvh.names]
    if missing:
        raise InputError(f"{bvh.path}: lacks the joint(s) {', '.join(missing)} that the CMU joint map needs "
                         f"(ngdjax/data/retarget.py JOINT_MAP)")


def frame_indices(bvh: BVH, n_frames: int, fps: float, start_s: float = 0.0) -> np.ndarray:
    """The captured frame nearest to each output time ``start_s + t / fps`` (t < n_frames).

    Raises:
        InputError: the clip is too short for ``n_frames`` at ``fps`` from ``start_s``.
    """
    times = start_s + np.arange(n_frames) / fps
    index = np.rint(times / bvh.frame_time).astype(np.int64)
    if start_s < 0 or index[-1] >= bvh.n_frames:
        raise InputError(f"{bvh.path}: {n_frames} frames at {fps:g} fps from {start_s:g} s need "
                         f"{times[-1]:.2f} s, the clip has {(bvh.n_frames - 1) * bvh.frame_time:.2f} s")
    return index


def _anny_arrays():
    with np.load(anny.DATA_FILE) as data:
        names = [str(n) for n in data["bone_names"]]
        return (names, [int(p) for p in data["parents"]], np.asarray(data["rest_skeleton"], np.float64),
                [int(b) for b in data["body_bones"]])


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction ``a`` to direction ``b``."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(a @ b)
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * axis / np.linalg.norm(axis)).as_matrix()
    return Rotation.from_rotvec(axis / sin * np.arctan2(sin, cos)).as_matrix()


def _rz(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def retarget(bvh: BVH, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anny's pose of the given captured frames (default: all), as :mod:`ngdjax.data.motion` makes it.

    Returns:
        pose (T, 192) flat axis-angles of the 64 body bones, global_rotation (T, 3) axis-angle
        about Anny's up axis, translation (T, 3) metres (see the module docstring).
    """
    check_joints(bvh)
    frames = np.arange(bvh.n_frames) if frames is None else np.asarray(frames)
    rot, pos = bvh.global_transforms()
    stand = pos[0, bvh.index("Hips")]  # the clip's first captured frame
    rot, pos = rot[frames], pos[frames]
    rest = bvh.rest_positions()
    names, parents, rest_skeleton, body_bones = _anny_arrays()
    rest_rot, rest_pos = rest_skeleton[:, :3, :3], rest_skeleton[:, :3, 3]
    n_frames = len(frames)

    # Global (world, Anny axes) rotation of every Anny bone, rest-to-posed.
    world = np.broadcast_to(np.eye(3), (n_frames, len(names), 3, 3)).copy()
    driven = {}
    for joint, (bones, pair) in JOINT_MAP.items():
        j = bvh.index(joint)
        delta = AXES @ rot[:, j] @ AXES.T  # G_j(rest) is the identity (BVH rest: channels zero)
        for bone in bones:
            k = names.index(bone)
            align = np.eye(3)
            if pair is not None:
                bvh_dir = AXES @ (rest[bvh.index(pair[0])] - rest[j])
                align = _align(rest_pos[names.index(pair[1])] - rest_pos[k], bvh_dir)
            driven[k] = delta @ align
    for k in range(1, len(names)):
        world[:, k] = driven[k] if k in driven else world[:, parents[k]]

    # Heading about the up axis, from the hips' forward direction.
    hips = AXES @ rot[:, bvh.index("Hips")] @ AXES.T
    forward = hips @ ANNY_FORWARD
    heading = np.unwrap(np.arctan2(forward[:, 1], forward[:, 0]) - np.arctan2(ANNY_FORWARD[1], ANNY_FORWARD[0]))
    unturn = np.swapaxes(_rz(heading), -1, -2)
    world = unturn[:, None] @ world
    world[:, 0] = np.eye(3)

    pose = np.zeros((n_frames, len(body_bones), 3))
    for row, k in enumerate(body_bones):
        local = np.swapaxes(rest_rot[k], -1, -2) @ np.swapaxes(world[:, parents[k]], -1, -2) @ world[:, k] @ rest_rot[k]
        pose[:, row] = Rotation.from_matrix(local).as_rotvec()
    global_rotation = (heading - heading[0])[:, None] * ANNY_UP[None, :]
    hips_pos = pos[:, bvh.index("Hips")]
    displacement = AXES @ (hips_pos - hips_pos[0]).T  # (3, T), horizontal from the first output frame
    displacement[2] = (AXES @ (hips_pos - stand).T)[2]  # vertical from the clip's first frame (standing)
    translation = (_rz(-heading[0]) @ displacement).T
    return pose.reshape(n_frames, -1), global_rotation, translation


def check_clip(config, n_frames: int) -> BVH:
    """Read the BVH of a :class:`ngdjax.data.motion.MotionConfig` and check that it can drive
    ``n_frames`` frames (raises :class:`InputError`, one line naming the file)."""
    from ngdjax.data.bvh import read_bvh

    bvh = read_bvh(config.bvh)
    check_joints(bvh)
    frame_indices(bvh, n_frames, config.bvh_fps, config.bvh_start_s)
    return bvh


def bvh_motion(config, n_frames: int, frame):
    """The :class:`ngdjax.data.motion.Motion` of ``config.bvh`` (a MotionConfig's captured clip)
    for the synthetic generator: ``n_frames`` frames at ``config.bvh_fps`` from
    ``config.bvh_start_s``, horizontal travel dropped if ``config.bvh_in_place``; the coefficients
    are the pose's projections on the procedural primitives (they drive the garment's dynamics)."""
    from ngdjax.data.motion import Motion, pose_features, primitive_poses

    bvh = check_clip(config, n_frames)
    pose, global_rotation, translation = retarget(bvh, frame_indices(bvh, n_frames, config.bvh_fps,
                                                                      config.bvh_start_s))
    if config.bvh_in_place:
        translation = translation * ANNY_UP[None, :]
    return Motion(pose, global_rotation, translation, pose_features(pose, primitive_poses(frame)))
