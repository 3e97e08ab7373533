"""Typed configs: YAML + dotted overrides into frozen dataclasses; every bad key is named."""

import dataclasses
from typing import Literal

import pytest

from ngdjax.config import load_config, path_field, to_dict
from ngdjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    steps: int = 10


@dataclasses.dataclass(frozen=True)
class Example:
    name: str
    mode: Literal["a", "b"] = "a"
    size: tuple[int, int] = (4, 4)
    path: str | None = None
    optim: Optim = Optim()


@dataclasses.dataclass(frozen=True)
class WithPaths:
    name: str
    file: str | None = path_field(None)
    other: str | None = path_field(None)
    optim: Optim = Optim()


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_yaml_and_overrides(tmp_path):
    path = _write(tmp_path, "name: x\nsize: [8, 16]\noptim:\n  lr: 1e-2\n")
    config = load_config(path, Example, ["optim.steps=20", "mode=b", "optim.lr=3"])
    assert config == Example(name="x", mode="b", size=(8, 16), optim=Optim(lr=3.0, steps=20))
    assert to_dict(config)["size"] == [8, 16]


def test_every_problem_is_named(tmp_path):
    path = _write(tmp_path, "nmae: x\nsize: [8]\noptim:\n  steps: many\n  lrr: 1\n")
    with pytest.raises(InputError) as error:
        load_config(path, Example, ["mode=c"])
    text = str(error.value)
    for expected in ("unknown key 'nmae'", "missing key 'name'", "'size' must have 2 items",
                     "'optim.steps' must be int", "unknown key 'optim.lrr'", "'mode' is 'c'"):
        assert expected in text, expected
    with pytest.raises(InputError, match="expected key=value"):
        load_config(path, Example, ["justakey"])
    with pytest.raises(InputError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"), Example)


def test_paths_resolve_from_the_config_file_and_overrides_from_the_current_directory(tmp_path, monkeypatch):
    from ngdjax.fit_config import FitConfig

    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "fit.yaml"
    path.write_text("name: x\ndata:\n  sequence: ../data/seq\n  synth_config: synth/demo.yaml\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(str(path), FitConfig)
    assert config.data.sequence == str(tmp_path / "data" / "seq")
    assert config.data.synth_config == str(folder / "synth" / "demo.yaml")
    config = load_config(str(path), FitConfig, ["data.sequence=mine"])
    assert config.data.sequence == str(elsewhere / "mine")


def test_range_problems_name_the_override_and_renamed_keys_point_to_the_new_name(tmp_path):
    from ngdjax.fit_config import FitConfig

    path = _write(tmp_path, "name: x\ndata:\n  sequence: s\noptim:\n  epochs: 0\n")
    with pytest.raises(InputError) as error:
        load_config(path, FitConfig, ["optim.checkpoint_every=0", "texture.lr_net=[1, 1]", "field.network.hidden=[0]"])
    lines = error.value.problems
    assert f"{path}: 'optim.epochs' must be >= 1, got 0" in lines
    assert "override 'optim.checkpoint_every=0': 'optim.checkpoint_every' must be >= 1, got 0" in lines
    assert any("unknown key 'texture.lr_net' (renamed to 'texture.net.lr')" in line for line in lines)
    assert any("hidden" in line for line in lines) and len(lines) == 4


def test_a_file_extends_another_key_by_key_with_paths_from_each_file(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "defaults.yaml").write_text("name: base\nfile: data/x\noptim:\n  lr: 1e-2\n  steps: 5\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base/defaults.yaml\nname: child\nother: y\noptim:\n  steps: 7\n")
    config = load_config(str(child), WithPaths, ["optim.lr=3"])
    assert config == WithPaths(name="child", file=str(base / "data" / "x"), other=str(tmp_path / "y"),
                               optim=Optim(lr=3.0, steps=7))
    (base / "defaults.yaml").write_text("name: base\noptim:\n  stepz: 5\n")
    with pytest.raises(InputError, match=r"defaults.yaml: unknown key 'optim.stepz'"):  # named in its own file
        load_config(str(child), WithPaths)


@pytest.mark.parametrize("text, message", [
    ("extends: missing.yaml\nname: x\n", "missing.yaml: config file not found (extended by"),
    ("extends: c.yaml\nname: x\n", "makes a cycle"),
    ("extends: [a, b]\nname: x\n", "'extends' must be the path of a config file"),
])
def test_bad_extends_is_one_line(tmp_path, text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as error:
        load_config(_write(tmp_path, text), Example)
    assert len(error.value.problems) == 1


def test_shipped_fit_configs_load_and_the_defaults_hold_no_data():
    """Every fit config under configs/ (not the synthetic or suite ones) loads; the two defaults name
    no sequence (a config extending them does), and the method's configs use none of our priors."""
    import glob
    import os

    from ngdjax.fit_config import FitConfig, LossConfig

    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    paths = sorted(glob.glob(os.path.join(root, "*.yaml")) + glob.glob(os.path.join(root, "method", "*.yaml")))
    assert len(paths) >= 10
    for path in paths:
        if os.path.basename(path).startswith("default_"):
            with pytest.raises(InputError, match="data"):
                load_config(path, FitConfig)
            load_config(path, FitConfig, ["data.sequence=somewhere"])
            continue
        config = load_config(path, FitConfig)
        if os.sep + "method" + os.sep in path:
            field = config.field
            assert (field.smooth_modes, field.vertical_shift, field.body_offset_scale) == (0, False, False), path
            assert config.remesh.enabled, path
            assert config.loss.jacobian_smoothness == 0.0 and config.loss.jacobian == LossConfig().jacobian, path
