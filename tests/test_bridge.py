"""The torch <-> JAX bridges (ngdjax/render/torch_bridge.py) and the nvdiffrast backend
(ngdjax/render/nvdiffrast/: loading, kernels, ops).

CPU: the eager DLPack custom_vjp bridge is exercised with a torch stand-in for interpolate,
checked against a pure-JAX interpolate (outputs and gradients to 1e-6), and with a stand-in op
with an explicit backward and a residual (``TorchOp``); the warp-safe copy of nvdiffrast's sources
is made from a stand-in package tree. GPU (marked ``gpu``, skipped without
one): real nvdiffrast rasterize + interpolate + antialias + texture through both bridges, eager
vs in-jit vs plain nvdiffrast, each forward run once per step, antialias's work buffer reusable.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ngdjax.render import torch_bridge
from ngdjax.render.jax.interpolate import interpolate as project_interpolate
from ngdjax.render.nvdiffrast import kernels, loader
from ngdjax.render.nvdiffrast import ops as nv_ops

TOL = 1e-6


# ----------------------------------------------------------------------------------------------
# A torch stand-in op and its pure-JAX twin


def torch_interpolate(attr: torch.Tensor, rast: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """attr (V, C) f32, rast (B, H, W, 4) f32, tris (F, 3) i32 -> (B, H, W, C) f32 (docs/render.md 3)."""
    u, v = rast[..., 0:1], rast[..., 1:2]
    triangle = rast[..., 3].to(torch.int64) - 1  # (B, H, W), -1 at background
    corners = tris.to(torch.int64)[triangle.clamp(min=0)]  # (B, H, W, 3)
    a = attr[corners]  # (B, H, W, 3, C)
    out = u * a[..., 0, :] + v * a[..., 1, :] + (1 - u - v) * a[..., 2, :]
    return torch.where((triangle >= 0)[..., None], out, torch.zeros_like(out))


def jax_interpolate(attr: jax.Array, rast: jax.Array, tris: jax.Array) -> jax.Array:
    """The same formula in JAX."""
    u, v = rast[..., 0:1], rast[..., 1:2]
    triangle = rast[..., 3].astype(jnp.int32) - 1
    a = attr[tris[jnp.maximum(triangle, 0)]]  # (B, H, W, 3, C)
    out = u * a[..., 0, :] + v * a[..., 1, :] + (1.0 - u - v) * a[..., 2, :]
    return jnp.where((triangle >= 0)[..., None], out, jnp.zeros_like(out))


def random_scene(seed: int = 0, batch=2, height=5, width=6, n_vertices=10, n_faces=8, channels=3):
    """attr (V, C), rast (B, H, W, 4) with about 30% background (all-zero pixels), tris (F, 3)."""
    rng = np.random.default_rng(seed)
    attr = rng.normal(size=(n_vertices, channels)).astype(np.float32)
    tris = np.stack([rng.choice(n_vertices, 3, replace=False) for _ in range(n_faces)]).astype(np.int32)
    u = rng.uniform(0.0, 1.0, (batch, height, width))
    v = rng.uniform(0.0, 1.0, (batch, height, width)) * (1.0 - u)
    z = rng.uniform(-1.0, 1.0, (batch, height, width))
    ids = rng.integers(1, n_faces + 1, (batch, height, width))
    rast = np.stack([u, v, z, ids], axis=-1).astype(np.float32)
    rast[rng.uniform(size=(batch, height, width)) < 0.3] = 0.0
    weights = rng.normal(size=(batch, height, width, channels)).astype(np.float32)
    return jnp.asarray(attr), jnp.asarray(rast), jnp.asarray(tris), jnp.asarray(weights)


def interpolate_loss(interp, weights):
    return lambda attr, rast, tris: jnp.sum(interp(attr, rast, tris) * weights)


@jax.jit
def reference_interpolate_and_grads(attr, rast, tris, weights):
    """The pure-JAX output and its gradients to (attr, rast), jitted (eager JAX compiles op by op)."""
    grads = jax.grad(interpolate_loss(jax_interpolate, weights), argnums=(0, 1))(attr, rast, tris)
    return jax_interpolate(attr, rast, tris), grads


bridged_interpolate = torch_bridge.eager_bridge(torch_interpolate, (True, True, False), name="interpolate stand-in")


# ----------------------------------------------------------------------------------------------
# Eager bridge on CPU


def test_eager_bridge_matches_jax_outputs_and_gradients():
    attr, rast, tris, weights = random_scene()
    expected, expected_grads = reference_interpolate_and_grads(attr, rast, tris, weights)
    got = bridged_interpolate(attr, rast, tris)
    assert got.dtype == jnp.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)

    grads = jax.grad(interpolate_loss(bridged_interpolate, weights), argnums=(0, 1))(attr, rast, tris)
    for g, e in zip(grads, expected_grads):
        assert g.dtype == jnp.float32 and g.shape == e.shape
        np.testing.assert_allclose(g, e, atol=TOL, rtol=0)
    grad_rast = np.asarray(grads[1])
    assert np.abs(grad_rast[..., :2]).max() > 0  # u, v carry gradient ...
    assert np.all(grad_rast[..., 2:] == 0)  # ... z/w and the triangle id none
    assert np.all(grad_rast[np.asarray(rast)[..., 3] == 0] == 0)  # background none


def test_eager_bridge_matches_project_jax_interpolate():
    attr, rast, tris, weights = random_scene(seed=1)
    project = jax.jit(lambda attr, rast, tris: project_interpolate(attr, rast, tris))
    np.testing.assert_allclose(bridged_interpolate(attr, rast, tris), project(attr, rast, tris), atol=TOL, rtol=0)
    grads = jax.grad(interpolate_loss(bridged_interpolate, weights), argnums=(0, 1))(attr, rast, tris)
    expected = jax.jit(jax.grad(interpolate_loss(project_interpolate, weights), argnums=(0, 1)))(attr, rast, tris)
    np.testing.assert_allclose(grads[0], expected[0], atol=TOL, rtol=0)
    np.testing.assert_allclose(grads[1][..., :2], expected[1][..., :2], atol=TOL, rtol=0)  # u, v


def test_eager_bridge_value_and_grad_and_tuple_outputs():
    def torch_two_outputs(x, scale):
        return x * scale, (x * x).sum()

    two = torch_bridge.eager_bridge(torch_two_outputs, (True, True))
    x, scale = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), jnp.float32(3.0)
    doubled, sum_sq = two(x, scale)
    assert isinstance(two(x, scale), tuple)
    np.testing.assert_allclose(doubled, 3.0 * np.asarray(x), atol=TOL)
    np.testing.assert_allclose(sum_sq, 55.0, atol=1e-5)

    loss = lambda x, s: jnp.sum(two(x, s)[0]) + two(x, s)[1]  # noqa: E731
    value, (gx, gs) = jax.value_and_grad(loss, argnums=(0, 1))(x, scale)
    np.testing.assert_allclose(value, 3.0 * 15.0 + 55.0, atol=1e-4)
    np.testing.assert_allclose(gx, 3.0 + 2.0 * np.asarray(x), atol=TOL)
    np.testing.assert_allclose(gs, 15.0, atol=1e-5)


def test_unused_differentiable_input_gets_zero_gradient():
    first_only = torch_bridge.eager_bridge(lambda a, b: a * 2.0, (True, True))
    a, b = jnp.ones(3, dtype=jnp.float32), jnp.ones(4, dtype=jnp.float32)
    ga, gb = jax.grad(lambda a, b: jnp.sum(first_only(a, b)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, 2.0)
    assert gb.shape == (4,) and np.all(np.asarray(gb) == 0)


def test_eager_bridge_raises_a_clear_error_under_jit():
    attr, rast, tris, weights = random_scene()
    with pytest.raises(torch_bridge.BridgeTracingError, match="bridge='jit'"):
        jax.jit(bridged_interpolate)(attr, rast, tris)
    with pytest.raises(torch_bridge.BridgeTracingError, match="jax.jit"):
        jax.jit(jax.grad(interpolate_loss(bridged_interpolate, weights)))(attr, rast, tris)


def test_dlpack_exchange_is_zero_copy():
    x = jnp.arange(64, dtype=jnp.float32).reshape(8, 8) + 1.0
    tensor = torch_bridge.jax_to_torch(x)
    assert tensor.data_ptr() == x.unsafe_buffer_pointer()

    t = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    back = torch_bridge.torch_to_jax(t)
    assert back.unsafe_buffer_pointer() == t.data_ptr()
    np.testing.assert_array_equal(back, t.numpy())


def test_torch_to_jax_detaches_and_makes_strided_views_contiguous():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).requires_grad_(True)
    transposed = torch_bridge.torch_to_jax(t.T)
    assert transposed.shape == (4, 3)
    np.testing.assert_array_equal(transposed, t.detach().numpy().T)


def test_int32_passes_without_dtype_change():
    tris = jnp.arange(12, dtype=jnp.int32).reshape(4, 3)
    assert torch_bridge.jax_to_torch(tris).dtype == torch.int32
    assert torch_bridge.torch_to_jax(torch.zeros(3, dtype=torch.int32)).dtype == jnp.int32

    seen = {}

    def record(tris_t, x_t):
        seen["dtype"] = tris_t.dtype
        return tris_t + 1, x_t * 2.0

    through = torch_bridge.eager_bridge(record, (False, True))
    shifted, _ = through(tris, jnp.ones(2, dtype=jnp.float32))
    assert seen["dtype"] == torch.int32
    assert shifted.dtype == jnp.int32
    np.testing.assert_array_equal(shifted, np.asarray(tris) + 1)
    np.testing.assert_array_equal(tris, np.arange(12).reshape(4, 3))  # input untouched


# ----------------------------------------------------------------------------------------------
# Explicit-backward ops (TorchOp): a residual from the forward, no forward re-run


def normalized_gather_op(counts: dict) -> torch_bridge.TorchOp:
    """(x (N,) f32, perm (N,) i32) -> x[perm] / |x|, with |x| (1,) as a residual; counts calls."""

    def forward(x, perm):
        counts["forward"] = counts.get("forward", 0) + 1
        norm = torch.linalg.vector_norm(x).reshape(1)
        return x[perm.long()] / norm, (norm,)

    def backward(inputs, outputs, residuals, cotangents):
        counts["backward"] = counts.get("backward", 0) + 1
        (x, perm), (norm,), (dy,) = inputs, residuals, cotangents
        u = torch.zeros_like(dy).index_add_(0, perm.long(), dy)  # perm^T dy
        return (u / norm - x * (x * u).sum() / norm**3,)

    return torch_bridge.TorchOp(forward, backward, (True, False))


def normalized_gather_scene():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=8), jnp.float32)
    perm = jnp.asarray(rng.permutation(8), jnp.int32)
    weights = jnp.asarray(rng.normal(size=8), jnp.float32)
    loss = lambda op: lambda x: jnp.sum(op(x, perm) * weights)  # noqa: E731
    expected = jax.value_and_grad(loss(lambda x, perm: x[perm] / jnp.linalg.norm(x)))(x)
    return x, perm, loss, expected


def test_eager_op_bridge_uses_the_explicit_backward_and_its_residuals():
    counts = {}
    x, perm, loss, (expected_value, expected_grad) = normalized_gather_scene()
    value, grad = jax.value_and_grad(loss(torch_bridge.eager_op_bridge(normalized_gather_op(counts))))(x)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=TOL)
    assert counts == {"forward": 1, "backward": 1}  # the forward is not re-run by the backward


@pytest.mark.slow
def test_jit_op_bridge_passes_residuals_between_ffi_calls_on_cpu():
    """Runs where wrap_torch2jax is installed (first use compiles its extension, ~1-2 min)."""
    pytest.importorskip("wrap_torch2jax")
    counts = {}
    x, perm, loss, (expected_value, expected_grad) = normalized_gather_scene()
    output, residual = jax.ShapeDtypeStruct(x.shape, jnp.float32), jax.ShapeDtypeStruct((1,), jnp.float32)
    op = torch_bridge.jit_op_bridge(normalized_gather_op(counts), torch_bridge._avals((x, perm)), output, (residual,))
    value, grad = jax.jit(jax.value_and_grad(loss(op)))(x)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=TOL)
    assert counts == {"forward": 1, "backward": 1}
    np.testing.assert_allclose(jax.jit(loss(op))(x), expected_value, rtol=1e-5)  # primal only
    assert counts == {"forward": 2, "backward": 1}


@pytest.mark.slow
def test_jit_bridge_matches_eager_bridge_on_cpu():
    """Runs where wrap_torch2jax is installed (first use compiles its extension, ~1-2 min)."""
    pytest.importorskip("wrap_torch2jax")
    attr, rast, tris, weights = random_scene(seed=2)
    output = jax.ShapeDtypeStruct((*rast.shape[:3], attr.shape[1]), jnp.float32)
    avals = torch_bridge._avals((attr, rast, tris))
    in_jit = torch_bridge.jit_bridge(torch_interpolate, (True, True, False), avals, output)
    expected, expected_grads = reference_interpolate_and_grads(attr, rast, tris, weights)
    np.testing.assert_allclose(jax.jit(in_jit)(attr, rast, tris), expected, atol=TOL)
    grads = jax.jit(jax.grad(interpolate_loss(in_jit, weights), argnums=(0, 1)))(attr, rast, tris)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, atol=TOL, rtol=0)


# ----------------------------------------------------------------------------------------------
# nvdiffrast loading (CPU-safe parts)


def test_nvdiffrast_available_is_false_without_cuda_and_never_raises():
    available = loader.nvdiffrast_available()
    assert isinstance(available, bool)
    if not torch.cuda.is_available():
        assert available is False


def test_missing_nvdiffrast_names_the_pip_extra():
    if importlib.util.find_spec("nvdiffrast") is not None:
        pytest.skip("nvdiffrast is installed here")
    with pytest.raises(loader.NvdiffrastUnavailableError, match=r"ngdjax\[gpu\].*diffrp-nvdiffrast"):
        loader.load_nvdiffrast()
    with pytest.raises(loader.NvdiffrastUnavailableError, match=r"ngdjax\[gpu\]"):
        nv_ops.rasterize(jnp.zeros((3, 4), jnp.float32), jnp.zeros((1, 3), jnp.int32), (4, 4))


def test_loader_fix_registers_python_modules_once(monkeypatch):
    import torch.utils.cpp_extension as cpp_extension

    calls = []

    def fake_import(module_name, path, is_python_module):
        calls.append(module_name)
        return types.ModuleType(module_name) if is_python_module else f"{path}/{module_name}.so"

    monkeypatch.setattr(cpp_extension, "_import_module_from_library", fake_import)
    monkeypatch.delitem(sys.modules, "ngdjax_fake_plugin", raising=False)
    loader.apply_loader_fix()
    loader.apply_loader_fix()  # idempotent: wraps once
    wrapped = cpp_extension._import_module_from_library
    assert wrapped.__wrapped__ is fake_import

    module = wrapped("ngdjax_fake_plugin", "/nowhere", True)
    assert sys.modules["ngdjax_fake_plugin"] is module
    assert wrapped("ngdjax_fake_library", "/nowhere", False) == "/nowhere/ngdjax_fake_library.so"
    assert "ngdjax_fake_library" not in sys.modules
    assert calls == ["ngdjax_fake_plugin", "ngdjax_fake_library"]
    monkeypatch.delitem(sys.modules, "ngdjax_fake_plugin")


@pytest.fixture
def stand_in_nvdiffrast(tmp_path, monkeypatch):
    """``make(header_text)``: a directory tree shaped like the installed nvdiffrast package (its
    header and one source) that ``import nvdiffrast`` finds first, with the cache under tmp_path;
    the real module (if any) is back in ``sys.modules`` afterwards and the stand-in is gone."""
    saved = sys.modules.pop("nvdiffrast", None)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def make(header_text: str):
        package = tmp_path / "site" / "nvdiffrast"
        (package / "common").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "common" / "common.h").write_text(header_text)
        (package / "common" / "rasterize.cu").write_text("// kernel\n")
        return package

    yield make
    sys.modules.pop("nvdiffrast", None)
    if saved is not None:
        sys.modules["nvdiffrast"] = saved


def test_warp_safe_sources_patch_a_cached_copy_and_map_the_paths(tmp_path, stand_in_nvdiffrast):
    package = stand_in_nvdiffrast(f"a\n{loader._COALESCING_GUARD}\nb\n")
    [source] = loader.warp_safe_sources([str(package / "common" / "rasterize.cu")])
    assert source.startswith(str(tmp_path / "cache" / "ngdjax" / "nvdiffrast-warpsafe-"))
    assert open(source).read() == "// kernel\n"
    patched = open(os.path.join(os.path.dirname(source), "common.h")).read()
    assert loader._COALESCING_GUARD not in patched and "#if 0 // ngdjax" in patched
    assert (package / "common" / "common.h").read_text().count(loader._COALESCING_GUARD) == 1
    assert not [name for name in os.listdir(os.path.dirname(source)) if name.endswith(".tmp")]


def test_warp_safe_sources_refuse_an_unknown_nvdiffrast(stand_in_nvdiffrast):
    package = stand_in_nvdiffrast("no such block\n")
    with pytest.raises(RuntimeError, match="not supported"):
        loader.warp_safe_sources([str(package / "common" / "rasterize.cu")])


def test_unknown_bridge_is_rejected():
    with pytest.raises(ValueError, match="'eager' or 'jit'"):
        nv_ops.ops_for("torch")


# ----------------------------------------------------------------------------------------------
# GPU: real nvdiffrast through both bridges


def gpu_scene(batch: int = 2, grid: int = 6, resolution: int = 48):
    """A welded, slightly bent grid (2 * (grid-1)^2 triangles) inside the view, w in [1.8, 2.2].

    Returns clip_pos (B, V, 4), tris (F, 3) int32, colours (V, 3), texture (1, 16, 16, 3),
    per-vertex uv (V, 2) and the image weights (B, H, W, 3).
    """
    rng = np.random.default_rng(0)
    s = np.linspace(-0.7, 0.7, grid)
    x, y = np.meshgrid(s, s, indexing="xy")
    z = 0.2 * np.sin(3.0 * x) * np.cos(2.0 * y)
    w = 2.0 + 0.4 * x * y
    base = np.stack([x.ravel() * w.ravel(), y.ravel() * w.ravel(), z.ravel(), w.ravel()], axis=-1)
    shifts = np.array([[0.0, 0.0, 0.0, 0.0], [0.13, -0.07, 0.05, 0.0]])[:batch]
    clip_pos = base[None] + shifts[:, None, :] * base[None, :, 3:4]
    index = np.arange(grid * grid).reshape(grid, grid)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    tris = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    colours = rng.uniform(size=(grid * grid, 3))
    tex = rng.uniform(size=(1, 16, 16, 3))
    uv = np.stack([x.ravel(), y.ravel()], -1) * 0.6 + 0.5
    weights = rng.normal(size=(batch, resolution, resolution, 3))
    f32 = lambda arr: jnp.asarray(arr, dtype=jnp.float32)  # noqa: E731
    return f32(clip_pos), jnp.asarray(tris, jnp.int32), f32(colours), f32(tex), f32(uv), f32(weights)


def render(ops, clip_pos, colours, tex, uv_attr, tris, resolution, antialias_moves_vertices):
    """rast, antialiased colours and a textured image; the antialias position gradient optional."""
    rast = ops.rasterize(clip_pos, tris, resolution)
    aa_pos = clip_pos if antialias_moves_vertices else jax.lax.stop_gradient(clip_pos)
    shaded = ops.antialias(ops.interpolate(colours, rast, tris), rast, aa_pos, tris)
    textured = ops.texture(tex, ops.interpolate(uv_attr, rast, tris))
    return rast, shaded, textured


def render_loss(ops, tris, weights, resolution, antialias_moves_vertices=False):
    def loss(clip_pos, colours, tex, uv_attr):
        images = render(ops, clip_pos, colours, tex, uv_attr, tris, resolution, antialias_moves_vertices)
        return jnp.sum(images[1] * weights) + jnp.sum(images[2] * weights), images

    return loss


def torch_render_and_grads(clip_pos, colours, tex, uv_attr, tris, weights, antialias_moves_vertices=False):
    """The same render in plain nvdiffrast + torch autograd: images and grads, as numpy."""
    dr = loader.require_nvdiffrast()
    leaf = lambda a: torch.from_dlpack(a).clone().requires_grad_(True)  # noqa: E731
    pos, col, tx, uva = leaf(clip_pos), leaf(colours), leaf(tex), leaf(uv_attr)
    tri, w = torch.from_dlpack(tris).clone(), torch.from_dlpack(weights).clone()
    rast, _ = dr.rasterize(kernels.cuda_context(), pos, tri, tuple(weights.shape[1:3]), grad_db=False)
    aa_pos = pos if antialias_moves_vertices else pos.detach()
    shaded = dr.antialias(dr.interpolate(col, rast, tri)[0], rast, aa_pos, tri)
    textured = dr.texture(tx, dr.interpolate(uva, rast, tri)[0], filter_mode="linear", boundary_mode="wrap")
    ((shaded * w).sum() + (textured * w).sum()).backward()
    numpy = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return [numpy(t) for t in (rast, shaded, textured)], [numpy(t.grad) for t in (pos, col, tx, uva)]


def assert_gradients_close(got, want, name):
    scale = float(np.abs(np.asarray(want)).max())
    assert scale > 0, f"no gradient reached {name}"
    assert np.all(np.isfinite(np.asarray(got))), name
    np.testing.assert_allclose(got, want, atol=1e-5 * scale, rtol=1e-4, err_msg=name)


GRAD_NAMES = ("clip_pos", "colours", "tex", "uv")


@pytest.mark.gpu
def test_gpu_eager_in_jit_and_plain_nvdiffrast_agree():
    """rasterize + interpolate + antialias + texture: outputs and gradients, eager vs in-jit vs
    plain nvdiffrast. clip_pos gets its gradient through rasterize's u, v here (antialias's
    position gradient is the next test's)."""
    assert loader.nvdiffrast_available(), "nvdiffrast or CUDA missing on this GPU machine"
    clip_pos, tris, colours, tex, uv_attr, weights = gpu_scene()
    resolution = (weights.shape[1], weights.shape[2])
    args, argnums = (clip_pos, colours, tex, uv_attr), (0, 1, 2, 3)
    eager = jax.value_and_grad(render_loss(nv_ops.ops_for("eager"), tris, weights, resolution), argnums, has_aux=True)
    in_jit = jax.jit(
        jax.value_and_grad(render_loss(nv_ops.ops_for("jit"), tris, weights, resolution), argnums, has_aux=True)
    )
    (value_e, images_e), grads_e = eager(*args)
    (value_j, images_j), grads_j = in_jit(*args)
    images_t, grads_t = torch_render_and_grads(*args, tris, weights)

    rast = np.asarray(images_e[0])
    assert 0.2 < (rast[..., 3] > 0).mean() < 0.95, "the scene should cover part of the image"
    np.testing.assert_array_equal(images_j[0], rast)
    np.testing.assert_array_equal(images_t[0], rast)
    for got_j, got_e, want in zip(images_j[1:], images_e[1:], images_t[1:]):
        np.testing.assert_allclose(got_e, want, atol=1e-6, rtol=0)
        np.testing.assert_allclose(got_j, want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(value_j, value_e, rtol=1e-5)
    for name, got_e, got_j, want in zip(GRAD_NAMES, grads_e, grads_j, grads_t):
        assert_gradients_close(got_e, want, f"eager {name}")
        assert_gradients_close(got_j, want, f"in-jit {name}")

    (value_again, _), _ = in_jit(*args)  # wrapped functions and topology hash from the caches
    np.testing.assert_allclose(value_again, value_j, rtol=1e-5)


@pytest.mark.gpu
def test_gpu_antialias_position_gradient_is_reproducible_and_same_through_both_bridges():
    """Antialias's visibility gradient to clip_pos: plain nvdiffrast is reproducible run to run
    (stock 0.3.3 is not on Hopper: its coalesced atomics race, see the warp-safe build in
    ngdjax/render/nvdiffrast/loader.py), and eager, in-jit and plain nvdiffrast agree."""
    clip_pos, tris, colours, tex, uv_attr, weights = gpu_scene()
    resolution = (weights.shape[1], weights.shape[2])
    args = (clip_pos, colours, tex, uv_attr)

    def pos_grad(ops, jit):
        loss = render_loss(ops, tris, weights, resolution, antialias_moves_vertices=True)
        grad = jax.grad(lambda *a: loss(*a)[0])
        return np.asarray((jax.jit(grad) if jit else grad)(*args))

    plain = [torch_render_and_grads(*args, tris, weights, antialias_moves_vertices=True)[1][0] for _ in range(3)]
    scale = float(np.abs(plain[0]).max())
    for again in plain[1:]:
        np.testing.assert_allclose(again, plain[0], atol=1e-5 * scale, err_msg="plain nvdiffrast run to run")
    for name, got in (("eager", pos_grad(nv_ops.ops_for("eager"), jit=False)),
                      ("in-jit", pos_grad(nv_ops.ops_for("jit"), jit=True))):
        np.testing.assert_allclose(got, plain[0], atol=1e-5 * scale, rtol=1e-4, err_msg=name)


@pytest.mark.gpu
def test_gpu_in_jit_backward_calls_gradient_kernels_without_rerunning_forwards(monkeypatch):
    """One jitted value_and_grad runs each nvdiffrast forward once and each backward once."""
    clip_pos, tris, colours, tex, uv_attr, weights = gpu_scene()
    resolution = (weights.shape[1], weights.shape[2])
    counts = {}
    for op in ("rasterize", "interpolate", "antialias", "texture"):
        for part in ("forward", "backward"):
            name, original = f"{op}_{part}", getattr(kernels, f"{op}_{part}")

            def counted(*args, _name=name, _original=original):
                counts[_name] = counts.get(_name, 0) + 1
                return _original(*args)

            monkeypatch.setattr(kernels, name, counted)
    loss = render_loss(nv_ops.ops_for("jit"), tris, weights, resolution, antialias_moves_vertices=True)
    step = jax.jit(jax.value_and_grad(lambda *a: loss(*a)[0], argnums=(0, 1, 2, 3)))
    jax.block_until_ready(step(clip_pos, colours, tex, uv_attr))
    once = {"rasterize": 1, "interpolate": 2, "antialias": 1, "texture": 1}
    assert counts == {f"{op}_{part}": n for op, n in once.items() for part in ("forward", "backward")}


@pytest.mark.gpu
def test_gpu_antialias_backward_can_reuse_its_work_buffer():
    """The in-jit antialias VJP run twice on one forward's residuals gives the same gradients
    both times (its work buffer's counter is reset by each backward; were it not, the second
    would find no work left and return no position gradient)."""
    clip_pos, tris, colours, tex, uv_attr, weights = gpu_scene()
    ops = nv_ops.ops_for("jit")
    rast = jax.jit(lambda p: ops.rasterize(p, tris, weights.shape[1:3]))(clip_pos)
    color = jax.jit(lambda c: ops.interpolate(c, rast, tris))(colours)
    _, pullback = jax.vjp(jax.jit(lambda c, p: ops.antialias(c, rast, p, tris)), color, clip_pos)
    first, again = pullback(weights), pullback(weights)
    assert float(jnp.abs(first[1]).max()) > 0, "no antialias gradient reached clip_pos"
    for a, b in zip(first, again):  # float atomics sum in any order: equal to rounding
        np.testing.assert_allclose(a, b, atol=1e-5 * float(np.abs(np.asarray(a)).max()), rtol=1e-5)


@pytest.mark.gpu
def test_gpu_context_is_one_per_device():
    assert kernels.cuda_context() is kernels.cuda_context(torch.device("cuda"))
