"""``experiments.suite`` end to end on a two-case suite of tiny sequences (an artist's t-shirt on
captured motion, and the same t-shirt turning on the parametric motion: one template, so the fit
compiles once; the network stays off through the two epochs, one step variant): every case
generated, fitted and scored into suite.json,
suite.md and suite.png; a re-run does no work; a failing case is a row; bad suites exit 2 before
anything is written."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from experiments import suite as suite_cli
from ngdjax import suite
from ngdjax.metrics import SPLIT_METRICS
from ngdjax.suite_report import comparison_table, markdown_table, missed_targets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT = """name: tiny
data: {sequence: unused}
field: {network: {log2_table_size: 10, n_levels: 8}}
optim: {epochs: 2, warmup_epochs: 2, checkpoint_every: 2, static: {decay_steps: 100}, net: {decay_steps: 100}}
remesh: {enabled: false}
texture: {enabled: false}
render: jax
"""
SUITE = f"""fit: fit.yaml
synth: {ROOT}/configs/synth/demo.yaml
synth_set:
  n_frames: 3
  resolution: [64, 64]
  target_edge_length: 0.03
  garment: tshirt
  outfit: {{folder: {ROOT}/ngdjax/data/garments/female_casualsuit01, piece: top}}
cases:
  - name: turning
  - name: walking
    synth_set:
      motion: {{bvh: {ROOT}/ngdjax/data/mocap/131_01.bvh, bvh_start_s: 4.4}}
