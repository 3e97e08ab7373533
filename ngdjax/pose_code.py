"""The pose code of the method (docs/method.md 2.5): a PCA of the sequence's flat, non-root pose vectors.

Raw projections onto the top principal directions (not whitened), whatever the body model.
"""

from __future__ import annotations

import numpy as np


def pose_codes(poses: np.ndarray, dim: int) -> np.ndarray:
    """(T, dim) float32 codes ``(P_t - mean) E_dim`` of the (T, P) non-root poses.

    Directions are the covariance's top eigenvectors, with the sign fixed so each direction's
    largest-magnitude entry is positive (deterministic across runs). With fewer frames than
    ``dim`` the missing components are zero.
    """
    poses = np.asarray(poses, np.float64)
    centred = poses - poses.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)  # rows: principal directions
    directions = directions[:dim]
    signs = np.sign(directions[np.arange(len(directions)), np.abs(directions).argmax(axis=1)])
    codes = centred @ (directions * signs[:, None]).T
    return np.pad(codes, ((0, 0), (0, dim - codes.shape[1]))).astype(np.float32)
