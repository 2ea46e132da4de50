"""Every VolumeReader turns the stored files of one series into the volume ingest saw, in any
order, or refuses them with ``InvalidInput`` and a reason."""

from __future__ import annotations

import io
import random

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from adapters.imaging_volumes import StoredFileVolumeReader
from domain.errors import InvalidInput
from domain.imaging import ImageFormat
from domain.ports.imaging import StoredFile, VolumeReader
from tests.fixtures.imaging import rotation_matrix, synthetic_ct_series

READERS = {"stored-files": StoredFileVolumeReader}


@pytest.fixture(params=sorted(READERS))
def reader(request: pytest.FixtureRequest) -> VolumeReader:
    return READERS[request.param]()


def dicom(files: list[bytes]) -> list[StoredFile]:
    return [StoredFile(data=data, format=ImageFormat.DICOM) for data in files]


def test_a_shuffled_dicom_series_comes_back_in_slice_order_with_its_geometry(reader):
    series = synthetic_ct_series(slices=7, rotation=rotation_matrix(10, -5, 20))
    files = dicom(series.files)
    random.Random(3).shuffle(files)

    volume = reader.read_volume(files)

    np.testing.assert_array_equal(volume.voxels, series.hu)
    assert volume.spacing == pytest.approx((series.slice_spacing, *series.pixel_spacing))
    for k, position in enumerate(series.positions):
        np.testing.assert_allclose(volume.index_to_patient([0, 0, k]), position, atol=1e-4)
    np.testing.assert_allclose(volume.direction[:, 0], series.row_cosine, atol=1e-5)


def test_a_gantry_tilted_series_keeps_its_sheared_slice_axis(reader):
    series = synthetic_ct_series(slices=5, gantry_tilt_deg=15)

    volume = reader.read_volume(dicom(series.files))

    np.testing.assert_allclose(volume.index_to_patient([0, 0, 4]), series.positions[4], atol=1e-4)


def test_a_dicom_series_with_a_missing_slice_is_refused_with_the_reason(reader):
    series = synthetic_ct_series(slices=6, drop=frozenset({3}))

    with pytest.raises(InvalidInput, match=r"gap|do not form one volume"):
        reader.read_volume(dicom(series.files))


def test_a_nifti_file_is_read_with_its_affine(reader):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)  # NIfTI (i, j, k)
    affine_ras = np.diag([0.8, 0.9, 2.5, 1.0])
    affine_ras[:3, 3] = (10.0, -20.0, 30.0)
    buffer = io.BytesIO()
    image = nib.Nifti1Image(data, affine_ras)
    buffer.write(image.to_bytes())

    volume = reader.read_volume([StoredFile(data=buffer.getvalue(), format=ImageFormat.NIFTI)])

    assert volume.shape == (6, 5, 4)
    np.testing.assert_array_equal(volume.voxels, data.transpose(2, 1, 0))
    assert volume.spacing == pytest.approx((2.5, 0.9, 0.8))
    # voxel (i, j, k) = (1, 2, 3) sits at RAS (10.8, -18.2, 37.5) = LPS (-10.8, 18.2, 37.5)
    np.testing.assert_allclose(volume.index_to_patient([1, 2, 3]), (-10.8, 18.2, 37.5))


def test_a_png_is_one_slice_of_one_millimetre_pixels(reader):
    pixels = np.arange(12 * 9, dtype=np.uint8).reshape(12, 9)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")

    volume = reader.read_volume([StoredFile(data=buffer.getvalue(), format=ImageFormat.PNG)])

    assert volume.shape == (1, 12, 9)
    np.testing.assert_array_equal(volume.voxels[0], pixels)
    assert volume.spacing[1:] == (1.0, 1.0)


def test_no_files_are_refused(reader):
    with pytest.raises(InvalidInput, match="no stored files"):
        reader.read_volume([])


def test_mixed_formats_are_refused(reader):
    series = synthetic_ct_series(slices=2)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(buffer, format="PNG")
    files = [*dicom(series.files), StoredFile(data=buffer.getvalue(), format=ImageFormat.PNG)]

    with pytest.raises(InvalidInput, match="mixes file formats"):
        reader.read_volume(files)


def test_several_pictures_are_not_one_volume(reader):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(buffer, format="PNG")
    picture = StoredFile(data=buffer.getvalue(), format=ImageFormat.PNG)

    with pytest.raises(InvalidInput, match="one file"):
        reader.read_volume([picture, picture])


def test_bytes_that_are_not_the_stored_format_are_refused(reader):
    with pytest.raises(InvalidInput):
        reader.read_volume([StoredFile(data=b"not a dicom file" * 20, format=ImageFormat.DICOM)])
    with pytest.raises(InvalidInput):
        reader.read_volume([StoredFile(data=b"\x89PNG\r\n\x1a\nbroken", format=ImageFormat.PNG)])


def test_two_series_are_not_one_volume(reader):
    first, second = synthetic_ct_series(slices=2), synthetic_ct_series(slices=2)

    with pytest.raises(InvalidInput, match="series"):
        reader.read_volume(dicom([*first.files, *second.files]))
