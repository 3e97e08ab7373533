import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ngdjax import procedural
from ngdjax.mesh import (
    boundary_edges,
    boundary_loops,
    edges,
    face_areas,
    face_centroids,
    face_cross,
    non_manifold_edges,
    validate_mesh,
)
from ngdjax.poisson import build_poisson_solver, jacobians_from_vertices, solve
from ngdjax.remesh import (
    RemeshSchedule,
    face_gradient_statistic,
    SLIVER_FRACTION,
    flip_edges,
    idw_transfer,
    merge_close_vertices,
    remesh_template,
    select_faces,
    split_edges,
    transfer_face_state,
    valence_energy,
)


MESHES = {
    "grid_3x3": lambda: procedural.flat_grid(3),
    "grid_6x6_jittered": lambda: procedural.flat_grid(6, jitter=0.05),
    "cylinder": lambda: procedural.open_cylinder(150),
    "garment": lambda: procedural.garment(150),
}


# --- naive references --------------------------------------------------------------------------


def naive_split(vertices, faces, vertex_mask, min_length):
    """Edge by edge, face by face: a midpoint per qualifying edge (shared through a dict)."""
    vertices = [tuple(v) for v in vertices]
    midpoint = {}
    for face in faces:
        for i in range(3):
            p, q = sorted((int(face[i]), int(face[(i + 1) % 3])))
            length = np.linalg.norm(np.subtract(vertices[p], vertices[q]))
            if vertex_mask[p] and vertex_mask[q] and length > min_length and (p, q) not in midpoint:
                midpoint[(p, q)] = None
    for key in sorted(midpoint):  # new vertices in edge order
        midpoint[key] = len(vertices)
        vertices.append(tuple((np.asarray(vertices[key[0]]) + np.asarray(vertices[key[1]])) / 2))
    out = []
    for face in faces:
        face = [int(v) for v in face]
        mids = [midpoint.get(tuple(sorted((face[i], face[(i + 1) % 3])))) for i in range(3)]
        count = sum(m is not None for m in mids)
        if count == 0:
            out.append(face)
            continue
        for shift in range(3):  # rotate into the canonical pattern
            a, b, c = face[shift:] + face[:shift]
            m0, m1, m2 = mids[shift:] + mids[:shift]
            if count == 1 and m0 is not None or count == 2 and m2 is None or count == 3:
                break
        if count == 1:
            out += [[a, m0, c], [m0, b, c]]
        elif count == 2:
            out.append([m0, b, m1])
            if np.linalg.norm(np.subtract(vertices[a], vertices[m1])) <= np.linalg.norm(np.subtract(vertices[m0], vertices[c])):
                out += [[a, m0, m1], [a, m1, c]]
            else:
                out += [[a, m0, c], [m0, m1, c]]
        else:
            out += [[a, m0, m2], [m0, b, m1], [m2, m1, c], [m0, m1, m2]]
    return np.asarray(vertices), np.asarray(out), len(midpoint)


def naive_flip(vertices, faces, boundary_valence=4, count_folding=False):
    """Every interior edge tried by really flipping it and recomputing the energy; then greedy."""
    boundary = set(boundary_edges(faces).reshape(-1).tolist())  # flips never change it

    def energy_of(faces):
        neighbours = {}
        for g in faces:
            for i in range(3):
                neighbours.setdefault(g[i], set()).update((g[(i + 1) % 3], g[(i + 2) % 3]))
        return sum((len(n) - (boundary_valence if v in boundary else 6)) ** 2 for v, n in neighbours.items())

    faces = [list(map(int, f)) for f in faces]
    energy = energy_of(faces)
    edge_set = {tuple(e) for e in edges(np.asarray(faces))}
    half_edge = {(g[j], g[(j + 1) % 3]): (f, j) for f, g in enumerate(faces) for j in range(3)}
    candidates, n_folding = [], 0
    for f1, face in enumerate(faces):
        for i in range(3):
            a, b, c = face[i], face[(i + 1) % 3], face[(i + 2) % 3]
            if a > b:
                continue
            if (b, a) not in half_edge:
                continue  # boundary edge
            f2, j = half_edge[(b, a)]
            d = faces[f2][(j + 2) % 3]
            trial = [list(g) for g in faces]
            trial[f1], trial[f2] = [c, a, d], [d, b, c]
            change = energy_of(trial) - energy
            old_normal = sum(np.cross(vertices[g[1]] - vertices[g[0]], vertices[g[2]] - vertices[g[0]]) for g in (face, faces[f2]))
            new_normals = [np.cross(vertices[g[1]] - vertices[g[0]], vertices[g[2]] - vertices[g[0]])
                           for g in (trial[f1], trial[f2])]
            normals_ok = all(np.dot(n, old_normal) > 0 for n in new_normals)
            normals_ok &= all(np.linalg.norm(n) > SLIVER_FRACTION * np.linalg.norm(old_normal) for n in new_normals)
            n_folding += change < 0 and not normals_ok
            if change < 0 and normals_ok and tuple(sorted((c, d))) not in edge_set:
                candidates.append((change, (a, b), f1, f2, [c, a, d], [d, b, c], {a, b, c, d}))
    used = set()
    for change, _, f1, f2, new1, new2, quad in sorted(candidates, key=lambda t: (t[0], t[1])):
        if not quad & used:
            used |= quad
            faces[f1], faces[f2] = new1, new2
    return (np.asarray(faces), n_folding) if count_folding else np.asarray(faces)


