"""TaskQueue adapters: Dramatiq on Redis or RabbitMQ, and an in-process queue for embedding.

Nothing here builds a broker or opens a connection at import time; the composition root calls
:func:`broker_from_url` and hands the broker to :class:`DramatiqTaskQueue` and
:func:`build_job_actor`.
"""

from adapters.queue.dramatiq_queue import (
    DEFAULT_ACTOR_NAME,
    DEFAULT_QUEUE_NAME,
    PERMANENT_ERRORS,
    DramatiqTaskQueue,
    broker_from_url,
    build_job_actor,
    redact_url,
)
from adapters.queue.in_process import InProcessTaskQueue, JobHandler

__all__ = [
    "DEFAULT_ACTOR_NAME",
    "DEFAULT_QUEUE_NAME",
    "PERMANENT_ERRORS",
    "DramatiqTaskQueue",
    "InProcessTaskQueue",
    "JobHandler",
    "broker_from_url",
    "build_job_actor",
    "redact_url",
]
