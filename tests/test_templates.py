"""Generated garment templates (ngdjax.garment.make_template) around the built-in Anny body."""

import dataclasses

import igl
import numpy as np
import pytest
import trimesh

from ngdjax.body.model import Body, load_body, rest_vertices_host, skinning_weights_host
from ngdjax.body.skinning import rbf_skinning_weights
from ngdjax.errors import InputError
from ngdjax.garment import GARMENT_KINDS, LEGWEAR_FIT, make_template
from ngdjax.mesh import (
    boundary_loops,
    edges,
    non_manifold_edges,
    validate_mesh,
    vertex_normals,
)

EXPECTED_LOOPS = {"skirt": 2, "tshirt": 4, "shorts": 3, "trousers": 3, "leggings": 3}
EDGE = 0.03
OFFSET = 0.015


@pytest.fixture(scope="module")
def anny():
    return load_body("anny")


@pytest.fixture(scope="module", params=GARMENT_KINDS)
def template(request, anny):
    return request.param, *make_template(request.param, anny, np.zeros(0), EDGE, offset=OFFSET)


def test_template_is_a_clean_open_manifold_with_the_garments_openings(template):
    kind, vertices, faces = template
    validate_mesh(vertices, faces)
    assert vertices.dtype == np.float64 and faces.dtype == np.int64
    assert len(non_manifold_edges(faces)) == 0
    assert len(boundary_loops(faces)) == EXPECTED_LOOPS[kind]
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert mesh.is_winding_consistent and len(mesh.split(only_watertight=False)) == 1
    assert np.degrees(igl.internal_angles(vertices, faces).min()) > 10.0  # no slivers
    lengths = np.linalg.norm(np.diff(vertices[edges(faces)], axis=1)[:, 0], axis=1)
    assert 0.8 * EDGE < np.median(lengths) < 1.4 * EDGE


def test_template_lies_outside_the_skin_with_normals_pointing_away(template, anny):
    kind, vertices, faces = template
    body_vertices = rest_vertices_host(anny, np.zeros(0))
    body_faces = np.asarray(anny.triangles, np.int64)
    distance, _, closest, _ = igl.signed_distance(vertices, body_vertices, body_faces)
    clearance = OFFSET * LEGWEAR_FIT[kind][2] if kind in LEGWEAR_FIT else OFFSET  # leggings are tight by design
    assert distance.min() > 0.5 * clearance, f"{kind}: a vertex is {distance.min():.4f} m from the skin"
    away = np.einsum("vi,vi->v", vertex_normals(vertices, faces), vertices - closest)
    assert np.mean(away > 0) > 0.97


def test_template_skinning_weights_sum_to_one(template, anny):
    _, vertices, _ = template
    weights = rbf_skinning_weights(vertices, rest_vertices_host(anny, np.zeros(0)), skinning_weights_host(anny))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)  # Anny's own weights sum to 1 within 1e-7
    assert weights.min() >= 0.0


def test_template_follows_the_body_in_any_world_frame(anny):
    """Sizes and axes come from the body's joints and surface (e.g. SMPL is Y-up, Anny Z-up)."""
    angle = 1.1
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    shift = np.array([0.3, -0.2, 1.0])
    model = anny.model
    skeleton = np.array(model.rest_skeleton, np.float64)
    skeleton[:, :3, :3] = rotation @ skeleton[:, :3, :3]
    skeleton[:, :3, 3] = skeleton[:, :3, 3] @ rotation.T + shift
    moved = Body(dataclasses.replace(model, rest_vertices=np.asarray(model.rest_vertices) @ rotation.T + shift,
                                     rest_skeleton=skeleton), "anny")
    for kind in GARMENT_KINDS:
        vertices, faces = make_template(kind, anny, np.zeros(0), 2 * EDGE)
        moved_vertices, moved_faces = make_template(kind, moved, np.zeros(0), 2 * EDGE)
        np.testing.assert_array_equal(moved_faces, faces)
        np.testing.assert_allclose(moved_vertices, vertices @ rotation.T + shift, atol=1e-4)


def test_bad_template_requests_raise_input_errors(anny):
    with pytest.raises(InputError, match="garment kind 'dress' is unknown"):
        make_template("dress", anny, np.zeros(0), EDGE)
    with pytest.raises(InputError, match="target_edge_length"):
        make_template("skirt", anny, np.zeros(0), 0.0)
