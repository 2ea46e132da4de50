"""Health probe for the blob store, for ``/health/detailed``."""

from __future__ import annotations

import asyncio

from domain.errors import Unavailable
from domain.ports.blobs import BlobStore


class StorageHealthProbe:
    """Pings a ``BlobStore``; raises ``Unavailable`` when it fails or takes over ``timeout_s``.

    ``detail`` (e.g. ``"filesystem"`` or ``"s3"``) is what a successful check reports.
    """

    component = "storage"

    def __init__(self, store: BlobStore, *, detail: str | None = None, timeout_s: float = 5.0):
        self._store = store
        self._detail = detail
        self._timeout_s = timeout_s

    async def check(self) -> str | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._store.ping()
        except TimeoutError as err:
            raise Unavailable(f"blob store did not answer within {self._timeout_s:g} s") from err
        return self._detail
