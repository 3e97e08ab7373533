"""Our pure-JAX SMPL against smplx's torch implementation, on a synthetic SMPL-format model
(random arrays with SMPL's keys and layout: no licensed data is needed or shipped)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues, lbs

from ngdjax.body.model import Body
from ngdjax.body.model import body_vertices as model_body_vertices
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


# Gradients against central finite differences, in float64. f is a fixed random projection of
# the posed vertices; each input gets 3 random unit directions v and we compare grad(f) . v with
# (f(x + h v) - f(x - h v)) / 2h at h = 1e-4. Central differences err by O(h^2 f''') and
# rounding by eps |f| / h; measured |error| / |grad| is at most about 2e-9 (global rotation;
# pose 5e-10, shape and translation 1e-11; rest and posed). The tolerance, 1e-6 of the
# gradient's norm, leaves a 500x margin above that, while a wrong or missing gradient term is
# an O(1) relative error (it fails at once).
FD_STEP, FD_RTOL, FD_DIRECTIONS = 1e-4, 1e-6, 3


def test_gradients_match_finite_differences_at_rest_and_posed(synthetic_model_file, as_float64, fd_errors):
    """d/d(shape, pose, global rotation, translation) of the posed body through the common
    :class:`~ngdjax.body.model.Body` interface. The rest point runs Rodrigues' small-angle branch
    for every joint, and the pose blend shapes' derivative there."""
    with jax.enable_x64(True):
        body = Body(as_float64(load_smpl(synthetic_model_file)), "smpl")
        rng = np.random.default_rng(2)
        projection = jnp.asarray(rng.normal(size=body.model.v_template.shape))

        def objective(shape, pose, rotation, translation):
            return jnp.sum(projection * model_body_vertices(body, shape, pose, rotation, translation))

        argnums, names = (0, 1, 2, 3), ("shape", "pose", "global_rotation", "translation")
        value_and_grad = jax.jit(jax.value_and_grad(objective, argnums=argnums))
        n_pose = 3 * (len(PARENTS) - 1)
        for label, scale in (("rest", 0.0), ("posed", 0.4)):
            args = (jnp.asarray(rng.normal(size=10)), jnp.asarray(scale * rng.normal(size=n_pose)),
                    jnp.asarray(scale * rng.normal(size=3)), jnp.asarray(rng.normal(size=3)))
            errors = {names[i]: e for i, e in fd_errors(value_and_grad, args, argnums, rng, FD_STEP, FD_DIRECTIONS).items()}
            print(label, errors)
            assert max(errors.values()) < FD_RTOL, (label, errors)


def test_missing_smpl_file_says_where_to_get_it(tmp_path):
    with pytest.raises(InputError, match=r"SMPL_NEUTRAL.pkl: SMPL model file not found.*licence forbids redistribution.*smpl.is.tue.mpg.de"):
        load_smpl(str(tmp_path / "SMPL_NEUTRAL.pkl"))
