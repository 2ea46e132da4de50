"""The use cases, built once per process from the container's adapters."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from adapters.dicom.deidentify import PydicomDeidentifier
from adapters.dicom.segmentation import HighdicomSegmentationWriter
from adapters.dicom.structures import DicomSegmentationReader
from adapters.images.export import PillowImageCodec
from adapters.imaging_volumes import StoredFileVolumeReader
from adapters.reports import TemplateReportWriter
from adapters.security import JwtTokenService, Sha256ApiKeySecrets
from domain.ports import (
    AuditLog,
    BlobStore,
    Clock,
    IdGenerator,
    PasswordHasher,
    UnitOfWorkFactory,
)
from domain.ports.inference import InferenceEngine, ModelRegistry
from domain.ports.messaging import TaskQueue
from domain.ports.rate_limits import RateLimiter
from domain.ports.security import TokenService
from domain.services.ai_reports import AiReportDrafter
from domain.services.analyses import AnalysisService
from domain.services.annotations import AnnotationService
from domain.services.api_keys import ApiKeyService
from domain.services.audit_trail import AuditTrailService
from domain.services.auditing import Auditor
from domain.services.auth import AuthService
from domain.services.billing import BillingService
from domain.services.centres import CentreService
from domain.services.deidentification import DeidentificationService
from domain.services.dicomweb import DicomWebService
from domain.services.export import ExportService
from domain.services.ingest import IngestService
from domain.services.jobs import JobService
from domain.services.models import ModelCatalogue
from domain.services.reports import ReportService
from domain.services.segmentation_measures import SegmentationMeasureService
from domain.services.studies import StudyService
from domain.services.users import UserService
from domain.services.workflow import WorkflowService
from entrypoints.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Services:
    auditor: Auditor
    centres: CentreService
    users: UserService
    auth: AuthService
    api_keys: ApiKeyService
    audit_trail: AuditTrailService
    limiter: RateLimiter
    tokens: TokenService
    studies: StudyService
    ingest: IngestService
    annotations: AnnotationService
    dicomweb: DicomWebService
    workflow: WorkflowService
    reports: ReportService
    billing: BillingService
    ai_reports: AiReportDrafter
    """``ai_reports.on_result`` is the analysis hook that drafts the preliminary report."""
    analyses: AnalysisService
    """The analysis job handler (the runner's) and the reads of results."""
    jobs: JobService
    deidentification: DeidentificationService
    export: ExportService
    models: ModelCatalogue
    segmentation_measures: SegmentationMeasureService


def token_service(settings: Settings, signing_key: bytes, clock: Clock) -> TokenService:
    """HS256 with a key derived from the installation secret, or RS256/ES256 with a key file."""
    if settings.token_private_key_file is not None:
        return JwtTokenService(
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            private_key_pem=settings.token_private_key_file.read_bytes(),
            clock=clock,
        )
    return JwtTokenService(
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        secret=signing_key,
        clock=clock,
    )


def build_services(
    *,
    settings: Settings,
    uow: UnitOfWorkFactory,
    audit_log: AuditLog,
    clock: Clock,
    ids: IdGenerator,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    tokens: TokenService,
    blobs: BlobStore,
    deidentification_key: bytes | None = None,
    task_queue: TaskQueue,
    models: ModelRegistry,
    inference: InferenceEngine,
) -> Services:
    """``deidentification_key`` keys each centre's UID map and date offset at ingest (derived
    from the installation secret; a random one per process when left out)."""
    auditor = Auditor(log=audit_log, clock=clock, ids=ids)
    key_secrets = Sha256ApiKeySecrets()
    ai_reports = AiReportDrafter(
        uow=uow, writer=TemplateReportWriter(), clock=clock, ids=ids, auditor=auditor
    )
    return Services(
        auditor=auditor,
        centres=CentreService(uow=uow, clock=clock, ids=ids, auditor=auditor),
        users=UserService(uow=uow, clock=clock, ids=ids, hasher=hasher, auditor=auditor),
        auth=AuthService(
            uow=uow,
            clock=clock,
            hasher=hasher,
            tokens=tokens,
            key_secrets=key_secrets,
            limiter=limiter,
            auditor=auditor,
            access_token_ttl_s=settings.access_token_ttl_s,
        ),
        api_keys=ApiKeyService(uow=uow, clock=clock, ids=ids, secrets=key_secrets, auditor=auditor),
        audit_trail=AuditTrailService(log=audit_log),
        limiter=limiter,
        tokens=tokens,
        studies=StudyService(uow=uow, blobs=blobs, auditor=auditor),
        ingest=IngestService(uow=uow, blobs=blobs, clock=clock, ids=ids, auditor=auditor),
        annotations=AnnotationService(uow=uow, clock=clock, ids=ids, auditor=auditor),
        dicomweb=DicomWebService(uow=uow, blobs=blobs, auditor=auditor),
        workflow=WorkflowService(uow=uow, clock=clock, auditor=auditor),
        reports=ReportService(uow=uow, clock=clock, ids=ids, auditor=auditor),
        billing=BillingService(uow=uow, clock=clock, ids=ids, auditor=auditor),
        ai_reports=ai_reports,
        analyses=AnalysisService(
            uow=uow,
            blobs=blobs,
            models=models,
            engine=inference,
            volumes=StoredFileVolumeReader(),
            segmentations=HighdicomSegmentationWriter(),
            clock=clock,
            ids=ids,
            auditor=auditor,
            on_result=[ai_reports.on_result],
        ),
        deidentification=DeidentificationService(
            uow=uow,
            blobs=blobs,
            auditor=auditor,
            deidentifier=PydicomDeidentifier(),
            ingest_secret=deidentification_key or secrets.token_bytes(32),
        ),
        export=ExportService(uow=uow, blobs=blobs, auditor=auditor, codec=PillowImageCodec()),
        models=ModelCatalogue(registry=models, engine=inference),
        segmentation_measures=SegmentationMeasureService(
            uow=uow,
            blobs=blobs,
            volumes=StoredFileVolumeReader(),
            reader=DicomSegmentationReader(),
            auditor=auditor,
        ),
        jobs=JobService(
            uow=uow,
            queue=task_queue,
            models=models,
            clock=clock,
            ids=ids,
            auditor=auditor,
            max_attempts=settings.job_max_attempts,
        ),
    )
