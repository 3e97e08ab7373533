"""Dataset converters on tiny folders built here in the published layouts: 4D-DRESS takes
(eth-ait/4d-dress dataset/README.md) and PeopleSnapshot subjects preprocessed by InstantAvatar.

The fake scans are two fronto-parallel quads whose pixel footprints are known exactly: a garment
quad and, in front of part of it, a skin quad; so the rendered garment masks and occluders, the
camera conversion and the GT meshes are checked against values computed independently here.
"""

import logging
import os
import pickle

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from experiments.convert import main as convert_main
from ngdjax.data.dress4d import convert_dress4d
from ngdjax.data.loader import load_sequence
from ngdjax.data.people_snapshot import convert_people_snapshot
from ngdjax.errors import InputError
from ngdjax.io import read_mesh

HEIGHT, WIDTH = 32, 24
K = np.array([[30.0, 0.0, 10.6], [0.0, 28.0, 14.1], [0.0, 0.0, 1.0]])
ROTATION = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
TRANSLATION = np.array([0.1, -0.2, 0.4])
SCAN_FRAMES = ["00011", "00012", "00013"]
# Pixel rectangles (columns c0..c1, rows r0..r1 inclusive) per frame, and depths in metres.
GARMENT_RECTS = {"00011": (4, 17, 3, 26), "00012": (5, 18, 4, 27), "00013": (4, 17, 3, 26)}
SKIN_RECT, GARMENT_DEPTH, SKIN_DEPTH = (12, 21, 6, 11), 2.0, 1.5


