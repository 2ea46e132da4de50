"""IBSI morphological features of one lesion mask, in the patient's physical space.

Feature definitions follow the IBSI reference manual (Zwanenburg et al., Radiology 2020;
arXiv 1612.07003, section 3.1 "Morphological features"); each field names its IBSI code. All
lengths are in mm, areas in mm2 and volumes in mm3, computed with the real (possibly anisotropic,
rotated or sheared) voxel geometry: the mesh and the voxel centres are mapped to mm by the
volume's direction and spacing before anything is measured.

Conventions (as in :mod:`domain.imaging.geometry`): masks are ``(z, y, x)`` = (slice, row,
column) arrays, ``spacing`` is ``(z, y, x)`` in mm, ``direction`` has the patient (LPS) unit
vectors of the column (``i``), row (``j``) and slice (``k``) index axes as its columns, and
``origin`` is the LPS position of voxel ``(0, 0, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError  # type: ignore[import-untyped]
from scipy.spatial.distance import cdist  # type: ignore[import-untyped]

from domain.imaging.geometry import Volume
from domain.imaging.marching_cubes import mask_surface
from domain.morphology import estimated_surface_area_mm2

FloatArray = npt.NDArray[np.float64]


class TumorMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """The IBSI morphology of one lesion (codes from the IBSI reference manual, section 3.1).

    ``V`` is the mesh volume, ``A`` the mesh area; the shape ratios below use those two, as IBSI
    prescribes.
    """

    volume_mesh_mm3: float
    """Morph.volume (RNU0): volume enclosed by the marching-cubes mesh, mm3."""
    volume_voxel_mm3: float
    """Morph.approx.volume (YEKZ): voxel count times voxel volume, mm3."""
    surface_area_mm2: float
    """Morph.area.mesh (C0JK): area of the marching-cubes mesh of the binary mask, mm2. It
    follows the voxel staircase, so it overestimates a smooth object's area (about +8 % at
    isotropic spacing, +20-30 % at 5 mm slices); see ``surface_area_estimate_mm2``."""
    surface_to_volume_ratio: float
    """Morph.av (2PR5): ``A / V``, in 1/mm."""
    compactness_1: float
    """Morph.comp.1 (SKGS): ``V / (pi^(1/2) A^(3/2))``, dimensionless (1/(6 pi) for a sphere)."""
    compactness_2: float
    """Morph.comp.2 (BQWJ): ``36 pi V^2 / A^3`` (1 for a sphere)."""
    spherical_disproportion: float
    """Morph.sph.dispr (KRCK): ``A / (36 pi V^2)^(1/3)`` (1 for a sphere, larger otherwise)."""
    sphericity: float
    """Morph.sphericity (QCFX): ``(36 pi V^2)^(1/3) / A`` (1 for a sphere, smaller otherwise)."""
    asphericity: float
    """Morph.asphericity (25C7): ``(A^3 / (36 pi V^2))^(1/3) - 1`` (0 for a sphere)."""
    centre_of_mass_shift_mm: float
    """Morph.com (KLMA): distance (mm) between the geometric centre of the mask and its
    intensity-weighted centre; 0.0 when no intensities were given."""
    maximum_3d_diameter_mm: float
    """Morph.diam (L0JK): largest distance between two mesh vertices, mm."""
    major_axis_length_mm: float
    """Morph.pca.maj.axis (TDIC): ``4 sqrt(lambda_major)`` of the voxel-centre covariance, mm."""
    minor_axis_length_mm: float
    """Morph.pca.min.axis (P9VJ): ``4 sqrt(lambda_minor)``, mm."""
    least_axis_length_mm: float
    """Morph.pca.least.axis (7J51): ``4 sqrt(lambda_least)``, mm."""
    elongation: float
    """Morph.pca.elongation (Q3CK): ``sqrt(lambda_minor / lambda_major)``; 1.0 for one voxel."""
    flatness: float
    """Morph.pca.flatness (N17B): ``sqrt(lambda_least / lambda_major)``; 1.0 for one voxel."""
    centre_of_mass_mm: tuple[float, float, float]
    """Mean position of the mask's voxel centres (not intensity-weighted), patient LPS (x, y, z)
    in mm."""
    surface_area_estimate_mm2: float | None = None
    """Not an IBSI feature: the estimated surface area (mm2) of the smooth object the mask was
    sampled from (normal-weighted face counting, :mod:`domain.morphology.surface_area`), within
    a few % of the true area where the IBSI mesh area is 8-30 % high. None when not computed."""
    voxel_count: int | None = None
    """Number of voxels in the mask (Morph.approx.volume divided by the voxel volume)."""

    # The seed systems' names, kept so their clients read our results unchanged.
    @property
    def volume_mm3(self) -> float:
        """Seed name for Morph.volume (RNU0), the mesh volume in mm3."""
        return self.volume_mesh_mm3

    @property
    def diameter_mm(self) -> float:
        """Seed name for Morph.diam (L0JK), the maximum 3D diameter in mm."""
        return self.maximum_3d_diameter_mm

    @property
    def compactness(self) -> float:
        """Seed name for Morph.comp.2 (BQWJ)."""
        return self.compactness_2


def index_to_patient_matrix(
    spacing_mm: Sequence[float], direction: npt.ArrayLike | None = None
) -> FloatArray:
    """The 3x3 matrix taking a ``(z, y, x)`` index step to an LPS displacement in mm.

    Args:
        spacing_mm: ``(z, y, x)`` voxel spacing in mm, each > 0.
        direction: 3x3 matrix whose columns are the LPS unit vectors of the ``i`` (column,
            ``x``), ``j`` (row, ``y``) and ``k`` (slice, ``z``) index axes; identity when None.

    Returns:
        float64 array of shape ``(3, 3)``; column ``a`` is the voxel edge vector (mm) along array
        axis ``a`` of a ``(z, y, x)`` array.
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(-1)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(
            f"spacing_mm must be three finite (z, y, x) values > 0, got {spacing_mm!r}"
        )
    axes = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    if axes.shape != (3, 3) or not np.all(np.isfinite(axes)):
        raise ValueError(f"direction must be a finite 3x3 matrix, got {direction!r}")
    if abs(float(np.linalg.det(axes))) < 1e-6:
        raise ValueError(f"direction {axes.tolist()!r} is degenerate (axes coplanar)")
    # direction columns are (i, j, k) = (x, y, z); reorder to the array's (z, y, x) axes.
    matrix: FloatArray = axes[:, ::-1] * spacing
    return matrix


