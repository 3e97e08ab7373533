"""write_sequence -> load_sequence round trip, and loading refuses invalid sequences."""

import numpy as np
import pytest

from ngdjax import procedural
from ngdjax.data.loader import load_sequence, write_sequence
from ngdjax.errors import InputError


def _arrays(n_frames=3, size=(12, 16)):
    rng = np.random.default_rng(0)
    vertices, faces = procedural.garment(300)
    masks = rng.random((n_frames,) + size) > 0.5
    return dict(
        frames=[0, 2, 5][:n_frames], images=rng.integers(0, 255, (n_frames,) + size + (3,), dtype=np.uint8),
        masks=masks, occluders=~masks, diffuse=rng.random((n_frames,) + size).astype(np.float32),
        depth=rng.random((n_frames,) + size).astype(np.float32), mv=np.eye(4), proj=np.tile(np.eye(4), (n_frames, 1, 1)),
        shape=np.zeros(0), pose=rng.normal(size=(n_frames, 192)), global_rotation=rng.normal(size=(n_frames, 3)),
        translation=rng.normal(size=(n_frames, 3)), body_model="anny", template_vertices=vertices,
        template_faces=faces, gt_meshes=[(vertices + i, faces) for i in range(n_frames)],
    )


def test_round_trip(tmp_path):
    arrays = _arrays()
    write_sequence(str(tmp_path), **arrays)
    sequence = load_sequence(str(tmp_path))
    assert sequence.frames == [0, 2, 5] and sequence.resolution == (12, 16) and sequence.n_frames == 3
    np.testing.assert_array_equal(sequence.images, arrays["images"])
    np.testing.assert_array_equal(sequence.masks, arrays["masks"])
    np.testing.assert_array_equal(sequence.occluders, arrays["occluders"])
    np.testing.assert_allclose(sequence.diffuse, arrays["diffuse"], atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(sequence.depth, arrays["depth"])
    np.testing.assert_allclose(sequence.pose, arrays["pose"], rtol=1e-6)
    assert sequence.mv.shape == (3, 4, 4) and sequence.shape.shape == (3, 0)
    np.testing.assert_allclose(sequence.template_vertices, arrays["template_vertices"], atol=1e-6)
    np.testing.assert_array_equal(sequence.template_faces, arrays["template_faces"])
    assert sequence.gt_mesh_paths[2].endswith("gt_meshes/0005.obj")
    assert not list(tmp_path.rglob("*.tmp*"))


def test_optional_parts_absent_and_invalid_refused(tmp_path):
    arrays = _arrays()
    for key in ("occluders", "diffuse", "depth", "gt_meshes"):
        arrays.pop(key)
    write_sequence(str(tmp_path), **arrays)
    sequence = load_sequence(str(tmp_path))
    assert sequence.occluders is None and sequence.diffuse is None and sequence.depth is None
    assert sequence.gt_mesh_paths is None
    (tmp_path / "masks" / "0002.png").unlink()
    with pytest.raises(InputError, match="masks/0002.png: missing"):
        load_sequence(str(tmp_path))
