"""QIDO-RS query parameters (PS3.18 8.3.4) turned into a :class:`DicomQuery`.

The HTTP layer resolves attribute keywords to tags first (it has the DICOM dictionary); here
every key is an 8-hex-digit tag. Keys this archive cannot match on, and keys of a lower level
than the search, are ignored and named in a ``Warning`` (PS3.18 8.3.4.2); an empty value is
universal matching (the attribute is returned, nothing is filtered).
"""

from __future__ import annotations

import enum
import re
from datetime import date

import msgspec

from domain.errors import InvalidInput
from domain.ports.dicomweb import DateRange, DicomQuery, MatchMode, TextMatch
from domain.values import MAX_PAGE_SIZE, Id


class QidoLevel(enum.IntEnum):
    STUDY = 1
    SERIES = 2
    INSTANCE = 3


# tag -> (keyword, level) of the matching keys this archive supports
MATCHING_KEYS: dict[str, tuple[str, QidoLevel]] = {
    "0020000D": ("StudyInstanceUID", QidoLevel.STUDY),
    "00100010": ("PatientName", QidoLevel.STUDY),
    "00100020": ("PatientID", QidoLevel.STUDY),
    "00080050": ("AccessionNumber", QidoLevel.STUDY),
    "00081030": ("StudyDescription", QidoLevel.STUDY),
    "00080020": ("StudyDate", QidoLevel.STUDY),
    "00080061": ("ModalitiesInStudy", QidoLevel.STUDY),
    "0020000E": ("SeriesInstanceUID", QidoLevel.SERIES),
    "00080060": ("Modality", QidoLevel.SERIES),
    "00200011": ("SeriesNumber", QidoLevel.SERIES),
    "00080016": ("SOPClassUID", QidoLevel.INSTANCE),
    "00080018": ("SOPInstanceUID", QidoLevel.INSTANCE),
    "00200013": ("InstanceNumber", QidoLevel.INSTANCE),
}
TAG_PATTERN = re.compile(r"^[0-9A-F]{8}$")
_DA = re.compile(r"^\d{8}$")


class QidoRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One QIDO-RS search as the HTTP layer read it.

    Attributes:
        level: what is searched for.
        keys: matching keys, tag -> the query string's value.
        include: tags to return besides the defaults (``includefield``).
        include_all: ``includefield=all``.
        fuzzy: ``fuzzymatching=true``.
        limit: ``limit``; ``None`` returns up to :data:`MAX_PAGE_SIZE` (with a Warning when
            more matched).
        offset: ``offset``.
        study_instance_uid, series_instance_uid: the UIDs in the path, if any.
    """

    level: QidoLevel
    keys: dict[str, str] = {}
    include: tuple[str, ...] = ()
    include_all: bool = False
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise InvalidInput(f"limit must be a positive integer, got {self.limit}")
        if self.offset < 0:
            raise InvalidInput(f"offset must be 0 or more, got {self.offset}")
        for tag in (*self.keys, *self.include):
            if not TAG_PATTERN.match(tag):
                raise InvalidInput(f"{tag!r} is not an attribute tag (8 hex digits)")


def uid_list(text: str) -> tuple[str, ...]:
    """UID list matching: UIDs separated by commas or backslashes (PS3.18 8.3.4.1)."""
    uids = tuple(u.strip() for u in re.split(r"[,\\]", text) if u.strip())
    for uid in uids:
        if len(uid) > 64 or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid):
            raise InvalidInput(f"{uid[:70]!r} is not a DICOM UID")
    return uids


def code_list(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in re.split(r"[,\\]", text) if c.strip())


def _date(text: str, keyword: str) -> date:
    if not _DA.match(text):
        raise InvalidInput(f"{keyword} {text!r} is not a date (YYYYMMDD)")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise InvalidInput(f"{keyword} {text!r} is not a date (YYYYMMDD)") from None


def date_range(text: str, keyword: str = "StudyDate") -> DateRange:
    """``YYYYMMDD``, ``A-B``, ``A-`` or ``-B`` (PS3.4 C.2.2.2.5); dashes in dates are allowed."""
    cleaned = text.strip()
    parts = re.fullmatch(r"(\d{4}-?\d{2}-?\d{2})?(-)?(\d{4}-?\d{2}-?\d{2})?", cleaned)
    if not cleaned or parts is None or (parts.group(2) is None and parts.group(3) is not None):
        raise InvalidInput(f"{keyword} {text!r} is not a date or a date range (YYYYMMDD-YYYYMMDD)")
    start_text, dash, end_text = parts.groups()
    start = _date(start_text.replace("-", ""), keyword) if start_text else None
    end = _date(end_text.replace("-", ""), keyword) if end_text else None
    if dash is None:
        end = start
    if start is None and end is None:
        raise InvalidInput(f"{keyword} {text!r}: a range needs at least one end")
    if start is not None and end is not None and start > end:
        raise InvalidInput(f"{keyword} {text!r}: the range ends before it starts")
    return DateRange(start=start, end=end)


def _number(text: str, keyword: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(f"{keyword} {text!r} is not an integer") from None


def text_match(text: str, *, ignore_case: bool, fuzzy: bool = False) -> TextMatch:
    if fuzzy:
        return TextMatch(value=text, mode=MatchMode.FUZZY, ignore_case=True)
    mode = MatchMode.WILDCARD if ("*" in text or "?" in text) else MatchMode.EXACT
    return TextMatch(value=text, mode=mode, ignore_case=ignore_case)


class ParsedQuery(msgspec.Struct, frozen=True, kw_only=True):
    query: DicomQuery
    ignored: tuple[str, ...]
    """Tags given as matching keys that were not used (unsupported, or of a lower level)."""
    returned: tuple[str, ...]
    """Matching-key tags to return as well (PS3.18: matching keys are return keys)."""
    fuzzy_applied: bool


def parse(request: QidoRequest, centre_id: Id | None) -> ParsedQuery:
    """The repository query of a QIDO-RS request, scoped to ``centre_id``.

    Raises:
        InvalidInput: a value that cannot be a value of its attribute.
    """
    fields: dict[str, object] = {"centre_id": centre_id}
    ignored: list[str] = []
    fuzzy_applied = False
    for tag, raw in request.keys.items():
        text = raw.strip()
        known = MATCHING_KEYS.get(tag)
        if known is None or known[1] > request.level:
            ignored.append(tag)
            continue
        if not text or text == "*":
            continue  # universal matching
        keyword = known[0]
        match keyword:
            case "StudyInstanceUID":
                fields["study_instance_uids"] = uid_list(text)
            case "PatientName":
                fields["patient_name"] = text_match(text, ignore_case=True, fuzzy=request.fuzzy)
                fuzzy_applied = request.fuzzy
            case "PatientID":
                fields["patient_id"] = text_match(text, ignore_case=False)
            case "AccessionNumber":
                fields["accession_number"] = text_match(text, ignore_case=False)
            case "StudyDescription":
                fields["study_description"] = text_match(text, ignore_case=True)
            case "StudyDate":
                fields["study_date"] = date_range(text)
            case "ModalitiesInStudy":
                fields["modalities_in_study"] = code_list(text)
            case "SeriesInstanceUID":
                fields["series_instance_uids"] = uid_list(text)
            case "Modality":
                fields["modalities"] = code_list(text)
            case "SeriesNumber":
                fields["series_number"] = _number(text, keyword)
            case "SOPClassUID":
                fields["sop_class_uids"] = uid_list(text)
            case "SOPInstanceUID":
                fields["sop_instance_uids"] = uid_list(text)
            case "InstanceNumber":
                fields["instance_number"] = _number(text, keyword)
    if request.study_instance_uid is not None:
        _narrow(fields, "study_instance_uids", uid_list(request.study_instance_uid))
    if request.series_instance_uid is not None:
        _narrow(fields, "series_instance_uids", uid_list(request.series_instance_uid))
    returned = tuple(t for t in request.keys if t not in ignored)
    return ParsedQuery(
        query=msgspec.convert(fields, DicomQuery),
        ignored=tuple(ignored),
        returned=returned,
        fuzzy_applied=fuzzy_applied,
    )


def _narrow(fields: dict[str, object], name: str, path: tuple[str, ...]) -> None:
    """The path's UID, and the query's UID list too when it has one (both must hold)."""
    given = fields.get(name)
    if isinstance(given, tuple) and given:
        fields[name] = tuple(u for u in path if u in given) or ("",)
    else:
        fields[name] = path


def page_size(request: QidoRequest) -> int:
    return min(request.limit or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
