"""Make docs/synthetic_frame.png: one synthetic frame next to its garment mask, occluder mask and
diffuse target (the README's picture of the built-in benchmark).

    python tools/make_readme_figure.py [--cfg configs/synth/demo.yaml] [--frame 1] [--out docs/synthetic_frame.png]
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from ngdjax.config import load_config
from ngdjax.data import synthetic
from ngdjax.io import write_image

PANELS = ("frame", "garment mask", "occluders (body over garment)", "diffuse target")


def figure(sequence: synthetic.SyntheticSequence, index: int) -> np.ndarray:
    """(H + 20, 4 W, 3) uint8 strip with captions: RGB, mask, occluders (red, over the mask in dark
    grey), diffuse."""
    grey = lambda image: np.repeat((np.asarray(image, np.float32)[..., None] * 255).astype(np.uint8), 3, axis=-1)
    occluders = np.where(sequence.occluders[index][..., None], np.array([220, 30, 30], np.uint8),
                         grey(0.35 * sequence.masks[index]))
    panels = [sequence.images[index], grey(sequence.masks[index]), occluders, grey(sequence.diffuse[index])]
    height, width = sequence.masks.shape[1:]
    strip = Image.new("RGB", (4 * width, height + 20), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for i, (panel, caption) in enumerate(zip(panels, PANELS, strict=True)):
        strip.paste(Image.fromarray(panel), (i * width, 20))
        draw.text((i * width + 6, 4), caption, fill=(0, 0, 0))
    return np.asarray(strip)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="configs/synth/demo.yaml")
    parser.add_argument("--frame", type=int, default=1)
    parser.add_argument("--out", default="docs/synthetic_frame.png")
    args = parser.parse_args(argv)
    config = load_config(args.cfg, synthetic.SynthConfig, [f"n_frames={args.frame + 1}", "resolution=[320, 320]"])
    write_image(args.out, figure(synthetic.generate(config), args.frame))
    print(args.out)


if __name__ == "__main__":
    main()
