"""RTSTRUCT contours become voxels by the even-odd rule at voxel centres, on the slice each
contour is drawn on; contours off the series' slice planes are refused."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.dicom import assemble_series, read_dicom
from adapters.dicom.rtstruct import RtStructReader, even_odd_crossings
from domain.errors import InvalidInput
from tests.fixtures.imaging import synthetic_ct_series
from tests.fixtures.segmentation import rtstruct


def square(volume, k, i0, j0, i1, j1):
    """A contour through the given continuous voxel indices on slice k, in LPS mm."""
    corners = [(i0, j0, k), (i1, j0, k), (i1, j1, k), (i0, j1, k)]
    return volume.index_to_patient(np.array(corners, dtype=float))


@pytest.fixture
def series_and_volume():
    series = synthetic_ct_series(slices=5, rows=12, columns=10)
    return series, assemble_series([read_dicom(f) for f in series.files])


def test_a_square_covers_exactly_the_voxel_centres_inside_it():
    crossings = even_odd_crossings(
        np.array([1.5, 4.5, 4.5, 1.5]), np.array([2.5, 2.5, 6.5, 6.5]), (9, 8)
    )
    expected = np.zeros((9, 8), dtype=bool)
    expected[3:7, 2:5] = True
    assert np.array_equal(crossings % 2 == 1, expected)


def test_a_triangle_follows_its_slanted_edge():
    crossings = even_odd_crossings(np.array([0.0, 6.0, 0.0]), np.array([0.0, 6.0, 6.0]), (8, 8))
    inside = crossings % 2 == 1
    j, i = np.nonzero(inside)
    assert np.all(i <= j)
    assert inside[5, 0] and inside[5, 4] and not inside[2, 5]


def test_a_contour_inside_another_on_the_same_slice_is_a_hole(series_and_volume):
    series, volume = series_and_volume
    outer = square(volume, 2, 0.5, 0.5, 8.5, 10.5)
    inner = square(volume, 2, 2.5, 3.5, 5.5, 6.5)
    data = rtstruct(series, {"ring": [outer, inner]})

    (ring,) = RtStructReader().read(data, series.files, volume)

    expected = np.zeros(volume.shape, dtype=bool)
    expected[2, 1:11, 1:9] = True
    expected[2, 4:7, 3:6] = False
    assert np.array_equal(ring.mask, expected)


def test_contours_on_several_slices_fill_each_slice_and_an_roi_without_contours_is_empty(
    series_and_volume,
):
    series, volume = series_and_volume
    contours = [square(volume, k, 1.5, 1.5, 3.5, 4.5) for k in (1, 3)]
    data = rtstruct(series, {"pair": contours, "nothing": []})

    pair, nothing = RtStructReader().read(data, series.files, volume)

    assert pair.mask.sum(axis=(1, 2)).tolist() == [0, 6, 0, 6, 0]
    assert nothing.name == "nothing" and not nothing.mask.any()


@pytest.mark.parametrize(
    ("slice_index", "reason"),
    [(2.5, "does not lie on a slice plane"), (7.0, "outside the series")],
)
def test_contours_off_the_series_slices_are_refused(series_and_volume, slice_index, reason):
    series, volume = series_and_volume
    data = rtstruct(series, {"stray": [square(volume, slice_index, 1.5, 1.5, 3.5, 4.5)]})

    with pytest.raises(InvalidInput, match=reason):
        RtStructReader().read(data, series.files, volume)


def test_an_rtstruct_that_names_no_series_is_checked_by_frame_of_reference(series_and_volume):
    series, volume = series_and_volume
    contour = [square(volume, 2, 1.5, 1.5, 3.5, 4.5)]
    data = rtstruct(
        series, {"x": contour}, referenced_series_uid="", frame_of_reference_uid="1.2.3"
    )

    with pytest.raises(InvalidInput, match=r"another series|frame of reference"):
        RtStructReader().read(data, series.files, volume)


def test_an_rtstruct_that_names_no_series_but_the_series_frame_of_reference_is_read(
    series_and_volume,
):
    series, volume = series_and_volume
    contour = [square(volume, 2, 1.5, 1.5, 3.5, 4.5)]
    data = rtstruct(series, {"x": contour}, referenced_series_uid="")

    (structure,) = RtStructReader().read(data, series.files, volume)

    assert structure.mask.sum() == 6
