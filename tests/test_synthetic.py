"""The synthetic benchmark (ngdjax.data.synthetic, python -m experiments.synth) on a tiny config."""

import dataclasses

import igl
import numpy as np
import pytest
import trimesh

from experiments import synth
from ngdjax.body.model import load_body
from ngdjax.data import synthetic
from ngdjax.data.loader import load_sequence
from ngdjax.data.motion import pose_features, primitive_poses
from ngdjax.data.sequence import validate_sequence
from ngdjax.errors import InputError
from ngdjax.io import read_mesh
from ngdjax.render.backend import get_renderer

TINY = synthetic.SynthConfig(seed=3, garment="skirt", n_frames=4, resolution=(64, 64), target_edge_length=0.028)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    sequence = synthetic.generate(TINY)
    directory = str(tmp_path_factory.mktemp("synth") / "sequence")
    synthetic.write(sequence, directory)
    return sequence, directory


def assert_gt_meshes_reproduce_the_masks(loaded, expected_faces: np.ndarray) -> None:
    """Every written ground-truth mesh of a loaded sequence has ``expected_faces`` and, rendered
    with the sequence's camera, gives its garment mask back (IoU >= 0.98)."""
    renderer = get_renderer("jax")
    for t in range(loaded.n_frames):
        vertices, faces = read_mesh(loaded.gt_mesh_paths[t])
        np.testing.assert_array_equal(faces, expected_faces)
        iou = synthetic.mask_round_trip_iou(renderer, vertices, faces, loaded.mv[t], loaded.proj[t],
                                            loaded.masks[t], loaded.occluders[t])
        assert iou >= 0.98, f"frame {t}: IoU {iou:.4f}"


def test_written_sequence_validates_and_its_gt_meshes_reproduce_the_masks(generated):
    _, directory = generated
    assert validate_sequence(directory) == []
    loaded = load_sequence(directory)
    assert loaded.n_frames == TINY.n_frames and loaded.resolution == TINY.resolution
    assert 600 < len(loaded.template_vertices) < 1000
    assert_gt_meshes_reproduce_the_masks(loaded, loaded.template_faces)
    # The written targets agree with each other: diffuse and depth only on the mask, occluders off it.
    assert np.all(loaded.diffuse[~loaded.masks] == 0) and np.all(loaded.depth[~loaded.masks] == 0)
    assert np.all(loaded.depth[loaded.masks] > 1.0) and not np.any(loaded.occluders & loaded.masks)


def test_difficulty_floors_of_the_contract(generated):
    sequence, _ = generated
    measured = synthetic.measure_difficulty(sequence)
    assert measured["static_rms_m"] >= 0.03
    assert measured["fold_amplitude_m"] >= 0.01
    assert measured["fold_change_m"] >= 0.003
    assert measured["hem_sway_m"] >= 0.05
    assert measured["occluded_frames"] >= 1
    assert measured["texture_edge_fraction"] >= 0.02 and measured["texture_gradient"] >= 0.05


def test_true_garment_never_sinks_into_the_posed_body(generated):
    sequence, _ = generated
    body_faces = np.asarray(load_body("anny").triangles, np.int64)
    for gt, body in zip(sequence.gt_vertices, sequence.body_vertices.astype(np.float64), strict=True):
        inside = igl.fast_winding_number(body, body_faces, gt) > 0.5
        assert inside.sum() == 0


def test_dynamics_are_a_function_of_the_pose_alone(generated):
    sequence, _ = generated
    frame = sequence.frame
    features = pose_features(sequence.motion.pose, primitive_poses(frame))
    np.testing.assert_allclose(features, sequence.motion.coefficients, atol=1e-12)
    local = (sequence.true_vertices - frame.origin) @ frame.axes.T
    offsets = synthetic.dynamic_offsets("skirt", local, sequence.true_faces, features, TINY.motion, TINY.difficulty)
    again = synthetic.dynamic_offsets("skirt", local, sequence.true_faces, features[::-1], TINY.motion,
                                      TINY.difficulty)[::-1]
    np.testing.assert_allclose(offsets, again)  # per frame, no dependence on time or order
    assert np.abs(offsets).max() > 0.01


def test_truth_on_its_own_mesh_keeps_the_surface_and_is_written_with_its_faces(generated, tmp_path):
    """``truth_edge_length``: the true garment is meshed apart from the template (other vertices
    and faces), yet it is the same garment: the static difference is measured as before, the
    written ground truth carries the truth's own faces and still reproduces the masks."""
    sequence, _ = generated
    own = synthetic.generate(dataclasses.replace(TINY, truth_edge_length=0.018))
    assert len(own.true_faces) > 2 * len(own.faces) and own.gt_vertices.shape[1] == len(own.true_vertices)
    np.testing.assert_array_equal(own.template_vertices, sequence.template_vertices)
    np.testing.assert_array_equal(own.template_truth, sequence.template_truth)
    # The same surface: the finer truth's vertices lie on the template-meshed truth, up to the
    # coarser mesh's chords (a small fraction of its edge length).
    coarse = trimesh.Trimesh(sequence.true_vertices, sequence.true_faces, process=False)
    distance = np.abs(trimesh.proximity.signed_distance(coarse, own.true_vertices))
    assert distance.max() < 0.3 * TINY.target_edge_length and np.median(distance) < 0.002
    directory = str(tmp_path / "own")
    synthetic.write(own, directory)
    assert_gt_meshes_reproduce_the_masks(load_sequence(directory), own.true_faces)
    assert synthetic.measure_difficulty(own)["static_rms_m"] >= 0.03
    with pytest.raises(InputError, match="'truth_edge_length' must be positive"):
        synthetic.check_config(dataclasses.replace(TINY, truth_edge_length=0.0))


def test_same_seed_same_sequence_and_another_seed_another(generated):
    sequence, _ = generated
    again = synthetic.generate(TINY)
    for field in ("images", "masks", "occluders", "diffuse", "depth", "gt_vertices", "template_vertices"):
        np.testing.assert_array_equal(getattr(again, field), getattr(sequence, field), err_msg=field)
    other = synthetic.generate(dataclasses.replace(TINY, seed=4))
    assert not np.array_equal(other.images, sequence.images)


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("garment: skirt\nn_frames: 4\ndifficulty:\n  fold_amplitude: 0.02\n")
    assert synth.main(["--cfg", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "unknown key 'difficulty.fold_amplitude'" in capsys.readouterr().err
    assert synth.main(["--cfg", str(config), "--out", str(tmp_path / "out"), "difficulty.fold_amplitude=0.1",
                       "n_frames=0"]) == 2
    with pytest.raises(InputError, match="'n_frames' must be positive"):
        synthetic.check_config(dataclasses.replace(TINY, n_frames=0))
    with pytest.raises(InputError, match="'resolution'"):
        synthetic.check_config(dataclasses.replace(TINY, resolution=(0, 64)))
    assert not (tmp_path / "out").exists()
