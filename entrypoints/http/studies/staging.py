"""Large uploads that bypass the API servers: presigned PUT URLs and ingest from storage.

``POST /uploads/presign`` answers a URL valid for :data:`PRESIGN_TTL_S` seconds and a
staging key ``staging/<centre>/<uuid>/<file name>``. On S3 the URL is the store's own
presigned PUT. On the filesystem (and in-memory) store the API serves the URL itself:
``PUT /api/v1/uploads/<key>?method=PUT&expires=..&signature=..``, signed with HMAC-SHA256 under
a key derived from the installation secret, checked for expiry, and single use (a URL whose
object exists, or whose signature was claimed, is refused; the claims are the container's
``upload_claims``, in the database when it is PostgreSQL, so every API process shares them,
and a failed PUT releases its claim so the URL may be retried). That route authenticates
by its signature alone; the signature covers the key, so it can only write the staging key
of the centre it was issued for. ``POST /studies/from-storage`` then ingests the object as an
upload would and removes it. A staged object never ingested is deleted by the staging sweep
(``domain.services.staging``) once ``HOUNSFIELD_STAGING_TTL_S`` has passed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Controller, Request, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, JSONBody

from adapters.storage import FilesystemBlobStore
from adapters.storage.presigning import UrlSigner
from domain.errors import Conflict, NotFound, Unauthenticated
from domain.identity import Principal
from domain.ports.blobs import BlobStore
from domain.services.staging import PRESIGN_TTL_S
from domain.services.uploads import (
    IngestStudies,
    RejectedFile,
    StudyOverrides,
    parse_modality,
    staging_key_centre,
)
from domain.values import is_plain_number
from entrypoints.bootstrap import Container, derive_key
from entrypoints.http.dependencies import provide_container
from entrypoints.http.jobs.starting import analysis_model, start_analysis
from entrypoints.http.security import provide_principal
from entrypoints.http.studies.controllers import upload_read
from entrypoints.http.studies.deidentify_at_ingest import ingest_preparer, refuse_patient_fields
from entrypoints.http.studies.files import read_upload
from entrypoints.http.studies.schemas import (
    FromStorageCreate,
    PresignCreate,
    PresignRead,
    StagedRead,
    UploadRead,
)

UPLOADS_PATH = "/api/v1/uploads"
SIGNING_PURPOSE = "blob-url-signing"
"""The same derived key the filesystem store signs with, so either can check the other's URLs."""


def serves_uploads_itself(store: BlobStore) -> bool:
    """Whether the API must serve presigned PUTs (stores that cannot sign URLs a client can
    use directly; the filesystem store's own URLs point at no route)."""
    return isinstance(store, FilesystemBlobStore) or not store.supports_presigned_urls


def upload_signer(container: Container, request: Request[Any, Any, Any]) -> UrlSigner:
    base = container.settings.public_base_url or str(request.base_url)
    base = base.rstrip("/")
    if base.endswith("/api/v1"):
        base = base.removesuffix("/api/v1")
    return UrlSigner(
        signing_key=derive_key(container.secret_key, SIGNING_PURPOSE),
        public_base_url=base + UPLOADS_PATH,
    )


def overrides_of(data: FromStorageCreate) -> StudyOverrides:
    return StudyOverrides(
        patient_name=data.patient_name,
        patient_id=data.patient_id,
        patient_age=data.patient_age,
        patient_sex=data.patient_sex,
        modality=data.modality,
        description=data.description or data.study_type,
        urgency=data.urgency,
    )


