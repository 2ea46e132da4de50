"""Study, series and instance fields read from a pydicom Dataset, leniently.

Required attributes (the four UIDs) are checked by :mod:`adapters.dicom.reading`; every other
value here is optional, and a malformed one (a date that is not a date, ``IS`` text that is not
a number) becomes None instead of failing the upload.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from pydicom.dataset import Dataset

from domain.imaging import (
    ImageFields,
    ImageFormat,
    InstanceFields,
    SeriesFields,
    StudyFields,
    VoiLutFunction,
)
from domain.studies import Modality, Patient, Sex, Window

T = TypeVar("T")


def value(ds: Dataset, keyword: str) -> Any:
    """The value of ``keyword`` in ``ds``, or None when absent, empty or unreadable."""
    try:
        if keyword not in ds:
            return None
        found = ds[keyword].value
    except Exception:  # a malformed element must not fail reading the others
        return None
    if found is None or found == "" or (isinstance(found, list | tuple) and len(found) == 0):
        return None
    return found


def converted(ds: Dataset, keyword: str, convert: Callable[[Any], T]) -> T | None:
    found = value(ds, keyword)
    if found is None:
        return None
    try:
        return convert(found)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def text(ds: Dataset, keyword: str) -> str | None:
    found = converted(ds, keyword, lambda v: str(v).strip().rstrip("\x00").strip())
    return found or None


def integer(ds: Dataset, keyword: str) -> int | None:
    return converted(ds, keyword, lambda v: int(first(v)))


def number(ds: Dataset, keyword: str) -> float | None:
    found = converted(ds, keyword, lambda v: float(first(v)))
    return found if found is not None and math.isfinite(found) else None


def numbers(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    def convert(v: Any) -> tuple[float, ...]:
        items = tuple(float(item) for item in (v if isinstance(v, list | tuple) else list(v)))
        if len(items) != count or not all(math.isfinite(item) for item in items):
            raise ValueError(f"expected {count} finite numbers")
        return items

    return converted(ds, keyword, convert)


def first(v: Any) -> Any:
    """The first item of a multi-valued element, or the value itself."""
    if isinstance(v, str | bytes):
        return v
    try:
        return v[0]
    except (TypeError, IndexError, KeyError):
        return v


def dicom_date(ds: Dataset, keyword: str) -> date | None:
    """A ``DA`` value (``YYYYMMDD``, or the ACR-NEMA ``YYYY.MM.DD``) as a date."""

    def convert(v: Any) -> date:
        digits = str(v).strip().replace(".", "").replace("-", "")
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))

    return converted(ds, keyword, convert)


def modality(ds: Dataset) -> Modality:
    code = text(ds, "Modality")
    if code is None:
        return Modality.OTHER
    try:
        return Modality.parse(code)
    except ValueError:
        return Modality.OTHER


def sex(ds: Dataset) -> Sex | None:
    code = text(ds, "PatientSex")
    try:
        return Sex(code.upper()) if code else None
    except ValueError:
        return None


def window(ds: Dataset) -> Window | None:
    """The first ``WindowCenter``/``WindowWidth`` pair, from the top level or, for enhanced
    multi-frame images, the shared ``FrameVOILUTSequence``."""
    source = ds
    if "WindowCenter" not in ds:
        shared = functional_group(ds, "FrameVOILUTSequence")
        if shared is None:
            return None
        source = shared
    center, width = number(source, "WindowCenter"), number(source, "WindowWidth")
    if center is None or width is None or width <= 0:
        return None
    return Window(center=center, width=width)


def voi_lut_function(ds: Dataset) -> VoiLutFunction:
    found = text(ds, "VOILUTFunction")
    if found is None:
        shared = functional_group(ds, "FrameVOILUTSequence")
        found = text(shared, "VOILUTFunction") if shared is not None else None
    return VoiLutFunction.parse(found)


def functional_group(ds: Dataset, sequence: str, frame: int | None = None) -> Dataset | None:
    """The item of functional group ``sequence`` for ``frame`` (per-frame first, then shared)."""
    if frame is not None:
        per_frame = value(ds, "PerFrameFunctionalGroupsSequence")
        if per_frame is not None and frame < len(per_frame):
            item = value(per_frame[frame], sequence)
            if item:
                return item[0]  # type: ignore[no-any-return]
    shared = value(ds, "SharedFunctionalGroupsSequence")
    if shared:
        item = value(shared[0], sequence)
        if item:
            return item[0]  # type: ignore[no-any-return]
    return None


def pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    found = numbers(ds, "PixelSpacing", 2)
    if found is None:
        measures = functional_group(ds, "PixelMeasuresSequence")
        found = numbers(measures, "PixelSpacing", 2) if measures is not None else None
    if found is None or min(found) <= 0:
        return None
    return (found[0], found[1])


def position(ds: Dataset) -> tuple[float, float, float] | None:
    found = numbers(ds, "ImagePositionPatient", 3)
    if found is None:
        plane = functional_group(ds, "PlanePositionSequence", 0)
        found = numbers(plane, "ImagePositionPatient", 3) if plane is not None else None
    return None if found is None else (found[0], found[1], found[2])


def orientation(ds: Dataset) -> tuple[float, float, float, float, float, float] | None:
    found = numbers(ds, "ImageOrientationPatient", 6)
    if found is None:
        plane = functional_group(ds, "PlaneOrientationSequence", 0)
        found = numbers(plane, "ImageOrientationPatient", 6) if plane is not None else None
    return None if found is None else (found[0], found[1], found[2], found[3], found[4], found[5])


def slice_thickness(ds: Dataset) -> float | None:
    found = number(ds, "SliceThickness")
    if found is None:
        measures = functional_group(ds, "PixelMeasuresSequence")
        found = number(measures, "SliceThickness") if measures is not None else None
    return found if found is not None and found > 0 else None


def image_fields(ds: Dataset, *, header: dict[str, object]) -> ImageFields:
    """The study, series and instance fields of ``ds`` (its four UIDs already checked)."""
    kind = modality(ds)
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = text(meta, "TransferSyntaxUID") if meta is not None else None
    frames = integer(ds, "NumberOfFrames")
    return ImageFields(
        study=StudyFields(
            study_instance_uid=str(ds.StudyInstanceUID).strip(),
            patient=Patient(
                name=text(ds, "PatientName"),
                patient_id=text(ds, "PatientID"),
                age=text(ds, "PatientAge"),
                sex=sex(ds),
                birth_date=dicom_date(ds, "PatientBirthDate"),
            ),
            modality=kind,
            description=text(ds, "StudyDescription"),
            study_date=dicom_date(ds, "StudyDate"),
            accession_number=text(ds, "AccessionNumber"),
        ),
        series=SeriesFields(
            series_instance_uid=str(ds.SeriesInstanceUID).strip(),
            modality=kind,
            series_number=integer(ds, "SeriesNumber"),
            description=text(ds, "SeriesDescription"),
            body_part_examined=text(ds, "BodyPartExamined"),
        ),
        instance=InstanceFields(
            sop_instance_uid=str(ds.SOPInstanceUID).strip(),
            sop_class_uid=str(ds.SOPClassUID).strip(),
            format=ImageFormat.DICOM,
            instance_number=integer(ds, "InstanceNumber"),
            transfer_syntax_uid=transfer_syntax,
            rows=integer(ds, "Rows"),
            columns=integer(ds, "Columns"),
            number_of_frames=frames if frames and frames > 0 else 1,
            samples_per_pixel=integer(ds, "SamplesPerPixel") or 1,
            photometric_interpretation=text(ds, "PhotometricInterpretation"),
            pixel_spacing=pixel_spacing(ds),
            slice_thickness=slice_thickness(ds),
            image_position_patient=position(ds),
            image_orientation_patient=orientation(ds),
            window=window(ds),
        ),
        header=header,
    )
