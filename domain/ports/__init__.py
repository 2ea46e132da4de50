"""Ports: the interfaces the domain needs from the outside world, as ``typing.Protocol``s."""

from domain.ports.blobs import BlobInfo, BlobNotFound, BlobStore, validate_blob_key
from domain.ports.health import HealthProbe
from domain.ports.inference import InferenceEngine, ModelManifest, ModelRegistry
from domain.ports.messaging import EventBus, TaskQueue
from domain.ports.repositories import (
    AnalysisResultRepository,
    AnnotationRepository,
    ApiKeyRepository,
    CentreFilter,
    CentreRepository,
    InstanceRepository,
    InvoiceFilter,
    InvoiceRepository,
    JobFilter,
    JobRepository,
    MeasurementRepository,
    PriceListRepository,
    ReportFilter,
    ReportRepository,
    SeriesRepository,
    StudyFilter,
    StudyRepository,
    UserFilter,
    UserRepository,
)
from domain.ports.security import PasswordHasher, TokenClaims, TokenService
from domain.ports.services import AuditLog, Clock, IdGenerator, ReportWriter
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "AnalysisResultRepository",
    "AnnotationRepository",
    "ApiKeyRepository",
    "AuditLog",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "CentreFilter",
    "CentreRepository",
    "Clock",
    "EventBus",
    "HealthProbe",
    "IdGenerator",
    "InferenceEngine",
    "InstanceRepository",
    "InvoiceFilter",
    "InvoiceRepository",
    "JobFilter",
    "JobRepository",
    "MeasurementRepository",
    "ModelManifest",
    "ModelRegistry",
    "PasswordHasher",
    "PriceListRepository",
    "ReportFilter",
    "ReportRepository",
    "ReportWriter",
    "SeriesRepository",
    "StudyFilter",
    "StudyRepository",
    "TaskQueue",
    "TokenClaims",
    "TokenService",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserFilter",
    "UserRepository",
    "validate_blob_key",
]
