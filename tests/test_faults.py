"""The fit's fault model (docs/reliability.md), tested by injecting faults.

Every bad input exits 2 with one line naming the file, key or override, before any long
computation, and changes no file outside the run directory (the sequence directory and a
sentinel user folder are hashed before and after). A non-finite fit stops within one epoch
(exit 1) and keeps its last good checkpoint. A run killed with SIGKILL at points drawn from a
seeded generator (mid-epoch, inside a checkpoint write, right after the remesh event, in the
appearance stage) resumes to exactly the metrics and meshes of an uninterrupted run.
"""

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from experiments import fit as fit_cli
from experiments import synth as synth_cli
from ngdjax.config import load_config
from ngdjax.data import synthetic
from ngdjax.fit_config import FitConfig
from ngdjax.pipeline import run_fit as run_fit_in_process
from ngdjax.render.nvdiffrast import nvdiffrast_available

TINY = synthetic.SynthConfig(seed=5, garment="skirt", n_frames=4, resolution=(64, 64), target_edge_length=0.03)
FAST = ["field.network.log2_table_size=10", "field.network.n_levels=8", "optim.warmup_epochs=2", "optim.checkpoint_every=1",
        "remesh.enabled=false", "texture.enabled=false", "output.renders=false", "render=jax",
        "optim.static.decay_steps=100", "optim.net.decay_steps=100", "optim.epochs=3"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny sequence, a sentinel user folder, and a fit config file naming the sequence."""
    root = tmp_path_factory.mktemp("faults")
    sequence = root / "sequence"
    synthetic.write(synthetic.generate(TINY), str(sequence))
    user = root / "user_folder"
    (user / "frames").mkdir(parents=True)
    (user / "frames" / "0000.png").write_bytes(b"the user's own frame")
    (user / "notes.txt").write_text("keep me")
    config = root / "fit.yaml"
    config.write_text(f"name: tiny\ndata:\n  sequence: {sequence}\n")
    return root


def tree_hash(path) -> str:
    """One hash of every file's relative path and bytes under ``path``."""
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            full = os.path.join(folder, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as file:
                digest.update(file.read())
    return digest.hexdigest()


def copy_sequence(world, name: str):
    """A writable copy of the tiny sequence (to break one file of)."""
    target = world / "broken" / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(world / "sequence", target)
    return target


def config_for(world, sequence, name: str = "case.yaml", extra: str = "") -> str:
    path = world / "configs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"name: tiny\ndata:\n  sequence: {sequence}\n{extra}")
    return str(path)


def save_npz(path, **changes):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def truncate(path, keep: int = 40):
    with open(path, "rb") as file:
        head = file.read(keep)
    with open(path, "wb") as file:
        file.write(head)


# (id, setup(world) -> (argv for experiments.fit, or ("synth", argv)), expected message fragment)
def _override(*overrides):
    return lambda world: ["--cfg", str(world / "fit.yaml"), *FAST, *overrides]


def _broken_sequence(name, breaker):
    def setup(world):
        sequence = copy_sequence(world, name)
        breaker(sequence)
        return ["--cfg", config_for(world, sequence, f"{name}.yaml"), *FAST]
    return setup


def _raw_config(text):
    def setup(world):
        path = world / "configs" / f"raw_{abs(hash(text))}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return ["--cfg", str(path), *FAST]
    return setup


def _proj_scaled_focal(sequence):
    with np.load(sequence / "camera.npz") as data:
        proj = data["proj"].copy()
    proj[..., 0, 0] /= 4
    proj[..., 1, 1] /= 4
    save_npz(sequence / "camera.npz", proj=proj)


def _camera_turned_away(sequence):
    with np.load(sequence / "camera.npz") as data:
        mv = data["mv"].copy()
    flip = np.diag([-1.0, 1.0, -1.0, 1.0]).astype(np.float32)  # half a turn about the view's y axis
    save_npz(sequence / "camera.npz", mv=flip @ mv)


BAD_INPUTS = [
    # configs and overrides
    ("epochs_negative", _override("optim.epochs=-3"), "override 'optim.epochs=-3': 'optim.epochs' must be >= 1"),
    ("checkpoint_every_zero", _override("optim.checkpoint_every=0"), "'optim.checkpoint_every' must be >= 1"),
    ("render_unknown", _override("render=opengl"), "override 'render=opengl': 'render' is 'opengl'"),
    ("render_unavailable", _override("render=nvdiffrast-jit"), "render: 'nvdiffrast-jit' cannot run here"),
    ("lr_zero", _override("optim.static.lr=[0, 1e-4]"), "'optim.static.lr' must be two rates > 0"),
    ("quantile_range", _override("remesh.quantile=[0.5, 1.5]"), "override 'remesh.quantile=[0.5, 1.5]'"),
    ("table_size", _override("field.network.log2_table_size=40"), "'field.network.log2_table_size' must be within [4, 24]"),
    ("negative_weight", _override("loss.depth=-1"), "'loss.depth' must be >= 0"),
    ("texture_resolution", _override("texture.resolution=0"), "'texture.resolution' must be >= 8"),
    ("nan_weight", _override("loss.jacobian=.nan"), "'loss.jacobian' must be a finite number"),
    ("remesh_epochs_order", _override("remesh.epochs=[15, 5]"), "'remesh.epochs' must be distinct epochs"),
    ("unknown_key", _override("optim.epochz=3"), "unknown key 'optim.epochz'"),
    ("renamed_key", _override("optim.lr_static=[1e-3, 1e-4]"), "unknown key 'optim.lr_static' (renamed to 'optim.static.lr')"),
    ("wrong_type", _override("loss.depth=heavy"), "override 'loss.depth=heavy': 'loss.depth' must be float"),
    ("override_without_value", _override("justakey"), "override 'justakey': expected key=value"),
    ("name_with_slash", _override("name=a/b"), "'name' must be a non-empty name without '/'"),
    ("yaml_syntax", _raw_config("name: [tiny\n"), "not valid YAML"),
    ("yaml_not_mapping", _raw_config("- a\n- b\n"), "must be a mapping of keys to values"),
    ("config_missing", lambda world: ["--cfg", str(world / "nope.yaml")], "nope.yaml: config file not found"),
    ("missing_sequence_key", _raw_config("name: tiny\ndata: {}\n"), "missing key 'data.sequence'"),
    # outputs
    ("out_is_a_file", lambda world: ["--cfg", str(world / "fit.yaml"), "--out", str(world / "fit.yaml"), *FAST],
     "exists and is not a directory"),
    ("out_is_a_user_folder", lambda world: ["--cfg", str(world / "fit.yaml"), "--out", str(world / "user_folder"),
                                            *FAST], "not empty and not an ngdjax run"),
    ("generate_into_user_folder", lambda world: [
        "--cfg", config_for(world, world / "user_folder", "gen.yaml", "  synth_config: " +
                            os.path.join(REPO, "configs", "synth", "demo.yaml") + "\n"), *FAST],
     "data.sequence: " ),
    ("no_sequence_no_generator", lambda world: ["--cfg", config_for(world, world / "absent", "absent.yaml"), *FAST],
     "holds no sequence (no sequence.yaml) and data.synth_config is not set"),
    ("synth_into_user_folder", lambda world: ("synth", ["--cfg", os.path.join(REPO, "configs", "synth", "demo.yaml"),
                                                        "--out", str(world / "user_folder")]), "holds no sequence"),
    ("synth_into_a_file", lambda world: ("synth", ["--cfg", os.path.join(REPO, "configs", "synth", "demo.yaml"),
                                                   "--out", str(world / "fit.yaml")]), "is not a directory"),
    ("synth_over_sequence", lambda world: ("synth", ["--cfg", os.path.join(REPO, "configs", "synth", "demo.yaml"),
                                                     "--out", str(world / "sequence")]), "pass --overwrite"),
    # sequences
    ("camera_all_zero", _broken_sequence("zero_camera", lambda s: save_npz(s / "camera.npz", mv=np.zeros((4, 4)))),
     "camera.npz"),
    ("camera_nan", _broken_sequence("nan_camera", lambda s: save_npz(
        s / "camera.npz", proj=np.full((4, 4), np.nan, np.float32))), "camera.npz: 'proj' has NaN/inf values"),
    ("camera_focal_too_small", _broken_sequence("focal", _proj_scaled_focal), "masks/"),
    ("camera_turned_away", _broken_sequence("away", _camera_turned_away), "camera.npz"),
    ("pose_nan", _broken_sequence("pose_nan", lambda s: save_npz(
        s / "body.npz", pose=np.full((4, 6), np.nan, np.float32))), "body.npz"),
    ("translation_inf", _broken_sequence("trans_inf", lambda s: save_npz(
        s / "body.npz", translation=np.full((4, 3), np.inf, np.float32))), "'translation' has NaN/inf values"),
    ("body_key_missing", _broken_sequence("body_key", lambda s: np.savez(
        s / "body.npz", shape=np.zeros(3), pose=np.zeros((4, 6)))), "body.npz: missing key 'global_rotation'"),
    ("depth_inf", _broken_sequence("depth_inf", lambda s: np.save(
        s / "depth" / "0001.npy", np.full((64, 64), np.inf, np.float32))), "depth/0001.npy"),
    ("depth_truncated", _broken_sequence("depth_cut", lambda s: truncate(s / "depth" / "0002.npy")),
     "depth/0002.npy"),
    ("depth_wrong_size", _broken_sequence("depth_size", lambda s: np.save(
        s / "depth" / "0000.npy", np.zeros((32, 64), np.float32))), "depth/0000.npy: shape"),
    ("frame_truncated", _broken_sequence("frame_cut", lambda s: truncate(s / "frames" / "0003.png")),
     "frames/0003.png"),
    ("mask_missing", _broken_sequence("mask_gone", lambda s: os.remove(s / "masks" / "0001.png")),
     "masks/0001.png: missing"),
    ("mask_wrong_size", _broken_sequence("mask_size", lambda s: shutil.copy(
        os.path.join(REPO, "docs", "synthetic_frame.png"), s / "masks" / "0000.png")), "masks/0000.png: size"),
    ("template_garbage", _broken_sequence("template", lambda s: (s / "template.obj").write_text("v 1 2\nf 1 2 9\n")),
     "template.obj"),
    ("metadata_format", _broken_sequence("format", lambda s: (s / "sequence.yaml").write_text(
        (s / "sequence.yaml").read_text().replace("ngdjax-sequence-1", "other-format"))), "format is 'other-format'"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing_outside(case, world, capsys, monkeypatch):
    name, setup, fragment = case
    if name == "render_unavailable" and nvdiffrast_available():
        pytest.skip("nvdiffrast runs here")
    argv = setup(world)
    command, argv = argv if isinstance(argv, tuple) else ("fit", argv)
    monkeypatch.chdir(world)  # a default run directory would land under world/outputs
    protected = {path: tree_hash(path) for path in (world / "sequence", world / "user_folder")}
    capsys.readouterr()
    code = synth_cli.main(argv) if command == "synth" else fit_cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) <= 5 and all(": " in line and not line[0].isspace() for line in lines), err  # a line a problem
    assert {path: tree_hash(path) for path in protected} == protected
    assert not (world / "outputs").exists()  # nothing was written for a refused run


def test_at_least_thirty_bad_inputs():
    assert len(BAD_INPUTS) >= 30


def test_resume_and_overwrite_together_is_a_usage_error(world, capsys):
    with pytest.raises(SystemExit) as stop:
        fit_cli.main(["--cfg", str(world / "fit.yaml"), "--resume", "--overwrite"])
    assert stop.value.code == 2
    assert "--resume and --overwrite exclude each other" in capsys.readouterr().err


def run_fit(world, out, *extra) -> int:
    return fit_cli.main(["--cfg", str(world / "fit.yaml"), "--out", str(out), *FAST, *extra])


def test_run_directory_is_owned_by_its_manifest(world, capsys):
    run = world / "owned"
    assert run_fit(world, run, "optim.epochs=1") == 0
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["state"] == "finished" and manifest["config"]["optim"]["epochs"] == 1
    assert manifest["command"][:3] == ["python", "-m", "experiments.fit"]
    # a finished run whose checkpoint/ was deleted is still a run: refused without a flag
    shutil.rmtree(run / "checkpoint")
    (run / "renders").mkdir(exist_ok=True)
    (run / "renders" / "stale.png").write_bytes(b"old render")
    config_before = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert run_fit(world, run, "optim.epochs=1") == 2
    assert "holds a finished run" in capsys.readouterr().err
    # --resume with a change to the state's shapes is refused, listing it; config.yaml is kept
    assert run_fit(world, run, "optim.epochs=1", "field.network.log2_table_size=12", "--resume") == 2
    err = capsys.readouterr().err
    assert "field.network.log2_table_size: 10 -> 12" in err
    assert (run / "config.yaml").read_text() == config_before
    # --overwrite removes every file of the previous run
    assert run_fit(world, run, "optim.epochs=1", "--overwrite") == 0
    assert not (run / "renders" / "stale.png").exists()
    assert json.loads((run / "run.json").read_text())["state"] == "finished"
    # a safe change on --resume is taken and recorded
    assert run_fit(world, run, "optim.epochs=2", "optim.checkpoint_every=2", "--resume") == 0
    manifest = json.loads((run / "run.json").read_text())
    assert any(line.startswith("optim.epochs: 1 -> 2") for line in manifest["resumed_with_changes"])
    assert len(manifest["history"]) == 1


def test_resume_refuses_a_changed_sequence(world, capsys):
    sequence = copy_sequence(world, "changing")
    config = config_for(world, sequence, "changing.yaml")
    run = world / "changing_run"
    assert fit_cli.main(["--cfg", config, "--out", str(run), *FAST, "optim.epochs=1"]) == 0
    save_npz(sequence / "body.npz", translation=np.zeros((4, 3), np.float32) + 0.01)
    capsys.readouterr()
    assert fit_cli.main(["--cfg", config, "--out", str(run), *FAST, "optim.epochs=2", "--resume"]) == 2
    assert "--resume on a changed sequence" in capsys.readouterr().err


def test_synth_overwrite_replaces_the_old_sequence(world):
    target = world / "synth_target"
    small = ["n_frames=2", "resolution=[32, 32]", "target_edge_length=0.04"]
    config = os.path.join(REPO, "configs", "synth", "demo.yaml")
    assert synth_cli.main(["--cfg", config, "--out", str(target), *small]) == 0
    (target / "gt_meshes" / "0007.obj").write_text("stale")
    assert synth_cli.main(["--cfg", config, "--out", str(target), *small, "--overwrite"]) == 0
    assert not (target / "gt_meshes" / "0007.obj").exists()
    assert sorted(os.listdir(target / "frames")) == ["0000.png", "0001.png"]


def test_generation_resumes_an_interrupted_write_of_its_own(world):
    target = world / "interrupted"
    target.mkdir()
    (target / ".ngdjax-writing").write_text("")
    (target / "frames").mkdir()
    (target / "frames" / "0000.png").write_bytes(b"half")  # a write we never finished
    small = ["n_frames=2", "resolution=[32, 32]", "target_edge_length=0.04"]
    config = os.path.join(REPO, "configs", "synth", "demo.yaml")
    assert synth_cli.main(["--cfg", config, "--out", str(target), *small]) == 0
    assert (target / "sequence.yaml").exists() and not (target / ".ngdjax-writing").exists()


def test_non_finite_fit_stops_within_an_epoch_and_keeps_the_last_good_checkpoint(world, capsys):
    run = world / "diverging"
    capsys.readouterr()
    # the network switches on after 2 warm-up epochs with an absurd learning rate: epoch 2 diverges
    code = run_fit(world, run, "optim.epochs=4", "optim.net.lr=[1.0e+30, 1.0e+30]")
    err = capsys.readouterr().err
    assert code == 1
    assert "geometry stage: non-finite values at epoch 2" in err, err
    assert "parameter group 'net'" in err and "frame " in err
    assert not (run / "meshes").exists() and not (run / "metrics.json").exists()
    latest = json.loads((run / "checkpoint" / "latest.json").read_text())
    assert latest["epoch"] == 2  # the checkpoint of the last finite epoch
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["state"] == "failed" and "non-finite" in manifest["error"]
    # the last good checkpoint resumes: a sane learning rate (safe to change) finishes the fit
    assert run_fit(world, run, "optim.epochs=4", "--resume") == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["chamfer_x1e3"]["mean"])
    assert metrics["chamfer_x1e3"]["mean"] < metrics["template_chamfer_x1e3"]["mean"]


KILL_FAST = ["field.network.log2_table_size=10", "field.network.n_levels=8", "optim.warmup_epochs=1", "optim.checkpoint_every=1",
             "optim.epochs=4", "remesh.epochs=[1]", "remesh.edge_length=[0.02, 0.02]", "remesh.max_vertices=900",
             "texture.resolution=64", "texture.epochs=3", "texture.warmup_epochs=1", "texture.network.log2_table_size=10",
             "texture.network.n_levels=4", "output.renders=false", "render=jax", "optim.static.decay_steps=100",
             "optim.net.decay_steps=100"]


def _driver(world, point: str, n: int, out, *extra):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(world / "jax_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    command = [sys.executable, os.path.join(REPO, "tests", "fault_driver.py"), point, str(n), "--",
               "--cfg", str(world / "fit.yaml"), "--out", str(out), *KILL_FAST, *extra]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def _outputs(run) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("seconds")
    meshes = {name: (run / "meshes" / name).read_bytes() for name in sorted(os.listdir(run / "meshes"))}
    return {"metrics": metrics, "meshes": meshes, "canonical": (run / "canonical.obj").read_bytes()}


def test_killed_anywhere_resumes_to_the_uninterrupted_result(world, caplog):
    """One uninterrupted run, then one run killed at four points in a chain (each kill resumed by
    the next process): right after the remesh event, inside a checkpoint write, mid-epoch, and in
    the appearance stage; the points come from a seeded generator, the order makes every one fire."""
    whole = world / "kill_reference"
    rng = np.random.default_rng(19)
    # 4 epochs of 4 frames, a checkpoint after each, the remesh after epoch 1: the remesh kill leaves
    # epoch 0's checkpoint, so the next process saves after epochs 1, 2, 3 and dies in save 1-3; the
    # one after it then has at least one epoch to go and dies at its step 2-3; 12 appearance steps.
    points = [("remesh", 1), ("checkpoint", int(rng.integers(1, 4))), ("step", int(rng.integers(2, 4))),
              ("appearance", int(rng.integers(1, 13)))]
    run = world / "killed"
    # The uninterrupted run in this process, through the driver's own call (run_fit with the same
    # config): it reuses the steps the tests above compiled, and a subprocess gives the same bytes.
    # It runs in a thread while the chain's processes run (its own directory, nothing shared): the
    # two compile on the two cores at once instead of one after the other.
    with caplog.at_level(logging.INFO, logger="ngdjax"), ThreadPoolExecutor(1) as pool:
        reference = pool.submit(run_fit_in_process, load_config(str(world / "fit.yaml"), FitConfig, KILL_FAST),
                                str(whole), progress=False)
        for point, n in points:
            killed = _driver(world, point, n, run, "--resume")
            assert killed.returncode == -9, (point, n, killed.returncode, killed.stderr[-2000:])
        resumed = _driver(world, "none", 0, run, "--resume")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        reference.result()  # re-raises the uninterrupted run's error, if any
    assert "remesh event 0" in caplog.text  # the schedule has a remesh event
    assert _outputs(run) == _outputs(whole), points