def compute_tumor_metrics(
    mask: npt.ArrayLike,
    spacing_mm: Sequence[float],
    *,
    origin_mm: Sequence[float] = (0.0, 0.0, 0.0),
    direction: npt.ArrayLike | None = None,
    intensities: npt.ArrayLike | None = None,
) -> TumorMetrics:
    """Measure one lesion: the IBSI morphological features of its mask.

    The mask is meshed by marching cubes at iso-level 0.5 after padding with one empty voxel
    (:func:`domain.imaging.marching_cubes.mask_surface`); mesh volume is the signed sum of the
    tetrahedra spanned by each outward-wound triangle and a fixed point, mesh area the sum of the
    triangle areas. Both are computed in mm after mapping the mesh through direction and spacing.

    Args:
        mask: array of shape ``(z, y, x)``; nonzero voxels belong to the lesion. Must not be
            empty. One-voxel, one-slice and one-voxel-thin masks are measured like any other
            (PCA lengths may be 0 along the missing directions).
        spacing_mm: ``(z, y, x)`` voxel spacing in mm (slice step, ``PixelSpacing[0]``,
            ``PixelSpacing[1]``).
        origin_mm: LPS position (mm) of the centre of voxel ``(0, 0, 0)``; only moves
            ``centre_of_mass_mm``.
        direction: 3x3 direction matrix of the volume (columns: LPS unit vectors of the ``i``,
            ``j``, ``k`` index axes, as :attr:`domain.imaging.Volume.direction`); identity when
            None. A rotation or mirror changes no shape feature; a shear does, correctly.
        intensities: optional array of the mask's shape with the image intensities, for the
            centre-of-mass shift (Morph.com, KLMA), which IBSI weights by intensity. Intensities
            inside the mask must be >= 0 (shift CT by +1024 HU first: negative weights make the
            weighted centre meaningless). Without intensities, or when they sum to 0, the shift
            is 0.0.

    Returns:
        The :class:`TumorMetrics` of the mask, every value finite.

    Raises:
        ValueError: the mask is empty or not 3-D, the geometry is invalid, or the intensities
            have another shape, are not finite or are negative inside the mask.
    """
    voxels = np.asarray(mask).astype(bool, copy=False)
    if voxels.ndim != 3:
        raise ValueError(f"mask must be a (z, y, x) array, got shape {voxels.shape}")
    if not voxels.any():
        raise ValueError("mask is empty: a lesion needs at least one voxel")
    to_mm = index_to_patient_matrix(spacing_mm, direction)
    origin = np.asarray(origin_mm, dtype=np.float64).reshape(-1)
    if origin.shape != (3,) or not np.all(np.isfinite(origin)):
        raise ValueError(f"origin_mm must be three finite numbers, got {origin_mm!r}")

    indices = np.argwhere(voxels).astype(np.float64)  # (N, 3) voxel centres, (z, y, x)
    anchor = indices.mean(axis=0)
    positions = (indices - anchor) @ to_mm.T  # (N, 3) mm, centred on the mask
    centre_mm = origin + anchor @ to_mm.T

    volume_mm3, area_mm2, diameter_mm = _mesh_features(voxels, to_mm, anchor)
    voxel_volume = abs(float(np.linalg.det(to_mm)))
    major, minor, least = _principal_variances(positions)
    ratio_cube = 36.0 * math.pi * volume_mm3**2  # (36 pi V^2), the sphere's A^3 for this V

    return TumorMetrics(
        volume_mesh_mm3=volume_mm3,
        volume_voxel_mm3=indices.shape[0] * voxel_volume,
        surface_area_mm2=area_mm2,
        surface_to_volume_ratio=area_mm2 / volume_mm3,
        compactness_1=volume_mm3 / (math.sqrt(math.pi) * area_mm2**1.5),
        compactness_2=ratio_cube / area_mm2**3,
        spherical_disproportion=area_mm2 / ratio_cube ** (1.0 / 3.0),
        sphericity=ratio_cube ** (1.0 / 3.0) / area_mm2,
        asphericity=(area_mm2**3 / ratio_cube) ** (1.0 / 3.0) - 1.0,
        centre_of_mass_shift_mm=_centre_of_mass_shift(voxels, positions, intensities),
        maximum_3d_diameter_mm=diameter_mm,
        major_axis_length_mm=4.0 * math.sqrt(major),
        minor_axis_length_mm=4.0 * math.sqrt(minor),
        least_axis_length_mm=4.0 * math.sqrt(least),
        elongation=math.sqrt(minor / major) if major > 0 else 1.0,
        flatness=math.sqrt(least / major) if major > 0 else 1.0,
        centre_of_mass_mm=(float(centre_mm[0]), float(centre_mm[1]), float(centre_mm[2])),
        surface_area_estimate_mm2=estimated_surface_area_mm2(voxels, to_mm),
        voxel_count=int(indices.shape[0]),
    )


