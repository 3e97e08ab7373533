"""Visibility of the truth garment (ngdjax/visibility.py) and the seen/unseen split metrics
(ngdjax.metrics.geometry_metrics with gt_seen), on hand-made scenes with known answers."""

import numpy as np
import pytest
import trimesh

from ngdjax import procedural
from ngdjax.camera import look_at, perspective
from ngdjax.metrics import (
    GEOMETRY_METRICS,
    SPLIT_METRICS,
    geometry_metrics,
    summarise,
)
from ngdjax.render.backend import get_renderer
from ngdjax.visibility import seen_faces, visible_faces

RESOLUTION = (64, 64)
PROJ = perspective(150, 150, 32, 32, 64, 64)  # a 1 m plane at 3 m spans 50 pixels
# A "body" far outside the view, for scenes where nothing but the garment occludes.
NO_BODY = (np.array([[100.0, 0, 0], [101, 0, 0], [100, 1, 0]]), np.array([[0, 1, 2]]))


def _visible(vertices, faces, eye, body=NO_BODY, tolerance_m=0.01):
    mv = look_at(eye, [0.0, 0.0, 0.0])
    return visible_faces(vertices, faces, *body, mv, PROJ, RESOLUTION, get_renderer("jax"), tolerance_m)


def _plane(n=17):
    vertices, faces = procedural.flat_grid(n)
    return vertices - np.array([0.5, 0.5, 0.0]), faces  # [-0.5, 0.5]^2 at z = 0, normal +z


def _centroids(vertices, faces):
    return vertices[faces].mean(axis=1)


@pytest.mark.parametrize("tolerance_m", [0.01, None])
def test_plane_is_visible_from_either_side(tolerance_m):
    vertices, faces = _plane()
    assert _visible(vertices, faces, [0.0, 0.0, 3.0], tolerance_m=tolerance_m).all()
    # Two-sided cloth: the back of the plane is seen too.
    assert _visible(vertices, faces, [0.0, 0.0, -3.0], tolerance_m=tolerance_m).all()


def test_cylinder_hides_its_back_half_and_two_opposite_cameras_see_everything():
    vertices, faces = procedural.open_cylinder(600, radius=0.15, height=0.5)
    z = _centroids(vertices, faces)[:, 2]
    # At 1.5 m a pixel is 1 cm: the thin faces near the silhouettes still cover a pixel or pass
    # the centroid test (at 3 m, 34 of the 442 front faces at z > 5 cm would not: docs of
    # ngdjax.visibility).
    front = _visible(vertices, faces, [0.0, 0.0, 1.5])
    assert front[z > 0.05].all() and not front[z < -0.05].any()
    back = _visible(vertices, faces, [0.0, 0.0, -1.5])
    assert back[z < -0.05].all() and not back[z > 0.05].any()
    assert not seen_faces(front[None]).all()
    # Two opposite perspective cameras miss the strips at the sides (grazing from both, truly
    # unseen); four cameras 90 degrees apart see everything.
    assert seen_faces(np.stack([front, back]))[np.abs(z) > 0.05].all()
    sides = [_visible(vertices, faces, [x, 0.0, 0.0]) for x in (1.5, -1.5)]
    assert seen_faces(np.stack([front, back, *sides])).all()


def test_body_in_front_of_a_plane_hides_the_part_behind_it():
    vertices, faces = _plane()
    box = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    body = (np.asarray(box.vertices) + np.array([0.0, 0.0, 0.5]), np.asarray(box.faces))
    centroid = _centroids(vertices, faces)
    behind = np.all(np.abs(vertices[faces][..., :2]) < 0.15, axis=(1, 2))  # every corner in the box's shadow
    clear = np.max(np.abs(centroid[:, :2]), axis=1) > 0.25
    assert behind.sum() > 10 and clear.sum() > 100
    for tolerance_m in (0.01, None):
        visible = _visible(vertices, faces, [0.0, 0.0, 3.0], body, tolerance_m)
        assert not visible[behind].any() and visible[clear].all()


def test_the_centroid_test_adds_faces_that_cover_no_pixel():
    # A fine plane far away: most faces are smaller than a pixel, none is hidden.
    vertices, faces = _plane(65)
    ids_only = _visible(vertices, faces, [0.0, 0.0, 12.0], tolerance_m=None)
    both = _visible(vertices, faces, [0.0, 0.0, 12.0])
    assert both.all() and ids_only.mean() < 0.5


