"""Staged uploads: how long a presigned upload URL lives, and the sweep of abandoned ones.

A client asks for a presigned URL, PUTs one file to ``staging/<centre>/<uuid>/<name>`` and
then asks for it to be ingested, which removes it. A client that never asks leaves a file of
patient data in staging; :func:`sweep_staging` deletes what has waited too long. Staged keys
carry the client's file name, which may be a patient's name: nothing here logs a key.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from domain.errors import DomainError
from domain.ports.blobs import BlobStore

STAGING_PREFIX = "staging"
PRESIGN_TTL_S = 600
"""Seconds a presigned upload URL is valid; a staged file is swept only well after this."""

_log = logging.getLogger(__name__)


async def sweep_staging(blobs: BlobStore, *, now: datetime, older_than_s: float) -> int:
    """Delete every staged object last written before ``now - older_than_s``; how many.

    Newer objects are kept: their upload may still be followed by an ingest. An object
    that cannot be deleted is counted and left for the next sweep; a failure to list
    raises.
    """
    cutoff = now - timedelta(seconds=older_than_s)
    deleted = failed = 0
    async for entry in blobs.list_prefix(STAGING_PREFIX):
        if entry.modified_at >= cutoff:
            continue
        try:
            await blobs.delete(entry.key)
        except DomainError:  # its message names the key: counted, not logged
            failed += 1
            continue
        deleted += 1
    if deleted:
        _log.info("staging sweep deleted %d abandoned uploads", deleted)
    if failed:
        _log.warning("staging sweep could not delete %d abandoned uploads", failed)
    return deleted
