"""WADO-RS (PS3.18 10.4): instances, metadata, frames, bulk data and renderings.

Instances are streamed one file at a time, byte for byte as stored unless the client asks for
a transfer syntax they are not in (Explicit VR Little Endian is then made by re-encoding).
Metadata comes from the database. Frames and renderings read the one file they need.

Every route takes ``?centre_id=``: UIDs are unique per centre only, so an admin names whose
copy of a study held by several centres to read (409 otherwise); anyone else reads their own
centre's, and naming another centre is answered as an unknown UID (404).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from adapters.dicom.frames import frames as cut_frames
from adapters.dicom.frames import to_explicit_little_endian
from domain.dicomweb.json import PIXEL_DATA_TAG
from domain.errors import InvalidInput, NotFound
from domain.identity import Principal
from domain.ports.dicomweb import InstanceMatch
from domain.studies import Window
from domain.values import is_plain_number
from entrypoints.bootstrap import Container
from entrypoints.http.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    EXPLICIT_VR_LITTLE_ENDIAN,
    multipart_body,
    multipart_stream,
    multipart_type,
    new_boundary,
    not_acceptable,
)
from entrypoints.http.dicomweb.negotiation import (
    AS_STORED,
    dicom_transfer_syntax,
    frame_choice,
    json_accepted,
    rendered_format,
)
from entrypoints.http.dicomweb.qido import dicomweb_root
from entrypoints.http.studies.controllers import DEPENDENCIES
from entrypoints.http.studies.files import render_instance

INSTANCE_PATH = "/studies/{study:str}/series/{series:str}/instances/{instance:str}"
PREFETCH_BYTES = 32 * 1024 * 1024
"""Stored files read ahead of the one being sent in a study or series retrieve."""
MAX_FRAMES_PER_REQUEST = 10_000

CentreChoice = Annotated[
    UUID | None,
    QueryParameter(
        description="Whose copy to read when several centres hold these UIDs (admins; "
        "others may name only their own centre)"
    ),
]


def frame_numbers(text: str) -> list[int]:
    """``1,3,5`` -> [1, 3, 5] (PS3.18 8.3.3.3: a comma-separated list of positive integers)."""
    items = [item.strip() for item in text.split(",")]
    if not items or len(items) > MAX_FRAMES_PER_REQUEST or not all(map(is_plain_number, items)):
        raise InvalidInput(f"frame list {text[:60]!r} is not a comma-separated list of numbers")
    numbers = [int(i) for i in items]
    if 0 in numbers:
        raise InvalidInput("frame numbers start at 1")
    return numbers


def window_of(text: str | None) -> Window | None:
    """PS3.18 8.3.5.1.4 ``window=center,width[,function]`` (the function is not used)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        center, width = float(parts[0]), float(parts[1])
        return Window(center=center, width=width)
    except (ValueError, IndexError):
        raise InvalidInput(f"window {text[:40]!r} must be 'center,width[,function]'") from None


def _one(found: list[InstanceMatch]) -> InstanceMatch:
    return found[0]


