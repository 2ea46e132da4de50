"""The query side of DICOMweb (QIDO-RS): matching studies, series and instances in the database.

Answered from the rows and the headers stored at ingest, never from the files. One
:class:`DicomQuery` carries the matching keys of every level; a search at a lower level also
honours the keys of the levels above it (``/series?PatientID=..`` finds the series of that
patient's studies).

Matching rules (PS3.4 C.2.2.2, as both adapters implement them):

* UID lists match any of their UIDs exactly.
* :class:`TextMatch` in ``EXACT`` mode compares whole values, in ``WILDCARD`` mode ``*``
  matches any run of characters and ``?`` one character; ``ignore_case`` makes either
  case-insensitive (person names and descriptions). ``FUZZY`` mode (person names) splits the
  key into words and wants each one to start a word of the value, case-insensitively:
  ``"jo smi"`` finds ``SMITH^JOHN``.
* a :class:`DateRange` includes both ends; a study without a date never matches one.
* ``modalities_in_study`` and ``modalities`` match the DICOM ``Modality`` (0008,0060) code in the
  instances' headers (``CT``, ``MR``...), not the archive's coarser modality.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Protocol

import msgspec

from domain.studies import Instance, Series, Study
from domain.values import Id, Page

MODALITY_TAG = "00080060"


class MatchMode(enum.StrEnum):
    EXACT = "exact"
    WILDCARD = "wildcard"
    FUZZY = "fuzzy"


class TextMatch(msgspec.Struct, frozen=True, kw_only=True):
    value: str
    mode: MatchMode = MatchMode.EXACT
    ignore_case: bool = False


class DateRange(msgspec.Struct, frozen=True, kw_only=True):
    """Inclusive; an open end is ``None``."""

    start: date | None = None
    end: date | None = None


class DicomQuery(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: Id | None = None
    """``None`` searches every centre (an admin's view)."""
    # study level
    study_instance_uids: tuple[str, ...] = ()
    patient_name: TextMatch | None = None
    patient_id: TextMatch | None = None
    accession_number: TextMatch | None = None
    study_description: TextMatch | None = None
    study_date: DateRange | None = None
    modalities_in_study: tuple[str, ...] = ()
    # series level
    series_instance_uids: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    series_number: int | None = None
    # instance level
    sop_class_uids: tuple[str, ...] = ()
    sop_instance_uids: tuple[str, ...] = ()
    instance_number: int | None = None


class StudyMatch(msgspec.Struct, frozen=True, kw_only=True):
    study: Study
    modalities: tuple[str, ...]
    """The distinct DICOM modality codes of the study's instances, sorted."""
    series_count: int
    instance_count: int
    header: dict[str, object]
    """The stored header of one of the study's instances (the study-level attributes)."""


class SeriesMatch(msgspec.Struct, frozen=True, kw_only=True):
    series: Series
    study: Study
    instance_count: int
    header: dict[str, object]
    """The stored header of one of the series' instances."""


class InstanceMatch(msgspec.Struct, frozen=True, kw_only=True):
    instance: Instance
    series: Series
    study: Study


class DicomQueryRepository(Protocol):
    """Read-only searches for QIDO-RS and WADO-RS, inside a unit of work.

    Orders: studies newest first (then id); series by study, then series number (missing last),
    then UID; instances by series, then instance number (missing last), then UID.
    """

    async def studies(self, query: DicomQuery, page: Page) -> list[StudyMatch]: ...
    async def count_studies(self, query: DicomQuery) -> int: ...
    async def series(self, query: DicomQuery, page: Page) -> list[SeriesMatch]: ...
    async def count_series(self, query: DicomQuery) -> int: ...
    async def instances(
        self, query: DicomQuery, page: Page, *, header_tags: tuple[str, ...] | None = None
    ) -> list[InstanceMatch]:
        """``header_tags`` keeps only those elements of each header (a search needs a few;
        reading and decoding whole headers dominates large answers); ``None`` keeps all."""

    async def count_instances(self, query: DicomQuery) -> int: ...
