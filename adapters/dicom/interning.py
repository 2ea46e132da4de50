"""Converted header elements shared between files: ingest's hot path.

The files of a series repeat most of their header byte for byte (patient, study, series,
equipment, pixel module); pydicom converts each raw element anew in every file, which is most
of the CPU time ingest spends on a CT slice. :func:`intern_elements` converts an element once
per distinct encoding and hands the converted element, and its DICOM JSON, to every later file
that carries the same bytes.

Only top-level elements with an explicit, unambiguous VR of a plain string or number type and a
short value take part: their conversion depends on nothing but the tag, the VR, the bytes, the
byte order and the character set, which together are the key. Everything else (sequences, bulk
and ambiguous VRs, implicit VR files) is converted by pydicom as before. The converted elements
are shared between datasets, so only datasets that are read and then dropped (never changed)
may be interned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

MAX_VALUE_BYTES = 256
"""Longer values (rarely repeated) are not kept."""
MAX_ENTRIES = 8192
"""The memo is emptied when it reaches this many elements (a few MB at most)."""

_SHAREABLE_VRS = frozenset(
    {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH",
        "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR", "US", "UT", "UV",
    }
)  # fmt: skip

_Key = tuple[int, str, bytes, bool, tuple[str, ...]]
_memo: dict[_Key, tuple[DataElement, dict[str, Any]]] = {}


def intern_elements(
    ds: Dataset, to_json: Callable[[DataElement], dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Convert the shareable top-level elements of ``ds``, reusing earlier conversions.

    Args:
        ds: a dataset just read (its elements still raw), read and dropped afterwards.
        to_json: an element's DICOM JSON (``DataElement.to_json_dict`` with the caller's
            bulk data settings; always the same for the same element).

    Returns:
        The DICOM JSON of each element converted here, by tag, for the header.
    """
    found: dict[int, dict[str, Any]] = {}
    elements = ds._dict  # pydicom's element store: the public API would convert every element
    charset: tuple[str, ...] | None = None
    for tag, element in list(elements.items()):
        if not isinstance(element, RawDataElement) or element.is_implicit_VR:
            continue
        vr, value = element.VR, element.value
        if vr not in _SHAREABLE_VRS or value is None or len(value) > MAX_VALUE_BYTES:
            continue
        if charset is None:
            charset = _charset(ds)
        key: _Key = (int(tag), vr, value, element.is_little_endian, charset)
        known = _memo.get(key)
        if known is not None:
            elements[tag] = known[0]
            found[tag] = known[1]
            continue
        try:
            converted = ds[tag]
            encoded = to_json(converted)
        except Exception:  # left to the caller's own handling of unreadable elements
            continue
        if vr != converted.VR:  # pydicom fell back to UN: not a plain conversion
            continue
        if len(_memo) >= MAX_ENTRIES:
            _memo.clear()
        _memo[key] = (converted, encoded)
        found[tag] = encoded
    return found


def _charset(ds: Dataset) -> tuple[str, ...]:
    encodings = ds._character_set
    return (encodings,) if isinstance(encodings, str) else tuple(encodings)
