"""Fault model of a sequence: truncated, garbage and degenerate files each give problem lines
naming the file (never a traceback), a camera inconsistent with the body and the masks is caught
by :func:`ngdjax.data.camera_check.camera_problems`, and ground-truth meshes are optional per frame."""

import dataclasses
import logging
import os
import re
import shutil

import numpy as np
import pytest
import yaml

from experiments import validate
from ngdjax.body.model import load_body
from ngdjax.data import synthetic
from ngdjax.data.camera_check import MAX_NAMED, camera_problems
from ngdjax.data.loader import load_sequence
from ngdjax.data.sequence import validate_sequence
from ngdjax.evaluation import evaluate_meshes
from ngdjax.io import read_mesh


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A tiny valid synthetic sequence on disk (4 frames of 64x64), generated once per module."""
    directory = str(tmp_path_factory.mktemp("synthetic"))
    config = synthetic.SynthConfig(seed=5, garment="skirt", n_frames=4, resolution=(64, 64), target_edge_length=0.03)
    synthetic.write(synthetic.generate(config), directory)
    return directory


@pytest.fixture(scope="module")
def loaded(generated):
    return load_sequence(generated), load_body("anny")


@pytest.fixture
def copy(generated, tmp_path):
    """A fresh copy of the generated sequence to break."""
    directory = str(tmp_path / "sequence")
    shutil.copytree(generated, directory)
    return directory


def _edit_npz(path, **changes):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    np.savez(path, **{**arrays, **changes})


def _truncate(path):
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])


def test_the_untouched_sequence_passes(generated, loaded, capsys):
    sequence, body = loaded
    assert validate_sequence(generated) == []
    assert camera_problems(sequence, body) == []
    assert validate.main([generated]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")


def _zero_mv(directory):
    _edit_npz(os.path.join(directory, "camera.npz"), mv=np.zeros((4, 4), np.float32))


def _singular_proj(directory):
    with np.load(os.path.join(directory, "camera.npz")) as data:
        proj = data["proj"].copy()
    proj[3] = proj[2]  # w = z: rank 3
    _edit_npz(os.path.join(directory, "camera.npz"), proj=proj)


def _nan_proj_in_frame_2(directory):
    with np.load(os.path.join(directory, "camera.npz")) as data:
        proj = np.repeat(data["proj"][None], 4, axis=0)
    proj[2, 0, 0] = np.nan
    _edit_npz(os.path.join(directory, "camera.npz"), proj=proj)


def _zero_mv_in_frames_1_3(directory):
    with np.load(os.path.join(directory, "camera.npz")) as data:
        mv = np.repeat(data["mv"][None], 4, axis=0)
    mv[[1, 3]] = 0
    _edit_npz(os.path.join(directory, "camera.npz"), mv=mv)


def _garbage_body(directory):
    with open(os.path.join(directory, "body.npz"), "wb") as file:
        file.write(np.random.default_rng(0).bytes(500))


def _text_in_body_pose(directory):
    _edit_npz(os.path.join(directory, "body.npz"), pose=np.array([["x"] * 192] * 4))


def _nan_depth(directory):
    np.save(os.path.join(directory, "depth", "0003.npy"), np.full((64, 64), np.nan, np.float32))


BROKEN_FILES = {
    "all-zero mv": (_zero_mv, r"camera.npz: 'mv' is all zero$"),
    "singular proj": (_singular_proj, r"camera.npz: 'proj' is singular"),
    "NaN in proj": (_nan_proj_in_frame_2, r"camera.npz: 'proj' has NaN/inf values in 1 frame\(s\), e.g. frames \[2\]"),
    "per-frame zero mv": (_zero_mv_in_frames_1_3, r"camera.npz: 'mv' is all zero in 2 frame\(s\), e.g. frames \[1, 3\]"),
    "truncated depth": (lambda d: _truncate(os.path.join(d, "depth", "0001.npy")), r"depth/0001.npy: could not be read"),
    "truncated mask": (lambda d: _truncate(os.path.join(d, "masks", "0002.png")), r"masks/0002.png: could not be read"),
    "truncated frame": (lambda d: _truncate(os.path.join(d, "frames", "0000.png")), r"frames/0000.png: could not be read"),
    "truncated template": (lambda d: _truncate(os.path.join(d, "template.obj")), r"template.obj: "),
    "truncated gt mesh": (lambda d: _truncate(os.path.join(d, "gt_meshes", "0001.obj")), r"gt_meshes/0001.obj: "),
    "garbage body.npz": (_garbage_body, r"body.npz: could not be read \(not an .npz archive"),
    "truncated camera.npz": (lambda d: _truncate(os.path.join(d, "camera.npz")), r"camera.npz: could not be read"),
    "text in body pose": (_text_in_body_pose, r"body.npz: 'pose' is not numeric"),
    "NaN depth": (_nan_depth, r"depth/0003.npy: NaN/inf values"),
}


@pytest.mark.parametrize("name", list(BROKEN_FILES))
def test_a_broken_file_gives_one_line_naming_it_and_exit_2(copy, name, capsys):
    breaking, pattern = BROKEN_FILES[name]
    breaking(copy)
    problems = validate_sequence(copy)
    assert len(problems) == 1 and re.search(pattern, problems[0]), problems
    assert validate.main([copy]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1 problem(s)" in err


def _focal_4x_too_small(sequence):
    proj = sequence.proj.copy()
    proj[:, :2, :2] /= 4
    return dataclasses.replace(sequence, proj=proj)


def _turned_away(sequence):
    half_turn = np.diag([-1.0, 1.0, -1.0, 1.0]).astype(np.float32)  # 180 degrees about the view's up axis
    return dataclasses.replace(sequence, mv=half_turn @ sequence.mv)


def _shifted_by_a_body_width(sequence):
    mv = sequence.mv.copy()
    mv[:, 0, 3] += 0.5  # metres, sideways in view space
    return dataclasses.replace(sequence, mv=mv)


@pytest.mark.parametrize("wrong", [_focal_4x_too_small, _shifted_by_a_body_width])
def test_a_camera_that_puts_the_mask_off_the_body_is_reported(loaded, wrong):
    sequence, body = loaded
    problems = camera_problems(wrong(sequence), body)
    # 4 frames, all off: MAX_NAMED named with the fraction and the hint, the rest counted in one line.
    assert len(problems) == MAX_NAMED + 1
    for frame, problem in enumerate(problems[:MAX_NAMED]):
        assert f"masks/{frame:04d}.png: only " in problem and "check camera.npz: focal length, principal point" in problem
    assert problems[-1].endswith("1 more frame(s) with the garment mask off the projected body, e.g. frames [3]")


def test_a_camera_turned_away_from_the_body_is_reported(loaded):
    sequence, body = loaded
    problems = camera_problems(_turned_away(sequence), body)
    assert len(problems) == 1
    assert "camera.npz: the body does not project into the image in 4 frame(s), e.g. frames [0, 1, 2, 3]" in problems[0]


def test_validate_runs_the_camera_check(copy, capsys):
    with np.load(os.path.join(copy, "camera.npz")) as data:
        proj = data["proj"].copy()
    proj[:2, :2] /= 4
    _edit_npz(os.path.join(copy, "camera.npz"), proj=proj)
    assert validate_sequence(copy) == []
    assert validate.main([copy]) == 2
    err = capsys.readouterr().err
    assert "masks/0000.png: only " in err and "4 problem(s)" in err and "Traceback" not in err


def test_a_missing_gt_mesh_is_allowed_and_evaluation_skips_its_frame(copy, caplog):
    os.remove(os.path.join(copy, "gt_meshes", "0002.obj"))
    assert validate_sequence(copy) == []
    sequence = load_sequence(copy)
    assert sequence.gt_mesh_paths[2] is None and sequence.gt_mesh_paths[1].endswith("gt_meshes/0001.obj")
    truth = {frame: read_mesh(path) for frame, path in zip(sequence.frames, sequence.gt_mesh_paths, strict=True)
             if path is not None}
    meshes = {**truth, 2: truth[1]}
    with caplog.at_level(logging.INFO, logger="ngdjax"):
        metrics = evaluate_meshes(meshes, sequence, n_samples=500)
    assert list(metrics["chamfer_x1e3"]["per_frame"]) == ["0000", "0001", "0003"]
    assert list(metrics["mask_iou"]["per_frame"]) == ["0000", "0001", "0002", "0003"]
    skipped = [r.getMessage() for r in caplog.records if "no ground-truth mesh" in r.getMessage()]
    assert len(skipped) == 1 and "1 frame(s) [2]" in skipped[0]


def test_a_missing_smpl_model_file_is_one_line_and_exit_2(copy, capsys):
    with open(os.path.join(copy, "sequence.yaml")) as file:
        metadata = yaml.safe_load(file)
    metadata.update(body_model="smpl", body_model_path="models/SMPL_NEUTRAL.pkl")
    with open(os.path.join(copy, "sequence.yaml"), "w") as file:
        yaml.safe_dump(metadata, file)
    assert validate.main([copy]) == 2
    err = capsys.readouterr().err
    assert "models/SMPL_NEUTRAL.pkl: SMPL model file not found" in err and "1 problem(s)" in err
