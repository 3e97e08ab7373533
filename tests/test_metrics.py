"""Metrics (ngdjax/metrics.py), per-frame evaluation (ngdjax/evaluation.py) and the
``python -m experiments.evaluate`` command, against brute-force and hand-computed values."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.evaluate import main as evaluate_main
from ngdjax import procedural
from ngdjax.body.model import POSE_SIZES
from ngdjax.camera import look_at, perspective
from ngdjax.data.loader import load_sequence, write_sequence
from ngdjax.evaluation import evaluate_meshes, silhouette_renderer
from ngdjax.io import write_mesh
from ngdjax.metrics import (
    compare_point_clouds,
    geometry_metrics,
    mask_iou,
    psnr_masked,
    sample_surface,
    ssim_masked,
    summarise,
)
from ngdjax.render.backend import get_renderer
from ngdjax.render.topology import antialias_topology
from ngdjax.ssim import ssim

# --- geometry -------------------------------------------------------------------------------------


def test_sampling_is_area_weighted_with_face_normals():
    # Two triangles in the planes z = 0 (area 0.5, normal +z) and x = 2 (area 1.5, normal -x).
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [2, 0, 1], [2, 3, 0]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    points, normals = sample_surface(vertices, faces, 20_000, seed=3)
    on_first = np.isclose(points[:, 2], 0.0) & (points[:, 0] < 1.5)
    assert np.all(on_first | np.isclose(points[:, 0], 2.0))
    assert abs(np.mean(on_first) - 0.25) < 0.01  # binomial std 0.003
    np.testing.assert_allclose(normals[on_first], np.tile([0, 0, 1.0], (on_first.sum(), 1)), atol=1e-12)
    np.testing.assert_allclose(normals[~on_first], np.tile([-1.0, 0, 0], ((~on_first).sum(), 1)), atol=1e-12)
    again, _ = sample_surface(vertices, faces, 20_000, seed=3)
    np.testing.assert_array_equal(points, again)


def _brute_force(pred, pred_normals, gt, gt_normals):
    """The contract's definitions with a full distance matrix."""
    pred, gt = pred - pred.mean(0), gt - gt.mean(0)
    distance = np.linalg.norm(pred[:, None, :] - gt[None, :, :], axis=-1)  # (N, M)
    nearest_gt, nearest_pred = distance.argmin(1), distance.argmin(0)
    d_pred, d_gt = distance.min(1), distance.min(0)
    precision, recall = np.mean(d_pred < 0.01), np.mean(d_gt < 0.01)
    return {
        "chamfer_x1e3": 1000 * (np.mean(d_pred**2) + np.mean(d_gt**2)),
        "normal_consistency": (np.mean(np.abs(np.sum(pred_normals * gt_normals[nearest_gt], 1)))
                               + np.mean(np.abs(np.sum(gt_normals * pred_normals[nearest_pred], 1)))) / 2,
        "fscore_1cm": 2 * precision * recall / (precision + recall),
    }


def test_point_cloud_metrics_match_brute_force():
    rng = np.random.default_rng(0)
    gt = rng.uniform(-0.05, 0.05, (300, 3))
    pred = gt[:250] + rng.normal(scale=0.006, size=(250, 3)) + np.array([0.3, -1.0, 2.0])
    unit = lambda n: n / np.linalg.norm(n, axis=1, keepdims=True)
    pred_normals, gt_normals = unit(rng.normal(size=(250, 3))), unit(rng.normal(size=(300, 3)))
    result = compare_point_clouds(pred, pred_normals, gt, gt_normals)
    expected = _brute_force(pred, pred_normals, gt, gt_normals)
    assert 0.1 < expected["fscore_1cm"] < 0.99  # the threshold matters for these clouds
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-12), name


def test_identical_and_translated_meshes_score_the_sampling_floor():
    vertices, faces = procedural.sphere(4, radius=0.3)
    same = geometry_metrics(vertices, faces, vertices, faces)
    moved = geometry_metrics(vertices, faces, vertices + np.array([0.5, -0.2, 1.0]), faces)
    for name in same:
        assert moved[name] == pytest.approx(same[name], abs=1e-9), name  # centring removes translation
    area = 4 * np.pi * 0.3**2
    floor = 2 * area / (np.pi * 10_000) * 1000  # independent Poisson samples, per module docstring
    assert 0.9 * floor < same["chamfer_x1e3"] < 1.5 * floor
    assert same["normal_consistency"] > 0.998


