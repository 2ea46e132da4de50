"""Slice sorting along the normal and the geometry checks of a series.

The input is the per-slice (or per-frame) Image Plane geometry of DICOM PS3.3 C.7.6.2:
``ImagePositionPatient`` (IPP), ``ImageOrientationPatient`` (IOP), ``PixelSpacing``, ``Rows``
and ``Columns``. Slices are ordered by their distance along the slice normal
``n = IOP[0:3] x IOP[3:6]`` (never by file name or instance number when positions exist), and
every irregularity is reported as a :class:`GeometryProblem`.

Tolerances (constants below): direction cosines agree within 1e-3 per component (about 0.06°);
pixel spacings within 1e-4 mm + 0.01%; two slices closer than 1e-3 mm along the normal are
duplicates; a step between neighbouring slices is non-uniform when it differs from the nominal step
by more than max(0.01 mm, 1% of the nominal step), and a gap when it is over 1.5 times the nominal
step (the median of the steps, gaps left out: see ``_nominal_step``).
An orientation more than 0.5° away from the patient axes is reported as oblique and kept as is
(never snapped); a slice stack whose positions drift in-plane by more than 0.1° from the normal
is reported as sheared (gantry tilt) and kept exact in the affine.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from domain.errors import InvalidInput
from domain.imaging.geometry import Vector3, orthonormal_direction

Orientation = tuple[float, float, float, float, float, float]

ORIENTATION_TOLERANCE = 1e-3
PIXEL_SPACING_RTOL = 1e-4
PIXEL_SPACING_ATOL_MM = 1e-4
DUPLICATE_TOLERANCE_MM = 1e-3
SPACING_ATOL_MM = 0.01
SPACING_RTOL = 0.01
GAP_FACTOR = 1.5
OBLIQUE_ANGLE_DEG = 0.5
SHEAR_ANGLE_DEG = 0.1
MISALIGNMENT_TOLERANCE_MM = 0.05


class SliceGeometry(msgspec.Struct, frozen=True, kw_only=True):
    """The Image Plane geometry of one slice or frame (DICOM PS3.3 C.7.6.2)."""

    rows: int
    """``Rows`` (0028,0010)."""
    columns: int
    """``Columns`` (0028,0011)."""
    image_position_patient: Vector3 | None = None
    """``ImagePositionPatient`` (0020,0032): LPS mm of the centre of the first pixel."""
    image_orientation_patient: Orientation | None = None
    """``ImageOrientationPatient`` (0020,0037): row then column direction cosines."""
    pixel_spacing: tuple[float, float] | None = None
    """``PixelSpacing`` (0028,0030): (row spacing, column spacing) in mm."""
    instance_number: int | None = None
    """``InstanceNumber`` (0020,0013): the order used only when positions are missing."""

    def __post_init__(self) -> None:
        if self.rows < 1 or self.columns < 1:
            raise ValueError(f"rows and columns must be >= 1, got {self.rows}x{self.columns}")
        if self.pixel_spacing is not None and min(self.pixel_spacing) <= 0:
            raise ValueError(f"pixel_spacing must be > 0 mm, got {self.pixel_spacing!r}")

    @property
    def has_position(self) -> bool:
        return (
            self.image_position_patient is not None and self.image_orientation_patient is not None
        )


class ProblemCode(enum.StrEnum):
    MISSING_GEOMETRY = "missing_geometry"
    INCONSISTENT_ORIENTATION = "inconsistent_orientation"
    INCONSISTENT_PIXEL_SPACING = "inconsistent_pixel_spacing"
    INCONSISTENT_SIZE = "inconsistent_size"
    DUPLICATE_POSITION = "duplicate_position"
    GAP = "gap"
    NON_UNIFORM_SPACING = "non_uniform_spacing"
    MISALIGNED = "misaligned"
    OBLIQUE = "oblique"
    SHEARED = "sheared"
    RESAMPLED = "resampled"


BLOCKING_PROBLEMS = frozenset(
    {
        ProblemCode.INCONSISTENT_ORIENTATION,
        ProblemCode.INCONSISTENT_PIXEL_SPACING,
        ProblemCode.INCONSISTENT_SIZE,
        ProblemCode.DUPLICATE_POSITION,
        ProblemCode.MISALIGNED,
        ProblemCode.GAP,
        ProblemCode.NON_UNIFORM_SPACING,
    }
)
"""Problems that keep the slices from forming one regular grid as they are.

