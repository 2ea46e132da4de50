"""The composition root: ``Settings`` -> adapters -> a :class:`Container`, wired by hand.

Nothing here runs at import time. :func:`bootstrap` starts what the settings ask for (the
embedded PostgreSQL when no database URL is set, migrations, the connection pool, the blob
store) and returns a container whose :meth:`Container.aclose` stops it all again, in reverse
order. Keyword overrides let tests and embedding teams swap in their own adapters::

    container = await bootstrap(settings, database="memory", blob_store=MemoryBlobStore())
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import structlog

from adapters.inference.onnx_engine import OnnxInferenceEngine
from adapters.inference.registry import FilesystemModelRegistry
from adapters.memory import MemoryAuditLog, MemoryDatabase, MemoryEventBus
from adapters.memory.rate_limits import MemoryRateLimiter
from adapters.memory.upload_claims import MemoryUploadClaims
from adapters.postgres.audit_log import PostgresAuditLog
from adapters.postgres.database import PostgresDatabase
from adapters.postgres.embedded import EmbeddedPostgres
from adapters.postgres.events import PostgresEventBus
from adapters.postgres.migrate import migrate
from adapters.postgres.rate_limits import PostgresRateLimiter
from adapters.postgres.upload_claims import PostgresUploadClaims
from adapters.security import Argon2PasswordHasher
from adapters.security.tokens import load_or_create_secret
from adapters.storage import StorageHealthProbe, blob_store_from_url
from adapters.system import SystemClock, UuidIdGenerator
from domain.ports import (
    AuditLog,
    BlobStore,
    Clock,
    EventBus,
    HealthProbe,
    IdGenerator,
    PasswordHasher,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain.ports.inference import InferenceEngine, ModelRegistry
from domain.ports.jobs import JobHandler
from domain.ports.rate_limits import RateLimiter
from domain.ports.upload_claims import UploadClaims
from domain.services.job_runner import JobRunner
from entrypoints.health import (
    InProcessQueueProbe,
    ModelsProbe,
    PingProbe,
)
from entrypoints.jobs import JobQueue, runner_settings
from entrypoints.services import Services, build_services, token_service
from entrypoints.settings import Settings, SettingsError, redact_url

log = structlog.get_logger(__name__)

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "model_export" / "models"
"""Where the demonstration model ships; ``HOUNSFIELD_MODELS_DIR`` points elsewhere."""


class Database(Protocol):
    """What the composition root needs from a database adapter."""

    def unit_of_work(self) -> UnitOfWork: ...

    async def ping(self) -> str: ...


@dataclass(kw_only=True)
class Container:
    """Every adapter the ways in (HTTP, CLI, workers) hand to the use cases."""

    settings: Settings
    database: Database
    uow_factory: UnitOfWorkFactory
    audit_log: AuditLog
    blob_store: BlobStore
    event_bus: EventBus
    clock: Clock
    ids: IdGenerator
    secret_key: bytes
    """The installation secret: token signing and keys derived per purpose."""
    models_dir: Path
    models: ModelRegistry
    inference: InferenceEngine
    """The engine analyses run models on (one per process: it keeps the sessions)."""
    job_queue: JobQueue
    """The task queue of this process and the job runner behind it."""
    health_probes: list[HealthProbe]
    services: Services
    upload_claims: UploadClaims
    """Presigned upload URLs the API served that were used (shared by its processes)."""
    database_dsn: str | None = None
    """The PostgreSQL DSN in use (embedded or configured); ``None`` for other databases."""
    applied_migrations: list[str] = field(default_factory=list)
    """Migrations this start applied (empty when the schema was already current)."""
    _resources: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    async def aclose(self) -> None:
        """Close the event bus and the pool, and stop the embedded PostgreSQL (if this
        container started them)."""
        await self._resources.aclose()


async def bootstrap(
    settings: Settings,
    *,
    database: Literal["postgres", "memory"] | Database = "postgres",
    audit_log: AuditLog | None = None,
    blob_store: BlobStore | None = None,
    event_bus: EventBus | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    password_hasher: PasswordHasher | None = None,
    rate_limiter: RateLimiter | None = None,
    upload_claims: UploadClaims | None = None,
    extra_probes: Sequence[HealthProbe] = (),
    job_handler: JobHandler | None = None,
) -> Container:
    """Build the container for ``settings``.

    Args:
        settings: the validated settings.
        database: ``"postgres"`` (``settings.database_url``, or an embedded server in the
            data dir when it is ``None``), ``"memory"``, or a ready database adapter.
        audit_log, blob_store, event_bus, clock, ids, password_hasher, rate_limiter,
        upload_claims: adapters to use instead of the ones the settings describe (tests
            pass a cheap password hasher, for instance).
        extra_probes: more health probes for ``/health/detailed``.
        job_handler: what running a job does, instead of the analysis pipeline.

    Raises:
        Unavailable: the database or storage cannot be reached (one line, no password).
        InvalidInput: the storage URL is not one the storage adapters understand.
    """
    resources = AsyncExitStack()
    try:
        await asyncio.to_thread(ensure_private_dir, settings.data_dir)
        secret_key = await asyncio.to_thread(installation_secret, settings)
        # The storage URL is checked before a database is started: fail fast and cheap.
        store = blob_store if blob_store is not None else _blob_store(settings, secret_key)
        dsn: str | None = None
        migrations: list[str] = []
        db: Database
        bus: EventBus
        if database == "postgres":
            db, dsn, migrations, postgres_audit_log, bus = await _start_postgres(
                settings, event_bus, resources
            )
            audit_log = audit_log if audit_log is not None else postgres_audit_log
        else:
            bus = event_bus if event_bus is not None else _memory_event_bus(resources)
            db = MemoryDatabase(event_bus=bus) if database == "memory" else database
        clock = clock if clock is not None else SystemClock()
        ids = ids if ids is not None else UuidIdGenerator()
        audit_log = audit_log if audit_log is not None else MemoryAuditLog()
        if rate_limiter is None:
            rate_limiter = (
                PostgresRateLimiter(db, clock=clock)
                if isinstance(db, PostgresDatabase)
                else MemoryRateLimiter(clock=clock)
            )
        if upload_claims is None:
            upload_claims = (
                PostgresUploadClaims(db)
                if isinstance(db, PostgresDatabase)
                else MemoryUploadClaims()
            )
        models_dir = settings.models_dir or BUNDLED_MODELS_DIR
        models = FilesystemModelRegistry(models_dir)
        inference = OnnxInferenceEngine(models_dir, threads=settings.inference_threads)
        job_queue = JobQueue(settings)
        # closed before the pool: running in-process jobs still write their outcome
        resources.push_async_callback(job_queue.aclose)
        services = build_services(
            settings=settings,
            uow=db.unit_of_work,
            audit_log=audit_log,
            clock=clock,
            ids=ids,
            hasher=password_hasher if password_hasher is not None else Argon2PasswordHasher(),
            limiter=rate_limiter,
            tokens=await asyncio.to_thread(
                token_service, settings, derive_key(secret_key, "access-tokens"), clock
            ),
            blobs=store,
            deidentification_key=derive_key(secret_key, "deidentify-at-ingest"),
            task_queue=job_queue.queue,
            models=models,
            inference=inference,
        )
        job_queue.bind(
            JobRunner(
                uow=db.unit_of_work,
                queue=job_queue.queue,
                handler=job_handler if job_handler is not None else services.analyses,
                clock=clock,
                settings=runner_settings(settings),
            )
        )
        probes: list[HealthProbe] = [
            PingProbe("database", db.ping),
            StorageHealthProbe(store, detail=_describe_storage(settings, blob_store)),
            (
                PingProbe("queue", job_queue.queue.ping, describe=redact_url(settings.broker_url))
                if settings.broker_url
                else InProcessQueueProbe()
            ),
            ModelsProbe(models_dir),
            *extra_probes,
        ]
        container = Container(
            settings=settings,
            database=db,
            uow_factory=db.unit_of_work,
            audit_log=audit_log,
            blob_store=store,
            event_bus=bus,
            clock=clock,
            ids=ids,
            services=services,
            secret_key=secret_key,
            models_dir=models_dir,
            models=models,
            inference=inference,
            job_queue=job_queue,
            health_probes=probes,
            upload_claims=upload_claims,
            database_dsn=dsn,
            applied_migrations=migrations,
            _resources=resources,
        )
    except BaseException:
        await resources.aclose()
        raise
    log.info(
        "bootstrapped",
        environment=settings.environment,
        data_dir=str(settings.data_dir),
        database=_describe_database(settings, database),
        storage=_describe_storage(settings, blob_store),
    )
    return container


def _memory_event_bus(resources: AsyncExitStack) -> MemoryEventBus:
    bus = MemoryEventBus()
    resources.push_async_callback(bus.aclose)
    return bus


async def _start_postgres(
    settings: Settings, event_bus: EventBus | None, resources: AsyncExitStack
) -> tuple[PostgresDatabase, str, list[str], PostgresAuditLog, EventBus]:
    dsn = settings.database_url or await start_embedded_postgres(settings, resources)
    applied = await migrate(dsn)
    bus = event_bus
    if bus is None:
        # LISTEN/NOTIFY on the same database: API and worker processes on any machine that
        # reaches it hear each other. Its own connections, so listening never takes a pool
        # slot; closed after the pool and before the embedded server stops.
        postgres_bus = PostgresEventBus(dsn=dsn)
        resources.push_async_callback(postgres_bus.aclose)
        bus = postgres_bus
    db = await PostgresDatabase.connect(
        dsn,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        event_bus=bus,
    )
    resources.push_async_callback(db.close)
    return db, dsn, applied, PostgresAuditLog(db), bus


async def start_embedded_postgres(settings: Settings, resources: AsyncExitStack) -> str:
    """Start PostgreSQL in ``data_dir/postgres``; ``resources`` stops it. Returns the DSN."""
    server = EmbeddedPostgres(settings.data_dir)  # the cluster lives in data_dir/postgres
    # Registered before start: a start that fails half-way still gets stopped.
    resources.push_async_callback(asyncio.to_thread, server.stop)
    dsn = await asyncio.to_thread(server.start)
    return dsn


def _blob_store(settings: Settings, secret_key: bytes) -> BlobStore:
    url = settings.storage_url or settings.blobs_dir.as_uri()
    return blob_store_from_url(
        url,
        signing_key=derive_key(secret_key, "blob-url-signing"),
        public_base_url=settings.public_base_url,
    )


def _describe_database(settings: Settings, database: object) -> str:
    if database == "postgres":
        return redact_url(settings.database_url) or f"embedded in {settings.postgres_dir}"
    return str(database) if isinstance(database, str) else type(database).__name__


def _describe_storage(settings: Settings, given: BlobStore | None) -> str:
    if given is not None:
        return type(given).__name__
    return redact_url(settings.storage_url) or str(settings.blobs_dir)


def derive_key(secret_key: bytes, purpose: str) -> bytes:
    """A key for one purpose derived from the installation secret (HMAC-SHA256)."""
    return hmac.new(secret_key, purpose.encode(), hashlib.sha256).digest()


def installation_secret(settings: Settings) -> bytes:
    """``HOUNSFIELD_SECRET_KEY``, else the secret kept in ``data_dir/secret_key`` (0600),
    generated on first start. An unusable secret file is a settings error (one line)."""
    if settings.secret_key is not None:
        return settings.secret_key.encode()
    try:
        return load_or_create_secret(settings.secret_key_file)
    except (OSError, ValueError) as err:
        raise SettingsError(
            f"HOUNSFIELD_SECRET_KEY is unset and {settings.secret_key_file} is unusable: {err}"
        ) from err


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
