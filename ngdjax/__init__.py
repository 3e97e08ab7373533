"""ngdjax: dynamic, textured 3D garments from monocular video (NGD) in pure-functional JAX.

The names a user needs are exported here (``import ngdjax``); the layers, bottom up:

- files and settings: ``io``, ``errors`` (:class:`InputError`), ``config`` and ``fit_config``
  (:func:`load_config`, :class:`FitConfig`);
- geometry and operators: ``mesh``, ``operators``, ``poisson`` (Jacobians <-> vertices),
  ``hashgrid`` and ``fields`` (the networks), ``camera``, ``render`` (backends and render passes:
  :mod:`ngdjax.render`), ``body`` (Anny and SMPL-format models, skinning), ``garment`` (templates),
  ``data`` (the sequence format, :func:`load_sequence`, the synthetic benchmark, converters);
- the fit: ``losses``, ``pose_code``, ``remesh``, ``loop`` (what both stages' loops share),
  ``geometry`` (the model and its step: deform -> render_views -> frame_losses -> update) with
  ``geometry_fit`` (its loop), ``appearance`` with ``appearance_fit``, ``nonfinite``;
- a run: ``checkpoint``, ``outputs`` (every file of a run directory), ``run_dir`` (its manifest),
  ``metrics`` and ``evaluation``, ``pipeline`` (:func:`run_fit`).
"""

from ngdjax.body.model import Body as Body
from ngdjax.body.model import load_body as load_body
from ngdjax.config import load_config as load_config
from ngdjax.data.loader import Sequence as Sequence
from ngdjax.data.loader import load_sequence as load_sequence
from ngdjax.errors import InputError as InputError
from ngdjax.fit_config import FitConfig as FitConfig
from ngdjax.geometry import FitProblem as FitProblem
from ngdjax.geometry import Frames as Frames
from ngdjax.geometry import build_problem as build_problem
from ngdjax.geometry import deform as deform
from ngdjax.geometry import frame_at as frame_at
from ngdjax.geometry import frame_losses as frame_losses
from ngdjax.geometry import init_params as init_params
from ngdjax.geometry import make_geometry_step as make_geometry_step
from ngdjax.geometry import make_optimizer as make_optimizer
from ngdjax.geometry import prepare_frames as prepare_frames
from ngdjax.geometry import render_views as render_views
from ngdjax.geometry import update as update
from ngdjax.geometry_fit import fit_geometry as fit_geometry
from ngdjax.appearance_fit import fit_texture as fit_texture
from ngdjax.loop import StepEvent as StepEvent
from ngdjax.nonfinite import NonFiniteError as NonFiniteError
from ngdjax.pipeline import RunResult as RunResult
from ngdjax.pipeline import run_fit as run_fit
from ngdjax.render import get_renderer as get_renderer

__version__ = "0.1.0"

__all__ = [
    "Body", "FitConfig", "FitProblem", "Frames", "InputError", "NonFiniteError", "RunResult", "Sequence", "StepEvent",
    "build_problem", "deform", "fit_geometry", "fit_texture", "frame_at", "frame_losses", "get_renderer", "init_params",
    "load_body", "load_config", "load_sequence", "make_geometry_step", "make_optimizer", "prepare_frames",
    "render_views", "run_fit", "update",
]