def oriented_triangles(vertices, faces, decimals=9):
    """A set of triangles by rounded coordinates, each rotated to start at its smallest corner:
    equal sets mean the same oriented triangles, whatever the vertex numbering."""
    out = set()
    for face in faces:
        corners = [tuple(np.round(vertices[v], decimals)) for v in face]
        start = min(range(3), key=lambda i: corners[i])
        out.add(tuple(corners[start:] + corners[:start]))
    return out


def assert_clean(vertices, faces, n_loops):
    """Manifold, consistently oriented, valid mesh with ``n_loops`` boundary loops."""
    validate_mesh(vertices, faces)
    assert len(non_manifold_edges(faces)) == 0
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    assert len(np.unique(directed, axis=0)) == len(directed), "a half-edge appears twice: inconsistent orientation"
    assert len(boundary_loops(faces)) == n_loops


def random_mask(n, fraction, seed):
    return np.random.default_rng(seed).uniform(size=n) < fraction


# --- split -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MESHES)
@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_split_matches_naive_reference(name, fraction):
    vertices, faces = MESHES[name]()
    mask = random_mask(len(vertices), fraction, seed=1)
    min_length = 0.9 * np.median(edge_lengths(vertices, edges(faces)))
    new_vertices, new_faces, parents = split_edges(vertices, faces, mask, min_length)
    ref_vertices, ref_faces, n_ref = naive_split(vertices, faces, mask, min_length)

    assert n_ref > 0
    assert len(new_vertices) == len(vertices) + n_ref == len(vertices) + len(parents)
    np.testing.assert_array_equal(new_vertices[: len(vertices)], vertices)
    np.testing.assert_allclose(new_vertices[len(vertices):], vertices[parents].mean(axis=1))
    assert oriented_triangles(new_vertices, new_faces) == oriented_triangles(ref_vertices, ref_faces)
    assert_clean(new_vertices, new_faces, len(boundary_loops(faces)))
    np.testing.assert_allclose(face_areas(new_vertices, new_faces).sum(), face_areas(vertices, faces).sum(), rtol=1e-12)


def test_split_on_flat_grid_preserves_area_and_normals_exactly():
    vertices, faces = procedural.flat_grid(3)
    new_vertices, new_faces, parents = split_edges(vertices, faces, np.ones(9, bool), 0.0)
    assert len(parents) == len(edges(faces)) == 16
    assert len(new_faces) == 4 * len(faces)  # every face has 3 split edges
    assert face_areas(new_vertices, new_faces).sum() == 1.0
    assert (face_cross(new_vertices, new_faces)[:, 2] > 0).all()
    # The boundary loop went from 8 to 16 vertices, through the new midpoints.
    assert len(boundary_loops(new_faces)[0]) == 16


def test_split_respects_mask_and_min_length():
    vertices, faces = procedural.flat_grid(3)
    _, _, parents = split_edges(vertices, faces, np.ones(9, bool), min_length=0.6)  # only diagonals (0.707)
    np.testing.assert_allclose(edge_lengths(vertices, parents), np.sqrt(0.5))
    assert len(parents) == 4
    mask = np.zeros(9, bool)
    mask[[0, 1]] = True
    _, new_faces, parents = split_edges(vertices, faces, mask, 0.0)
    np.testing.assert_array_equal(parents, [[0, 1]])
    assert len(new_faces) == len(faces) + 1  # a boundary edge: one face becomes two


