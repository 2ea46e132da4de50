"""ZIP archives of named files, for the HTTP answers and the CLI."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable

_STORED_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Already compressed: deflating them again costs time and saves nothing."""


def zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A ZIP holding ``files`` (name, content) in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, content in files:
            stored = name.lower().endswith(_STORED_SUFFIXES)
            zf.writestr(
                name, content, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            )
    return buffer.getvalue()
