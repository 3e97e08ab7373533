"""Artist-made MakeHuman outfits (CC0, ``ngdjax/data/garments/``) bound to the built-in Anny body.

An outfit folder holds ``NAME.obj`` (quads, MakeHuman units = decimetres, Y up, rest pose) and
``NAME.mhclo``, its binding to the 19,158-vertex MakeHuman base mesh hm08: one line per OBJ vertex
``i j k  wi wj wk  dx dy dz`` (or a single index ``i``: the vertex sits on base vertex i), and
header lines ``x_scale v_a v_b ref`` (likewise y, z). MakeHuman's rule (``proxy.py``)::

    position = sum_w w * base[idx] + offset * scale,   scale[axis] = |base[v_a, axis] - base[v_b, axis]| / ref

on the current body positions. Anny is built on hm08: ``ngdjax/body/data/anny_hm08.npz`` (made by
``tools/export_hm08.py``) places every hm08 vertex, helpers included, on Anny's rest body, so a
binding evaluated there dresses Anny. Bad files raise :class:`ngdjax.errors.InputError` (one line
naming the file).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ngdjax.body.anny import load_anny
from ngdjax.errors import InputError
from ngdjax.mesh_edit import faces_away_from
from ngdjax.mesh import connected_components, face_areas, validate_mesh

GARMENTS_DIR = Path(__file__).parent / "garments"
HM08_FILE = Path(__file__).parent.parent / "body" / "data" / "anny_hm08.npz"
N_HM08 = 19158
_AXES = {"x_scale": 0, "y_scale": 1, "z_scale": 2}


class Binding(NamedTuple):
    """A ``.mhclo`` binding of V garment vertices to hm08.

    indices: (V, 3) int64 hm08 vertices; weights: (V, 3) float64 barycentric weights; offsets:
    (V, 3) float64 in MakeHuman units (before scaling); scales: {axis 0/1/2: (v_a, v_b, ref)} from
    the ``x_scale``/``y_scale``/``z_scale`` lines (a missing axis scales by 1); obj_file: the
    ``obj_file`` header value (or None).
    """

    indices: np.ndarray
    weights: np.ndarray
    offsets: np.ndarray
    scales: dict
    obj_file: str | None = None


class Piece(NamedTuple):
    """One connected part of an outfit: ``vertex_ids`` (n,) int64 into the OBJ's vertices (sorted),
    ``faces`` (F, 3) int64 triangles indexing ``vertex_ids``."""

    vertex_ids: np.ndarray
    faces: np.ndarray


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_binding(path: str | os.PathLike) -> Binding:
    """Parse a ``.mhclo`` file (see the module docstring). The vertex lines run from the line after
    ``verts 0`` up to the first line that starts with a keyword (e.g. ``delete_verts``); blank lines
    are skipped. Raises InputError naming the file (and line number) for a missing file, a missing
    ``verts`` section, a malformed line or an index outside 0..19157."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: binding file not found")
    indices, weights, offsets, scales, obj_file = [], [], [], {}, None
    in_verts = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            if in_verts and _is_number(tokens[0]):
                if len(tokens) not in (1, 9) or not all(_is_number(t) for t in tokens):
                    raise InputError(f"{path} line {lineno}: malformed binding line (expected 1 or 9 numbers): "
                                     f"{line.strip()[:80]!r}")
                try:
                    ijk = [int(t) for t in tokens[:3]]
                except ValueError:
                    raise InputError(f"{path} line {lineno}: base-mesh indices must be integers: "
                                     f"{line.strip()[:80]!r}") from None
                bad = [i for i in ijk if not 0 <= i < N_HM08]
                if bad:
                    raise InputError(f"{path} line {lineno}: base-mesh index {bad[0]} outside 0..{N_HM08 - 1}")
                if len(tokens) == 1:
                    indices.append(ijk * 3)
                    weights.append([1.0, 0.0, 0.0])
                    offsets.append([0.0, 0.0, 0.0])
                else:
                    indices.append(ijk)
                    weights.append([float(t) for t in tokens[3:6]])
                    offsets.append([float(t) for t in tokens[6:9]])
                continue
            in_verts = False
            key = tokens[0]
            if key == "verts":
                in_verts = True
            elif key == "obj_file" and len(tokens) > 1:
                obj_file = " ".join(tokens[1:])
            elif key in _AXES:
                try:
                    v_a, v_b, ref = int(tokens[1]), int(tokens[2]), float(tokens[3])
                except (ValueError, IndexError):
                    raise InputError(f"{path} line {lineno}: malformed {key} line (expected 'v_a v_b ref'): "
                                     f"{line.strip()[:80]!r}") from None
                if not (0 <= v_a < N_HM08 and 0 <= v_b < N_HM08) or ref <= 0:
                    raise InputError(f"{path} line {lineno}: {key} needs indices in 0..{N_HM08 - 1} and ref > 0")
                scales[_AXES[key]] = (v_a, v_b, ref)
    if not indices:
        raise InputError(f"{path}: no binding lines (a 'verts 0' line followed by one line per vertex)")
    return Binding(np.asarray(indices, np.int64), np.asarray(weights, np.float64),
                   np.asarray(offsets, np.float64), scales, obj_file)


def read_outfit_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 in the OBJ's order (line i of the binding is vertex i; no welding or
    splitting at UV seams) and faces (F, 3) int64, polygons triangulated as fans. UVs are ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: outfit OBJ not found")
    vertices, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if line.startswith("v "):
                try:
                    vertices.append([float(t) for t in line.split()[1:4]])
                except ValueError:
                    raise InputError(f"{path} line {lineno}: malformed vertex line") from None
            elif line.startswith("f "):
                try:
                    corners = [int(t.split("/")[0]) for t in line.split()[1:]]
                except ValueError:
                    raise InputError(f"{path} line {lineno}: malformed face line") from None
                corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]  # OBJ: 1-based or negative
                faces.extend([corners[0], corners[k], corners[k + 1]] for k in range(1, len(corners) - 1))
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InputError(f"{path}: faces index vertices outside 0..{len(vertices) - 1}")
    return vertices, faces


