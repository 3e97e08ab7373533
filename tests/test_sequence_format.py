import os
import re

import numpy as np
import pytest
import trimesh
import yaml

from experiments import validate
from ngdjax import procedural
from ngdjax.data.sequence import FORMAT, frame_name, validate_sequence
from ngdjax.io import write_image

FRAMES = [0, 1, 5]


def _make_sequence(directory) -> str:
    """A small valid sequence: 3 frames of 12x16 pixels."""
    directory = str(directory)
    vertices, faces = procedural.garment(200)
    trimesh.Trimesh(vertices, faces, process=False).export(os.path.join(directory, "template.obj"))
    metadata = dict(format=FORMAT, body_model="anny", resolution=[12, 16], frames=FRAMES, template="template.obj")
    with open(os.path.join(directory, "sequence.yaml"), "w") as file:
        yaml.safe_dump(metadata, file)
    n = len(FRAMES)
    np.savez(os.path.join(directory, "body.npz"), shape=np.zeros(6), pose=np.zeros((n, 30)),
             global_rotation=np.zeros((n, 3)), translation=np.zeros((n, 3)))
    np.savez(os.path.join(directory, "camera.npz"), mv=np.eye(4), proj=np.eye(4))
    mask = np.zeros((12, 16), np.uint8)
    mask[3:9, 4:12] = 255
    for index in FRAMES:
        write_image(os.path.join(directory, "frames", frame_name(index, ".png")), np.full((12, 16, 3), 90, np.uint8))
        write_image(os.path.join(directory, "masks", frame_name(index, ".png")), mask)
    return directory


def test_sound_files_have_no_problems_and_cli_checks_the_body_parameters(tmp_path, capsys):
    directory = _make_sequence(tmp_path)
    assert validate_sequence(directory) == []
    # The files are sound but the parameters are not the built-in Anny body's (the camera check
    # runs only on parameters that fit the body model; tests/test_camera_check.py covers it).
    assert validate.main([directory]) == 2
    err = capsys.readouterr().err
    assert "body.npz: pose has shape (3, 30), expected (T, 192)" in err
    assert "body.npz: shape must be empty for the built-in Anny body" in err and "2 problem(s)" in err


def test_every_problem_is_reported_with_its_file(tmp_path, capsys):
    directory = _make_sequence(tmp_path)
    os.remove(os.path.join(directory, "frames", "0001.png"))
    write_image(os.path.join(directory, "masks", "0005.png"), np.zeros((12, 16), np.uint8))
    write_image(os.path.join(directory, "frames", "0005.png"), np.zeros((10, 16, 3), np.uint8))
    np.savez(os.path.join(directory, "body.npz"), shape=np.zeros(6), pose=np.full((3, 30), np.nan),
             global_rotation=np.zeros((3, 3)), translation=np.zeros((3, 3)), betas=np.zeros(10))
    with open(os.path.join(directory, "sequence.yaml")) as file:
        metadata = yaml.safe_load(file)
    problems_before_metadata = validate_sequence(directory)
    expected = [
        r"frames/0001\.png: missing",
        r"frames/0005\.png: size 16x10, expected 16x12",
        r"masks/0005\.png: the mask is empty",
        r"body\.npz: 'pose' has NaN/inf values, e.g. rows \[0, 1, 2\]",
        r"body\.npz: unknown key 'betas'",
    ]
    for pattern in expected:
        assert any(re.search(pattern, p) for p in problems_before_metadata), pattern
    assert len(problems_before_metadata) == len(expected)
    assert validate.main([directory]) == 2
    assert "5 problem(s)" in capsys.readouterr().err

    metadata["colour_space"] = "srgb"
    with open(os.path.join(directory, "sequence.yaml"), "w") as file:
        yaml.safe_dump(metadata, file)
    assert any("sequence.yaml: unknown key 'colour_space'" in p for p in validate_sequence(directory))


@pytest.mark.parametrize("name", ["sequence.yaml", "camera.npz", "template.obj"])
def test_missing_files_are_named(tmp_path, name):
    directory = _make_sequence(tmp_path)
    os.remove(os.path.join(directory, name))
    assert any(name in p and ("missing" in p or "not found" in p) for p in validate_sequence(directory))
