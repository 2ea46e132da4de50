"""Stacking sorted 2-D frames into a :class:`Volume` whose affine matches every slice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from domain.errors import InvalidInput
from domain.imaging.geometry import Volume, orthonormal_direction
from domain.imaging.slices import GeometryProblem, ProblemCode, SliceGeometry, sort_slices


def _resample_along_slices(
    stack: npt.NDArray[np.float32], distances: npt.NDArray[np.float64], step: float
) -> tuple[npt.NDArray[np.float32], int]:
    """Linearly interpolate ``stack`` (z, y, x) at evenly spaced distances along the normal."""
    span = float(distances[-1] - distances[0])
    count = max(2, round(span / step) + 1)
    targets = np.linspace(distances[0], distances[-1], count)
    upper = np.clip(np.searchsorted(distances, targets, side="right"), 1, len(distances) - 1)
    lower = upper - 1
    width = distances[upper] - distances[lower]
    weight = ((targets - distances[lower]) / width).astype(np.float32)[:, None, None]
    resampled = stack[lower] * (1 - weight) + stack[upper] * weight
    return resampled.astype(np.float32), count


def stack_slices(
    frames: Sequence[npt.ArrayLike],
    slices: Sequence[SliceGeometry],
    *,
    resample_nonuniform: bool = False,
    single_slice_spacing_mm: float | None = None,
) -> Volume:
    """Assemble 2-D frames with their geometry into a :class:`Volume`.

    Args:
        frames: one ``(rows, columns)`` array per slice, in modality output units (HU for CT),
            in the same (any) order as ``slices``.
        slices: the geometry of each frame.
        resample_nonuniform: when the slice positions have gaps or uneven steps, interpolate
            linearly along the normal onto an even grid at the median step (reported as
            ``resampled``) instead of refusing.
        single_slice_spacing_mm: the slice spacing of a one-slice volume (e.g.
            ``SliceThickness``); 1 mm when None.

    Returns:
        A volume whose voxel ``(i, j, k)`` centre is at
        ``IPP_first + i * PixelSpacing[1] * IOP[0:3] + j * PixelSpacing[0] * IOP[3:6]
        + k * step``, ``step`` being the mean vector between neighbouring slice positions.

    Raises:
        InvalidInput: when frames and slices differ in number or shape, or a blocking problem
            (inconsistent size, orientation or pixel spacing, duplicate positions, in-plane
            misalignment, or gaps without ``resample_nonuniform``) keeps them from one grid;
            the message lists the problems.
    """
    if len(frames) != len(slices):
        raise InvalidInput(f"{len(frames)} frames were given for {len(slices)} slice geometries")
    order = sort_slices(slices)
    tolerated = {ProblemCode.GAP, ProblemCode.NON_UNIFORM_SPACING} if resample_nonuniform else set()
    blocking = [p for p in order.problems if p.blocking and p.code not in tolerated]
    if blocking:
        raise InvalidInput(
            "the slices do not form one volume: " + "; ".join(p.detail for p in blocking)
        )
    arrays = [np.asarray(frames[index], dtype=np.float32) for index in order.order]
    for index, array in zip(order.order, arrays, strict=True):
        expected = (slices[index].rows, slices[index].columns)
        if array.shape != expected:
            raise InvalidInput(
                f"frame {index} has shape {array.shape}, its geometry says Rows x Columns "
                f"{expected}"
            )
    stack = np.stack(arrays)
    problems = list(order.problems)
    first = slices[order.order[0]]
    row_spacing, column_spacing = first.pixel_spacing or (1.0, 1.0)
    if first.pixel_spacing is None and not order.has(ProblemCode.MISSING_GEOMETRY):
        problems.append(
            GeometryProblem(
                code=ProblemCode.MISSING_GEOMETRY,
                detail="PixelSpacing is missing; 1 mm is assumed in-plane",
            )
        )
    if order.has(ProblemCode.MISSING_GEOMETRY):
        return Volume(
            voxels=stack,
            spacing=(single_slice_spacing_mm or 1.0, row_spacing, column_spacing),
            direction=np.eye(3),
            origin=(0.0, 0.0, 0.0),
            problems=tuple(problems),
        )
    assert first.image_position_patient is not None
    assert first.image_orientation_patient is not None
    iop = first.image_orientation_patient
    direction = orthonormal_direction((iop[0], iop[1], iop[2]), (iop[3], iop[4], iop[5]))
    if len(arrays) == 1:
        slice_spacing = single_slice_spacing_mm or 1.0
        return Volume(
            voxels=stack,
            spacing=(slice_spacing, row_spacing, column_spacing),
            direction=direction,
            origin=first.image_position_patient,
            problems=tuple(problems),
        )
    last = slices[order.order[-1]]
    assert last.image_position_patient is not None
    travel = np.subtract(last.image_position_patient, first.image_position_patient)
    count = len(arrays)
    if (
        resample_nonuniform
        and order.spacing is not None
        and (order.has(ProblemCode.GAP) or order.has(ProblemCode.NON_UNIFORM_SPACING))
    ):
        stack, count = _resample_along_slices(
            stack, np.asarray(order.positions, dtype=np.float64), order.spacing
        )
        problems.append(
            GeometryProblem(
                code=ProblemCode.RESAMPLED,
                detail=(
                    f"{len(arrays)} unevenly spaced slices were interpolated linearly onto "
                    f"{count} slices {float(np.linalg.norm(travel)) / (count - 1):.3f} mm apart"
                ),
            )
        )
    step = travel / (count - 1)
    slice_spacing = float(np.linalg.norm(step))
    direction[:, 2] = step / slice_spacing
    return Volume(
        voxels=stack,
        spacing=(slice_spacing, row_spacing, column_spacing),
        direction=direction,
        origin=first.image_position_patient,
        problems=tuple(problems),
    )