def bind(binding: Binding, base_positions):
    """Garment vertices (V, 3) by MakeHuman's rule on ``base_positions`` (19158, 3): all hm08
    vertices in MakeHuman's frame (Y up; any units, the offsets scale with the body). numpy or JAX
    (differentiable in ``base_positions``)."""
    xp = np if isinstance(base_positions, np.ndarray) else jnp
    scale = [1.0, 1.0, 1.0]
    for axis, (v_a, v_b, ref) in binding.scales.items():
        scale[axis] = xp.abs(base_positions[v_a, axis] - base_positions[v_b, axis]) / ref
    anchored = xp.einsum("vk,vkd->vd", binding.weights, base_positions[binding.indices])
    return anchored + binding.offsets * xp.stack([xp.asarray(s, dtype=anchored.dtype) for s in scale])


@functools.cache
def _hm08() -> dict[str, np.ndarray]:
    with np.load(HM08_FILE) as data:
        return {key: data[key] for key in data.files}


def hm08_on_anny() -> np.ndarray:
    """All 19,158 hm08 vertices on Anny's rest body, in MakeHuman's frame and units (Y up,
    decimetres) (19158, 3) float64: ready for :func:`bind`."""
    data = _hm08()
    return data["on_anny"].astype(np.float64) @ data["axis_map"].astype(np.float64) / float(data["scale"])


def to_anny_frame(points: np.ndarray) -> np.ndarray:
    """MakeHuman frame (Y up, decimetres) (N, 3) -> Anny's frame (Z up, metres) (N, 3)."""
    data = _hm08()
    return float(data["scale"]) * np.asarray(points, np.float64) @ data["axis_map"].astype(np.float64).T


def _outfit_files(folder: str | os.PathLike) -> tuple[Path, Path, Binding]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: outfit folder not found")
    mhclo = sorted(folder.glob("*.mhclo"))
    if len(mhclo) != 1:
        raise InputError(f"{folder}: expected one .mhclo binding file, found {len(mhclo)}"
                         + (f" ({', '.join(p.name for p in mhclo)})" if mhclo else ""))
    binding = read_binding(mhclo[0])
    obj = folder / (binding.obj_file or mhclo[0].with_suffix(".obj").name)
    if not obj.is_file():
        raise InputError(f"{mhclo[0]}: obj_file {obj.name!r} not found in {folder}")
    return mhclo[0], obj, binding


@functools.lru_cache(maxsize=16)
def _load_outfit(folder: str):
    mhclo, obj, binding = _outfit_files(folder)
    vertices, faces = read_outfit_mesh(obj)
    if len(vertices) != len(binding.indices):
        raise InputError(f"{mhclo}: {len(binding.indices)} binding lines but {obj.name} has {len(vertices)} vertices")
    return binding, vertices, faces


def outfit_pieces(folder: str | os.PathLike) -> dict[str, Piece]:
    """The connected parts of an outfit's mesh (through shared edges), by name.

    The two largest parts are named by their mean height on the body: the higher "top", the lower
    "bottom" (a one-part outfit has only "top"); any further parts, largest first, are "piece2",
    "piece3", ... Vertices used by no face are left out.
    """
    binding, vertices, faces = _load_outfit(str(Path(folder).resolve()))
    labels = connected_components(faces, len(vertices))
    used = np.zeros(len(vertices), bool)
    used[faces.ravel()] = True
    parts = [np.flatnonzero((labels == c) & used) for c in np.unique(labels[used])]
    parts.sort(key=len, reverse=True)
    main = sorted(parts[:2], key=lambda ids: -vertices[ids, 1].mean())  # Y up in MakeHuman's frame
    names = ["top", "bottom"][:len(main)] + [f"piece{k}" for k in range(2, len(parts))]
    pieces = {}
    for name, ids in zip(names, main + parts[2:]):
        remap = np.full(len(vertices), -1, np.int64)
        remap[ids] = np.arange(len(ids))
        piece_faces = remap[faces[np.isin(faces[:, 0], ids)]]
        pieces[name] = Piece(ids, piece_faces)
    return pieces


def bound_piece(folder: str | os.PathLike, piece: str) -> tuple[np.ndarray, np.ndarray]:
    """One piece of an outfit bound to Anny's rest body.

    Returns:
        vertices (V, 3) float64 in Anny's rest frame (metres, Z up, root-centred) and faces (F, 3)
        int64: only that piece, faces reindexed, zero-area faces (and vertices left unused) removed,
        oriented so normals point away from the body. Passes ``ngdjax.mesh.validate_mesh``.
    """
    pieces = outfit_pieces(folder)
    if piece not in pieces:
        raise InputError(f"{folder}: unknown piece {piece!r} (known: {', '.join(pieces)})")
    binding, _, _ = _load_outfit(str(Path(folder).resolve()))
    ids, faces = pieces[piece]
    vertices = to_anny_frame(bind(binding, hm08_on_anny()))[ids]
    faces = faces[face_areas(vertices, faces) > 1e-12]  # (1 micrometre)^2
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    vertices, faces = vertices[used], remap[faces]
    anny = load_anny()
    faces = faces_away_from(vertices, faces, np.asarray(anny.rest_vertices, np.float64), np.asarray(anny.triangles, np.int64))
    validate_mesh(vertices, faces, name=f"{folder}:{piece}")
    return vertices, faces
