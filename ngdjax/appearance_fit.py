"""The appearance loop (docs/method.md 8, 9): epochs of shuffled frames over the frozen garment, one
jitted step of :mod:`ngdjax.appearance` per frame, ``T^D`` off for the warm-up epochs, the log
lines of the stage, and the non-finite check (:mod:`ngdjax.loop`). The stage has no checkpoint of
its own: a resumed run restarts it from its beginning, which reproduces it exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np
from tqdm import tqdm

from ngdjax import outputs
from ngdjax.appearance import (
    TextureResult,
    init_texture_params,
    make_texture_optimizer,
    make_texture_step,
    prepare_texture_frames,
    rasterize_frames,
    uv_atlas,
)
from ngdjax.data.loader import Sequence
from ngdjax.fit_config import FitConfig
from ngdjax.loop import OnStep, StepEvent, close_epoch, epoch_order, keep_log_lines, step_keys
from ngdjax.render.backend import Renderer

STAGE = "texture"  # the "stage" of the appearance stage's log lines


def fit_texture(config: FitConfig, sequence: Sequence, posed: np.ndarray, canonical: np.ndarray,
                faces: np.ndarray, renderer: Renderer, run_dir: str, progress: bool = True,
                on_step: OnStep | None = None,
                on_epoch: Callable[[int, TextureResult], None] | None = None) -> TextureResult:
    """Fit ``T^S`` and ``T^D`` to the sequence with the garment frozen: ``posed`` (T, V, 3) world
    vertices of every frame, ``canonical`` (V, 3) the static canonical mesh (for the atlas),
    ``faces`` (F, 3). Epochs of shuffled frames (the geometry's orders for ``optim.seed``), one
    jitted step per frame, ``T^D`` off for ``texture.warmup_epochs``; appends one line per step
    with ``"stage": "texture"`` to the run's log (earlier texture lines are dropped); ``on_step``
    is called after every step, ``on_epoch(epochs_done, state)`` after every epoch with the fit
    so far (``state.seconds``: wall time since the call began; its parameters are valid during the
    call only: the next step donates their buffers).

    Raises:
        NonFiniteError: the loss or a texture parameter went non-finite (checked once per epoch).
    """
    started = time.perf_counter()
    texture, n_frames = config.texture, sequence.n_frames
    atlas = uv_atlas(canonical, faces, texture.resolution)
    rasts = rasterize_frames(renderer, posed, faces, sequence.mv, sequence.proj, sequence.resolution)
    frames = prepare_texture_frames(sequence, rasts, atlas, renderer, texture)
    params = init_texture_params(jax.random.PRNGKey(config.optim.seed + 2), texture)
    opt_state = make_texture_optimizer(texture, n_frames).init(params)
    step = make_texture_step(renderer, texture, n_frames, tuple(sequence.resolution))
    base_key = jax.random.PRNGKey(config.optim.seed + 3)
    log_path = outputs.log_path(run_dir)
    keep_log_lines(log_path, lambda line: line.get("stage") != STAGE)
    bar = tqdm(total=texture.epochs * n_frames, desc="texture", unit="step", disable=not progress, dynamic_ncols=True)
    step_count, dynamic = 0, False
    for epoch in range(texture.epochs):
        dynamic = epoch >= texture.warmup_epochs
        steps, frame_ids, losses, finite = [], [], [], []
        order = epoch_order(config.optim.seed, epoch, n_frames)
        for index, key in zip(order, step_keys(base_key, step_count, n_frames)):
            params, opt_state, loss, flags = step(params, opt_state, frames, np.int32(index), key,
                                                  np.int32(step_count), dynamic=dynamic)
            steps.append(step_count)
            frame_ids.append(sequence.frames[index])
            losses.append({"relative_l2": loss})
            finite.append(flags)
            if on_step is not None:
                on_step(StepEvent("appearance", epoch, step_count, sequence.frames[index], dynamic))
            step_count += 1
            bar.update(1)
        values = close_epoch("appearance", epoch, steps, frame_ids, losses, finite, log_path, STAGE)["relative_l2"]
        bar.set_postfix(relative_l2=f"{float(values[-1]):.4g}")
        if on_epoch is not None:
            on_epoch(epoch + 1, TextureResult(params, atlas, rasts, dynamic, time.perf_counter() - started))
    bar.close()
    return TextureResult(params, atlas, rasts, dynamic, time.perf_counter() - started)
