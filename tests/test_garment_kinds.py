"""Two-legged generated templates (shorts, trousers, leggings) and templates derived from a true
garment (ngdjax.derived_template), around the built-in Anny body."""

import igl
import numpy as np
import pytest
import scipy.spatial
import trimesh

from ngdjax.body.model import load_body, rest_vertices_host
from ngdjax.derived_template import derived_template, lower_loops
from ngdjax.errors import InputError
from ngdjax.garment import LEGWEAR_FIT, body_frame, make_template
from ngdjax.mesh import boundary_loops, edges, face_areas, non_manifold_edges, validate_mesh, vertex_normals

LEGWEAR = ("shorts", "trousers", "leggings")
EDGE = 0.03
OFFSET = 0.015


@pytest.fixture(scope="module")
def anny():
    body = load_body("anny")
    return body, rest_vertices_host(body, np.zeros(0)), np.asarray(body.triangles, np.int64), body_frame(body, np.zeros(0))


@pytest.fixture(scope="module")
def legwear(anny):
    body = anny[0]
    return {kind: make_template(kind, body, np.zeros(0), EDGE, offset=OFFSET) for kind in LEGWEAR}


def _mean_edge(vertices, faces):
    return float(np.linalg.norm(np.diff(vertices[edges(faces)], axis=1)[:, 0], axis=1).mean())


def _area_mean_distance(vertices, faces, body_vertices, body_faces):
    """Area-weighted mean signed distance of a mesh's vertices to the body (metres)."""
    weight = np.zeros(len(vertices))
    np.add.at(weight, faces.ravel(), np.repeat(face_areas(vertices, faces), 3))
    return float(np.average(igl.signed_distance(vertices, body_vertices, body_faces)[0], weights=weight))


def _check_clean(vertices, faces, n_loops):
    validate_mesh(vertices, faces)
    assert vertices.dtype == np.float64 and faces.dtype == np.int64
    assert len(non_manifold_edges(faces)) == 0
    assert len(boundary_loops(faces)) == n_loops
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert mesh.is_winding_consistent and len(mesh.split(only_watertight=False)) == 1


def _away_fraction(vertices, faces, body_vertices, body_faces):
    """Fraction of vertices whose normal points away from the body's nearest surface point."""
    _, _, closest, _ = igl.signed_distance(vertices, body_vertices, body_faces)
    return float(np.mean(np.einsum("vi,vi->v", vertex_normals(vertices, faces), vertices - closest) > 0))


@pytest.mark.parametrize("kind", LEGWEAR)
def test_legwear_is_one_clean_manifold_with_three_openings_at_the_right_heights(kind, legwear, anny):
    vertices, faces = legwear[kind]
    _check_clean(vertices, faces, 3)
    frame = anny[3]
    local = (vertices - frame.origin) @ frame.axes.T  # x forward, y left, z up; 0 between the hips
    joints = {name: np.mean([frame.joints[f"{side}_{name}"] for side in ("left", "right")], axis=0)
              for name in ("hip", "knee", "ankle")}
    loops = sorted(boundary_loops(faces), key=lambda loop: -local[loop, 2].mean())
    waist, legs = loops[0], loops[1:]
    assert joints["hip"][2] + 0.04 < local[waist, 2].mean() < joints["hip"][2] + 0.15
    assert sorted(np.sign(local[leg, 1].mean()) for leg in legs) == [-1, 1]  # one opening per leg
    heights = [local[leg, 2].mean() for leg in legs]
    assert abs(heights[0] - heights[1]) < 0.01
    hip, knee, ankle = joints["hip"][2], joints["knee"][2], joints["ankle"][2]
    expected = {"shorts": (0.5 * (hip + knee) - 0.04, 0.5 * (hip + knee) + 0.04),  # mid-thigh
                "trousers": (ankle, ankle + 0.1),  # just above the ankle
                "leggings": (ankle + 0.05, knee - 0.1)}[kind]  # mid-calf
    assert all(expected[0] < h < expected[1] for h in heights), (kind, heights, expected)


@pytest.mark.parametrize("kind", LEGWEAR)
def test_legwear_lies_outside_the_skin_with_normals_away_and_edges_near_the_target(kind, legwear, anny):
    vertices, faces = legwear[kind]
    _, body_vertices, body_faces, _ = anny
    clearance = OFFSET * LEGWEAR_FIT[kind][2]
    nearest = scipy.spatial.cKDTree(body_vertices).query(vertices)[1]
    in_front = np.einsum("vi,vi->v", vertices - body_vertices[nearest], vertex_normals(body_vertices, body_faces)[nearest])
    assert in_front.min() > 0.5 * clearance, f"{kind}: a vertex is {in_front.min():.4f} m in front of the skin"
    assert _away_fraction(vertices, faces, body_vertices, body_faces) > 0.97
    assert EDGE / 1.5 < _mean_edge(vertices, faces) < 1.5 * EDGE


