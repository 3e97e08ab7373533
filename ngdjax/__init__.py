"""ngdjax: dynamic, textured 3D garments from monocular video (NGD) in pure-functional JAX.

Modules: mesh and operators (geometry, differential operators), poisson (Jacobians <-> vertices),
hashgrid and fields (the networks), camera (the coordinate convention), render
(rasterize/interpolate/antialias/texture backends and shading passes), body (one interface over
Anny and SMPL-format models, skinning), garment (load and generate templates), data (the sequence
format, loader, synthetic benchmark, dataset converters), fit, train, losses, pose_code (the
geometry stage), remesh (adaptive remeshing), texture (the appearance stage), metrics and
evaluation, gradcheck, config and fit_config, checkpoint, outputs, io (files).
"""

__version__ = "0.1.0"
