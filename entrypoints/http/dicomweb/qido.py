"""QIDO-RS (PS3.18 10.6): searches for studies, series and instances."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from pydicom.datadict import tag_for_keyword

from domain.dicomweb.query import QidoLevel, QidoRequest
from domain.errors import InvalidInput
from domain.identity import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.dicomweb.media import DICOM_JSON
from entrypoints.http.dicomweb.negotiation import json_accepted
from entrypoints.http.studies.controllers import DEPENDENCIES

DICOMWEB_PATH = "/dicomweb"
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_CONTROL = frozenset({"limit", "offset", "fuzzymatching", "includefield"})


def dicomweb_root(container: Container, request: Request[Any, Any, Any]) -> str:
    """The URL clients reach DICOMweb at (RetrieveURLs and BulkDataURIs start with it)."""
    base = container.settings.public_base_url or str(request.base_url)
    base = base.rstrip("/").removesuffix("/api/v1")
    return base + DICOMWEB_PATH


def tag_of(name: str) -> str:
    """An attribute tag (``00100010``) from a tag or a keyword (``PatientName``)."""
    text = name.strip()
    if _TAG.match(text):
        return text.upper()
    found = tag_for_keyword(text)
    if found is None:
        if "." in text:
            raise InvalidInput(f"matching on sequence attributes ({text[:80]!r}) is not supported")
        raise InvalidInput(f"{text[:80]!r} is neither a DICOM attribute keyword nor a tag")
    return f"{found:08X}"


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {text[:40]!r}") from None


def qido_request(
    request: Request[Any, Any, Any],
    level: QidoLevel,
    study: str | None = None,
    series: str | None = None,
) -> QidoRequest:
    keys: dict[str, str] = {}
    include: list[str] = []
    include_all = fuzzy = False
    limit: int | None = None
    offset = 0
    for name, value in request.query_params.multi_items():
        control = name.lower()
        if control == "limit":
            limit = _integer(value, "limit")
        elif control == "offset":
            offset = _integer(value, "offset")
        elif control == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise InvalidInput(f"fuzzymatching must be true or false, got {value[:20]!r}")
            fuzzy = value.lower() == "true"
        elif control == "includefield":
            for item in value.split(","):
                if item.strip().lower() == "all":
                    include_all = True
                elif item.strip():
                    include.append(tag_of(item))
        else:
            keys[tag_of(name)] = value
    return QidoRequest(
        level=level,
        keys=keys,
        include=tuple(include),
        include_all=include_all,
        fuzzy=fuzzy,
        limit=limit,
        offset=offset,
        study_instance_uid=study,
        series_instance_uid=series,
    )


class QidoController(Controller):
    path = "/"
    tags = ["dicomweb"]
    dependencies = DEPENDENCIES

    async def _search(
        self,
        container: Container,
        principal: Principal,
        request: Request[Any, Any, Any],
        level: QidoLevel,
        study: str | None = None,
        series: str | None = None,
    ) -> Response[bytes]:
        json_accepted(request.headers.get("accept"), "a search")
        query = qido_request(request, level, study, series)
        result = await container.services.dicomweb.search(
            principal, query, dicomweb_root(container, request)
        )
        headers = {"X-Total-Count": str(result.total)}
        if result.warnings:
            headers["Warning"] = ", ".join(result.warnings)
        return Response(msgspec.json.encode(result.matches), media_type=DICOM_JSON, headers=headers)

    @get("/studies", operation_id="qidoStudies", summary="QIDO-RS: search for studies")
    async def studies(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> Response[bytes]:
        return await self._search(container, principal, request, QidoLevel.STUDY)

    @get("/series", operation_id="qidoSeries", summary="QIDO-RS: search for series")
    async def all_series(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> Response[bytes]:
        return await self._search(container, principal, request, QidoLevel.SERIES)

    @get(
        "/studies/{study:str}/series",
        operation_id="qidoStudySeries",
        summary="QIDO-RS: search for the series of a study",
    )
    async def study_series(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
    ) -> Response[bytes]:
        return await self._search(container, principal, request, QidoLevel.SERIES, study)

    @get("/instances", operation_id="qidoInstances", summary="QIDO-RS: search for instances")
    async def all_instances(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> Response[bytes]:
        return await self._search(container, principal, request, QidoLevel.INSTANCE)

    @get(
        "/studies/{study:str}/instances",
        operation_id="qidoStudyInstances",
        summary="QIDO-RS: search for the instances of a study",
    )
    async def study_instances(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
    ) -> Response[bytes]:
        return await self._search(container, principal, request, QidoLevel.INSTANCE, study)

    @get(
        "/studies/{study:str}/series/{series:str}/instances",
        operation_id="qidoSeriesInstances",
        summary="QIDO-RS: search for the instances of a series",
    )
    async def series_instances(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        series: FromPath[str],
    ) -> Response[bytes]:
        return await self._search(container, principal, request, QidoLevel.INSTANCE, study, series)
