"""Live job progress over websockets, through the real app and Litestar's websocket test client.

The test client runs the application on its own event loop in another thread (a blocking
portal), so the container is bootstrapped on that loop too, and every seeding step and every
job change runs there through ``Live.run``. Job changes are made the way workers make them:
the job row is updated and its event is collected by the unit of work, which publishes it on
the container's event bus after the commit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from litestar.testing.websocket_test_session import WebSocketTestSession

from domain.events import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobStarted,
    job_channel,
)
from domain.jobs import Job, JobStage, JobStatus
from domain.services.jobs import job_event
from entrypoints.bootstrap import Container
from tests.api.conftest import Served, serve
from tests.api.identity_fixtures import World, seed_world
from tests.unit.factories import a_job, a_study

WAIT_S = 10.0
_EVENT_OF = {
    JobStatus.QUEUED: JobQueued,
    JobStatus.RUNNING: JobProgressed,
    JobStatus.COMPLETED: JobCompleted,
    JobStatus.FAILED: JobFailed,
    JobStatus.CANCELLED: JobCancelled,
}


@dataclass
class Live:
    """The app served on the portal's loop, its seeded world, and a Litestar test client."""

    portal: BlockingPortal
    served: Served
    world: World
    client: TestClient[Any]

    @property
    def container(self) -> Container:
        return self.served.container

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(function, *args)

    def new_job(self, centre_id: uuid.UUID, **changes: Any) -> Job:
        return self.run(_new_job, self.container, centre_id, changes)  # type: ignore[no-any-return]

    def change(self, job: Job, move: Callable[[Job, datetime], Job]) -> Job:
        """Change the stored job as a worker does; its event goes out after the commit."""
        return self.run(_change, self.container, job.id, move)  # type: ignore[no-any-return]

    def subscribers(self, job: Job) -> int:
        return self.container.event_bus.subscriber_count(job_channel(job.id))  # type: ignore[attr-defined,no-any-return]

    def connect(self, path: str, headers: dict[str, str] | None = None) -> WebSocketTestSession:
        return self.client.websocket_connect(path, headers=headers)


async def _new_job(container: Container, centre_id: uuid.UUID, changes: dict[str, Any]) -> Job:
    now = datetime.now(UTC)
    study = a_study(centre_id=centre_id, created_at=now, updated_at=now)
    fields: dict[str, Any] = {
        "status": JobStatus.QUEUED,
        "queued_at": now,
        "created_at": now,
        "updated_at": now,
    }
    job = a_job(centre_id=centre_id, study_id=study.id, **(fields | changes))
    async with container.uow_factory() as uow:
        await uow.studies.add(study)
        await uow.jobs.add(job)
        await uow.commit()
    return job


async def _change(
    container: Container, job_id: uuid.UUID, move: Callable[[Job, datetime], Job]
) -> Job:
    async with container.uow_factory() as uow:
        job = await uow.jobs.get(job_id)
        assert job is not None
        stored = await uow.jobs.update(move(job, datetime.now(UTC)))
        kind: type[JobEvent] = _EVENT_OF[stored.status]
        if stored.status is JobStatus.RUNNING and job.status is not JobStatus.RUNNING:
            kind = JobStarted
        uow.collect(job_event(kind, stored))
        await uow.commit()
    return stored


def start(job: Job, at: datetime) -> Job:
    return job.start(at=at, lease_until=at)


def progress(
    stage: JobStage, value: float, message: str | None = None
) -> Callable[[Job, datetime], Job]:
    return lambda job, at: job.report_progress(stage=stage, progress=value, at=at, message=message)


def complete(job: Job, at: datetime) -> Job:
    return job.complete(at=at)


async def _open(data_dir: Path, options: dict[str, Any]) -> tuple[AsyncExitStack, Served, World]:
    stack = AsyncExitStack()
    served = await serve(stack, data_dir, **options)
    return stack, served, await seed_world(served)


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    with start_blocking_portal() as portal:
        stacks: list[AsyncExitStack] = []

        def make(**options: Any) -> Live:
            # An hour: heartbeats must not interleave with what a test expects, unless asked.
            options.setdefault("ws_heartbeat_interval_s", "3600")
            stack, served, world = portal.call(_open, tmp_path / f"data{len(stacks)}", options)
            stacks.append(stack)
            client: TestClient[Any] = TestClient(served.app, timeout=WAIT_S)
            client.blocking_portal = portal  # the app's loop: the container lives there
            return Live(portal=portal, served=served, world=world, client=client)

        try:
            yield make
        finally:
            for stack in reversed(stacks):
                portal.call(stack.aclose)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, make_live: Callable[..., Live]) -> Live:
    if request.param == "memory":
        return make_live()
    dsn: str = request.getfixturevalue("postgres_dsn")
    return make_live(database="postgres", database_url=dsn)


