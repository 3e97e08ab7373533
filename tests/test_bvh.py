"""The BVH reader, retargeting CMU motion to Anny, and the synthetic generator driven by a clip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ngdjax.data import retarget as rt
from ngdjax.data.bvh import parse_bvh, read_bvh
from ngdjax.errors import InputError

MOCAP = os.path.join(os.path.dirname(__file__), "..", "ngdjax", "data", "mocap")
WALK = os.path.join(MOCAP, "131_01.bvh")
HOP = os.path.join(MOCAP, "131_03.bvh")


@pytest.fixture(scope="module")
def walk():
    return read_bvh(WALK)


def hierarchy_lines(path=WALK) -> list[str]:
    lines = Path(path).read_text().splitlines()
    return lines[: lines.index("MOTION")]


def bone_heads(pose, global_rotation, translation) -> tuple[np.ndarray, list[str]]:
    """Posed Anny bone heads (T, K, 3), composed on the host as ngdjax.body.anny.bone_transforms does."""
    from scipy.spatial.transform import Rotation

    names, parents, rest, body_bones = rt._anny_arrays()
    heads = []
    for p, g, t in zip(pose, global_rotation, translation, strict=True):
        local = np.broadcast_to(np.eye(3), (len(names), 3, 3)).copy()
        local[body_bones] = Rotation.from_rotvec(p.reshape(-1, 3)).as_matrix()
        root = np.eye(4)
        root[:3, 3] = -rest[0][:3, 3]  # Anny's root: the rest skeleton moved to the origin
        chain = [root]
        for k in range(1, len(names)):
            frame = np.eye(4)
            frame[:3, :3] = local[k]
            chain.append(chain[parents[k]] @ rest[k] @ frame @ np.linalg.inv(rest[k]))
        world = np.eye(4)
        world[:3, :3], world[:3, 3] = Rotation.from_rotvec(g).as_matrix(), t
        heads.append(np.stack([(world @ c @ rest[k][:, 3])[:3] for k, c in enumerate(chain)]))
    return np.stack(heads), names


def test_reader_parses_both_clips(walk):
    hop = read_bvh(HOP)
    for clip, frames in ((walk, 995), (hop, 1248)):
        assert len(clip.names) == 31 and clip.names[0] == "Hips" and clip.parents[0] == -1
        assert clip.n_frames == frames and clip.values.shape == (frames, 6 + 3 * 30)
        assert clip.frame_time == pytest.approx(1 / 120, abs=1e-6)
    assert walk.channels[walk.index("LeftShoulder")] == ("Zrotation", "Xrotation", "Yrotation")
    np.testing.assert_allclose(walk.offsets[walk.index("LeftKnee")], [0.140731, -0.386656, 0.0])
    assert walk.root_translation()[0] == pytest.approx([0.295202, 0.953915, -1.913373])
    rotations = walk.local_rotations()[:5]
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2), np.broadcast_to(np.eye(3), rotations.shape),
                               atol=1e-12)


def test_euler_channels_compose_in_their_stated_order():
    lines = hierarchy_lines()
    zyx = parse_bvh(lines + ["MOTION", "Frames: 1", "Frame Time: 0.01", " ".join(["0"] * 6 + ["10", "20", "30"]
                                                                                  + ["0"] * 87)])
    from ngdjax.data.bvh import axis_rotation

    expected = axis_rotation("Z", np.radians(10)) @ axis_rotation("Y", np.radians(20)) @ axis_rotation("X", np.radians(30))
    np.testing.assert_allclose(zyx.local_rotations()[0, 1], expected, atol=1e-12)


def test_a_knee_rotation_moves_the_anny_shin_and_nothing_unrelated():
    """Frame 0 is the rest (all channels zero), frame 1 bends the left knee 30 degrees about BVH X
    (Anny X): the left foot's head turns 30 degrees about X around the knee; the rest stays."""
    lines = hierarchy_lines()
    n_channels = 6 + 3 * 30
    bent = np.zeros(n_channels)
    knee = 6 + 3 * (parse_bvh(lines + ["MOTION", "Frames: 1", "Frame Time: 0.01", " ".join(["0"] * n_channels)])
                    .index("LeftKnee") - 1)
    bent[knee + 2] = 30.0  # LeftKnee's channels: Zrotation Yrotation Xrotation
    rows = [" ".join(["0"] * n_channels), " ".join(f"{v:g}" for v in bent)]
    bvh = parse_bvh(lines + ["MOTION", "Frames: 2", "Frame Time: 0.0083333"] + rows)
    heads, names = bone_heads(*rt.retarget(bvh))
    knee_k, foot_k = names.index("lowerleg01.L"), names.index("foot.L")
    before, after = heads[0, foot_k] - heads[0, knee_k], heads[1, foot_k] - heads[1, knee_k]
    angle = np.radians(30.0)
    about_x = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(after, about_x @ before, atol=1e-6)
    assert after[1] > before[1]  # the shin swings backwards (Anny's forward is -Y)
    moved = np.linalg.norm(heads[1] - heads[0], axis=1) > 1e-9
    leg = {n for n in names if n.endswith(".L") and (n.startswith(("foot", "toe", "lowerleg02")))}
    assert {names[k] for k in np.flatnonzero(moved)} == leg


