"""De-identification (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile):
the options a run is asked for, the plan it runs with, and the report of what it changed.

The profile's attribute table and the work on files live in ``adapters.dicom.deidentify``;
this module holds what the domain decides: which options (dates kept, shifted or removed;
UIDs retained or replaced), which codes record them in the output
(``DeidentificationMethodCodeSequence``, PS3.16 CID 7050), and the report, which counts
changes per attribute tag and action and never carries an original value.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Iterable

import msgspec

MAX_DATE_SHIFT_DAYS = 36_500
"""A shift of more than a century is refused: it would push real dates out of DICOM's range."""
RANDOM_SHIFT_RANGE_DAYS = (30, 3650)
"""A run that shifts dates without a given offset picks one of this size (either sign)."""


class DateHandling(enum.StrEnum):
    """What happens to the dates and times the profile lists."""

    REMOVE = "remove"
    """The profile's own action (emptied or replaced by a dummy)."""
    KEEP = "keep"
    """Retain Longitudinal Temporal Information with Full Dates Option."""
    SHIFT = "shift"
    """Retain Longitudinal Temporal Information with Modified Dates Option: every date of a
    run moves by the same number of days, so intervals between them survive."""


class MethodCode(msgspec.Struct, frozen=True, kw_only=True):
    """One item of ``DeidentificationMethodCodeSequence`` (0012,0064), from CID 7050."""

    code_value: str
    coding_scheme_designator: str = "DCM"
    code_meaning: str


BASIC_PROFILE = MethodCode(
    code_value="113100", code_meaning="Basic Application Confidentiality Profile"
)
RETAIN_FULL_DATES = MethodCode(
    code_value="113106", code_meaning="Retain Longitudinal Temporal Information Full Dates Option"
)
RETAIN_MODIFIED_DATES = MethodCode(
    code_value="113107",
    code_meaning="Retain Longitudinal Temporal Information Modified Dates Option",
)
RETAIN_UIDS = MethodCode(code_value="113110", code_meaning="Retain UIDs Option")


