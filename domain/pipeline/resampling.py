"""Resampling between a volume's own grid and a model's grid (trilinear, separable).

The model grid shares the source grid's first voxel centre and its axes; only the spacing
differs. Model voxel ``m`` (per axis) sits at source index ``m * scale`` where
``scale = model_spacing / source_spacing``, so a position in mm is the same on both grids and
probabilities come back exactly onto the voxels they were computed for. The model grid stops at
the last whole step inside the source (no extrapolated slab at the far edge).

Arrays are ``(z, y, x)``; spacings are ``(z, y, x)`` in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
SAME_SPACING_TOLERANCE = 1e-3
"""Relative spacing difference under which an axis is left as it is (no interpolation)."""
_SLAB = 8
"""Slices interpolated at a time along the in-plane axes: bounds the temporary memory."""


def grid_scale(
    source_spacing_mm: Sequence[float], target_spacing_mm: Sequence[float]
) -> tuple[float, float, float]:
    """``target / source`` per axis, 1.0 where the two are within the tolerance.

    Raises:
        ValueError: a spacing that is not three positive finite numbers.
    """
    scales: list[float] = []
    for name, values in (("source", source_spacing_mm), ("target", target_spacing_mm)):
        if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"{name} spacing must be three values > 0 mm, got {values!r}")
    for source, target in zip(source_spacing_mm, target_spacing_mm, strict=True):
        ratio = float(target) / float(source)
        scales.append(1.0 if abs(ratio - 1.0) <= SAME_SPACING_TOLERANCE else ratio)
    return (scales[0], scales[1], scales[2])


def model_grid_shape(source_shape: Sequence[int], scale: Sequence[float]) -> tuple[int, int, int]:
    """The model grid's ``(z, y, x)`` size: every step of ``scale`` that stays inside."""
    sizes = [math.floor((n - 1) / s + 1e-6) + 1 for n, s in zip(source_shape, scale, strict=True)]
    return (sizes[0], sizes[1], sizes[2])


def to_model_grid(voxels: npt.ArrayLike, scale: Sequence[float]) -> FloatArray:
    """Sample ``voxels`` (source grid) at the model grid's voxel centres.

    Args:
        voxels: ``(z, y, x)`` array on the source grid.
        scale: :func:`grid_scale` of the source and model spacings.

    Returns:
        float32 array of :func:`model_grid_shape`.
    """
    array = np.asarray(voxels, dtype=np.float32)
    shape = model_grid_shape(array.shape, scale)
    for axis in range(3):
        coordinates = np.arange(shape[axis], dtype=np.float64) * scale[axis]
        array = _along(array, axis, coordinates)
    return array


def to_source_grid(
    values: npt.ArrayLike, source_shape: Sequence[int], scale: Sequence[float]
) -> FloatArray:
    """Sample ``values`` (model grid) back at every voxel of the source grid.

    Source voxels past the model grid's last centre (less than one model step) take the
    nearest model value.

    Args:
        values: ``(z, y, x)`` array on the model grid.
        source_shape: the source grid's ``(z, y, x)`` size.
        scale: the same scale the model grid was made with.
    """
    array = np.asarray(values, dtype=np.float32)
    for axis in range(3):
        coordinates = np.arange(source_shape[axis], dtype=np.float64) / scale[axis]
        array = _along(array, axis, coordinates)
    return array


def _along(array: FloatArray, axis: int, coordinates: npt.NDArray[np.float64]) -> FloatArray:
    """Linear interpolation of ``array`` at fractional ``coordinates`` along one axis
    (clamped to the ends); a no-op when the coordinates are the array's own indices."""
    size = array.shape[axis]
    if coordinates.shape[0] == size and np.allclose(coordinates, np.arange(size), atol=1e-9):
        return array
    clamped = np.clip(coordinates, 0.0, size - 1.0)
    lower = np.minimum(np.floor(clamped).astype(np.intp), max(size - 2, 0))
    upper = np.minimum(lower + 1, size - 1)
    weight = (clamped - lower).astype(np.float32)
    shape = list(array.shape)
    shape[axis] = coordinates.shape[0]
    out = np.empty(shape, dtype=np.float32)
    if axis == 0:
        for index, (low, high, w) in enumerate(zip(lower, upper, weight, strict=True)):
            np.multiply(array[low], 1.0 - w, out=out[index])
            out[index] += array[high] * w
        return out
    broadcast = [1, 1, 1]
    broadcast[axis] = -1
    weights = weight.reshape(broadcast)
    for first in range(0, array.shape[0], _SLAB):
        slab = array[first : first + _SLAB]
        low_values = np.take(slab, lower, axis=axis)
        high_values = np.take(slab, upper, axis=axis)
        out[first : first + _SLAB] = low_values + (high_values - low_values) * weights
    return out
