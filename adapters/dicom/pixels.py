"""Pixel decoding to numpy (every transfer syntax pydicom can decode) and per-frame geometry.

Decoders: pydicom's own (native, deflated, RLE Lossless), pylibjpeg with pylibjpeg-openjpeg
(JPEG 2000, HTJ2K) and python-gdcm (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000).
12-bit JPEG Extended needs pylibjpeg-libjpeg (GPLv3, not a dependency); without it such files
are refused with a reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from adapters.dicom import attributes
from domain.errors import InvalidInput
from domain.imaging import Frames, SliceGeometry
from domain.studies import Modality

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
BT601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R BT.601 luma weights, used where a color image must become one scalar channel."""


def has_pixel_data(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in PIXEL_KEYWORDS)


def transfer_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax: from the file meta, else from how it was read."""
    meta = getattr(ds, "file_meta", None)
    found = attributes.text(meta, "TransferSyntaxUID") if meta is not None else None
    if found:
        return UID(found)
    encoding = getattr(ds, "original_encoding", (None, None))
    if encoding == (True, True):
        return ImplicitVRLittleEndian
    if encoding == (False, True):
        return ExplicitVRLittleEndian
    if encoding == (False, False):
        return ExplicitVRBigEndian
    raise InvalidInput("the transfer syntax is unknown: no (0002,0010) TransferSyntaxUID")


def _reason(err: Exception) -> str:
    message = " ".join(str(err).split())
    return message[:300] if message else type(err).__name__


def _raw_frames(ds: Dataset) -> tuple[npt.NDArray[Any], str]:
    """Decoded stored values with a leading frame axis, and the photometric interpretation.

    YBR color is converted to RGB by the decoder; the returned interpretation says what the
    array holds.
    """
    syntax = transfer_syntax(ds)
    if not has_pixel_data(ds):
        raise InvalidInput("the file has no pixel data (7FE0,0010)")
    try:
        if "PixelData" in ds:
            if not syntax.is_transfer_syntax:
                raise InvalidInput(f"{syntax!r} is not a transfer syntax")
            decoder = get_decoder(syntax)
            if not decoder.is_available:
                raise InvalidInput(
                    f"pixel data in {syntax.name} ({syntax}) cannot be decoded here: "
                    f"no decoder plugin is installed"
                )
            array, meta = decoder.as_array(ds, as_rgb=True)
            photometric = str(meta.get("photometric_interpretation", "")).strip()
        else:
            array = ds.pixel_array
            photometric = attributes.text(ds, "PhotometricInterpretation") or "MONOCHROME2"
    except InvalidInput:
        raise
    except NotImplementedError as err:
        raise InvalidInput(
            f"pixel data in {syntax.name} cannot be decoded: {_reason(err)}"
        ) from err
    except MemoryError:
        raise
    except Exception as err:  # decoders raise many types on malformed data
        raise InvalidInput(f"pixel data ({syntax.name}) cannot be decoded: {_reason(err)}") from err
    samples = attributes.integer(ds, "SamplesPerPixel") or 1
    frames = int(attributes.integer(ds, "NumberOfFrames") or 1)
    color_axes = 1 if samples > 1 else 0
    if array.ndim == 2 + color_axes:
        array = array[np.newaxis]
    if array.ndim != 3 + color_axes or (frames > 1 and array.shape[0] != frames):
        raise InvalidInput(
            f"decoded pixel data has shape {array.shape}, which does not match "
            f"NumberOfFrames {frames} and SamplesPerPixel {samples}"
        )
    return array, photometric


def _to_uint8(array: npt.NDArray[Any], bits: int) -> npt.NDArray[np.uint8]:
    if array.dtype == np.uint8:
        return array
    shift = max(0, bits - 8)
    scaled = np.right_shift(array.astype(np.uint64), shift)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _rescale(ds: Dataset, array: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Apply the Modality LUT (PS3.3 C.11.1) to ``(frames, rows, columns)`` stored values.

    In order: a Modality LUT Sequence; ``RescaleSlope``/``RescaleIntercept`` (a missing slope
    is 1); else, for enhanced multi-frame images, each frame's Pixel Value Transformation
    functional group. Computed in float32, which holds every 16-bit stored value exactly.
    """
    if "ModalityLUTSequence" in ds:
        try:
            return np.asarray(apply_modality_lut(array, ds), dtype=np.float32)
        except Exception as err:
            raise InvalidInput(f"the Modality LUT cannot be applied: {_reason(err)}") from err
    result = array.astype(np.float32)
    if "RescaleIntercept" in ds or "RescaleSlope" in ds:
        slope = attributes.number(ds, "RescaleSlope")
        intercept = attributes.number(ds, "RescaleIntercept") or 0.0
        if slope and slope != 1.0:
            result *= np.float32(slope)
        if intercept:
            result += np.float32(intercept)
        return result
    for index in range(result.shape[0]):
        group = attributes.functional_group(ds, "PixelValueTransformationSequence", index)
        if group is None:
            break
        slope = attributes.number(group, "RescaleSlope")
        intercept = attributes.number(group, "RescaleIntercept") or 0.0
        result[index] = result[index] * np.float32(slope if slope else 1.0) + np.float32(intercept)
    return result


