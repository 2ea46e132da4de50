"""De-identifying DICOM files with pydicom under PS3.15 Annex E (Basic Profile).

Every attribute listed in Table E.1-1 (:mod:`adapters.dicom.confidentiality_profile`) gets its
action at every depth of the dataset (inside sequences too) and in the file meta group; every
private attribute is removed; everything else is kept. Where the table leaves a choice, the
one that keeps the object conformant when the attribute is present is taken, since the table
cannot know whether the attribute is Type 1, 2 or 3 in this IOD:

============  =======================================================================
table code    done here
============  =======================================================================
``X``         removed
``Z``         emptied (zero length; a sequence with no items)
``D``         a dummy value of the attribute's VR (``ANONYMIZED``, ``19000101``, 0...);
              a UID gets its replacement UID, a sequence is emptied, and ``PatientID``
              a pseudonym that is the same for the same patient within a run
``U``         the UID replaced (or kept with the Retain UIDs option)
``Z/D``       ``D``;  ``X/Z``: ``Z``;  ``X/D`` and ``X/Z/D``: ``D``
``X/Z/U*``    the sequence kept, its items de-identified (references keep pointing at the
              replaced UIDs)
============  =======================================================================

Dates and times the table lists (VR DA, DT, TM), except the patient's birth date and time,
follow the run's :class:`~domain.deidentification.DateHandling`: the profile's action, kept,
or shifted by the run's offset in whole days (times of day are then kept).

New UIDs are ``2.25.<128-bit integer>`` from an HMAC of the original UID under the run's key
(PS3.5 B.2): the same input UID becomes the same output UID in every file of a run and in
every process, and nothing about the original can be recovered without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from collections import Counter
from datetime import date, timedelta
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filewriter import dcmwrite
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from adapters.dicom.confidentiality_profile import EDITION, rule_for
from adapters.dicom.reading import is_dicom_part10
from domain.deidentification import ChangeKey, DateHandling, DeidentificationPlan, ProfileAction
from domain.errors import InvalidInput
from domain.ports.deidentification import DeidentifiedData

DUMMY_TEXT = "ANONYMIZED"
DUMMY_DATE = "19000101"
_EFFECTIVE = {
    "X": "X",
    "Z": "Z",
    "D": "D",
    "U": "U",
    "Z/D": "D",
    "X/Z": "Z",
    "X/D": "D",
    "X/Z/D": "D",
    "X/Z/U*": "U*",
}
_DATE_VRS = frozenset({"DA", "DT", "TM"})
_NEVER_RETAINED = frozenset({0x00100030, 0x00100032})
"""PatientBirthDate and PatientBirthTime: identifying whatever the date option."""
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_INTEGER_VRS = frozenset({"SL", "SS", "SV", "UL", "US", "UV"})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_DUMMIES: dict[str, Any] = {
    "AS": "000D",
    "DA": DUMMY_DATE,
    "DS": "0",
    "DT": DUMMY_DATE + "000000",
    "FD": 0.0,
    "FL": 0.0,
    "IS": "0",
    "TM": "000000",
    "UR": "",
}
_DT_DATE = re.compile(r"^(\d{8})(.*)$")
_PATIENT_ID = 0x00100020
_PATIENT_IDENTITY_REMOVED = 0x00120062
_DEIDENTIFICATION_METHOD = 0x00120063
_DEIDENTIFICATION_METHOD_CODES = 0x00120064
_LONGITUDINAL_MODIFIED = 0x00280303


def new_uid(uid: str, key: bytes) -> str:
    """The replacement of ``uid`` under ``key``: ``2.25.`` and a 128-bit integer."""
    digest = hmac.new(key, uid.strip().encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def tag_text(tag: int) -> str:
    return f"{tag >> 16:04X},{tag & 0xFFFF:04X}"


def _vr_of(ds: Dataset, tag: BaseTag) -> str:
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None)
    if not vr:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    return str(vr).split(" or ")[0]


def shift_date(text: str, days: int) -> str | None:
    """``YYYYMMDD`` moved by ``days``; None when ``text`` is not such a date."""
    value = text.strip()
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        moved = date(int(value[:4]), int(value[4:6]), int(value[6:])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"


def shift_datetime(text: str, days: int) -> str | None:
    """A DT value (``YYYYMMDD...``) with its date moved; None without a full date."""
    match = _DT_DATE.match(text.strip())
    if match is None:
        return None
    moved = shift_date(match.group(1), days)
    return None if moved is None else moved + match.group(2)


class _FileRun:
    """The de-identification of one dataset under a plan, counting what it changes."""

    def __init__(self, plan: DeidentificationPlan) -> None:
        self.plan = plan
        self.changes: Counter[ChangeKey] = Counter()

    def count(self, tag: int, action: ProfileAction, rule: str) -> None:
        self.changes[(tag_text(tag), keyword_for_tag(tag) or "", action, rule)] += 1

    def pseudonym(self, patient_id: str) -> str:
        """The same dummy for the same PatientID within a run, so files of one patient stay
        together and two patients stay apart; nothing of the original can be read back."""
        if not patient_id.strip():
            return DUMMY_TEXT
        digest = hmac.new(self.plan.uid_key, b"PatientID:" + patient_id.strip().encode(), "sha256")
        return f"ANON{digest.hexdigest()[:12].upper()}"

    def uid(self, value: str) -> str:
        return new_uid(value, self.plan.uid_key) if value.strip() else value

    def dataset(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            if tag.is_private:
                del ds[tag]
                self.count(int(tag), ProfileAction.PRIVATE_REMOVED, "private")
                continue
            rule = rule_for(int(tag))
            if rule is None:
                self._recurse_if_sequence(ds, tag)
            else:
                self.apply(ds, tag, rule)

    def _recurse_if_sequence(self, ds: Dataset, tag: BaseTag) -> None:
        if _vr_of(ds, tag) != "SQ":
            return
        for item in ds[tag].value or ():
            self.dataset(item)

    def apply(self, ds: Dataset, tag: BaseTag, rule: str) -> None:
        vr = _vr_of(ds, tag)
        number = int(tag)
        dates = self.plan.options.dates
        if vr in _DATE_VRS and dates is not DateHandling.REMOVE and number not in _NEVER_RETAINED:
            if dates is DateHandling.KEEP or vr == "TM":
                self.count(number, ProfileAction.KEPT, rule)
                return
            if self._shift(ds, tag, vr):
                self.count(number, ProfileAction.DATE_SHIFTED, rule)
                return
        action = _EFFECTIVE[rule]
        if action == "U*" and vr == "SQ":
            for item in ds[tag].value or ():
                self.dataset(item)
            self.count(number, ProfileAction.KEPT, rule)
        elif action in ("U", "D") and vr == "UI":
            if self.plan.options.retain_uids and action == "U":
                self.count(number, ProfileAction.KEPT, rule)
                return
            self._replace_uids(ds, tag)
            self.count(number, ProfileAction.UID_REPLACED, rule)
        elif action == "X":
            del ds[tag]
            self.count(number, ProfileAction.REMOVED, rule)
        elif action == "D" and number == _PATIENT_ID:
            ds[tag] = DataElement(tag, vr, self.pseudonym(str(ds[tag].value or "")))
            self.count(number, ProfileAction.DUMMY, rule)
        elif action == "D" and vr != "SQ":
            ds[tag] = DataElement(tag, vr, _dummy(vr))
            self.count(number, ProfileAction.DUMMY, rule)
        else:  # Z, a D or U* sequence, a U that is not a UID
            ds[tag] = DataElement(tag, vr, _empty(vr))
            self.count(number, ProfileAction.EMPTIED, rule)

    def _replace_uids(self, ds: Dataset, tag: BaseTag) -> None:
        value = ds[tag].value
        if isinstance(value, MultiValue | list):
            ds[tag].value = [self.uid(str(v)) for v in value]
        elif value is not None:
            ds[tag].value = self.uid(str(value))

    def _shift(self, ds: Dataset, tag: BaseTag, vr: str) -> bool:
        element = ds[tag]
        shift = shift_date if vr == "DA" else shift_datetime
        values = element.value
        if values is None or values == "":
            return True
        texts = [str(v) for v in values] if isinstance(values, MultiValue | list) else [str(values)]
        moved = [shift(text, self.plan.date_shift_days) for text in texts]
        if any(m is None for m in moved):
            return False  # not a date we can move: the profile's action removes it instead
        ds[tag] = DataElement(tag, vr, moved if len(moved) > 1 else moved[0])
        return True


def _dummy(vr: str) -> Any:
    if vr in _TEXT_VRS:
        return DUMMY_TEXT
    if vr in _INTEGER_VRS:
        return 0
    if vr in _BINARY_VRS:
        return b"\x00" * 8
    return _DUMMIES.get(vr, "")


def _empty(vr: str) -> Any:
    if vr == "SQ":
        return Sequence()
    if vr in _INTEGER_VRS or vr in _BINARY_VRS or vr in ("FL", "FD", "AT"):
        return None
    return ""


def _read(data: bytes) -> Dataset:
    if not data:
        raise InvalidInput("the file is empty")
    part10 = is_dicom_part10(data)
    try:
        ds = dcmread(io.BytesIO(data), force=not part10)
    except InvalidDicomError as err:
        raise InvalidInput(f"not a readable DICOM file: {err}") from err
    except MemoryError:
        raise
    except Exception as err:  # pydicom raises many types on malformed bytes
        raise InvalidInput(f"not a readable DICOM file: {_reason(err)}") from err
    if not part10 and "SOPInstanceUID" not in ds and "SOPClassUID" not in ds:
        raise InvalidInput(
            "not a DICOM file: no 'DICM' prefix at byte 128 and no DICOM identifiers "
            "(SOPClassUID, SOPInstanceUID) in a raw dataset"
        )
    if "SOPInstanceUID" not in ds:
        # a DICOMDIR, or a broken file: a media directory's byte offsets would not survive
        # rewriting, and the files it lists are what should be de-identified
        raise InvalidInput("not a DICOM instance: no SOPInstanceUID (0008,0018)")
    return ds


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"


def _record_method(ds: Dataset, plan: DeidentificationPlan, run: _FileRun) -> None:
    options = plan.options
    codes = options.method_codes()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [f"PS3.15 E.1-1 ({EDITION})", *(c.code_meaning[:64] for c in codes)]
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code.code_value
        item.CodingSchemeDesignator = code.coding_scheme_designator
        item.CodeMeaning = code.code_meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = {
        DateHandling.REMOVE: "REMOVED",
        DateHandling.KEEP: "UNMODIFIED",
        DateHandling.SHIFT: "MODIFIED",
    }[options.dates]
    for tag in (
        _PATIENT_IDENTITY_REMOVED,
        _DEIDENTIFICATION_METHOD,
        _DEIDENTIFICATION_METHOD_CODES,
        _LONGITUDINAL_MODIFIED,
    ):
        run.count(tag, ProfileAction.ADDED, "")


def _warnings(ds: Dataset) -> list[str]:
    found = []
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        found.append("BurnedInAnnotation is YES: text burned into the pixels is not removed")
    if str(ds.get("RecognizableVisualFeatures", "")).upper() == "YES":
        found.append("RecognizableVisualFeatures is YES: the pixels may show the face")
    return found


def _file_meta(ds: Dataset) -> None:
    """A file meta group that matches the (de-identified) dataset, so the output is a Part 10
    file even when the input was a raw dataset."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little is not False
            else ExplicitVRBigEndian
        )
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _write(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    try:
        _file_meta(ds)
        dcmwrite(buffer, ds, enforce_file_format=True)
    except MemoryError:
        raise
    except Exception:
        buffer = io.BytesIO()
        try:  # as the input was laid out (no file meta demanded)
            dcmwrite(buffer, ds, enforce_file_format=False)
        except MemoryError:
            raise
        except Exception as err:
            raise InvalidInput(f"the de-identified file cannot be written: {_reason(err)}") from err
    return buffer.getvalue()


class PydicomDeidentifier:
    """:class:`~domain.ports.deidentification.Deidentifier` on pydicom."""

    def deidentify(self, data: bytes, plan: DeidentificationPlan) -> DeidentifiedData:
        ds = _read(data)
        run = _FileRun(plan)
        try:
            warnings = _warnings(ds)
            run.dataset(ds)
            meta = getattr(ds, "file_meta", None)
            if meta is not None:
                run.dataset(meta)
            _record_method(ds, plan, run)
        except InvalidInput:
            raise
        except MemoryError:
            raise
        except Exception as err:  # lazily parsed elements can fail on first access
            raise InvalidInput(f"the DICOM header cannot be de-identified: {_reason(err)}") from err
        return DeidentifiedData(
            data=_write(ds), changes=list(run.changes.items()), warnings=warnings
        )