def test_seen_faces_wants_frames_by_faces():
    assert seen_faces(np.array([[True, False, False], [False, False, True]])).tolist() == [True, False, True]
    with pytest.raises(ValueError):
        seen_faces(np.ones(3, bool))


# --- split metrics --------------------------------------------------------------------------------


def _two_patches():
    """A 1 x 1 m patch in z = 0 (faces 0..F0-1) and a 0.5 x 0.5 m patch in the plane x = 0.5
    (normal x), perpendicular to it and 0.5 m from it. The sampling noise of how many samples
    fall on each patch moves the clouds' means along the line between the patches' centres,
    which lies in both patches' planes."""
    a, fa = procedural.flat_grid(11)
    b, fb = procedural.flat_grid(6)
    b = np.stack([np.full(len(b), 0.5), 1.5 + 0.5 * b[:, 0], 0.5 * b[:, 1]], axis=1)
    return np.concatenate([a, b]), np.concatenate([fa, fb + len(a)]), len(fa)


def test_split_equals_the_whole_when_everything_is_seen():
    vertices, faces, _ = _two_patches()
    pred = vertices + np.array([0.0, 0.0, 0.003])
    whole = geometry_metrics(pred, faces, vertices, faces, 4000, seed=2)
    split = geometry_metrics(pred, faces, vertices, faces, 4000, seed=2, gt_seen=np.ones(len(faces), bool))
    assert list(split) == list(GEOMETRY_METRICS) + list(SPLIT_METRICS)
    for name in GEOMETRY_METRICS:
        seen = name.replace("_x1e3", "_seen_x1e3") if name.endswith("_x1e3") else f"{name}_seen"
        unseen = seen.replace("_seen", "_unseen")
        assert split[seen] == pytest.approx(whole[name], rel=1e-12)
        assert np.isnan(split[unseen])
    assert split["unseen_fraction"] == 0.0


def test_a_shift_of_the_unseen_part_shows_only_in_the_unseen_metrics():
    vertices, faces, n_first = _two_patches()
    seen = np.arange(len(faces)) < n_first  # the big patch seen, the small one never
    shifted = vertices.copy()
    shifted[vertices[:, 1] > 1.2, 0] += 0.02  # the unseen patch moves 2 cm along its normal
    exact = geometry_metrics(vertices, faces, vertices, faces, 40_000, seed=2, gt_seen=seen)
    moved = geometry_metrics(shifted, faces, vertices, faces, 40_000, seed=2, gt_seen=seen)
    assert exact["unseen_fraction"] == pytest.approx(0.25 / 1.25)
    # After centring the patch is 2 cm x (1 - 0.2) = 16 mm off: 2 x 0.016^2 x 1000 = 0.51 over the
    # floor, give or take the noise of the sample means along x (~2 mm between the clouds).
    assert 0.25 < moved["chamfer_unseen_x1e3"] - exact["chamfer_unseen_x1e3"] < 0.8
    assert moved["fscore_1cm_unseen"] < 0.05 and exact["fscore_1cm_unseen"] > 0.95
    # The seen patch only slides within its own plane (by the 4 mm that the mean moved).
    assert moved["chamfer_seen_x1e3"] == pytest.approx(exact["chamfer_seen_x1e3"], abs=0.01)
    assert moved["fscore_1cm_seen"] == pytest.approx(exact["fscore_1cm_seen"], abs=0.02)
    assert moved["normal_consistency_seen"] == pytest.approx(exact["normal_consistency_seen"], abs=0.01)


def test_split_rejects_a_mask_of_the_wrong_length():
    vertices, faces, _ = _two_patches()
    with pytest.raises(ValueError):
        geometry_metrics(vertices, faces, vertices, faces, 100, gt_seen=np.ones(3, bool))


def test_summarise_skips_nan_frames():
    result = summarise({"chamfer_unseen_x1e3": {0: float("nan"), 4: 2.0}, "fscore_1cm_unseen": {0: float("nan")}})
    assert result == {"chamfer_unseen_x1e3": {"mean": 2.0, "per_frame": {"0004": 2.0}},
                      "fscore_1cm_unseen": {"mean": None, "per_frame": {}}}