def compute_tumor_metrics_in(
    volume: Volume, mask: npt.ArrayLike, *, intensities: npt.ArrayLike | None = None
) -> TumorMetrics:
    """:func:`compute_tumor_metrics` with the geometry of the volume the mask was drawn on.

    Args:
        volume: the image the mask belongs to; its spacing, direction and origin are used.
        mask: array of the volume's ``(z, y, x)`` shape; nonzero voxels belong to the lesion.
        intensities: as for :func:`compute_tumor_metrics` (``volume.voxels`` is not used by
            default: CT values are negative in places).
    """
    if np.shape(mask) != volume.shape:
        raise ValueError(f"mask shape {np.shape(mask)} differs from the volume's {volume.shape}")
    return compute_tumor_metrics(
        mask,
        volume.spacing,
        origin_mm=volume.origin,
        direction=volume.direction,
        intensities=intensities,
    )


def _mesh_features(
    voxels: npt.NDArray[np.bool_], to_mm: FloatArray, anchor: FloatArray
) -> tuple[float, float, float]:
    """Mesh volume (RNU0, mm3), mesh area (C0JK, mm2) and maximum 3D diameter (L0JK, mm)."""
    mesh = mask_surface(voxels, to_mm)
    vertices = (mesh.vertices - anchor) @ to_mm.T  # (V, 3) mm, near the origin for precision
    corners = vertices[mesh.faces]  # (F, 3 corners, 3)
    first, second, third = corners[:, 0], corners[:, 1], corners[:, 2]
    # A mirrored geometry (det < 0) turns the outward winding inward: undo its sign.
    handedness = math.copysign(1.0, float(np.linalg.det(to_mm)))
    signed = float(np.einsum("ij,ij->", first, np.cross(second, third))) / 6.0
    area = float(np.linalg.norm(np.cross(second - first, third - first), axis=1).sum()) / 2.0
    return handedness * signed, area, _maximum_distance(vertices)


