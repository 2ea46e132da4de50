"""Volumes in patient space: a voxel grid with spacing, direction, origin and its affine.

Conventions (DICOM PS3.3 C.7.6.2.1.1, Image Plane module; C.7.6.2.1.1 equation for
``ImagePositionPatient``):

- Patient coordinates are DICOM's LPS, in mm: +x towards the patient's left, +y posterior,
  +z towards the head.
- ``voxels`` has shape ``(z, y, x)`` = ``(slice, row, column)``: ``voxels[k, j, i]``.
- Voxel *indices* are written ``(i, j, k)`` = ``(column, row, slice)``, as in the DICOM equation
  ``P = S + i * Δi * X + j * Δj * Y``, where ``X`` is the row direction cosine (the first three
  values of ``ImageOrientationPatient``: the direction in which the column index ``i`` grows),
  ``Y`` the column direction cosine (the last three: the direction in which ``j`` grows),
  ``Δi`` the column spacing (``PixelSpacing[1]``) and ``Δj`` the row spacing (``PixelSpacing[0]``).
- ``spacing`` is ``(z, y, x)`` in mm, like the voxel axes: (slice step, ``PixelSpacing[0]``,
  ``PixelSpacing[1]``).
- ``direction`` is 3x3; its columns are the unit vectors of the ``i``, ``j`` and ``k`` index axes
  in patient LPS coordinates. The slice axis is the real step from one slice position to the
  next: for a gantry-tilted (sheared) acquisition it is not orthogonal to the image plane, and
  the affine stays exact instead of snapping the slices onto a rectangular grid.
- ``origin`` is the patient position (mm) of the centre of voxel ``(0, 0, 0)``: the
  ``ImagePositionPatient`` of the first slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from domain.imaging.slices import GeometryProblem

Vector3 = tuple[float, float, float]
FloatArray = npt.NDArray[np.float64]

UNIT_TOLERANCE = 1e-3
"""How far from 1 the length of a direction column may be before it is refused."""


def _as_vector3(values: npt.ArrayLike, name: str) -> Vector3:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be three finite numbers, got {values!r}")
    return (float(array[0]), float(array[1]), float(array[2]))


@dataclass(frozen=True, eq=False, slots=True)
class Volume:
    """A scalar voxel grid placed in patient space.

    A plain frozen dataclass rather than a msgspec Struct: it holds numpy arrays and never goes
    over the wire. The arrays are copied into read-only float arrays at construction.

    Attributes:
        voxels: float32 array of shape ``(z, y, x)`` = ``(slice, row, column)``, in modality
            output units (Hounsfield units for CT after ``RescaleSlope``/``RescaleIntercept``).
        spacing: ``(z, y, x)`` voxel spacing in mm, each > 0. ``z`` is the distance between
            neighbouring slice positions: for a sheared stack it exceeds the perpendicular
            slice distance (use :attr:`voxel_volume_mm3` for volumes).
        direction: float64 array of shape ``(3, 3)``; columns are the unit vectors of the
            ``i`` (column), ``j`` (row) and ``k`` (slice) index axes in patient LPS coordinates.
        origin: patient LPS position (mm) of the centre of voxel ``(i, j, k) = (0, 0, 0)``.
        problems: geometry findings kept with the volume (oblique, sheared, resampled...); none
            of them makes the affine wrong.
    """

    voxels: npt.NDArray[np.float32]
    spacing: Vector3
    direction: FloatArray
    origin: Vector3
    problems: tuple[GeometryProblem, ...] = field(default=())

    def __post_init__(self) -> None:
        voxels = np.array(self.voxels, dtype=np.float32, copy=True)
        if voxels.ndim != 3 or 0 in voxels.shape:
            raise ValueError(
                f"voxels must be a non-empty (z, y, x) array, got shape {np.shape(self.voxels)}"
            )
        voxels.flags.writeable = False
        spacing = _as_vector3(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise ValueError(f"spacing must be > 0 mm on every axis, got {self.spacing!r}")
        direction = np.array(self.direction, dtype=np.float64, copy=True)
        if direction.shape != (3, 3) or not np.all(np.isfinite(direction)):
            raise ValueError(f"direction must be a finite 3x3 matrix, got {self.direction!r}")
        lengths = np.linalg.norm(direction, axis=0)
        if np.any(np.abs(lengths - 1.0) > UNIT_TOLERANCE):
            raise ValueError(
                f"direction columns must be unit vectors, got lengths {lengths.round(6).tolist()}"
            )
        if abs(float(np.linalg.det(direction))) < 1e-6:
            raise ValueError(f"direction {direction.tolist()!r} is degenerate (axes coplanar)")
        direction.flags.writeable = False
        object.__setattr__(self, "voxels", voxels)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "origin", _as_vector3(self.origin, "origin"))
        object.__setattr__(self, "problems", tuple(self.problems))

    @classmethod
    def from_affine(
        cls,
        voxels: npt.ArrayLike,
        affine: npt.ArrayLike,
        *,
        problems: tuple[GeometryProblem, ...] = (),
    ) -> Volume:
        """Build a volume from a ``(z, y, x)`` voxel array and a 4x4 LPS affine.

        Args:
            voxels: array of shape ``(z, y, x)``.
            affine: 4x4 matrix mapping ``(i, j, k, 1)`` = ``(column, row, slice, 1)`` to patient
                LPS mm; its columns' lengths become the spacing.
            problems: findings to keep with the volume.
        """
        matrix = np.asarray(affine, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"affine must be a finite 4x4 matrix, got {affine!r}")
        if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"affine's last row must be (0, 0, 0, 1), got {matrix[3].tolist()}")
        lengths = np.linalg.norm(matrix[:3, :3], axis=0)
        if np.any(lengths <= 0):
            raise ValueError(f"affine has a zero-length axis: {matrix.tolist()!r}")
        spacing_xyz = lengths
        return cls(
            voxels=np.asarray(voxels, dtype=np.float32),
            spacing=(float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])),
            direction=matrix[:3, :3] / lengths,
            origin=(float(matrix[0, 3]), float(matrix[1, 3]), float(matrix[2, 3])),
            problems=problems,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` = (slices, rows, columns)."""
        z, y, x = self.voxels.shape
        return (int(z), int(y), int(x))

    @property
    def affine(self) -> FloatArray:
        """4x4 float64 matrix mapping ``(i, j, k, 1)`` = (column, row, slice, 1) to LPS mm.

        ``affine[:3, :3] = direction @ diag(spacing_x, spacing_y, spacing_z)`` and
        ``affine[:3, 3] = origin``.
        """
        spacing_z, spacing_y, spacing_x = self.spacing
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction * np.array([spacing_x, spacing_y, spacing_z])
        matrix[:3, 3] = self.origin
        return matrix

    @property
    def voxel_volume_mm3(self) -> float:
        """The volume of one voxel in mm3: ``|det(affine[:3, :3])|``.

        Equal to the product of the spacings for an orthogonal grid; smaller for a sheared
        (gantry-tilted) one, whose slice axis is not perpendicular to the image plane.
        """
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def index_to_patient(self, indices: npt.ArrayLike) -> FloatArray:
        """Map continuous voxel indices to patient LPS positions.

        Args:
            indices: array of shape ``(..., 3)`` holding ``(i, j, k)`` = (column, row, slice).

        Returns:
            float64 array of shape ``(..., 3)``: LPS positions in mm.
        """
        points = np.asarray(indices, dtype=np.float64)
        if points.shape[-1:] != (3,):
            raise ValueError(f"indices must have shape (..., 3), got {points.shape}")
        matrix = self.affine
        result: FloatArray = points @ matrix[:3, :3].T + matrix[:3, 3]
        return result

    def patient_to_index(self, points: npt.ArrayLike) -> FloatArray:
        """Map patient LPS positions (mm) to continuous voxel indices ``(i, j, k)``.

        Args:
            points: array of shape ``(..., 3)``: LPS positions in mm.

        Returns:
            float64 array of shape ``(..., 3)`` holding (column, row, slice) indices; round them
            to address a voxel.
        """
        positions = np.asarray(points, dtype=np.float64)
        if positions.shape[-1:] != (3,):
            raise ValueError(f"points must have shape (..., 3), got {positions.shape}")
        matrix = self.affine
        inverse = np.linalg.inv(matrix[:3, :3])
        result: FloatArray = (positions - matrix[:3, 3]) @ inverse.T
        return result


def flip_lps_ras(affine: npt.ArrayLike) -> FloatArray:
    """Flip a 4x4 affine between DICOM LPS and NIfTI RAS patient axes (its own inverse).

    RAS and LPS differ by the sign of the first two patient axes, so
    ``A_ras = diag(-1, -1, 1, 1) @ A_lps``.
    """
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    result: FloatArray = flip @ np.asarray(affine, dtype=np.float64)
    return result


def orthonormal_direction(row_cosine: Vector3, column_cosine: Vector3) -> FloatArray:
    """The 3x3 direction of an image plane: ``[row_cosine, column_cosine, normal]`` as columns.

    ``normal = row_cosine x column_cosine``, the slice normal of DICOM PS3.3 C.7.6.2.1.1.
    """
    row = np.asarray(row_cosine, dtype=np.float64)
    column = np.asarray(column_cosine, dtype=np.float64)
    normal = np.cross(row, column)
    length = float(np.linalg.norm(normal))
    if not math.isfinite(length) or length < 1e-6:
        raise ValueError(
            f"row {row_cosine!r} and column {column_cosine!r} direction cosines are parallel"
        )
    return np.column_stack([row, column, normal / length])
