"""THE COMPARISON POINT of the step suite (issue 7), not part of ngdjax: one geometry-fitting step
in PyTorch, organised the way the original implementation is (docs/method.md sections 4-6, 9),
written as well as that design allows.

What the original does, and what this file does the same way:

- Poisson solve: the right-hand side ``R g`` (``R = G^T M``, a sparse matrix on the GPU) is formed on
  the device, copied to the host in float64, solved with a scipy ``splu`` factor of ``L`` with
  vertex 0 pinned (computed once, cached), copied back and mean-centred; the backward pass is the
  same host solve of the upstream gradient (``torch.autograd.Function``), then ``R^T`` by autograd.
  Two forward solves (the detached static mesh for the network's inputs, the full field) and one
  backward solve per step.
- Network: three multi-resolution hash grids with tiny-cuda-nn's semantics (16 levels x 2 features,
  2^19 entries per level, uint32 hashing with wrap-around of raw inputs) and a bias-free ReLU MLP
  96 -> 64 -> 64 -> 9, in plain torch (tcnn is not installed on the GPU machine; tcnn would run the
  grids and the MLP as fused fp16 kernels, see BENCHMARKS.md). The original broadcasts the pose
  code to every face before encoding it; here it is encoded once and the features broadcast (the
  same values, 29k times less pose-grid work).
- Posing: linear blend skinning with per-frame bone transforms (precomputed once per frame here,
  which slightly favours this reference: the original evaluates its body model every step).
- Render: nvdiffrast in torch with one ``RasterizeCudaContext`` for the run (the original made one
  per iteration) and a cached antialias topology hash (the original rebuilt it every call); the
  same six antialiased channels as ngdjax (the original antialiased eight, diffuse replicated).
- Losses: Huber + SSIM (11x11 Gaussian, zero padding) on the masked diffuse, silhouette MSE without
  occluded pixels, the Jacobian regulariser on visible faces, depth ranking on 50 random box pairs.
- Adam (eps 1e-15, fused CUDA kernel where available) per parameter group with the log-linear
  learning rates set every step; the static Jacobians' gradient clipped to norm 1.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F

from ngdjax.hashgrid import HashGridConfig, level_layout
from ngdjax.operators import face_mass_matrix, gradient_operator, hat_gradients
from ngdjax.ssim import C1, C2, WINDOW_SIZE, gaussian_window_1d

UINT32 = 0xFFFFFFFF
PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


# --- Poisson: host scipy LU, device <-> host copies forward and backward -----------------------

class HostLUPoisson:
    """``Solve(J)`` of the original (``SPLUSolveLayer`` + ``PoissonSystem``): vertices (V, 3) from
    per-face Jacobians (F, 3, 3), vertex 0 pinned, mean subtracted."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, device: torch.device):
        grad = gradient_operator(vertices, faces)  # (3F, V), blocked rows
        mass = face_mass_matrix(vertices, faces)
        system = (grad.T @ mass @ grad).tocsc()
        self.lu = scipy.sparse.linalg.splu(system[1:, 1:].tocsc())  # scipy's default, as the original
        rhs = (grad.T @ mass).tocsr()[1:].tocoo()  # R with row 0 dropped: (V - 1, 3F)
        indices = torch.as_tensor(np.stack([rhs.row, rhs.col]).astype(np.int64))
        values = torch.as_tensor(rhs.data.astype(np.float32))
        self.rhs = torch.sparse_coo_tensor(indices, values, rhs.shape, check_invariants=False).coalesce().to(device)
        self.n_faces = len(faces)

    def __call__(self, jacobians: torch.Tensor) -> torch.Tensor:
        blocked = jacobians.permute(2, 0, 1).reshape(3 * self.n_faces, 3)  # block k: dX/dx_k of all faces
        b = torch.sparse.mm(self.rhs, blocked)  # (V - 1, 3) on the device
        y = _HostSolve.apply(b, self.lu)
        x = torch.cat([torch.zeros_like(y[:1]), y], dim=0)
        return x - x.mean(dim=0, keepdim=True)


class _HostSolve(torch.autograd.Function):
    """``L' y = b`` on the host in float64; the backward is the same solve (``L'`` is symmetric)."""

    @staticmethod
    def forward(ctx, b, lu):
        ctx.lu = lu
        return _host_solve(lu, b)

    @staticmethod
    def backward(ctx, grad):
        return _host_solve(ctx.lu, grad), None