"""


def _write_suite(directory, text=SUITE):
    (directory / "fit.yaml").write_text(FIT)
    (directory / "suite.yaml").write_text(text)
    return str(directory / "suite.yaml")


@pytest.fixture(scope="module")
def finished_suite(tmp_path_factory):
    """(suite file, output directory) of the two-case suite, run once."""
    directory = tmp_path_factory.mktemp("suite")
    path = _write_suite(directory)
    out = directory / "out"
    assert suite_cli.main([path, "--out", str(out)]) == 0
    return path, out


def test_suite_writes_a_row_per_case_a_table_and_a_contact_sheet(finished_suite):
    _, out = finished_suite
    rows = json.loads((out / "suite.json").read_text())
    assert [row["name"] for row in rows] == ["turning", "walking"]
    for row in rows:
        assert row["status"] == "ok"
        for name in ("chamfer_x1e3", "normal_consistency", "fscore_1cm", "mask_iou", *SPLIT_METRICS):
            assert np.isfinite(row[name]) and np.isfinite(row[f"template_{name}"]), (row["name"], name)
        assert row["difficulty"]["static_rms_m"] > 0 and row["difficulty"]["fold_amplitude_m"] > 0
        assert set(row["seconds"]) >= {"generate", "geometry", "outputs"} and row["device"]
        assert row["synth"]["n_frames"] == 3 and row["fit"]["optim"]["epochs"] == 2
        with Image.open(os.path.join(row["run_dir"], "renders", "turntable.png")) as turntable:
            assert turntable.width > 4 * turntable.height  # eight views of the fit above the truth's
    assert rows[1]["synth"]["outfit"]["piece"] == "top" and rows[1]["synth"]["motion"]["bvh"].endswith("131_01.bvh")
    assert rows[0]["difficulty"] != rows[1]["difficulty"]  # two sequences
    table = (out / "suite.md").read_text()
    assert "| turning | ok |" in table and "| walking | ok |" in table
    with Image.open(out / "suite.png") as sheet:
        assert sheet.height >= 2 * 64 and sheet.width > sheet.height
    assert sorted(os.listdir(out)) == ["runs", "sequences", "suite.json", "suite.md", "suite.png", suite.MANIFEST]


def test_a_rerun_does_no_work(finished_suite, monkeypatch):
    path, out = finished_suite
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix in (".obj", ".png", ".npz")
              and "suite.png" not in p.name}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished case was generated or fitted again")

    monkeypatch.setattr(suite.synthetic, "generate", refuse)
    monkeypatch.setattr("ngdjax.pipeline.run_fit", refuse)
    assert suite_cli.main([path, "--out", str(out)]) == 0
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert [row["status"] for row in json.loads((out / "suite.json").read_text())] == ["ok", "ok"]
    assert suite_cli.main([path, "--out", str(out), "--cases", "walking"]) == 0  # the other finished case is listed too
    assert [row["name"] for row in json.loads((out / "suite.json").read_text())] == ["turning", "walking"]


def test_a_failing_case_is_a_row_with_its_error(finished_suite, monkeypatch):
    path, out = finished_suite
    (case,) = suite.select_cases(suite.load_suite(path, str(out), ("synth.seed=9",)), ["turning"], path)  # generated anew

    def broken(config, progress=None):
        raise RuntimeError("the generator broke\nsecond line")

    monkeypatch.setattr(suite.synthetic, "generate", broken)
    row = suite.run_case(case, progress=False)
    assert row["status"] == "failed" and row["error"] == "RuntimeError: the generator broke"
    assert "| turning | failed: RuntimeError: the generator broke |" in markdown_table([row])


def _in_walking(line):
    """An edit adding ``line`` to the walking case's synth_set."""
    return lambda text: text.replace("bvh_start_s: 4.4}", "bvh_start_s: 4.4}\n      " + line)


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("name: walking", "name: turning"), "the name 'turning' is used twice"),
    (lambda text: text + "extra: 1\n", "unknown key 'extra'"),
    (_in_walking("outfit: {piece: hat}"), "hat"),
    (_in_walking("outfit: {folder: nowhere}"), "nowhere"),
    (_in_walking("garment: cape"), "cape"),
])
def test_bad_suites_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, edit, message):
    path = _write_suite(tmp_path, edit(SUITE))
    out = tmp_path / "out"
    assert suite_cli.main([path, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0] and "Traceback" not in error[0], error
    assert not out.exists()


def test_unknown_case_and_foreign_output_exit_2(tmp_path, capsys):
    path = _write_suite(tmp_path)
    assert suite_cli.main([path, "--out", str(tmp_path / "out"), "--cases", "turning,hat"]) == 2
    assert "no case named hat" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert suite_cli.main([path, "--out", str(foreign)]) == 2
    assert "holds no suite" in capsys.readouterr().err and os.listdir(foreign) == ["notes.txt"]


def _scored(name: str, whole: float, seen: float, unseen: float | None, nc_gain: float, iou: float) -> dict:
    """A suite.json row with the template at Chamfer 1.0 and NC 0.8 and the fit's values given."""
    return {"name": name, "status": "ok", "chamfer_x1e3": whole, "template_chamfer_x1e3": 1.0,
            "chamfer_seen_x1e3": seen, "template_chamfer_seen_x1e3": 1.0, "chamfer_unseen_x1e3": unseen,
            "template_chamfer_unseen_x1e3": None if unseen is None else 1.0, "unseen_fraction": 0.0 if unseen is None else 0.4,
            "normal_consistency_seen": 0.8 + nc_gain, "template_normal_consistency_seen": 0.8, "mask_iou": iou}


def test_targets_and_the_comparison_of_variants():
    turning = _scored("turns", 0.2, 0.15, None, 0.05, 0.97)  # whole 1/5, seen 1/6.7: every target met
    assert missed_targets(turning) == []
    assert missed_targets(dict(turning, chamfer_x1e3=0.3)) == ["whole"]  # 1/3.3 misses 1/4 where it turns round
    never_turns = _scored("never", 0.3, 0.15, 0.7, 0.01, 0.95)  # 1/3.3 meets 1/2.5 where the back is never seen
    assert missed_targets(never_turns) == ["never seen", "NC seen", "IoU"]
    table = comparison_table([("a", [turning, never_turns]), ("b", [dict(turning, chamfer_x1e3=0.4)])])
    lines = table.splitlines()
    assert "| turns | a | 1/5.00 | 1/6.67 | - | +0.050 | 0.970 | - |" in lines
    assert "| never | b | not finished |||||" in lines
    # The summary covers the cases both variants finished, weighted equally: "turns" only.
    assert any(line.startswith("| **all 1 (equal weights)** | b | 1/2.50 |") for line in lines)
    assert any(line.startswith("| **all 1 (equal weights)** | a | 1/5.00 |") for line in lines)