@pytest.fixture
def live_memory(make_live: Callable[..., Live]) -> Live:
    return make_live()


def receive(ws: WebSocketTestSession) -> dict[str, Any]:
    message: dict[str, Any] = ws.receive_json(timeout=WAIT_S)
    return message


def subscribe(ws: WebSocketTestSession, job_id: object) -> None:
    ws.send_text(json.dumps({"action": "subscribe", "job_id": str(job_id)}))


def unsubscribe(ws: WebSocketTestSession, job_id: object) -> None:
    ws.send_text(json.dumps({"action": "unsubscribe", "job_id": str(job_id)}))


def state(message: dict[str, Any]) -> tuple[Any, ...]:
    assert message["type"] == "job", message
    return (message["status"], message["stage"], message["progress"], message["message"])


# -- /ws ----------------------------------------------------------------------------------


def test_a_subscriber_gets_the_current_state_then_every_change_in_order(live: Live) -> None:
    job = live.new_job(live.world.a.id)
    with live.connect("/ws", live.world.a.technician.headers) as ws:
        subscribe(ws, job.id)
        assert receive(ws) == {"type": "ack", "action": "subscribe", "job_id": str(job.id)}
        first = receive(ws)
        assert first["job_id"] == str(job.id)
        assert state(first) == ("queued", None, 0.0, None)
        assert datetime.fromisoformat(first["timestamp"]) == job.updated_at

        live.change(job, start)
        for step in range(1, 6):
            live.change(job, progress(JobStage.INFERENCE, step / 10, f"patch {step} of 5"))
        live.change(job, complete)

        updates = [receive(ws) for _ in range(7)]
    assert [state(u) for u in updates] == [
        ("running", "loading", 0.0, None),
        *[("running", "inference", step / 10, f"patch {step} of 5") for step in range(1, 6)],
        ("completed", "inference", 1.0, "patch 5 of 5"),
    ]
    stamps = [datetime.fromisoformat(u["timestamp"]) for u in updates]
    assert stamps == sorted(stamps)
    assert set(updates[0]) == {
        "type",
        "job_id",
        "status",
        "stage",
        "progress",
        "message",
        "timestamp",
    }


def test_progress_a_client_sees_never_goes_backwards_when_a_job_is_run_again(
    live_memory: Live,
) -> None:
    live = live_memory
    job = live.new_job(live.world.a.id)
    live.change(job, start)
    live.change(job, progress(JobStage.INFERENCE, 0.6))
    with live.connect("/ws", live.world.a.radiologist.headers) as ws:
        subscribe(ws, job.id)
        receive(ws)  # ack
        assert state(receive(ws))[2] == 0.6

        # the worker died: the lease expired, the job went back to the queue and restarted
        live.change(job, lambda j, at: j.release(at=at))
        live.change(job, start)
        live.change(job, progress(JobStage.INFERENCE, 0.8))
        seen = [state(receive(ws)) for _ in range(3)]
    assert [(status, value) for status, _, value, _ in seen] == [
        ("queued", 0.6),
        ("running", 0.6),
        ("running", 0.8),
    ]


def test_unsubscribing_stops_the_updates(live: Live) -> None:
    job = live.new_job(live.world.a.id)
    other = uuid.uuid4()
    with live.connect("/ws", live.world.a.technician.headers) as ws:
        subscribe(ws, job.id)
        receive(ws)  # ack
        receive(ws)  # current state

        unsubscribe(ws, job.id)
        assert receive(ws) == {"type": "ack", "action": "unsubscribe", "job_id": str(job.id)}
        live.change(job, start)
        # the next message is the answer to this, not an update of the job
        unsubscribe(ws, other)
        assert receive(ws) == {"type": "ack", "action": "unsubscribe", "job_id": str(other)}
        assert live.subscribers(job) == 0


