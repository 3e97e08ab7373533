"""The README's custom-step example runs and fits: its silhouette loss goes down; the README shows
the example file's fitting function verbatim."""

import inspect
import os

import numpy as np

from experiments.custom_step import fit
from ngdjax.data import synthetic
from test_faults import TINY

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_custom_step_fits_the_silhouette(tmp_path):
    # the tiny sequence of the fit tests (tests/test_faults.py): generated with the same shapes, it
    # compiles the generator and the body's transforms once for all of them
    synthetic.write(synthetic.generate(TINY), str(tmp_path))
    history = fit(str(tmp_path), steps=45)
    assert np.mean(history[-6:]) < 0.7 * np.mean(history[:6])


def test_readme_shows_the_example():
    with open(README) as file:
        readme = file.read()
    assert inspect.getsource(fit) in readme
