"""Pure-JAX ``antialias`` with nvdiffrast 0.3.3 semantics (../shared/RENDER.md section 5).

Every pair of adjacent pixels whose triangle IDs differ is a candidate. When the front
triangle's silhouette edge crosses the segment between the two pixel centres, one of the two
colours moves toward the other by the signed weight ``alpha``; the gradient of ``alpha`` with
respect to the edge's endpoints is the visibility gradient. The backward pass is a
``jax.custom_vjp`` that follows RENDER.md 5.4 (including its 1e-3 px guard and the rule that a
clamped pair, ``|alpha| = 0.5``, gives no position gradient), not autodiff of the forward.

Layout: the pixel pairs of an image are analysed as two dense grids, the horizontal pairs
(H, W-1) (p0 = (c, r), p1 = (c + 1, r)) and the vertical pairs (H-1, W) (p1 = (c, r + 1)).
Both are read from and written back to the image through static slices and pads, so the blend
is a deterministic sum. Per pair only translation-dependent work is done: everything that does
not depend on the pixel (the projection of a triangle's corners to pixel units and its
silhouette-edge flags) is computed once per triangle into a small table, of which each pair
gathers its front triangle's row. Vertical pairs use the table's y columns as their pair axis,
so the x <-> y swap of RENDER.md 5.3 step 5 costs nothing.

Differences from nvdiffrast, all at the last-ulp level:
- contributions are summed in a fixed order (nvdiffrast uses atomics); the position gradient
  is summed per vertex in pixel units and chained to clip space once per vertex (nvdiffrast
  chains every contribution before its atomic add);
- the silhouette test (RENDER.md 5.3 step 4) is evaluated once per triangle, on the corners and
  opposite vertices in absolute pixel units ``px (1/pw) hx``, rather than per pair on
  coordinates relative to the front pixel's centre. The sign of a doubled area does not change
  when all six points are translated, so the two agree except for float-rounding ties (an area
  within a few ulps of zero);
- an edge with no opposite vertex passes the silhouette test by construction rather than
  through the bit-equal ``A_k == B`` comparison.
Triangle IDs are read as ``int(rast[..., 3]) - 1``, exact for F < 2^24. ``pos_gradient_boost``
is not implemented (scale the position gradient outside if needed).
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

# Columns of the per-triangle table (_triangle_table): corner x (3), corner y (3), and the
# silhouette flag of each edge (3) as 0.0 / 1.0.
_CORNER_X = slice(0, 3)
_CORNER_Y = slice(3, 6)
_SILHOUETTE = slice(6, 9)


class _Pairs(NamedTuple):
    """Forward analysis of the pairs of one direction of one image, each field (P, Q): (H, W-1)
    for horizontal pairs, (H-1, W) for vertical ones.

    Fields:
        alpha: float (clip_pos dtype), the blend weight ``s (0.5 - clamp(delta, 0, 1))``;
            exactly +0.0 where the pair is not accepted.
        triangle: int32, the front triangle (0 where the pair is not a candidate).
        exit_edge: int32, its exit edge k*; the edge's endpoints are corners k*+1 and k*+2.
        xa, ya, xb, yb: float (clip_pos dtype), those endpoints in pixel units relative to the
            front pixel's centre, in the pair's frame (x along the pair axis).
    """

    alpha: Float[Array, "P Q"]
    triangle: Int[Array, "P Q"]
    exit_edge: Int[Array, "P Q"]
    xa: Float[Array, "P Q"]
    ya: Float[Array, "P Q"]
    xb: Float[Array, "P Q"]
    yb: Float[Array, "P Q"]


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
    pairs = jax.vmap(_analyse_image, in_axes=(0, 0, None, None))(rast, clip_pos, tris, topology)
    out = jax.vmap(_blend)(color, *pairs)
    return out, (color, clip_pos, tris, pairs)


def _antialias_bwd(residuals, grad_out):
    color, clip_pos, tris, pairs = residuals
    grad_color, grad_pos = jax.vmap(_gradients, in_axes=(0, 0, 0, None, 0))(grad_out, color, clip_pos, tris, pairs)
    return grad_color, None, grad_pos, None, None


_antialias.defvjp(_antialias_fwd, _antialias_bwd)
# Compiled once per shape even when called eagerly (op-by-op dispatch is slow); inside an outer
# jit it is simply inlined.
_antialias_compiled = jax.jit(_antialias)


# ---------------------------------------------------------------------------------------------
# Pixel pairs as two grids: reading pixels at pairs, adding per-pair values back.


def _horizontal_pairs(image: Array) -> tuple[Array, Array]:
    """Values of an (H, W, ...) image at p0 and at p1 of the horizontal pairs, each (H, W-1, ...)."""
    return image[:, :-1], image[:, 1:]


def _vertical_pairs(image: Array) -> tuple[Array, Array]:
    """Values of an (H, W, ...) image at p0 and at p1 of the vertical pairs, each (H-1, W, ...)."""
    return image[:-1], image[1:]


def _add_at_pairs(
    image: Float[Array, "H W C"],
    horizontal: tuple[Float[Array, "H W-1 C"], Float[Array, "H W-1 C"]],
    vertical: tuple[Float[Array, "H-1 W C"], Float[Array, "H-1 W C"]],
) -> Float[Array, "H W C"]:
    """``image`` plus per-pair values (to p0, to p1) of each direction, added in the order
    horizontal p0, horizontal p1, vertical p0, vertical p1 (pads, so XLA fuses it into one loop)."""
    (h_p0, h_p1), (v_p0, v_p1) = horizontal, vertical
    image = image + jnp.pad(h_p0, ((0, 0), (0, 1), (0, 0)))
    image = image + jnp.pad(h_p1, ((0, 0), (1, 0), (0, 0)))
    image = image + jnp.pad(v_p0, ((0, 1), (0, 0), (0, 0)))
    return image + jnp.pad(v_p1, ((1, 0), (0, 0), (0, 0)))


# ---------------------------------------------------------------------------------------------
# Forward (RENDER.md 5.2-5.3), one image.


def _analyse_image(
    rast: Float[Array, "H W 4"], clip_pos: Float[Array, "V 4"], tris: Int[Array, "F 3"], topology: Int[Array, "F 3"]
) -> tuple[_Pairs, _Pairs]:
    """(horizontal, vertical) pair analyses of one image (5.3 steps 1-8)."""
    height, width = rast.shape[:2]
    dtype = clip_pos.dtype
    table = _triangle_table(clip_pos, tris, topology, width / 2, height / 2)
    # Pixel-centre offsets (c + 0.5 - hx) and (r + 0.5 - hy) are formed from the front pixel's
    # column and row, as nvdiffrast does: (qc + 0.5) - hx.
    columns = jnp.arange(width, dtype=dtype)[None, :]
    rows = jnp.arange(height, dtype=dtype)[:, None]
    horizontal = _analyse_pairs(
        *_horizontal_pairs(rast[..., 2:]), table, along=columns[:, :-1], across=rows,
        half_along=width / 2, half_across=height / 2, vertical=False,
    )  # fmt: skip
    vertical = _analyse_pairs(
        *_vertical_pairs(rast[..., 2:]), table, along=rows[:-1], across=columns,
        half_along=height / 2, half_across=width / 2, vertical=True,
    )  # fmt: skip
    return horizontal, vertical


def _triangle_table(
    clip_pos: Float[Array, "V 4"], tris: Int[Array, "F 3"], topology: Int[Array, "F 3"], half_w: float, half_h: float
) -> Float[Array, "F 9"]:
    """Per-triangle, translation-invariant part of 5.3 steps 2-4, as one (F, 9) table.

    Columns: the corners' absolute pixel coordinates ``px (1/pw) hx`` (3) and ``py (1/pw) hy``
    (3), then edge k's silhouette flag (3, 1.0 or 0.0), from the same absolute coordinates.
    """
    has_opposite = topology >= 0
    corners_x, corners_y = _project(clip_pos[tris], half_w, half_h)  # (F, 3) each
    opposite_x, opposite_y = _project(clip_pos[jnp.where(has_opposite, topology, tris)], half_w, half_h)
    silhouette = _silhouette_edges(corners_x, corners_y, opposite_x, opposite_y, has_opposite)
    return jnp.concatenate([corners_x, corners_y, silhouette.astype(clip_pos.dtype)], axis=1)


def _project(
    points: Float[Array, "F 3 4"], half_w: float, half_h: float
) -> tuple[Float[Array, "F 3"], Float[Array, "F 3"]]:
    """Clip positions to absolute pixel units ``px (1 / pw) hx``, ``py (1 / pw) hy`` (5.3 step 3).

    Reciprocal then multiply, as nvdiffrast; no check on w.
    """
    inverse_w = 1.0 / points[..., 3]
    return points[..., 0] * inverse_w * half_w, points[..., 1] * inverse_w * half_h


def _doubled_area(x0, y0, x1, y1, x2, y2):
    """Twice the signed area of the triangle (x0, y0), (x1, y1), (x2, y2) (broadcasting arrays)."""
    return (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)


def _silhouette_edges(
    corner_x: Float[Array, "F 3"],
    corner_y: Float[Array, "F 3"],
    opposite_x: Float[Array, "F 3"],
    opposite_y: Float[Array, "F 3"],
    has_opposite: Bool[Array, "F 3"],
) -> Bool[Array, "F 3"]:
    """(F, 3) bool: edge k is a silhouette edge (5.3 step 4), in the image frame.

    Edge k passes iff the triangle with corner k replaced by its opposite vertex (order kept)
    has the same IEEE sign bit of doubled area as the triangle itself, or there is no opposite
    vertex.
    """
    area = _doubled_area(*(c[:, j] for j in range(3) for c in (corner_x, corner_y)))
    replaced = np.eye(3, dtype=bool)[None]  # [., k, j]: corner j is the opposite vertex in variant k
    variant_x = jnp.where(replaced, opposite_x[:, :, None], corner_x[:, None, :])  # (F, k, j)
    variant_y = jnp.where(replaced, opposite_y[:, :, None], corner_y[:, None, :])
    variant_area = _doubled_area(*(c[:, :, j] for j in range(3) for c in (variant_x, variant_y)))
    same_side = jnp.signbit(variant_area) == jnp.signbit(area)[:, None]
    return ~has_opposite | same_side


def _analyse_pairs(
    rast_p0: Float[Array, "P Q 2"],
    rast_p1: Float[Array, "P Q 2"],
    table: Float[Array, "F 9"],
    along: Float[Array, "P|1 Q|1"],
    across: Float[Array, "P|1 Q|1"],
    half_along: float,
    half_across: float,
    vertical: bool,
) -> _Pairs:
    """Which pairs of one direction are accepted, their alpha and their exit edge (5.3 steps 1-8).

    ``rast_p0``, ``rast_p1``: (z/w, id) at p0 and p1 of every pair. ``along``, ``across``: the
    pixel index of p0 along the pair axis and across it, broadcasting to (P, Q). The pair frame's
    x is the image's y for vertical pairs (step 5), so the table's columns are read swapped.
    """
    candidate, front_in_p0, triangle = _front_triangle(rast_p0, rast_p1)
    side = jnp.where(front_in_p0, 1.0, -1.0).astype(table.dtype)  # s
    front_along = along + (~front_in_p0).astype(table.dtype)
    row = table[triangle]  # (P, Q, 9): one gather per pair
    absolute_along, absolute_across = (row[..., _CORNER_Y], row[..., _CORNER_X]) if vertical else (
        row[..., _CORNER_X], row[..., _CORNER_Y])  # fmt: skip
    # Relative to the front pixel's centre (step 3): X - (qc + 0.5 - hx).
    corners_x = absolute_along - (front_along + 0.5 - half_along)[..., None]
    corners_y = absolute_across - (across + 0.5 - half_across)[..., None]
    edges = _edge_endpoints(corners_x, corners_y)
    exit_edge = _exit_edge(*edges, side)
    xa, ya, xb, yb = (_pick(values, exit_edge) for values in edges)

    steep = jnp.abs(yb - ya) >= jnp.abs(xb - xa)  # within 45 degrees of perpendicular to the axis
    delta = side * ((xa * yb - xb * ya) / (yb - ya))
    in_window = (delta > _WINDOW_LOW) & (delta < _WINDOW_HIGH)
    accepted = candidate & (_pick(row[..., _SILHOUETTE], exit_edge) != 0) & steep & in_window
    alpha = jnp.where(accepted, side * (0.5 - jnp.clip(delta, 0.0, 1.0)), 0.0)
    return _Pairs(alpha, triangle, exit_edge, xa, ya, xb, yb)


def _front_triangle(
    rast_p0: Float[Array, "P Q 2"], rast_p1: Float[Array, "P Q 2"]
) -> tuple[Bool[Array, "P Q"], Bool[Array, "P Q"], Int[Array, "P Q"]]:
    """Candidate pairs and their front triangle (RENDER.md 5.2, 5.3 step 1).

    ``rast_p0``, ``rast_p1``: (z/w, triangle_id + 1) of the two pixels of every pair.

    Returns, each (P, Q):
        candidate: bool, the two ID floats differ.
        front_in_p0: bool, the front triangle is p0's (s = +1), else p1's (s = -1). With both
            pixels covered the smaller z/w wins, and p1 on equal z/w.
        triangle: int32, the front triangle's index (0 where the pair is not a candidate).
    """
    depth0, id0, depth1, id1 = rast_p0[..., 0], rast_p0[..., 1], rast_p1[..., 0], rast_p1[..., 1]
    tri0 = id0.astype(jnp.int32) - 1
    tri1 = id1.astype(jnp.int32) - 1
    candidate = id0 != id1
    front_in_p0 = (tri1 < 0) | ((tri0 >= 0) & (depth0 < depth1))
    triangle = jnp.where(candidate, jnp.maximum(jnp.where(front_in_p0, tri0, tri1), 0), 0)
    return candidate, front_in_p0, triangle


def _edge_endpoints(
    corners_x: Float[Array, "... 3"], corners_y: Float[Array, "... 3"]
) -> tuple[Float[Array, "... 3"], Float[Array, "... 3"], Float[Array, "... 3"], Float[Array, "... 3"]]:
    """(xa, ya, xb, yb), each (..., 3): edge k runs from corner a = k+1 to corner b = k+2 (mod 3)."""
    return (
        jnp.roll(corners_x, -1, axis=-1),
        jnp.roll(corners_y, -1, axis=-1),
        jnp.roll(corners_x, -2, axis=-1),
        jnp.roll(corners_y, -2, axis=-1),
    )


def _exit_edge(
    xa: Float[Array, "P Q 3"],
    ya: Float[Array, "P Q 3"],
    xb: Float[Array, "P Q 3"],
    yb: Float[Array, "P Q 3"],
    side: Float[Array, "P Q"],
) -> Int[Array, "P Q"]:
    """(P, Q) int32: the edge k* where the line y = 0 leaves the triangle toward the other pixel.

    Edge k crosses y = 0 when its endpoints' y have different sign bits, at
    ``xi_k = (xa yb - xb ya) / (yb - ya)``; its score is ``s xi_k`` (-inf without a crossing).
    Scores are compared by cross-multiplication (denominators made positive first), without
    division. Ties: edge 2 if strictly above both others, else edge 1 if strictly above edge 0,
    else edge 0. So when no edge crosses (a pixel covered only through the rasteriser's
    snapping), k* = 0 and step 7 judges that edge's extended line, as RENDER.md reads literally.
    """
    crosses = jnp.signbit(ya) != jnp.signbit(yb)
    numerator, denominator = xa * yb - xb * ya, yb - ya
    numerator = side[..., None] * jnp.where(denominator < 0, -numerator, numerator)
    denominator = jnp.abs(denominator)

    def beats(k: int, j: int) -> Bool[Array, "P Q"]:
        above = numerator[..., k] * denominator[..., j] > numerator[..., j] * denominator[..., k]
        return crosses[..., k] & (~crosses[..., j] | above)

    return jnp.where(beats(2, 0) & beats(2, 1), 2, jnp.where(beats(1, 0), 1, 0)).astype(jnp.int32)


def _pick(values: Array, index: Int[Array, "P Q"]) -> Array:
    """``values[..., index]`` for (P, Q, 3) values, by selects (exact, keeps the sign of zeros)."""
    return jnp.where(index == 0, values[..., 0], jnp.where(index == 1, values[..., 1], values[..., 2]))


def _blend(color: Float[Array, "H W C"], horizontal: _Pairs, vertical: _Pairs) -> Float[Array, "H W C"]:
    """5.3 step 9: input colours plus ``alpha (C1 - C0)`` at p0 where alpha > 0, at p1 where alpha < 0."""

    def changes(pairs: _Pairs, color_p0, color_p1):
        weight = pairs.alpha.astype(color.dtype)[..., None]
        change = weight * (color_p1 - color_p0)
        return jnp.where(weight > 0, change, 0.0), jnp.where(weight < 0, change, 0.0)

    return _add_at_pairs(
        color, changes(horizontal, *_horizontal_pairs(color)), changes(vertical, *_vertical_pairs(color))
    )


# ---------------------------------------------------------------------------------------------
# Backward (RENDER.md 5.4), one image.


def _gradients(
    grad_out: Float[Array, "H W C"],
    color: Float[Array, "H W C"],
    clip_pos: Float[Array, "V 4"],
    tris: Int[Array, "F 3"],
    pairs: tuple[_Pairs, _Pairs],
) -> tuple[Float[Array, "H W C"], Float[Array, "V 4"]]:
    """(grad_color (H, W, C), grad_pos (V, 4)) for one image.

    A pair is active when its alpha is not +0.0 (an accepted -0.0 is active but moves nothing).
    m is p0 when alpha > 0, else p1. Colour: p0 gets -alpha G[m], p1 gets +alpha G[m].
    Position: D = sum_c G[m, c] (C1 - C0) = dL/dalpha goes to the exit edge's two endpoints,
    unless D == 0 or |alpha| >= 0.5. It is summed per vertex in image pixel units, then chained
    to clip space once per vertex.
    """
    height, width = color.shape[:2]
    horizontal, vertical = pairs
    color_h, pixel_h = _pair_gradients(horizontal, *_horizontal_pairs(color), *_horizontal_pairs(grad_out))
    color_v, pixel_v = _pair_gradients(vertical, *_vertical_pairs(color), *_vertical_pairs(grad_out))
    grad_color = _add_at_pairs(grad_out, color_h, color_v)

    # Endpoint gradients of both directions in image x, y (vertical pairs' frame is swapped).
    pixel_v = tuple(gradient[::-1] for gradient in pixel_v)
    grad_pixel = jnp.zeros((clip_pos.shape[0], 2), clip_pos.dtype)
    for pairs_, (grad_a, grad_b) in ((horizontal, pixel_h), (vertical, pixel_v)):
        for corner_step, (grad_x, grad_y) in ((1, grad_a), (2, grad_b)):
            vertex = _corner_vertex(tris, pairs_.triangle, pairs_.exit_edge, corner_step)
            grad_pixel = grad_pixel.at[vertex.ravel()].add(jnp.stack([grad_x.ravel(), grad_y.ravel()], axis=1))
    return grad_color, _pixel_to_clip_gradient(clip_pos, grad_pixel, width / 2, height / 2)


def _pair_gradients(pairs: _Pairs, color_p0, color_p1, grad_p0, grad_p1):
    """Per-pair colour gradients and endpoint pixel gradients of one direction.

    Returns ``(to_p0, to_p1)`` (P, Q, C) added to grad_color, and
    ``((dL/dxa, dL/dya), (dL/dxb, dL/dyb))``, each (P, Q), in the pair's frame, zero where the
    pair gives no position gradient.
    """
    alpha = pairs.alpha
    active = (alpha != 0) | jnp.signbit(alpha)
    grad_modified = jnp.where((alpha > 0)[..., None], grad_p0, grad_p1)
    weighted = jnp.where(active[..., None], alpha.astype(color_p0.dtype)[..., None] * grad_modified, 0.0)
    grad_alpha = jnp.sum(grad_modified * (color_p1 - color_p0), axis=-1).astype(alpha.dtype)
    grad_alpha = jnp.where(active, grad_alpha, 0.0)
    use = active & (grad_alpha != 0) & (jnp.abs(alpha) < 0.5)
    endpoint_gradients = _endpoint_pixel_gradients(pairs, jnp.where(use, grad_alpha, 0.0))
    return (-weighted, weighted), endpoint_gradients


def _corner_vertex(
    tris: Int[Array, "F 3"], triangle: Int[Array, "P Q"], exit_edge: Int[Array, "P Q"], corner_step: int
) -> Int[Array, "P Q"]:
    """Vertex index of corner ``(exit_edge + corner_step) mod 3`` of ``triangle``, (P, Q) int32."""
    return tris.ravel()[3 * triangle + (exit_edge + corner_step) % 3]


def _endpoint_pixel_gradients(pairs: _Pairs, grad_alpha: Float[Array, "P Q"]):
    """((dL/dxa, dL/dya), (dL/dxb, dL/dyb)), each (P, Q), in the pair's frame, in pixel units.

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
    clip_pos: Float[Array, "V 4"], grad_pixel: Float[Array, "V 2"], half_w: float, half_h: float
) -> Float[Array, "V 4"]:
    """Chain per-vertex image pixel gradients through ``x = px / pw * hx + const`` to (px, py, pz, pw).

    dL/dpz is 0: z does not enter the projection.
    """
    w = clip_pos[:, 3]
    grad_px = grad_pixel[:, 0] * half_w / w
    grad_py = grad_pixel[:, 1] * half_h / w
    grad_pw = -(clip_pos[:, 0] * grad_px + clip_pos[:, 1] * grad_py) / w
    return jnp.stack([grad_px, grad_py, jnp.zeros_like(grad_px), grad_pw], axis=1)
