"""ImageCodec contract (the export use case's port), run against every adapter."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adapters.images.export import PillowImageCodec
from domain.errors import InvalidInput
from domain.ports.exporting import ExportFormat, ImageCodec
from domain.studies import Modality
from tests.fixtures.imaging import expected_hu, synthetic_ct_series

ADAPTERS = [pytest.param(PillowImageCodec, id="pillow")]


@pytest.fixture(params=ADAPTERS)
def codec(request: pytest.FixtureRequest) -> ImageCodec:
    adapter: ImageCodec = request.param()
    return adapter


def png_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_ct_slice_decodes_to_hounsfield_units(codec: ImageCodec) -> None:
    series = synthetic_ct_series(slices=2)

    frames = codec.decode(series.files[1], modality=None)

    assert frames.pixels.shape == (1, 12, 10)
    np.testing.assert_array_equal(frames.pixels[0], expected_hu(2, 12, 10)[1])
    assert frames.modality is Modality.CT


def test_a_png_decodes_to_its_gray_values(codec: ImageCodec) -> None:
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)

    frames = codec.decode(png_of(gray), modality=Modality.OTHER)

    np.testing.assert_array_equal(frames.pixels[0], gray)


@pytest.mark.parametrize("data", [b"", b"garbage bytes"])
def test_unreadable_bytes_are_refused(codec: ImageCodec, data: bytes) -> None:
    with pytest.raises(InvalidInput):
        codec.decode(data, modality=None)


@pytest.mark.parametrize(("fmt", "name"), [(ExportFormat.PNG, "PNG"), (ExportFormat.JPEG, "JPEG")])
def test_pictures_encode_as_the_format_asked_for(
    codec: ImageCodec, fmt: ExportFormat, name: str
) -> None:
    picture = np.full((12, 10, 3), 200, dtype=np.uint8)

    encoded = codec.encode(picture, format=fmt)

    with Image.open(io.BytesIO(encoded)) as image:
        assert image.format == name and image.size == (10, 12)


def test_npy_is_not_a_picture_format(codec: ImageCodec) -> None:
    with pytest.raises(InvalidInput):
        codec.encode(np.zeros((2, 2), dtype=np.uint8), format=ExportFormat.NPY)