Gaps and non-uniform spacing stop being blocking when the caller asks for resampling.
"""


class GeometryProblem(msgspec.Struct, frozen=True, kw_only=True):
    code: ProblemCode
    detail: str
    """A sentence naming the slices and values involved."""
    slices: tuple[int, ...] = ()
    """Indices into the input sequence of the slices concerned."""

    @property
    def blocking(self) -> bool:
        return self.code in BLOCKING_PROBLEMS


class SliceOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Slices sorted along the normal, with what was found on the way."""

    order: tuple[int, ...]
    """Indices into the input, from the lowest to the highest position along ``normal``."""
    positions: tuple[float, ...]
    """Signed distance (mm) of each sorted slice along ``normal``: ``dot(IPP, normal)``."""
    spacing: float | None
    """Nominal distance (mm) between neighbouring distinct positions; None for a single slice or
    when positions are missing."""
    normal: Vector3
    """Unit slice normal ``IOP[0:3] x IOP[3:6]`` of the first slice, in LPS."""
    problems: tuple[GeometryProblem, ...] = ()

    def has(self, code: ProblemCode) -> bool:
        return any(problem.code is code for problem in self.problems)


def _angle_to_axis_deg(vector: npt.NDArray[np.float64]) -> float:
    cosine = float(np.max(np.abs(vector)) / np.linalg.norm(vector))
    return math.degrees(math.acos(min(1.0, cosine)))


def _fallback_order(slices: Sequence[SliceGeometry]) -> SliceOrder:
    order = sorted(
        range(len(slices)),
        key=lambda index: (
            slices[index].instance_number is None,
            slices[index].instance_number or 0,
        ),
    )
    problem = GeometryProblem(
        code=ProblemCode.MISSING_GEOMETRY,
        detail=(
            "ImagePositionPatient or ImageOrientationPatient is missing; slices are ordered by "
            "InstanceNumber and placed on a synthetic 1 mm grid"
        ),
        slices=tuple(i for i, s in enumerate(slices) if not s.has_position),
    )
    return SliceOrder(
        order=tuple(order),
        positions=tuple(float(n) for n in range(len(slices))),
        spacing=None,
        normal=(0.0, 0.0, 1.0),
        problems=(problem,),
    )


def _consistency_problems(slices: Sequence[SliceGeometry]) -> list[GeometryProblem]:
    problems: list[GeometryProblem] = []
    first = slices[0]
    sizes = {(s.rows, s.columns) for s in slices}
    if len(sizes) > 1:
        odd = tuple(
            i for i, s in enumerate(slices) if (s.rows, s.columns) != (first.rows, first.columns)
        )
        problems.append(
            GeometryProblem(
                code=ProblemCode.INCONSISTENT_SIZE,
                detail=f"slices have different Rows x Columns: {sorted(sizes)}",
                slices=odd,
            )
        )
    if first.image_orientation_patient is not None:
        reference = np.asarray(first.image_orientation_patient)
        odd = tuple(
            i
            for i, s in enumerate(slices)
            if s.image_orientation_patient is not None
            and np.max(np.abs(np.asarray(s.image_orientation_patient) - reference))
            > ORIENTATION_TOLERANCE
        )
        if odd:
            problems.append(
                GeometryProblem(
                    code=ProblemCode.INCONSISTENT_ORIENTATION,
                    detail=(
                        f"ImageOrientationPatient differs from the first slice's "
                        f"{first.image_orientation_patient} by more than {ORIENTATION_TOLERANCE} "
                        f"on {len(odd)} slice(s)"
                    ),
                    slices=odd,
                )
            )
    spacings = [s.pixel_spacing for s in slices]
    if any(spacing is not None for spacing in spacings):
        reference_spacing = next(s for s in spacings if s is not None)
        odd = tuple(
            i
            for i, spacing in enumerate(spacings)
            if spacing is None
            or not np.allclose(
                spacing, reference_spacing, rtol=PIXEL_SPACING_RTOL, atol=PIXEL_SPACING_ATOL_MM
            )
        )
        if odd:
            problems.append(
                GeometryProblem(
                    code=ProblemCode.INCONSISTENT_PIXEL_SPACING,
                    detail=(
                        f"PixelSpacing differs from {reference_spacing} (or is missing) "
                        f"on {len(odd)} slice(s)"
                    ),
                    slices=odd,
                )
            )
    return problems


