"""An estimate of the surface area of the object a binary mask was sampled from (not IBSI).

Why a second area: the IBSI mesh area (Morph.area.mesh, C0JK) is the area of the marching-cubes
mesh of the *binary* mask. That mesh follows the voxel staircase, so it overestimates the area of
a smooth object: by about 8 % at isotropic spacing (Windreich et al., 2003; Lindblad, Image and
Vision Computing 23, 2005) and by 20-30 % for 5 mm slices. IBSI features keep that mesh area for
comparability between software; this estimate answers "how large is the lesion's surface".

Method (normal-weighted face counting): every boundary face of the voxel grid between an inside
and an outside voxel is counted with a weight that undoes the staircase. For a surface element of
area ``dA`` and unit normal ``n``, the staircase holds faces of type ``a`` (between neighbours
along index axis ``a``) of total area ``dA * |S_a| * |n . e_a| / V``, where ``e_a`` is the voxel
edge vector along axis ``a`` in mm, ``S_a`` the area vector of a type-``a`` face and ``V`` the
voxel volume (for an orthogonal grid this is ``dA * |n_a|``, the projected area). So

    area = sum over boundary faces f of |S_a(f)| / w(n(f)),  w(n) = sum_a |S_a| |n . e_a| / V,

exact in expectation for planes of any orientation, with ``n`` estimated at each face from the
gradient of the mask smoothed by an isotropic Gaussian (sigma = 1.5 x the largest voxel edge,
enough to average the staircase out; approximated per index axis on sheared grids). On spheres of
radius 10-30 mm at spacings from 0.7 x 0.7 x 1.25 mm to 1 x 1 x 5 mm it lands within about 2 %
of 4 pi r^2 (the marching-cubes area: +8 % to +29 %).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage  # type: ignore[import-untyped]  # no stubs shipped

SMOOTHING_IN_VOXEL_EDGES = 1.5
"""Gaussian sigma for the normals, in units of the largest voxel edge length."""


def estimated_surface_area_mm2(mask: npt.ArrayLike, index_to_mm: npt.ArrayLike) -> float:
    """Estimate the surface area (mm2) of the object sampled by a binary mask.

    Args:
        mask: array of shape ``(z, y, x)``; nonzero voxels are inside.
        index_to_mm: 3x3 matrix whose columns are the voxel edge vectors in mm along the
            ``z``, ``y`` and ``x`` index axes (``direction`` columns times spacing, reordered
            to the array's axis order). Only lengths and angles matter: any rotation, origin or
            mirroring gives the same area.

    Returns:
        The estimated area in mm2; 0.0 for an empty mask.
    """
    voxels = np.asarray(mask).astype(bool, copy=False)
    edges = np.asarray(index_to_mm, dtype=np.float64)
    if voxels.ndim != 3:
        raise ValueError(f"mask must be a (z, y, x) array, got shape {voxels.shape}")
    if not voxels.any():
        return 0.0
    cell_volume = abs(float(np.linalg.det(edges)))
    face_vectors = np.stack(
        [np.cross(edges[:, (a + 1) % 3], edges[:, (a + 2) % 3]) for a in range(3)]
    )
    face_areas = np.linalg.norm(face_vectors, axis=1)  # |S_a|, mm2
    edge_lengths = np.linalg.norm(edges, axis=0)  # mm along z, y, x

    bounds = [
        np.flatnonzero(voxels.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)
    ]
    cropped = voxels[tuple(slice(int(b[0]), int(b[-1]) + 1) for b in bounds)]
    padded = np.pad(cropped, 2)
    sigma_mm = SMOOTHING_IN_VOXEL_EDGES * float(edge_lengths.max())
    smoothed = ndimage.gaussian_filter(
        padded.astype(np.float64), sigma=sigma_mm / edge_lengths, mode="constant"
    )
    index_gradient = np.stack(np.gradient(smoothed), axis=-1)  # per unit index step
    to_physical = np.linalg.inv(edges).T  # index gradient -> mm gradient

    total = 0.0
    for axis in range(3):
        boundary = np.diff(padded.astype(np.int8), axis=axis) != 0
        before = np.nonzero(boundary)
        after = list(before)
        after[axis] = before[axis] + 1
        gradient = (index_gradient[before] + index_gradient[tuple(after)]) / 2.0  # (F, 3)
        gradient_norm = np.linalg.norm(gradient @ to_physical.T, axis=1)
        # w(n) = sum_a |S_a| |n . e_a| / V with n . e_a = index gradient_a / |mm gradient|;
        # a face without a usable gradient (cannot happen for a nonempty mask) counts as is.
        projected = (np.abs(gradient) @ face_areas) / cell_volume
        usable = gradient_norm > 1e-12
        weight = np.ones_like(gradient_norm)
        np.divide(projected, gradient_norm, out=weight, where=usable)
        total += float(np.sum(face_areas[axis] / weight))
    return total