class WadoController(Controller):
    path = "/"
    tags = ["dicomweb"]
    dependencies = DEPENDENCIES

    # -- instances -----------------------------------------------------------------------

    async def _retrieve(
        self,
        container: Container,
        principal: Principal,
        request: Request[Any, Any, Any],
        study: str,
        series: str | None = None,
        instance: str | None = None,
        *,
        centre_id: UUID | None,
    ) -> Stream:
        accept = request.headers.get("accept")
        syntax = dicom_transfer_syntax(accept)
        service = container.services.dicomweb
        found = await service.instances(
            principal, study, series, instance, purpose="file", centre_id=centre_id
        )
        dicom = [m for m in found if m.instance.content_type == DICOM]
        if not dicom:
            raise not_acceptable("images that were not stored as DICOM", accept)
        if syntax not in (AS_STORED, EXPLICIT_VR_LITTLE_ENDIAN) and any(
            m.instance.transfer_syntax_uid != syntax for m in dicom
        ):
            raise not_acceptable(f"instances in transfer syntax {syntax}", accept)

        async def load(match: InstanceMatch) -> tuple[str, bytes, str | None]:
            data = await service.read_file(match.instance)
            stored = match.instance.transfer_syntax_uid
            if syntax == EXPLICIT_VR_LITTLE_ENDIAN and stored != syntax:
                data = await asyncio.to_thread(to_explicit_little_endian, data)
                stored = syntax
            return f"{DICOM}; transfer-syntax={stored}", data, None

        chunks = prefetched(dicom, load)
        first = await anext(chunks)  # a missing file is a 404 before the headers go out
        boundary = new_boundary()
        return Stream(
            multipart_stream(boundary, _prepend(first, chunks)),
            media_type=multipart_type(DICOM, boundary),
        )

    @get("/studies/{study:str}", operation_id="wadoStudy", summary="WADO-RS: a study's instances")
    async def study(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Stream:
        return await self._retrieve(container, principal, request, study, centre_id=centre_id)

    @get(
        "/studies/{study:str}/series/{series:str}",
        operation_id="wadoSeries",
        summary="WADO-RS: a series' instances",
    )
    async def series(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Stream:
        return await self._retrieve(
            container, principal, request, study, series, centre_id=centre_id
        )

    @get(INSTANCE_PATH, operation_id="wadoInstance", summary="WADO-RS: one instance")
    async def instance(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        instance: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Stream:
        return await self._retrieve(
            container, principal, request, study, series, instance, centre_id=centre_id
        )

    # -- metadata ------------------------------------------------------------------------

    async def _metadata(
        self,
        container: Container,
        principal: Principal,
        request: Request[Any, Any, Any],
        study: str,
        series: str | None = None,
        instance: str | None = None,
        *,
        centre_id: UUID | None,
    ) -> Response[bytes]:
        json_accepted(request.headers.get("accept"), "metadata")
        found = await container.services.dicomweb.metadata(
            principal,
            dicomweb_root(container, request),
            study,
            series,
            instance,
            centre_id=centre_id,
        )
        return Response(msgspec.json.encode(found), media_type=DICOM_JSON)

    @get(
        "/studies/{study:str}/metadata",
        operation_id="wadoStudyMetadata",
        summary="WADO-RS: the headers of a study's instances (from the database)",
    )
    async def study_metadata(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        return await self._metadata(container, principal, request, study, centre_id=centre_id)

    @get(
        "/studies/{study:str}/series/{series:str}/metadata",
        operation_id="wadoSeriesMetadata",
        summary="WADO-RS: the headers of a series' instances (from the database)",
    )
    async def series_metadata(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        return await self._metadata(
            container, principal, request, study, series, centre_id=centre_id
        )

    @get(
        INSTANCE_PATH + "/metadata",
        operation_id="wadoInstanceMetadata",
        summary="WADO-RS: the header of one instance (from the database)",
    )
    async def instance_metadata(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        instance: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        return await self._metadata(
            container, principal, request, study, series, instance, centre_id=centre_id
        )

    # -- frames and bulk data ------------------------------------------------------------

    async def _frames(
        self,
        container: Container,
        principal: Principal,
        request: Request[Any, Any, Any],
        ids: tuple[str, str, str],
        numbers: list[int] | None,
        purpose: str,
        *,
        centre_id: UUID | None,
    ) -> Response[bytes]:
        service = container.services.dicomweb
        match = _one(await service.instances(principal, *ids, purpose=purpose, centre_id=centre_id))
        if match.instance.content_type != DICOM:
            raise NotFound("frames of a DICOM instance", ids[2])
        choice = frame_choice(request.headers.get("accept"), match.instance.transfer_syntax_uid)
        data = await service.read_file(match.instance)
        wanted = numbers or list(range(1, match.instance.number_of_frames + 1))
        found, syntax = await asyncio.to_thread(
            cut_frames, data, wanted, as_stored=choice.as_stored
        )
        boundary = new_boundary()
        part_type = f"{choice.media_type}; transfer-syntax={syntax}"
        return Response(
            multipart_body(boundary, ((part_type, frame) for frame in found)),
            media_type=multipart_type(choice.media_type, boundary),
        )

    @get(
        INSTANCE_PATH + "/frames/{frames:str}",
        operation_id="wadoFrames",
        summary="WADO-RS: pixel data of frames (uncompressed, or as stored)",
    )
    async def frames(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        instance: FromPath[str],
        frames: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        numbers = frame_numbers(frames)
        return await self._frames(
            container,
            principal,
            request,
            (study, series, instance),
            numbers,
            "frames",
            centre_id=centre_id,
        )

    @get(
        INSTANCE_PATH + "/bulkdata/{tag:str}",
        operation_id="wadoBulkData",
        summary="WADO-RS: bulk data named by a metadata BulkDataURI (pixel data)",
    )
    async def bulkdata(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        instance: FromPath[str],
        tag: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        if tag.upper() != PIXEL_DATA_TAG:
            raise NotFound("bulk data", tag[:20])
        return await self._frames(
            container,
            principal,
            request,
            (study, series, instance),
            None,
            "bulkdata",
            centre_id=centre_id,
        )

    # -- renderings ----------------------------------------------------------------------

    async def _rendered(
        self,
        container: Container,
        principal: Principal,
        request: Request[Any, Any, Any],
        ids: tuple[str, str, str],
        frame: int,
        *,
        centre_id: UUID | None,
    ) -> Response[bytes]:
        chosen = rendered_format(request.headers.get("accept"))
        window = window_of(request.query_params.get("window"))
        service = container.services.dicomweb
        match = _one(
            await service.instances(principal, *ids, purpose="rendered", centre_id=centre_id)
        )
        data = await service.read_file(match.instance)
        picture = await asyncio.to_thread(
            render_instance, data, match.instance, frame=frame, window=window, format=chosen
        )
        return Response(picture, media_type=chosen.content_type)

    @get(
        INSTANCE_PATH + "/rendered",
        operation_id="wadoInstanceRendered",
        summary="WADO-RS: the instance's first frame as JPEG or PNG",
    )
    async def instance_rendered(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        instance: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        ids = (study, series, instance)
        return await self._rendered(container, principal, request, ids, 1, centre_id=centre_id)

    @get(
        INSTANCE_PATH + "/frames/{frames:str}/rendered",
        operation_id="wadoFrameRendered",
        summary="WADO-RS: one frame as JPEG or PNG",
    )
    async def frame_rendered(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
        instance: FromPath[str],
        frames: FromPath[str],
        centre_id: CentreChoice = None,
    ) -> Response[bytes]:
        numbers = frame_numbers(frames)
        if len(numbers) != 1:
            raise HTTPException(status_code=400, detail="render one frame at a time")
        ids = (study, series, instance)
        return await self._rendered(
            container, principal, request, ids, numbers[0], centre_id=centre_id
        )


async def prefetched(
    matches: list[InstanceMatch],
    load: Callable[[InstanceMatch], Awaitable[tuple[str, bytes, str | None]]],
) -> AsyncIterator[tuple[str, bytes, str | None]]:
    """The loaded parts in order, the next files read while one is being sent (up to
    :data:`PREFETCH_BYTES` ahead, at least one file)."""
    pending: deque[tuple[asyncio.Task[tuple[str, bytes, str | None]], int]] = deque()
    upcoming = iter(matches)
    ahead = 0

    def fill() -> None:
        nonlocal ahead
        while not pending or ahead < PREFETCH_BYTES:
            match = next(upcoming, None)
            if match is None:
                return
            pending.append((asyncio.ensure_future(load(match)), match.instance.size_bytes))
            ahead += match.instance.size_bytes

    try:
        fill()
        while pending:
            task, size = pending.popleft()
            ahead -= size
            part = await task
            fill()
            yield part
    finally:
        for task, _ in pending:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a read that failed after an earlier one did
            task.cancel()


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item
