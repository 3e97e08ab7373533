"""Our pure-JAX SMPL against smplx's torch implementation, on a synthetic SMPL-format model
(random arrays with SMPL's keys and layout: no licensed data is needed or shipped)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues, lbs

from ngdjax.body.skinning import linear_blend_skinning
from ngdjax.body.smpl import bone_transforms, body_vertices, load_smpl
from ngdjax.errors import InputError

PARENTS = [-1, 0, 1, 1, 3, 0]


@pytest.fixture(scope="module")
def synthetic_model_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, k, s = 60, len(PARENTS), 10
    regressor = rng.uniform(size=(k, n))
    data = dict(
        v_template=rng.normal(size=(n, 3)), shapedirs=0.05 * rng.normal(size=(n, 3, s)),
        posedirs=0.01 * rng.normal(size=(n, 3, 9 * (k - 1))), J_regressor=regressor / regressor.sum(1, keepdims=True),
        kintree_table=np.stack([np.array(PARENTS) % 2**32, np.arange(k)]).astype(np.int64),
        weights=rng.dirichlet(np.ones(k), size=n), f=rng.integers(0, n, size=(40, 3)),
    )
    path = tmp_path_factory.mktemp("smpl") / "SMPL_SYNTHETIC.npz"
    np.savez(path, **data)
    return str(path)


def _reference(path, betas, pose):
    """smplx's lbs and rigid transforms on the same file."""
    import smplx

    model = smplx.SMPL(model_path=path, data_struct=smplx.utils.Struct(**dict(np.load(path))))
    b, p = torch.tensor(betas[None], dtype=torch.float32), torch.tensor(pose[None], dtype=torch.float32)
    vertices, _ = lbs(b, p, model.v_template, model.shapedirs, model.posedirs, model.J_regressor, model.parents,
                      model.lbs_weights)
    joints = torch.einsum("kn,bnd->bkd", model.J_regressor, model.v_template + torch.einsum("nds,bs->bnd", model.shapedirs, b))
    _, transforms = batch_rigid_transform(batch_rodrigues(p.view(-1, 3)).view(1, -1, 3, 3), joints, model.parents)
    return vertices[0].numpy(), transforms[0].numpy()


def test_body_and_bone_transforms_match_smplx(synthetic_model_file):
    model = load_smpl(synthetic_model_file)
    rng = np.random.default_rng(1)
    betas, pose = rng.normal(size=10), 0.4 * rng.normal(size=3 * len(PARENTS))
    want_vertices, want_transforms = _reference(synthetic_model_file, betas, pose)
    zero = jnp.zeros(3, jnp.float32)
    args = (jnp.asarray(betas, jnp.float32), jnp.asarray(pose, jnp.float32))
    np.testing.assert_allclose(jax.jit(bone_transforms)(model, *args, zero), want_transforms, atol=1e-5)
    np.testing.assert_allclose(jax.jit(body_vertices)(model, *args, zero), want_vertices, atol=1e-5)
    # A translation moves everything rigidly; garment LBS with the body's own weights and no
    # blend shapes equals the body skinning of the shaped rest vertices.
    shift = jnp.array([0.1, -0.3, 2.0], jnp.float32)
    np.testing.assert_allclose(body_vertices(model, *args, shift), want_vertices + np.asarray(shift), atol=1e-5)
    transforms = bone_transforms(model, *args, shift)
    rest = model.v_template + jnp.einsum("nds,s->nd", model.shapedirs, args[0])
    skinned = linear_blend_skinning(rest, model.weights, transforms)
    without_pose_blend = body_vertices(dataclasses.replace(model, posedirs=model.posedirs * 0.0), *args, shift)
    np.testing.assert_allclose(skinned, without_pose_blend, atol=1e-5)


def test_pose_gradients_are_finite(synthetic_model_file):
    model = load_smpl(synthetic_model_file)
    grad = jax.grad(lambda p: jnp.sum(body_vertices(model, jnp.zeros(10, jnp.float32), p, jnp.zeros(3, jnp.float32)) ** 2))
    assert bool(jnp.all(jnp.isfinite(grad(jnp.zeros(3 * len(PARENTS), jnp.float32)))))


def test_missing_smpl_file_says_where_to_get_it(tmp_path):
    with pytest.raises(InputError, match=r"SMPL_NEUTRAL.pkl: SMPL model file not found.*licence forbids redistribution.*smpl.is.tue.mpg.de"):
        load_smpl(str(tmp_path / "SMPL_NEUTRAL.pkl"))
