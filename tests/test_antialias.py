"""The pure-JAX antialias op and its topology table against naive references (docs/render.md 5).

The references below are plain Python loops over pixel pairs written straight from docs/render.md
5.3 / 5.4, in the inputs' float dtype (np.float32 scalars for float32 inputs). The ``rast`` inputs
come from a naive point-sampling rasteriser (docs/render.md 2.2), not from the real one.
"""

from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ngdjax import mesh, procedural
from ngdjax.render.jax.antialias import antialias
from ngdjax.render.topology import antialias_topology

HEIGHT, WIDTH = 20, 24


# ---------------------------------------------------------------------------------------------
# Naive references


def naive_topology(tris: np.ndarray) -> np.ndarray:
    """Opposite vertex across each edge, for meshes where every edge has at most two triangles."""
    owners = defaultdict(list)
    for t, tri in enumerate(tris.tolist()):
        for k in range(3):
            owners[frozenset((tri[(k + 1) % 3], tri[(k + 2) % 3]))].append((t, tri[k]))
    opposite = np.full(tris.shape, -1, np.int32)
    for t, tri in enumerate(tris.tolist()):
        for k in range(3):
            others = [third for owner, third in owners[frozenset((tri[(k + 1) % 3], tri[(k + 2) % 3]))] if owner != t]
            if len(others) == 1:
                opposite[t, k] = others[0]
    return opposite