def test_a_client_of_centre_a_cannot_subscribe_to_a_job_of_centre_b(live: Live) -> None:
    job_of_b = live.new_job(live.world.b.id)
    unknown = uuid.uuid4()
    with live.connect("/ws", live.world.a.manager.headers) as ws:
        subscribe(ws, job_of_b.id)
        refused = receive(ws)
        subscribe(ws, unknown)
        missing = receive(ws)

        live.change(job_of_b, start)
        live.change(job_of_b, complete)
        unsubscribe(ws, job_of_b.id)
        after = receive(ws)

    assert refused == {
        "type": "error",
        "job_id": str(job_of_b.id),
        "detail": f"job {job_of_b.id} was not found",
    }
    assert missing == {
        "type": "error",
        "job_id": str(unknown),
        "detail": f"job {unknown} was not found",
    }
    assert after["type"] == "ack"  # no update of B's job came in between
    assert live.subscribers(job_of_b) == 0


def test_the_centre_b_staff_can_follow_their_own_job(live_memory: Live) -> None:
    live = live_memory
    job_of_b = live.new_job(live.world.b.id)
    with live.connect("/ws", live.world.b.technician.headers) as ws:
        subscribe(ws, job_of_b.id)
        assert receive(ws)["type"] == "ack"
        assert receive(ws)["job_id"] == str(job_of_b.id)


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("{not json", "not valid JSON"),
        ('["subscribe"]', "send an object"),
        ('{"action": "watch", "job_id": "%s"}', "action"),
        ('{"action": "subscribe", "job_id": "job-7"}', "Invalid UUID"),
        ('{"action": "subscribe"}', "job_id"),
    ],
)
def test_a_bad_message_gets_an_error_and_the_connection_goes_on(
    live_memory: Live, frame: str, detail: str
) -> None:
    live = live_memory
    job = live.new_job(live.world.a.id)
    with live.connect("/ws", live.world.a.technician.headers) as ws:
        ws.send_text(frame.replace("%s", str(job.id)))
        error = receive(ws)
        assert error["type"] == "error"
        assert detail in error["detail"]

        subscribe(ws, job.id)
        assert receive(ws)["type"] == "ack"


def test_a_binary_frame_gets_an_error(live_memory: Live) -> None:
    live = live_memory
    with live.connect("/ws", live.world.a.technician.headers) as ws:
        ws.send_bytes(b'{"action": "subscribe"}')
        assert receive(ws) == {
            "type": "error",
            "job_id": None,
            "detail": "send JSON in text frames",
        }


def test_an_api_key_needs_the_jobs_read_scope(live_memory: Live) -> None:
    live = live_memory
    job = live.new_job(live.world.a.id)
    with live.connect("/ws", live.world.a.key.headers) as ws:  # studies:read, jobs:read
        subscribe(ws, job.id)
        assert receive(ws)["type"] == "ack"


# -- authentication -----------------------------------------------------------------------


def test_a_token_in_the_query_string_authenticates(live_memory: Live) -> None:
    live = live_memory
    job = live.new_job(live.world.a.id)
    token = live.world.a.technician.token
    with live.connect(f"/ws/jobs/{job.id}?token={token}") as ws:
        assert state(receive(ws))[0] == "queued"
    with live.connect(f"/ws?token={live.world.a.key.secret}") as ws:
        subscribe(ws, job.id)
        assert receive(ws)["type"] == "ack"


