import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngdjax import mesh, procedural
from ngdjax.errors import InputError


def test_single_triangle_geometry():
    vertices = np.array([[0.0, 0, 0], [2, 0, 0], [0, 1, 0]])
    faces = np.array([[0, 1, 2]])
    np.testing.assert_allclose(mesh.face_areas(vertices, faces), [1.0])
    np.testing.assert_allclose(mesh.face_normals(vertices, faces), [[0, 0, 1]])
    np.testing.assert_allclose(mesh.face_centroids(vertices, faces), [[2 / 3, 1 / 3, 0]])
    np.testing.assert_allclose(mesh.vertex_normals(vertices, faces), np.tile([0.0, 0, 1], (3, 1)))


def test_numpy_and_jax_inputs_agree_and_jit():
    vertices, faces = procedural.garment(500)
    for fn in (mesh.face_areas, mesh.face_normals, mesh.face_centroids, mesh.vertex_normals):
        host = fn(vertices, faces)
        device = jax.jit(fn)(jnp.asarray(vertices, jnp.float32), jnp.asarray(faces))
        assert isinstance(host, np.ndarray) and host.dtype == np.float64
        np.testing.assert_allclose(np.asarray(device), host, atol=1e-5)


def test_sphere_vertex_normals_point_outwards():
    vertices, faces = procedural.sphere(2)
    normals = mesh.vertex_normals(vertices, faces)
    radial = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    assert np.min(np.sum(normals * radial, axis=1)) > 0.99
    area = mesh.face_areas(vertices, faces).sum()
    assert abs(area - 4 * np.pi * 0.3**2) / (4 * np.pi * 0.3**2) < 0.02


@pytest.mark.parametrize(
    "make, n_loops",
    [(lambda: procedural.sphere(2), 0), (lambda: procedural.open_cylinder(400), 2), (lambda: procedural.garment(800), 4)],
)
def test_boundary_loops_and_euler_characteristic(make, n_loops):
    vertices, faces = make()
    loops = mesh.boundary_loops(faces)
    assert len(loops) == n_loops
    boundary = {tuple(e) for e in mesh.boundary_edges(faces).tolist()}
    for loop in loops:  # consecutive loop vertices are boundary half-edges, and the loop closes
        assert all((a, b) in boundary for a, b in zip(loop, np.roll(loop, -1)))
    assert sum(len(loop) for loop in loops) == len(boundary)
    n_edges = len(mesh.edges(faces))
    assert len(vertices) - n_edges + len(faces) == 2 - n_loops  # genus 0
    assert len(mesh.non_manifold_edges(faces)) == 0


def test_connected_components_of_two_spheres():
    vertices, faces = procedural.sphere(1)
    both_v = np.concatenate([vertices, vertices + 1.0])
    both_f = np.concatenate([faces, faces + len(vertices)])
    labels = mesh.connected_components(both_f, len(both_v))
    np.testing.assert_array_equal(labels, np.repeat([0, 1], len(vertices)))


def test_non_manifold_edge_is_reported():
    faces = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    np.testing.assert_array_equal(mesh.non_manifold_edges(faces), [[0, 1]])


def test_bowtie_vertex_raises():
    faces = np.array([[0, 1, 2], [0, 3, 4]])  # two triangles touching at vertex 0 only
    with pytest.raises(InputError, match="non-manifold"):
        mesh.boundary_loops(faces)


@pytest.mark.parametrize(
    "vertices, faces, message",
    [
        (np.zeros((4, 3)) + np.eye(4, 3), np.array([[0, 1, 2, 3]]), r"triangles.*\(1, 4\).*triangulate"),
        (np.array([[0.0, 0, 0], [1, 0, 0], [0, np.nan, 0]]), np.array([[0, 1, 2]]), r"1 vertices are NaN/inf, e.g. \[2\]"),
        (np.eye(3), np.array([[0, 1, 2], [0, 1, 7]]), r"1 faces index missing vertices .* e.g. faces \[1\]"),
        (np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]]), r"1 degenerate \(zero-area\) faces, e.g. \[0\]"),
        (np.eye(3), np.array([[0.0, 1, 2]]), r"faces must be integers"),
        (np.eye(4, 3), np.array([[0, 1, 2]]), r"1 vertices are used by no face, e.g. \[3\]"),
    ],
)
def test_validate_mesh_names_each_problem(vertices, faces, message):
    with pytest.raises(InputError, match=message) as info:
        mesh.validate_mesh(vertices, faces, name="template.obj")
    assert all(line.startswith("template.obj:") for line in info.value.problems)


def test_validate_mesh_reports_all_problems_at_once():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, np.inf, 0]])
    with pytest.raises(InputError) as info:
        mesh.validate_mesh(vertices, np.array([[0, 1, 2], [0, 1, 5]]))
    assert len(info.value.problems) == 2
