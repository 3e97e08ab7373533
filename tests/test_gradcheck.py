"""The gradient checker catches a wrong gradient, passes a right one, and the command's table
passes on a tiny synthetic sequence (in a subprocess: it runs in float64)."""

import subprocess
import sys

import jax
import jax.numpy as jnp

from ngdjax.data import synthetic
from ngdjax.gradcheck import check_stage, format_table


@jax.custom_vjp
def _wrong_square(x):
    return x**2


_wrong_square.defvjp(lambda x: (x**2, x), lambda x, g: (3.0 * x * g,))  # the true derivative is 2x


def test_checker_passes_right_and_flags_wrong_gradients():
    x = jnp.linspace(0.5, 1.5, 7, dtype=jnp.float32)
    key = jax.random.PRNGKey(0)
    right = check_stage("square", "fd", lambda v: jnp.sum(v**2), x, key, tolerance=1e-2, eps=1e-2)
    wrong = check_stage("wrong", "fd", lambda v: jnp.sum(_wrong_square(v)), x, key, tolerance=1e-2, eps=1e-2)
    assert right.passed and not wrong.passed and wrong.max_relative_error > 0.3
    table = format_table([right, wrong])
    assert "square" in table and "NO" in table


def test_gradcheck_command_passes_on_a_tiny_sequence(tmp_path):
    config = synthetic.SynthConfig(seed=1, n_frames=3, resolution=(48, 48), target_edge_length=0.035)
    synthetic.write(synthetic.generate(config), str(tmp_path / "seq"))
    (tmp_path / "fit.yaml").write_text(f"name: g\ndata:\n  sequence: {tmp_path / 'seq'}\nrender: jax\n")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.gradcheck", "--cfg", str(tmp_path / "fit.yaml"), "--directions", "3",
         "field.network.log2_table_size=10", "field.network.n_levels=6"], capture_output=True, text=True, timeout=1200)
    assert "poisson solve" in result.stdout and "whole step" in result.stdout, result.stderr[-2000:]
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