def _nominal_step(steps: npt.NDArray[np.float64]) -> float:
    """The expected distance between neighbouring slices.

    The median of the steps near the smallest one (up to 1.5 times it) when they are at least
    half of all steps, so that gaps do not inflate it even in short series; else the median.
    """
    near_smallest = steps[steps <= GAP_FACTOR * float(steps.min())]
    if 2 * near_smallest.size >= steps.size:
        return float(np.median(near_smallest))
    return float(np.median(steps))


def _spacing_problems(
    order: list[int], distances: npt.NDArray[np.float64]
) -> tuple[float | None, list[GeometryProblem]]:
    problems: list[GeometryProblem] = []
    steps = np.diff(distances)
    duplicates = np.flatnonzero(steps <= DUPLICATE_TOLERANCE_MM)
    if duplicates.size:
        pairs = [(order[d], order[d + 1]) for d in duplicates]
        problems.append(
            GeometryProblem(
                code=ProblemCode.DUPLICATE_POSITION,
                detail=(
                    f"{len(pairs)} pair(s) of slices share a position along the normal "
                    f"(within {DUPLICATE_TOLERANCE_MM} mm), e.g. slices {pairs[0][0]} and "
                    f"{pairs[0][1]} at {distances[duplicates[0]]:.3f} mm"
                ),
                slices=tuple(sorted({index for pair in pairs for index in pair})),
            )
        )
    distinct = steps[steps > DUPLICATE_TOLERANCE_MM]
    if distinct.size == 0:
        return None, problems
    nominal = _nominal_step(distinct)
    tolerance = max(SPACING_ATOL_MM, SPACING_RTOL * nominal)
    gaps: list[int] = []
    uneven: list[int] = []
    for position, step in enumerate(steps):
        if step <= DUPLICATE_TOLERANCE_MM or abs(step - nominal) <= tolerance:
            continue
        (gaps if step > GAP_FACTOR * nominal else uneven).append(position)
    if gaps:
        first = gaps[0]
        missing = sum(round(float(steps[g]) / nominal) - 1 for g in gaps)
        problems.append(
            GeometryProblem(
                code=ProblemCode.GAP,
                detail=(
                    f"{len(gaps)} gap(s) in the slice positions, about {missing} slice(s) "
                    f"missing: {float(steps[first]):.3f} mm between slices {order[first]} and "
                    f"{order[first + 1]} where the nominal step is {nominal:.3f} mm "
                    f"(tolerance {tolerance:.3f} mm)"
                ),
                slices=tuple(sorted({order[g] for g in gaps} | {order[g + 1] for g in gaps})),
            )
        )
    if uneven:
        low, high = float(steps[uneven].min()), float(steps[uneven].max())
        problems.append(
            GeometryProblem(
                code=ProblemCode.NON_UNIFORM_SPACING,
                detail=(
                    f"{len(uneven)} step(s) between slices differ from the nominal step "
                    f"{nominal:.3f} mm by more than {tolerance:.3f} mm "
                    f"(from {low:.3f} to {high:.3f} mm)"
                ),
                slices=tuple(sorted({order[u] for u in uneven} | {order[u + 1] for u in uneven})),
            )
        )
    return nominal, problems


