"""SMPL-family body models from user-supplied files, in pure JAX (docs/method.md section 3.2).

The files are loaded through ``smplx`` (chumpy-free SMPL ``.pkl`` v1.1.0, or ``.npz`` with the
same keys); the model's arrays are then used by pure-JAX functions (jittable, differentiable):
:func:`bone_transforms` (the per-bone rest-to-posed transforms that garment skinning needs) and
:func:`body_vertices` (the posed body with shape and pose blend shapes, for rendering the body).
SMPL data may never be committed or shipped: its licence forbids redistribution.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ngdjax.body.rotations import rotation_matrices
from ngdjax.body.skinning import linear_blend_skinning
from ngdjax.errors import InputError

SMPL_HELP = ("SMPL's licence forbids redistribution, so ngdjax cannot ship it: register at "
             "https://smpl.is.tue.mpg.de, download 'SMPL for Python' v1.1.0 (chumpy-free .pkl; the v1.0.0 "
             "files need chumpy, which does not run on Python 3.11), and give its path as body_model_path")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["v_template", "shapedirs", "posedirs", "J_regressor", "weights", "faces"],
    meta_fields=["parents"],
)
@dataclasses.dataclass(frozen=True)
class SMPLModel:
    """An SMPL-format model (a pytree; pass it into jitted functions).

    Attributes:
        v_template: (N, 3) rest vertices. shapedirs: (N, 3, S). posedirs: (9 (K - 1), 3 N).
        J_regressor: (K, N). weights: (N, K) skinning weights.
        faces: (F, 3) int32. parents: tuple of K parent indices (-1 for the root), static.
    """

    v_template: Float[Array, "N 3"]
    shapedirs: Float[Array, "N 3 S"]
    posedirs: Float[Array, "P M"]
    J_regressor: Float[Array, "K N"]
    weights: Float[Array, "N K"]
    faces: Int[Array, "F 3"]
    parents: tuple


def load_smpl(path: str) -> SMPLModel:
    """Load an SMPL-format model file (.pkl or .npz) through smplx.

    Raises:
        InputError: the file is missing (with where to obtain it) or unreadable.
    """
    import smplx

    if not os.path.isfile(path):
        raise InputError(f"{path}: SMPL model file not found. {SMPL_HELP}")
    try:
        if path.endswith(".npz"):
            data = smplx.utils.Struct(**dict(np.load(path, allow_pickle=True)))
            model = smplx.SMPL(model_path=path, data_struct=data)
        else:
            model = smplx.SMPL(model_path=path)
    except Exception as error:  # noqa: BLE001 - any failure here is a bad file for the user
        raise InputError(f"{path}: could not be loaded as an SMPL model ({error}). {SMPL_HELP}") from error
    as_array = lambda t: jnp.asarray(t.detach().cpu().numpy(), jnp.float32)  # noqa: E731
    return SMPLModel(
        v_template=as_array(model.v_template), shapedirs=as_array(model.shapedirs),
        posedirs=as_array(model.posedirs), J_regressor=as_array(model.J_regressor),
        weights=as_array(model.lbs_weights), faces=jnp.asarray(np.asarray(model.faces), jnp.int32),
        parents=tuple(int(p) for p in model.parents.numpy()),
    )


def shaped_vertices(model: SMPLModel, betas: Float[Array, " S"]) -> Float[Array, "N 3"]:
    """Rest vertices (N, 3) with the shape blend shapes of ``betas`` (S,) applied."""
    return model.v_template + jnp.einsum("nds,s->nd", model.shapedirs[..., : betas.shape[0]], betas)


def bone_transforms(
    model: SMPLModel, betas: Float[Array, " S"], pose: Float[Array, " P"], translation: Float[Array, " 3"]
) -> Float[Array, "K 4 4"]:
    """Per-bone rest-to-posed transforms ``A_k`` (K, 4, 4): the kinematic chain's global
    transforms with the rest-pose joint removed, plus the global ``translation``.

    Args:
        betas: (S,) shape. pose: (3 K,) axis-angle per joint, root first. translation: (3,).
    """
    joints = model.J_regressor @ shaped_vertices(model, betas)  # (K, 3)
    rotations = rotation_matrices(pose.reshape(-1, 3))
    local_offsets = joints - jnp.stack([joints[p] if p >= 0 else jnp.zeros(3, joints.dtype) for p in model.parents])
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], joints.dtype), (len(model.parents), 1, 4))
    local = jnp.concatenate([jnp.concatenate([rotations, local_offsets[:, :, None]], axis=2), bottom], axis=1)
    chain = []
    for k, parent in enumerate(model.parents):
        chain.append(local[k] if parent < 0 else chain[parent] @ local[k])
    world = jnp.stack(chain)  # (K, 4, 4)
    rest_joint = jnp.einsum("kij,kj->ki", world[:, :3, :3], joints)
    shift = jnp.concatenate([(translation[None, :] - rest_joint)[:, :, None], jnp.zeros((len(chain), 1, 1), joints.dtype)], axis=1)
    return world + jnp.concatenate([jnp.zeros((len(chain), 4, 3), joints.dtype), shift], axis=2)


def body_vertices(
    model: SMPLModel, betas: Float[Array, " S"], pose: Float[Array, " P"], translation: Float[Array, " 3"]
) -> Float[Array, "N 3"]:
    """The posed body (N, 3): shape and pose blend shapes, then linear blend skinning."""
    rotations = rotation_matrices(pose.reshape(-1, 3))
    pose_feature = (rotations[1:] - jnp.eye(3, dtype=rotations.dtype)[None]).reshape(-1)
    rest = shaped_vertices(model, betas) + (pose_feature @ model.posedirs).reshape(-1, 3)
    return linear_blend_skinning(rest, model.weights, bone_transforms(model, betas, pose, translation))