def _pickle(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        pickle.dump(data, file)


def _png(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def _project(points_world, intrinsics=K):
    """OpenCV pixel coordinates (N, 2) of world points: K (R x + t)."""
    camera = points_world @ ROTATION.T + TRANSLATION
    pixels = camera @ intrinsics.T
    return pixels[:, :2] / pixels[:, 2:]


def _quad(rect, depth):
    """World vertices (4, 3) of a camera-facing quad whose pixel footprint is ``rect`` exactly
    (its edges half a pixel outside the outer pixel centres)."""
    c0, c1, r0, r1 = rect
    uv = np.array([[c0 - 0.5, r0 - 0.5], [c1 + 0.5, r0 - 0.5], [c1 + 0.5, r1 + 0.5], [c0 - 0.5, r1 + 0.5]])
    camera = np.concatenate([uv, np.ones((4, 1))], axis=1) @ np.linalg.inv(K).T * depth
    return (camera - TRANSLATION) @ ROTATION  # R^T (x - t), row-wise


def _rect_mask(rect):
    c0, c1, r0, r1 = rect
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[r0:r1 + 1, c0:c1 + 1] = True
    return mask


def _template(directory):
    path = os.path.join(directory, "template.obj")
    trimesh.creation.icosphere(subdivisions=1, radius=0.3).export(path)
    return path


@pytest.fixture()
def take(tmp_path):
    """A 4D-DRESS take <subject>/<outfit>/<take> with three scan frames and two cameras."""
    root = str(tmp_path / "4D-DRESS" / "00122" / "Inner" / "Take2")
    rng = np.random.default_rng(0)
    _pickle(f"{root}/basic_info.pkl", {"scan_frames": SCAN_FRAMES, "rotation": np.eye(3), "offset": np.zeros(3)})
    extrinsics = np.concatenate([ROTATION, TRANSLATION[:, None]], axis=1)
    _pickle(f"{root}/Capture/cameras.pkl", {"0004": {"intrinsics": K, "extrinsics": extrinsics},
                                            "0028": {"intrinsics": K, "extrinsics": np.eye(4)[:3]}})
    images, smpl = {}, {}
    for name in SCAN_FRAMES:
        images[name] = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        _png(f"{root}/Capture/0004/images/capture-f{name}.png", images[name])
        _png(f"{root}/Capture/0004/masks/mask-f{name}.png", np.full((HEIGHT, WIDTH), 255, np.uint8))
        vertices = np.concatenate([_quad(GARMENT_RECTS[name], GARMENT_DEPTH), _quad(SKIN_RECT, SKIN_DEPTH)])
        faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
        _pickle(f"{root}/Meshes_pkl/mesh-f{name}.pkl", {
            "vertices": vertices, "faces": faces, "colors": np.zeros((8, 3)), "normals": np.zeros((8, 3)),
            "uvs": np.zeros((8, 2))})
        _pickle(f"{root}/Semantic/labels/label-f{name}.pkl", {"scan_labels": np.array([3, 3, 3, 3, 0, 0, 0, 0])})
        smpl[name] = {"global_orient": rng.normal(size=3), "body_pose": rng.normal(size=69),
                      "transl": rng.normal(size=3), "betas": rng.normal(size=10)}
        _pickle(f"{root}/SMPL/mesh-f{name}_smpl.pkl", smpl[name])
    return {"dir": root, "images": images, "smpl": smpl, "template": _template(str(tmp_path))}


def test_dress4d_round_trip(take, tmp_path):
    out = str(tmp_path / "sequence")
    convert_dress4d(take["dir"], out, camera_id="0004", garment="upper", template_path=take["template"],
                    frames=[11, 12], body_model_path=str(tmp_path / "SMPL_NEUTRAL.pkl"), render_backend="jax")
    sequence = load_sequence(out)
    names = ["00011", "00012"]
    assert sequence.frames == [11, 12] and sequence.resolution == (HEIGHT, WIDTH) and sequence.body_model == "smpl"
    assert sequence.body_model_path == str(tmp_path / "SMPL_NEUTRAL.pkl")
    np.testing.assert_array_equal(sequence.images, np.stack([take["images"][n] for n in names]))
    skin = _rect_mask(SKIN_RECT)
    for t, name in enumerate(names):
        garment = _rect_mask(GARMENT_RECTS[name])
        np.testing.assert_array_equal(sequence.masks[t], garment & ~skin)
        np.testing.assert_array_equal(sequence.occluders[t], garment & skin)
        vertices, faces = read_mesh(sequence.gt_mesh_paths[t])
        np.testing.assert_allclose(vertices, _quad(GARMENT_RECTS[name], GARMENT_DEPTH), atol=1e-6)
        np.testing.assert_array_equal(faces, [[0, 1, 2], [0, 2, 3]])
    for ours, theirs in (("pose", "body_pose"), ("global_rotation", "global_orient"), ("translation", "transl"),
                         ("shape", "betas")):
        np.testing.assert_allclose(getattr(sequence, ours), [take["smpl"][n][theirs] for n in names], rtol=1e-6)


def _pixels_of(points, mv, proj, width, height):
    """Pixel coordinates (N, 2) of world points through mv/proj, pixel c's centre at c (as OpenCV)."""
    clip = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ (proj @ mv).T
    ndc = clip[:, :2] / clip[:, 3:]
    assert (clip[:, 3] > 0).all()
    return np.stack([((ndc[:, 0] + 1) * width - 1) / 2, ((ndc[:, 1] + 1) * height - 1) / 2], axis=1)


def test_dress4d_camera_projects_like_opencv(take, tmp_path):
    out = str(tmp_path / "sequence")
    convert_dress4d(take["dir"], out, template_path=take["template"], frames=[13], render_backend="jax")
    sequence = load_sequence(out)
    points = _quad((0, 23, 0, 31), 2.5) + np.random.default_rng(1).normal(scale=0.05, size=(4, 3))
    np.testing.assert_allclose(_pixels_of(points, sequence.mv[0].astype(np.float64), sequence.proj[0], WIDTH, HEIGHT),
                               _project(points), atol=2e-3)
    assert (sequence.mv[0] @ np.append(points[0], 1))[2] < 0  # OpenGL view: in front means z < 0


def test_dress4d_missing_files_and_keys_are_named(take, tmp_path):
    os.remove(f"{take['dir']}/SMPL/mesh-f00012_smpl.pkl")
    _pickle(f"{take['dir']}/SMPL/mesh-f00011_smpl.pkl", {"global_orient": np.zeros(3), "body_pose": np.zeros(69),
                                                         "betas": np.zeros(10)})
    os.remove(f"{take['dir']}/Capture/0004/images/capture-f00013.png")
    with pytest.raises(InputError) as error:
        convert_dress4d(take["dir"], str(tmp_path / "out"), template_path=take["template"])
    assert sorted(error.value.problems) == sorted([
        f"{take['dir']}/SMPL/mesh-f00011_smpl.pkl: missing key 'transl'",
        f"{take['dir']}/SMPL/mesh-f00012_smpl.pkl: missing",
        f"{take['dir']}/Capture/0004/images/capture-f00013.png: missing"])
    assert not os.path.exists(tmp_path / "out")
    with pytest.raises(InputError, match=r"template_path is required.*not in the SMPL rest pose"):
        convert_dress4d(take["dir"], str(tmp_path / "out"))
    with pytest.raises(InputError, match=r"cameras.pkl: no camera '0099'"):
        convert_dress4d(take["dir"], str(tmp_path / "out"), camera_id="0099", template_path=take["template"])
    with pytest.raises(InputError, match=r"basic_info.pkl: frame 14 is not in 'scan_frames'"):
        convert_dress4d(take["dir"], str(tmp_path / "out"), template_path=take["template"], frames=[14])


@pytest.fixture()
def subject(tmp_path):
    """A PeopleSnapshot subject as InstantAvatar's preprocess_PeopleSnapshot.py writes it (3 frames)."""
    root = str(tmp_path / "PeopleSnapshot" / "female-3-casual")
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, HEIGHT, WIDTH, 3), dtype=np.uint8)
    masks = rng.random((3, HEIGHT, WIDTH)) > 0.5
    for i in range(3):
        _png(f"{root}/images/image_{i:04d}.png", images[i])
        os.makedirs(f"{root}/masks", exist_ok=True)
        np.save(f"{root}/masks/mask_{i:04d}.npy", masks[i].astype(np.uint8))
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = ROTATION, TRANSLATION
    np.savez(f"{root}/cameras.npz", intrinsic=K, extrinsic=w2c, height=HEIGHT, width=WIDTH)
    poses = {"betas": rng.normal(size=10), "thetas": rng.normal(size=(3, 72)), "transl": rng.normal(size=(3, 3))}
    np.savez(f"{root}/poses.npz", **poses)
    return {"dir": root, "images": images, "masks": masks, "poses": poses, "template": _template(str(tmp_path))}


