"""A DICOM SEG written for a label map re-reads, in pydicom and highdicom, on the same voxels of
the source series: whatever the file order, slice direction, orientation or multi-frame layout."""

from __future__ import annotations

import io
import random

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread

from adapters.dicom import assemble_series, read_dicom
from adapters.dicom.segmentation import HighdicomSegmentationWriter
from domain.errors import InvalidInput
from domain.ports.segmentation import Segment, SegmentationSource, SegmentationWriter
from tests.fixtures.imaging import rotation_matrix, synthetic_ct_series
from tests.fixtures.segmentation import (
    asymmetric_labels,
    enhanced_ct,
    slice_uids_in_volume_order,
)

SEGMENTS = (
    Segment(number=1, label="lesion 1", description="left upper"),
    Segment(number=2, label="lesion 2"),
)


def source_of(files):
    return SegmentationSource(
        files=tuple(files), algorithm_name="demo-lesion-unet", algorithm_version="0.1.0"
    )


def volume_of(files):
    return assemble_series([read_dicom(f) for f in files])


def labels_by_pydicom_positions(data, volume):
    """The SEG's label map on the volume's grid, placed from each frame's own
    ImagePositionPatient with pydicom alone (no highdicom, no code under test)."""
    seg = dcmread(io.BytesIO(data))
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    result = np.zeros(volume.shape, dtype=np.uint16)
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        i, j, k = np.rint(volume.patient_to_index(position)).astype(int)
        assert (i, j) == (0, 0)
        assert np.allclose(volume.index_to_patient([0, 0, k]), position, atol=1e-3)
        identification = item.get("SegmentIdentificationSequence") or (
            seg.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
        )
        number = int(identification[0].ReferencedSegmentNumber)
        result[k][frame > 0] = number
    return result


def labels_by_highdicom_volume(data, volume):
    """The SEG's label map resampled (nearest voxel centre) from highdicom's own volume."""
    seg = hd.seg.segread(io.BytesIO(data))
    hd_volume = seg.get_volume(combine_segments=True)
    array = hd_volume.array
    inverse = np.linalg.inv(hd_volume.affine)
    k, j, i = np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3)
    patient = volume.index_to_patient(ijk)
    index = patient @ inverse[:3, :3].T + inverse[:3, 3]
    rounded = np.rint(index).astype(int)
    assert np.allclose(index, rounded, atol=1e-3)
    inside = np.all((rounded >= 0) & (rounded < np.array(array.shape[:3])), axis=1)
    result = np.zeros(len(ijk), dtype=np.uint16)
    a, b, c = rounded[inside].T
    result[inside] = array[a, b, c]
    return result.reshape(volume.shape)


@pytest.mark.parametrize(
    ("rotation", "tilt", "order"),
    [
        (None, 0.0, "shuffled"),
        (None, 0.0, "reversed"),
        (rotation_matrix(180, 0, 0), 0.0, "shuffled"),
        (rotation_matrix(25, -10, 40), 0.0, "shuffled"),
        (None, 15.0, "reversed"),
    ],
    ids=["axial", "axial-reversed-files", "feet-first", "oblique", "gantry-tilt"],
)
def test_a_seg_re_reads_voxel_by_voxel_on_the_source_grid(rotation, tilt, order):
    series = synthetic_ct_series(
        slices=7, rows=9, columns=8, rotation=rotation, gantry_tilt_deg=tilt
    )
    files = list(series.files)
    if order == "shuffled":
        random.Random(3).shuffle(files)
    else:
        files.reverse()
    volume = volume_of(files)
    labels = asymmetric_labels(volume.shape)
    writer: SegmentationWriter = HighdicomSegmentationWriter()

    data = writer.write(source_of(files), volume, labels, SEGMENTS)

    assert np.array_equal(labels_by_pydicom_positions(data, volume), labels)
    if not tilt:  # highdicom's get_volume needs slices stacked along their normal, unsheared
        assert np.array_equal(labels_by_highdicom_volume(data, volume), labels)
    seg = hd.seg.segread(io.BytesIO(data))
    by_source = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=slice_uids_in_volume_order(series, volume),
        combine_segments=True,
    )
    assert np.array_equal(by_source, labels)