@pytest.mark.parametrize("path", ["/ws", "/ws/jobs/{job}"])
@pytest.mark.parametrize(
    "credentials",
    [{}, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": "hf_unknown"}],
    ids=["none", "bad-token", "bad-key"],
)
def test_a_connection_without_valid_credentials_is_refused(
    live_memory: Live, path: str, credentials: dict[str, str]
) -> None:
    live = live_memory
    job = live.new_job(live.world.a.id)
    with (
        live.connect(path.format(job=job.id), credentials) as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        receive(ws)
    assert refused.value.code == 4401
    assert live.subscribers(job) == 0


# -- /ws/jobs/{id} ------------------------------------------------------------------------


def test_one_job_streams_until_it_ends_then_closes_normally(live: Live) -> None:
    job = live.new_job(live.world.a.id)
    with live.connect(f"/ws/jobs/{job.id}", live.world.a.technician.headers) as ws:
        assert state(receive(ws)) == ("queued", None, 0.0, None)
        live.change(job, start)
        live.change(job, progress(JobStage.POSTPROCESSING, 0.9))
        live.change(job, complete)
        seen = [state(receive(ws)) for _ in range(3)]
        with pytest.raises(WebSocketDisconnect) as closed:
            receive(ws)
    assert [status for status, *_ in seen] == ["running", "running", "completed"]
    assert closed.value.code == 1000


def test_a_job_that_already_ended_is_sent_once_and_the_socket_closes(live_memory: Live) -> None:
    live = live_memory
    job = live.new_job(live.world.a.id)
    live.change(job, lambda j, at: j.cancel(at=at))
    with live.connect(f"/ws/jobs/{job.id}", live.world.a.technician.headers) as ws:
        assert state(receive(ws))[0] == "cancelled"
        with pytest.raises(WebSocketDisconnect) as closed:
            receive(ws)
    assert closed.value.code == 1000


@pytest.mark.parametrize("which", ["other-centre", "unknown", "not-a-uuid"])
def test_one_job_of_another_centre_or_unknown_gets_an_error_and_closes(
    live_memory: Live, which: str
) -> None:
    live = live_memory
    ident = {
        "other-centre": str(live.new_job(live.world.b.id).id),
        "unknown": str(uuid.uuid4()),
        "not-a-uuid": "job-7",
    }[which]
    with live.connect(f"/ws/jobs/{ident}", live.world.a.technician.headers) as ws:
        error = receive(ws)
        with pytest.raises(WebSocketDisconnect) as closed:
            receive(ws)
    assert error["type"] == "error" and error["job_id"] == ident
    assert "not found" in error["detail"] or "not a UUID" in error["detail"]
    assert closed.value.code == 4404


# -- heartbeats ---------------------------------------------------------------------------


def test_an_idle_connection_gets_heartbeats(make_live: Callable[..., Live]) -> None:
    live = make_live(ws_heartbeat_interval_s="0.05")
    with live.connect("/ws", live.world.a.technician.headers) as ws:
        beats = [receive(ws) for _ in range(3)]
    assert [beat["type"] for beat in beats] == ["heartbeat"] * 3
    assert all(datetime.fromisoformat(beat["timestamp"]) for beat in beats)


def test_a_connection_closes_once_its_key_is_revoked(make_live: Callable[..., Live]) -> None:
    live = make_live(ws_heartbeat_interval_s="0.1")
    spare = live.world.a.spare_key
    with live.connect("/ws", spare.headers) as ws:
        assert receive(ws)["type"] == "heartbeat"  # open and authenticated
        revoked = live.client.delete(
            f"/api/v1/api-keys/{spare.id}", headers=live.world.admin.headers
        )
        assert revoked.status_code == 204
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(50):  # heartbeats until the next credential check
                assert receive(ws)["type"] == "heartbeat"
    assert closed.value.code == 4401


# -- with the jobs API --------------------------------------------------------------------


def test_reports_of_an_external_processor_reach_the_subscriber(live: Live) -> None:
    world = live.world
    job = live.new_job(world.a.id)
    created = live.client.post(
        "/api/v1/api-keys",
        headers=world.admin.headers,
        json={"name": "a processor", "scopes": ["jobs:report"], "centre_id": str(world.a.id)},
    )
    assert created.status_code == 201, created.text
    processor = {"X-API-Key": created.json()["key"]}
    reports = [
        {"status": "running", "stage": "inference", "progress": 0.3, "message": "half way"},
        {"stage": "postprocessing", "progress": 0.9},
        {"status": "completed"},
    ]
    with live.connect(f"/ws/jobs/{job.id}", world.a.radiologist.headers) as ws:
        assert state(receive(ws))[0] == "queued"
        for report in reports:
            answer = live.client.post(
                f"/api/v1/jobs/{job.id}/events", headers=processor, json=report
            )
            assert answer.status_code in (200, 201), answer.text
        seen = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                seen.append(state(receive(ws)))

    assert seen[-1][0] == "completed" and seen[-1][2] == 1.0
    assert ("running", "inference", 0.3, "half way") in seen
    assert ("running", "postprocessing", 0.9, None) in seen
    progress = [value for _, _, value, _ in seen]
    assert progress == sorted(progress)
    assert closed.value.code == 1000
