"""Smooth deformation modes of a template (ours, not the method's; docs/method_notes.md, "Priors for
the never-seen surface").

The method's static field is one free Jacobian per face: a face the camera never sees gets no
gradient from the images. Beneath that field the fit can add ``K`` smooth modes, the template's
lowest Laplace-Beltrami eigenfunctions averaged to its faces, each with a learnt 3x3 coefficient
``C_k``, that map the per-face Jacobians as a linear map of the positions would:

    J^S_f = (I + sum_k phi_k(f) C_k) J_f

The first mode is constant, so ``C_0`` is one linear map of the whole garment (a change of length
or width seen at the front also applies at the back); the next ones vary slowly over the surface.
"""

from __future__ import annotations

import igl
import numpy as np
import scipy.sparse.linalg
from jaxtyping import Float, Int


def face_modes(vertices: Float[np.ndarray, "V 3"], faces: Int[np.ndarray, "F 3"], count: int
               ) -> Float[np.ndarray, "F K"]:
    """(F, count) float32: the ``count`` lowest eigenfunctions of the cotangent Laplacian (with the
    Voronoi mass matrix; free boundaries), each averaged over its faces' corners and scaled to a
    root mean square of 1 over the faces, so a coefficient moves a Jacobian by about its own size.
    Signs are fixed (the largest entry positive) so the same template always gives the same basis.
    """
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if not 1 <= count < len(vertices) - 1:
        raise ValueError(f"smooth modes: need 1 <= count < {len(vertices) - 1} (the vertex count - 1), got {count}")
    stiffness = -igl.cotmatrix(vertices, faces)  # positive semi-definite
    mass = igl.massmatrix(vertices, faces, igl.MASSMATRIX_TYPE_VORONOI)
    # Shift-invert just below 0: the smallest eigenvalues (the constant mode's 0 included).
    values, vectors = scipy.sparse.linalg.eigsh(stiffness, k=count, M=mass, sigma=-1e-3, which="LM",
                                                v0=np.ones(len(vertices)))
    vectors = vectors[:, np.argsort(values)]
    per_face = vectors[faces].mean(axis=1)
    per_face /= np.sqrt(np.mean(per_face**2, axis=0, keepdims=True))
    largest = per_face[np.argmax(np.abs(per_face), axis=0), np.arange(count)]
    return (per_face * np.sign(largest)).astype(np.float32)
