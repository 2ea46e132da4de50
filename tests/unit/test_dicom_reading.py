"""DICOM files become fields, a bulk-free JSON header, HU frames and volumes; bad files a reason."""

from __future__ import annotations

import io
import random
from datetime import date

import msgspec
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from adapters.dicom import assemble_series, read_dicom
from domain.errors import InvalidInput
from domain.imaging import ImageFormat, ProblemCode
from domain.studies import Modality, Sex, Window
from tests.fixtures.imaging import (
    ct_slice_dataset,
    expected_hu,
    rotation_matrix,
    synthetic_ct_series,
    to_bytes,
)


def shuffled(files, seed=7):
    files = list(files)
    random.Random(seed).shuffle(files)
    return files


def assert_volume_matches_headers(volume, series):
    assert volume.shape == series.hu.shape
    assert np.array_equal(volume.voxels, series.hu)
    step = np.subtract(series.positions[1], series.positions[0])
    assert volume.spacing == pytest.approx((np.linalg.norm(step), *series.pixel_spacing), abs=1e-5)
    assert float(step @ np.array(series.normal)) == pytest.approx(series.slice_spacing, abs=1e-5)
    assert volume.voxel_volume_mm3 == pytest.approx(
        series.slice_spacing * series.pixel_spacing[0] * series.pixel_spacing[1], rel=1e-5
    )
    assert np.allclose(volume.direction[:, 0], series.row_cosine, atol=1e-6)
    assert np.allclose(volume.direction[:, 1], series.column_cosine, atol=1e-6)
    for k, position in enumerate(series.positions):
        assert np.allclose(volume.index_to_patient([0, 0, k]), position, atol=1e-4)
    row_spacing, column_spacing = series.pixel_spacing
    corner = np.array([volume.shape[2] - 1, volume.shape[1] - 1, 0])
    expected = (
        np.array(series.positions[0])
        + corner[0] * column_spacing * np.array(series.row_cosine)
        + corner[1] * row_spacing * np.array(series.column_cosine)
    )
    assert np.allclose(volume.index_to_patient(corner), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("rotation", "tilt"),
    [
        (None, 0.0),
        (rotation_matrix(25, -10, 40), 0.0),
        (rotation_matrix(0, 90, 0), 0.0),
        (None, 12.0),
    ],
    ids=["axial", "oblique", "sagittal", "gantry-tilt"],
)
def test_a_shuffled_series_assembles_into_a_volume_whose_geometry_matches_its_headers(
    rotation, tilt
):
    series = synthetic_ct_series(slices=7, rotation=rotation, gantry_tilt_deg=tilt)
    images = [read_dicom(data) for data in shuffled(series.files)]
    assert_volume_matches_headers(assemble_series(images), series)


def test_an_oblique_or_tilted_series_keeps_its_orientation_and_says_so():
    oblique = synthetic_ct_series(slices=4, rotation=rotation_matrix(25, -10, 40))
    volume = assemble_series([read_dicom(data) for data in oblique.files])
    assert ProblemCode.OBLIQUE in {p.code for p in volume.problems}
    tilted = synthetic_ct_series(slices=4, gantry_tilt_deg=12.0)
    volume = assemble_series([read_dicom(data) for data in tilted.files])
    assert ProblemCode.SHEARED in {p.code for p in volume.problems}


def test_a_series_with_a_missing_slice_is_refused_naming_the_gap_unless_resampled():
    series = synthetic_ct_series(slices=6, drop=frozenset({3}))
    images = [read_dicom(data) for data in shuffled(series.files)]
    with pytest.raises(InvalidInput, match="gap"):
        assemble_series(images)
    volume = assemble_series(images, resample_nonuniform=True)
    assert volume.shape[0] == 6
    assert volume.spacing[0] == pytest.approx(series.slice_spacing)


def test_instances_of_two_series_do_not_make_one_volume():
    first, second = synthetic_ct_series(slices=2), synthetic_ct_series(slices=2)
    images = [read_dicom(data) for data in first.files + second.files]
    with pytest.raises(InvalidInput, match="2 series"):
        assemble_series(images)


