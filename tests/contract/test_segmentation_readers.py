"""Every SegmentationReader honours one contract: the structures of a segmentation file come
back as masks on the source series' grid (same voxels whatever the file or frame order), named
as in the file; files that are not a segmentation of that series are refused with
``InvalidInput`` and a reason.

Adapters: the SEG reader (files from the SEG writer), the RTSTRUCT reader (contours of the
same spheres), and the dispatching reader given each kind of file.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from adapters.dicom import assemble_series, read_dicom
from adapters.dicom.rtstruct import RtStructReader
from adapters.dicom.seg_reading import HighdicomSegmentationReader
from adapters.dicom.segmentation import HighdicomSegmentationWriter
from adapters.dicom.structures import DicomSegmentationReader
from domain.errors import InvalidInput
from domain.imaging import Volume
from domain.ports.segmentation import Segment, SegmentationReader, SegmentationSource
from tests.fixtures.imaging import SyntheticSeries, rotation_matrix, synthetic_ct_series
from tests.fixtures.segmentation import rtstruct, sphere_contours, sphere_mask, volume_centre

Sphere = tuple[str, tuple[float, float, float], float]
MakeFile = Callable[[SyntheticSeries, Volume, list[Sphere]], bytes]


def seg_file(series: SyntheticSeries, volume: Volume, spheres: list[Sphere]) -> bytes:
    labels = np.zeros(volume.shape, dtype=np.uint16)
    for number, (_, centre, radius) in enumerate(spheres, start=1):
        labels[sphere_mask(centre, radius, volume)] = number
    segments = [Segment(number=n, label=s[0]) for n, s in enumerate(spheres, start=1)]
    source = SegmentationSource(
        files=tuple(series.files), algorithm_name="test", algorithm_version="1"
    )
    return HighdicomSegmentationWriter().write(source, volume, labels, segments)


def rtstruct_file(series: SyntheticSeries, volume: Volume, spheres: list[Sphere]) -> bytes:
    rois = {name: sphere_contours(centre, radius, volume) for name, centre, radius in spheres}
    return rtstruct(series, rois)


@dataclass(frozen=True)
class Adapter:
    reader: SegmentationReader
    make_file: MakeFile


ADAPTERS = {
    "seg": Adapter(HighdicomSegmentationReader(), seg_file),
    "rtstruct": Adapter(RtStructReader(), rtstruct_file),
    "dicom-seg": Adapter(DicomSegmentationReader(), seg_file),
    "dicom-rtstruct": Adapter(DicomSegmentationReader(), rtstruct_file),
}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return ADAPTERS[request.param]


def sphere_series(rotation=None) -> tuple[SyntheticSeries, Volume, list[bytes]]:
    series = synthetic_ct_series(
        slices=26,
        rows=36,
        columns=34,
        pixel_spacing=(0.75, 0.8),
        slice_spacing=1.25,
        rotation=rotation,
    )
    files = list(series.files)
    random.Random(11).shuffle(files)
    return series, assemble_series([read_dicom(f) for f in files]), files


@pytest.mark.parametrize(
    "rotation",
    [None, rotation_matrix(180, 0, 0), rotation_matrix(20, -15, 35)],
    ids=["axial", "feet-first", "oblique"],
)
def test_a_sphere_reads_back_within_3_percent_of_its_analytic_volume(adapter, rotation):
    series, volume, files = sphere_series(rotation)
    centre, radius = volume_centre(volume), 10.0
    data = adapter.make_file(series, volume, [("tumour", centre, radius)])

    (structure,) = adapter.reader.read(data, files, volume)

    assert structure.name == "tumour"
    assert structure.mask.shape == volume.shape
    assert structure.mask.dtype == np.bool_
    measured = structure.mask.sum() * volume.voxel_volume_mm3
    assert measured == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.03)
    expected = sphere_mask(centre, radius, volume)
    dice = 2 * (structure.mask & expected).sum() / (structure.mask.sum() + expected.sum())
    assert dice > 0.97


def test_each_structure_lands_on_its_own_voxels_in_file_order(adapter):
    series, volume, files = sphere_series()
    x, y, z = volume_centre(volume)
    spheres = [("upper", (x - 5, y - 5, z + 7), 4.0), ("lower", (x + 6, y + 4, z - 8), 5.0)]
    data = adapter.make_file(series, volume, spheres)

    structures = adapter.reader.read(data, files, volume)

    assert [s.name for s in structures] == ["upper", "lower"]
    for structure, (_, centre, radius) in zip(structures, spheres, strict=True):
        expected = sphere_mask(centre, radius, volume)
        assert (structure.mask & ~expected).sum() <= 0.05 * expected.sum()
        assert (expected & ~structure.mask).sum() <= 0.05 * expected.sum()
    assert not (structures[0].mask & structures[1].mask).any()


def test_a_seg_and_an_rtstruct_of_the_same_sphere_give_nearly_the_same_mask():
    series, volume, files = sphere_series(rotation_matrix(20, -15, 35))
    spheres: list[Sphere] = [("tumour", volume_centre(volume), 8.0)]

    (from_seg,) = HighdicomSegmentationReader().read(
        seg_file(series, volume, spheres), files, volume
    )
    (from_rt,) = RtStructReader().read(rtstruct_file(series, volume, spheres), files, volume)

    dice = 2 * (from_seg.mask & from_rt.mask).sum() / (from_seg.mask.sum() + from_rt.mask.sum())
    assert dice > 0.97


def test_a_segmentation_of_another_series_is_refused(adapter):
    _, volume, files = sphere_series()
    other = synthetic_ct_series(
        slices=26, rows=36, columns=34, pixel_spacing=(0.75, 0.8), slice_spacing=1.25
    )
    other_volume = assemble_series([read_dicom(f) for f in other.files])
    data = adapter.make_file(other, other_volume, [("tumour", volume_centre(other_volume), 5.0)])

    with pytest.raises(InvalidInput, match=r"another series|another frame of reference"):
        adapter.reader.read(data, files, volume)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "not a"),
        (None, "not a DICOM SEG|not an RT Structure Set|neither"),
    ],
    ids=["empty", "not-dicom", "ct-image"],
)
def test_files_that_are_no_segmentation_are_refused(adapter, data, reason):
    series, volume, files = sphere_series()
    if data is None:
        data = series.files[0]

    with pytest.raises(InvalidInput, match=reason):
        adapter.reader.read(data, files, volume)


def test_a_segmentation_names_the_series_it_was_drawn_on(adapter):
    series, volume, _ = sphere_series()
    data = adapter.make_file(series, volume, [("tumour", volume_centre(volume), 5.0)])

    assert adapter.reader.referenced_series(data) == {series.series_instance_uid}


@pytest.mark.parametrize("data", [b"", b"plain text, not DICOM"], ids=["empty", "not-dicom"])
def test_no_series_is_named_by_a_file_that_is_not_dicom(adapter, data):
    with pytest.raises(InvalidInput):
        adapter.reader.referenced_series(data)


def test_no_series_is_named_by_an_image(adapter):
    series, _, _ = sphere_series()

    with pytest.raises(InvalidInput, match=r"not a DICOM SEG|not an RT Structure Set|neither"):
        adapter.reader.referenced_series(series.files[0])
