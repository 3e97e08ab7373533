"""The step benchmark's PyTorch reference on a CPU at toy sizes (the real workload, with nvdiffrast,
needs a GPU: ``python -m experiments.bench step``): its step runs, and its pieces equal ngdjax's."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_torch_reference_step_descends_on_cpu():
    """The reference's whole step lowers its loss on a frame, and its stage closures run to finite
    values, with a stand-in for nvdiffrast."""
    from benchmarks.torch_reference import TorchReferenceFit
    from ngdjax import procedural
    from ngdjax.fields import DynamicJacobianConfig, NetworkConfig
    from ngdjax.fit_config import LossConfig, OptimConfig

    vertices, faces = procedural.garment(300)
    resolution, n_frames, rng = (32, 32), 2, np.random.default_rng(0)

    def render(posed, mv, proj):  # differentiable in the vertices, like the real pass
        image = torch.sigmoid(posed[:, 0].mean() + posed[:, 1].mean()) * torch.ones(resolution)
        return (image, 0.5 * image, 0.1 * image), torch.ones(len(faces), dtype=torch.bool)

    transforms = np.broadcast_to(np.eye(4, dtype=np.float32), (n_frames, 3, 4, 4))
    frames = {name: rng.uniform(size=(n_frames, *resolution)).astype(np.float32)
              for name in ("mask", "occluders", "diffuse", "depth")}
    frames.update(mv=np.broadcast_to(np.eye(4), (n_frames, 4, 4)), proj=np.broadcast_to(np.eye(4), (n_frames, 4, 4)),
                  code=rng.normal(size=(n_frames, 4)))
    weights = np.full((len(vertices), 3), 1.0 / 3.0)
    fit = TorchReferenceFit(vertices, faces, weights, transforms, frames, resolution,
                            DynamicJacobianConfig(network=NetworkConfig(log2_table_size=8)), LossConfig(), OptimConfig(),
                            torch.device("cpu"), render=render)
    before = fit.static.detach().clone()
    losses = [float(fit.step(0)) for _ in range(12)]
    assert np.all(np.isfinite(losses)) and not torch.equal(before, fit.static.detach())
    assert losses[-1] < losses[0], losses
    for name, stage in fit.stage_closures(0).items():
        out = stage()
        tensors = [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]
        assert all(torch.isfinite(t).all() for t in tensors), name


def test_torch_reference_pieces_match_ngdjax():
    import jax.numpy as jnp

    from benchmarks.torch_reference import (
        HostLUPoisson,
        TorchHashGrid,
        template_jacobians,
    )
    from ngdjax import procedural
    from ngdjax.hashgrid import HashGridConfig, encode
    from ngdjax.poisson import build_poisson_solver, jacobians_from_vertices, solve

    config = HashGridConfig(4, 16, 2, 10)
    grid = TorchHashGrid(config, torch.device("cpu"))
    x = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32) * 2  # negative cells wrap
    expected = np.asarray(encode(jnp.asarray(grid.table.detach().numpy()), config, jnp.asarray(x)))
    np.testing.assert_allclose(grid(torch.tensor(x)).detach().numpy(), expected, atol=1e-9)

    vertices, faces = procedural.garment(500)
    solver = build_poisson_solver(vertices, faces, method="host")
    jacobians = template_jacobians(vertices, faces)
    np.testing.assert_allclose(jacobians, np.asarray(jacobians_from_vertices(solver, jnp.asarray(vertices, jnp.float32))),
                               atol=1e-5)
    perturbed = jacobians + 0.05 * np.random.default_rng(1).normal(size=jacobians.shape).astype(np.float32)
    reference = HostLUPoisson(vertices, faces, torch.device("cpu"))
    np.testing.assert_allclose(reference(torch.tensor(perturbed)).numpy(),
                               np.asarray(solve(solver, jnp.asarray(perturbed))), atol=1e-5)
