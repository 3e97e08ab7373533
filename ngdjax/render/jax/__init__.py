"""The pure-JAX backend: the four ops in JAX, CPU or GPU, inside ``jax.jit``.

One op per module, each with the signature the renderer uses (docs/render.md sections 2-5):

- :mod:`ngdjax.render.jax.rasterize` ``rasterize(clip_pos, tris, resolution) -> rast``
- :mod:`ngdjax.render.jax.interpolate` ``interpolate(attr, rast, tris) -> image``
- :mod:`ngdjax.render.jax.antialias` ``antialias(color, rast, clip_pos, tris, topology) -> image``
  (``topology`` from :func:`ngdjax.render.topology.antialias_topology`)
- :mod:`ngdjax.render.jax.texture` ``texture(tex, uv) -> image``

The functions are not re-exported here, so that each module stays reachable under its own name;
:func:`ngdjax.render.get_renderer` ("jax") gives the four with the shared input checks.
"""
