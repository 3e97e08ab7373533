"""Our host operators against libigl, the reference implementation."""

import igl
import numpy as np
import pytest

from ngdjax import operators, procedural


def _random_meshes():
    rng = np.random.default_rng(0)
    sphere_v, sphere_f = procedural.sphere(2)
    garment_v, garment_f = procedural.garment(600)
    return [
        (sphere_v * rng.uniform(0.5, 2.0, 3) + 0.01 * rng.normal(size=sphere_v.shape), sphere_f),
        (garment_v + 0.005 * rng.normal(size=garment_v.shape), garment_f),
    ]


@pytest.mark.parametrize("vertices, faces", _random_meshes())
def test_operators_match_libigl(vertices, faces):
    grad = operators.gradient_operator(vertices, faces)
    np.testing.assert_allclose(grad.toarray(), igl.grad(vertices, faces).toarray(), atol=1e-9)
    system = operators.poisson_matrix(vertices, faces)
    np.testing.assert_allclose(system.toarray(), -2.0 * igl.cotmatrix(vertices, faces).toarray(), atol=1e-9)
    mass = operators.vertex_mass_matrix(vertices, faces)
    reference = igl.massmatrix(vertices, faces, igl.MASSMATRIX_TYPE_BARYCENTRIC)
    np.testing.assert_allclose(mass.diagonal(), reference.diagonal(), rtol=1e-12)


def test_gradient_of_linear_function_is_its_tangential_part():
    vertices, faces = _random_meshes()[1]
    direction = np.array([0.3, -1.2, 0.7])
    grad = operators.gradient_operator(vertices, faces) @ (vertices @ direction)
    per_face = grad.reshape(3, -1).T  # blocked rows -> (F, 3)
    normals = np.cross(*(vertices[faces[:, i]] - vertices[faces[:, 0]] for i in (1, 2)))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    expected = direction - (normals @ direction)[:, None] * normals
    np.testing.assert_allclose(per_face, expected, atol=1e-9)


def test_poisson_matrix_is_symmetric_psd_with_constant_null_space():
    vertices, faces = _random_meshes()[1]
    system = operators.poisson_matrix(vertices, faces)
    assert abs(system - system.T).max() < 1e-12
    np.testing.assert_allclose(system @ np.ones(len(vertices)), 0.0, atol=1e-9)
    x = np.random.default_rng(1).normal(size=len(vertices))
    assert x @ (system @ x) > 0