def test_the_fields_of_study_series_and_instance_are_read_from_the_header():
    series = synthetic_ct_series(slices=3, window=(50.0, 350.0))
    image = read_dicom(series.files[1])
    fields = image.fields
    assert image.format is ImageFormat.DICOM
    assert fields.study.study_instance_uid == series.study_instance_uid
    assert fields.study.patient.name == "Phantom^Synthetic"
    assert fields.study.patient.patient_id == "SYN-0001"
    assert fields.study.patient.age == "042Y"
    assert fields.study.patient.sex is Sex.OTHER
    assert fields.study.patient.birth_date == date(1984, 2, 29)
    assert fields.study.modality is Modality.CT
    assert fields.study.study_date == date(2026, 1, 15)
    assert fields.study.accession_number == "ACC-1"
    assert fields.study.description == "Synthetic CT phantom"
    assert fields.series.series_instance_uid == series.series_instance_uid
    assert (fields.series.series_number, fields.series.body_part_examined) == (3, "CHEST")
    assert fields.series.description == "axial 2.5 mm"
    instance = fields.instance
    assert instance.sop_instance_uid == series.sop_instance_uids[1]
    assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert instance.instance_number == 2
    assert (instance.rows, instance.columns, instance.number_of_frames) == (12, 10, 1)
    assert instance.pixel_spacing == series.pixel_spacing
    assert instance.slice_thickness == series.slice_spacing
    assert instance.image_position_patient == pytest.approx(series.positions[1])
    assert instance.image_orientation_patient == (1, 0, 0, 0, 1, 0)
    assert instance.window == Window(center=50, width=350)
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert instance.content_type == "application/dicom"


def test_an_unknown_modality_code_is_kept_as_other():
    ds = dcmread(io.BytesIO(synthetic_ct_series(slices=1).files[0]))
    ds.Modality = "SEG"
    assert read_dicom(to_bytes(ds)).fields.series.modality is Modality.OTHER


def test_the_header_json_has_no_pixel_data_and_encodes_with_msgspec():
    header = read_dicom(synthetic_ct_series(slices=1).files[0]).fields.header
    assert "7FE00010" not in header
    assert header["00100020"] == {"vr": "LO", "Value": ["SYN-0001"]}
    assert header["00280030"]["Value"] == [0.75, 0.5]
    decoded = msgspec.json.decode(msgspec.json.encode(header))
    assert decoded == header


def test_large_binary_values_are_left_out_of_the_header_and_small_ones_kept():
    ds = dcmread(io.BytesIO(synthetic_ct_series(slices=1).files[0]))
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 4096)  # OverlayData, 8 KiB
    ds.add_new(0x00091010, "OB", b"tiny")  # a small private blob
    header = read_dicom(to_bytes(ds)).fields.header
    assert "60003000" not in header
    assert header["00091010"]["InlineBinary"] == "dGlueQ=="


def test_pixels_are_decoded_in_hounsfield_units_after_rescale():
    series = synthetic_ct_series(slices=1)
    frames = read_dicom(series.files[0]).frames()
    assert frames.pixels.dtype == np.float32
    assert np.array_equal(frames.pixels[0], series.hu[0])
    ds = dcmread(io.BytesIO(series.files[0]))
    ds.RescaleSlope = "2"
    ds.RescaleIntercept = "-2048"
    doubled = read_dicom(to_bytes(ds)).frames().pixels[0]
    assert np.array_equal(doubled, 2 * series.hu[0])


@pytest.mark.parametrize(
    "transfer_syntax",
    [RLELossless, JPEG2000Lossless, DeflatedExplicitVRLittleEndian],
    ids=["rle", "jpeg2000-lossless", "deflate"],
)
def test_compressed_transfer_syntaxes_decode_to_the_same_hounsfield_units(transfer_syntax):
    hu = expected_hu(1, 32, 32)[0]  # OpenJPEG needs at least 32x32 for its default levels
    ds = ct_slice_dataset(
        hu=hu,
        position=(0.0, 0.0, 0.0),
        orientation=(1, 0, 0, 0, 1, 0),
        pixel_spacing=(1.0, 1.0),
        slice_thickness=1.0,
        instance_number=1,
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.4",
        sop_instance_uid="1.2.3.4.5",
    )
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    else:
        ds.compress(transfer_syntax)
    image = read_dicom(to_bytes(ds))
    assert image.fields.instance.transfer_syntax_uid == transfer_syntax
    assert np.array_equal(image.frames().pixels[0], hu)


