"""Typed configs: YAML + dotted overrides into frozen dataclasses; every bad key is named."""

import dataclasses
from typing import Literal

import pytest

from ngdjax.config import load_config, to_dict
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
