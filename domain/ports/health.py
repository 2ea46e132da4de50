"""A component that can tell whether it works, for ``/health/detailed``."""

from __future__ import annotations

from typing import Protocol


class HealthProbe(Protocol):
    @property
    def component(self) -> str:
        """``database``, ``storage``, ``queue``, ``models``..."""

    async def check(self) -> str | None:
        """Raise when the component is unusable; may return a short detail (e.g. a version)."""
