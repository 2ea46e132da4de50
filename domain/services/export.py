"""Use case: exporting images as PNG, JPEG or NumPy arrays, optionally with their metadata.

All or nothing: every requested image is checked (tenancy first, then ``studies:read``) before
any file is read, so one image of another centre makes the whole request 404 and nothing is
exported. Each exported image is audited as ``instance.read`` with the detail ``export``.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from domain.errors import InvalidInput, NotFound
from domain.identity import Principal
from domain.imaging.frames import Frames
from domain.ports.blobs import BlobStore
from domain.ports.exporting import ExportFormat, ImageCodec
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.auditing import Auditor
from domain.services.deidentification import NamedFile
from domain.services.studies import require_study_reader
from domain.studies import Instance, Modality, Window
from domain.values import Id

MAX_EXPORT_IMAGES = 1000
_MODALITY_TAG = "00080060"


class ExportImages(msgspec.Struct, frozen=True, kw_only=True):
    image_ids: list[Id]
    format: ExportFormat = ExportFormat.PNG
    window: Window | None = None
    """Applies to PNG and JPEG; left out, each image's own (header, preset or min/max)."""
    include_metadata: bool = False

    def __post_init__(self) -> None:
        if not self.image_ids:
            raise ValueError("image_ids is empty; name one or more images")
        if len(self.image_ids) > MAX_EXPORT_IMAGES:
            raise ValueError(f"at most {MAX_EXPORT_IMAGES} images per export")


@dataclass(frozen=True, slots=True)
class ExportedImages:
    files: list[NamedFile]


def header_modality(instance: Instance) -> Modality | None:
    element = instance.header.get(_MODALITY_TAG)
    values = element.get("Value") if isinstance(element, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], str):
        try:
            return Modality.parse(values[0])
        except ValueError:
            return None
    return None


def export_frames(
    frames: Frames, codec: ImageCodec, *, format: ExportFormat, window: Window | None
) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
    """Files named by frame (``frame-0001.png``) or one ``.npy``, and the windows used."""
    if format is ExportFormat.NPY:
        buffer = io.BytesIO()
        np.save(buffer, frames.pixels, allow_pickle=False)
        return [("npy", buffer.getvalue())], []
    files: list[tuple[str, bytes]] = []
    windows: list[dict[str, Any]] = []
    for index in range(frames.number_of_frames):
        picture, used = frames.display(index, requested=window)
        files.append(
            (f"frame-{index + 1:04d}.{format.extension}", codec.encode(picture, format=format))
        )
        windows.append({"frame": index + 1, **msgspec.to_builtins(used)})
    return files, windows


def metadata_of(instance: Instance, frames: Frames, windows: list[dict[str, Any]]) -> bytes:
    document = {
        "image_id": str(instance.id),
        "study_id": str(instance.study_id),
        "series_id": str(instance.series_id),
        "sop_instance_uid": instance.sop_instance_uid,
        "sop_class_uid": instance.sop_class_uid,
        "instance_number": instance.instance_number,
        "rows": frames.rows,
        "columns": frames.columns,
        "number_of_frames": frames.number_of_frames,
        "photometric_interpretation": frames.photometric_interpretation,
        "pixel_spacing": instance.pixel_spacing,
        "slice_thickness": instance.slice_thickness,
        "image_position_patient": instance.image_position_patient,
        "image_orientation_patient": instance.image_orientation_patient,
        "windows": windows,
        "header": instance.header,
    }
    return msgspec.json.format(msgspec.json.encode(document), indent=2)


class ExportService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, blobs: BlobStore, auditor: Auditor, codec: ImageCodec
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._auditor = auditor
        self._codec = codec

    async def export(self, principal: Principal, command: ExportImages) -> ExportedImages:
        """``<image id>/frame-0001.png`` (one per frame) or ``<image id>.npy`` per image, and
        ``<image id>.json`` with the metadata when asked.

        Raises:
            NotFound: an image does not exist or belongs to another centre (nothing exported).
            InvalidInput: a stored file cannot be decoded, or the window is not valid.
        """
        wanted = list(dict.fromkeys(command.image_ids))
        async with self._uow() as uow:
            instances = [await uow.instances.get(image_id) for image_id in wanted]
        # tenancy first: another centre's image is not found, whatever the key's scopes
        for image_id, instance in zip(wanted, instances, strict=True):
            if instance is None or not principal.can_see_centre(instance.centre_id):
                raise NotFound("image", image_id)
        require_study_reader(principal)
        files: list[NamedFile] = []
        for instance in instances:
            assert instance is not None
            files.extend(await self._one(instance, command))
        for instance in instances:
            assert instance is not None
            await self._auditor.record(
                principal,
                "instance.read",
                "instance",
                instance.id,
                centre_id=instance.centre_id,
                detail=f"export {command.format.value}",
            )
        return ExportedImages(files=files)

    async def _one(self, instance: Instance, command: ExportImages) -> list[NamedFile]:
        data = await self._blobs.get(instance.storage_key)
        frames = await asyncio.to_thread(
            self._codec.decode, data, modality=header_modality(instance)
        )
        try:
            exported, windows = await asyncio.to_thread(
                export_frames, frames, self._codec, format=command.format, window=command.window
            )
        except ValueError as err:
            raise InvalidInput(str(err)) from None
        base = str(instance.id)
        files = [
            NamedFile(f"{base}.npy" if suffix == "npy" else f"{base}/{suffix}", content)
            for suffix, content in exported
        ]
        if command.include_metadata:
            files.append(NamedFile(f"{base}.json", metadata_of(instance, frames, windows)))
        return files