def test_leggings_are_tighter_than_shorts_tighter_than_trousers(legwear, anny):
    _, body_vertices, body_faces, _ = anny
    fit = {kind: _area_mean_distance(*legwear[kind], body_vertices, body_faces) for kind in LEGWEAR}
    assert fit["leggings"] < 0.01 < fit["shorts"] < fit["trousers"], fit


# --- Templates derived from a true garment ---------------------------------------------------------

UP = np.array([0.0, 0.0, 1.0])  # Anny is Z-up
SHRINK, SHORTEN = 0.02, 0.05


@pytest.fixture(scope="module")
def true_garments(anny):
    """A skirt and shorts generated finely, standing in for the true garments."""
    return {kind: make_template(kind, anny[0], np.zeros(0), 0.015, offset=OFFSET) for kind in ("skirt", "shorts")}


@pytest.mark.parametrize("kind", ["skirt", "shorts"])
def test_derived_template_is_clean_coarser_shorter_and_closer_to_the_body(kind, true_garments, anny):
    _, body_vertices, body_faces, _ = anny
    vertices, faces = true_garments[kind]
    n_loops = len(boundary_loops(faces))
    derived = derived_template(vertices, faces, body_vertices, body_faces, edge_length=EDGE,
                               shrink_m=SHRINK, shorten_m=SHORTEN, up=UP)
    _check_clean(*derived, n_loops)
    assert _away_fraction(*derived, body_vertices, body_faces) > 0.97
    assert len(derived[0]) < 0.5 * len(vertices)
    assert EDGE / 1.5 < _mean_edge(*derived) < 1.5 * EDGE
    # far enough from the true garment to be a different garment: the RMS nearest-surface distance
    # is about what the shrinking may move (min(shrink_m, distance to the body - clearance)): the
    # whole 2 cm for the loose skirt, 1.5 - 0.4 = 1.1 cm for the shorts 1.5 cm off the skin
    rms = np.sqrt(igl.point_mesh_squared_distance(derived[0], vertices, faces)[0].mean())
    assert rms > {"skirt": 0.015, "shorts": 0.009}[kind], rms


@pytest.mark.parametrize("kind", ["skirt", "shorts"])
def test_shortening_raises_the_lower_openings_by_shorten_m(kind, true_garments, anny):
    _, body_vertices, body_faces, _ = anny
    vertices, faces = true_garments[kind]
    shortened = derived_template(vertices, faces, body_vertices, body_faces, edge_length=EDGE, shorten_m=SHORTEN, up=UP)
    before = sorted(float(np.mean(vertices[loop] @ UP)) for loop in lower_loops(vertices, faces, UP))
    after = sorted(float(np.mean(shortened[0][loop] @ UP)) for loop in lower_loops(*shortened, UP))
    assert len(after) == len(before) == {"skirt": 1, "shorts": 2}[kind]
    for old, new in zip(before, after, strict=True):
        assert abs((new - old) - SHORTEN) < 0.01, (kind, new - old)  # within 1 cm
    assert abs(shortened[0][:, 2].max() - vertices[:, 2].max()) < 0.01  # the waistband stays


@pytest.mark.parametrize("kind", ["skirt", "shorts"])
def test_shrinking_brings_the_garment_closer_by_shrink_m_where_clearance_allows(kind, true_garments, anny):
    _, body_vertices, body_faces, _ = anny
    vertices, faces = true_garments[kind]
    clearance = 0.004
    plain = derived_template(vertices, faces, body_vertices, body_faces, edge_length=EDGE, up=UP, clearance=clearance)
    shrunk = derived_template(vertices, faces, body_vertices, body_faces, edge_length=EDGE, up=UP,
                              shrink_m=SHRINK, clearance=clearance)
    before = _area_mean_distance(*plain, body_vertices, body_faces)
    after = _area_mean_distance(*shrunk, body_vertices, body_faces)
    distance = igl.signed_distance(plain[0], body_vertices, body_faces)[0]
    allowed = np.mean(np.clip(distance - clearance, 0.0, SHRINK))  # what the clearance lets it move
    assert abs((before - after) - allowed) < 0.3 * allowed, (kind, before - after, allowed)
    assert igl.signed_distance(shrunk[0], body_vertices, body_faces)[0].min() > 0.9 * clearance


def test_derived_template_rejects_bad_requests(true_garments, anny):
    _, body_vertices, body_faces, _ = anny
    vertices, faces = true_garments["skirt"]
    with pytest.raises(InputError, match="edge_length"):
        derived_template(vertices, faces, body_vertices, body_faces, edge_length=0.0)
    with pytest.raises(InputError, match="shorten_m"):  # the whole skirt cut away at the hem
        derived_template(vertices, faces, body_vertices, body_faces, shorten_m=2.0, up=UP)