def test_scaled_copy_chamfer_is_the_radial_gap_plus_the_floor():
    vertices, faces = procedural.sphere(4, radius=0.3)
    floor = geometry_metrics(vertices, faces, vertices, faces)["chamfer_x1e3"]
    scaled = geometry_metrics(vertices, faces, 1.2 * vertices, faces)
    gap = 0.2 * 0.3  # every point's nearest neighbour on the other sphere is ~6 cm away radially
    assert scaled["chamfer_x1e3"] == pytest.approx(2 * gap**2 * 1000 + floor, rel=0.01)
    assert scaled["fscore_1cm"] == 0.0
    assert scaled["normal_consistency"] > 0.998  # concentric spheres: parallel normals


def test_fscore_is_one_for_identical_and_drops_with_noise():
    vertices, faces = procedural.sphere(3, radius=0.1)
    assert geometry_metrics(vertices, faces, vertices, faces)["fscore_1cm"] == 1.0
    noisy = vertices + np.random.default_rng(1).normal(scale=0.01, size=vertices.shape)
    result = geometry_metrics(noisy, faces, vertices, faces)
    assert result["fscore_1cm"] < 0.9 and result["normal_consistency"] < 0.95


# --- images ---------------------------------------------------------------------------------------


def test_mask_iou_ignores_occluded_pixels():
    pred = np.array([[0.9, 0.6, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 0.7]])  # covered: (0,0) (0,1) (1,1) (2,2)
    target = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]], bool)
    occluders = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1]], bool)
    # intersection (0,0) (1,1) (2,2); union adds (0,1) (1,0): 3/5; occluding (2,2) drops it from both: 2/4.
    assert mask_iou(pred, target) == pytest.approx(3 / 5)
    assert mask_iou(pred, target, occluders) == pytest.approx(2 / 4)
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2), bool)) == 1.0


def test_psnr_and_ssim_ignore_pixels_outside_the_mask():
    rng = np.random.default_rng(0)
    target = rng.random((24, 20, 3))
    mask = np.zeros((24, 20), bool)
    mask[4:18, 3:15] = True
    pred = np.clip(target + 0.05 * rng.normal(size=target.shape), 0, 1)
    changed = np.where(mask[..., None], pred, rng.random(pred.shape))
    expected_psnr = -10 * np.log10(np.mean((pred[mask] - target[mask]) ** 2))
    assert psnr_masked(pred, target, mask) == pytest.approx(expected_psnr, rel=1e-12)
    assert psnr_masked(changed, target, mask) == pytest.approx(expected_psnr, rel=1e-12)
    inside = mask[..., None]
    expected_ssim = float(ssim(jnp.asarray(pred * inside, jnp.float32), jnp.asarray(target * inside, jnp.float32)))
    assert ssim_masked(pred, target, mask) == pytest.approx(expected_ssim, abs=1e-6)
    assert ssim_masked(changed, target, mask) == pytest.approx(expected_ssim, abs=1e-6)
    assert ssim_masked(pred, target, mask) < ssim_masked(target, target, mask) == pytest.approx(1.0, abs=1e-6)


def test_summarise_layout():
    result = summarise({"chamfer_x1e3": {12: 0.5, 3: 1.5}, "mask_iou": {3: 0.9, 12: 0.7}})
    assert result == {
        "chamfer_x1e3": {"mean": 1.0, "per_frame": {"0003": 1.5, "0012": 0.5}},
        "mask_iou": {"mean": pytest.approx(0.8), "per_frame": {"0003": 0.9, "0012": 0.7}},
    }
    assert list(result["chamfer_x1e3"]["per_frame"]) == ["0003", "0012"]


# --- evaluation and the command line --------------------------------------------------------------

RESOLUTION = (32, 32)
FRAMES = [0, 3]


@pytest.fixture(scope="module")
def sequence_and_truth(tmp_path_factory):
    """A 2-frame 32x32 sequence whose masks are the ground-truth meshes' own silhouettes; frame 3
    has a "hand" occluding garment pixels (removed from its mask, set in its occluders)."""
    directory = tmp_path_factory.mktemp("sequence")
    vertices, faces = procedural.garment(300)
    truth = [(vertices, faces), (vertices * np.array([1.1, 0.95, 1.0]) + np.array([0.02, 0.03, 0.0]), faces)]
    mv = look_at([0.4, 0.1, 2.0], [0.0, 0.0, 0.0])
    proj = perspective(40, 40, 16, 16, *RESOLUTION)
    render = silhouette_renderer(get_renderer("jax"), RESOLUTION)
    topology = jnp.asarray(antialias_topology(faces))
    masks = np.stack([np.asarray(render(jnp.asarray(v, jnp.float32), jnp.asarray(f, jnp.int32), topology,
                                        jnp.asarray(mv, jnp.float32), jnp.asarray(proj, jnp.float32))) > 0.5
                      for v, f in truth])
    occluders = np.zeros_like(masks)
    occluders[1, 14:20, 10:22] = True
    assert masks[1][occluders[1]].sum() > 20  # the hand really covers garment pixels
    masks[1] &= ~occluders[1]
    rng = np.random.default_rng(0)
    write_sequence(
        str(directory), frames=FRAMES, images=rng.integers(0, 255, (2, *RESOLUTION, 3), dtype=np.uint8),
        masks=masks, occluders=occluders, mv=mv, proj=proj, shape=np.zeros(0), pose=np.zeros((2, POSE_SIZES["anny"])),
        global_rotation=np.zeros((2, 3)), translation=np.zeros((2, 3)), body_model="anny",
        template_vertices=vertices, template_faces=faces, gt_meshes=truth,
    )
    return str(directory), truth


