"""Reading one DICOM file from bytes: validation, fields, header JSON and decoded frames.

Every way a file can be wrong ends in :class:`domain.errors.InvalidInput` with a reason that
names the problem (and the attribute, with its tag, where one is missing); no other exception
leaves :func:`read_dicom` for bad input.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from adapters.dicom import attributes
from adapters.dicom.header import element_json, header_json
from adapters.dicom.interning import intern_elements
from adapters.dicom.pixels import decode_frames, has_pixel_data, transfer_syntax
from domain.errors import InvalidInput
from domain.imaging import Frames, ImageFields, ImageFormat

REQUIRED_UIDS = (
    ("SOPClassUID", "0008,0016"),
    ("SOPInstanceUID", "0008,0018"),
    ("StudyInstanceUID", "0020,000D"),
    ("SeriesInstanceUID", "0020,000E"),
)
PIXEL_MODULE = (
    ("Rows", "0028,0010"),
    ("Columns", "0028,0011"),
    ("BitsAllocated", "0028,0100"),
    ("PhotometricInterpretation", "0028,0004"),
)
SUPPORTED_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "PALETTE COLOR",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_ICT",
        "YBR_RCT",
        "YBR_PARTIAL_420",
        "YBR_PARTIAL_422",
    }
)
MAX_DECODED_BYTES = 2 * 1024**3
"""Files whose pixels would decode to more than this are refused before decoding."""


def is_dicom_part10(data: bytes) -> bool:
    """Whether ``data`` starts with the 128-byte preamble and the ``DICM`` prefix (PS3.10 7.1)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


@dataclass(eq=False)
class DicomImage:
    """One validated DICOM instance.

    Attributes:
        dataset: the pydicom dataset (file meta included when the file had one).
        fields: study, series and instance fields and the header as DICOM JSON.
    """

    dataset: Dataset
    fields: ImageFields
    _frames: Frames | None = field(default=None, repr=False)

    format = ImageFormat.DICOM

    def frames(self) -> Frames:
        """All frames, decoded once and kept (see :func:`adapters.dicom.pixels.decode_frames`).

        Raises:
            InvalidInput: when the instance has no pixel data or it cannot be decoded.
        """
        if self._frames is None:
            self._frames = decode_frames(self.dataset, modality=self.fields.series.modality)
        return self._frames


def _parse(data: bytes) -> Dataset:
    if not data:
        raise InvalidInput("the file is empty")
    try:
        if is_dicom_part10(data):
            return dcmread(io.BytesIO(data))
        ds = dcmread(io.BytesIO(data), force=True)
    except InvalidDicomError as err:
        raise InvalidInput(f"not a readable DICOM file: {err}") from err
    except MemoryError:
        raise
    except Exception as err:  # pydicom raises many types on malformed bytes
        raise InvalidInput(
            f"not a readable DICOM file: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
        ) from err
    if not any(keyword in ds for keyword, _ in REQUIRED_UIDS):
        raise InvalidInput(
            "not a DICOM file: no 'DICM' prefix at byte 128 and no DICOM identifiers "
            "(SOPClassUID, SOPInstanceUID) in a raw dataset"
        )
    return ds


def _check_required(ds: Dataset) -> None:
    missing = [
        f"{keyword} ({tag})" for keyword, tag in REQUIRED_UIDS if not attributes.text(ds, keyword)
    ]
    if missing:
        raise InvalidInput(f"missing required attribute(s): {', '.join(missing)}")


