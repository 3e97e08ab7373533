"""4D-DRESS takes into the ngdjax sequence format (layout and assumptions: docs/datasets.md).

One take of the public release (eth-ait/4d-dress, ``dataset/README.md``)::

    <subject>/<outfit>/<take>/
      basic_info.pkl                      {'scan_frames': ['00011', ...], 'rotation', 'offset', ...}
      Meshes_pkl/mesh-fXXXXX.pkl          {'vertices', 'faces', 'colors', 'normals', 'uvs'}
      SMPL/mesh-fXXXXX_smpl.pkl           {'global_orient', 'body_pose', 'transl', 'betas', ...}
      Semantic/labels/label-fXXXXX.pkl    {'scan_labels': (n_scan_vertices,)}
      Capture/cameras.pkl                 {camera_id: {'intrinsics': (3, 3), 'extrinsics': (3, 4)}}
      Capture/<camera_id>/images/capture-fXXXXX.png

becomes one monocular sequence seen by ``camera_id``: the frames, the garment mask and occluders
rendered from the labelled scan (the release's own per-pixel labelling: the visible scan face's
vertex labels, weighted by barycentrics, vote), SMPL parameters, the camera, and the garment part
of each scan as the ground-truth mesh. Nothing is rotated: scans, SMPL fits and cameras share the
capture's world frame (``basic_info['rotation']`` is only the release viewer's display rotation).
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from ngdjax.data.conversion import (
    attempt,
    load_pickle,
    missing_files,
    missing_keys,
    opencv_to_opengl,
    require_keys,
    resize,
    scaled_intrinsics,
    vector,
)
from ngdjax.data.loader import write_sequence
from ngdjax.errors import InputError
from ngdjax.garment import load_template
from ngdjax.io import read_image
from ngdjax.render.backend import get_renderer

SURFACE_LABELS = ("skin", "hair", "shoe", "upper", "lower", "outer")  # the release's dataset/utility.py
GARMENTS = ("upper", "lower", "outer")
SMPL_KEYS = ("global_orient", "body_pose", "transl", "betas")
CAMERA_KEYS = ("intrinsics", "extrinsics")
TEMPLATE_REQUIRED = (
    "template_path is required for 4D-DRESS: its garment meshes are posed scans, not in the SMPL rest pose; "
    "give a garment template .obj in the SMPL rest pose, in metres (e.g. the release's per-garment template "
    "posed back to the rest pose, or a generic one)")
OFFSCREEN = np.array([3.0, 3.0, 0.0, 1.0], np.float32)  # clip position of padding vertices: outside the image


def frame_files(take_dir: str, camera_id: str, name: str) -> dict[str, str]:
    """The release's files of scan frame ``name`` (e.g. '00011') seen by ``camera_id``."""
    return {
        "image": os.path.join(take_dir, "Capture", camera_id, "images", f"capture-f{name}.png"),
        "scan": os.path.join(take_dir, "Meshes_pkl", f"mesh-f{name}.pkl"),
        "labels": os.path.join(take_dir, "Semantic", "labels", f"label-f{name}.pkl"),
        "smpl": os.path.join(take_dir, "SMPL", f"mesh-f{name}_smpl.pkl"),
    }


def check_take(take_dir: str, camera_id: str, garment: str, template_path: str | None,
               frames: list[int] | None = None) -> tuple[list[str], dict]:
    """Check a take before any heavy work: folders, files, and the keys of the small pickles.

    Returns:
        the scan frame names to convert (e.g. ['00011', '00012']) and the camera's dict.

    Raises:
        InputError: every problem found, one line each naming its file or key.
    """
    problems = []
    if garment not in GARMENTS:
        problems.append(f"garment '{garment}' is not one of {GARMENTS}")
    if template_path is None:
        problems.append(TEMPLATE_REQUIRED)
    elif not os.path.isfile(template_path):
        problems.append(f"{template_path}: garment template not found")
    if not os.path.isdir(take_dir):
        raise InputError(*problems, f"{take_dir}: not a directory (a 4D-DRESS take: <subject>/<outfit>/<take>)")
    info_path = os.path.join(take_dir, "basic_info.pkl")
    cameras_path = os.path.join(take_dir, "Capture", "cameras.pkl")
    info, info_problems = attempt(load_pickle, info_path)
    cameras, camera_problems = attempt(load_pickle, cameras_path)
    problems += info_problems + camera_problems
    if info is not None:
        problems += missing_keys(info_path, info, ("scan_frames",))
    camera = None
    if cameras is not None:
        if not isinstance(cameras, dict) or camera_id not in cameras:
            known = ", ".join(map(str, cameras)) if isinstance(cameras, dict) else "none"
            problems.append(f"{cameras_path}: no camera '{camera_id}' (cameras: {known})")
        else:
            camera = cameras[camera_id]
            problems += missing_keys(f"{cameras_path} ['{camera_id}']", camera, CAMERA_KEYS)
    if problems:
        raise InputError(*problems)
    names = _select_frames(info_path, [str(name) for name in info["scan_frames"]], frames)
    for name in names:
        files = frame_files(take_dir, camera_id, name)
        problems += missing_files(files.values())
        if os.path.isfile(files["smpl"]):
            smpl, smpl_problems = attempt(load_pickle, files["smpl"])
            problems += smpl_problems or missing_keys(files["smpl"], smpl, SMPL_KEYS)
    if problems:
        raise InputError(*problems)
    return names, camera


