"""Sliding-window inference: overlapping patches, Gaussian importance blending, batched.

A model sees a fixed patch; a volume is usually larger. Patches start every
``(1 - overlap) * patch`` voxels with the last one flush with the far edge, each patch's
probabilities are weighted by a Gaussian that trusts its centre more than its border (where the
network lacks context), and the weighted sum is divided by the summed weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Predict = Callable[[FloatArray], FloatArray]
"""``(n, 1, z, y, x)`` model input -> ``(n, c, z, y, x)`` probabilities."""


def gaussian_importance(patch_size: Sequence[int], sigma_fraction: float = 1.0 / 8.0) -> FloatArray:
    """Blending weights of one ``(z, y, x)`` patch: a Gaussian of ``sigma_fraction`` of each
    size, peak 1, floored at 1e-3 so that every voxel of a patch counts a little."""
    weights = [
        np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2.0) / (size * sigma_fraction)) ** 2)
        for size in patch_size
    ]
    importance = weights[0][:, None, None] * weights[1][None, :, None] * weights[2][None, None, :]
    floored: FloatArray = np.maximum(importance, 1e-3).astype(np.float32)
    return floored


def patch_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start indices along one axis of ``size`` (>= ``patch``), the last flush with the end."""
    step = max(1, round(patch * (1.0 - overlap)))
    starts = list(range(0, max(size - patch, 0) + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def sliding_window(
    image: npt.ArrayLike,
    patch_size: Sequence[int],
    predict: Predict,
    *,
    overlap: float = 0.5,
    batch_size: int = 4,
    progress: Callable[[float], None] | None = None,
) -> FloatArray:
    """Probabilities of a whole preprocessed image, patch by patch.

    Args:
        image: ``(z, y, x)`` preprocessed model input.
        patch_size: the model's ``(z, y, x)`` patch.
        predict: runs one batch; see :data:`Predict`.
        overlap: fraction of a patch shared with the next one along each axis, in ``[0, 1)``.
        batch_size: patches per ``predict`` call.
        progress: called with the fraction of patches done after each batch.

    Returns:
        float32 ``(c, z, y, x)`` probabilities on the image's grid, ``c`` the model's channels.
        An image smaller than the patch is padded with its edge values and cropped back.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be within [0, 1), got {overlap!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    source = np.asarray(image, dtype=np.float32)
    patch = tuple(int(p) for p in patch_size)
    padding = [(0, max(0, p - s)) for s, p in zip(source.shape, patch, strict=True)]
    padded = np.pad(source, padding, mode="edge")
    starts = [patch_starts(s, p, overlap) for s, p in zip(padded.shape, patch, strict=True)]
    importance = gaussian_importance(patch)
    corners = list(itertools.product(*starts))
    total: FloatArray | None = None
    weight = np.zeros(padded.shape, dtype=np.float32)
    for first in range(0, len(corners), batch_size):
        windows = [
            tuple(slice(c, c + p) for c, p in zip(corner, patch, strict=True))
            for corner in corners[first : first + batch_size]
        ]
        batch = np.ascontiguousarray(np.stack([padded[w] for w in windows])[:, None])
        probabilities = np.asarray(predict(batch), dtype=np.float32)
        if probabilities.ndim != 5 or probabilities.shape[0] != len(windows):
            raise ValueError(
                f"the model returned shape {probabilities.shape} for a batch of {batch.shape}"
            )
        if total is None:
            total = np.zeros((probabilities.shape[1], *padded.shape), dtype=np.float32)
        for window, probability in zip(windows, probabilities, strict=True):
            total[(slice(None), *window)] += probability * importance
            weight[window] += importance
        if progress is not None:
            progress(min(1.0, (first + len(windows)) / len(corners)))
    assert total is not None  # at least one corner: every axis has a start
    total /= weight
    z, y, x = source.shape
    return np.ascontiguousarray(total[:, :z, :y, :x])
