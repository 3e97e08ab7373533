"""ngdjax: dynamic, textured 3D garments from monocular video (NGD) in pure-functional JAX.

Modules: mesh and operators (geometry, differential operators), poisson (Jacobians <-> vertices),
camera (the coordinate convention), render (rasterize/interpolate/antialias/texture backends and
shading passes), body (Anny, SMPL-format models, skinning), garment (templates), data (the
sequence format), io (files).
"""

__version__ = "0.1.0"
