"""Pictures of a fitted garment beside its truth, from any side, coloured by per-vertex error.

A render from the training camera can look perfect while the never-seen back of a garment is
centimetres off; these views show the fit and the truth side by side from several azimuths
(front, behind, ...), each coloured by its distance to the other surface, and a contact sheet
that puts one row of such pictures per case into one PNG.

- :func:`orbit_camera` a camera (mv, proj) circling the mesh about ``up``;
- :func:`render_mesh` a shaded render (H, W, 3) of a mesh with per-vertex colours, on any
  backend of :mod:`ngdjax.render.backend` (jitted where the backend allows);
- :func:`surface_error` per-point distance (metres) to a reference surface (libigl);
- :func:`error_colours` the error colour map (light blue-grey = 0, dark red = ``max_m``);
- :func:`side_by_side_views` fit | truth for each azimuth, plus a colour bar, as uint8;
- :func:`contact_sheet` labelled rows of images written atomically as one PNG.

Conventions are those of :mod:`ngdjax.camera` (metres, OpenGL view, image row 0 at the top).
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ngdjax.camera import look_at, perspective, to_clip
from ngdjax.io import write_atomic
from ngdjax.mesh import vertex_normals
from ngdjax.render.backend import Renderer, jit_where_possible
from ngdjax.render.topology import antialias_topology

# Control colours of the error map at 0, 1/3, 2/3 and 1 of its range: light blue-grey, yellow,
# orange, dark red. Their luminance falls monotonically, so the map reads in grey too.
_ERROR_STOPS = np.array([
    [0.80, 0.84, 0.90],
    [0.98, 0.80, 0.40],
    [0.94, 0.45, 0.16],
    [0.60, 0.02, 0.10],
])
_SEPARATOR = 200  # grey level of the lines between panels
_BACKGROUND = 255


# --- Camera ----------------------------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``v`` (3,) rotated by ``angle`` radians about the unit ``axis`` (3,) (Rodrigues)."""
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def orbit_camera(vertices: np.ndarray, azimuth_deg: float, up, forward, resolution: tuple[int, int],
                 fov_deg: float = 30.0, margin: float = 1.05) -> tuple[np.ndarray, np.ndarray]:
    """A camera looking at the centre of the bounding box of ``vertices`` from the direction
    ``forward`` rotated by ``azimuth_deg`` about ``up`` (0 = front, 180 = behind), just far enough
    that the bounding sphere (about that centre) fits the narrower field of view.

    Args:
        vertices: (V, 3) world positions (stack several meshes to frame them together).
        azimuth_deg: rotation about ``up``, degrees, right-handed.
        up, forward: (3,) world directions (``forward`` is made perpendicular to ``up``).
        resolution: (H, W) in pixels. fov_deg: vertical field of view.
        margin: the sphere's radius is scaled by this (space around the mesh).

    Returns:
        mv, proj: (4, 4) world-to-view and view-to-clip matrices (float64).
    """
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    up = _unit(np.asarray(up, np.float64))
    forward = np.asarray(forward, np.float64)
    forward = _unit(forward - (forward @ up) * up)
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    radius = max(float(np.linalg.norm(vertices - centre, axis=1).max()), 1e-6) * margin
    height, width = resolution
    focal = 0.5 * height / np.tan(0.5 * np.radians(fov_deg))
    half_angle = np.arctan(0.5 * min(height, width) / focal)  # of the narrower side
    distance = radius / np.sin(half_angle)
    eye = centre + distance * _rotate(forward, up, np.radians(azimuth_deg))
    near = max(distance - 2.0 * radius, 1e-3 * distance)
    proj = perspective(focal, focal, 0.5 * width, 0.5 * height, width, height, near=near, far=distance + 2.0 * radius)
    return look_at(eye, centre, up), proj


# --- Rendering -------------------------------------------------------------------------------------

