"""ngdjax.io.background_writes: every submitted file is written when the block ends, in any order the
threads take them; a write's failure is raised then, after the other writes have finished."""

import numpy as np
import pytest

from ngdjax.io import background_writes, read_image, write_image, write_text


def test_every_write_is_done_when_the_block_ends(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(20)]
    with background_writes(workers=4, max_pending=3) as submit:  # fewer slots than writes: submit waits
        for i, image in enumerate(images):
            submit(write_image, str(tmp_path / f"{i:02d}.png"), image)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(read_image(str(tmp_path / f"{i:02d}.png")), image)
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_failed_write_raises_after_the_others_finish(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    with pytest.raises(OSError):
        with background_writes(workers=2) as submit:
            submit(write_text, str(tmp_path / "blocker" / "x.txt"), "never written")
            for i in range(10):
                submit(write_text, str(tmp_path / f"{i}.txt"), str(i))
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == sorted(f"{i}.txt" for i in range(10))


def test_an_error_in_the_block_wins_but_the_writes_finish(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with background_writes(workers=2) as submit:
            submit(write_text, str(tmp_path / "a.txt"), "written")
            1 / 0
    assert (tmp_path / "a.txt").read_text() == "written"
