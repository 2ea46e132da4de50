"""Loading the stored files of one series, and choosing the series a study-level job reads.

These helpers run on behalf of a job that was already authorised when it was created, so they
take no :class:`~domain.identity.Principal`; callers scope the ids they pass.
"""

from __future__ import annotations

import asyncio

from domain.errors import InvalidInput, NotFound
from domain.imaging.ingest import ImageFormat
from domain.ports.blobs import BlobNotFound, BlobStore
from domain.ports.imaging import StoredFile
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.studies import Instance, Series
from domain.values import Id

PARALLEL_GETS = 8
"""Stored files fetched at a time: enough to hide store latency, few enough for memory."""

_FORMAT_BY_CONTENT_TYPE = {f.content_type: f for f in ImageFormat}

NON_IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
        "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
        "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
        "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    }
)


def is_image(instance: Instance) -> bool:
    """Whether an instance holds pixels a volume can be built from."""
    return (
        instance.rows is not None
        and instance.columns is not None
        and instance.sop_class_uid not in NON_IMAGE_SOP_CLASSES
    )


def stored_format(instance: Instance) -> ImageFormat:
    """The format an instance was stored as, from the media type ingest gave it."""
    try:
        return _FORMAT_BY_CONTENT_TYPE[instance.content_type]
    except KeyError:
        raise InvalidInput(
            f"instance {instance.id} is stored as {instance.content_type!r}, not an image format"
        ) from None


async def analysis_series_id(uow_factory: UnitOfWorkFactory, study_id: Id) -> Id:
    """The series a study-level analysis reads: the image series with the most instances
    (ties: the first in series order), so a scout or a one-slice reformat is not chosen over
    the acquisition. Raises ``NotFound`` for a study without image series."""
    async with uow_factory() as uow:
        series = await uow.series.list_for_study(study_id)
        instances = await uow.instances.list_for_study(study_id)
    counts = {s.id: 0 for s in series}
    for instance in instances:
        if is_image(instance) and instance.series_id in counts:
            counts[instance.series_id] += 1
    best = max(series, key=lambda s: counts[s.id], default=None)
    if best is None or counts[best.id] == 0:
        raise NotFound("image series of study", study_id)
    return best.id


async def load_series(
    uow_factory: UnitOfWorkFactory, blobs: BlobStore, series_id: Id
) -> tuple[Series, list[Instance], list[StoredFile]]:
    """A series, its image instances (by instance number) and their stored files, in the same
    order.

    Raises:
        NotFound: the series does not exist, has no image instances, or a stored file is gone.
        InvalidInput: an instance is stored in a format no volume can be read from.
    """
    async with uow_factory() as uow:
        series = await uow.series.get(series_id)
        if series is None:
            raise NotFound("series", series_id)
        instances = [i for i in await uow.instances.list_for_series(series_id) if is_image(i)]
    if not instances:
        raise NotFound("image instances of series", series_id)
    formats = [stored_format(instance) for instance in instances]
    gate = asyncio.Semaphore(PARALLEL_GETS)

    async def fetch(instance: Instance, image_format: ImageFormat) -> StoredFile:
        async with gate:
            try:
                data = await blobs.get(instance.storage_key)
            except BlobNotFound as err:
                raise NotFound("stored file of instance", instance.id) from err
        return StoredFile(data=data, format=image_format)

    files = await asyncio.gather(*(fetch(i, f) for i, f in zip(instances, formats, strict=True)))
    return series, instances, list(files)