def decode_frames(ds: Dataset, *, modality: Modality | None = None) -> Frames:
    """Decode every frame of ``ds``.

    Returns:
        :class:`Frames` with grayscale pixels as float32 ``(frames, rows, columns)`` after the
        Modality LUT (HU for CT), or color as uint8 ``(frames, rows, columns, 3)`` RGB
        (YBR converted, palette color looked up, more than 8 bits shifted down).

    Raises:
        InvalidInput: naming the transfer syntax and the decoder's reason when the pixel data
            cannot be decoded, or when the photometric interpretation is not supported.
    """
    array, photometric = _raw_frames(ds)
    bits = attributes.integer(ds, "BitsStored") or int(array.dtype.itemsize * 8)
    kind = modality if modality is not None else attributes.modality(ds)
    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(array, ds)
        except Exception as err:
            raise InvalidInput(f"the palette color lookup failed: {_reason(err)}") from err
        lut_bits = 8 if rgb.dtype == np.uint8 else 16
        return Frames(
            pixels=_to_uint8(rgb, lut_bits), photometric_interpretation="RGB", modality=kind
        )
    if array.ndim == 4:
        if photometric != "RGB":
            raise InvalidInput(f"color images in {photometric!r} are not supported")
        return Frames(
            pixels=_to_uint8(array, bits), photometric_interpretation="RGB", modality=kind
        )
    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise InvalidInput(f"grayscale images in {photometric!r} are not supported")
    pixels = _rescale(ds, array)
    if not np.all(np.isfinite(pixels)):
        pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
    return Frames(
        pixels=pixels,
        photometric_interpretation=photometric,
        modality=kind,
        window=attributes.window(ds),
        voi_lut_function=attributes.voi_lut_function(ds),
    )


def scalar_frames(frames: Frames) -> npt.NDArray[np.float32]:
    """``(frames, rows, columns)`` float32: grayscale as is, color as BT.601 luma."""
    if frames.is_color:
        luma: npt.NDArray[np.float32] = (frames.pixels.astype(np.float32) @ BT601_LUMA).astype(
            np.float32
        )
        return luma
    return np.asarray(frames.pixels, dtype=np.float32)


def frame_geometries(ds: Dataset, number_of_frames: int) -> list[SliceGeometry]:
    """The Image Plane geometry of each frame of ``ds``.

    Single-frame images use the top-level IPP/IOP/PixelSpacing. Enhanced multi-frame images use
    the per-frame (else shared) Plane Position, Plane Orientation and Pixel Measures functional
    groups. Multi-frame images with ``GridFrameOffsetVector`` (RT Dose) place frame ``f`` at
    ``IPP + offset[f] * normal``. Other multi-frame images (cine, ultrasound) have no per-frame
    position and get none.
    """
    rows = attributes.integer(ds, "Rows") or 1
    columns = attributes.integer(ds, "Columns") or 1
    spacing = attributes.pixel_spacing(ds)
    iop = attributes.orientation(ds)
    ipp = attributes.position(ds)
    if number_of_frames == 1:
        return [
            SliceGeometry(
                rows=rows,
                columns=columns,
                image_position_patient=ipp,
                image_orientation_patient=iop,
                pixel_spacing=spacing,
                instance_number=attributes.integer(ds, "InstanceNumber"),
            )
        ]
    if attributes.value(ds, "PerFrameFunctionalGroupsSequence") is not None:
        geometries = []
        for index in range(number_of_frames):
            plane = attributes.functional_group(ds, "PlanePositionSequence", index)
            orient = attributes.functional_group(ds, "PlaneOrientationSequence", index)
            measures = attributes.functional_group(ds, "PixelMeasuresSequence", index)
            frame_ipp = attributes.numbers(plane, "ImagePositionPatient", 3) if plane else None
            frame_iop = attributes.numbers(orient, "ImageOrientationPatient", 6) if orient else None
            frame_spacing = attributes.numbers(measures, "PixelSpacing", 2) if measures else None
            geometries.append(
                SliceGeometry(
                    rows=rows,
                    columns=columns,
                    image_position_patient=frame_ipp,  # type: ignore[arg-type]
                    image_orientation_patient=frame_iop or iop,  # type: ignore[arg-type]
                    pixel_spacing=frame_spacing or spacing,  # type: ignore[arg-type]
                    instance_number=index,
                )
            )
        return geometries
    offsets = attributes.value(ds, "GridFrameOffsetVector")
    if (
        ipp is not None
        and iop is not None
        and offsets is not None
        and len(offsets) == number_of_frames
    ):
        normal = np.cross(iop[:3], iop[3:])
        return [
            SliceGeometry(
                rows=rows,
                columns=columns,
                image_position_patient=tuple(float(v) for v in np.add(ipp, float(o) * normal)),  # type: ignore[arg-type]
                image_orientation_patient=iop,
                pixel_spacing=spacing,
                instance_number=index,
            )
            for index, o in enumerate(offsets)
        ]
    return [
        SliceGeometry(rows=rows, columns=columns, pixel_spacing=spacing, instance_number=index)
        for index in range(number_of_frames)
    ]
