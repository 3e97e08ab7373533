"""Input checks shared by every render backend, run before any kernel (the one place for them:
:func:`ngdjax.render.backend.get_renderer` puts them in front of every backend's ops).

Shapes, dtypes and the resolution are checked always (also on jit tracers); values (NaN/inf
positions, triangle indices out of range) whenever the arrays are concrete, i.e. outside
``jax.jit`` or for arrays closed over by it. Every problem raises :class:`ngdjax.errors.InputError`
naming the argument.
"""

from __future__ import annotations

import jax
import numpy as np

from ngdjax.errors import InputError


def _concrete(array) -> np.ndarray | None:
    """The array's values if they are known now, else None (a tracer inside jit)."""
    if isinstance(array, jax.core.Tracer):
        return None
    return np.asarray(array)


def check_rasterize_inputs(clip_pos, tris, resolution) -> None:
    """Check ``rasterize``'s arguments: clip_pos (V, 4) or (B, V, 4) float, tris (F, 3) integer
    indexing existing vertices, resolution two positive ints, positions finite."""
    problems = []
    if clip_pos.ndim not in (2, 3) or clip_pos.shape[-1] != 4:
        problems.append(f"rasterize: clip_pos must have shape (V, 4) or (B, V, 4), got {tuple(clip_pos.shape)}")
    elif not np.issubdtype(clip_pos.dtype, np.floating):
        problems.append(f"rasterize: clip_pos must be float32, got {clip_pos.dtype}")
    if tris.ndim != 2 or tris.shape[1] != 3:
        problems.append(f"rasterize: tris must have shape (F, 3), got {tuple(tris.shape)}")
    elif not np.issubdtype(tris.dtype, np.integer):
        problems.append(f"rasterize: tris must be int32, got {tris.dtype}")
    if (not isinstance(resolution, (tuple, list)) or len(resolution) != 2
            or not all(isinstance(n, (int, np.integer)) and n > 0 for n in resolution)):
        problems.append(f"rasterize: resolution must be two positive ints (H, W), got {resolution!r}")
    if problems:
        raise InputError(*problems)
    positions, indices = _concrete(clip_pos), _concrete(tris)
    if positions is not None:
        bad = np.flatnonzero(~np.isfinite(positions.reshape(-1, 4)).all(axis=1))
        if len(bad):
            problems.append(f"rasterize: {len(bad)} clip positions are NaN/inf, e.g. rows {bad[:5].tolist()}")
    if indices is not None:
        n_vertices = clip_pos.shape[-2]
        bad = np.flatnonzero(((indices < 0) | (indices >= n_vertices)).any(axis=1))
        if len(bad):
            problems.append(f"rasterize: {len(bad)} triangles index vertices outside 0..{n_vertices - 1}, "
                            f"e.g. triangles {bad[:5].tolist()}")
    if problems:
        raise InputError(*problems)


def check_image_inputs(op: str, image, rast) -> None:
    """Check an (B, H, W, C) image against ``rast`` (B, H, W, 4) for interpolate/antialias/texture."""
    if rast.ndim != 4 or rast.shape[-1] != 4:
        raise InputError(f"{op}: rast must have shape (B, H, W, 4), got {tuple(rast.shape)}")
    if image is not None and (image.ndim != 4 or tuple(image.shape[:3]) != tuple(rast.shape[:3])):
        raise InputError(f"{op}: image must have shape {tuple(rast.shape[:3])} + (C,), got {tuple(image.shape)}")


def _shape_problems(
    op: str, name: str, array, ndims: tuple[int, ...], expected: str, last: int | None = None
) -> list[str]:
    """One problem line when ``array`` has none of ``ndims`` axes (or a last axis other than
    ``last``), else none; ``expected`` spells the allowed shapes."""
    if array.ndim in ndims and (last is None or array.shape[-1] == last):
        return []
    return [f"{op}: {name} must have shape {expected}, got {tuple(array.shape)}"]


def _raise(problems: list[str]) -> None:
    if problems:
        raise InputError(*problems)


def check_interpolate_inputs(attr, rast, tris) -> None:
    """Check ``interpolate``'s arguments: attr (V, C) or (B, V, C), rast (B, H, W, 4), tris (F, 3)."""
    check_image_inputs("interpolate", None, rast)
    _raise(_shape_problems("interpolate", "attr", attr, (2, 3), "(V, C) or (B, V, C)")
           + _shape_problems("interpolate", "tris", tris, (2,), "(F, 3)", last=3))


def check_antialias_inputs(color, rast, clip_pos, tris) -> None:
    """Check ``antialias``'s arguments: color (B, H, W, C) against rast (B, H, W, 4), clip_pos
    (V, 4) or (B, V, 4), tris (F, 3)."""
    check_image_inputs("antialias", color, rast)
    _raise(_shape_problems("antialias", "clip_pos", clip_pos, (2, 3), "(V, 4) or (B, V, 4)", last=4)
           + _shape_problems("antialias", "tris", tris, (2,), "(F, 3)", last=3))


def check_texture_inputs(tex, uv) -> None:
    """Check ``texture``'s arguments: tex (h, w, C) or (B, h, w, C), uv (B, H, W, 2)."""
    _raise(_shape_problems("texture", "tex", tex, (3, 4), "(h, w, C) or (B, h, w, C)")
           + _shape_problems("texture", "uv", uv, (4,), "(B, H, W, 2)", last=2))
