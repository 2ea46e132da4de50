"""A simple, explainable image quality assessment of the analysed volume.

Not a learned score: three things that make a segmentation less trustworthy, each lowering a
score that starts at 1.0 and each stated as a finding a reader can check:

- slices thicker than 3 mm (small lesions fall between slices): ``x 3 / slice spacing``;
- noise high relative to the model's intensity window (the robust standard deviation of
  neighbouring-voxel differences, as a fraction of the window): ``x 0.05 / fraction`` above 5 %;
- a volume thinner than the model's patch along any axis, and geometry findings of the slice
  stack (resampled gaps, gantry tilt): ``x 0.9`` each.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from domain.imaging.geometry import Volume

THICK_SLICE_MM = 3.0
NOISE_FRACTION_LIMIT = 0.05
_NOISE_SAMPLE_SLICES = 16


class ImageQuality(msgspec.Struct, frozen=True, kw_only=True):
    score: float
    """0..1; 1.0 means no finding lowered it."""
    noise: float
    """Robust noise estimate in the image's units (HU for CT)."""
    findings: tuple[str, ...] = ()


def noise_estimate(volume: Volume) -> float:
    """``1.4826 * MAD / sqrt(2)`` of differences between neighbouring columns, on up to 16
    evenly spread slices: the standard deviation of white noise, insensitive to edges."""
    voxels = volume.voxels
    if voxels.shape[2] < 2:
        return 0.0
    picks = np.unique(np.linspace(0, voxels.shape[0] - 1, _NOISE_SAMPLE_SLICES).astype(int))
    differences = np.diff(voxels[picks], axis=2).ravel()
    deviation = np.median(np.abs(differences - np.median(differences)))
    return float(1.4826 * deviation / math.sqrt(2.0))


def assess_quality(
    volume: Volume,
    *,
    window_width: float,
    patch_size: tuple[int, int, int],
    model_shape: tuple[int, int, int],
) -> ImageQuality:
    """The :class:`ImageQuality` of ``volume`` for a model with this window and patch;
    ``model_shape`` is the volume's size on the model's grid."""
    score = 1.0
    findings: list[str] = []
    slice_spacing = volume.spacing[0]
    if slice_spacing > THICK_SLICE_MM:
        score *= THICK_SLICE_MM / slice_spacing
        findings.append(
            f"slices are {slice_spacing:.1f} mm apart: lesions under that size may be missed"
        )
    noise = noise_estimate(volume)
    fraction = noise / window_width if window_width > 0 else 0.0
    if fraction > NOISE_FRACTION_LIMIT:
        score *= NOISE_FRACTION_LIMIT / fraction
        findings.append(f"the image is noisy ({noise:.0f}, {fraction:.0%} of the model's window)")
    if any(n < p for n, p in zip(model_shape, patch_size, strict=True)):
        score *= 0.9
        findings.append(
            f"the volume covers {model_shape} model voxels, less than the model's patch "
            f"{patch_size}: the model sees padding"
        )
    for problem in volume.problems:
        score *= 0.9
        findings.append(problem.detail)
    return ImageQuality(score=round(score, 4), noise=round(noise, 3), findings=tuple(findings))