@pytest.fixture(scope="module")
def walking(walk):
    """The walking part of 131_01 (4.6 s to 6.0 s) at 60 fps, and all of it at 30 fps."""
    walk_frames = rt.frame_indices(walk, 84, 60.0, 4.6)
    whole = rt.frame_indices(walk, 248, 30.0, 0.0)
    return rt.retarget(walk, walk_frames), rt.retarget(walk, whole)


def test_retargeted_walk_keeps_the_feet_on_the_ground_and_the_legs_alternate(walking):
    (pose, rotation, translation), whole = walking
    names, _, rest, _ = rt._anny_arrays()
    feet = [names.index("foot.L"), names.index("foot.R")]
    rest_height = rest[feet[0], 2, 3]
    all_heads, _ = bone_heads(*whole)
    assert abs(all_heads[:, feet, 2].min() - rest_height) < 0.05  # over the whole clip (it crouches once)
    heads, _ = bone_heads(pose, rotation, translation)
    lowest = heads[:, feet, 2].min(axis=1)  # one foot is always near the ground while walking
    assert np.all(np.abs(lowest - rest_height) < 0.03)
    assert heads[:, feet, 2].max() > rest_height + 0.1  # and the other one lifts
    angles = []
    for side in "LR":
        thigh = heads[:, names.index(f"lowerleg01.{side}")] - heads[:, names.index(f"upperleg01.{side}")]
        heading = rotation[:, 2]  # forward in the body's frame: Rz(-heading) applied to -Y
        forward = np.stack([np.sin(heading), -np.cos(heading), np.zeros_like(heading)], axis=1)
        angles.append(np.degrees(np.arctan2(np.sum(thigh * forward, axis=1), -thigh[:, 2])))
    assert np.ptp(angles[0]) > 30 and np.ptp(angles[1]) > 30
    assert np.corrcoef(angles[0], angles[1])[0, 1] < -0.5
    assert np.isfinite(pose).all() and np.linalg.norm(translation[-1, :2] - translation[0, :2]) > 1.5  # it travels