def _shade(renderer: Renderer, resolution: tuple[int, int], vertices, faces, colours, topology, mv, proj, light):
    """(H, W, 3) image of :func:`render_mesh` (traceable)."""
    clip = to_clip(vertices, mv, proj)
    view_pos = vertices @ mv[:3, :3].T + mv[None, :3, 3]
    view_normal = vertex_normals(vertices, faces) @ mv[:3, :3].T
    attributes = jnp.concatenate([view_normal, view_pos, colours], axis=1)  # (V, 9)
    rast = renderer.rasterize(clip, faces, resolution)
    pixels = renderer.interpolate(attributes, rast, faces)[0]
    normal, position, colour = pixels[..., :3], pixels[..., 3:6], pixels[..., 6:9]
    normal = normal / jnp.maximum(jnp.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    to_eye = -position / jnp.maximum(jnp.linalg.norm(position, axis=-1, keepdims=True), 1e-6)
    lambert = jnp.abs(jnp.sum(normal * to_eye, axis=-1, keepdims=True))  # two-sided headlight
    lit = colour * (light[0] + light[1] * lambert)  # (H, W, 3) * (H, W, 1)
    covered = rast[0, ..., 3:4] > 0
    image = jnp.where(covered, lit, 1.0)
    image = renderer.antialias(image[None], rast, clip, faces, topology)[0]
    return jnp.clip(image, 0.0, 1.0)


@functools.cache
def _compiled_shade(renderer: Renderer, resolution: tuple[int, int]):
    return jit_where_possible(renderer, functools.partial(_shade, renderer, resolution))


def render_mesh(renderer: Renderer, vertices: np.ndarray, faces: np.ndarray, vertex_colours: np.ndarray,
                mv: np.ndarray, proj: np.ndarray, resolution: tuple[int, int],
                light: tuple[float, float] = (0.35, 0.65)) -> np.ndarray:
    """A shaded render of a mesh with per-vertex colours on a white background, antialiased.

    Shading is a two-sided headlight: colour x (ambient + diffuse |n . v|), n the interpolated
    normal and v the direction to the eye, so faces seen from inside (through a skirt's hem or
    waist) are lit like the outside.

    Args:
        renderer: from :func:`ngdjax.render.backend.get_renderer` (``jax`` runs on CPU).
        vertices: (V, 3) world positions; faces: (F, 3) vertex indices (a welded mesh).
        vertex_colours: (V, 3) RGB in [0, 1].
        mv, proj: (4, 4) camera (e.g. :func:`orbit_camera`). resolution: (H, W).
        light: (ambient, diffuse) weights; their sum is the brightness of a face seen head-on.

    Returns:
        (H, W, 3) float32 numpy image in [0, 1], row 0 at the top.
    """
    faces = np.asarray(faces, np.int32)
    shade = _compiled_shade(renderer, tuple(int(n) for n in resolution))
    image = shade(jnp.asarray(vertices, jnp.float32), jnp.asarray(faces), jnp.asarray(vertex_colours, jnp.float32),
                  jnp.asarray(antialias_topology(faces, len(vertices))), jnp.asarray(mv, jnp.float32),
                  jnp.asarray(proj, jnp.float32), jnp.asarray(light, jnp.float32))
    return np.asarray(image)


# --- Errors and colours ----------------------------------------------------------------------------

def surface_error(points: np.ndarray, reference_vertices: np.ndarray, reference_faces: np.ndarray) -> np.ndarray:
    """(V,) distance in metres from each of ``points`` (V, 3) to the nearest point of the reference
    surface (``reference_vertices`` (N, 3), ``reference_faces`` (F, 3)), faces included (not just
    the reference's vertices)."""
    import igl

    squared, _, _ = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, np.float64), np.ascontiguousarray(reference_vertices, np.float64),
        np.ascontiguousarray(reference_faces, np.int64))
    return np.sqrt(np.maximum(squared, 0.0))


def error_colours(errors: np.ndarray, max_m: float = 0.04) -> np.ndarray:
    """(V, 3) RGB in [0, 1] of ``errors`` (V,) metres: light blue-grey at 0 through yellow and
    orange to dark red at ``max_m`` and beyond; luminance falls monotonically with the error."""
    t = np.clip(np.asarray(errors, np.float64) / max_m, 0.0, 1.0)
    knots = np.linspace(0.0, 1.0, len(_ERROR_STOPS))
    return np.stack([np.interp(t, knots, _ERROR_STOPS[:, c]) for c in range(3)], axis=-1)


# --- Pictures --------------------------------------------------------------------------------------