# --- flip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MESHES)
@pytest.mark.parametrize("boundary_valence", [4, 6])
def test_flip_matches_naive_reference(name, boundary_valence):
    vertices, faces = MESHES[name]()
    # Split first: mixed valences give the flips something to do.
    vertices, faces, _ = split_edges(vertices, faces, random_mask(len(vertices), 0.6, seed=2), 0.0)
    flipped = flip_edges(vertices, faces, boundary_valence)
    reference = naive_flip(vertices, faces, boundary_valence)
    assert (flipped != faces).any()
    np.testing.assert_array_equal(flipped, reference)
    before = valence_energy(faces, len(vertices), boundary_valence)
    assert valence_energy(flipped, len(vertices), boundary_valence) < before
    assert_clean(vertices, flipped, len(boundary_loops(faces)))
    # Boundary edges never flip.
    np.testing.assert_array_equal(np.unique(boundary_edges(flipped), axis=0), np.unique(boundary_edges(faces), axis=0))


def test_flip_never_folds_a_flat_mesh():
    # A strongly jittered grid has non-convex quads, where a valence-improving flip would fold.
    vertices, faces = procedural.flat_grid(8, jitter=0.06, seed=3)
    vertices, faces, _ = split_edges(vertices, faces, random_mask(len(vertices), 0.7, seed=4), 0.0)
    flipped = flip_edges(vertices, faces)
    reference, n_folding = naive_flip(vertices, faces, 4, count_folding=True)
    assert n_folding > 0
    np.testing.assert_array_equal(flipped, reference)
    assert (face_cross(vertices, flipped)[:, 2] > 0).all()


def test_flip_never_makes_a_sliver():
    # a (0) lies on the segment from c (2) to d (3), as the midpoint of a split edge does, a hair
    # below it, so the orientation test passes on rounding noise; fans of extra vertices raise the
    # valences of a and b (1), so flipping (a, b) into (c, d) would lower the valence energy.
    upper = [(np.cos(t), 1 + np.sin(t), 0.0) for t in np.linspace(0.2, np.pi - 0.2, 5)]
    lower = [(np.cos(t), -0.8 * np.sin(t), 0.0) for t in np.linspace(np.pi - 0.2, 0.2, 5)]
    vertices = np.array([(0, -1e-15, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0)] + upper + lower)
    ring_b, ring_a = [3, 4, 5, 6, 7, 8, 2], [2, 9, 10, 11, 12, 13, 3]
    faces = np.array([(0, 1, 2), (1, 0, 3)] + [(1, p, q) for p, q in zip(ring_b, ring_b[1:])]
                     + [(0, p, q) for p, q in zip(ring_a, ring_a[1:])])
    sliver = faces.copy()
    sliver[0], sliver[1] = (2, 0, 3), (3, 1, 2)
    assert valence_energy(sliver, len(vertices)) < valence_energy(faces, len(vertices))
    flipped = flip_edges(vertices, faces)
    assert face_areas(vertices, flipped).min() > 1e-3
    assert (face_cross(vertices, flipped)[:, 2] > 0).all()
    validate_mesh(vertices, flipped)


def test_flip_never_creates_an_existing_edge():
    # An open tetrahedron (three faces around a tall apex 3). With a boundary target of 10,
    # flipping the apex edge (0, 3) lowers the valence energy and passes the normal check, but its
    # new edge (1, 2) is a base edge already: the flip would double face (1, 2, 3).
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1 / 3, 1 / 3, 2]])
    faces = np.array([[0, 1, 3], [1, 2, 3], [2, 0, 3]])
    flipped_by_hand = np.array([[1, 3, 2], [1, 2, 3], [2, 0, 1]])
    assert valence_energy(flipped_by_hand, 4, 10) < valence_energy(faces, 4, 10)
    old_normal = face_cross(vertices, faces[[0, 2]]).sum(axis=0)
    assert (face_cross(vertices, flipped_by_hand[[0, 2]]) @ old_normal > 0).all()
    np.testing.assert_array_equal(flip_edges(vertices, faces, boundary_valence=10), faces)


