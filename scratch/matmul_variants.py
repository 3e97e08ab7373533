import time, jax, jax.numpy as jnp, numpy as np
from benchmarks.timing import time_ms
for V in (8170, 15262):
    a = jax.random.normal(jax.random.PRNGKey(0), (V, V), jnp.float32); a = (a + a.T) / 2
    b = jax.random.normal(jax.random.PRNGKey(1), (V, 3), jnp.float32)
    variants = {
      "matmul_highest": lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST),
      "matmul_default": lambda a, b: a @ b,
      "bT_a": lambda a, b: jnp.matmul(b.T, a, precision=jax.lax.Precision.HIGHEST).T,
      "reduce": lambda a, b: jnp.stack([jnp.sum(a * b[:, i][None, :], axis=1) for i in range(3)], 1),
      "reduce_T": lambda a, b: jnp.stack([jnp.sum(a * b[:, i][:, None], axis=0) for i in range(3)], 1),
      "einsum3": lambda a, b: jnp.einsum("ij,jk->ik", a, b, precision=jax.lax.Precision.HIGHEST),
    }
    ref = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    for name, f in variants.items():
        g = jax.jit(f)
        out = np.asarray(g(a, b)); err = np.abs(out - ref).max() / np.abs(ref).max()
        ms, reps = time_ms(lambda: g(a, b))
        print(f"V={V} {name:16s} {ms:.4f} ms  GB/s={4*V*V/ms/1e6:.0f} relerr={err:.1e}", flush=True)