def convert_dress4d(take_dir: str, out_dir: str, camera_id: str = "0004", garment: str = "upper",
                    template_path: str | None = None, frames: list[int] | None = None,
                    body_model_path: str | None = None, size: tuple[int, int] | None = None,
                    render_backend: str = "auto") -> None:
    """Convert one 4D-DRESS take into the sequence ``out_dir`` seen by camera ``camera_id``.

    Args:
        take_dir: ``<subject>/<outfit>/<take>`` of the release.
        camera_id: one of the released cameras (``0004``, ``0028``, ``0052``, ``0076``).
        garment: ``upper``, ``lower`` or ``outer`` (the release's vertex labels 3, 4, 5).
        template_path: garment template .obj in the SMPL rest pose, metres (required).
        frames: scan frame numbers to convert (default: all of ``basic_info['scan_frames']``);
            they are also the sequence's frame indices.
        body_model_path: the SMPL model file to record in sequence.yaml (never shipped with ngdjax).
        size: (H, W) to resize to; default the release's resolution (1280 x 940).
        render_backend: :func:`ngdjax.render.backend.get_renderer` backend for the label rendering.

    Raises:
        InputError: naming the file or key of every problem (checked before any heavy work).
    """
    names, camera = check_take(take_dir, camera_id, garment, template_path, frames)
    renderer = get_renderer(render_backend)
    template_vertices, template_faces = load_template(template_path)
    first_image = frame_files(take_dir, camera_id, names[0])["image"]
    native = read_image(first_image).shape[:2]
    height, width = size or native
    cameras_path = f"{os.path.join(take_dir, 'Capture', 'cameras.pkl')} ['{camera_id}']"
    intrinsics = scaled_intrinsics(vector(cameras_path, camera, "intrinsics", 9).reshape(3, 3),
                                   width / native[1], height / native[0])
    mv, proj = opencv_to_opengl(intrinsics, _extrinsics(take_dir, camera_id, camera), width, height)
    label = SURFACE_LABELS.index(garment)
    frames_out = [_take_frame(take_dir, camera_id, name, native, (height, width), label, mv, proj, renderer)
                  for name in tqdm(names, desc=f"4D-DRESS {garment} from camera {camera_id}", unit="frame")]
    empty = [f"{frame_files(take_dir, camera_id, name)['labels']}: no pixel of camera {camera_id} is labelled "
             f"'{garment}' in this frame" for name, frame in zip(names, frames_out, strict=True) if not frame["mask"].any()]
    if empty:
        raise InputError(*empty)
    stacked = {key: np.stack([frame[key] for frame in frames_out]) for key in frames_out[0] if key != "gt_mesh"}
    write_sequence(
        out_dir, frames=[int(name) for name in names], images=stacked["image"], masks=stacked["mask"],
        occluders=stacked["occluders"], mv=mv, proj=proj, shape=stacked["betas"], pose=stacked["body_pose"],
        global_rotation=stacked["global_orient"], translation=stacked["transl"], body_model="smpl",
        body_model_path=None if body_model_path is None else os.path.abspath(os.path.expanduser(body_model_path)),
        template_vertices=template_vertices, template_faces=template_faces,
        gt_meshes=[frame["gt_mesh"] for frame in frames_out],
    )


def garment_submesh(vertices: np.ndarray, faces: np.ndarray, is_garment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The garment part of a labelled scan, as the release extracts it: the garment vertices
    (V', 3) and the faces whose three vertices are all garment (F', 3), re-indexed."""
    kept_faces = faces[is_garment[faces].all(axis=1)]
    new_index = np.cumsum(is_garment) - 1
    return vertices[is_garment], new_index[kept_faces]


def garment_pixels(vertices: np.ndarray, faces: np.ndarray, vertex_labels: np.ndarray, garment_label: int,
                   mv: np.ndarray, proj: np.ndarray, resolution: tuple[int, int], renderer
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Garment mask and occluders (H, W) bool of a labelled scan seen by the camera (mv, proj).

    A covered pixel's label is the vertex label with the largest barycentric-weighted vote over
    the visible face's corners (the release's ``render_mesh_pixel_labels``). Occluders are the
    pixels where the garment is behind another surface: covered by the garment alone, but not
    labelled garment when the whole scan is rendered.
    """
    clip = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1) @ (proj @ mv).T
    is_garment_face = (vertex_labels[faces] == garment_label).all(axis=1)
    n_labels = max(len(SURFACE_LABELS), int(vertex_labels.max()) + 1)
    clip_pos, tris, labels = _padded(clip.astype(np.float32), faces, vertex_labels)
    votes_per_vertex = (labels[:, None] == np.arange(n_labels)).astype(np.float32)
    rast = renderer.rasterize(clip_pos, tris, resolution)
    votes = np.asarray(renderer.interpolate(votes_per_vertex, rast, tris))[0]
    covered = np.asarray(rast)[0, ..., 3] > 0
    mask = covered & (votes.sum(-1) > 0) & (votes.argmax(-1) == garment_label)
    garment_only = np.where(np.pad(is_garment_face, (0, len(tris) - len(faces)))[:, None], tris, len(clip_pos) - 1)
    behind = np.asarray(renderer.rasterize(clip_pos, garment_only.astype(np.int32), resolution))[0, ..., 3] > 0
    return mask, behind & ~mask


