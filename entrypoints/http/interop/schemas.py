"""Request bodies of de-identification and export."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import msgspec
from litestar.datastructures import UploadFile

from domain.deidentification import DateHandling, DeidentificationOptions
from domain.errors import InvalidInput
from domain.ports.exporting import ExportFormat
from domain.values import Id


class AnonymizeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the Basic Profile; the defaults apply it with no option."""

    dates: DateHandling = DateHandling.REMOVE
    """``remove`` (the profile's action), ``keep`` (Retain Full Dates) or ``shift`` (Retain
    Modified Dates: every date moved by the same number of days)."""
    date_shift_days: int | None = None
    """With ``shift``: the offset in days; left out, a random one for this request."""
    retain_uids: bool = False
    """Retain UIDs Option: keep the original UIDs instead of replacing them."""

    def options(self) -> DeidentificationOptions:
        return options_of(self.dates, self.date_shift_days, self.retain_uids)


def options_of(
    dates: str | DateHandling, date_shift_days: int | None, retain_uids: bool
) -> DeidentificationOptions:
    try:
        return DeidentificationOptions(
            dates=DateHandling(dates), date_shift_days=date_shift_days, retain_uids=retain_uids
        )
    except ValueError as err:
        raise InvalidInput(str(err).replace("'DateHandling'", "dates")) from None


@dataclass
class AnonymizeBatchFields:
    dates: str = "remove"
    date_shift_days: int | None = None
    retain_uids: bool = False


@dataclass
class AnonymizeBatchForm(AnonymizeBatchFields):
    """``multipart/form-data``: the DICOM files (``files``) and the options as fields.

    It documents the form in OpenAPI; the route reads it with ``entrypoints.http.forms``."""

    files: list[UploadFile] = field(default_factory=list)


class ExportWindow(msgspec.Struct, frozen=True, kw_only=True):
    width: Annotated[float, msgspec.Meta(gt=0)]
    level: float
    """The window centre."""


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    image_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=1000)]
    format: ExportFormat = ExportFormat.PNG
    window: ExportWindow | None = None
    """PNG and JPEG only; left out, each image's own window (header, preset or min/max)."""
    include_metadata: bool = False
    """Add ``<image id>.json``: geometry, the windows used and the DICOM JSON header."""
