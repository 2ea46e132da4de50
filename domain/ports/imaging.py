"""Port for turning the stored files of one series back into a volume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from domain.imaging.geometry import Volume
from domain.imaging.ingest import ImageFormat


class StoredFile(msgspec.Struct, frozen=True, kw_only=True):
    """One stored instance file, as received at ingest, with the format it was read as."""

    data: bytes
    format: ImageFormat


class VolumeReader(Protocol):
    def read_volume(self, files: Sequence[StoredFile]) -> Volume:
        """Assemble the instances of one series (any order) into a volume with the geometry
        of their headers (synthetic but valid for NIfTI/PNG/JPEG, as at ingest). Raises
        ``InvalidInput`` when the files do not form one volume."""
