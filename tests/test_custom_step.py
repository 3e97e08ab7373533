"""The README's custom-step example runs and fits: its silhouette loss goes down; the README shows
the example file's fitting function verbatim."""

import inspect
import os

import numpy as np

from experiments.custom_step import fit
from ngdjax.data import synthetic

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_custom_step_fits_the_silhouette(tmp_path):
    config = synthetic.SynthConfig(seed=2, n_frames=3, resolution=(48, 48), target_edge_length=0.035)
    synthetic.write(synthetic.generate(config), str(tmp_path))
    history = fit(str(tmp_path), steps=45)
    assert np.mean(history[-6:]) < 0.7 * np.mean(history[:6])


def test_readme_shows_the_example():
    with open(README) as file:
        readme = file.read()
    assert inspect.getsource(fit) in readme
