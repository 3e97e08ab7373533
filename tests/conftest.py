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
