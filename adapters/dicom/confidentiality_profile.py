"""DICOM PS3.15 Table E.1-1 (Basic Application Level Confidentiality Profile) as data.

The table is not transcribed here: it comes from the ``dicom-anonymizer`` package
(KitwareMedical), which regenerates it from the standard's own XML for each edition; this
module pins the edition (:data:`EDITION`) and turns its lists into a lookup. Only the table
is used, not that package's engine (it keeps its UID map in a module-level dictionary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dicomanonymizer.dicom_anonymization_databases import (  # type: ignore[import-untyped]
    dicomfields_2026c as _table,
)

EDITION = "2026c"
"""The edition of PS3.15 the table was generated from."""

_CATEGORIES: dict[str, str] = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


@dataclass(frozen=True, slots=True)
class MaskedRule:
    """A row for a repeating group (``50xx,xxxx`` curve data, ``60xx,3000`` overlay data):
    a tag matches when ``tag & mask == value``."""

    value: int
    mask: int
    rule: str

    def matches(self, tag: int) -> bool:
        return tag & self.mask == self.value


def _load() -> tuple[Mapping[int, str], tuple[MaskedRule, ...]]:
    exact: dict[int, str] = {}
    masked: list[MaskedRule] = []
    for category, rule in _CATEGORIES.items():
        for row in getattr(_table, category):
            if len(row) == 2:
                group, element = row
                exact[(group << 16) | element] = rule
            else:
                group, element, group_mask, element_mask = row
                masked.append(
                    MaskedRule(
                        value=(group << 16) | element,
                        mask=(group_mask << 16) | element_mask,
                        rule=rule,
                    )
                )
    return MappingProxyType(exact), tuple(masked)


PROFILE, MASKED_RULES = _load()
"""Table E.1-1: tag (as an int) -> its action code (``X``, ``Z``, ``D``, ``U``, ``Z/D``,
``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``); and the rows for repeating groups."""


def rule_for(tag: int) -> str | None:
    """The profile's action for ``tag``, or None for an attribute the table does not list."""
    found = PROFILE.get(tag)
    if found is not None:
        return found
    for masked in MASKED_RULES:
        if masked.matches(tag):
            return masked.rule
    return None
