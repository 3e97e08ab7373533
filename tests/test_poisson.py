import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngdjax import procedural
from ngdjax.errors import InputError
from ngdjax.mesh import face_normals
from ngdjax.poisson import build_poisson_solver, jacobians_from_vertices, solve

METHODS = ["host", "dense"]
MESHES = {
    "closed_sphere": lambda: procedural.sphere(3),
    "open_cylinder_2_loops": lambda: procedural.open_cylinder(1200),
    "garment_4_loops": lambda: procedural.garment(2500),
}


def _diameter(vertices):
    return float(np.linalg.norm(vertices.max(0) - vertices.min(0)))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", MESHES)
def test_round_trip_recovers_centred_vertices(name, method):
    vertices, faces = MESHES[name]()
    solver = build_poisson_solver(vertices, faces, method=method)
    # A deformed target, not only the source mesh: bend and stretch it.
    target = vertices * np.array([1.3, 0.8, 1.1]) + 0.1 * np.sin(4 * vertices[:, [1, 2, 0]])
    x = jnp.asarray(target, jnp.float32)
    recovered = solve(solver, jacobians_from_vertices(solver, x))
    error = np.abs(np.asarray(recovered) - (target - target.mean(0))).max() / _diameter(target)
    assert error < 1e-5


def test_source_jacobians_are_tangent_projectors():
    vertices, faces = procedural.garment(800)
    solver = build_poisson_solver(vertices, faces, method="host")
    jacobians = np.asarray(solver.jacobians(jnp.asarray(vertices, jnp.float32)))
    n = face_normals(vertices, faces)
    np.testing.assert_allclose(jacobians, np.eye(3) - n[:, :, None] * n[:, None, :], atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_normal_component_of_jacobians_is_ignored(method):
    vertices, faces = procedural.garment(1500)
    solver = build_poisson_solver(vertices, faces, method=method)
    rng = np.random.default_rng(0)
    jacobians = jnp.asarray(np.eye(3) + 0.2 * rng.normal(size=(len(faces), 3, 3)), jnp.float32)
    a = rng.normal(size=(len(faces), 3))
    n = face_normals(vertices, faces)
    shifted = jacobians + jnp.asarray(a[:, :, None] * n[:, None, :], jnp.float32)
    base = np.asarray(solve(solver, jacobians))
    np.testing.assert_allclose(np.asarray(solve(solver, shifted)), base, atol=1e-5 * _diameter(vertices))


def test_dense_and_host_paths_agree_on_arbitrary_jacobians():
    vertices, faces = procedural.open_cylinder(900)
    jacobians = jnp.asarray(np.random.default_rng(2).normal(size=(len(faces), 3, 3)), jnp.float32)
    results = [np.asarray(build_poisson_solver(vertices, faces, method=m).solve(jacobians)) for m in METHODS]
    np.testing.assert_allclose(results[0], results[1], atol=1e-5 * np.abs(results[0]).max())


@pytest.mark.parametrize("method", METHODS)
def test_gradient_matches_finite_differences_float64(method):
    vertices, faces = procedural.garment(400)
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        solver = build_poisson_solver(vertices, faces, method=method, dtype=jnp.float64)
        weights = jnp.asarray(rng.normal(size=vertices.shape))
        base = jnp.asarray(np.eye(3) + 0.1 * rng.normal(size=(len(faces), 3, 3)))

        def loss(jacobians):
            x = solve(solver, jacobians)
            return jnp.sum(weights * x) + jnp.sum(jnp.sin(3.0 * x) ** 2)

        gradient = jax.jit(jax.grad(loss))(base)
        for _ in range(3):
            direction = jnp.asarray(rng.normal(size=base.shape))
            eps = 1e-6
            numeric = (loss(base + eps * direction) - loss(base - eps * direction)) / (2 * eps)
            analytic = jnp.sum(gradient * direction)
            assert abs(float(numeric - analytic)) < 1e-6 * max(1.0, abs(float(analytic)))


@pytest.mark.parametrize("method", METHODS)
def test_backward_is_the_transpose_of_the_forward(method):
    """<solve(J1), X2> == <J1, vjp(X2)> for random J1, X2: the custom backward is the exact adjoint."""
    vertices, faces = procedural.garment(600)
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        solver = build_poisson_solver(vertices, faces, method=method, dtype=jnp.float64)
        j1 = jnp.asarray(rng.normal(size=(len(faces), 3, 3)))
        x2 = jnp.asarray(rng.normal(size=vertices.shape))
        x1, vjp = jax.vjp(lambda j: solve(solver, j), j1)
        (j2,) = vjp(x2)
        np.testing.assert_allclose(float(jnp.sum(x1 * x2)), float(jnp.sum(j1 * j2)), rtol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_each_component_is_centred_on_its_own_mean(method):
    vertices, faces = procedural.sphere(2)
    two_v = np.concatenate([vertices, 0.5 * vertices + np.array([1.0, 0, 0])])
    two_f = np.concatenate([faces, faces + len(vertices)])
    solver = build_poisson_solver(two_v, two_f, method=method)
    recovered = np.asarray(solver.solve(solver.jacobians(jnp.asarray(two_v, jnp.float32))))
    expected = np.concatenate([vertices - vertices.mean(0), 0.5 * (vertices - vertices.mean(0))])
    np.testing.assert_allclose(recovered, expected, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_jitted_solve_does_not_retrace_for_new_jacobians(method):
    vertices, faces = procedural.open_cylinder(500)
    solver = build_poisson_solver(vertices, faces, method=method)
    traces = []

    @jax.jit
    def step(solver, jacobians):
        traces.append(1)
        return jax.value_and_grad(lambda j: jnp.sum(solve(solver, j) ** 2))(jacobians)

    rng = np.random.default_rng(5)
    for _ in range(4):
        value, grad = step(solver, jnp.asarray(rng.normal(size=(len(faces), 3, 3)), jnp.float32))
        assert np.isfinite(float(value)) and bool(jnp.all(jnp.isfinite(grad)))
    assert len(traces) == 1


def test_bad_inputs_raise_clear_errors():
    vertices, faces = procedural.sphere(1)
    with pytest.raises(InputError, match="not one of"):
        build_poisson_solver(vertices, faces, method="cholesky")
    with pytest.raises(InputError, match=r"garment.obj: 1 faces index missing vertices"):
        build_poisson_solver(vertices, np.concatenate([faces, [[0, 1, 999]]]), name="garment.obj")