def _maximum_distance(points: FloatArray, *, chunk: int = 512) -> float:
    """The largest distance (mm) between two of the points, ``points`` of shape ``(V, 3)``.

    The farthest pair are vertices of the convex hull, so only those are compared (all pairs
    when Qhull cannot build a hull, which needs four points not in one plane).
    """
    try:
        candidates = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        candidates = points
    largest = 0.0
    for start in range(0, candidates.shape[0], chunk):
        block = cdist(candidates[start : start + chunk], candidates, "sqeuclidean")
        largest = max(largest, float(block.max()))
    return math.sqrt(largest)


def _principal_variances(positions: FloatArray) -> tuple[float, float, float]:
    """Eigenvalues (mm2) of the voxel-centre covariance, largest first, rounding noise at 0.

    IBSI (TDIC, P9VJ, 7J51) takes the covariance of the voxel centre positions. The IBSI
    digital phantom's reference values use the sample covariance (divided by N - 1); dividing by
    N would put its minor and least axis lengths 0.7 % low, outside the IBSI tolerance.
    """
    count = positions.shape[0]
    covariance = positions.T @ positions / max(count - 1, 1)
    eigenvalues = np.linalg.eigvalsh(covariance)[::-1]
    # Rounding leaves ~1e-16 x the largest where a mask has no extent (a line, a plate): zero.
    eigenvalues[eigenvalues <= 1e-12 * max(float(eigenvalues[0]), 0.0)] = 0.0
    return float(eigenvalues[0]), float(eigenvalues[1]), float(eigenvalues[2])


def _centre_of_mass_shift(
    voxels: npt.NDArray[np.bool_], positions: FloatArray, intensities: npt.ArrayLike | None
) -> float:
    """Morph.com (KLMA): |geometric centre - intensity-weighted centre| in mm.

    ``positions`` are the mask's voxel centres in mm, centred on their mean (the geometric
    centre), in ``np.argwhere`` order.
    """
    if intensities is None:
        return 0.0
    values = np.asarray(intensities, dtype=np.float64)
    if values.shape != voxels.shape:
        raise ValueError(f"intensities shape {values.shape} differs from the mask's {voxels.shape}")
    weights = values[voxels]  # same (C) order as np.argwhere
    if not np.all(np.isfinite(weights)):
        raise ValueError("intensities inside the mask must be finite")
    if np.any(weights < 0):
        raise ValueError(
            "intensities inside the mask must be >= 0 for the centre-of-mass shift "
            f"(minimum {float(weights.min())}); shift CT values by +1024 HU first"
        )
    total = float(weights.sum())
    if total == 0.0:
        return 0.0
    weighted_centre = weights @ positions / total
    return float(np.linalg.norm(weighted_centre))