def _host_solve(lu, b: torch.Tensor) -> torch.Tensor:
    x = lu.solve(b.detach().to("cpu", torch.float64).numpy())  # device -> host, float64
    return torch.from_numpy(x).to(b.device, torch.float32)  # host -> device


def template_jacobians(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """J_f[j, k] = sum_i X[f_i, j] grad_phi[f, i, k] of the template itself (F, 3, 3) float32."""
    grad_phi = hat_gradients(vertices, faces)
    return np.einsum("fij,fik->fjk", np.asarray(vertices, np.float64)[faces], grad_phi).astype(np.float32)


# --- Network: tcnn-semantics hash grids + bias-free MLP in plain torch ------------------------

class TorchHashGrid(torch.nn.Module):
    """Multi-resolution hash encoding with tcnn's indexing (see ngdjax/hashgrid.py), float32, all
    levels and corners in one gather; the backward is autograd's scatter-add into the dense table."""

    def __init__(self, config: HashGridConfig, device: torch.device, generator: torch.Generator | None = None):
        super().__init__()
        layout = level_layout(config)  # host constants only
        self.config = config
        d = config.input_dim
        table = torch.rand((layout.n_rows, config.n_features), generator=generator) * 2e-4 - 1e-4
        self.table = torch.nn.Parameter(table.to(device))
        as_long = lambda a: torch.as_tensor(np.asarray(a, np.int64), device=device)
        self.register_buffer("scales", torch.as_tensor(layout.scales, device=device)[None, :, None])
        self.register_buffer("strides", as_long(layout.strides)[None, :, None, :])
        self.register_buffer("sizes", as_long(layout.table_sizes)[None, :, None])
        self.register_buffer("offsets", as_long(layout.offsets)[None, :, None])
        self.register_buffer("dense", torch.as_tensor(layout.dense, device=device)[None, :, None])
        bits = np.asarray([[(k >> i) & 1 for i in range(d)] for k in range(2**d)], np.int64)
        self.register_buffer("bits", as_long(bits)[None, None])
        self.register_buffer("upper", torch.as_tensor(bits.astype(bool), device=device)[None, None])
        self.primes = [PRIMES[i] for i in range(d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pos = x.detach()[:, None, :] * self.scales + 0.5  # (N, L, d)
        floor = torch.floor(pos)
        frac = pos - floor
        cell = floor.to(torch.int64) & UINT32  # int32 -> uint32 wrap of negative cells
        corners = (cell[:, :, None, :] + self.bits) & UINT32  # (N, L, C, d)
        weights = torch.where(self.upper, frac[:, :, None, :], 1.0 - frac[:, :, None, :]).prod(dim=-1)
        dense_index = (corners * self.strides).sum(dim=-1) & UINT32
        hashed = (corners[..., 0] * self.primes[0]) & UINT32
        for dim in range(1, len(self.primes)):
            hashed = hashed ^ ((corners[..., dim] * self.primes[dim]) & UINT32)  # low 32 bits of the product
        rows = torch.where(self.dense, dense_index, hashed) % self.sizes + self.offsets  # (N, L, C)
        features = self.table[rows]  # (N, L, C, F)
        return (weights[..., None] * features).sum(dim=2).reshape(n, -1)


class TorchJacobianNet(torch.nn.Module):
    """``f_G``: E_pos(c_f), E_nrm(n_f), E_pose(z_t broadcast) -> MLP (no biases) -> 3x3 per face.
    Layers are (in, out) matrices applied as ``h @ W`` (ngdjax's layout, so weights can be copied)."""

    def __init__(self, network, device: torch.device, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.position_grid = TorchHashGrid(network.grid(3), device, generator)
        self.normal_grid = TorchHashGrid(network.grid(3), device, generator)
        self.pose_grid = TorchHashGrid(network.grid(network.pose_dim), device, generator)
        widths = network.widths
        self.layers = torch.nn.ParameterList()
        for n_in, n_out in itertools.pairwise(widths):
            bound = math.sqrt(6.0 / (-(-n_in // 16) * 16 + -(-n_out // 16) * 16))
            self.layers.append(torch.nn.Parameter(
                ((torch.rand((n_in, n_out), generator=generator) * 2 - 1) * bound).to(device)))

    def forward(self, centroids: torch.Tensor, normals: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        pose = self.pose_grid(code[None, :]).expand(centroids.shape[0], -1)  # encoded once, same values
        h = torch.cat([self.position_grid(centroids), self.normal_grid(normals), pose], dim=1)
        for weights in self.layers[:-1]:
            h = torch.relu(h @ weights)
        return (h @ self.layers[-1]).reshape(-1, 3, 3)


# --- Geometry helpers ---------------------------------------------------------------------------

def linear_blend_skinning(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    blended = (weights @ transforms.reshape(-1, 16)).reshape(-1, 4, 4)
    return torch.einsum("vij,vj->vi", blended[:, :3, :3], vertices) + blended[:, :3, 3]


def face_cross(vertices: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    x0, x1, x2 = vertices[tris[:, 0]], vertices[tris[:, 1]], vertices[tris[:, 2]]
    return torch.linalg.cross(x1 - x0, x2 - x0)


def vertex_normals(vertices: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    cross = face_cross(vertices, tris)
    summed = torch.zeros_like(vertices).index_add(0, tris.reshape(-1), cross.repeat_interleave(3, dim=0))
    return summed / summed.norm(dim=-1, keepdim=True).clamp_min(1e-6)


# --- Losses -------------------------------------------------------------------------------------

def huber(error: torch.Tensor, delta: float) -> torch.Tensor:
    magnitude = error.abs()
    return torch.where(magnitude < delta, 0.5 * error**2, delta * (magnitude - 0.5 * delta)).mean()


def ssim(a: torch.Tensor, b: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    pad = WINDOW_SIZE // 2

    def blur(x):
        x = F.conv2d(x[None, None], taps.view(1, 1, -1, 1), padding=(pad, 0))
        return F.conv2d(x, taps.view(1, 1, 1, -1), padding=(0, pad))[0, 0]

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a * mu_a, blur(b * b) - mu_b * mu_b, blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))
    return value.mean()


def depth_pairs(shape: tuple[int, int], n_boxes: int, box: int, device, generator=None):
    height, width = shape
    box_h, box_w = min(box, height), min(box, width)
    draw = lambda limits: torch.floor(
        torch.rand((n_boxes, 2), device=device, generator=generator) * torch.tensor(limits, device=device)).long()
    corners = draw((height - box_h + 1, width - box_w + 1))
    return corners + draw((box_h, box_w)), corners + draw((box_h, box_w))


def depth_ranking(depth, target, first, second, margin: float) -> torch.Tensor:
    t1, t2 = target[first[:, 0], first[:, 1]], target[second[:, 0], second[:, 1]]
    d1, d2 = depth[first[:, 0], first[:, 1]], depth[second[:, 0], second[:, 1]]
    usable = ((t1 > 0) & (t2 > 0) & (t1 != t2)).float()
    hinge = torch.clamp(-torch.sign(t2 - t1) * (d1 - d2) + margin, min=0.0)
    return (hinge * usable).sum() / usable.sum().clamp_min(1.0)


def frame_losses(images, field, visible, frame: dict, weights, taps, pairs=None) -> tuple[torch.Tensor, dict]:
    """The geometry loss of one frame (docs/method.md 6), same terms and weights as ngdjax.geometry.frame_losses."""
    silhouette, diffuse, depth = images
    terms = {"silhouette": ((silhouette * (1.0 - frame["occluders"]) - frame["mask"]) ** 2).mean()}
    masked = diffuse * frame["mask"]
    terms["huber"] = huber(masked - frame["diffuse"], weights.huber_delta)
    terms["ssim"] = 1.0 - ssim(masked, frame["diffuse"], taps)
    rendering = (weights.silhouette * terms["silhouette"] + weights.huber_weight * terms["huber"]
                 + weights.ssim_weight * terms["ssim"])
    identity = torch.eye(3, device=field.device)[None]
    tilde = field if visible is None else torch.where(visible[:, None, None], field, identity)
    terms["jacobian"] = ((tilde - identity) ** 2).mean()
    if pairs is None:
        pairs = depth_pairs(depth.shape, weights.depth_boxes, weights.depth_box, depth.device)
    terms["depth"] = depth_ranking(depth, frame["depth"], *pairs, weights.depth_margin)
    total = weights.rendering * rendering + weights.jacobian * terms["jacobian"] + weights.depth * terms["depth"]
    terms["total"] = total
    return total, terms


# --- Render: nvdiffrast in torch, one context for the run -------------------------------------

class NvdiffrastRender:
    """The geometry pass of docs/method.md 5 with plain nvdiffrast (the original's AlphaRenderer)."""

    def __init__(self, tris: torch.Tensor, resolution: tuple[int, int]):
        from ngdjax.render.nvdiffrast import kernels as nv

        self.nv, self.tris, self.resolution = nv, tris, tuple(resolution)
        nv.cuda_context(tris.device)  # the run's one RasterizeCudaContext
        self.topology = nv.topology_hash(tris, key=("torch-reference", tris.data_ptr(), tris.shape[0]))

    def __call__(self, posed, mv, proj):
        nv, tris = self.nv, self.tris
        clip = torch.cat([posed, torch.ones_like(posed[:, :1])], dim=1) @ (proj @ mv).T
        normals = vertex_normals(posed, tris.long()) @ mv[:3, :3].T
        w = clip[:, 3:4]
        safe_w = torch.where(w >= 0, w.clamp_min(1e-4), w.clamp_max(-1e-4))
        attributes = torch.cat([normals, clip[:, 2:3] / safe_w], dim=1).contiguous()
        pos = clip[None].contiguous()
        rast = nv.torch_rasterize(pos, tris, self.resolution)
        interpolated = nv.torch_interpolate(attributes, rast, tris)
        normal, z_ndc = interpolated[..., :3], interpolated[..., 3]
        covered = rast[..., 3] > 0
        front = (covered & (normal[..., 2] > 0)).float()
        diffuse = normal[..., 2].clamp(0.0, 1.0)
        depth = (1.0 - (z_ndc + 1.0) / 2.0) * front
        unit = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-5)
        normal01 = (torch.where(covered[..., None], unit, -1.0) + 1.0) / 2.0
        stacked = torch.cat([normal01, diffuse[..., None], depth[..., None], front[..., None]], dim=-1).contiguous()
        smooth = nv.torch_antialias(stacked, rast, pos, tris, self.topology)
        face_ids = (rast[..., 3] * front).long().reshape(-1)
        visible = torch.zeros(tris.shape[0] + 1, dtype=torch.bool, device=posed.device)
        visible[face_ids] = True
        return (smooth[0, ..., 5], smooth[0, ..., 3], smooth[0, ..., 4]), visible[1:]


# --- The step -----------------------------------------------------------------------------------

class TorchReferenceFit:
    """The original's per-frame geometry step on one sequence (see the module docstring).

    Args:
        template_vertices, template_faces: the template (V, 3), (F, 3) on the host.
        skin_weights: (V, K) host. transforms: (T, K, 4, 4) per-frame bone transforms (host).
        frames: dict of per-frame host arrays (T, ...): mask, occluders, diffuse, depth, mv, proj, code.
        network: ngdjax.fields.DynamicJacobianConfig. weights: LossConfig. optim: OptimConfig.
        render: None for nvdiffrast (CUDA), or a stand-in ``render(posed, mv, proj)`` (CPU tests).
    """

    def __init__(self, template_vertices, template_faces, skin_weights, transforms, frames: dict, resolution,
                 network, weights, optim, device: torch.device, render=None, seed: int = 0):
        self.device, self.weights, self.optim = device, weights, optim
        to = lambda a, dtype=torch.float32: torch.as_tensor(np.array(a), dtype=dtype, device=device)
        self.tris = to(template_faces, torch.int32)
        self.tris_long = self.tris.long()
        self.poisson = HostLUPoisson(template_vertices, template_faces, device)
        self.mean = to(np.asarray(template_vertices).mean(axis=0, keepdims=True))
        self.static = torch.nn.Parameter(to(template_jacobians(template_vertices, template_faces)))
        self.net = TorchJacobianNet(network, device, seed)
        self.skin_weights, self.transforms = to(skin_weights), to(transforms)
        self.frames = {name: to(value) for name, value in frames.items()}
        self.n_frames = len(self.transforms)
        self.render = render or NvdiffrastRender(self.tris, resolution)
        self.taps = to(gaussian_window_1d())
        fused = device.type == "cuda"
        self.optimizer = torch.optim.Adam(
            [{"params": [self.static], "lr": optim.static.lr[0]}, {"params": list(self.net.parameters()),
                                                                    "lr": optim.net.lr[0]}],
            betas=(0.9, 0.999), eps=optim.adam_eps, fused=fused)
        self.count = 0

    def frame(self, index: int) -> dict:
        return {name: value[index] for name, value in self.frames.items()}

    def learning_rates(self) -> tuple[float, float]:
        def lr(bounds, decay):
            t = min(max((self.count + self.n_frames) / decay, 0.0), 1.0)
            return math.exp((1 - t) * math.log(bounds[0]) + t * math.log(bounds[1]))
        return lr(self.optim.static.lr, self.optim.static.decay_steps), lr(self.optim.net.lr, self.optim.net.decay_steps)

    # The forward pieces (also timed one by one for the breakdown)
    def posed_static_features(self, transforms):
        with torch.no_grad():
            rest = self.poisson(self.static) + self.mean
            posed = linear_blend_skinning(rest, self.skin_weights, transforms)
            cross = face_cross(posed, self.tris_long)
            return posed[self.tris_long].mean(dim=1), cross / cross.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def forward(self, index: int, network_on: bool = True, pairs=None):
        frame, transforms = self.frame(index), self.transforms[index]
        field = self.static
        if network_on:
            centroids, normals = self.posed_static_features(transforms)
            field = field + self.net(centroids, normals, frame["code"])
        canonical = self.poisson(field) + self.mean
        posed = linear_blend_skinning(canonical, self.skin_weights, transforms)
        images, visible = self.render(posed, frame["mv"], frame["proj"])
        return frame_losses(images, field, visible if network_on else None, frame, self.weights, self.taps, pairs)

    def optimizer_step(self):
        torch.nn.utils.clip_grad_norm_([self.static], self.optim.clip_static)
        for group, lr in zip(self.optimizer.param_groups, self.learning_rates()):
            group["lr"] = lr
        self.optimizer.step()
        self.count += 1

    def step(self, index: int, network_on: bool = True) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss, _ = self.forward(index, network_on)
        loss.backward()
        self.optimizer_step()
        return loss.detach()

    def stage_closures(self, index: int) -> dict:
        """Forward+backward of each stage alone, on this frame's real intermediate values."""
        frame, transforms = self.frame(index), self.transforms[index]
        centroids, normals = self.posed_static_features(transforms)
        residual = self.net(centroids, normals, frame["code"])
        field = (self.static + residual).detach().requires_grad_(True)
        canonical = (self.poisson(field) + self.mean).detach().requires_grad_(True)
        posed = linear_blend_skinning(canonical, self.skin_weights, transforms).detach().requires_grad_(True)
        images, visible = self.render(posed, frame["mv"], frame["proj"])
        images = [image.detach().requires_grad_(True) for image in images]
        generator = torch.Generator(device=self.device).manual_seed(0)
        cot = lambda t: torch.randn(t.shape, device=self.device, generator=generator)
        cot_field, cot_vertices = cot(field), cot(canonical)
        cot_images = [cot(image) for image in images]

        def fields_stage():
            self.net(centroids, normals, frame["code"]).backward(cot_field)

        def poisson_stage():
            with torch.no_grad():
                self.poisson(self.static)
            self.poisson(field).backward(cot_vertices)

        def skinning_stage():
            with torch.no_grad():
                linear_blend_skinning(canonical, self.skin_weights, transforms)
            linear_blend_skinning(canonical, self.skin_weights, transforms).backward(cot_vertices)

        def render_stage():
            out, _ = self.render(posed, frame["mv"], frame["proj"])
            torch.autograd.backward(out, cot_images)

        def losses_stage():
            loss, _ = frame_losses(images, field, visible, frame, self.weights, self.taps)
            loss.backward()

        def optimizer_stage():
            self.optimizer_step()

        self.optimizer.zero_grad(set_to_none=False)
        for p in [self.static, *self.net.parameters()]:  # gradients present for the optimizer stage
            p.grad = torch.randn_like(p) * 1e-3 if p.grad is None else p.grad
        return {"fields": fields_stage, "poisson": poisson_stage, "skinning": skinning_stage,
                "render": render_stage, "losses": losses_stage, "optimizer": optimizer_stage}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_torch(run, device: torch.device, warmup: int = 3, min_reps: int = 20, min_seconds: float = 0.5,
               max_reps: int = 1000) -> tuple[float, int]:
    """Median wall time (ms) of ``run()`` with the device synchronised before each clock read."""
    for _ in range(warmup):
        run()
    sync(device)
    times, start = [], time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        run()
        sync(device)
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times), len(times)
