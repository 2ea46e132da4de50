"""DICOMweb use cases: QIDO-RS searches and the WADO-RS reads, scoped to the caller's centre.

Searches and metadata are answered from the database (rows and the headers stored at ingest);
only retrieving files, frames and renderings reads storage. A principal with a centre sees that
centre only; an admin (no centre) sees every centre. What another centre holds is never found:
an empty search, a 404 on retrieve. UIDs are unique per centre only, so two centres may each
hold a copy of one study: a search lists both, but a retrieve must name one (an admin's
``centre_id``) rather than merge them. STOW-RS stores through
:class:`~domain.services.ingest.IngestService`; :func:`store_response` builds its answer.

Audit: one record per request (``study.list``/``series.list``/``instance.list`` for searches,
``study.read``/``series.read``/``instance.read`` for retrieves, detail ``dicomweb ...``), never
with patient data.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import msgspec

from domain.dicomweb.json import (
    PIXEL_DATA_TAG,
    DicomJson,
    Urls,
    instance_header_tags,
    instance_result,
    metadata,
    series_result,
    study_result,
)
from domain.dicomweb.query import ParsedQuery, QidoLevel, QidoRequest, page_size, parse
from domain.errors import Conflict, NotFound
from domain.identity import Principal
from domain.ports.blobs import BlobStore
from domain.ports.dicomweb import DicomQuery, InstanceMatch
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.access import scoped_centre
from domain.services.auditing import Auditor
from domain.services.studies import require_study_reader
from domain.studies import Instance
from domain.values import MAX_PAGE_SIZE, Id, Page

WARNING_SERVICE = "hounsfield"
"""The ``warn-agent`` of the ``Warning: 299`` headers (RFC 7234 5.5)."""


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    matches: list[DicomJson]
    total: int
    """How many matched in all (for the ``X-Total-Count`` header)."""
    warnings: list[str]
    """``Warning`` header values (PS3.18 8.3.4.2, 8.3.4.3, 8.3.4.6)."""


class Scope(enum.IntEnum):
    """What a WADO-RS request names."""

    STUDY = 1
    SERIES = 2
    INSTANCE = 3


def warning(text: str) -> str:
    return f'299 {WARNING_SERVICE} "{text}"'


class DicomWebService:
    def __init__(self, *, uow: UnitOfWorkFactory, blobs: BlobStore, auditor: Auditor) -> None:
        self._uow = uow
        self._blobs = blobs
        self._auditor = auditor

    # -- QIDO-RS -------------------------------------------------------------------------

    async def search(self, principal: Principal, request: QidoRequest, root: str) -> SearchResult:
        """Studies, series or instances matching ``request``; ``root`` is the DICOMweb base
        URL the RetrieveURLs start with.

        Raises:
            PermissionDenied: an API key without ``studies:read``.
            InvalidInput: a matching key whose value cannot be one of its attribute.
        """
        require_study_reader(principal)
        parsed = parse(request, scoped_centre(principal, None))
        size = page_size(request)
        page = Page(skip=request.offset, limit=size)
        urls = Urls(root)
        include = tuple(dict.fromkeys((*request.include, *parsed.returned)))
        query = parsed.query
        async with self._uow() as uow:
            if request.level is QidoLevel.STUDY:
                studies = await uow.dicom.studies(query, page)
                known = _known_total(page, len(studies))
                total = known if known is not None else await uow.dicom.count_studies(query)
                found = [study_result(m, urls, include, request.include_all) for m in studies]
            elif request.level is QidoLevel.SERIES:
                series = await uow.dicom.series(query, page)
                known = _known_total(page, len(series))
                total = known if known is not None else await uow.dicom.count_series(query)
                found = [
                    series_result(
                        m,
                        urls,
                        include,
                        request.include_all,
                        with_study=request.study_instance_uid is None,
                    )
                    for m in series
                ]
            else:
                with_study = request.study_instance_uid is None
                with_series = request.series_instance_uid is None
                tags = None
                if not request.include_all:
                    tags = instance_header_tags(
                        include, with_study=with_study, with_series=with_series
                    )
                instances = await uow.dicom.instances(query, page, header_tags=tags)
                known = _known_total(page, len(instances))
                total = known if known is not None else await uow.dicom.count_instances(query)
                found = [
                    instance_result(
                        m,
                        urls,
                        include,
                        request.include_all,
                        with_study=with_study,
                        with_series=with_series,
                    )
                    for m in instances
                ]
        await self._auditor.record(
            principal,
            f"{request.level.name.lower()}.list",
            request.level.name.lower(),
            None,
            detail=f"dicomweb search: {len(found)} of {total}",
        )
        return SearchResult(
            matches=found,
            total=total,
            warnings=_search_warnings(request, parsed, returned=len(found), total=total),
        )

    # -- WADO-RS -------------------------------------------------------------------------

    async def instances(
        self,
        principal: Principal,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        *,
        purpose: str,
        centre_id: Id | None = None,
    ) -> list[InstanceMatch]:
        """Every instance a WADO-RS path names, in series then instance order, all of one
        centre.

        ``purpose`` (``file``, ``metadata``, ``frames``, ``rendered``) goes to the audit trail.
        ``centre_id`` picks the centre whose copy is read: an admin's choice; anyone else may
        name only their own centre.

        Raises:
            NotFound: nothing the caller may see has these UIDs, or a non-admin named another
                centre (answered exactly as an unknown UID, so it tells nothing of that centre).
            Conflict: an admin named no centre and more than one centre holds these UIDs.
            PermissionDenied: an API key without ``studies:read``.
        """
        require_study_reader(principal)
        if centre_id is not None and not principal.can_see_centre(centre_id):
            raise _not_found(study_uid, series_uid, sop_uid)
        found: list[InstanceMatch] = []
        query = DicomQuery(
            centre_id=scoped_centre(principal, centre_id),
            study_instance_uids=(study_uid,),
            series_instance_uids=() if series_uid is None else (series_uid,),
            sop_instance_uids=() if sop_uid is None else (sop_uid,),
        )
        async with self._uow() as uow:
            while True:
                chunk = await uow.dicom.instances(query, Page(skip=len(found), limit=MAX_PAGE_SIZE))
                found.extend(chunk)
                if len(chunk) < MAX_PAGE_SIZE:
                    break
        if not found:
            raise _not_found(study_uid, series_uid, sop_uid)
        scope = Scope.INSTANCE if sop_uid else Scope.SERIES if series_uid else Scope.STUDY
        centres = sorted({m.instance.centre_id for m in found})
        if len(centres) > 1:  # nothing was read, so nothing is audited
            raise _held_by_several(scope, (study_uid, series_uid, sop_uid), centres)
        resource, resource_id = _audited(scope, found)
        await self._auditor.record(
            principal,
            f"{resource}.read",
            resource,
            resource_id,
            centre_id=found[0].instance.centre_id,
            detail=f"dicomweb {purpose}: {len(found)} instance(s)",
        )
        return found

    async def metadata(
        self,
        principal: Principal,
        root: str,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        *,
        centre_id: Id | None = None,
    ) -> list[DicomJson]:
        """The stored headers of the instances a path names, as WADO-RS metadata (of one
        centre's copy, as :meth:`instances` picks it)."""
        found = await self.instances(
            principal, study_uid, series_uid, sop_uid, purpose="metadata", centre_id=centre_id
        )
        urls = Urls(root)
        headers = [metadata(m, urls) for m in found]
        if centre_id is None:
            return headers
        return [_bulk_data_of(h, centre_id) for h in headers]

    async def read_file(self, instance: Instance) -> bytes:
        """The stored file of an instance the caller was already allowed to read."""
        return await self._blobs.get(instance.storage_key)


def _bulk_data_of(header: DicomJson, centre_id: Id) -> DicomJson:
    """``header`` with its BulkDataURI naming ``centre_id`` too, so that following it reads the
    same centre's copy (an admin would otherwise get a 409 where several centres hold it)."""
    pixel = header.get(PIXEL_DATA_TAG)
    if isinstance(pixel, dict) and "BulkDataURI" in pixel:
        uri = f"{pixel['BulkDataURI']}?centre_id={centre_id}"
        return {**header, PIXEL_DATA_TAG: {**pixel, "BulkDataURI": uri}}
    return header


def _known_total(page: Page, found: int) -> int | None:
    """The total when a page says it: a short page that has rows, or a short first page
    (no count query needed); ``None`` when only counting can tell."""
    if found < page.limit and (found or page.skip == 0):
        return page.skip + found
    return None


def _not_found(study_uid: str, series_uid: str | None, sop_uid: str | None) -> NotFound:
    if sop_uid is not None:
        return NotFound("instance", sop_uid)
    if series_uid is not None:
        return NotFound("series", series_uid)
    return NotFound("study", study_uid)


def _held_by_several(
    scope: Scope, uids: tuple[str, str | None, str | None], centres: Sequence[Id]
) -> Conflict:
    """Only an admin who named no centre gets here: the centre ids are theirs to see."""
    uid = uids[scope - 1]
    held_by = ", ".join(str(c) for c in centres)
    return Conflict(
        f"{scope.name.lower()} {uid} is held by {len(centres)} centres ({held_by}); "
        "name one with ?centre_id="
    )


def _audited(scope: Scope, found: Sequence[InstanceMatch]) -> tuple[str, Id]:
    first = found[0]
    if scope is Scope.INSTANCE:
        return "instance", first.instance.id
    if scope is Scope.SERIES:
        return "series", first.series.id
    return "study", first.study.id


def _search_warnings(
    request: QidoRequest, parsed: ParsedQuery, *, returned: int, total: int
) -> list[str]:
    warnings = []
    if parsed.ignored:
        warnings.append(
            warning(
                "The following attributes are not supported as matching keys at this level "
                f"and were ignored: {', '.join(parsed.ignored)}"
            )
        )
    if parsed.fuzzy_applied:
        warnings.append(
            warning(
                "Fuzzy matching was applied to PatientName: each word of the key matches the "
                "start of a name component, ignoring case"
            )
        )
    elif request.fuzzy:
        warnings.append(
            warning(
                "The fuzzymatching parameter applies to person names only. Only literal "
                "matching has been performed."
            )
        )
    asked_more = request.limit is None or request.limit > MAX_PAGE_SIZE
    if asked_more and request.offset + returned < total:
        warnings.append(
            warning(
                "The number of results exceeded the maximum supported by the server. "
                "Additional results can be requested."
            )
        )
    return warnings


def store_response(
    root: str,
    stored: Sequence[tuple[str, str, str, str]],
    failed: Sequence[tuple[str | None, str | None, int]],
    study_uid: str | None,
) -> tuple[int, DicomJson]:
    """The STOW-RS response status and dataset (PS3.18 10.5.3).

    Args:
        stored: (study UID, series UID, SOP class UID, SOP instance UID) of each instance now
            in the archive (duplicates of stored instances included).
        failed: (SOP class UID, SOP instance UID, FailureReason) of each refused part.
        study_uid: the study of the target URL, if it named one.

    Returns:
        200 when everything was stored, 202 when some parts failed, 409 when none was stored.
    """
    urls = Urls(root)
    dataset: DicomJson = {}
    target = study_uid or (stored[0][0] if stored and len({s[0] for s in stored}) == 1 else None)
    if target is not None:
        dataset["00081190"] = {"vr": "UR", "Value": [urls.study(target)]}
    if failed:
        dataset["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _ui(sop_class),
                    "00081155": _ui(sop_uid),
                    "00081197": {"vr": "US", "Value": [reason]},
                }
                for sop_class, sop_uid, reason in failed
            ],
        }
    if stored:
        dataset["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _ui(sop_class),
                    "00081155": _ui(sop_uid),
                    "00081190": {"vr": "UR", "Value": [urls.instance(study, series, sop_uid)]},
                }
                for study, series, sop_class, sop_uid in stored
            ],
        }
    status = 409 if not stored else 202 if failed else 200
    return status, dataset


def _ui(uid: str | None) -> DicomJson:
    return {"vr": "UI", "Value": [uid]} if uid else {"vr": "UI"}
