"""The intensity preprocessing a model's manifest declares (one definition, used by the
analysis pipeline and by ``model_export`` when it trains and evaluates)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.ports.inference import IntensityPreprocessing


def window_to_unit(hu: npt.ArrayLike, intensity: IntensityPreprocessing) -> npt.NDArray[np.float32]:
    """Map modality values (Hounsfield units for CT) to the model's input range.

    ``minmax``: ``(hu - (center - width / 2)) / width`` clipped to 0..1 (the window's lower edge
    is 0, its upper edge 1). ``zscore``: ``(hu - mean) / std``.

    Args:
        hu: any array of modality values.
        intensity: the manifest's preprocessing.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: a non-positive window width, a zscore without mean and std, or an unknown
            ``normalise``.
    """
    values = np.asarray(hu, dtype=np.float32)
    if intensity.normalise == "minmax":
        if intensity.window_width <= 0:
            raise ValueError(f"window_width must be > 0, got {intensity.window_width!r}")
        low = intensity.window_center - intensity.window_width / 2.0
        scaled = (values - np.float32(low)) / np.float32(intensity.window_width)
        clipped: npt.NDArray[np.float32] = np.clip(scaled, 0.0, 1.0).astype(np.float32, copy=False)
        return clipped
    if intensity.normalise == "zscore":
        if intensity.mean is None or not intensity.std:
            raise ValueError("zscore preprocessing needs mean and a non-zero std")
        return ((values - np.float32(intensity.mean)) / np.float32(intensity.std)).astype(
            np.float32, copy=False
        )
    raise ValueError(f"unknown normalise {intensity.normalise!r}: expected minmax or zscore")