# --- merge -------------------------------------------------------------------------------------


def test_merge_close_vertices_keeps_order_and_drops_degenerate_faces():
    vertices, faces = procedural.flat_grid(3)
    # Duplicate vertex 4 as vertex 9 (within tolerance) and route two faces through the duplicate;
    # add an unreferenced vertex 10 and a face that collapses to an edge after merging.
    vertices = np.concatenate([vertices, vertices[4:5] + 1e-8, [[5.0, 5, 5]]])
    faces = faces.copy()
    faces[[0, 3]] = np.where(faces[[0, 3]] == 4, 9, faces[[0, 3]])
    faces = np.concatenate([faces, [[4, 9, 0]]])
    merged_vertices, merged_faces, old_to_new = merge_close_vertices(vertices, faces)
    np.testing.assert_array_equal(merged_vertices, vertices[:9])
    np.testing.assert_array_equal(old_to_new, [0, 1, 2, 3, 4, 5, 6, 7, 8, 4, -1])
    np.testing.assert_array_equal(merged_faces, procedural.flat_grid(3)[1])
    # A mesh without duplicates comes back unchanged, in order (no lexicographic reordering).
    v, f = procedural.garment(300)
    permutation = np.random.default_rng(0).permutation(len(v))
    v, f = v[permutation], np.argsort(permutation)[f]
    same_v, same_f, identity = merge_close_vertices(v, f)
    np.testing.assert_array_equal(same_v, v)
    np.testing.assert_array_equal(same_f, f)
    np.testing.assert_array_equal(identity, np.arange(len(v)))


# --- the remesh event --------------------------------------------------------------------------


def upper_statistic(vertices, faces):
    """A statistic that is high in the upper part of the garment (a smooth, deterministic field)."""
    return np.maximum(face_centroids(vertices, faces)[:, 1], 0.0)


@pytest.mark.parametrize("name", ["cylinder", "garment"])
def test_remesh_template_refines_where_the_statistic_is_high(name):
    vertices, faces = MESHES[name]()
    statistic = upper_statistic(vertices, faces)
    schedule = RemeshSchedule(start_edge_length=0.0)
    result = remesh_template(vertices, faces, statistic, event_index=0, schedule=schedule)
    assert result.n_split > 0 and not result.stopped_by_budget
    assert_clean(result.vertices, result.faces, len(boundary_loops(faces)))
    assert len(result.vertices) == len(vertices) + result.n_split  # nothing to merge
    np.testing.assert_array_equal(result.vertices[: len(vertices)], vertices)
    # Every split edge has both ends on selected faces.
    selected_vertices = np.unique(faces[select_faces(statistic, schedule.quantile(0))])
    assert np.isin(parent_edges(vertices, faces, result.vertices[len(vertices):]), selected_vertices).all()
    # Later events select fewer faces (higher quantile).
    later = remesh_template(vertices, faces, statistic, event_index=5, schedule=schedule)
    assert 0 < later.n_split < result.n_split


def test_remesh_min_edge_length_stops_refinement():
    vertices, faces = MESHES["cylinder"]()
    statistic = upper_statistic(vertices, faces)
    longest = edge_lengths(vertices, edges(faces)).max()
    result = remesh_template(vertices, faces, statistic, 0, RemeshSchedule(start_edge_length=longest))
    assert result.n_split == 0 and len(result.vertices) == len(vertices)


def test_remesh_respects_the_vertex_budget(caplog):
    vertices, faces = MESHES["garment"]()
    statistic = upper_statistic(vertices, faces)
    unlimited = remesh_template(vertices, faces, statistic, 0, RemeshSchedule(start_edge_length=0.0))
    budget = len(vertices) + unlimited.n_split // 2
    with caplog.at_level(logging.INFO, logger="ngdjax"):
        limited = remesh_template(
            vertices, faces, statistic, 0, RemeshSchedule(start_edge_length=0.0, max_vertices=budget)
        )
    assert limited.stopped_by_budget and len(limited.vertices) == budget
    assert limited.n_split == unlimited.n_split // 2
    assert sum("vertex budget" in r.getMessage() for r in caplog.records) == 1
    assert_clean(limited.vertices, limited.faces, len(boundary_loops(faces)))
    # The longest candidates were split: no candidate left whole is longer than a split one.
    split_lengths = edge_lengths(vertices, parent_edges(vertices, faces, limited.vertices[len(vertices):]))
    candidate_lengths = edge_lengths(vertices, parent_edges(vertices, faces, unlimited.vertices[len(vertices):]))
    assert split_lengths.min() == np.sort(candidate_lengths)[::-1][len(split_lengths) - 1]


