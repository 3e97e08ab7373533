"""experiments.fit_many through a real Ray instance (docs/fit_many.md).

One Ray head (``ray start --head``, 2 CPUs, no GPU) serves the module, joined with ``--address``
(its workers are reused from one command to the next). Three tiny sequences (those of
tests/test_faults.py) and one with a broken camera are fitted in one command, while a thread
SIGKILLs the worker fitting the third one after its first checkpoint: the three give the metrics
and meshes of three sequential ``experiments.fit`` runs (the killed one resumed, attempts = 2),
the broken one is reported failed with its one-line error, and a re-run does no work. What
costs time is JAX compiling the fit once per process: once for the reference fits, once in each of
the two workers (a worker that ran a fit before compiles nothing again).
"""

import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from experiments import fit as fit_cli
from experiments import fit_many as fit_many_cli
from ngdjax.data import synthetic
from ngdjax.fit_many import address_problem
from test_faults import FAST, TINY, save_npz, tree_hash

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tests/test_faults.py's short fit with the network off through its three epochs: each worker
# compiles one step (the scheduling, the kill and the resume are what is tested here; resuming
# with the network on is tests/test_faults.py's kill chain)
FIT = [*FAST, "optim.warmup_epochs=3"]
NAMES = ("walk_a", "walk_b", "walk_c")  # walk_c's worker is killed
KILLED = "walk_c"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three tiny sequences (seeds 5, 6, 7), one with a NaN camera, and a fit config."""
    root = tmp_path_factory.mktemp("fit_many")
    for seed, name in zip((5, 6, 7), NAMES):
        synthetic.write(synthetic.generate(dataclasses.replace(TINY, seed=seed)), str(root / name))
    shutil.copytree(root / "walk_a", root / "broken")
    save_npz(root / "broken" / "camera.npz", proj=np.full((4, 4), np.nan, np.float32))
    (root / "fit.yaml").write_text(f"name: tiny\ndata:\n  sequence: {root / 'walk_a'}\n")
    return root


@pytest.fixture(scope="module")
def sequential(world):
    """{name: run directory} of three sequential ``experiments.fit`` runs (in this process: one
    compilation serves the three)."""
    runs = {}
    for name in NAMES:
        config = world / f"{name}.yaml"
        config.write_text(f"name: tiny\ndata:\n  sequence: {world / name}\n")
        runs[name] = world / "sequential" / name
        assert fit_cli.main(["--cfg", str(config), "--out", str(runs[name]), *FIT]) == 0
    return runs


@pytest.fixture(scope="module")
def ray_address(world):
    """A Ray head of 2 CPUs on 127.0.0.1 for the module (its session files in a short temporary
    directory: Ray's Unix sockets), stopped with its process group at the end."""
    root = world
    port, temp = free_port(), tempfile.mkdtemp(prefix="ngdjax-ray-")
    # Ray's token authentication, its token in the environment (nothing written under ~/.ray)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    saved = {key: os.environ.get(key) for key in auth}
    os.environ.update(auth)
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    started = time.perf_counter()
    with open(root / "ray_head.log", "w") as log:
        head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                                 "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                                stdout=log, stderr=log, start_new_session=True)
    while address_problem(f"127.0.0.1:{port}"):
        assert head.poll() is None and time.perf_counter() - started < 60, (root / "ray_head.log").read_text()
        time.sleep(0.2)
    print(f"ray head up in {time.perf_counter() - started:.1f} s")
    yield f"127.0.0.1:{port}"
    os.killpg(head.pid, signal.SIGKILL)  # the head's processes; its workers exit when their raylet is gone
    head.wait(timeout=60)
    shutil.rmtree(temp, ignore_errors=True)
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def kill_after_first_checkpoint(run_dir, seen: dict, timeout_s: float = 240) -> None:
    """Wait until the fit in ``run_dir`` has a checkpoint but no metrics yet, then SIGKILL the
    worker process of its attempt (its pid from RUN.attempts.jsonl); ``seen`` gets the epoch."""
    latest = os.path.join(run_dir, "checkpoint", "latest.json")
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if os.path.isfile(latest) and not os.path.isfile(os.path.join(run_dir, "metrics.json")):
            with open(run_dir + ".attempts.jsonl") as file:
                pid = json.loads(file.read().splitlines()[-1])["pid"]
            with open(latest) as file:
                seen["epoch"] = json.load(file)["epoch"]
            os.kill(pid, signal.SIGKILL)
            seen["pid"] = pid
            return
        time.sleep(0.01)


@pytest.fixture(scope="module")
def many(world, sequential, ray_address):
    """One fit_many command over the three sequences and the broken one, the third one's worker
    killed mid-fit: (exit code, summary rows by name, output directory, what the killer saw)."""
    root = world
    out = root / "many"
    seen = {}
    killer = threading.Thread(target=kill_after_first_checkpoint, args=(str(out / KILLED), seen), daemon=True)
    killer.start()
    started = time.perf_counter()
    code = fit_many_cli.main(["--cfg", str(root / "fit.yaml"), *(str(root / name) for name in NAMES),
                              str(root / "broken"), "--out", str(out), "--address", ray_address, *FIT])
    print(f"fit_many: 4 fits in {time.perf_counter() - started:.1f} s")
    killer.join(timeout=1)
    rows = {row["name"]: row for row in json.loads((out / "summary.json").read_text())}
    return code, rows, out, seen


def outputs_of(run) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("seconds")
    meshes = {name: (run / "meshes" / name).read_bytes() for name in sorted(os.listdir(run / "meshes"))}
    return {"metrics": metrics, "meshes": meshes}


def test_fits_give_the_metrics_of_sequential_runs(many, sequential):
    code, rows, out, _ = many
    assert code == 1  # the broken sequence failed
    for name in NAMES:
        assert rows[name]["status"] == "ok", rows[name]
        fitted, reference = outputs_of(out / name), outputs_of(sequential[name])
        assert fitted == reference, name  # the same meshes, byte for byte, and the same metrics
        assert rows[name]["metrics"]["chamfer_x1e3"] == reference["metrics"]["chamfer_x1e3"]["mean"]
        assert rows[name]["device"] == "cpu" and rows[name]["seconds"] > 0
    assert [rows[name]["attempts"] for name in NAMES[:2]] == [1, 1]
    assert "| walk_a | ok |" in (out / "summary.md").read_text()


def test_a_killed_worker_is_retried_and_its_fit_resumes(many, sequential):
    _, rows, out, seen = many
    assert seen.get("epoch", 0) >= 1, seen  # killed with a checkpoint to resume from, before the metrics
    assert rows[KILLED]["attempts"] == 2 and rows[KILLED]["status"] == "ok"
    pids = [json.loads(line)["pid"] for line in (out / f"{KILLED}.attempts.jsonl").read_text().splitlines()]
    assert pids[0] == seen["pid"] and pids[1] != pids[0]
    manifest = json.loads((out / KILLED / "run.json").read_text())
    assert manifest["state"] == "finished" and [entry["state"] for entry in manifest["history"]] == ["running"]
    assert "resuming from" in (out / f"{KILLED}.log").read_text()
    assert outputs_of(out / KILLED) == outputs_of(sequential[KILLED])


def test_a_sequence_with_bad_input_fails_alone_with_its_error(many):
    _, rows, out, _ = many
    row = rows["broken"]
    assert row["status"] == "failed" and row["attempts"] == 1 and row["metrics"] == {}
    assert "camera.npz: 'proj' has NaN/inf values" in row["error"] and "\n" not in row["error"]
    assert not (out / "broken").exists()  # refused before its run directory was taken


def test_a_rerun_does_no_work(many, world, ray_address):
    root = world
    _, _, out, _ = many
    runs = {name: tree_hash(out / name) for name in NAMES}
    attempts = {name: (out / f"{name}.attempts.jsonl").read_text() for name in NAMES}
    code = fit_many_cli.main(["--cfg", str(root / "fit.yaml"), *(str(root / name) for name in NAMES),
                              "--out", str(out), "--address", ray_address, *FIT])
    assert code == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [(row["name"], row["status"], row["attempts"]) for row in rows] == [(name, "skipped", 0) for name in NAMES]
    assert {name: tree_hash(out / name) for name in NAMES} == runs
    assert {name: (out / f"{name}.attempts.jsonl").read_text() for name in NAMES} == attempts


@pytest.mark.parametrize("case", ["unreachable_address", "no_sequences", "listed_twice", "same_name",
                                  "not_a_sequence", "too_many_gpus", "suite_and_sequences"])
def test_bad_arguments_exit_2_with_one_line(case, world, ray_address, capsys):
    root = world
    a, out = str(root / "walk_a"), root / f"refused_{case}"
    (root / "other").mkdir(exist_ok=True)
    twin = root / "other" / "walk_a"
    if not twin.exists():
        shutil.copytree(a, twin)
    argv, fragment = {
        "unreachable_address": (["--cfg", str(root / "fit.yaml"), a, "--address", "127.0.0.1:1"],
                                "--address 127.0.0.1:1: no Ray cluster answers there"),
        "no_sequences": (["--cfg", str(root / "fit.yaml")], "no sequences given"),
        "listed_twice": (["--cfg", str(root / "fit.yaml"), a, a], f"{a}: listed twice"),
        "same_name": (["--cfg", str(root / "fit.yaml"), a, str(twin)], "has the same name as"),
        "not_a_sequence": (["--cfg", str(root / "fit.yaml"), str(root / "other")], "not a sequence directory"),
        "too_many_gpus": (["--cfg", str(root / "fit.yaml"), a, "--address", ray_address, "--gpus-per-fit", "1"],
                          "--gpus-per-fit 1: no node of the Ray cluster has that many GPUs (the most is 0)"),
        "suite_and_sequences": (["--suite", os.path.join(REPO, "configs", "suite", "cpu.yaml"), a],
                                "--suite runs a suite's cases"),
    }[case]
    capsys.readouterr()
    assert fit_many_cli.main([*argv, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert not out.exists()


@pytest.mark.parametrize("content", ["other_files", "other_format"])
def test_an_output_folder_not_ours_is_refused_and_left_alone(content, world, ray_address, capsys):
    """--out must be new, empty, or fit_many's own earlier output (ngdjax.run_dir.claim_output_dir):
    a folder of other files, or another command's manifest, is one line, exit 2, nothing written."""
    out = world / f"not_ours_{content}"
    out.mkdir(exist_ok=True)
    (out / "notes.txt").write_text("keep me")
    if content == "other_format":  # a manifest of that name, not fit_many's format
        (out / "fit_many.json").write_text(json.dumps({"format": "ngdjax-suite-1", "suite": "s.yaml"}))
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    code = fit_many_cli.main(["--cfg", str(world / "fit.yaml"), str(world / "walk_a"), "--out", str(out),
                              "--address", ray_address, *FIT])
    lines = capsys.readouterr().err.strip().splitlines()
    fragment = ("not empty and holds no fit_many output (fit_many.json)" if content == "other_files"
                else "not an ngdjax fit_many output manifest (format ngdjax-fit-many-1)")
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_suite_parallel_refuses_an_unreachable_cluster_before_writing(world, capsys):
    from experiments import suite as suite_cli

    out = world / "refused_suite"
    capsys.readouterr()
    code = suite_cli.main([os.path.join(REPO, "configs", "suite", "cpu.yaml"), "--out", str(out), "--parallel",
                           "--address", "127.0.0.1:1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--address 127.0.0.1:1: no Ray cluster answers there" in lines[0], lines
    assert not out.exists()
    with pytest.raises(SystemExit) as usage:
        suite_cli.main([os.path.join(REPO, "configs", "suite", "cpu.yaml"), "--out", str(out), "--address", "auto"])
    assert usage.value.code == 2 and "--address and --gpus-per-fit need --parallel" in capsys.readouterr().err
