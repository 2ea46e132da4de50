"""SEGs made by other tools read back onto the series: label-map SEGs (one frame holds every
segment's number) and fractional SEGs (a voxel belongs where its value passes half the maximum)."""

from __future__ import annotations

import io
import random

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes

from adapters.dicom import assemble_series, read_dicom
from adapters.dicom.seg_reading import HighdicomSegmentationReader
from tests.fixtures.imaging import rotation_matrix, synthetic_ct_series

TYPE2 = ("StudyID", "ReferringPhysicianName", "StudyTime")


def description(number: int) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=f"structure {number}",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type="MANUAL",
    )


def seg_by_highdicom(files, pixel_array, segmentation_type: str) -> bytes:
    """A SEG written by highdicom itself, sources in slice order (file order of ``files``)."""
    sources = []
    for data in files:
        ds = dcmread(io.BytesIO(data))
        for keyword in TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, "")
        sources.append(ds)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixel_array,
        segmentation_type=segmentation_type,
        segment_descriptions=[description(1), description(2)],
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="another tool",
        manufacturer_model_name="m",
        software_versions="1",
        device_serial_number="1",
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("segmentation_type", ["LABELMAP", "FRACTIONAL"])
def test_label_map_and_fractional_segs_read_back_segment_by_segment(segmentation_type):
    series = synthetic_ct_series(slices=5, rows=9, columns=8, rotation=rotation_matrix(10, 0, 30))
    labels = np.zeros((5, 9, 8), dtype=np.uint8)
    labels[1:3, 2:5, 2:4] = 1
    labels[3, 6, 5:7] = 2
    if segmentation_type == "LABELMAP":
        pixel_array = labels
    else:
        pixel_array = np.stack(
            [(labels == 1) * np.float32(0.9), (labels == 2) * np.float32(0.7)], axis=-1
        )
        pixel_array[0, 0, 0, 0] = 0.3  # under half: not part of the structure
    data = seg_by_highdicom(series.files, pixel_array, segmentation_type)
    files = list(series.files)
    random.Random(2).shuffle(files)
    volume = assemble_series([read_dicom(f) for f in files])

    first, second = HighdicomSegmentationReader().read(data, files, volume)

    assert (first.name, second.name) == ("structure 1", "structure 2")
    assert np.array_equal(first.mask, labels == 1)
    assert np.array_equal(second.mask, labels == 2)
