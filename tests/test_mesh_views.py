"""ngdjax.mesh_views on known scenes: a sphere's projected area, front and back of a two-coloured
sphere, surface errors of concentric spheres, the colour map, the contact sheet's file."""

import os

import numpy as np
import pytest
import trimesh
from PIL import Image

from ngdjax.mesh_views import (
    contact_sheet,
    error_colours,
    orbit_camera,
    render_mesh,
    side_by_side_views,
    surface_error,
)
from ngdjax.render.backend import get_renderer

RESOLUTION = (96, 96)  # one shape for every render: one compilation
UP, FORWARD = (0.0, 0.0, 1.0), (1.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("jax")


def _covered(image):
    return image.min(axis=-1) < 0.99  # background is white


def test_sphere_covers_its_projected_disc(renderer, sphere):
    vertices, faces = sphere
    mv, proj = orbit_camera(vertices, 0.0, UP, FORWARD, RESOLUTION)
    image = render_mesh(renderer, vertices, faces, np.full_like(vertices, 0.5), mv, proj, RESOLUTION)
    assert image.shape == (*RESOLUTION, 3) and image.min() >= 0.0 and image.max() <= 1.0
    distance = np.linalg.norm(mv[:3, 3])  # camera to centre (the origin)
    focal_px = proj[0, 0] * RESOLUTION[1] / 2
    radius_px = focal_px * np.tan(np.arcsin(1.0 / distance))  # the silhouette of a sphere in perspective
    expected = np.pi * radius_px**2 / (RESOLUTION[0] * RESOLUTION[1])
    assert _covered(image).mean() == pytest.approx(expected, rel=0.05)
    # framed: the disc touches neither border
    assert not _covered(image)[[0, -1]].any() and not _covered(image)[:, [0, -1]].any()


def test_azimuth_180_shows_the_other_side(renderer, sphere):
    vertices, faces = sphere
    front = (vertices @ np.asarray(FORWARD)) > 0
    colours = np.where(front[:, None], [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]])
    sums = {}
    for azimuth in (0, 180):
        mv, proj = orbit_camera(vertices, azimuth, UP, FORWARD, RESOLUTION)
        image = render_mesh(renderer, vertices, faces, colours, mv, proj, RESOLUTION)
        pixels = image[_covered(image)]
        sums[azimuth] = (pixels[:, 0] > pixels[:, 2]).mean()
    assert sums[0] > 0.95  # the front view is red
    assert sums[180] < 0.05  # the back view is blue


def test_surface_error_of_concentric_spheres(sphere):
    vertices, faces = sphere
    assert np.abs(surface_error(vertices, vertices, faces)).max() < 1e-9
    offset = 0.03
    # every vertex of the larger sphere lies along its vertex normal from the smaller sphere's vertex
    assert surface_error(vertices * (1.0 + offset), vertices, faces) == pytest.approx(offset, rel=0.01)
    # from the inside the triangulated sphere is nearer by at most its sagitta
    inside = surface_error(vertices, vertices * (1.0 + offset), faces)
    assert inside.max() == pytest.approx(offset, rel=0.01) and (inside <= offset + 1e-9).all()


def test_error_colours_are_monotone():
    errors = np.linspace(0.0, 0.04, 101)
    colours = error_colours(errors, max_m=0.04)
    assert colours.shape == (101, 3) and colours.min() >= 0.0 and colours.max() <= 1.0
    luminance = colours @ np.array([0.2126, 0.7152, 0.0722])
    assert (np.diff(luminance) < 0).all()
    np.testing.assert_allclose(error_colours(np.array([0.1, -1.0]), 0.04), colours[[-1, 0]])


def test_side_by_side_and_contact_sheet(renderer, sphere, tmp_path):
    vertices, faces = sphere
    views = side_by_side_views(renderer, vertices * 1.02, faces, vertices, faces, UP, FORWARD,
                               resolution=RESOLUTION, azimuths=(0, 180))
    assert views.dtype == np.uint8 and views.shape[0] == RESOLUTION[0]
    assert views.shape[1] > 4 * RESOLUTION[1]
    small = np.zeros((48, 30, 3), np.uint8)
    path = tmp_path / "sheet.png"
    size = contact_sheet([("sphere +2 cm", [views]), ("small", [small, small])], path,
                         row_height=64, label_width=100, gap=4)
    scaled = round(views.shape[1] * 64 / views.shape[0])
    expected = (2 * (64 + 4) + 4, 100 + 4 + scaled + 4)
    assert size == expected
    with Image.open(path) as png:
        assert png.format == "PNG" and (png.height, png.width) == expected
    assert os.listdir(tmp_path) == ["sheet.png"]
