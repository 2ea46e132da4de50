"""TaskQueue contract: the in-process queue, Dramatiq on Redis and Dramatiq on RabbitMQ.

The Dramatiq cases talk to real servers (``HOUNSFIELD_TEST_REDIS_URL``,
``HOUNSFIELD_TEST_AMQP_URL``; local defaults otherwise): each test gets a fresh broker, a
unique queue name and an in-process ``dramatiq.Worker``, and removes its queues afterwards.
They skip when a server is unreachable, and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dramatiq
import pika
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from adapters.queue import (
    DramatiqTaskQueue,
    InProcessTaskQueue,
    broker_from_url,
    build_job_actor,
)
from domain.errors import InvalidInput, Unavailable
from domain.ports.messaging import TaskQueue
from tests.fixtures.services import require_server

REDIS_URL = os.environ.get("HOUNSFIELD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HOUNSFIELD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
SERVER_URLS = {"redis": ("Redis", REDIS_URL), "rabbitmq": ("RabbitMQ", AMQP_URL)}
DELIVERY_TIMEOUT_S = 15.0
SETTLE_S = 0.5


@dataclass
class Harness:
    """A queue under test and what its handler has received."""

    queue: TaskQueue
    received: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, job_id: str) -> None:
        with self.lock:
            self.received.append(job_id)
            self.times.append(time.monotonic())

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.received)

    async def wait_for(self, count: int, *, timeout_s: float = DELIVERY_TIMEOUT_S) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.snapshot()) >= count:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(SETTLE_S)  # room for a duplicate to show up
        return self.snapshot()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return parts._replace(netloc=netloc).geturl()


def require(kind: str) -> None:
    name, url = SERVER_URLS[kind]
    parts = urlsplit(url)
    require_server(name, parts.hostname or "127.0.0.1", parts.port or 0)


def remove_queues(broker: dramatiq.Broker, queue_name: str) -> None:
    names = [queue_name, f"{queue_name}.DQ", f"{queue_name}.XQ"]
    if isinstance(broker, RedisBroker):
        broker.flush(queue_name)
        broker.client.delete(*(f"{broker.namespace}:{name}.msgs" for name in names))
    elif isinstance(broker, RabbitmqBroker):
        connection = pika.BlockingConnection(broker.parameters)
        try:
            channel = connection.channel()
            for name in names:
                channel.queue_delete(name)
        finally:
            connection.close()


@pytest.fixture(params=["in-process", "redis", "rabbitmq"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    kind = request.param
    if kind == "in-process":

        async def handle(job_id: str) -> None:
            harness.record(job_id)

        in_process = InProcessTaskQueue(handle, workers=2)
        harness = Harness(in_process)
        await in_process.start()
        yield harness
        await in_process.aclose()
        return

    require(kind)
    broker = broker_from_url(SERVER_URLS[kind][1])
    queue_name = f"test-tasks-{uuid.uuid4().hex[:12]}"
    dramatiq_queue = DramatiqTaskQueue(broker, queue_name=queue_name, actor_name="run_job")
    harness = Harness(dramatiq_queue)
    build_job_actor(broker, harness.record, queue_name=queue_name, max_retries=0)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        yield harness
    finally:
        await asyncio.to_thread(worker.stop)
        await dramatiq_queue.aclose()
        await asyncio.to_thread(remove_queues, broker, queue_name)
        broker.close()


async def test_an_enqueued_job_id_reaches_the_handler_exactly_once(harness: Harness) -> None:
    job_id = uuid.uuid4()

    await harness.queue.enqueue(job_id)

    assert await harness.wait_for(1) == [str(job_id)]


async def test_every_enqueued_job_id_is_delivered_once(harness: Harness) -> None:
    job_ids = [uuid.uuid4() for _ in range(10)]

    for job_id in job_ids:
        await harness.queue.enqueue(job_id)

    received = await harness.wait_for(len(job_ids))
    assert sorted(received) == sorted(str(job_id) for job_id in job_ids)


async def test_a_delayed_job_is_not_delivered_before_its_delay(harness: Harness) -> None:
    job_id = uuid.uuid4()
    sent_at = time.monotonic()

    await harness.queue.enqueue(job_id, delay_s=0.5)

    assert await harness.wait_for(1) == [str(job_id)]
    assert harness.times[0] - sent_at >= 0.45


async def test_ping_succeeds_when_the_broker_answers(harness: Harness) -> None:
    await harness.queue.ping()


async def test_a_negative_delay_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidInput):
        await harness.queue.enqueue(uuid.uuid4(), delay_s=-1)


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
async def test_ping_reports_unavailable_when_nothing_listens(kind: str) -> None:
    url = with_port(SERVER_URLS[kind][1], closed_port())
    queue = DramatiqTaskQueue(broker_from_url(url, connect_timeout_s=2.0))
    try:
        with pytest.raises(Unavailable, match="unavailable"):
            await queue.ping()
        with pytest.raises(Unavailable):
            await queue.enqueue(uuid.uuid4())
    finally:
        await queue.aclose()


async def test_a_closed_in_process_queue_reports_unavailable() -> None:
    async def handle(job_id: str) -> None:
        return None

    queue = InProcessTaskQueue(handle)
    await queue.start()
    await queue.aclose()

    with pytest.raises(Unavailable):
        await queue.ping()
    with pytest.raises(Unavailable):
        await queue.enqueue(uuid.uuid4())


async def test_closing_the_in_process_queue_lets_the_running_job_finish() -> None:
    started, finished = asyncio.Event(), []

    async def handle(job_id: str) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(job_id)

    queue = InProcessTaskQueue(handle, workers=1)
    first, second = uuid.uuid4(), uuid.uuid4()
    await queue.enqueue(first)
    await queue.enqueue(second)
    await asyncio.wait_for(started.wait(), timeout=5)

    await queue.aclose()

    assert finished == [str(first)]


async def test_a_failing_handler_does_not_stop_the_in_process_workers() -> None:
    received: list[str] = []

    async def handle(job_id: str) -> None:
        received.append(job_id)
        if len(received) == 1:
            raise RuntimeError("boom")

    queue = InProcessTaskQueue(handle, workers=1)
    await queue.enqueue(uuid.uuid4())
    await queue.enqueue(uuid.uuid4())
    for _ in range(250):
        if len(received) == 2:
            break
        await asyncio.sleep(0.02)
    await queue.aclose()

    assert len(received) == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@host:1234/",
        "redis://user:s3cret@host:notaport/0",
        "redis://",
        "amqp://guest:s3cret@host/?heartbeat=abc",
    ],
)
def test_a_bad_broker_url_is_refused_without_echoing_the_password(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        broker_from_url(url)

    assert "s3cret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_building_brokers_sets_no_global_broker() -> None:
    before = dramatiq.broker.global_broker
    redis_broker = broker_from_url("redis://:s3cret@127.0.0.1:6379/0")
    amqp_broker = broker_from_url("amqp://guest:guest@127.0.0.1:5672/")

    assert isinstance(redis_broker, RedisBroker)
    assert isinstance(amqp_broker, RabbitmqBroker)
    assert dramatiq.broker.global_broker is before


def test_the_job_actor_declares_retries_and_permanent_errors() -> None:
    broker = StubBroker()
    handler: Callable[[str], None] = lambda job_id: None  # noqa: E731

    actor = build_job_actor(broker, handler, max_retries=3)

    assert actor.actor_name == "run_job"
    assert actor.queue_name == "hounsfield-jobs"
    assert actor.options["max_retries"] == 3
    assert InvalidInput in actor.options["throws"]
    assert broker.get_actor("run_job") is actor