def test_people_snapshot_round_trip(subject, tmp_path, caplog):
    out = str(tmp_path / "sequence")
    with caplog.at_level(logging.WARNING, logger="ngdjax"):
        convert_people_snapshot(subject["dir"], out, subject["template"], frames=[0, 2])
    assert "masks cover the whole body" in caplog.text
    sequence = load_sequence(out)
    assert sequence.frames == [0, 2] and sequence.gt_mesh_paths is None and sequence.occluders is None
    np.testing.assert_array_equal(sequence.images, subject["images"][[0, 2]])
    np.testing.assert_array_equal(sequence.masks, subject["masks"][[0, 2]])
    thetas = subject["poses"]["thetas"][[0, 2]]
    np.testing.assert_allclose(sequence.global_rotation, thetas[:, :3], rtol=1e-6)
    np.testing.assert_allclose(sequence.pose, thetas[:, 3:], rtol=1e-6)
    np.testing.assert_allclose(sequence.translation, subject["poses"]["transl"][[0, 2]], rtol=1e-6)
    np.testing.assert_allclose(sequence.shape, np.tile(subject["poses"]["betas"], (2, 1)), rtol=1e-6)
    points = _quad((0, 23, 0, 31), 3.0)
    np.testing.assert_allclose(_pixels_of(points, sequence.mv[0].astype(np.float64), sequence.proj[0], WIDTH, HEIGHT),
                               _project(points), atol=2e-3)


def test_people_snapshot_garment_masks_and_resize(subject, tmp_path, caplog):
    garment = np.zeros((HEIGHT, WIDTH), np.uint8)
    garment[8:20, 6:18] = 255
    for i in range(3):
        _png(str(tmp_path / "garment" / f"{i:04d}.png"), garment)
    out = str(tmp_path / "sequence")
    with caplog.at_level(logging.WARNING, logger="ngdjax"):
        code = convert_main(["people_snapshot", subject["dir"], out, "--template", subject["template"],
                             "--garment-masks", str(tmp_path / "garment"), "--frames", "1", "--size", "16", "12"])
    assert code == 0 and "whole body" not in caplog.text
    sequence = load_sequence(out)
    assert sequence.resolution == (16, 12)
    np.testing.assert_array_equal(sequence.masks[0], garment[::2, ::2] > 0)
    points = _quad((0, 23, 0, 31), 3.0)  # the same point, at half the resolution: (u + 0.5) / 2 - 0.5
    np.testing.assert_allclose(_pixels_of(points, sequence.mv[0].astype(np.float64), sequence.proj[0], 12, 16),
                               (_project(points) + 0.5) / 2 - 0.5, atol=2e-3)


def test_people_snapshot_missing_keys_and_files(subject, tmp_path, capsys):
    np.savez(f"{subject['dir']}/poses.npz", betas=np.zeros(10), transl=np.zeros((3, 3)))
    os.remove(f"{subject['dir']}/masks/mask_0001.npy")
    code = convert_main(["people_snapshot", subject["dir"], str(tmp_path / "out"), "--template", subject["template"]])
    assert code == 2
    assert f"{subject['dir']}/poses.npz: missing key 'global_orient'" in capsys.readouterr().err
    np.savez(f"{subject['dir']}/poses.npz", **subject["poses"])
    with pytest.raises(InputError) as error:
        convert_people_snapshot(subject["dir"], str(tmp_path / "out"), subject["template"])
    assert error.value.problems == [f"{subject['dir']}/masks/mask_0001.npy: missing"]
    with pytest.raises(InputError, match=r"poses.npz: no pose for frame 7"):
        convert_people_snapshot(subject["dir"], str(tmp_path / "out"), subject["template"], frames=[7])


def test_cli_reports_missing_take(tmp_path, capsys):
    code = convert_main(["dress4d", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "template_path is required" in err and f"{tmp_path / 'nowhere'}: not a directory" in err
