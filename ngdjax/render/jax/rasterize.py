"""Pure-JAX rasterisation with nvdiffrast 0.3.3 semantics (docs/render.md sections 1-2).

Visibility is decided as nvdiffrast's CUDA rasteriser does: vertices snapped to a 1/16-pixel
grid (round half to even), exact integer edge functions with the top-left-style fill rule of
docs/render.md section 1, point sampling at pixel centres, depth test less-or-equal with the higher
triangle index winning exact ties. Then u, v, z/w are computed per pixel from the unsnapped clip
positions (section 2.2). Only u and v carry gradients to ``clip_pos`` (section 2.4: the forward
clamp is ignored and every 1/A is regularised to 1/(A + copysign(1e-6, A))).

How it maps onto fixed-shape JAX: every triangle contributes one *fragment* per pixel of its
(clipped) bounding box; the fragments of all triangles are laid out back to back in a buffer of
static size ``fragment_capacity`` (triangle of fragment i found by a max-scan over the
triangles' start offsets), tested for coverage and depth, and resolved into the image with two
scatters (min depth, then max triangle id among the fragments at that depth).

Deviations from nvdiffrast, all outside what the project renders:
- no near-plane clipping: triangles with a vertex at w <= 0, or with a vertex more than 2048 px
  from the image centre (beyond nvdiffrast's guard band, where it clips), are tested with float
  edge functions on unsnapped positions instead of being split into sub-triangles;
- the depth test compares a float32 z/w plane through the snapped corners, not nvdiffrast's
  32-bit fixed-point one, so coplanar or nearly coplanar overlaps may resolve differently.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

SUBPIXEL = 16  # nvdiffrast snaps to 1/16 pixel
GUARD_BAND_PX = 2048


def default_fragment_capacity(resolution: tuple[int, int], n_faces: int) -> int:
    """Fragment buffer size used when none is given: room for the bounding boxes of a mesh
    covering the image about twice over, and for at least 16 pixels per triangle."""
    height, width = resolution
    return int(max(4 * height * width, 16 * n_faces))


@functools.partial(jax.jit, static_argnames=("resolution", "fragment_capacity", "check_capacity"))
def rasterize(
    clip_pos: Float[Array, "*B V 4"],
    tris: Int[Array, "F 3"],
    resolution: tuple[int, int],
    fragment_capacity: int | None = None,
    check_capacity: bool = True,
) -> Float[Array, "B H W 4"]:
    """Rasterise triangles into ``rast`` (B, H, W, 4) float32 = (u, v, z/w, triangle_id + 1).

    Args:
        clip_pos: (V, 4) or (B, V, 4) float32 clip-space positions; (V, 4) means B = 1.
        tris: (F, 3) int32 vertex indices.
        resolution: (H, W) tuple, static. Row 0 of the image is at y_ndc = -1.
        fragment_capacity: static size of the fragment buffer (sum over triangles of their
            on-screen bounding-box areas must fit); default :func:`default_fragment_capacity`.
        check_capacity: if the buffer overflows, raise at run time with the size needed.

    Returns:
        rast: (B, H, W, 4); background pixels are all zeros. u weights ``tris[t, 0]``, v weights
        ``tris[t, 1]``. Differentiable in u, v with respect to ``clip_pos``.
    """
    height, width = resolution
    clip_pos = clip_pos[None] if clip_pos.ndim == 2 else clip_pos
    capacity = fragment_capacity or default_fragment_capacity(resolution, tris.shape[0])
    # A Python loop over the (small, static) batch: vmapped gathers and scatters are slower on CPU.
    images = []
    for positions in clip_pos:
        ids = _visible_triangle_ids(jax.lax.stop_gradient(positions).astype(jnp.float32), tris, height, width,
                                    capacity, check_capacity)
        images.append(_barycentrics(positions, tris, ids, width, height))
    return jnp.stack(images)


# ----------------------------------------------------------------------------------------------
# Visibility


def _snap(ndc: Float[Array, "V"], size: int) -> Int[Array, "V"]:
    """Subpixel integer coordinate relative to the image centre: round_half_even(ndc * size * 8)."""
    limit = float(2**24)  # far beyond the guard band; keeps the int32 cast defined
    return jnp.round(jnp.clip(ndc * (size * SUBPIXEL / 2), -limit, limit)).astype(jnp.int32)


def _triangle_setup(clip_pos, tris, height, width):
    """Per-triangle tables for the fragment tests (all (F, k) so that one row gather serves a fragment).

    Returns a dict with
      ``edges`` (F, 13) int32: for each of the 3 edges of the triangle oriented to positive area,
        (a_x, a_y, e_x, e_y) in subpixels, then 1 if the triangle's snapped corners are all inside
        the guard band (exact integer tests), else 0;
      ``edges_f`` (F, 12) float32: the same edge data as floats (used outside the guard band);
      ``depth_plane`` (F, 3) float32: z/w = c0 + c1 * X + c2 * Y over subpixel coordinates,
        built from the snapped corners as nvdiffrast does;
      ``box`` (F, 4) int32: first column, first row, width and height of the pixel bounding box
        (width and height 0 for culled triangles).
    """
    w = clip_pos[:, 3]
    safe_w = jnp.where(w > 0, w, 1.0)
    ndc = clip_pos[:, :3] / safe_w[:, None]
    sx = _snap(ndc[:, 0], width)[tris]  # (F, 3)
    sy = _snap(ndc[:, 1], height)[tris]
    fx, fy = sx.astype(jnp.float32), sy.astype(jnp.float32)
    area2 = (fx[:, 1] - fx[:, 0]) * (fy[:, 2] - fy[:, 0]) - (fx[:, 2] - fx[:, 0]) * (fy[:, 1] - fy[:, 0])
    in_front = jnp.all(w[tris] > 0, axis=1)
    outside_same_plane = jnp.zeros(tris.shape[0], bool)
    for axis in range(3):
        coord = ndc[:, axis][tris]
        outside_same_plane |= jnp.all(coord < -1, axis=1) | jnp.all(coord > 1, axis=1)
    valid = in_front & ~outside_same_plane & (area2 != 0)
    # Orient to positive area: swap corners 1 and 2 of negative triangles.
    flip = (area2 < 0)[:, None]
    sx = jnp.where(flip, sx[:, [0, 2, 1]], sx)
    sy = jnp.where(flip, sy[:, [0, 2, 1]], sy)
    ex, ey = jnp.roll(sx, -1, axis=1) - sx, jnp.roll(sy, -1, axis=1) - sy
    guard = GUARD_BAND_PX * SUBPIXEL
    exact = jnp.all((jnp.abs(sx) <= guard) & (jnp.abs(sy) <= guard), axis=1)
    edges = jnp.concatenate([sx, sy, ex, ey, exact[:, None].astype(jnp.int32)], axis=1)
    # Depth plane through the three snapped corners (Cramer's rule on subpixel coordinates).
    z = ndc[:, 2][tris]
    z = jnp.where(flip, z[:, [0, 2, 1]], z)
    fx, fy = sx.astype(jnp.float32), sy.astype(jnp.float32)
    dx1, dy1, dz1 = fx[:, 1] - fx[:, 0], fy[:, 1] - fy[:, 0], z[:, 1] - z[:, 0]
    dx2, dy2, dz2 = fx[:, 2] - fx[:, 0], fy[:, 2] - fy[:, 0], z[:, 2] - z[:, 0]
    det = jnp.where(valid, dx1 * dy2 - dx2 * dy1, 1.0)
    c1 = (dz1 * dy2 - dz2 * dy1) / det
    c2 = (dx1 * dz2 - dx2 * dz1) / det
    depth_plane = jnp.stack([z[:, 0] - c1 * fx[:, 0] - c2 * fy[:, 0], c1, c2], axis=1)
    # Pixel c's sample sits at subpixel 16 c + 8 - 8 W (relative to the image centre).
    col0 = jnp.clip(_ceil_div(jnp.min(sx, 1) - 8 + 8 * width, SUBPIXEL), 0, width)
    col1 = jnp.clip(jnp.floor_divide(jnp.max(sx, 1) - 8 + 8 * width, SUBPIXEL), -1, width - 1)
    row0 = jnp.clip(_ceil_div(jnp.min(sy, 1) - 8 + 8 * height, SUBPIXEL), 0, height)
    row1 = jnp.clip(jnp.floor_divide(jnp.max(sy, 1) - 8 + 8 * height, SUBPIXEL), -1, height - 1)
    box_w = jnp.where(valid, jnp.maximum(col1 - col0 + 1, 0), 0)
    box_h = jnp.where(valid, jnp.maximum(row1 - row0 + 1, 0), 0)
    return dict(edges=edges, edges_f=edges[:, :12].astype(jnp.float32), depth_plane=depth_plane,
                box=jnp.stack([col0, row0, box_w, box_h], axis=1))


def _ceil_div(a, b):
    return -jnp.floor_divide(-a, b)


def _fragment_triangles(sizes: Int[Array, "F"], capacity: int):
    """Triangle index and local index of every fragment slot, and how many slots are used."""
    ends = jnp.cumsum(sizes, dtype=jnp.int32)
    starts = ends - sizes
    total = ends[-1]
    marks = jnp.zeros(capacity, jnp.int32).at[starts].max(
        jnp.where(sizes > 0, jnp.arange(sizes.shape[0], dtype=jnp.int32), 0), mode="drop"
    )
    triangle = jax.lax.cummax(marks)
    local = jnp.arange(capacity, dtype=jnp.int32) - starts[triangle]
    used = jnp.arange(capacity, dtype=jnp.int32) < total
    return triangle, local, used, total


def _inside(edges, edges_f, px, py):
    """Coverage of samples (px, py) (N,) subpixel ints by their triangles' oriented edges.

    For each edge a -> b with e = b - a: inside iff (a - s) x e >= 0, where 0 counts as inside
    only if not (e.y > 0 or (e.y == 0 and e.x <= 0)). The cross product is compared as two
    products (each at most 2^30 inside the guard band, so no int32 overflow).
    """
    exact = edges[:, 12] > 0
    covered = jnp.ones(px.shape, bool)
    for k in range(3):
        ax, ay, ex, ey = edges[:, k], edges[:, 3 + k], edges[:, 6 + k], edges[:, 9 + k]
        axf, ayf, exf, eyf = edges_f[:, k], edges_f[:, 3 + k], edges_f[:, 6 + k], edges_f[:, 9 + k]
        pxf, pyf = px.astype(jnp.float32), py.astype(jnp.float32)
        lhs_i, rhs_i = (ax - px) * ey, (ay - py) * ex
        lhs_f, rhs_f = (axf - pxf) * eyf, (ayf - pyf) * exf
        greater = jnp.where(exact, lhs_i > rhs_i, lhs_f > rhs_f)
        equal = jnp.where(exact, lhs_i == rhs_i, lhs_f == rhs_f)
        tie_inside = ~((ey > 0) | ((ey == 0) & (ex <= 0)))
        covered &= greater | (equal & tie_inside)
    return covered


def _depth_key(depth: Float[Array, "N"]) -> Int[Array, "N"]:
    """int32 key ordered like the float32 ``depth`` (smaller depth, smaller key)."""
    bits = jax.lax.bitcast_convert_type(depth, jnp.int32)
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


def _visible_triangle_ids(clip_pos, tris, height, width, capacity, check_capacity) -> Int[Array, "H W"]:
    """triangle_id + 1 per pixel (0 = background) for one image."""
    setup = _triangle_setup(clip_pos, tris, height, width)
    triangle, local, used, total = _fragment_triangles(setup["box"][:, 2] * setup["box"][:, 3], capacity)
    if check_capacity:  # the host callback runs only on overflow, not on every call
        report = functools.partial(_check_capacity, capacity=capacity)
        jax.lax.cond(total > capacity, lambda t: jax.debug.callback(report, t), lambda t: None, total)
    col0, row0, box_w, _ = (setup["box"][triangle, k] for k in range(4))
    box_w = jnp.maximum(box_w, 1)
    col = col0 + local % box_w
    row = row0 + local // box_w
    px = SUBPIXEL * col + 8 - 8 * width
    py = SUBPIXEL * row + 8 - 8 * height
    covered = used & _inside(setup["edges"][triangle], setup["edges_f"][triangle], px, py)
    plane = setup["depth_plane"][triangle]
    depth = plane[:, 0] + plane[:, 1] * px.astype(jnp.float32) + plane[:, 2] * py.astype(jnp.float32)
    covered &= (depth >= -1.0) & (depth <= 1.0)
    pixel = jnp.where(covered, row * width + col, height * width)  # out of range: dropped
    key = _depth_key(depth)
    nearest = jnp.full(height * width, jnp.iinfo(jnp.int32).max, jnp.int32).at[pixel].min(key, mode="drop")
    wins = covered & (key == nearest[jnp.minimum(pixel, height * width - 1)])
    ids = jnp.zeros(height * width, jnp.int32).at[jnp.where(wins, pixel, height * width)].max(
        triangle + 1, mode="drop")
    return ids.reshape(height, width)


def _check_capacity(total, capacity):
    if int(total) > capacity:
        raise RuntimeError(
            f"rasterize: the triangles' bounding boxes need {int(total)} fragments but "
            f"fragment_capacity is {capacity}; pass fragment_capacity >= {int(total)}"
        )


# ----------------------------------------------------------------------------------------------
# Barycentrics (differentiable in u, v)


def _homogeneous_barycentrics(corners: Float[Array, "N 3 4"], fx, fy, eps: float = 0.0):
    """u, v, z/w at NDC pixel centre (fx, fy) by docs/render.md 2.2 (no division by w per vertex).

    With ``eps > 0`` every 1/A becomes 1/(A + copysign(eps, A)) (the backward's regularisation).
    """
    qx = corners[..., 0] - fx[..., None] * corners[..., 3]
    qy = corners[..., 1] - fy[..., None] * corners[..., 3]
    a0 = qx[..., 1] * qy[..., 2] - qy[..., 1] * qx[..., 2]
    a1 = qx[..., 2] * qy[..., 0] - qy[..., 2] * qx[..., 0]
    a2 = qx[..., 0] * qy[..., 1] - qy[..., 0] * qx[..., 1]
    area = a0 + a1 + a2
    inverse = 1.0 / (area + jnp.copysign(eps, area)) if eps else 1.0 / area
    weights = jnp.stack([a0, a1, a2], axis=-1)
    depth = jnp.sum(corners[..., 2] * weights, -1) / jnp.sum(corners[..., 3] * weights, -1)
    return a0 * inverse, a1 * inverse, depth


def _pixel_centres(width: int, height: int, dtype):
    """NDC x and y of every pixel centre, each (H, W)."""
    # nvdiffrast's own float32 expression, c * (2/W) + (1/W - 1): for thin triangles on screen
    # u and v are sensitive to the last bit of the pixel centre.
    fx = jnp.arange(width, dtype=dtype) * (2.0 / width) + (1.0 / width - 1.0)
    fy = jnp.arange(height, dtype=dtype) * (2.0 / height) + (1.0 / height - 1.0)
    return jnp.broadcast_to(fx[None, :], (height, width)), jnp.broadcast_to(fy[:, None], (height, width))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _barycentrics(clip_pos, tris, ids, width, height) -> Float[Array, "H W 4"]:
    """(u, v, z/w, id) per pixel, u and v clamped to [0, 1] and z/w to [-1, 1]; zeros on background."""
    covered = ids > 0
    corners = clip_pos[tris[jnp.maximum(ids - 1, 0)]]  # (H, W, 3, 4)
    fx, fy = _pixel_centres(width, height, clip_pos.dtype)
    u, v, depth = _homogeneous_barycentrics(corners, fx, fy)
    u = jnp.nan_to_num(jnp.clip(u, 0.0, 1.0))
    v = jnp.nan_to_num(jnp.clip(v, 0.0, 1.0))
    depth = jnp.clip(depth, -1.0, 1.0)
    rast = jnp.stack([u, v, depth, ids.astype(clip_pos.dtype)], axis=-1)
    return jnp.where(covered[..., None], rast, 0.0)


def _barycentrics_fwd(clip_pos, tris, ids, width, height):
    return _barycentrics(clip_pos, tris, ids, width, height), (clip_pos, tris, ids)


def _barycentrics_bwd(width, height, residuals, cotangent):
    clip_pos, tris, ids = residuals
    fx, fy = _pixel_centres(width, height, clip_pos.dtype)
    covered = (ids > 0).astype(clip_pos.dtype)

    def regularised_uv(pos):
        corners = pos[tris[jnp.maximum(ids - 1, 0)]]
        u, v, _ = _homogeneous_barycentrics(corners, fx, fy, eps=1e-6)
        return u * covered, v * covered

    _, pullback = jax.vjp(regularised_uv, clip_pos)
    (grad_pos,) = pullback((cotangent[..., 0], cotangent[..., 1]))
    return grad_pos, None, None


_barycentrics.defvjp(_barycentrics_fwd, _barycentrics_bwd)


def barycentrics_for_ids(
    clip_pos: Float[Array, "V 4"], tris: Int[Array, "F 3"], ids: Int[Array, "H W"], resolution: tuple[int, int]
) -> Float[Array, "1 H W 4"]:
    """``rast`` for a given map of triangle ids (id + 1, 0 = background): what :func:`rasterize`
    returns when visibility is held fixed, differentiable in u, v exactly as there. Used to check
    the gradients of everything downstream of the rasteriser by finite differences."""
    height, width = resolution
    return _barycentrics(clip_pos, tris, ids, width, height)[None]


def unclamped_barycentrics_for_ids(
    clip_pos: Float[Array, "V 4"], tris: Int[Array, "F 3"], ids: Int[Array, "H W"], resolution: tuple[int, int]
) -> Float[Array, "1 H W 4"]:
    """The function whose plain derivative is :func:`barycentrics_for_ids`' gradient: u and v
    neither clamped nor made finite, every 1/A regularised as the backward does, z/w without a
    gradient (docs/render.md 2.4). Near edges the clamp is active (the ids come from 1/16-px snapped
    vertices, u and v from the unsnapped ones), so finite differences of the clamped op disagree
    with its gradient by design there; finite differences of this function do not."""
    height, width = resolution
    covered = ids > 0
    corners = clip_pos[tris[jnp.maximum(ids - 1, 0)]]
    fx, fy = _pixel_centres(width, height, clip_pos.dtype)
    u, v, _ = _homogeneous_barycentrics(corners, fx, fy, eps=1e-6)
    _, _, depth = _homogeneous_barycentrics(jax.lax.stop_gradient(corners), fx, fy)
    rast = jnp.stack([u, v, jnp.clip(depth, -1.0, 1.0), ids.astype(clip_pos.dtype)], axis=-1)
    return jnp.where(covered[..., None], rast, 0.0)[None]
