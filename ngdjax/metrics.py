"""Evaluation metrics, defined as in docs/contracts.md (section 4, metrics.json); host numpy.

Geometry (world space, metres), on ``n`` area-weighted uniform samples per mesh, each cloud
centred on its own mean (removing the global translation error, as the NGD protocol does):

- ``chamfer_x1e3``: mean squared nearest-neighbour distance pred->gt plus gt->pred, x 1000
  (unit 1e-3 m^2);
- ``normal_consistency``: mean over both directions of |cos| between a sample's face normal and
  the face normal of its nearest neighbour in the other cloud;
- ``fscore_1cm``: harmonic mean of precision (pred samples within 1 cm of gt) and recall (gt
  samples within 1 cm of pred).

The two meshes are sampled independently (seeds ``seed`` and ``seed + 1``), so even identical
meshes score a sampling floor: for Poisson samples of density n/A the mean squared distance to the
other cloud is A/(pi n) per direction, e.g. chamfer_x1e3 = 2 A/(pi n) x 1000 ~ 0.032 for a 0.5 m^2
garment at n = 10,000.

Seen/unseen split (:func:`geometry_metrics` with ``gt_seen``, :data:`SPLIT_METRICS`): the same three
metrics on the same samples, centred on the whole clouds' means and matched in the whole other
cloud, averaged over the samples of one class only (a gt sample takes the seen flag of its face,
a pred sample that of its nearest gt sample), with ``unseen_fraction`` the area fraction of the
gt faces never seen (:mod:`ngdjax.visibility`). A class without samples gives NaN, which
:func:`summarise` leaves out.

Images: ``mask_iou`` (silhouette > 0.5 vs the target mask, occluder pixels ignored),
``psnr_masked`` and ``ssim_masked`` (over the target garment mask). :func:`summarise` gives the
metrics.json layout ``{name: {"mean": x, "per_frame": {"0000": x, ...}}}``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import trimesh
from jaxtyping import Bool, Float, Int
from scipy.spatial import cKDTree

from ngdjax.ssim import ssim

FSCORE_THRESHOLD_M = 0.01
N_SAMPLES = 10_000
GEOMETRY_METRICS = ("chamfer_x1e3", "normal_consistency", "fscore_1cm")
SPLIT_METRICS = ("chamfer_seen_x1e3", "chamfer_unseen_x1e3", "normal_consistency_seen", "normal_consistency_unseen",
                 "fscore_1cm_seen", "fscore_1cm_unseen", "unseen_fraction")


def sample_surface(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], n: int, seed: int
) -> tuple[Float[np.ndarray, "n 3"], Float[np.ndarray, "n 3"]]:
    """``n`` points uniform over the surface (faces chosen by area) and their unit face normals.

    Returns:
        points (n, 3) and normals (n, 3), float64; the same ``seed`` gives the same samples.
    """
    points, normals, _ = sample_surface_faces(vertices, faces, n, seed)
    return points, normals


def sample_surface_faces(
    vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], n: int, seed: int
) -> tuple[Float[np.ndarray, "n 3"], Float[np.ndarray, "n 3"], Int[np.ndarray, " n"]]:
    """:func:`sample_surface` and the face index (n,) each sample lies on (the same samples)."""
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    points, face_index = trimesh.sample.sample_surface(mesh, n, seed=seed)
    face_index = np.asarray(face_index, np.int64)
    return np.asarray(points, np.float64), np.asarray(mesh.face_normals[face_index], np.float64), face_index


class _Matches(NamedTuple):
    """Nearest neighbours of two clouds centred on their own means: per pred sample its distance
    to and |cos| with its nearest gt sample (whose index is ``nearest_gt``), per gt sample the same
    toward pred."""

    pred_to_gt: np.ndarray
    cos_pred: np.ndarray
    nearest_gt: np.ndarray
    gt_to_pred: np.ndarray
    cos_gt: np.ndarray


def _match(pred_points, pred_normals, gt_points, gt_normals) -> _Matches:
    pred = pred_points - pred_points.mean(axis=0)
    gt = gt_points - gt_points.mean(axis=0)
    pred_to_gt, nearest_gt = cKDTree(gt).query(pred)
    gt_to_pred, nearest_pred = cKDTree(pred).query(gt)
    cos_pred = np.abs(np.sum(pred_normals * gt_normals[nearest_gt], axis=1))
    cos_gt = np.abs(np.sum(gt_normals * pred_normals[nearest_pred], axis=1))
    return _Matches(pred_to_gt, cos_pred, nearest_gt, gt_to_pred, cos_gt)


def _scores(matches: _Matches, pred_kept: np.ndarray | slice = slice(None),
            gt_kept: np.ndarray | slice = slice(None)) -> tuple[float, float, float]:
    """(chamfer_x1e3, normal_consistency, fscore_1cm) over the kept samples of each side."""
    pred_to_gt, gt_to_pred = matches.pred_to_gt[pred_kept], matches.gt_to_pred[gt_kept]
    precision = float(np.mean(pred_to_gt < FSCORE_THRESHOLD_M))
    recall = float(np.mean(gt_to_pred < FSCORE_THRESHOLD_M))
    return (
        1000.0 * float(np.mean(pred_to_gt**2) + np.mean(gt_to_pred**2)),
        0.5 * float(np.mean(matches.cos_pred[pred_kept]) + np.mean(matches.cos_gt[gt_kept])),
        0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
    )


def compare_point_clouds(
    pred_points: Float[np.ndarray, "N 3"],
    pred_normals: Float[np.ndarray, "N 3"],
    gt_points: Float[np.ndarray, "M 3"],
    gt_normals: Float[np.ndarray, "M 3"],
) -> dict[str, float]:
    """``chamfer_x1e3``, ``normal_consistency`` and ``fscore_1cm`` of two oriented point clouds,
    each centred on its own mean first (module docstring)."""
    return dict(zip(GEOMETRY_METRICS, _scores(_match(pred_points, pred_normals, gt_points, gt_normals))))


def geometry_metrics(
    pred_vertices: Float[np.ndarray, "V 3"],
    pred_faces: Int[np.ndarray, "F 3"],
    gt_vertices: Float[np.ndarray, "W 3"],
    gt_faces: Int[np.ndarray, "G 3"],
    n_samples: int = N_SAMPLES,
    seed: int = 0,
    gt_seen: Bool[np.ndarray, " G"] | None = None,
) -> dict[str, float]:
    """Chamfer (x1e3), normal consistency and F-score at 1 cm of a predicted mesh against ground
    truth, on ``n_samples`` samples per mesh (pred with ``seed``, gt with ``seed + 1``); with
    ``gt_seen`` (one flag per gt face) also the seen/unseen split (:data:`SPLIT_METRICS`).

    The split uses the same samples, centring (on the whole clouds' means) and nearest neighbours
    (in the whole other cloud); only the averages are restricted: a gt sample belongs to the class
    of its face, a pred sample to that of its nearest gt sample. A class with no gt sample or no
    pred sample in it has NaN for its three metrics (callers skip them).
    """
    pred_points, pred_normals = sample_surface(pred_vertices, pred_faces, n_samples, seed)
    gt_points, gt_normals, gt_face = sample_surface_faces(gt_vertices, gt_faces, n_samples, seed + 1)
    matches = _match(pred_points, pred_normals, gt_points, gt_normals)
    whole = dict(zip(GEOMETRY_METRICS, _scores(matches)))
    if gt_seen is None:
        return whole
    gt_seen = np.asarray(gt_seen, bool)
    if gt_seen.shape != (len(gt_faces),):
        raise ValueError(f"geometry_metrics: gt_seen has shape {gt_seen.shape}, expected ({len(gt_faces)},)")
    gt_class = gt_seen[gt_face]
    pred_class = gt_class[matches.nearest_gt]
    values = {}
    for suffix, flag in (("seen", True), ("unseen", False)):
        gt_kept, pred_kept = gt_class == flag, pred_class == flag
        scores = _scores(matches, pred_kept, gt_kept) if gt_kept.any() and pred_kept.any() else (np.nan,) * 3
        for name, value in zip(GEOMETRY_METRICS, scores):
            values[_split_name(name, suffix)] = float(value)
    areas = trimesh.Trimesh(np.asarray(gt_vertices, np.float64), np.asarray(gt_faces, np.int64),
                            process=False).area_faces
    values["unseen_fraction"] = float(areas[~gt_seen].sum() / areas.sum())
    return {**whole, **{name: values[name] for name in SPLIT_METRICS}}


def _split_name(name: str, suffix: str) -> str:
    """chamfer_x1e3 -> chamfer_seen_x1e3, fscore_1cm -> fscore_1cm_seen, ..."""
    return name.replace("_x1e3", f"_{suffix}_x1e3") if name.endswith("_x1e3") else f"{name}_{suffix}"


def mask_iou(
    pred_silhouette: Float[np.ndarray, "H W"],
    target_mask: Bool[np.ndarray, "H W"],
    occluders: Bool[np.ndarray, "H W"] | None = None,
) -> float:
    """IoU of the predicted silhouette (covered where > 0.5) and the target garment mask; pixels
    where ``occluders`` is set count as neither. 1.0 when both are empty."""
    pred = np.asarray(pred_silhouette) > 0.5
    target = np.asarray(target_mask, bool)
    if pred.shape != target.shape:
        raise ValueError(f"mask_iou: silhouette {pred.shape} and mask {target.shape} differ in shape")
    counted = np.ones_like(target) if occluders is None else ~np.asarray(occluders, bool)
    union = np.count_nonzero((pred | target) & counted)
    return 1.0 if union == 0 else np.count_nonzero(pred & target & counted) / union


def psnr_masked(
    pred: Float[np.ndarray, "H W *C"], target: Float[np.ndarray, "H W *C"], mask: Bool[np.ndarray, "H W"]
) -> float:
    """PSNR (dB, peak 1) over the pixels inside ``mask`` only; images in [0, 1]. inf when equal there."""
    inside = np.asarray(mask, bool)
    error = np.asarray(pred, np.float64)[inside] - np.asarray(target, np.float64)[inside]
    mse = float(np.mean(error**2))
    return float("inf") if mse == 0 else -10.0 * float(np.log10(mse))


def ssim_masked(
    pred: Float[np.ndarray, "H W *C"], target: Float[np.ndarray, "H W *C"], mask: Bool[np.ndarray, "H W"]
) -> float:
    """SSIM (:mod:`ngdjax.ssim`) after setting the pixels outside ``mask`` to zero in both images
    (colour (H, W, 3) or grey (H, W) images in [0, 1])."""
    inside = np.asarray(mask, bool).reshape(np.shape(mask) + (1,) * (np.ndim(pred) - 2))
    zeroed = [jnp.asarray(np.where(inside, image, 0.0), jnp.float32) for image in (pred, target)]
    return float(ssim(*zeroed))


def summarise(per_frame: dict[str, dict[int, float]]) -> dict[str, dict]:
    """metrics.json layout: ``{name: {"mean": x, "per_frame": {"0000": x, ...}}}``, frames in
    increasing order, keys zero-padded to 4 digits. NaN values (a split metric whose class is
    empty in that frame) are left out of ``per_frame`` and of the mean; a metric with no value
    left has mean None (JSON null)."""
    summary = {}
    for name, values in per_frame.items():
        kept = {frame: float(value) for frame, value in values.items() if not np.isnan(value)}
        summary[name] = {
            "mean": float(np.mean(list(kept.values()))) if kept else None,
            "per_frame": {f"{frame:04d}": kept[frame] for frame in sorted(kept)},
        }
    return summary