def edge_lengths(vertices, edge_list):
    return np.linalg.norm(vertices[edge_list[:, 0]] - vertices[edge_list[:, 1]], axis=1)


def parent_edges(vertices, faces, new_points):
    """The edge (N, 2) of (vertices, faces) whose midpoint each new point is."""
    edge_list = edges(faces)
    distance = np.linalg.norm(new_points[:, None] - vertices[edge_list].mean(axis=1)[None], axis=-1)
    assert distance.min(axis=1).max() < 1e-12
    return edge_list[np.argmin(distance, axis=1)]


def test_remesh_schedule_matches_method():
    schedule = RemeshSchedule()
    assert (schedule.quantile(0), schedule.edge_length(0)) == (0.85, 0.010)
    np.testing.assert_allclose([schedule.quantile(1), schedule.edge_length(1)], [0.86, 0.0097])
    assert schedule.quantile(25) == schedule.quantile(10) == pytest.approx(0.95)


# --- the gradient statistic --------------------------------------------------------------------


@pytest.mark.parametrize("channels", [None, 3])
def test_face_gradient_statistic_matches_a_naive_loop(channels):
    rng = np.random.default_rng(5)
    height, width, n_faces = 12, 10, 7  # face 6 never appears
    shape = (height, width) if channels is None else (height, width, channels)
    grad_image = rng.normal(size=shape).astype(np.float32)
    target_mask = (rng.uniform(size=(height, width)) < 0.7).astype(np.float32)
    face_ids = rng.integers(0, n_faces, size=(height, width)).astype(np.int32)  # ids 0..6: faces 0..5
    means, seen = face_gradient_statistic(
        jnp.asarray(grad_image), jnp.asarray(target_mask), jnp.asarray(face_ids), n_faces
    )

    g = np.abs(grad_image) if channels is None else np.sqrt((grad_image.astype(np.float64) ** 2).sum(-1))
    g = g * target_mask
    g = (g - g.min()) / (g.max() - g.min())
    expected_means, expected_seen = np.zeros(n_faces), np.zeros(n_faces)
    for f in range(n_faces):
        pixels = [g[i, j] for i in range(height) for j in range(width) if face_ids[i, j] == f + 1 and target_mask[i, j]]
        if pixels:
            expected_means[f], expected_seen[f] = np.mean(pixels), 1.0
    assert means.dtype == seen.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(means), expected_means, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(seen), expected_seen)
    assert expected_seen[:6].sum() >= 5 and expected_seen[6] == 0


def test_face_gradient_statistic_of_a_zero_gradient_is_zero():
    # Also: a bool mask and the float ids of a rast buffer are accepted.
    means, seen = face_gradient_statistic(
        jnp.zeros((4, 4, 3), jnp.float32), jnp.ones((4, 4), bool), jnp.ones((4, 4), jnp.float32), 2
    )
    np.testing.assert_array_equal(np.asarray(means), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(seen), [1.0, 0.0])


def test_select_faces_uses_the_quantile_over_all_faces():
    statistic = np.concatenate([np.zeros(80), np.linspace(1.0, 5.0, 20)])
    selected = select_faces(statistic, 0.9)
    np.testing.assert_array_equal(np.flatnonzero(selected), np.arange(90, 100))
    assert not select_faces(np.full(10, 3.0), 0.5).any()


# --- state transfer ----------------------------------------------------------------------------


def test_idw_transfer_is_exact_at_identical_points_with_k1():
    rng = np.random.default_rng(6)
    points = rng.uniform(size=(50, 3))
    values = rng.normal(size=(50, 3, 3)).astype(np.float32)
    permutation = rng.permutation(50)
    moved = idw_transfer(points, values, points[permutation], k=1)
    assert moved.dtype == np.float32 and isinstance(moved, np.ndarray)
    np.testing.assert_array_equal(moved, values[permutation])
    # With k = 3 an identical point still dominates (weight ~1e10 against ~1/d).
    np.testing.assert_allclose(idw_transfer(points, values, points, k=3), values, rtol=1e-6, atol=1e-6)


