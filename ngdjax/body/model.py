"""One interface over every body model: flat per-frame pose, global rotation, translation.

A :class:`Body` (a pytree) wraps a model's arrays; the functions below dispatch on its ``kind``:

- ``anny`` (built in, licence-free): ``shape`` must be empty (one fixed phenotype); ``pose`` is the
  64 body bones' axis-angles flattened to (192,).
- ``smpl`` (a file the user brings): ``shape`` = betas (S,), ``pose`` = the 23 non-root joints'
  axis-angles (69,); the global rotation is the root joint's.

Everything is pure JAX (jittable, differentiable) except :func:`rest_vertices_host` and
:func:`skinning_weights_host`, which serve the host-side template and weight-transfer code.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ngdjax.body import anny, smpl
from ngdjax.errors import InputError

POSE_SIZES = {"anny": 3 * anny.N_BODY_BONES, "smpl": 69}


@functools.partial(jax.tree_util.register_dataclass, data_fields=["model"], meta_fields=["kind"])
@dataclasses.dataclass(frozen=True)
class Body:
    """A body model behind the common interface. ``model``: :class:`~ngdjax.body.anny.AnnyModel`
    or :class:`~ngdjax.body.smpl.SMPLModel`; ``kind``: "anny" or "smpl" (static)."""

    model: anny.AnnyModel | smpl.SMPLModel
    kind: str

    @property
    def pose_size(self) -> int:
        """Length P of the flat per-frame pose vector (root excluded)."""
        return POSE_SIZES[self.kind]

    @property
    def n_bones(self) -> int:
        return len(self.model.parents)

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3) body triangles (host int array)."""
        return np.asarray(self.model.triangles if self.kind == "anny" else self.model.faces)


def load_body(kind: str, path: str | None = None) -> Body:
    """The body model named in a sequence: ``anny`` (built in) or ``smpl``/``smplx`` (from ``path``).

    Raises:
        InputError: unknown kind, or a missing/unreadable SMPL file (with where to obtain it).
    """
    if kind == "anny":
        return Body(anny.load_anny(), "anny")
    if kind in ("smpl", "smplx"):
        if not path:
            raise InputError(f"body_model_path: required for body model '{kind}'. {smpl.SMPL_HELP}")
        return Body(smpl.load_smpl(path), "smpl")
    raise InputError(f"body_model: unknown body model '{kind}' (expected anny, smpl or smplx)")


def check_parameters(body: Body, shape: np.ndarray, pose: np.ndarray, source: str) -> list[str]:
    """Problems with per-frame parameters for this body, each naming ``source`` and the field."""
    problems = []
    if pose.ndim != 2 or pose.shape[1] != body.pose_size:
        problems.append(f"{source}: pose has shape {pose.shape}, expected (T, {body.pose_size}) for body model "
                        f"'{body.kind}'")
    if body.kind == "anny" and shape.size != 0:
        problems.append(f"{source}: shape must be empty for the built-in Anny body (one fixed phenotype), "
                        f"got shape {shape.shape}")
    if body.kind == "smpl" and shape.shape[-1] > body.model.shapedirs.shape[-1]:
        problems.append(f"{source}: shape has {shape.shape[-1]} betas, the model has {body.model.shapedirs.shape[-1]}")
    return problems


def bone_transforms(
    body: Body, shape: Float[Array, " S"], pose: Float[Array, " P"], global_rotation: Float[Array, " 3"],
    translation: Float[Array, " 3"],
) -> Float[Array, "K 4 4"]:
    """Per-bone rest-to-posed transforms (K, 4, 4) in world space, for
    :func:`ngdjax.body.skinning.linear_blend_skinning`."""
    if body.kind == "anny":
        return anny.bone_transforms(body.model, pose.reshape(-1, 3), global_rotation, translation)
    return smpl.bone_transforms(body.model, shape, jnp.concatenate([global_rotation, pose]), translation)


def body_vertices(
    body: Body, shape: Float[Array, " S"], pose: Float[Array, " P"], global_rotation: Float[Array, " 3"],
    translation: Float[Array, " 3"],
) -> Float[Array, "N 3"]:
    """The posed body surface (N, 3) in world space."""
    if body.kind == "anny":
        return anny.body_vertices(body.model, pose.reshape(-1, 3), global_rotation, translation)
    return smpl.body_vertices(body.model, shape, jnp.concatenate([global_rotation, pose]), translation)


def rest_vertices_host(body: Body, shape: np.ndarray) -> np.ndarray:
    """Rest-pose body vertices (N, 3) float64 for ``shape`` (the space garment templates live in)."""
    if body.kind == "anny":
        return np.asarray(body.model.rest_vertices, np.float64)
    shaped = smpl.shaped_vertices(body.model, jnp.asarray(shape, jnp.float32))
    return np.asarray(shaped, np.float64)


def skinning_weights_host(body: Body) -> np.ndarray:
    """The body's own skinning weights as a dense (N, K) float64 host array."""
    if body.kind == "anny":
        return body.model.dense_weights()
    return np.asarray(body.model.weights, np.float64)