def test_a_seg_references_its_series_and_names_its_algorithm_and_segments():
    series = synthetic_ct_series(slices=5, rows=9, columns=8)
    volume = volume_of(series.files)

    data = HighdicomSegmentationWriter().write(
        source_of(series.files), volume, asymmetric_labels(volume.shape), SEGMENTS
    )

    seg = dcmread(io.BytesIO(data))
    assert seg.Modality == "SEG"
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == series.study_instance_uid
    assert seg.SeriesInstanceUID != series.series_instance_uid
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == series.series_instance_uid
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == set(
        series.sop_instance_uids
    )
    assert seg.PatientID == "SYN-0001"
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == ["lesion 1", "lesion 2"]
    assert seg.SegmentSequence[0].SegmentDescription == "left upper"
    (algorithm,) = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("demo-lesion-unet", "0.1.0")
    assert seg.SegmentSequence[1].SegmentAlgorithmType == "AUTOMATIC"


def test_frames_without_any_structure_are_left_out():
    series = synthetic_ct_series(slices=6, rows=9, columns=8)
    volume = volume_of(series.files)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[2, 3:5, 3:5] = 1

    data = HighdicomSegmentationWriter().write(
        source_of(series.files), volume, labels, SEGMENTS[:1]
    )

    assert dcmread(io.BytesIO(data)).NumberOfFrames == 1
    assert np.array_equal(labels_by_pydicom_positions(data, volume), labels)


def test_an_all_background_label_map_with_a_segment_writes_an_empty_seg():
    series = synthetic_ct_series(slices=4, rows=9, columns=8)
    volume = volume_of(series.files)
    labels = np.zeros(volume.shape, dtype=np.uint16)

    data = HighdicomSegmentationWriter().write(
        source_of(series.files), volume, labels, SEGMENTS[:1]
    )

    assert not labels_by_pydicom_positions(data, volume).any()


def test_no_segments_means_no_seg():
    series = synthetic_ct_series(slices=4, rows=9, columns=8)
    volume = volume_of(series.files)
    labels = np.zeros(volume.shape, dtype=np.uint16)

    with pytest.raises(InvalidInput, match="at least one segment"):
        HighdicomSegmentationWriter().write(source_of(series.files), volume, labels, [])


def test_an_enhanced_multi_frame_source_gets_its_frames_placed_by_position():
    data_ct, _ = enhanced_ct([2, 0, 3, 1], rows=9, columns=8)
    volume = volume_of([data_ct])
    labels = asymmetric_labels(volume.shape)

    data = HighdicomSegmentationWriter().write(source_of([data_ct]), volume, labels, SEGMENTS)

    assert np.array_equal(labels_by_pydicom_positions(data, volume), labels)
    assert np.array_equal(labels_by_highdicom_volume(data, volume), labels)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("shape", "label map"),
        ("label", "no segment"),
        ("numbers", "segment numbers"),
        ("other-series", "series"),
        ("missing-file", "no source frame"),
        ("not-dicom", "not a readable DICOM|not a DICOM"),
    ],
)
def test_inputs_that_cannot_make_an_aligned_seg_are_refused(change, reason):
    series = synthetic_ct_series(slices=5, rows=9, columns=8)
    volume = volume_of(series.files)
    files = list(series.files)
    labels = asymmetric_labels(volume.shape)
    segments = list(SEGMENTS)
    if change == "shape":
        labels = labels[:, :, :-1]
    elif change == "label":
        labels[0, 0, 0] = 3
    elif change == "numbers":
        segments = [Segment(number=1, label="a"), Segment(number=3, label="b")]
    elif change == "other-series":
        files[2] = synthetic_ct_series(slices=5, rows=9, columns=8).files[2]
    elif change == "missing-file":
        del files[3]
    else:
        files[0] = b"PNG not really"

    with pytest.raises(InvalidInput, match=reason):
        HighdicomSegmentationWriter().write(source_of(files), volume, labels, segments)