def test_a_file_missing_a_required_uid_is_refused_naming_it():
    ds = dcmread(io.BytesIO(synthetic_ct_series(slices=1).files[0]))
    del ds.StudyInstanceUID
    ds.SeriesInstanceUID = ""
    with pytest.raises(InvalidInput) as refused:
        read_dicom(to_bytes(ds))
    assert "StudyInstanceUID (0020,000D)" in refused.value.detail
    assert "SeriesInstanceUID (0020,000E)" in refused.value.detail
    assert "SOPInstanceUID" not in refused.value.detail


def test_an_image_without_pixel_data_is_refused_even_when_non_images_are_allowed():
    ds = dcmread(io.BytesIO(synthetic_ct_series(slices=1).files[0]))
    del ds.PixelData
    data = to_bytes(ds)
    with pytest.raises(InvalidInput, match=r"no pixel data \(7FE0,0010\) in this CT Image Storage"):
        read_dicom(data)
    with pytest.raises(InvalidInput, match="no pixel data"):
        read_dicom(data, require_pixel_data=False)


def test_a_non_image_object_is_accepted_only_when_asked_for_and_has_no_frames():
    from pydicom.data import get_testdata_file

    with open(get_testdata_file("reportsi.dcm"), "rb") as file:
        data = file.read()
    with pytest.raises(InvalidInput, match="Basic Text SR Storage"):
        read_dicom(data)
    report = read_dicom(data, require_pixel_data=False)
    assert report.fields.instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.88.11"
    with pytest.raises(InvalidInput, match="no pixel data"):
        report.frames()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, this is not an image at all" * 10, "not a DICOM file"),
        (b"\x00" * 128 + b"DICM" + b"\xff" * 50, "missing required attribute"),
    ],
    ids=["empty", "text", "garbage-after-prefix"],
)
def test_bytes_that_are_not_dicom_are_refused_with_a_reason(data, reason):
    with pytest.raises(InvalidInput, match=reason):
        read_dicom(data)


def test_truncated_pixel_data_is_refused_before_decoding():
    data = synthetic_ct_series(slices=1, rows=32, columns=32).files[0]
    with pytest.raises(InvalidInput, match="truncated"):
        read_dicom(data[: len(data) - 100])


def test_an_enormous_declared_image_is_refused_before_decoding():
    ds = dcmread(io.BytesIO(synthetic_ct_series(slices=1).files[0]))
    ds.NumberOfFrames = 100_000
    ds.Rows = ds.Columns = 4096
    with pytest.raises(InvalidInput, match="MiB limit"):
        read_dicom(to_bytes(ds))


def an_enhanced_ct(order):
    """A 4-frame Enhanced CT whose frames are stored in ``order`` of their slice index."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    base = dcmread(io.BytesIO(synthetic_ct_series(slices=1, rows=6, columns=5).files[0]))
    hu = expected_hu(len(order), 6, 5)
    ds = base.copy()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    for keyword in (
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
    ):
        delattr(ds, keyword)
    ds.NumberOfFrames = len(order)
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.6, 0.4]
    measures.SliceThickness = 1.25
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in order:
        position, transform, item = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [-10.0, 5.0, 100.0 + 1.25 * k]
        transform.RescaleIntercept = -1000 - k  # a different intercept on every frame
        transform.RescaleSlope = 1
        item.PlanePositionSequence = Sequence([position])
        item.PixelValueTransformationSequence = Sequence([transform])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    stored = np.stack([hu[k] + 1000 + k for k in order]).astype("<i2")
    ds.PixelData = stored.tobytes()
    return to_bytes(ds), hu


def test_an_enhanced_multi_frame_ct_is_sorted_and_rescaled_frame_by_frame():
    data, hu = an_enhanced_ct([2, 0, 3, 1])
    image = read_dicom(data)
    assert image.fields.instance.number_of_frames == 4
    assert image.fields.instance.pixel_spacing == (0.6, 0.4)
    volume = assemble_series([image])
    assert np.array_equal(volume.voxels, hu)
    assert volume.spacing == pytest.approx((1.25, 0.6, 0.4))
    assert np.allclose(volume.origin, (-10.0, 5.0, 100.0))