def _placement_problems(
    order: list[int],
    positions: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
) -> list[GeometryProblem]:
    """Oblique orientation, gantry tilt (shear) and in-plane misalignment of sorted slices."""
    problems: list[GeometryProblem] = []
    row, column, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    tilt = max(_angle_to_axis_deg(row), _angle_to_axis_deg(column))
    if tilt > OBLIQUE_ANGLE_DEG:
        problems.append(
            GeometryProblem(
                code=ProblemCode.OBLIQUE,
                detail=(
                    f"the image plane is oblique ({tilt:.2f}° from the nearest patient axis); "
                    "the orientation is kept, not snapped"
                ),
            )
        )
    if len(order) < 2:
        return problems
    offsets = positions[order] - positions[order[0]]
    along = offsets @ normal
    in_plane = np.column_stack([offsets @ row, offsets @ column])
    if float(np.ptp(along)) <= DUPLICATE_TOLERANCE_MM:
        return problems
    design = np.column_stack([np.ones_like(along), along])
    coefficients, *_ = np.linalg.lstsq(design, in_plane, rcond=None)
    residual = float(np.max(np.linalg.norm(in_plane - design @ coefficients, axis=1)))
    if residual > MISALIGNMENT_TOLERANCE_MM:
        problems.append(
            GeometryProblem(
                code=ProblemCode.MISALIGNED,
                detail=(
                    f"slice positions move in-plane irregularly (up to {residual:.3f} mm off a "
                    "straight stack); they do not form one volume"
                ),
                slices=tuple(order),
            )
        )
        return problems
    shear = math.degrees(math.atan(float(np.linalg.norm(coefficients[1]))))
    if shear > SHEAR_ANGLE_DEG:
        problems.append(
            GeometryProblem(
                code=ProblemCode.SHEARED,
                detail=(
                    f"slices are stacked {shear:.2f}° off the normal (gantry tilt); the slice "
                    "axis of the volume follows the positions, so the affine stays exact"
                ),
            )
        )
    return problems


def sort_slices(slices: Sequence[SliceGeometry]) -> SliceOrder:
    """Sort slices along the slice normal and report every geometric irregularity.

    Args:
        slices: the Image Plane geometry of each slice or frame, in any order.

    Returns:
        The order (indices into ``slices``) from the lowest to the highest distance along the
        normal ``n = IOP[0:3] x IOP[3:6]`` of the first slice, those distances (mm), the median
        step (mm), ``n`` and the problems found. Ties keep the input order. When any slice lacks
        IPP or IOP, slices are ordered by ``InstanceNumber`` instead and a
        ``missing_geometry`` problem says so.

    Raises:
        InvalidInput: when ``slices`` is empty.
    """
    if not slices:
        raise InvalidInput("a series needs at least one slice to be sorted")
    if not all(s.has_position for s in slices):
        fallback = _fallback_order(slices)
        return msgspec.structs.replace(
            fallback, problems=(*fallback.problems, *_consistency_problems(slices))
        )
    first = slices[0]
    assert first.image_orientation_patient is not None
    iop = first.image_orientation_patient
    try:
        direction = orthonormal_direction((iop[0], iop[1], iop[2]), (iop[3], iop[4], iop[5]))
    except ValueError as err:
        raise InvalidInput(f"ImageOrientationPatient {iop!r} is not a valid plane: {err}") from err
    normal = direction[:, 2]
    positions = np.array([s.image_position_patient for s in slices], dtype=np.float64)
    distances = positions @ normal
    order = [int(i) for i in np.argsort(distances, kind="stable")]
    sorted_distances = distances[order]
    spacing, spacing_problems = _spacing_problems(order, sorted_distances)
    problems = [
        *_consistency_problems(slices),
        *spacing_problems,
        *_placement_problems(order, positions, direction),
    ]
    return SliceOrder(
        order=tuple(order),
        positions=tuple(float(d) for d in sorted_distances),
        spacing=spacing,
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        problems=tuple(problems),
    )
