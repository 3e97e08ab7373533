"""claim_output_dir: the one rule by which experiments.suite and experiments.fit_many take their
--out (new, empty, or holding their own manifest of their own format); a refusal is one line and
leaves the directory as it was."""

import json
import os

import pytest

from ngdjax.errors import InputError
from ngdjax.run_dir import claim_output_dir

RECORD = {"format": "ngdjax-test-1", "command": ["python", "-m", "x"]}


def _claim(out, record=RECORD):
    claim_output_dir(str(out), "test_run.json", record, "test output")


def _snapshot(out):
    return {name: (out / name).read_bytes() for name in sorted(os.listdir(out))}


def test_a_new_or_empty_directory_is_claimed_and_its_manifest_written(tmp_path):
    for out in (tmp_path / "new" / "nested", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        _claim(out)
        assert os.listdir(out) == ["test_run.json"]
        assert json.loads((out / "test_run.json").read_text()) == RECORD


def test_our_own_earlier_output_is_claimed_again_and_kept(tmp_path):
    out = tmp_path / "out"
    _claim(out)
    (out / "case").mkdir()
    (out / "case" / "result.txt").write_text("a finished case")
    rerun = dict(RECORD, command=["python", "-m", "x", "--again"])
    _claim(out, rerun)
    assert json.loads((out / "test_run.json").read_text()) == rerun  # the manifest names the latest command
    assert (out / "case" / "result.txt").read_text() == "a finished case"  # nothing of ours is removed


@pytest.mark.parametrize("manifest, fragment", [
    (None, "not empty and holds no test output (test_run.json)"),  # a user's folder
    (b"{not json", "not an ngdjax test output manifest (format ngdjax-test-1)"),  # a torn or foreign file
    (b'["a list"]', "not an ngdjax test output manifest"),
    (b'{"format": "ngdjax-other-1"}', "not an ngdjax test output manifest"),  # another command's output
    (b'{"command": []}', "not an ngdjax test output manifest"),  # no format at all
])
def test_a_folder_that_is_not_ours_is_refused_with_one_line_and_left_alone(tmp_path, manifest, fragment):
    out = tmp_path / "folder"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    if manifest is not None:
        (out / "test_run.json").write_bytes(manifest)
    before = _snapshot(out)
    with pytest.raises(InputError) as refused:
        _claim(out)
    assert len(refused.value.problems) == 1 and "\n" not in refused.value.problems[0]
    assert fragment in refused.value.problems[0], refused.value.problems
    assert _snapshot(out) == before


def test_a_file_is_refused(tmp_path):
    out = tmp_path / "a_file"
    out.write_text("data")
    with pytest.raises(InputError, match="exists and is not a directory"):
        _claim(out)
    assert out.read_text() == "data"
