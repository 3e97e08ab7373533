"""Test settings: loud failures on silent dtype promotion or broadcasting (the Equinox habit),
and GPU tests skipped cleanly where no GPU is present."""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_collection_modifyitems(config, items):
    if jax.default_backend() == "gpu":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def compiled_variants():
    """``compiled_variants(jitted)``: how many variants a ``jax.jit`` function has compiled so far
    (its cache size), so that a test sees a retrace as one more variant."""
    return lambda jitted: jitted._cache_size()


@pytest.fixture
def as_float64():
    """``as_float64(tree)``: every floating leaf of a pytree cast to float64 (inside ``jax.enable_x64``)."""
    import jax.numpy as jnp

    return lambda tree: jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


@pytest.fixture
def fd_errors():
    """``fd_errors(value_and_grad, args, argnums, rng, step, directions)``: {argument index: the
    worst |grad . v - central difference| / |grad|} over random unit directions v, for
    ``value_and_grad(*args) -> (f, grads)`` with one gradient per ``argnums`` (one compiled
    function serves the gradient and every finite difference)."""
    import jax.numpy as jnp
    import numpy as np

    def errors_of(value_and_grad, args, argnums, rng, step, directions):
        _, grads = value_and_grad(*args)
        errors = {}
        for i, grad in zip(argnums, grads):
            norm = float(jnp.linalg.norm(grad))
            assert norm > 0, f"argument {i}: zero gradient (the check would be vacuous)"
            worst = 0.0
            for _ in range(directions):
                v = rng.normal(size=args[i].shape)
                v /= np.linalg.norm(v)
                plus, minus = list(args), list(args)
                plus[i], minus[i] = args[i] + step * v, args[i] - step * v
                central = (float(value_and_grad(*plus)[0]) - float(value_and_grad(*minus)[0])) / (2 * step)
                worst = max(worst, abs(float(grad @ v) - central) / norm)
            errors[i] = worst
        return errors
    return errors_of