def naive_rasterize(clip_pos: np.ndarray, tris: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 4) float32 rast: centre point sampling, nearest z/w wins, u, v, z/w as docs/render.md 2.2."""
    clip = np.asarray(clip_pos, np.float64)
    fx, fy = np.meshgrid((2 * np.arange(width) + 1) / width - 1, (2 * np.arange(height) + 1) / height - 1)
    rast = np.zeros((height, width, 4))
    nearest = np.full((height, width), np.inf)
    for t, corners in enumerate(tris):
        if len(set(corners.tolist())) < 3:  # repeated indices: zero area, never drawn
            continue
        q = [(clip[i, 0] - fx * clip[i, 3], clip[i, 1] - fy * clip[i, 3]) for i in corners]
        cross = lambda a, b: a[0] * b[1] - a[1] * b[0]  # noqa: E731
        a0, a1, a2 = cross(q[1], q[2]), cross(q[2], q[0]), cross(q[0], q[1])
        total = a0 + a1 + a2
        depth = sum(clip[i, 2] * a for i, a in zip(corners, (a0, a1, a2))) / sum(
            clip[i, 3] * a for i, a in zip(corners, (a0, a1, a2))
        )
        wins = (a0 * total > 0) & (a1 * total > 0) & (a2 * total > 0) & (depth <= nearest)
        nearest = np.where(wins, depth, nearest)
        values = np.stack([a0 / total, a1 / total, depth, np.full_like(depth, t + 1)], axis=-1)
        rast = np.where(wins[..., None], values, rast)
    return rast.astype(np.float32)


def reference_pairs(rast, pos, tris, opposite) -> list[dict]:
    """Every accepted candidate pair of one image, by plain loops over pixel pairs (docs/render.md 5.3)."""
    height, width = rast.shape[:2]
    accepted = []
    with np.errstate(all="ignore"):
        for vertical in (False, True):
            for r in range(height - vertical):
                for c in range(width - (not vertical)):
                    p1 = (r + 1, c) if vertical else (r, c + 1)
                    pair = reference_pair(rast, pos, tris, opposite, (r, c), p1, vertical)
                    if pair is not None:
                        accepted.append(pair)
    return accepted


def reference_pair(rast, pos, tris, opposite, p0, p1, vertical):
    """One candidate pair: None if rejected, else a dict with alpha, the exit edge, and so on."""
    f = pos.dtype.type
    height, width = rast.shape[:2]
    hx, hy = f(width / 2), f(height / 2)
    id0, id1 = rast[p0][3], rast[p1][3]
    if id0 == id1:
        return None
    t0, t1 = int(id0) - 1, int(id1) - 1
    if t0 < 0:
        front_in_p0 = False
    elif t1 < 0:
        front_in_p0 = True
    else:
        front_in_p0 = bool(rast[p0][2] < rast[p1][2])
    s = f(1) if front_in_p0 else f(-1)
    t = t0 if front_in_p0 else t1
    qr, qc = p0 if front_in_p0 else p1

    def project(i):
        px, py, _, pw = pos[i]
        inverse_w = f(1) / pw
        return px * inverse_w * hx - (f(qc) + f(0.5) - hx), py * inverse_w * hy - (f(qr) + f(0.5) - hy)

    v = [project(i) for i in tris[t]]
    o = [project(opposite[t, k]) if opposite[t, k] >= 0 else v[k] for k in range(3)]

    def area(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])

    whole = area(*v)
    variants = [[o[j] if j == k else v[j] for j in range(3)] for k in range(3)]  # corner k -> opposite k
    silhouette = [np.signbit(area(*variant)) == np.signbit(whole) for variant in variants]
    if not any(silhouette):
        return None
    if vertical:
        v = [(y, x) for x, y in v]
    scores = []
    for k in range(3):
        (xa, ya), (xb, yb) = v[(k + 1) % 3], v[(k + 2) % 3]
        crosses = np.signbit(ya) != np.signbit(yb)
        scores.append(s * ((xa * yb - xb * ya) / (yb - ya)) if crosses else -np.inf)
    if scores[2] > scores[0] and scores[2] > scores[1]:
        k = 2
    elif scores[1] > scores[0]:
        k = 1
    else:
        k = 0
    (xa, ya), (xb, yb) = v[(k + 1) % 3], v[(k + 2) % 3]
    delta = s * ((xa * yb - xb * ya) / (yb - ya))
    if not (silhouette[k] and abs(yb - ya) >= abs(xb - xa) and -1 / 16 < delta < 1 + 1 / 16):
        return None
    alpha = s * (f(0.5) - min(max(delta, f(0)), f(1)))
    return dict(
        p0=p0, p1=p1, alpha=alpha, delta=delta, vertical=vertical, front_in_p0=front_in_p0,
        a=tris[t, (k + 1) % 3], b=tris[t, (k + 2) % 3], xa=xa, ya=ya, xb=xb, yb=yb,
    )  # fmt: skip


def reference_blend(color, pairs):
    """docs/render.md 5.3 step 9: every accepted pair reads the input colours; contributions add up."""
    out = color.copy()
    for pair in pairs:
        modified = pair["p0"] if pair["alpha"] > 0 else pair["p1"]
        out[modified] += pair["alpha"] * (color[pair["p1"]] - color[pair["p0"]])
    return out


def reference_gradients(grad_out, color, pos, pairs, guard=1e-3):
    """docs/render.md 5.4 by loops: (grad_color (H, W, C), grad_pos (V, 4)). guard=0 gives exact derivatives."""
    f = pos.dtype.type
    height, width = color.shape[:2]
    grad_color = grad_out.copy()
    grad_pos = np.zeros_like(pos)
    for pair in pairs:
        alpha, p0, p1 = pair["alpha"], pair["p0"], pair["p1"]
        if alpha == 0 and not np.signbit(alpha):
            continue
        modified = p0 if alpha > 0 else p1
        grad_alpha = f(0)
        for channel in range(color.shape[2]):
            g = grad_out[modified][channel]
            grad_color[p0][channel] -= alpha * g
            grad_color[p1][channel] += alpha * g
            grad_alpha += g * (color[p1][channel] - color[p0][channel])
        if grad_alpha == 0 or abs(alpha) >= 0.5:
            continue
        xa, ya, xb, yb = pair["xa"], pair["ya"], pair["xb"], pair["yb"]
        dx, dy = xb - xa, yb - ya
        dy_guarded = dy + np.copysign(f(guard), dy)
        xi = (xa * dy - ya * dx) / dy_guarded
        pixel_gradients = {
            "a": (-grad_alpha * yb / dy_guarded, -grad_alpha * (xi - xb) / dy_guarded),
            "b": (grad_alpha * ya / dy_guarded, grad_alpha * (xi - xa) / dy_guarded),
        }
        for end, (gx, gy) in pixel_gradients.items():
            if pair["vertical"]:  # back from the swapped frame to image x, y
                gx, gy = gy, gx
            px, py, _, pw = pos[pair[end]]
            gpx, gpy = gx * f(width / 2) / pw, gy * f(height / 2) / pw
            grad_pos[pair[end]] += np.array([gpx, gpy, 0, -(px * gpx + py * gpy) / pw], dtype=pos.dtype)
    return grad_color, grad_pos


# ---------------------------------------------------------------------------------------------
# Scenes


def grid_faces(n: int) -> np.ndarray:
    """Faces of an n x n vertex grid with alternating diagonals, (2 (n-1)^2, 3) int32."""
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, d], [a, d, c]] if (i + j) % 2 else [[a, b, c], [b, d, c]]
    return np.asarray(faces, np.int32)


def random_scene(seed: int, dtype=np.float32):
    """A jittered 4 x 4 grid patch (shared vertices, strong jitter so some triangles fold over)
    at z/w ~ 0.4, plus one loose triangle in front and one behind, all with perspective w.

    Returns clip_pos (V, 4) dtype and tris (F, 3) int32, V = 22, F = 20.
    """
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.linspace(-0.75, 0.7, 4), np.linspace(-0.7, 0.75, 4))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.normal(scale=0.16, size=(16, 2))
    loose = rng.uniform(-0.85, 0.85, size=(6, 2))
    ndc_xy = np.concatenate([grid, loose])
    ndc_z = np.concatenate([0.4 + 0.05 * rng.uniform(size=16), [-0.3] * 3, [0.8] * 3])
    w = rng.uniform(1.0, 2.5, size=22)
    clip_pos = np.concatenate([ndc_xy * w[:, None], (ndc_z * w)[:, None], w[:, None]], axis=1).astype(dtype)
    tris = np.concatenate([grid_faces(4), [[16, 17, 18], [19, 20, 21]]]).astype(np.int32)
    return clip_pos, tris


def scene_inputs(seed: int, dtype=np.float32, rast_jitter_px: float = 0.0):
    """clip_pos (V, 4), tris (F, 3), topology (F, 3), rast (H, W, 4) and color (H, W, 3).

    With ``rast_jitter_px`` > 0, rast is rendered from positions moved by up to that many pixels
    (as the real rasteriser's 1/16 px snapping does), so some crossings fall outside [0, 1]:
    clamped (|alpha| = 0.5) and out-of-window pairs occur.
    """
    clip_pos, tris = random_scene(seed, dtype)
    jitter = np.random.default_rng(200 + seed).uniform(-1, 1, size=(len(clip_pos), 2)) * rast_jitter_px
    rast_pos = clip_pos.copy()
    rast_pos[:, :2] += jitter * (2 / np.array([WIDTH, HEIGHT])) * clip_pos[:, 3:]
    rast = naive_rasterize(rast_pos, tris, HEIGHT, WIDTH).astype(dtype)
    color = np.random.default_rng(100 + seed).uniform(size=(HEIGHT, WIDTH, 3)).astype(dtype)
    return clip_pos, tris, antialias_topology(tris), rast, color


def pad_scene(clip_pos: np.ndarray, tris: np.ndarray, n_vertices: int = 22, n_faces: int = 20):
    """Pad to the random scenes' V and F so the compiled functions are reused (compiling is the
    slow part of these tests): extra vertices copy vertex 0, extra faces are [0, 0, 0], which
    neither rasterise nor enter the topology (repeated indices)."""
    extra_vertices = np.repeat(clip_pos[:1], n_vertices - len(clip_pos), axis=0)
    extra_faces = np.zeros((n_faces - len(tris), 3), np.int32)
    return np.concatenate([clip_pos, extra_vertices]), np.concatenate([tris, extra_faces]).astype(np.int32)


antialias_jit = jax.jit(antialias)


@jax.jit
def loss_and_grads(color, rast, clip_pos, tris, topology, weights):
    """L = sum(weights * antialias(one image)) and dL/d(color, rast, clip_pos).

    One compiled function (per dtype) serves every gradient test: compiling is the slow part.
    """

    def loss(color, rast, clip_pos):
        return jnp.sum(antialias(color[None], rast[None], clip_pos, tris, topology)[0] * weights)

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(color, rast, clip_pos)


# ---------------------------------------------------------------------------------------------
# Topology


def test_topology_of_closed_sphere_matches_naive_loops():
    _, faces = procedural.sphere(1)
    opposite = antialias_topology(faces)
    assert opposite.dtype == np.int32 and opposite.shape == faces.shape
    np.testing.assert_array_equal(opposite, naive_topology(faces))
    assert np.all(opposite >= 0)
    # The opposite vertex and the edge form a face of the mesh, and it is not the face itself.
    face_set = {frozenset(f) for f in faces.tolist()}
    for t, tri in enumerate(faces.tolist()):
        for k in range(3):
            neighbour = frozenset((tri[(k + 1) % 3], tri[(k + 2) % 3], int(opposite[t, k])))
            assert neighbour in face_set and neighbour != frozenset(tri)


def test_topology_boundary_edges_of_open_cylinder_are_minus_one():
    _, faces = procedural.open_cylinder(200)
    opposite = antialias_topology(faces)
    np.testing.assert_array_equal(opposite, naive_topology(faces))
    boundary = {frozenset(e) for e in mesh.boundary_edges(faces).tolist()}
    on_boundary = np.array(
        [[frozenset((tri[(k + 1) % 3], tri[(k + 2) % 3])) in boundary for k in range(3)] for tri in faces.tolist()]
    )
    assert on_boundary.sum() == len(boundary) > 0
    np.testing.assert_array_equal(opposite < 0, on_boundary)


def test_topology_non_manifold_duplicate_and_invalid_faces():
    tris = np.array(
        [
            [0, 1, 2],  # edge {0,1} shared by three faces: the first two (thirds 2, 3) are kept
            [1, 0, 3],
            [0, 4, 1],  # third on {0,1}, not kept: -1 there
            [5, 6, 7],  # duplicated face (reversed): the one third vertex is stored once: -1
            [7, 6, 5],
            [8, 8, 2],  # repeated index: invalid, inserts nothing
            [0, 2, 99],  # out of range for n_vertices = 10: invalid, so {0,2} stays a boundary
        ]
    )
    expected = np.array(
        [[-1, -1, 3], [-1, -1, 2], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    )
    np.testing.assert_array_equal(antialias_topology(tris, n_vertices=10), expected)
    # Without n_vertices the last face is valid and becomes the neighbour of face 0 across {0, 2}.
    assert antialias_topology(tris)[0, 1] == 99


# ---------------------------------------------------------------------------------------------
# Forward


@pytest.mark.parametrize("seed, rast_jitter_px", [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (4, 0.1), (5, 0.1)])
def test_forward_matches_naive_pair_loops(seed, rast_jitter_px):
    clip_pos, tris, topology, rast, color = scene_inputs(seed, rast_jitter_px=rast_jitter_px)
    pairs = reference_pairs(rast, clip_pos, tris, topology)
    expected = reference_blend(color, pairs)
    out = np.asarray(antialias_jit(color[None], rast[None], clip_pos, tris, topology))[0]
    assert out.dtype == np.float32 and out.shape == color.shape
    # Same set of modified pixels, same values.
    np.testing.assert_array_equal(np.any(out != color, axis=-1), np.any(expected != color, axis=-1))
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)
    # The scene exercises both directions, both front sides, and non-silhouette rejections.
    assert {(p["vertical"], p["front_in_p0"]) for p in pairs} == {(a, b) for a in (False, True) for b in (False, True)}
    n_candidates = np.sum(rast[:, 1:, 3] != rast[:, :-1, 3]) + np.sum(rast[1:, :, 3] != rast[:-1, :, 3])
    assert 10 < len(pairs) < n_candidates
    if rast_jitter_px > 0:  # crossings outside [0, 1]: some pairs are clamped to |alpha| = 0.5
        assert any(abs(p["alpha"]) == 0.5 for p in pairs)


def test_interior_edges_of_a_flat_patch_are_not_blended():
    # A flat, fold-free patch: only its outline may change; pixels whose 4-neighbours all show
    # the patch (so every pair touching them is an interior-edge pair or no candidate) stay put.
    ndc = np.stack(np.meshgrid(np.linspace(-0.8, 0.8, 4), np.linspace(-0.8, 0.8, 4)), -1).reshape(-1, 2)
    clip_pos = np.concatenate([ndc, np.full((16, 1), 0.2), np.ones((16, 1))], axis=1).astype(np.float32)
    clip_pos, tris = pad_scene(clip_pos, grid_faces(4))
    rast = naive_rasterize(clip_pos, tris, HEIGHT, WIDTH)
    color = np.random.default_rng(0).uniform(size=(HEIGHT, WIDTH, 3)).astype(np.float32)
    out = np.asarray(antialias_jit(color[None], rast[None], clip_pos, tris, antialias_topology(tris)))[0]
    covered = np.pad(rast[..., 3] > 0, 1)
    interior = covered[1:-1, 1:-1] & covered[:-2, 1:-1] & covered[2:, 1:-1] & covered[1:-1, :-2] & covered[1:-1, 2:]
    assert len(np.unique(rast[..., 3])) == 19  # all 18 triangles are visible, plus background
    np.testing.assert_array_equal(out[interior], color[interior])
    assert np.any(out[~interior] != color[~interior])
    # Without topology (all -1) every ID change is a silhouette: interior pixels change too.
    no_topology = np.full_like(tris, -1)  # also what a welded-free "polygon soup" would give
    out_soup = np.asarray(antialias_jit(color[None], rast[None], clip_pos, tris, no_topology))[0]
    assert np.any(out_soup[interior] != color[interior])


# ---------------------------------------------------------------------------------------------
# Backward


@pytest.mark.parametrize("seed, rast_jitter_px", [(0, 0.0), (3, 0.0), (4, 0.1)])
def test_gradients_match_naive_loops(seed, rast_jitter_px):
    clip_pos, tris, topology, rast, color = scene_inputs(seed, rast_jitter_px=rast_jitter_px)
    grad_out = np.random.default_rng(7).normal(size=color.shape).astype(np.float32)
    pairs = reference_pairs(rast, clip_pos, tris, topology)
    expected_color, expected_pos = reference_gradients(grad_out, color, clip_pos, pairs)
    _, (grad_color, grad_rast, grad_pos) = loss_and_grads(color, rast, clip_pos, tris, topology, grad_out)
    # ~1e-6 per unit of G (docs/render.md 6), with a 2x margin. On GPU, XLA contracts to FMA, which
    # moves delta (a difference of products) by a few ulps: 1.8e-6 was seen there (max |G| 3.3).
    np.testing.assert_allclose(grad_color, expected_color, rtol=0, atol=2e-6 * np.max(np.abs(grad_out)))
    # Per-vertex sums of float32 terms in a different order (docs/render.md 6: ~1e-5 relative).
    scale = np.max(np.abs(expected_pos))
    np.testing.assert_allclose(grad_pos, expected_pos, rtol=1e-5, atol=1e-5 * scale)
    assert np.count_nonzero(expected_pos[:, 0]) > 5  # the comparison is not vacuous
    assert np.all(np.asarray(grad_pos)[:, 2] == 0) and np.all(np.asarray(grad_rast) == 0)


def test_position_gradient_matches_finite_differences_in_float64():
    """Central differences of L = sum(weights * antialias(color, rast_fixed, pos)) in float64.

    With ``rast`` fixed, alpha is a smooth function of pos as long as no pair changes acceptance
    or clamping, which the margin check below guarantees for the step used. The guarded
    denominator (dy + 1e-3 px) makes the analytic gradient differ from the exact one by a
    relative ~1e-3 / |dy| per pair; with |dy| >= 1 px that is <= 1e-3 of the gradient scale, the
    tolerance used (observed: 1.4e-4). The loop reference with the guard removed matches the
    finite differences to 1e-7 (observed: 2e-10, the step's truncation and rounding), and the
    loop reference with the guard matches the JAX gradient to float64 rounding.
    """
    step = 1e-6
    with jax.enable_x64(True):
        clip_pos, tris, topology, rast, color = scene_inputs(1, dtype=np.float64)
        weights = np.random.default_rng(3).normal(size=color.shape)
        pairs = reference_pairs(rast, clip_pos, tris, topology)
        # Margins (in pixels) to every acceptance/clamp boundary: window, clamp, 45 degrees.
        for p in pairs:
            assert min(abs(p["delta"] - edge) for edge in (-1 / 16, 0.0, 1.0, 1 + 1 / 16)) > 1e-4
            assert abs(abs(p["yb"] - p["ya"]) - abs(p["xb"] - p["xa"])) > 1e-4
            assert abs(p["yb"] - p["ya"]) > 1.0

        loss = lambda pos: loss_and_grads(color, rast, pos, tris, topology, weights)[0]  # noqa: E731
        analytic = np.asarray(loss_and_grads(color, rast, clip_pos, tris, topology, weights)[1][2])
        numeric = np.zeros_like(clip_pos)
        for i in np.unique([[p["a"], p["b"]] for p in pairs]):
            for j in range(4):
                shift = np.zeros_like(clip_pos)
                shift[i, j] = step
                numeric[i, j] = (loss(clip_pos + shift) - loss(clip_pos - shift)) / (2 * step)
        _, exact = reference_gradients(weights, color, clip_pos, pairs, guard=0.0)
        _, guarded = reference_gradients(weights, color, clip_pos, pairs)

    scale = np.max(np.abs(numeric))
    assert analytic.dtype == np.float64 and scale > 0
    np.testing.assert_allclose(exact, numeric, rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-3 * scale)
    np.testing.assert_allclose(analytic, guarded, rtol=0, atol=1e-12 * scale)
    assert np.max(np.abs(analytic - numeric)) > 1e-9 * scale  # the guard is really there


# ---------------------------------------------------------------------------------------------
# Behaviour, jit and batching


def single_triangle(shift_px: float):
    """A large triangle (w = 1) in the HEIGHT x WIDTH image whose vertex 1 is moved by
    ``shift_px`` pixels along x. Returns clip_pos (V, 4) float32 and tris (F, 3), padded with
    unused vertices and degenerate faces (``pad_scene``), and the triangle's area in px^2."""
    ndc = np.array([[-0.71, -0.63], [0.77 + 2 * shift_px / WIDTH, -0.52], [-0.08, 0.74]])
    clip_pos = np.concatenate([ndc, np.zeros((3, 1)), np.ones((3, 1))], axis=1).astype(np.float32)
    (e1x, e1y), (e2x, e2y) = ndc[1] - ndc[0], ndc[2] - ndc[0]
    area_px = 0.5 * abs(e1x * e2y - e1y * e2x) * (WIDTH / 2) * (HEIGHT / 2)
    return *pad_scene(clip_pos, np.array([[0, 1, 2]], np.int32)), area_px


def test_antialiased_coverage_tracks_triangle_area():
    def coverage_and_gradient(shift):
        """Summed antialiased coverage mask (in channel 0 of 3), its d/d clip_pos, raw pixel count."""
        clip_pos, tris, _ = single_triangle(shift)
        rast = naive_rasterize(clip_pos, tris, HEIGHT, WIDTH)
        mask = np.repeat((rast[..., 3:] > 0).astype(np.float32), 3, axis=-1)
        weights = np.zeros_like(mask)
        weights[..., 0] = 1.0
        total, (_, _, grad_pos) = loss_and_grads(mask, rast, clip_pos, tris, antialias_topology(tris), weights)
        return float(total), np.asarray(grad_pos), float(np.sum(mask[..., 0]))

    aa_error, raw_error = [], []
    for shift in np.linspace(0.0, 2.0, 17):
        area = single_triangle(shift)[2]
        total, _, raw = coverage_and_gradient(shift)
        aa_error.append(total - area)
        raw_error.append(raw - area)
    # Sliding vertex 1 by 2 px in 1/8 px steps grows the area by 13.7 px^2 (0.86 px^2 a step). The
    # antialiased sum follows it with a near-constant offset (corner effects; spread ~0.22 px^2),
    # while the raw pixel count jumps around the true area (spread ~3.9 px^2).
    aa_spread, raw_spread = np.ptp(aa_error), np.ptp(raw_error)
    assert aa_spread < 0.4 and raw_spread > 2.0 and raw_spread > 5 * aa_spread, (aa_error, raw_error)

    # The gradient of the summed coverage with respect to the vertex is close to the area's
    # derivative: 79.2 against 82.2 here, since the antialiased sum's own slope is a few per cent
    # off near the moving corner (the drift of aa_error above).
    grad_x = coverage_and_gradient(0.3)[1][1, 0]
    area_slope = (single_triangle(1.0)[2] - single_triangle(0.0)[2]) * WIDTH / 2  # per clip x (w = 1)
    assert abs(grad_x - area_slope) < 0.1 * abs(area_slope), (grad_x, area_slope)


def test_batch_of_two_eagerly_and_shared_positions():
    inputs = [scene_inputs(seed) for seed in (0, 1)]
    clip_pos = np.stack([x[0] for x in inputs])
    tris, topology = inputs[0][1], inputs[0][2]
    rast = np.stack([x[3] for x in inputs])
    color = np.stack([x[4] for x in inputs])
    weights = np.random.default_rng(5).normal(size=color.shape).astype(np.float32)

    # Eager (no outer jit) forward and backward of the batch against the jitted single images.
    batched, pullback = jax.vjp(lambda p: antialias(color, rast, p, tris, topology), clip_pos)
    (grad_batched,) = pullback(weights)
    for b in range(2):
        single = antialias_jit(color[b : b + 1], rast[b : b + 1], clip_pos[b], tris, topology)
        np.testing.assert_allclose(np.asarray(batched)[b], np.asarray(single)[0], rtol=0, atol=1e-6)
        single_grad = loss_and_grads(color[b], rast[b], clip_pos[b], tris, topology, weights[b])[1][2]
        np.testing.assert_allclose(grad_batched[b], single_grad, rtol=1e-6, atol=1e-6)

    # (V, 4) positions shared by both images: the gradient is the sum of the per-image ones.
    shared_rast = np.stack([rast[0], rast[0]])
    _, pullback_shared = jax.vjp(lambda p: antialias(color, shared_rast, p, tris, topology), clip_pos[0])
    _, pullback_stacked = jax.vjp(lambda p: antialias(color, shared_rast, p, tris, topology), clip_pos[[0, 0]])
    (grad_shared,), (grad_stacked,) = pullback_shared(weights), pullback_stacked(weights)
    assert grad_shared.shape == (22, 4) and np.any(grad_shared != 0)
    np.testing.assert_allclose(grad_shared, grad_stacked[0] + grad_stacked[1], rtol=1e-6, atol=1e-6)