def _sop_class_name(ds: Dataset) -> str:
    uid = UID(attributes.text(ds, "SOPClassUID") or "")
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def _check_pixels(ds: Dataset, *, require_pixel_data: bool, max_decoded_bytes: int) -> bool:
    """Whether ``ds`` has pixel data; refuses one that needs it and has none, or is too big."""
    sop_class = UID(attributes.text(ds, "SOPClassUID") or "")
    if not has_pixel_data(ds):
        if require_pixel_data or "Image Storage" in sop_class.name:
            raise InvalidInput(
                f"no pixel data (7FE0,0010) in this {_sop_class_name(ds)} instance; "
                "an image is required"
            )
        return False
    missing = [f"{keyword} ({tag})" for keyword, tag in PIXEL_MODULE if keyword not in ds]
    if missing:
        raise InvalidInput(f"pixel data without the Image Pixel attribute(s) {', '.join(missing)}")
    rows, columns = attributes.integer(ds, "Rows"), attributes.integer(ds, "Columns")
    bits = attributes.integer(ds, "BitsAllocated")
    frames = attributes.integer(ds, "NumberOfFrames") if "NumberOfFrames" in ds else 1
    samples = attributes.integer(ds, "SamplesPerPixel") or 1
    for name, found in (("Rows", rows), ("Columns", columns), ("BitsAllocated", bits)):
        if not found or found < 1:
            raise InvalidInput(f"{name} {attributes.value(ds, name)!r} is not a positive integer")
    if not frames or frames < 1:
        raise InvalidInput(
            f"NumberOfFrames {attributes.value(ds, 'NumberOfFrames')!r} is not a positive integer"
        )
    assert rows and columns and bits
    decoded = rows * columns * frames * samples * max(bits, 8) // 8
    if decoded > max_decoded_bytes:
        raise InvalidInput(
            f"the pixel data would decode to {decoded / 1024**2:.0f} MiB "
            f"({frames} frame(s) of {rows}x{columns}), over the {max_decoded_bytes / 1024**2:.0f} "
            "MiB limit"
        )
    photometric = attributes.text(ds, "PhotometricInterpretation") or ""
    if photometric not in SUPPORTED_PHOTOMETRIC:
        raise InvalidInput(f"PhotometricInterpretation {photometric!r} is not supported")
    syntax = transfer_syntax(ds)
    if "PixelData" in ds and syntax.is_transfer_syntax and not syntax.is_encapsulated:
        # uncompressed YBR_FULL_422 stores two chroma samples per two pixels (PS3.3 C.7.6.3.1.2)
        per_pixel = 2 if photometric == "YBR_FULL_422" else samples
        expected = (rows * columns * frames * per_pixel * bits + 7) // 8
        stored = len(ds["PixelData"].value or b"")
        if stored < expected:
            raise InvalidInput(
                f"the pixel data is truncated: {stored} bytes, shorter than the {expected} "
                f"bytes that {frames} frame(s) of {rows}x{columns}x{samples} at {bits} bits need"
            )
    return True


def read_dicom(
    data: bytes,
    *,
    require_pixel_data: bool = True,
    decode: bool = True,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
    shared_elements: bool = False,
) -> DicomImage:
    """Parse and validate one DICOM file.

    Files with the Part 10 preamble and ``DICM`` prefix are read strictly; others are tried as
    a raw dataset (implicit/explicit VR without file meta, as old archives send them) and
    accepted only when that yields the required identifiers.

    Args:
        data: the file's bytes.
        require_pixel_data: refuse instances without pixel data (SR, RT Plan, RTSTRUCT...).
            With False they are accepted, except image storage SOP classes, which always need
            pixels; their :meth:`DicomImage.frames` raises.
        decode: decode all frames now, so that an undecodable file is refused at ingest; the
            frames are kept on the returned image. Uncompressed pixel data is always checked
            for its length and photometric interpretation, so ``decode=False`` is a safe,
            faster choice for native transfer syntaxes; compressed data is only proven
            decodable by decoding it.
        max_decoded_bytes: refuse files whose pixels would decode to more than this.
        shared_elements: convert header elements through
            :func:`adapters.dicom.interning.intern_elements` (much faster for the files of a
            series); only for a caller that reads the fields and never changes the dataset.

    Raises:
        InvalidInput: the file is empty, not DICOM, unreadable, misses one of
            SOPClassUID/SOPInstanceUID/StudyInstanceUID/SeriesInstanceUID, lacks required pixel
            data, is too large, or its pixel data cannot be decoded.
    """
    ds = _parse(data)
    try:
        known = intern_elements(ds, element_json) if shared_elements else None
        _check_required(ds)
        pixels = _check_pixels(
            ds, require_pixel_data=require_pixel_data, max_decoded_bytes=max_decoded_bytes
        )
        fields = attributes.image_fields(ds, header=header_json(ds, encoded_elements=known))
    except InvalidInput:
        raise
    except MemoryError:
        raise
    except Exception as err:  # lazily parsed elements can fail on first access
        raise InvalidInput(
            f"the DICOM header cannot be read: {type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]}"
        ) from err
    image = DicomImage(dataset=ds, fields=fields)
    if decode and pixels:
        image.frames()
    return image
