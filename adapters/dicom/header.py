"""The header of an instance as DICOM JSON (PS3.18 F.2), without bulk data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

BULK_DATA_THRESHOLD_BYTES = 1024
"""Binary values (OB, OW, OF, OD, OL, OV, UN) longer than this are left out of the header."""

PIXEL_DATA_TAGS = frozenset({"7FE00010", "7FE00008", "7FE00009"})
"""``PixelData``, ``FloatPixelData`` and ``DoubleFloatPixelData``: always left out."""

_DROPPED = "urn:hounsfield:dropped-bulk-data"


def _drop(_element: DataElement) -> str:
    return _DROPPED


def _prune(node: Any) -> Any:
    if isinstance(node, dict):
        pruned: dict[str, Any] = {}
        for key, item in node.items():
            if key in PIXEL_DATA_TAGS:
                continue
            if isinstance(item, dict) and item.get("BulkDataURI") == _DROPPED:
                continue
            pruned[key] = _prune(item)
        return pruned
    if isinstance(node, list):
        return [_prune(item) for item in node]
    # plain builtins only: pydicom hands out str/int/float subclasses (UID, IS, DSfloat)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node) if math.isfinite(node) else None
    return str(node)


def element_json(
    element: DataElement, *, bulk_data_threshold_bytes: int = BULK_DATA_THRESHOLD_BYTES
) -> dict[str, Any]:
    """One element's DICOM JSON as :func:`header_json` writes it (before pruning)."""
    encoded: dict[str, Any] = element.to_json_dict(
        bulk_data_element_handler=_drop, bulk_data_threshold=bulk_data_threshold_bytes
    )
    return encoded


def header_json(
    ds: Dataset,
    *,
    bulk_data_threshold_bytes: int = BULK_DATA_THRESHOLD_BYTES,
    encoded_elements: Mapping[int, dict[str, Any]] | None = None,
) -> dict[str, object]:
    """``ds`` as a DICOM JSON object, pixel data and large binary values left out.

    Pixel data (``7FE0,0010``/``0008``/``0009``) is dropped at every level (icon images in
    sequences too); any other binary value longer than ``bulk_data_threshold_bytes`` (overlay
    data, waveforms, private blobs) is dropped as well, smaller ones stay inline as base64
    (``InlineBinary``). Elements whose values cannot be encoded are skipped; the stored file
    keeps them byte for byte. The file meta group (0002) is not part of the dataset and is not
    included.

    Args:
        encoded_elements: :func:`element_json` of some elements of ``ds`` already, by tag
            (from :func:`adapters.dicom.interning.intern_elements`).

    Returns:
        A dict keyed by 8-hex-digit tags, each ``{"vr": ..., "Value": [...]}``, ready for
        ``msgspec.json.encode``.
    """
    # Not ``ds.to_json_dict(suppress_invalid_tags=True)``: that switches pydicom's global
    # reading mode to RAISE for the duration and restores it without a lock, so two threads
    # encoding headers at once could leave every later read in the process in strict mode.
    encoded: dict[str, Any] = {}
    for tag in list(ds.keys()):
        key = f"{int(tag):08X}"
        if key in PIXEL_DATA_TAGS:  # dropped anyway: not worth converting
            continue
        known = encoded_elements.get(tag) if encoded_elements else None
        if known is not None:
            encoded[key] = known
            continue
        try:
            encoded[key] = element_json(
                ds[tag], bulk_data_threshold_bytes=bulk_data_threshold_bytes
            )
        except Exception:  # an unencodable element is skipped; the stored file keeps it
            continue
    result: dict[str, object] = _prune(encoded)
    return result
