"""The IBSI digital phantom: every morphological feature within its IBSI reference tolerance.

Reference values and tolerances: IBSI reference manual (Zwanenburg et al., Radiology 2020;
arXiv 1612.07003), digital phantom, copied with the phantom into tests/fixtures/ibsi (CC BY 4.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from domain.imaging import Volume, flip_lps_ras
from domain.metrics import TumorMetrics, compute_tumor_metrics, compute_tumor_metrics_in

PHANTOM = Path(__file__).resolve().parents[1] / "fixtures" / "ibsi"
REFERENCE = json.loads((PHANTOM / "reference_morphology.json").read_text())["features"]

FIELD_OF = {
    "volume_voxel_counting_mm3": "volume_voxel_mm3",
    "surface_to_volume_ratio_per_mm": "surface_to_volume_ratio",
}
"""Reference names that differ from TumorMetrics field names; the others are the same."""


def read_nifti(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The image as a (z, y, x) array and its NIfTI (RAS, (i, j, k) = (x, y, z)) affine."""
    image = nib.load(PHANTOM / name)
    return np.asarray(image.dataobj).transpose(2, 1, 0), image.affine


@pytest.fixture(scope="module")
def phantom() -> Volume:
    voxels, affine = read_nifti("phantom.nii.gz")
    return Volume.from_affine(voxels, flip_lps_ras(affine))


@pytest.fixture(scope="module")
def mask() -> np.ndarray:
    voxels, _ = read_nifti("mask.nii.gz")
    return voxels > 0


@pytest.fixture(scope="module")
def metrics(phantom: Volume, mask: np.ndarray) -> TumorMetrics:
    return compute_tumor_metrics_in(phantom, mask, intensities=phantom.voxels)


def test_the_phantom_is_5_by_4_by_4_voxels_of_2_mm_with_74_in_the_mask(
    phantom: Volume, mask: np.ndarray
):
    assert phantom.shape == (4, 4, 5)  # (z, y, x); NIfTI stores (x, y, z) = (5, 4, 4)
    assert phantom.spacing == (2.0, 2.0, 2.0)
    assert int(mask.sum()) == 74
    assert float(phantom.voxels[mask].min()) >= 0  # IBSI weights the centre of mass by these


@pytest.mark.parametrize("feature", sorted(REFERENCE))
def test_each_feature_matches_the_ibsi_reference_within_its_tolerance(
    metrics: TumorMetrics, feature: str
):
    value, tolerance = REFERENCE[feature]
    measured = getattr(metrics, FIELD_OF.get(feature, feature))
    assert abs(measured - value) <= tolerance, f"{feature}: {measured} vs {value} +- {tolerance}"


def test_the_reference_covers_the_morphology_the_platform_reports():
    reported = {
        "volume_mesh_mm3",
        "volume_voxel_mm3",
        "surface_area_mm2",
        "surface_to_volume_ratio",
        "compactness_1",
        "compactness_2",
        "spherical_disproportion",
        "sphericity",
        "asphericity",
        "centre_of_mass_shift_mm",
        "maximum_3d_diameter_mm",
        "major_axis_length_mm",
        "minor_axis_length_mm",
        "least_axis_length_mm",
        "elongation",
        "flatness",
    }
    assert {FIELD_OF.get(feature, feature) for feature in REFERENCE} == reported


def test_the_raw_nifti_orientation_gives_the_same_morphology(
    metrics: TumorMetrics, phantom: Volume, mask: np.ndarray
):
    # RAS (not flipped to LPS): a 180 degree turn about z, which changes no shape feature.
    direction = np.diag([-1.0, -1.0, 1.0])
    turned = compute_tumor_metrics(
        mask, phantom.spacing, direction=direction, intensities=phantom.voxels
    )
    for feature in REFERENCE:
        field = FIELD_OF.get(feature, feature)
        assert getattr(turned, field) == pytest.approx(getattr(metrics, field), rel=1e-9)


def test_without_intensities_the_centre_of_mass_shift_is_zero(
    phantom: Volume, mask: np.ndarray, metrics: TumorMetrics
):
    plain = compute_tumor_metrics_in(phantom, mask)
    assert plain.centre_of_mass_shift_mm == 0.0
    assert plain.volume_mesh_mm3 == metrics.volume_mesh_mm3
