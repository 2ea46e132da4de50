"""Dramatiq task queue on Redis or RabbitMQ, built explicitly (never a global broker).

The composition root calls :func:`broker_from_url`, gives the broker to
:class:`DramatiqTaskQueue` (the sending side) and, in worker processes, to
:func:`build_job_actor` (the receiving side). Messages carry only the job id as a string;
the database stays the source of truth for the job itself.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import dramatiq
import dramatiq.errors
import pika
import pika.exceptions
import redis
import redis.exceptions
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from domain.values import Id

_log = structlog.get_logger(__name__)

DEFAULT_QUEUE_NAME = "hounsfield-jobs"
DEFAULT_ACTOR_NAME = "run_job"

#: Errors a retry cannot fix: the actor fails the message at once instead of backing off.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    InvalidTransition,
)

_REDIS_SCHEMES = frozenset({"redis", "rediss"})
_AMQP_SCHEMES = frozenset({"amqp", "amqps"})
_QUEUE_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9._-]*$")
# Dramatiq 2 renamed ConnectionError to BrokerConnectionError (the old name warns).
_BROKER_CONNECTION_ERROR: type[BaseException] = (
    getattr(dramatiq.errors, "BrokerConnectionError", None) or dramatiq.errors.ConnectionError
)
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    _BROKER_CONNECTION_ERROR,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    pika.exceptions.AMQPError,
    OSError,
)

T = TypeVar("T")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to log or put in an error)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        user = parts.username or ""
        return SplitResult(
            parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment
        ).geturl()
    except ValueError:
        return "<unparseable URL>"


def broker_from_url(url: str, *, connect_timeout_s: float = 5.0) -> dramatiq.Broker:
    """Build (without connecting) a Dramatiq broker from ``redis://`` or ``amqp://`` URL.

    The broker is returned, not installed as Dramatiq's global; pass it on explicitly.

    Raises:
        InvalidInput: the URL is not a usable Redis or RabbitMQ URL (the message never
            contains the password).
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a non-numeric or out-of-range port
    except ValueError as err:
        raise InvalidInput(f"broker URL {shown} is not a valid URL") from err
    if scheme not in _REDIS_SCHEMES | _AMQP_SCHEMES:
        raise InvalidInput(
            f"broker URL {shown} must start with redis://, rediss://, amqp:// or amqps://"
        )
    if not host:
        raise InvalidInput(f"broker URL {shown} has no host")
    try:
        if scheme in _REDIS_SCHEMES:
            client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout_s)
            return RedisBroker(client=client)
        broker = RabbitmqBroker(url=url)
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"broker URL {shown} is not usable: {type(err).__name__}") from err
    params = broker.parameters
    for one in params if isinstance(params, list) else [params]:
        one.socket_timeout = connect_timeout_s
        one.connection_attempts = 1
    return broker


def _describe(broker: dramatiq.Broker) -> str:
    """Where ``broker`` points, without credentials."""
    if isinstance(broker, RedisBroker):
        kwargs = broker.client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"Redis at unix:{kwargs['path']}"
        return f"Redis at {kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    if isinstance(broker, RabbitmqBroker):
        params = broker.parameters
        first = params[0] if isinstance(params, list) else params
        return f"RabbitMQ at {first.host}:{first.port}{first.virtual_host!r}"
    return type(broker).__name__


def _secret(broker: dramatiq.Broker) -> str | None:
    if isinstance(broker, RedisBroker):
        password = broker.client.connection_pool.connection_kwargs.get("password")
        return str(password) if password else None
    if isinstance(broker, RabbitmqBroker):
        params = broker.parameters
        first = params[0] if isinstance(params, list) else params
        password = getattr(first.credentials, "password", None)
        return str(password) if password else None
    return None


