"""Every ``experiments.*`` entry point answers --help with its usage (exit 0) and missing or
unknown arguments with its usage and exit 2, never a traceback."""

import importlib
import os

import pytest

MODULES = ["bench", "convert", "custom_step", "evaluate", "fit", "fit_many", "gradcheck", "suite", "synth", "validate"]


def test_every_entry_point_is_listed():
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
    found = sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py") and name != "__init__.py")
    assert found == sorted(MODULES)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("argv, code", [(["--help"], 0), ([], 2), (["--bogus"], 2)])
def test_usage_and_exit_code(module, argv, code, capsys):
    main = importlib.import_module(f"experiments.{module}").main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code
    out, err = capsys.readouterr()
    assert f"usage: python -m experiments.{module}" in (out if code == 0 else err)
    assert "Traceback" not in out + err