def _take_frame(take_dir, camera_id, name, native, resolution, label, mv, proj, renderer) -> dict:
    """Everything of one scan frame: image, masks, SMPL parameters and the GT garment mesh."""
    files = frame_files(take_dir, camera_id, name)
    image = read_image(files["image"])
    if image.ndim != 3 or image.shape[:2] != tuple(native):
        raise InputError(f"{files['image']}: size {image.shape[1]}x{image.shape[0]} and channels "
                         f"{image.shape[2:] or 1}, expected RGB {native[1]}x{native[0]} like the first frame")
    scan, labels = load_pickle(files["scan"]), load_pickle(files["labels"])
    require_keys(files["scan"], scan, ("vertices", "faces"))
    require_keys(files["labels"], labels, ("scan_labels",))
    vertices, faces = np.asarray(scan["vertices"], np.float64), np.asarray(scan["faces"], np.int64)
    vertex_labels = np.asarray(labels["scan_labels"], np.int64).reshape(-1)
    if len(vertex_labels) != len(vertices):
        raise InputError(f"{files['labels']}: 'scan_labels' has {len(vertex_labels)} labels, "
                         f"{files['scan']} has {len(vertices)} vertices")
    gt_vertices, gt_faces = garment_submesh(vertices, faces, vertex_labels == label)
    if len(gt_faces) == 0:
        raise InputError(f"{files['labels']}: no scan face is labelled '{SURFACE_LABELS[label]}'")
    mask, occluders = garment_pixels(vertices, faces, vertex_labels, label, mv, proj, resolution, renderer)
    smpl = load_pickle(files["smpl"])
    return {
        "image": resize(image, resolution), "mask": mask, "occluders": occluders,
        "global_orient": vector(files["smpl"], smpl, "global_orient", 3),
        "body_pose": vector(files["smpl"], smpl, "body_pose", 69),
        "transl": vector(files["smpl"], smpl, "transl", 3), "betas": vector(files["smpl"], smpl, "betas"),
        "gt_mesh": (gt_vertices, gt_faces),
    }


def _extrinsics(take_dir: str, camera_id: str, camera: dict) -> np.ndarray:
    """The camera's (3, 4) world-to-camera [R | t] (a (4, 4) one is accepted too)."""
    extrinsics = np.asarray(camera["extrinsics"], np.float64)
    if extrinsics.shape not in ((3, 4), (4, 4)):
        path = os.path.join(take_dir, "Capture", "cameras.pkl")
        raise InputError(f"{path}: ['{camera_id}']['extrinsics'] has shape {extrinsics.shape}, expected (3, 4)")
    return extrinsics[:3]


def _select_frames(info_path: str, scan_frames: list[str], frames: list[int] | None) -> list[str]:
    """The scan frame names of ``frames`` (all if None); InputError for frames the take lacks or beyond 9999."""
    by_number = {int(name): name for name in scan_frames}
    wanted = sorted(by_number) if frames is None else list(frames)
    problems = [f"{info_path}: frame {frame} is not in 'scan_frames'" for frame in wanted if frame not in by_number]
    problems += [f"{info_path}: frame {frame} is beyond 9999 (the sequence format's largest frame index)"
                 for frame in wanted if frame > 9999]
    if not wanted:
        problems.append(f"{info_path}: no frames to convert")
    if problems:
        raise InputError(*problems)
    return [by_number[frame] for frame in wanted]


def _padded(clip: np.ndarray, faces: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip positions, triangles and labels padded to power-of-two counts (so that scans of
    different sizes reuse one compiled rasteriser); padding triangles are degenerate, off-screen."""
    n_vertices, n_faces = _bucket(len(clip) + 1), _bucket(len(faces))
    clip_pos = np.tile(OFFSCREEN, (n_vertices, 1))
    clip_pos[:len(clip)] = clip
    tris = np.full((n_faces, 3), n_vertices - 1, np.int32)
    tris[:len(faces)] = faces
    padded_labels = np.full(n_vertices, -1, np.int64)
    padded_labels[:len(labels)] = labels
    return clip_pos, tris, padded_labels


def _bucket(count: int) -> int:
    return max(1024, 1 << (int(count) - 1).bit_length())