def test_limb_directions_follow_the_capture(walk, walking):
    """Rest alignment: every aligned Anny limb bone points where its BVH bone points (compared by
    the angle to the vertical, which the heading does not change)."""
    (pose, rotation, translation), _ = walking
    heads, names = bone_heads(pose, rotation, translation)
    _, positions = walk.global_transforms()
    positions = positions[rt.frame_indices(walk, 84, 60.0, 4.6)]
    checked = 0
    for joint, (bones, pair) in rt.JOINT_MAP.items():
        if pair is None:
            continue
        anny_dir = heads[:, names.index(pair[1])] - heads[:, names.index(bones[0])]
        bvh_dir = (rt.AXES @ (positions[:, walk.index(pair[0])] - positions[:, walk.index(joint)]).T).T
        np.testing.assert_allclose(anny_dir[:, 2] / np.linalg.norm(anny_dir, axis=1),
                                   bvh_dir[:, 2] / np.linalg.norm(bvh_dir, axis=1), atol=1e-6, err_msg=joint)
        checked += 1
    assert checked == 12


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:-1] + [lines[-1] + " 0.5"], "frame 994 has 97 values, the hierarchy has 96 channels"),
    (lambda lines: lines[:-1] + [lines[-1].replace(lines[-1].split()[3], "abc", 1)], "not a number"),
    (lambda lines: [line.replace("CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 4 Zrotation Yrotation Xrotation", 1)
                    for line in lines], "CHANNELS says 4 channels but names 3"),
    (lambda lines: [line for line in lines if not line.startswith("Frame Time")], "expected 'Frame Time:'"),
    (lambda lines: lines[:-5], "'Frames: 995' but only 990 frame rows"),
    (lambda lines: lines[:100], "no MOTION section"),
])
def test_bad_bvh_raises_input_error_naming_the_file(tmp_path, edit, message):
    lines = Path(WALK).read_text().splitlines()
    bad = tmp_path / "bad.bvh"
    bad.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(InputError) as error:
        read_bvh(str(bad))
    assert len(error.value.problems) == 1 and str(bad) in error.value.problems[0] and message in error.value.problems[0]
    with pytest.raises(InputError, match="not found"):
        read_bvh(str(tmp_path / "missing.bvh"))


def test_line_numbers_are_reported(tmp_path):
    lines = Path(WALK).read_text().splitlines()
    lines[11] = "\t\t\tOFFSET 0.070429 x 0.040477"
    bad = tmp_path / "bad.bvh"
    bad.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"bad.bvh: line 12: OFFSET"):
        read_bvh(str(bad))


def no_hips_bvh(tmp_path) -> str:
    text = Path(WALK).read_text().replace("ROOT Hips", "ROOT Pelvis")
    path = tmp_path / "no_hips.bvh"
    path.write_text(text)
    return str(path)


def test_a_clip_without_the_mapped_joints_is_refused(tmp_path):
    with pytest.raises(InputError, match="lacks the joint.* Hips"):
        rt.retarget(read_bvh(no_hips_bvh(tmp_path)))


def test_synth_cli_exits_2_on_a_clip_without_hips(tmp_path, capsys):
    from experiments.synth import main

    no_hips = no_hips_bvh(tmp_path)
    cfg = tmp_path / "synth.yaml"
    cfg.write_text("n_frames: 4\nresolution: [32, 32]\nmotion:\n  bvh: no_hips.bvh\n")
    assert main(["--cfg", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and no_hips in err[0] and "Hips" in err[0]


def test_too_short_a_clip_is_refused(walk):
    with pytest.raises(InputError, match="131_01.bvh: 400 frames at 30 fps"):
        rt.frame_indices(walk, 400, 30.0, 0.0)


def test_synth_config_with_a_bvh_generates_a_sequence(tmp_path):
    from ngdjax.config import load_config
    from ngdjax.data import synthetic

    cfg = tmp_path / "synth.yaml"
    os.symlink(os.path.abspath(WALK), tmp_path / "walk.bvh")
    cfg.write_text("n_frames: 4\nresolution: [32, 32]\ntarget_edge_length: 0.04\n"
                   "motion:\n  bvh: walk.bvh\n  bvh_fps: 10\n  bvh_start_s: 4.6\n")
    config = load_config(str(cfg), synthetic.SynthConfig)
    assert config.motion.bvh == str(tmp_path / "walk.bvh")
    sequence = synthetic.generate(config)
    assert sequence.images.shape == (4, 32, 32, 3) and sequence.masks.any(axis=(1, 2)).all()
    expected = rt.retarget(read_bvh(WALK), rt.frame_indices(read_bvh(WALK), 4, 10.0, 4.6))
    np.testing.assert_allclose(sequence.motion.pose, expected[0])
    np.testing.assert_allclose(sequence.motion.translation[:, :2], 0.0)  # in place by default
    np.testing.assert_allclose(sequence.motion.translation[:, 2], expected[2][:, 2])
    assert np.ptp(sequence.body_vertices[:, :, 1], axis=0).max() > 0.1  # the body moves