def test_idw_transfer_of_a_linear_field_is_close():
    rng = np.random.default_rng(7)
    old = rng.uniform(size=(4000, 3))
    new = rng.uniform(0.1, 0.9, size=(200, 3))
    linear = lambda p: p @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]]) + 1.0
    transferred = idw_transfer(old, jnp.asarray(linear(old), jnp.float32), new, k=3)
    assert isinstance(transferred, jax.Array) and transferred.dtype == jnp.float32
    # Within the spacing of the old points (~0.06) times the gradient (|grad| <= 3.6).
    np.testing.assert_allclose(np.asarray(transferred), linear(new), atol=0.2)
    assert np.abs(np.asarray(transferred) - linear(new)).mean() < 0.05


def test_transferred_static_jacobians_reproduce_the_deformed_mesh():
    # k = 3 blends each split face's parent with its neighbours: an O(edge length x curvature)
    # error, within 1e-3 of the size from about 1000 vertices on (6e-4 at 1500, 3e-3 at 300).
    vertices, faces = procedural.garment(1500)
    deformed = vertices * np.array([1.1, 0.95, 1.05]) + 0.02 * np.sin(4.0 * vertices[:, [1, 2, 0]])
    old_solver = build_poisson_solver(vertices, faces, method="host")
    jacobians = jacobians_from_vertices(old_solver, jnp.asarray(deformed, jnp.float32))

    result = remesh_template(vertices, faces, upper_statistic(vertices, faces), 0, RemeshSchedule())
    assert result.n_split > 50
    new_jacobians = transfer_face_state(vertices, faces, result.vertices, result.faces, jacobians, k=3)
    assert new_jacobians.shape == (len(result.faces), 3, 3) and new_jacobians.dtype == jnp.float32
    new_solver = build_poisson_solver(result.vertices, result.faces, method="host")
    recovered = np.asarray(solve(new_solver, new_jacobians))[: len(vertices)]

    size = np.linalg.norm(deformed.max(0) - deformed.min(0))
    error = np.abs((recovered - recovered.mean(0)) - (deformed - deformed.mean(0))).max()
    assert error < 1e-3 * size


def test_transfer_face_state_moves_adam_moments_and_keeps_the_rest():
    vertices, faces = MESHES["cylinder"]()
    result = remesh_template(vertices, faces, upper_statistic(vertices, faces), 0, RemeshSchedule(start_edge_length=0.0))
    rng = np.random.default_rng(8)
    params = {"jacobians": jnp.asarray(rng.normal(size=(len(faces), 3, 3)), jnp.float32),
              "net": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)}
    optimizer = optax.adam(1e-3)
    state = optimizer.init(params)
    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        _, state = optimizer.update(jax.tree_util.tree_map(jnp.ones_like, params), state, params)

    moved = transfer_face_state(vertices, faces, result.vertices, result.faces, state, k=1)
    adam, old_adam = moved[0], state[0]
    assert int(adam.count) == int(old_adam.count) == 1
    assert adam.mu["net"] is old_adam.mu["net"] and adam.nu["net"] is old_adam.nu["net"]
    for moment, old_moment in ((adam.mu, old_adam.mu), (adam.nu, old_adam.nu)):
        assert moment["jacobians"].shape == (len(result.faces), 3, 3)
        assert moment["jacobians"].dtype == jnp.float32
    # k = 1 copies the moment of the nearest old face: a split face's children carry its values.
    nearest = np.argmin(np.linalg.norm(
        face_centroids(result.vertices, result.faces)[:, None] - face_centroids(vertices, faces)[None], axis=-1), axis=1)
    np.testing.assert_array_equal(np.asarray(adam.mu["jacobians"]), np.asarray(old_adam.mu["jacobians"])[nearest])
    # The moved state works with the new parameters.
    new_params = {"jacobians": jnp.zeros((len(result.faces), 3, 3), jnp.float32), "net": params["net"]}
    with jax.numpy_dtype_promotion("standard"):
        updates, _ = optimizer.update(jax.tree_util.tree_map(jnp.ones_like, new_params), moved, new_params)
    assert updates["jacobians"].shape == (len(result.faces), 3, 3)
