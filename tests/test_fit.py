"""The geometry fit end to end on a tiny synthetic sequence: the loss and the Chamfer distance go
down, a resumed run equals an uninterrupted one, the step is traced once per variant, and bad
configs or sequences stop with exit code 2 before any compilation."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from experiments import fit as fit_cli
from ngdjax import geometry
from ngdjax.body.model import load_body
from ngdjax.config import load_config
from ngdjax.data import synthetic
from ngdjax.data.loader import load_sequence
from ngdjax.fit_config import FitConfig
from ngdjax.render.backend import get_renderer
from ngdjax.geometry_fit import fit_geometry
from ngdjax.metrics import SPLIT_METRICS

TINY = synthetic.SynthConfig(seed=5, garment="skirt", n_frames=4, resolution=(64, 64), target_edge_length=0.03)
FAST = ["field.network.log2_table_size=10", "field.network.n_levels=8", "optim.warmup_epochs=2", "optim.checkpoint_every=2",
        "remesh.enabled=false", "texture.enabled=false", "output.renders=false", "render=jax",
        "optim.static.decay_steps=100", "optim.net.decay_steps=100"]


@pytest.fixture(scope="module")
def sequence_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tiny_sequence"))
    synthetic.write(synthetic.generate(TINY), directory)
    return directory


def _config_paths(sequence_dir):
    """(path, overrides) of a fit config for the tiny sequence, written next to it."""
    path = os.path.join(os.path.dirname(sequence_dir), "fit_config.yaml")
    with open(path, "w") as file:
        file.write(f"name: tiny\ndata:\n  sequence: {sequence_dir}\n")
    return path, list(FAST) + ["remesh.edge_length=[0.005, 0.005]"]


def _config(tmp_path, sequence_dir, *overrides):
    path = tmp_path / "fit.yaml"
    path.write_text(f"name: tiny\ndata:\n  sequence: {sequence_dir}\n")
    return str(path), list(FAST) + list(overrides)


def test_fit_lowers_loss_and_chamfer(tmp_path, sequence_dir):
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochs=10")
    assert fit_cli.main(["--cfg", path, "--out", str(tmp_path / "run"), *overrides]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["chamfer_x1e3"]["mean"] < 0.8 * metrics["template_chamfer_x1e3"]["mean"]
    assert metrics["mask_iou"]["mean"] > metrics["template_mask_iou"]["mean"]
    for name in SPLIT_METRICS:  # the seen/unseen split, for the fit and the template
        assert name in metrics and f"template_{name}" in metrics, name
    assert 0.0 < metrics["unseen_fraction"]["mean"] < 1.0  # a fixed camera never sees the back
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 10 * 4
    first = np.mean([line["total"] for line in lines if line["epoch"] == 0])
    last = np.mean([line["total"] for line in lines if line["epoch"] == 9])
    assert last < 0.9 * first
    for name in ("config.yaml", "canonical.obj", "meshes/frame_0000.obj", "meshes/frame_0003.obj",
                 "checkpoint/latest.json"):
        assert (run / name).exists(), name
    assert not list(run.rglob("*.tmp*"))


def test_resume_equals_uninterrupted(tmp_path, sequence_dir):
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochs=4")
    config = load_config(path, FitConfig, overrides)
    sequence = load_sequence(sequence_dir)
    body, renderer = load_body("anny"), get_renderer("jax")
    def recorder(states):  # on_epoch's state is valid during the call only (the steps donate their buffers)
        return lambda epochs, state: states.update({epochs: ([np.asarray(leaf) for leaf in
                                                               jax.tree_util.tree_leaves(state.params)], state.seconds)})

    whole_states, cut_states = {}, {}
    whole = fit_geometry(config, sequence, body, renderer, str(tmp_path / "a"), resume=False, progress=False,
                         on_epoch=recorder(whole_states))
    fit_geometry(config, sequence, body, renderer, str(tmp_path / "b"), resume=False, progress=False,
                 stop_after_steps=10, on_epoch=recorder(cut_states))  # interrupted in the middle of epoch 2 (network on)
    resumed = fit_geometry(config, sequence, body, renderer, str(tmp_path / "b"), resume=True, progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    # on_epoch saw every finished epoch, the interrupted run only its two, with the same states
    assert sorted(whole_states) == [1, 2, 3, 4] and sorted(cut_states) == [1, 2]
    for a, b in zip(whole_states[2][0], cut_states[2][0]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(whole_states[4][0], jax.tree_util.tree_leaves(whole.params)):
        np.testing.assert_array_equal(a, np.asarray(b))
    assert 0 < whole_states[1][1] < whole_states[2][1] < whole_states[4][1]
    log_a = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert len(log_a) == len(log_b) == 16
    assert [json.loads(x)["frame"] for x in log_a] == [json.loads(x)["frame"] for x in log_b]


def test_step_is_traced_once_per_variant(tmp_path, sequence_dir, compiled_variants):
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochs=3", "optim.warmup_epochs=1",
                              "optim.static.lr=[1.0e-3, 1.0e-4]")  # settings no other test uses: a fresh step
    config = load_config(path, FitConfig, overrides)
    sequence = load_sequence(sequence_dir)
    fit_geometry(config, sequence, load_body("anny"), get_renderer("jax"), str(tmp_path / "r"), resume=False,
                 progress=False)
    step = geometry.make_geometry_step(get_renderer("jax"), config.optim, sequence.n_frames, config.loss)  # the (cached) step the fit ran
    assert compiled_variants(step) == 2  # warm-up and network-on; 12 steps over 4 frames


def test_vertex_offsets_baseline_gets_closer_than_the_template(tmp_path, sequence_dir):
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochs=10", "field.deformation=vertex_offsets")
    assert fit_cli.main(["--cfg", path, "--out", str(tmp_path / "v"), *overrides]) == 0
    metrics = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert metrics["chamfer_x1e3"]["mean"] < 0.9 * metrics["template_chamfer_x1e3"]["mean"]
    assert metrics["mask_iou"]["mean"] > metrics["template_mask_iou"]["mean"]


def test_bad_config_and_bad_sequence_exit_2_before_compiling(tmp_path, sequence_dir, capsys):
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, *_, **__: compiled.append(event) if "compile" in event else None)
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochz=3", "loss.depth=heavy")
    assert fit_cli.main(["--cfg", path, *overrides]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'optim.epochz'" in err and "'loss.depth' must be float" in err
    broken = tmp_path / "broken"
    synthetic.write(synthetic.generate(dataclasses.replace(TINY, n_frames=2)), str(broken))
    os.remove(broken / "masks" / "0001.png")
    compiled.clear()
    path, overrides = _config(tmp_path, str(broken))
    assert fit_cli.main(["--cfg", path, "--out", str(tmp_path / "x"), *overrides]) == 2
    assert "masks/0001.png: missing" in capsys.readouterr().err
    assert not compiled
    assert not (tmp_path / "x" / "log.jsonl").exists()


def test_remeshing_during_the_fit(tmp_path, sequence_dir):
    from ngdjax.mesh import boundary_loops, non_manifold_edges

    # The remesh of tests/test_faults.py's kill chain (after epoch 1, edges split to 2 cm up to 900
    # vertices): run in the same session, the steps its uninterrupted run compiled serve here.
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochs=4", "optim.warmup_epochs=1",
                              "remesh.enabled=true", "remesh.epochs=[1]", "remesh.blend_epochs=2",
                              "remesh.edge_length=[0.02, 0.02]", "remesh.max_vertices=900")
    config = load_config(path, FitConfig, overrides)
    sequence = load_sequence(sequence_dir)
    result = fit_geometry(config, sequence, load_body("anny"), get_renderer("jax"), str(tmp_path / "m"),
                          resume=False, progress=False)
    assert len(result.template_faces) > len(sequence.template_faces)
    # The smoothness prior still divides by the input template's pair count (its strength per area kept).
    input_pairs = len(trimesh.graph.face_adjacency(sequence.template_faces))
    assert len(result.problem.adjacent_faces) > input_pairs == float(result.problem.smoothness_pairs)
    assert result.params["static"].shape == (len(result.template_faces), 3, 3)
    assert len(non_manifold_edges(result.template_faces)) == 0
    assert len(boundary_loops(result.template_faces)) == len(boundary_loops(sequence.template_faces))
    assert np.isfinite(np.asarray(result.params["static"])).all()


def test_a_remesh_keeps_the_canonical_garment_in_place(sequence_dir):
    from ngdjax.geometry import canonical_vertices
    from ngdjax.geometry_fit import canonical_offset, remesh_event

    path, overrides = _config_paths(sequence_dir)
    config = load_config(path, FitConfig, overrides)
    sequence = load_sequence(sequence_dir)
    body = load_body("anny")
    problem = geometry.build_problem(sequence.template_vertices, sequence.template_faces, body, sequence.shape[0],
                                       sequence.resolution, config.field, True, True)
    params = geometry.init_params(jax.random.PRNGKey(0), problem)
    # A fitted-looking static field: the template bent and shifted non-uniformly.
    bent = problem.template + 0.05 * jnp.sin(6.0 * problem.template[:, 2:3]) * jnp.array([[1.0, 0.5, 0.0]])
    params["static"] = geometry.jacobians_from_vertices(problem.solver, bent)
    optimizer = geometry.make_optimizer(config.optim, sequence.n_frames)
    before = canonical_vertices(params, problem)
    heights = sequence.template_vertices[sequence.template_faces].mean(axis=1)[:, 2]
    statistic = heights.max() - heights  # refine near the hem only: moves the vertex mean
    vertices, faces, params, _, _ = remesh_event(sequence.template_vertices, sequence.template_faces, statistic, 0,
                                                 config, params, optimizer.init(params), None)
    assert len(vertices) > len(sequence.template_vertices)
    remeshed = geometry.build_problem(vertices, faces, body, sequence.shape[0], sequence.resolution, config.field,
                                        True, True)
    kept = len(sequence.template_vertices)
    size = float(np.ptp(np.asarray(before), axis=0).max())
    naive = canonical_vertices(params, remeshed)  # re-centred on the new template's vertex mean
    assert float(jnp.abs(naive[:kept] - before).max()) > 2e-3 * size  # the drift this guards against
    remeshed = dataclasses.replace(remeshed, template_mean=canonical_offset(params, remeshed, before))
    after = canonical_vertices(params, remeshed)
    assert float(jnp.abs(after[:kept] - before).max()) < 2e-3 * size


def test_zero_root_network_input_ignores_the_global_turn(sequence_dir):
    """With field.zero_root the network reads the same posed static mesh however the body is
    turned and moved; the garment itself is still posed with the full transforms."""
    sequence = load_sequence(sequence_dir)
    turned = dataclasses.replace(sequence, global_rotation=sequence.global_rotation + np.float32([0.0, 0.0, 1.2]),
                                 translation=sequence.translation + np.float32([0.3, -0.2, 0.1]))
    body = load_body("anny")
    from ngdjax.geometry import prepare_frames

    plain, moved = (prepare_frames(s, 4, body, zero_root=True) for s in (sequence, turned))
    np.testing.assert_allclose(np.asarray(plain.input_transforms), np.asarray(moved.input_transforms), atol=1e-5)
    assert np.max(np.abs(np.asarray(plain.transforms) - np.asarray(moved.transforms))) > 0.1
    default = prepare_frames(sequence, 4, body)
    np.testing.assert_array_equal(np.asarray(default.input_transforms), np.asarray(default.transforms))


def test_every_deformation_name_has_a_model():
    import typing

    from ngdjax.fit_config import DeformationName

    assert set(typing.get_args(DeformationName)) == set(geometry.DEFORMATIONS)


def test_the_priors_fit_through_a_remesh(tmp_path, sequence_dir):
    """field.smooth_modes, field.vertical_shift and field.body_offset_scale in a whole fit with a
    remesh event: the modes are folded into the per-face Jacobians at the event and learnt again on
    the new template's modes, the offsets from the body are those of the new template's vertices,
    the shift and the offset's factor are learnt, and the fit gets closer to the masks."""
    # the remesh ends epoch 1, the first with the network on (its steps collect the statistic):
    # three step variants (network off, on and collecting, on the new template) instead of four
    path, overrides = _config(tmp_path, sequence_dir, "optim.epochs=4", "optim.warmup_epochs=1",
                              "remesh.enabled=true", "remesh.epochs=[1]", "remesh.blend_epochs=2",
                              "field.smooth_modes=2", "field.vertical_shift=true", "field.body_offset_scale=true")
    config = load_config(path, FitConfig, overrides)
    sequence = load_sequence(sequence_dir)
    result = fit_geometry(config, sequence, load_body("anny"), get_renderer("jax"), str(tmp_path / "p"),
                          resume=False, progress=False)
    assert len(result.template_faces) > len(sequence.template_faces)
    assert result.problem.modes.shape == (len(result.template_faces), 2)
    coarse = result.params["coarse"]
    assert float(jnp.abs(coarse["shift"])) > 1e-4 and np.isfinite(np.asarray(coarse["modes"])).all()
    assert float(jnp.abs(coarse["offset_scale"])) > 1e-4
    offsets = np.linalg.norm(np.asarray(result.problem.body_offset), axis=1)
    assert offsets.shape == (len(result.template_vertices),) and np.all(offsets[len(sequence.template_vertices):] > 0)
    assert float(jnp.abs(coarse["modes"]).max()) > 0  # learnt again after the fold at epoch 1
    log = [json.loads(line) for line in open(tmp_path / "p" / "log.jsonl")]
    silhouette = [row["silhouette"] for row in log if "silhouette" in row]
    assert np.mean(silhouette[-4:]) < np.mean(silhouette[:4])
