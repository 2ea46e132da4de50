"""Every reader honours one contract: a file is read, decoded and rendered, or refused with
``InvalidInput`` and a reason; never any other exception.

The core case is every file that ships in pydicom's test data (broken ones, non-DICOM ones and
non-image objects included), then NIfTI, PNG and JPEG files made here, and random bytes.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import msgspec
import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_files

from adapters.dicom import DicomImage, assemble_series, read_dicom
from adapters.images import ConvertedImage, RenderFormat, detect_format, read_image, render
from domain.errors import InvalidInput
from domain.imaging import ImageFormat, ProblemCode, flip_lps_ras
from domain.studies import Modality, Window
from tests.fixtures.imaging import rotation_matrix, synthetic_ct_series

PYDICOM_FILES = sorted(Path(f) for f in get_testdata_files() if Path(f).is_file())
PYDICOM_ROOT = Path(get_testdata_files("CT_small.dcm")[0]).parent
PIXEL_TAGS = {"7FE00010", "7FE00008", "7FE00009"}


def tags_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from tags_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from tags_in(item)


def read_decode_render(data: bytes) -> DicomImage | ConvertedImage:
    """The whole path an upload takes; raises InvalidInput or returns the checked image."""
    image = read_image(data)
    frames = image.frames()
    for index in {0, frames.number_of_frames - 1}:
        png = render(frames, frame=index, format="png")
        with Image.open(io.BytesIO(png)) as picture:
            assert picture.format == "PNG"
            assert picture.size == (frames.columns, frames.rows)
            assert picture.mode == ("RGB" if frames.is_color else "L")
    header = image.fields.header
    assert not PIXEL_TAGS & set(tags_in(header))
    msgspec.json.encode(header)
    return image


def test_pydicom_ships_test_files_for_the_corpus_test():
    assert len(PYDICOM_FILES) > 150


@pytest.mark.filterwarnings("ignore::UserWarning")  # some corpus files are broken on purpose
@pytest.mark.parametrize(
    "path", PYDICOM_FILES, ids=[str(p.relative_to(PYDICOM_ROOT)) for p in PYDICOM_FILES]
)
def test_every_pydicom_test_file_is_rendered_or_refused_with_a_reason(path):
    data = path.read_bytes()
    try:
        image = read_decode_render(data)
    except InvalidInput as refused:
        assert len(refused.detail) > 10
        return
    assert image.format is ImageFormat.DICOM
    assert image.fields.instance.sop_instance_uid


ACCEPTED = {
    "CT_small.dcm": (1, 128, 128),
    "MR_small_bigendian.dcm": (1, 64, 64),
    "MR_small_implicit.dcm": (1, 64, 64),
    "MR_small_RLE.dcm": (1, 64, 64),
    "MR_small_jp2klossless.dcm": (1, 64, 64),
    "MR_small_jpeg_ls_lossless.dcm": (1, 64, 64),
    "SC_rgb_jpeg_gdcm.dcm": (1, 100, 100, 3),  # JPEG lossless
    "SC_rgb_dcmtk_+eb+cy+s2.dcm": (1, 100, 100, 3),  # JPEG baseline, YBR_FULL_422
    "image_dfl.dcm": (1, 512, 512),  # deflated
    "examples_ybr_color.dcm": (30, 240, 320, 3),  # multi-frame color
    "examples_palette.dcm": (1, 350, 800, 3),
    "rtdose.dcm": (15, 10, 10),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("name", "shape"), ACCEPTED.items(), ids=list(ACCEPTED))
def test_each_supported_encoding_of_the_corpus_is_accepted_and_decoded(name, shape):
    image = read_decode_render((PYDICOM_ROOT / name).read_bytes())
    assert image.frames().pixels.shape == shape


def test_corpus_ct_values_are_hounsfield_units():
    frames = read_dicom((PYDICOM_ROOT / "CT_small.dcm").read_bytes()).frames()
    # CT_small: RescaleIntercept -1024, slope 1; stored 175 at [0, 0]
    assert frames.pixels[0, 0, 0] == pytest.approx(175 - 1024)


REFUSED = {
    "README.txt": "not a supported image",
    "JPEGLSNearLossless_08.dcm": "StudyInstanceUID (0020,000D)",
    "MR_truncated.dcm": "pixel data is truncated",
    "JPEG-lossy.dcm": "cannot be decoded",  # 12-bit JPEG Extended with a corrupt scan
    "rtplan.dcm": "no pixel data",
    "badVR.dcm": "NumberOfFrames '1A'",
    "dicomdirtests/DICOMDIR": "SOPClassUID (0008,0016)",
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("name", "reason"), REFUSED.items(), ids=list(REFUSED))
def test_broken_or_non_image_corpus_files_are_refused_naming_the_problem(name, reason):
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_decode_render((PYDICOM_ROOT / name).read_bytes())


def test_an_rt_dose_grid_becomes_a_volume_spaced_by_its_frame_offsets():
    image = read_dicom((PYDICOM_ROOT / "rtdose.dcm").read_bytes())
    offsets = [float(v) for v in image.dataset.GridFrameOffsetVector]
    volume = assemble_series([image])
    assert volume.shape == (15, 10, 10)
    assert volume.spacing[0] == pytest.approx(abs(offsets[1] - offsets[0]))


def a_nifti(rotation, spacing=(0.8, 0.9, 2.5), shape=(6, 5, 4), dtype=np.int16):
    data = (np.arange(np.prod(shape)).reshape(shape) - 30).astype(dtype)
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array(spacing)
    affine[:3, 3] = (12.0, -40.0, 7.5)
    return nib.Nifti1Image(data, affine), data, affine


@pytest.mark.parametrize("compressed", [False, True], ids=["nii", "nii.gz"])
def test_a_nifti_volume_keeps_its_affine_and_voxel_sizes_in_lps(compressed):
    rotation = rotation_matrix(10, -20, 35)
    image, data, affine_ras = a_nifti(rotation)
    payload = image.to_bytes()
    payload = gzip.compress(payload) if compressed else payload
    read = read_image(payload, modality=Modality.MR)
    assert isinstance(read, ConvertedImage)
    assert read.format is ImageFormat.NIFTI
    volume = read.volume
    assert volume.shape == (4, 5, 6)
    assert volume.spacing == pytest.approx((2.5, 0.9, 0.8), rel=1e-6)
    assert np.allclose(volume.affine, flip_lps_ras(affine_ras), atol=1e-5)
    i, j, k = 5, 3, 2
    assert volume.voxels[k, j, i] == data[i, j, k]
    ras = affine_ras @ [i, j, k, 1]
    assert np.allclose(volume.index_to_patient([i, j, k]), [-ras[0], -ras[1], ras[2]], atol=1e-4)
    assert read.fields.series.modality is Modality.MR
    assert read.fields.instance.number_of_frames == 4
    assert read.fields.instance.pixel_spacing == pytest.approx((0.9, 0.8))
    assert read.fields.instance.content_type == "application/x-nifti"
    read_decode_render(payload)


def test_a_nifti_time_series_is_refused_saying_so():
    image = nib.Nifti1Image(np.zeros((4, 4, 3, 2), dtype=np.float32), np.eye(4))
    with pytest.raises(InvalidInput, match="4-D"):
        read_image(image.to_bytes())


def test_a_gzip_file_that_is_not_nifti_is_refused():
    with pytest.raises(InvalidInput, match="NIfTI"):
        read_image(gzip.compress(b"just some text, not an image"))


def picture_bytes(array, mode, format):
    buffer = io.BytesIO()
    picture = Image.fromarray(array)
    assert picture.mode == mode
    picture.save(buffer, format=format)
    return buffer.getvalue()


GRAY = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)
RGB = np.stack([GRAY, 255 - GRAY, np.full_like(GRAY, 40)], axis=-1)


def test_an_8_bit_grey_png_renders_back_to_the_same_pixels():
    data = picture_bytes(GRAY, "L", "PNG")
    image = read_image(data)
    assert image.format is ImageFormat.PNG
    rendered = render(image.frames(), format="png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(rendered))), GRAY)


@pytest.mark.parametrize(
    ("array", "mode", "format", "color"),
    [
        (GRAY, "L", "PNG", False),
        ((GRAY.astype(np.uint16) * 200), "I;16", "PNG", False),
        (RGB, "RGB", "PNG", True),
        (np.dstack([RGB, np.full_like(GRAY, 128)]), "RGBA", "PNG", True),
        (GRAY, "L", "JPEG", False),
        (RGB, "RGB", "JPEG", True),
    ],
    ids=["png-gray", "png-16bit", "png-rgb", "png-rgba", "jpeg-gray", "jpeg-rgb"],
)
def test_png_and_jpeg_become_a_one_slice_volume_with_a_synthetic_geometry(
    array, mode, format, color
):
    data = picture_bytes(array, mode, format)
    image = read_image(data)
    assert isinstance(image, ConvertedImage)
    assert image.format is ImageFormat(format.lower())
    volume = image.volume
    assert volume.shape == (1, 6, 8)
    assert volume.spacing == (1.0, 1.0, 1.0)
    assert np.array_equal(volume.direction, np.eye(3))
    assert volume.origin == (0.0, 0.0, 0.0)
    assert ProblemCode.MISSING_GEOMETRY in {p.code for p in volume.problems}
    assert image.frames().is_color is color
    fields = image.fields
    uids = {
        fields.study.study_instance_uid,
        fields.series.series_instance_uid,
        fields.instance.sop_instance_uid,
    }
    assert len(uids) == 3 and all(uid.startswith("1.2.826.0.1.3680043.8.498.") for uid in uids)
    assert fields.instance.content_type == f"image/{format.lower()}"
    read_decode_render(data)


def test_each_upload_of_a_picture_gets_new_uids():
    data = picture_bytes(GRAY, "L", "PNG")
    assert (
        read_image(data).fields.study.study_instance_uid
        != read_image(data).fields.study.study_instance_uid
    )


def test_rendering_honours_the_requested_window_and_format():
    series = synthetic_ct_series(slices=1)
    frames = read_image(series.files[0]).frames()
    lung = render(frames, window=Window(center=-600, width=1500), format="jpeg")
    assert Image.open(io.BytesIO(lung)).format == "JPEG"
    assert frames.display_window(0, requested=Window(center=-600, width=1500)).center == -600
    with pytest.raises(InvalidInput, match="'gif'"):
        render(frames, format="gif")
    with pytest.raises(InvalidInput, match="frame 3"):
        render(frames, frame=3)
    assert RenderFormat.parse("JPG") is RenderFormat.JPEG


def test_formats_are_recognised_by_content_not_by_name():
    assert detect_format(synthetic_ct_series(slices=1).files[0]) is ImageFormat.DICOM
    assert detect_format(picture_bytes(GRAY, "L", "PNG")) is ImageFormat.PNG
    assert detect_format(picture_bytes(GRAY, "L", "JPEG")) is ImageFormat.JPEG
    assert detect_format(a_nifti(np.eye(3))[0].to_bytes()) is ImageFormat.NIFTI
    assert detect_format(b"plain text") is None


VALID_FILES = [
    synthetic_ct_series(slices=1, rows=8, columns=8).files[0],
    picture_bytes(GRAY, "L", "PNG"),
    picture_bytes(RGB, "RGB", "JPEG"),
    a_nifti(np.eye(3))[0].to_bytes(),
    gzip.compress(a_nifti(np.eye(3))[0].to_bytes()),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_FILES), st.floats(min_value=0.0, max_value=0.999))
def test_a_truncated_file_is_either_still_readable_or_refused_with_a_reason(data, fraction):
    truncated = data[: int(len(data) * fraction)]
    try:
        read_decode_render(truncated)
    except InvalidInput as refused:
        assert refused.detail


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(
        [b"", b"\x00" * 128 + b"DICM", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\x1f\x8b"]
    ),
    st.binary(max_size=2048),
)
def test_random_bytes_behind_any_signature_are_refused_with_a_reason(signature, noise):
    with pytest.raises(InvalidInput):
        read_decode_render(signature + noise)