def _write_run(directory, meshes):
    for frame, (vertices, faces) in zip(FRAMES, meshes, strict=True):
        write_mesh(str(directory / "meshes" / f"frame_{frame:04d}.obj"), vertices, faces)


def test_evaluate_meshes_prediction_equal_to_truth(sequence_and_truth):
    directory, truth = sequence_and_truth
    sequence = load_sequence(directory)
    metrics = evaluate_meshes(dict(zip(FRAMES, truth, strict=True)), sequence)
    assert list(metrics) == ["chamfer_x1e3", "normal_consistency", "fscore_1cm", "mask_iou"]
    assert list(metrics["mask_iou"]["per_frame"]) == ["0000", "0003"]
    assert metrics["mask_iou"]["mean"] == 1.0  # frame 3 only agrees because occluded pixels are ignored
    assert metrics["chamfer_x1e3"]["mean"] < 0.1  # the sampling floor (~0.03 for this 0.25 m^2 garment)
    assert metrics["normal_consistency"]["mean"] > 0.99 and metrics["fscore_1cm"]["mean"] > 0.99


def test_cli_scores_truth_better_than_a_shifted_fit(sequence_and_truth, tmp_path, capsys):
    directory, truth = sequence_and_truth
    _write_run(tmp_path / "exact", truth)
    shrunk = [(0.9 * v + np.array([0.0, 0.05, 0.0]), f) for v, f in truth]
    _write_run(tmp_path / "shrunk", shrunk)
    for run in ("exact", "shrunk"):
        assert evaluate_main(["--pred", str(tmp_path / run), "--gt", directory,
                              "--json", str(tmp_path / f"{run}.json")]) == 0
    out = capsys.readouterr().out
    assert "chamfer_x1e3" in out and "mask_iou" in out
    exact, shrunk = (json.loads((tmp_path / f"{run}.json").read_text()) for run in ("exact", "shrunk"))
    assert exact["mask_iou"]["mean"] >= 0.98 and exact["chamfer_x1e3"]["mean"] < 0.1
    assert exact["chamfer_seen_x1e3"]["mean"] < 0.1 and shrunk["chamfer_seen_x1e3"]["mean"] > 0.5  # body occluding
    assert shrunk["mask_iou"]["mean"] < 0.9 and shrunk["chamfer_x1e3"]["mean"] > 10 * exact["chamfer_x1e3"]["mean"]
    assert not list(tmp_path.glob("*.tmp*"))


def test_cli_bad_input_exits_2_naming_each_file_before_compiling(sequence_and_truth, tmp_path, capsys):
    directory, truth = sequence_and_truth
    compiles = []

    def listener(event, *args, **kwargs):
        if "compile" in event:
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        _check_bad_inputs(directory, truth, tmp_path, capsys)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def _check_bad_inputs(directory, truth, tmp_path, capsys):
    assert evaluate_main(["--pred", str(tmp_path / "nothing"), "--gt", directory]) == 2
    assert f"{tmp_path / 'nothing'}: not a directory" in capsys.readouterr().err
    (tmp_path / "run" / "meshes").mkdir(parents=True)
    assert evaluate_main(["--pred", str(tmp_path / "run"), "--gt", directory]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{tmp_path / 'run' / 'meshes' / f'frame_{i:04d}.obj'}: missing" for i in FRAMES]
    _write_run(tmp_path / "run", truth)
    (tmp_path / "run" / "meshes" / "frame_0003.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    assert evaluate_main(["--pred", str(tmp_path / "run"), "--gt", str(tmp_path / "no_sequence")]) == 2
    assert "no_sequence: not a directory" in capsys.readouterr().err
    assert evaluate_main(["--pred", str(tmp_path / "run"), "--gt", directory]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'run' / 'meshes' / 'frame_0003.obj'}: has NaN/inf vertices"