def _font(size: int):
    return ImageFont.load_default(size=size)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``text`` written in its top-left corner."""
    picture = Image.fromarray(image)
    ImageDraw.Draw(picture).text((4, 2), text, fill=(60, 60, 60), font=_font(max(10, image.shape[0] // 20)))
    return np.asarray(picture)


def colour_bar(height: int, max_m: float, max_error_m: float | None = None, width: int = 72) -> np.ndarray:
    """(height, width, 3) uint8: a vertical bar of :func:`error_colours` from 0 (bottom) to
    ``max_m`` (top), labelled in cm, and the largest error ``max_error_m`` when given."""
    picture = Image.new("RGB", (width, height), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(picture)
    font = _font(max(9, height // 24))
    top, bottom, bar_w = height // 8, height - height // 8, max(8, width // 5)
    ramp = error_colours(np.linspace(max_m, 0.0, bottom - top), max_m)
    bar = np.broadcast_to(_to_uint8(ramp)[:, None], (bottom - top, bar_w, 3))
    picture.paste(Image.fromarray(np.ascontiguousarray(bar)), (4, top))
    draw.rectangle((4, top, 4 + bar_w - 1, bottom - 1), outline=(120, 120, 120))
    draw.text((8 + bar_w, top - 2), f"{100 * max_m:.3g} cm", fill=(0, 0, 0), font=font)
    draw.text((8 + bar_w, bottom - font.size), "0", fill=(0, 0, 0), font=font)
    if max_error_m is not None:
        draw.text((4, bottom + 4), "max", fill=(0, 0, 0), font=font)
        draw.text((4, bottom + 6 + font.size), f"{100 * max_error_m:.2f} cm", fill=(0, 0, 0), font=font)
    return np.asarray(picture)


def _hstack(images: list[np.ndarray], separator: int) -> np.ndarray:
    """Images (H, W_i, 3) side by side with ``separator``-pixel grey lines between them."""
    line = np.full((images[0].shape[0], separator, 3), _SEPARATOR, np.uint8)
    parts = [images[0]]
    for image in images[1:]:
        parts += [line, image]
    return np.concatenate(parts, axis=1)


def side_by_side_views(renderer: Renderer, fit_v: np.ndarray, fit_f: np.ndarray, truth_v: np.ndarray,
                       truth_f: np.ndarray, up, forward, resolution: tuple[int, int] = (256, 256),
                       azimuths=(0, 180), max_m: float = 0.04, fov_deg: float = 30.0,
                       separator: int = 2) -> np.ndarray:
    """The fit and the truth from each azimuth, coloured by their distance to each other.

    For every azimuth (degrees about ``up`` from ``forward``, 0 = front, 180 = behind): the fit
    coloured by :func:`surface_error` to the truth, then the truth coloured by its error to the
    fit, through the same :func:`orbit_camera` framing both meshes; then a colour bar (0 to
    ``max_m``, and the largest error of either side in cm). Panels are captioned.

    Args:
        fit_v (V, 3), fit_f (F, 3); truth_v (N, 3), truth_f (G, 3): the two meshes, world metres.
        up, forward: (3,) world directions of the subject. resolution: (H, W) of each panel.

    Returns:
        (H, W_total, 3) uint8, W_total = 2 W len(azimuths) + separators + the colour bar's width.
    """
    fit_v, truth_v = np.asarray(fit_v, np.float64), np.asarray(truth_v, np.float64)
    fit_error = surface_error(fit_v, truth_v, truth_f)
    truth_error = surface_error(truth_v, fit_v, fit_f)
    fit_colours, truth_colours = error_colours(fit_error, max_m), error_colours(truth_error, max_m)
    both = np.concatenate([fit_v, truth_v])
    panels = []
    for azimuth in azimuths:
        mv, proj = orbit_camera(both, azimuth, up, forward, resolution, fov_deg)
        for name, v, f, c in (("fit", fit_v, fit_f, fit_colours), ("truth", truth_v, truth_f, truth_colours)):
            image = _to_uint8(render_mesh(renderer, v, f, c, mv, proj, resolution))
            panels.append(_caption(image, f"{name} {azimuth:g}\N{DEGREE SIGN}"))
    max_error = float(max(fit_error.max(initial=0.0), truth_error.max(initial=0.0)))
    panels.append(colour_bar(resolution[0], max_m, max_error))
    return _hstack(panels, separator)


def turntable(renderer: Renderer, fit_v: np.ndarray, fit_f: np.ndarray, up, forward, truth_v: np.ndarray | None = None,
              truth_f: np.ndarray | None = None, n_views: int = 8, resolution: tuple[int, int] = (192, 192),
              max_m: float = 0.04, fov_deg: float = 30.0, separator: int = 2) -> np.ndarray:
    """The fit seen from ``n_views`` azimuths all round (0 = from ``forward``, the training
    camera's side), and below it the truth from the same cameras, each coloured by its distance to
    the other, with a colour bar; without a truth, the fit alone in a neutral colour.

    Args:
        fit_v (V, 3), fit_f (F, 3): the fit. truth_v (N, 3), truth_f (G, 3): the truth, or None.
        up, forward: (3,) world directions. resolution: (H, W) of each view.

    Returns:
        (H or 2 H + separator, W_total, 3) uint8.
    """
    fit_v = np.asarray(fit_v, np.float64)
    meshes = [("fit", fit_v, fit_f, np.full((len(fit_v), 3), 0.75))]
    if truth_v is not None:
        truth_v = np.asarray(truth_v, np.float64)
        fit_error, truth_error = surface_error(fit_v, truth_v, truth_f), surface_error(truth_v, fit_v, fit_f)
        meshes = [("fit", fit_v, fit_f, error_colours(fit_error, max_m)),
                  ("truth", truth_v, truth_f, error_colours(truth_error, max_m))]
    framed = np.concatenate([v for _, v, _, _ in meshes])
    cameras = [orbit_camera(framed, azimuth, up, forward, resolution, fov_deg)
               for azimuth in np.arange(n_views) * 360.0 / n_views]
    rows = []
    for name, vertices, faces, colours in meshes:
        views = [_caption(_to_uint8(render_mesh(renderer, vertices, faces, colours, mv, proj, resolution)),
                         f"{name} {i * 360 / n_views:g}\N{DEGREE SIGN}") for i, (mv, proj) in enumerate(cameras)]
        rows.append(_hstack(views, separator))
    picture = rows[0] if len(rows) == 1 else np.concatenate(
        [rows[0], np.full((separator, rows[0].shape[1], 3), _SEPARATOR, np.uint8), rows[1]], axis=0)
    if truth_v is None:
        return picture
    bar = colour_bar(picture.shape[0], max_m, float(max(fit_error.max(initial=0.0), truth_error.max(initial=0.0))))
    return _hstack([picture, bar], separator)


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], path, row_height: int = 256, label_width: int = 160,
                  gap: int = 4) -> tuple[int, int]:
    """Write one PNG with a row per case: its name, then its images scaled to ``row_height``.

    Args:
        rows: (name, images) per case; images uint8 (H, W, 3) of any sizes (aspect kept).
        path: the PNG to write; written under a temporary name in the same directory and
            renamed (``os.replace``), so no half-written file is ever at ``path``.
        row_height, label_width, gap: pixels (label column width, space between everything).

    Returns:
        (height, width) of the sheet: height = len(rows) (row_height + gap) + gap, width =
        label_width + the widest row's scaled images with ``gap`` before each, + gap.
    """
    scaled_rows = []
    for name, images in rows:
        scaled = []
        for image in images:
            image = np.asarray(image, np.uint8)
            width = max(1, round(image.shape[1] * row_height / image.shape[0]))
            scaled.append(Image.fromarray(image[..., :3]).resize((width, row_height), Image.Resampling.LANCZOS))
        scaled_rows.append((name, scaled))
    row_widths = [sum(gap + im.width for im in scaled) for _, scaled in scaled_rows]
    width = label_width + max(row_widths, default=0) + gap
    height = len(rows) * (row_height + gap) + gap
    sheet = Image.new("RGB", (width, height), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    for i, (name, scaled) in enumerate(scaled_rows):
        y = gap + i * (row_height + gap)
        draw.text((gap, y + row_height // 2 - 7), name, fill=(0, 0, 0), font=font)
        x = label_width
        for image in scaled:
            x += gap
            sheet.paste(image, (x, y))
            x += image.width
    write_atomic(os.fspath(path), lambda temporary: sheet.save(temporary, format="PNG"))
    return height, width
