"""Port for de-identifying one file under a run's plan (PS3.15 Annex E)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from domain.deidentification import ChangeKey, DeidentificationPlan


@dataclass(frozen=True, eq=False, slots=True)
class DeidentifiedData:
    """One de-identified file with the changes made to it (counts, never values)."""

    data: bytes
    changes: list[tuple[ChangeKey, int]]
    warnings: list[str] = field(default_factory=list)


class Deidentifier(Protocol):
    def deidentify(self, data: bytes, plan: DeidentificationPlan) -> DeidentifiedData:
        """De-identify one file (blocking, CPU-bound). The same plan maps the same input UID
        to the same output UID in every file and in every process.

        Raises:
            InvalidInput: the bytes are not a DICOM dataset that can be read and written back;
                the detail says why.
        """
        ...