class DramatiqTaskQueue:
    """TaskQueue that sends job ids as Dramatiq messages to ``actor_name`` on ``queue_name``.

    Blocking broker calls run on one dedicated thread (so a RabbitMQ broker reuses one
    connection); nothing connects until the first ``enqueue`` or ``ping``. The broker belongs
    to the caller, who closes it; :meth:`aclose` only stops this queue's thread.
    """

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        queue_name: str = DEFAULT_QUEUE_NAME,
        actor_name: str = DEFAULT_ACTOR_NAME,
    ) -> None:
        if not _QUEUE_NAME.match(queue_name):
            raise InvalidInput(f"queue name {queue_name!r} is not valid for Dramatiq")
        if not actor_name:
            raise InvalidInput("actor name must not be empty")
        self._broker = broker
        self._queue_name = queue_name
        self._actor_name = actor_name
        self._where = _describe(broker)
        self._executor: ThreadPoolExecutor | None = None
        self._log = _log.bind(queue=queue_name, broker=self._where)

    @property
    def broker(self) -> dramatiq.Broker:
        return self._broker

    @property
    def queue_name(self) -> str:
        return self._queue_name

    async def enqueue(self, job_id: Id, *, delay_s: float = 0.0) -> None:
        if not math.isfinite(delay_s) or delay_s < 0:
            raise InvalidInput(f"delay_s must be a finite number >= 0, got {delay_s!r}")
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=self._queue_name,
            actor_name=self._actor_name,
            args=(str(job_id),),
            kwargs={},
            options={},
        )
        delay_ms = round(delay_s * 1000) or None
        await self._run(lambda: self._broker.enqueue(message, delay=delay_ms), "enqueue a job")
        self._log.debug("job enqueued", job_id=str(job_id), delay_ms=delay_ms)

    async def ping(self) -> None:
        await self._run(self._ping_blocking, "ping")

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)

    def _ping_blocking(self) -> None:
        broker = self._broker
        if isinstance(broker, RedisBroker):
            broker.client.ping()
        elif isinstance(broker, RabbitmqBroker):
            connection = pika.BlockingConnection(parameters=broker.parameters)
            connection.close()

    async def _run(self, call: Callable[[], T], action: str) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-queue")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except _CONNECTION_ERRORS as err:
            reason = f"{type(err).__name__}: {err}".strip().rstrip(":")
            secret = _secret(self._broker)
            if secret:
                reason = reason.replace(secret, "***")
            self._log.warning("task queue unavailable", action=action, error=reason)
            raise Unavailable(
                f"task queue ({self._where}) is unavailable, could not {action}: {reason}"
            ) from err


def build_job_actor(
    broker: dramatiq.Broker,
    handler: Callable[[str], object],
    *,
    queue_name: str = DEFAULT_QUEUE_NAME,
    actor_name: str = DEFAULT_ACTOR_NAME,
    max_retries: int = 5,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 300_000,
    time_limit_ms: int = 3_600_000,
    throws: tuple[type[BaseException], ...] = PERMANENT_ERRORS,
) -> dramatiq.Actor[[str], None]:
    """Declare on ``broker`` the actor that receives job ids and calls ``handler(job_id)``.

    A thin shim: the handler (the job runner) loads the job and does the work. Exceptions in
    ``throws`` fail the message at once; others are retried with exponential backoff up to
    ``max_retries`` times. ``handler`` must be a plain (synchronous) callable: Dramatiq runs
    it on a worker thread.
    """
    if inspect.iscoroutinefunction(handler):
        raise TypeError("build_job_actor needs a synchronous handler(job_id: str)")

    def run_job(job_id: str) -> None:
        handler(job_id)

    run_job.__qualname__ = run_job.__name__ = actor_name
    return dramatiq.actor(
        run_job,
        broker=broker,
        actor_name=actor_name,
        queue_name=queue_name,
        max_retries=max_retries,
        min_backoff=min_backoff_ms,
        max_backoff=max_backoff_ms,
        time_limit=time_limit_ms,
        throws=throws,
    )