class StagingController(Controller):
    path = "/"
    tags = ["uploads"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "principal": Provide(provide_principal, sync_to_thread=False),
    }

    @post(
        "/uploads/presign",
        operation_id="presignUpload",
        summary="A URL to PUT one large file to, valid for 10 minutes",
        status_code=201,
    )
    async def presign(
        self,
        request: Request[Any, Any, Any],
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[PresignCreate],
    ) -> PresignRead:
        key = await container.services.ingest.staging_key(principal, data.file_name, data.centre_id)
        store = container.blob_store
        now = container.clock.now()
        if serves_uploads_itself(store):
            url = upload_signer(container, request).url(
                "PUT", key, expires_in_s=PRESIGN_TTL_S, now=now.timestamp()
            )
        else:
            url = await store.presign_put(
                key, expires_in_s=PRESIGN_TTL_S, content_type=data.content_type
            )
        return PresignRead(
            url=url, key=key, expires_at=now + timedelta(seconds=PRESIGN_TTL_S), method="PUT"
        )

    @put(
        "/uploads/{key:path}",
        operation_id="receiveUpload",
        summary="Receive a presigned upload (authenticated by the URL's signature)",
        exclude_from_auth=True,
        status_code=200,
    )
    async def receive(
        self,
        request: Request[Any, Any, Any],
        container: NamedDependency[Container],
        key: FromPath[str],
        expires: FromQuery[str | None] = None,
        signature: FromQuery[str | None] = None,
    ) -> StagedRead:
        key = key.lstrip("/")
        store = container.blob_store
        moment = container.clock.now()
        now = moment.timestamp()
        if not serves_uploads_itself(store):
            raise NotFound("upload URL", key[:200])
        if expires is None or signature is None or not is_plain_number(expires):
            raise Unauthenticated("this upload URL needs its expires and signature parameters")
        expiry = int(expires)
        signer = upload_signer(container, request)
        genuine = signer.verify("PUT", key, expiry, signature, now=now)
        if not genuine or staging_key_centre(key) is None:
            # a genuine signature whose time is up deserves its own answer
            if now >= expiry and signer.verify("PUT", key, expiry, signature, now=expiry - 1):
                raise Unauthenticated("this upload URL has expired; ask for a new one")
            raise Unauthenticated("this upload URL's signature is not valid")
        # claimed before receiving, so a concurrent PUT of the same URL (on any process) is
        # refused; kept until the URL expires, after which the signature fails anyway
        claims = container.upload_claims
        expires_at = datetime.fromtimestamp(expiry, UTC)
        if not await claims.claim(signature, expires_at=expires_at, now=moment):
            raise Conflict("this upload URL was already used; ask for a new one")
        accepted = False
        try:
            if await store.exists(key):
                raise Conflict("this upload URL was already used; ask for a new one")
            content_type = request.headers.get("content-type") or None
            info = await store.put(key, request.stream(), content_type=_safe(content_type))
            accepted = True
        finally:
            if not accepted:
                await claims.release(signature)
        return StagedRead(key=key, size_bytes=info.size_bytes)

    @post(
        "/studies/from-storage",
        operation_id="ingestFromStorage",
        summary="Ingest a file uploaded through a presigned URL, then remove the staged copy",
        status_code=201,
    )
    async def from_storage(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[FromStorageCreate],
    ) -> UploadRead:
        ingest = container.services.ingest
        centre_id = await ingest.staged_upload(principal, data.key)
        model_id = analysis_model(container, principal, data.model_id)
        overrides = overrides_of(data)
        modality = parse_modality(overrides.modality)
        store = container.blob_store
        info = await store.head(data.key)
        if info is None:
            raise NotFound("staged upload", data.key[:200])
        limit = container.settings.max_upload_bytes
        if info.size_bytes > limit:
            raise HTTPException(
                status_code=413,
                detail=f"the staged file has {info.size_bytes} bytes, over the {limit} limit",
            )
        file_name = data.key.rsplit("/", 1)[-1]
        prepare = await ingest_preparer(container.services.deidentification, centre_id)
        refuse_patient_fields(prepare, overrides)
        try:
            upload = await read_upload(await store.get(data.key), file_name, modality, prepare)
        except RejectedFile:
            await store.delete(data.key)  # it will not become readable: do not keep it
            raise
        result = await ingest.ingest(
            principal, IngestStudies(files=[upload], overrides=overrides, centre_id=centre_id)
        )
        await store.delete(data.key)
        return upload_read(result, await start_analysis(container, principal, result, model_id))


def _safe(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    text = content_type.strip()
    ok = 0 < len(text) <= 255 and text.isascii() and text.isprintable()
    return text if ok else None