class DeidentificationOptions(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """What a caller may choose; the defaults are the Basic Profile with no option."""

    dates: DateHandling = DateHandling.REMOVE
    date_shift_days: int | None = None
    """With ``dates="shift"``: the offset in days; left out, each run picks a random one."""
    retain_uids: bool = False
    """Retain UIDs Option: keep the original UIDs (the study still links to its source)."""

    def __post_init__(self) -> None:
        if self.date_shift_days is not None:
            if self.dates is not DateHandling.SHIFT:
                raise ValueError("date_shift_days is only meaningful with dates='shift'")
            if not -MAX_DATE_SHIFT_DAYS <= self.date_shift_days <= MAX_DATE_SHIFT_DAYS:
                raise ValueError(
                    f"date_shift_days {self.date_shift_days} is outside "
                    f"-{MAX_DATE_SHIFT_DAYS}..{MAX_DATE_SHIFT_DAYS}"
                )

    def method_codes(self) -> list[MethodCode]:
        """The profile's code and one per option in force, in CID 7050 order."""
        codes = [BASIC_PROFILE]
        if self.dates is DateHandling.KEEP:
            codes.append(RETAIN_FULL_DATES)
        elif self.dates is DateHandling.SHIFT:
            codes.append(RETAIN_MODIFIED_DATES)
        if self.retain_uids:
            codes.append(RETAIN_UIDS)
        return codes


class DeidentificationPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one run needs to treat every file alike: its options, the date offset
    and the key that maps each original UID to the same new UID in every file (and in every
    worker process of a parallel run)."""

    options: DeidentificationOptions
    date_shift_days: int = 0
    uid_key: bytes

    def __post_init__(self) -> None:
        if len(self.uid_key) < 16:
            raise ValueError("uid_key must be at least 16 bytes")

    @classmethod
    def fresh(cls, options: DeidentificationOptions) -> DeidentificationPlan:
        """A plan for one run: a random UID key, and the given or a random date offset."""
        shift = 0
        if options.dates is DateHandling.SHIFT:
            shift = (
                options.date_shift_days if options.date_shift_days is not None else _random_shift()
            )
        return cls(options=options, date_shift_days=shift, uid_key=secrets.token_bytes(32))

    @classmethod
    def derived(
        cls, options: DeidentificationOptions, *, secret: bytes, scope: str
    ) -> DeidentificationPlan:
        """A plan that is the same every time for ``scope`` (a centre de-identifying at
        ingest): a study sent in two uploads keeps one set of new UIDs and one date offset."""
        key = hmac.new(secret, f"deidentify:{scope}".encode(), hashlib.sha256).digest()
        shift = 0
        if options.dates is DateHandling.SHIFT:
            if options.date_shift_days is not None:
                shift = options.date_shift_days
            else:
                low, high = RANDOM_SHIFT_RANGE_DAYS
                magnitude = low + int.from_bytes(key[:4], "big") % (high - low + 1)
                shift = -magnitude if key[4] & 1 else magnitude
        return cls(options=options, date_shift_days=shift, uid_key=key)


def _random_shift() -> int:
    low, high = RANDOM_SHIFT_RANGE_DAYS
    magnitude = low + secrets.randbelow(high - low + 1)
    return -magnitude if secrets.randbelow(2) else magnitude


class ProfileAction(enum.StrEnum):
    """What was done to one attribute, as the report names it (PS3.15 Table E.1-1 codes)."""

    REMOVED = "X"
    EMPTIED = "Z"
    DUMMY = "D"
    UID_REPLACED = "U"
    KEPT = "K"
    DATE_SHIFTED = "shifted"
    PRIVATE_REMOVED = "private-removed"
    ADDED = "added"


class ChangeCount(msgspec.Struct, frozen=True, kw_only=True):
    """How often one action was applied to one attribute (at any depth) in a run."""

    tag: str
    """``GGGG,EEEE``."""
    keyword: str
    """The DICOM keyword, or ``""`` for private and unknown attributes."""
    action: ProfileAction
    rule: str
    """The profile's action for the attribute in Table E.1-1 (``X/Z/D``...), or a note
    (``private``, ``retain-uids``, ``dates-kept``)."""
    count: int


class RefusedFile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    reason: str


class DeidentificationReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one run changed; it never holds an original value."""

    profile: str = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"
    method_codes: list[MethodCode]
    options: DeidentificationOptions
    files: int
    changes: list[ChangeCount]
    refused: list[RefusedFile] = []
    warnings: list[str] = []


ChangeKey = tuple[str, str, ProfileAction, str]


class ChangeTally:
    """Counts changes per (tag, keyword, action, rule) over the files of one run."""

    def __init__(self) -> None:
        self._counts: Counter[ChangeKey] = Counter()
        self.files = 0
        self.refused: list[RefusedFile] = []
        self.warnings: Counter[str] = Counter()

    def add(self, key: ChangeKey, count: int = 1) -> None:
        self._counts[key] += count

    def merge(self, counts: Iterable[tuple[ChangeKey, int]], *, files: int = 1) -> None:
        for key, count in counts:
            self._counts[key] += count
        self.files += files

    def items(self) -> list[tuple[ChangeKey, int]]:
        return list(self._counts.items())

    def report(self, options: DeidentificationOptions) -> DeidentificationReport:
        changes = [
            ChangeCount(tag=tag, keyword=keyword, action=action, rule=rule, count=count)
            for (tag, keyword, action, rule), count in sorted(self._counts.items())
        ]
        return DeidentificationReport(
            method_codes=options.method_codes(),
            options=options,
            files=self.files,
            changes=changes,
            refused=list(self.refused),
            warnings=[f"{text} ({count} file(s))" for text, count in sorted(self.warnings.items())],
        )
