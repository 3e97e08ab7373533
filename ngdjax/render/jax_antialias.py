"""Pure-JAX ``antialias`` with nvdiffrast 0.3.3 semantics (../shared/RENDER.md section 5).

Every pair of adjacent pixels whose triangle IDs differ is a candidate. When the front
triangle's silhouette edge crosses the segment between the two pixel centres, one of the two
colours moves toward the other by the signed weight ``alpha``; the gradient of ``alpha`` with
respect to the edge's endpoints is the visibility gradient. The backward pass is a
``jax.custom_vjp`` that follows RENDER.md 5.4 (including its 1e-3 px guard and the rule that a
clamped pair, ``|alpha| = 0.5``, gives no position gradient), not autodiff of the forward.

Layout: the N = H (W-1) + (H-1) W pixel pairs of an image are analysed together as one flat
list, horizontal pairs first (row-major over (H, W-1)), then vertical pairs (row-major over
(H-1, W)). Colours are read and written back through static slices, so the blend is a
deterministic sum; only the vertex gradient is a scatter-add.

Differences from nvdiffrast, all at the last-ulp level: contributions are summed in a fixed
order (nvdiffrast uses atomics), and an edge with no opposite vertex passes the silhouette test
by construction rather than through the bit-equal ``A_k == B`` comparison. Triangle IDs are read
as ``int(rast[..., 3]) - 1``, exact for F < 2^24. ``pos_gradient_boost`` is not implemented
(scale the position gradient outside if needed).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

_WINDOW_LOW = -1.0 / 16.0  # accepted crossings: _WINDOW_LOW < delta < _WINDOW_HIGH (pixels)
_WINDOW_HIGH = 1.0 + 1.0 / 16.0
_GRADIENT_GUARD = 1e-3  # pixels, added to the edge's extent across the pair axis (RENDER.md 5.4)


class _PairLayout(NamedTuple):
    """Static (numpy) description of the N pixel pairs of an H x W image.

    Fields, each (N,): ``column``, ``row`` (float64) of p0; ``vertical`` (bool), the pair is
    p0 = (c, r), p1 = (c, r + 1), else p1 = (c + 1, r).
    """

    column: np.ndarray
    row: np.ndarray
    vertical: np.ndarray


class _Pairs(NamedTuple):
    """Forward analysis of the N pairs of one image (see the module docstring for the order).

    Fields, each (N,):
        alpha: float (clip_pos dtype), the blend weight ``s (0.5 - clamp(delta, 0, 1))``;
            exactly +0.0 where the pair is not accepted.
        vertex_a, vertex_b: int32, vertex indices of the endpoints a, b of the exit edge k*.
        xa, ya, xb, yb: float (clip_pos dtype), those endpoints in pixel units relative to the
            front pixel's centre, in the pair's frame (x and y swapped for vertical pairs).
    """

    alpha: Float[Array, " N"]
    vertex_a: Int[Array, " N"]
    vertex_b: Int[Array, " N"]
    xa: Float[Array, " N"]
    ya: Float[Array, " N"]
    xb: Float[Array, " N"]
    yb: Float[Array, " N"]


def antialias(
    color: Float[Array, "B H W C"],
    rast: Float[Array, "B H W 4"],
    clip_pos: Float[Array, "*B V 4"],
    tris: Int[Array, "F 3"],
    topology: Int[Array, "F 3"],
) -> Float[Array, "B H W C"]:
    """Analytic antialiasing of silhouette edges (nvdiffrast ``antialias``, RENDER.md 5).

    Args:
        color: (B, H, W, C) float32 (any float dtype), the shaded image to antialias.
        rast: (B, H, W, 4) float32, from ``rasterize``; only z/w (channel 2) and
            triangle_id + 1 (channel 3) are read.
        clip_pos: (V, 4) shared by every image, or (B, V, 4) per image; float32 clip-space
            (x, y, z, w), the positions that were rasterised. Every vertex of a visible triangle
            and of its neighbours should have w > 0 (no clipping here, as in nvdiffrast).
        tris: (F, 3) int32 vertex indices, the triangles that were rasterised.
        topology: (F, 3) int32 from ``antialias_topology(tris)``.

    Returns:
        (B, H, W, C) with color's dtype. Differentiable with respect to ``color`` and
        ``clip_pos`` (RENDER.md 5.4; dL/dz is 0); no gradient flows to rast, tris or topology.
    """
    batch, height, width = color.shape[:3]
    if rast.shape != (batch, height, width, 4):
        raise ValueError(f"antialias: rast has shape {rast.shape}, expected {(batch, height, width, 4)}")
    if clip_pos.ndim == 2:
        clip_pos = clip_pos[None]
    if clip_pos.ndim != 3 or clip_pos.shape[2] != 4 or clip_pos.shape[0] not in (1, batch):
        raise ValueError(f"antialias: clip_pos has shape {clip_pos.shape}, expected (V, 4) or ({batch}, V, 4)")
    clip_pos = jnp.broadcast_to(clip_pos, (batch,) + clip_pos.shape[1:])
    tris = jnp.asarray(tris).astype(jnp.int32)
    topology = jnp.asarray(topology).astype(jnp.int32)
    return _antialias_compiled(color, rast, clip_pos, tris, topology)


# ---------------------------------------------------------------------------------------------
# custom_vjp wiring (batched); the per-image work is vmapped.


@jax.custom_vjp
def _antialias(color, rast, clip_pos, tris, topology):
    return _antialias_fwd(color, rast, clip_pos, tris, topology)[0]


def _antialias_fwd(color, rast, clip_pos, tris, topology):
    pairs = jax.vmap(_analyse_pairs, in_axes=(0, 0, None, None))(rast, clip_pos, tris, topology)
    out = jax.vmap(_blend)(color, pairs.alpha)
    return out, (color, clip_pos, pairs)


def _antialias_bwd(residuals, grad_out):
    color, clip_pos, pairs = residuals
    grad_color, grad_pos = jax.vmap(_gradients)(grad_out, color, clip_pos, pairs)
    return grad_color, None, grad_pos, None, None


_antialias.defvjp(_antialias_fwd, _antialias_bwd)
# Compiled once per shape even when called eagerly (op-by-op dispatch is slow); inside an outer
# jit it is simply inlined.
_antialias_compiled = jax.jit(_antialias)


# ---------------------------------------------------------------------------------------------
# Pixel pairs: layout, reading pixels at pairs, adding per-pair values back.


def _pair_layout(height: int, width: int) -> _PairLayout:
    """Static layout of the H (W-1) horizontal then (H-1) W vertical pairs."""
    rows_h, columns_h = np.meshgrid(np.arange(height), np.arange(width - 1), indexing="ij")
    rows_v, columns_v = np.meshgrid(np.arange(height - 1), np.arange(width), indexing="ij")
    n_horizontal = height * (width - 1)
    return _PairLayout(
        column=np.concatenate([columns_h.ravel(), columns_v.ravel()]).astype(np.float64),
        row=np.concatenate([rows_h.ravel(), rows_v.ravel()]).astype(np.float64),
        vertical=np.arange(n_horizontal + (height - 1) * width) >= n_horizontal,
    )


def _at_pairs(image: Float[Array, "H W K"]) -> tuple[Float[Array, "N K"], Float[Array, "N K"]]:
    """Values of an (H, W, K) image at p0 and at p1 of every pair, each (N, K)."""
    depth = image.shape[2]
    at_p0 = jnp.concatenate([image[:, :-1].reshape(-1, depth), image[:-1, :].reshape(-1, depth)])
    at_p1 = jnp.concatenate([image[:, 1:].reshape(-1, depth), image[1:, :].reshape(-1, depth)])
    return at_p0, at_p1


def _add_at_pairs(
    image: Float[Array, "H W K"], to_p0: Float[Array, "N K"], to_p1: Float[Array, "N K"]
) -> Float[Array, "H W K"]:
    """``image`` (H, W, K) plus the per-pair (N, K) values added at p0 and at p1."""
    height, width, depth = image.shape
    n_horizontal = height * (width - 1)
    horizontal = lambda values: values[:n_horizontal].reshape(height, width - 1, depth)  # noqa: E731
    vertical = lambda values: values[n_horizontal:].reshape(height - 1, width, depth)  # noqa: E731
    image = image.at[:, :-1].add(horizontal(to_p0)).at[:, 1:].add(horizontal(to_p1))
    return image.at[:-1, :].add(vertical(to_p0)).at[1:, :].add(vertical(to_p1))


# ---------------------------------------------------------------------------------------------
# Forward (RENDER.md 5.2-5.3), one image.


def _analyse_pairs(
    rast: Float[Array, "H W 4"], clip_pos: Float[Array, "V 4"], tris: Int[Array, "F 3"], topology: Int[Array, "F 3"]
) -> _Pairs:
    """Which pairs are accepted, their alpha and their exit edge, for one image (5.3 steps 1-8)."""
    height, width = rast.shape[:2]
    candidate, front_in_p0, triangle = _front_triangle(*_at_pairs(rast))
    side = jnp.where(front_in_p0, 1.0, -1.0).astype(clip_pos.dtype)  # s
    corner_ids = tris[triangle]  # (N, 3)
    opposite_ids = topology[triangle]
    has_opposite = opposite_ids >= 0
    opposite_ids = jnp.where(has_opposite, opposite_ids, corner_ids)
    points = clip_pos[jnp.concatenate([corner_ids, opposite_ids], axis=1)]  # (N, 6, 4)
    x, y = _project(points, *_front_pixel_offsets(front_in_p0, height, width, clip_pos.dtype), width / 2, height / 2)
    silhouette = _silhouette_edges(x, y, has_opposite)

    # Axis normalisation (step 5): the pair axis becomes x for vertical pairs too.
    vertical = _pair_layout(height, width).vertical[:, None]
    corners_x = jnp.where(vertical, y[:, :3], x[:, :3])
    corners_y = jnp.where(vertical, x[:, :3], y[:, :3])
    edges = _edge_endpoints(corners_x, corners_y)
    exit_edge = _exit_edge(*edges, side)
    xa, ya, xb, yb = (_pick(values, exit_edge) for values in edges)

    steep = jnp.abs(yb - ya) >= jnp.abs(xb - xa)  # within 45 degrees of perpendicular to the axis
    delta = side * ((xa * yb - xb * ya) / (yb - ya))
    in_window = (delta > _WINDOW_LOW) & (delta < _WINDOW_HIGH)
    accepted = candidate & _pick(silhouette, exit_edge) & steep & in_window
    alpha = jnp.where(accepted, side * (0.5 - jnp.clip(delta, 0.0, 1.0)), 0.0)
    vertex_a = _pick(jnp.roll(corner_ids, -1, axis=1), exit_edge)
    vertex_b = _pick(jnp.roll(corner_ids, -2, axis=1), exit_edge)
    return _Pairs(alpha, vertex_a, vertex_b, xa, ya, xb, yb)


def _front_triangle(
    rast_p0: Float[Array, "N 4"], rast_p1: Float[Array, "N 4"]
) -> tuple[Bool[Array, " N"], Bool[Array, " N"], Int[Array, " N"]]:
    """Candidate pairs and their front triangle (RENDER.md 5.2, 5.3 step 1).

    Returns, each (N,):
        candidate: bool, the two ID floats differ.
        front_in_p0: bool, the front triangle is p0's (s = +1), else p1's (s = -1). With both
            pixels covered the smaller z/w wins, and p1 on equal z/w.
        triangle: int32, the front triangle's index (0 where the pair is not a candidate).
    """
    tri0 = rast_p0[:, 3].astype(jnp.int32) - 1
    tri1 = rast_p1[:, 3].astype(jnp.int32) - 1
    candidate = rast_p0[:, 3] != rast_p1[:, 3]
    front_in_p0 = (tri1 < 0) | ((tri0 >= 0) & (rast_p0[:, 2] < rast_p1[:, 2]))
    triangle = jnp.maximum(jnp.where(front_in_p0, tri0, tri1), 0)
    return candidate, front_in_p0, triangle


def _front_pixel_offsets(
    front_in_p0: Bool[Array, " N"], height: int, width: int, dtype
) -> tuple[Float[Array, "N 1"], Float[Array, "N 1"]]:
    """Offsets ``(qc + 0.5 - hx, qr + 0.5 - hy)`` of the front pixel q of every pair (5.3 step 3)."""
    layout = _pair_layout(height, width)
    step_to_p1 = (~front_in_p0).astype(dtype)
    front_column = layout.column.astype(dtype) + jnp.where(layout.vertical, 0.0, step_to_p1)
    front_row = layout.row.astype(dtype) + jnp.where(layout.vertical, step_to_p1, 0.0)
    return (front_column + 0.5 - width / 2)[:, None], (front_row + 0.5 - height / 2)[:, None]


def _project(
    points: Float[Array, "N P 4"],
    offset_x: Float[Array, "N 1"],
    offset_y: Float[Array, "N 1"],
    half_w: float,
    half_h: float,
) -> tuple[Float[Array, "N P"], Float[Array, "N P"]]:
    """Clip positions (N, P, 4) to pixel units relative to the front pixel's centre (5.3 step 3).

    ``x = px (1 / pw) hx - offset_x``: reciprocal then multiply, as nvdiffrast; no check on w.
    """
    inverse_w = 1.0 / points[..., 3]
    return points[..., 0] * inverse_w * half_w - offset_x, points[..., 1] * inverse_w * half_h - offset_y


def _doubled_area(x0, y0, x1, y1, x2, y2):
    """Twice the signed area of the triangle (x0, y0), (x1, y1), (x2, y2) (broadcasting arrays)."""
    return (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)


def _silhouette_edges(
    x: Float[Array, "N 6"], y: Float[Array, "N 6"], has_opposite: Bool[Array, "N 3"]
) -> Bool[Array, "N 3"]:
    """(N, 3) bool: edge k is a silhouette edge (5.3 step 4), in the unswapped image frame.

    ``x, y`` hold the three corners then the three opposite vertices. Edge k passes iff the
    triangle with corner k replaced by its opposite vertex (order kept) has the same IEEE sign
    bit of doubled area as the triangle itself, or there is no opposite vertex.
    """
    corner_x, corner_y, opposite_x, opposite_y = x[:, :3], y[:, :3], x[:, 3:], y[:, 3:]
    area = _doubled_area(*(c[:, j] for j in range(3) for c in (corner_x, corner_y)))
    replaced = np.eye(3, dtype=bool)[None]  # [., k, j]: corner j is the opposite vertex in variant k
    variant_x = jnp.where(replaced, opposite_x[:, :, None], corner_x[:, None, :])  # (N, k, j)
    variant_y = jnp.where(replaced, opposite_y[:, :, None], corner_y[:, None, :])
    variant_area = _doubled_area(*(c[:, :, j] for j in range(3) for c in (variant_x, variant_y)))
    same_side = jnp.signbit(variant_area) == jnp.signbit(area)[:, None]
    return ~has_opposite | same_side


def _edge_endpoints(
    corners_x: Float[Array, "N 3"], corners_y: Float[Array, "N 3"]
) -> tuple[Float[Array, "N 3"], Float[Array, "N 3"], Float[Array, "N 3"], Float[Array, "N 3"]]:
    """(xa, ya, xb, yb), each (N, 3): edge k runs from corner a = k+1 to corner b = k+2 (mod 3)."""
    return (
        jnp.roll(corners_x, -1, axis=1),
        jnp.roll(corners_y, -1, axis=1),
        jnp.roll(corners_x, -2, axis=1),
        jnp.roll(corners_y, -2, axis=1),
    )


def _exit_edge(
    xa: Float[Array, "N 3"],
    ya: Float[Array, "N 3"],
    xb: Float[Array, "N 3"],
    yb: Float[Array, "N 3"],
    side: Float[Array, " N"],
) -> Int[Array, " N"]:
    """(N,) int32: the edge k* where the line y = 0 leaves the triangle toward the other pixel.

    Edge k crosses y = 0 when its endpoints' y have different sign bits, at
    ``xi_k = (xa yb - xb ya) / (yb - ya)``; its score is ``s xi_k`` (-inf without a crossing).
    Scores are compared by cross-multiplication (denominators made positive first), without
    division. Ties: edge 2 if strictly above both others, else edge 1 if strictly above edge 0,
    else edge 0. So when no edge crosses (a pixel covered only through the rasteriser's
    snapping), k* = 0 and step 7 judges that edge's extended line, as RENDER.md reads literally.
    """
    crosses = jnp.signbit(ya) != jnp.signbit(yb)
    numerator, denominator = xa * yb - xb * ya, yb - ya
    numerator = side[:, None] * jnp.where(denominator < 0, -numerator, numerator)
    denominator = jnp.abs(denominator)

    def beats(k: int, j: int) -> Bool[Array, " N"]:
        above = numerator[:, k] * denominator[:, j] > numerator[:, j] * denominator[:, k]
        return crosses[:, k] & (~crosses[:, j] | above)

    return jnp.where(beats(2, 0) & beats(2, 1), 2, jnp.where(beats(1, 0), 1, 0)).astype(jnp.int32)


def _pick(values: Array, index: Int[Array, " N"]) -> Array:
    """``values[n, index[n]]`` for (N, 3) values, by selects (exact, keeps the sign of zeros)."""
    return jnp.where(index == 0, values[:, 0], jnp.where(index == 1, values[:, 1], values[:, 2]))


def _blend(color: Float[Array, "H W C"], alpha: Float[Array, " N"]) -> Float[Array, "H W C"]:
    """5.3 step 9: input colours plus ``alpha (C1 - C0)`` at p0 where alpha > 0, at p1 where alpha < 0."""
    color_p0, color_p1 = _at_pairs(color)
    weight = alpha.astype(color.dtype)[:, None]
    change = weight * (color_p1 - color_p0)
    return _add_at_pairs(color, jnp.where(weight > 0, change, 0.0), jnp.where(weight < 0, change, 0.0))


# ---------------------------------------------------------------------------------------------
# Backward (RENDER.md 5.4), one image.


def _gradients(
    grad_out: Float[Array, "H W C"], color: Float[Array, "H W C"], clip_pos: Float[Array, "V 4"], pairs: _Pairs
) -> tuple[Float[Array, "H W C"], Float[Array, "V 4"]]:
    """(grad_color (H, W, C), grad_pos (V, 4)) for one image.

    A pair is active when its alpha is not +0.0 (an accepted -0.0 is active but moves nothing).
    m is p0 when alpha > 0, else p1. Colour: p0 gets -alpha G[m], p1 gets +alpha G[m].
    Position: D = sum_c G[m, c] (C1 - C0) = dL/dalpha goes to the exit edge's two endpoints,
    unless D == 0 or |alpha| >= 0.5.
    """
    height, width = color.shape[:2]
    alpha = pairs.alpha
    active = (alpha != 0) | jnp.signbit(alpha)
    grad_p0, grad_p1 = _at_pairs(grad_out)
    color_p0, color_p1 = _at_pairs(color)
    grad_modified = jnp.where((alpha > 0)[:, None], grad_p0, grad_p1)
    weighted = jnp.where(active[:, None], alpha.astype(color.dtype)[:, None] * grad_modified, 0.0)
    grad_color = _add_at_pairs(grad_out, -weighted, weighted)

    grad_alpha = jnp.sum(grad_modified * (color_p1 - color_p0), axis=1).astype(clip_pos.dtype)
    grad_alpha = jnp.where(active, grad_alpha, 0.0)
    use = active & (grad_alpha != 0) & (jnp.abs(alpha) < 0.5)
    vertical = _pair_layout(height, width).vertical
    grad_pos = jnp.zeros_like(clip_pos)
    endpoint_gradients = _endpoint_pixel_gradients(pairs, grad_alpha)
    for vertex, (grad_x, grad_y) in zip((pairs.vertex_a, pairs.vertex_b), endpoint_gradients):
        # Back from the pair's frame to image x, y, then to clip space.
        grad_x, grad_y = jnp.where(vertical, grad_y, grad_x), jnp.where(vertical, grad_x, grad_y)
        grad_clip = _pixel_to_clip_gradient(clip_pos[vertex], grad_x, grad_y, width / 2, height / 2)
        grad_pos = grad_pos.at[vertex].add(jnp.where(use[:, None], grad_clip, 0.0))
    return grad_color, grad_pos


def _endpoint_pixel_gradients(pairs: _Pairs, grad_alpha: Float[Array, " N"]):
    """((dL/dxa, dL/dya), (dL/dxb, dL/dyb)), each (N,), in the pair's frame, in pixel units.

    ``alpha = s/2 - xi`` with ``xi = (xa yb - xb ya) / (yb - ya)``; these are its exact
    derivatives with ``dy = yb - ya`` replaced by ``dy + copysign(1e-3, dy)`` everywhere.
    """
    xa, ya, xb, yb = pairs.xa, pairs.ya, pairs.xb, pairs.yb
    dx, dy = xb - xa, yb - ya
    dy_guarded = dy + jnp.copysign(_GRADIENT_GUARD, dy)
    xi = (xa * dy - ya * dx) / dy_guarded
    d = grad_alpha
    return (-d * yb / dy_guarded, -d * (xi - xb) / dy_guarded), (d * ya / dy_guarded, d * (xi - xa) / dy_guarded)


def _pixel_to_clip_gradient(
    points: Float[Array, "N 4"], grad_x: Float[Array, " N"], grad_y: Float[Array, " N"], half_w: float, half_h: float
) -> Float[Array, "N 4"]:
    """Chain image-frame pixel gradients through ``x = px / pw * hx + const`` to (px, py, pz, pw).

    dL/dpz is 0: z does not enter the projection.
    """
    w = points[:, 3]
    grad_px = grad_x * half_w / w
    grad_py = grad_y * half_h / w
    grad_pw = -(points[:, 0] * grad_px + points[:, 1] * grad_py) / w
    return jnp.stack([grad_px, grad_py, jnp.zeros_like(grad_px), grad_pw], axis=1)
