"""``/api/v1/jobs`` through the real application: start, follow, list, cancel, reports from
processors, dead letters, and ``POST /upload`` starting a job.

Jobs run on the in-process queue with handlers defined here (the analysis pipeline has its own
tests); each test controls when its handler finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from domain.errors import InvalidInput
from domain.jobs import Job, JobStage
from domain.ports.jobs import ProgressReporter
from tests.api.conftest import ServedFactory
from tests.api.identity_fixtures import World, assert_problem, create_key, seed_world
from tests.api.studies_helpers import stored_keys, upload_one
from tests.fixtures.imaging import synthetic_ct_series

MODEL = "demo-lesion-unet"
FINAL = {"completed", "failed", "cancelled"}


@dataclass
class Work:
    """The handler of the application under test: it waits for ``release`` when asked to."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold: bool = False
    fail_with: Callable[[], Exception] | None = None
    seen: list[UUID] = field(default_factory=list)

    async def __call__(self, job: Job, progress: ProgressReporter) -> None:
        self.seen.append(job.id)
        await progress(JobStage.LOADING, 0.25, "reading the series")
        if self.hold:
            await self.release.wait()
        await progress(JobStage.INFERENCE, 0.75)
        if self.fail_with is not None:
            raise self.fail_with()


@dataclass
class JobsWorld:
    world: World
    work: Work
    study_id: UUID
    series_id: UUID

    @property
    def client(self) -> httpx.AsyncClient:
        return self.world.client

    async def start(self, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        payload = {"study_id": str(self.study_id), "model_id": MODEL} | body
        return await self.client.post(
            "/api/v1/jobs", headers=headers or self.world.a.technician.headers, json=payload
        )

    async def wait(self, job_id: str, statuses: set[str] = FINAL) -> dict[str, Any]:
        for _ in range(500):
            response = await self.client.get(
                f"/api/v1/jobs/{job_id}", headers=self.world.a.radiologist.headers
            )
            assert response.status_code == 200, response.text
            if response.json()["status"] in statuses:
                return dict(response.json())
            await asyncio.sleep(0.01)
        raise AssertionError(f"job {job_id} never reached {statuses}: {response.json()}")


@pytest.fixture
async def jobs(make_served: ServedFactory) -> JobsWorld:
    work = Work()
    world = await seed_world(
        await make_served(job_handler=work, job_max_attempts="2", job_retry_backoff_s="0")
    )
    response = await world.client.post(
        "/api/v1/studies",
        headers=world.a.technician.headers,
        files=[
            ("files", (f"{n}.dcm", f)) for n, f in enumerate(synthetic_ct_series(slices=3).files)
        ],
    )
    assert response.status_code == 201, response.text
    study_id = UUID(response.json()["studies"][0]["id"])
    series = await world.client.get(
        f"/api/v1/studies/{study_id}/series", headers=world.a.technician.headers
    )
    return JobsWorld(
        world=world, work=work, study_id=study_id, series_id=UUID(series.json()[0]["id"])
    )


async def test_a_started_job_runs_to_completion_and_reads_back(jobs: JobsWorld) -> None:
    response = await jobs.start()

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "queued" and created["attempts"] == 0
    assert created["created_by"] == str(jobs.world.a.technician.id)
    done = await jobs.wait(created["id"])
    assert done["status"] == "completed", done
    assert (done["progress"], done["attempts"], done["stage"]) == (1.0, 1, "inference")
    assert done["started_at"] and done["finished_at"] and done["lease_expires_at"] is None
    assert jobs.work.seen == [UUID(created["id"])]


async def test_a_job_of_one_series_names_it(jobs: JobsWorld) -> None:
    response = await jobs.start(series_id=str(jobs.series_id), study_id=None)

    assert response.status_code == 201, response.text
    assert response.json()["series_id"] == str(jobs.series_id)
    assert response.json()["study_id"] == str(jobs.study_id)


async def test_bad_requests_are_refused_and_start_nothing(jobs: JobsWorld) -> None:
    b = jobs.world.b

    unknown_model = await jobs.start(model_id="no-such-model")
    no_target = await jobs.start(study_id=None)
    other_centre = await jobs.start(headers=b.technician.headers)
    unknown_series = await jobs.start(series_id=str(uuid4()), study_id=None)
    malformed = await jobs.start(study_id="not-a-uuid")
    read_only_key = await jobs.start(headers=jobs.world.a.key.headers)

    assert "not installed" in assert_problem(unknown_model, 422)["detail"]
    assert "study_id or the series_id" in assert_problem(no_target, 422)["detail"]
    assert_problem(other_centre, 404)
    assert_problem(unknown_series, 404)
    assert_problem(malformed, 400)
    assert "jobs:write" in assert_problem(read_only_key, 403)["detail"]
    listed = await jobs.client.get("/api/v1/jobs", headers=jobs.world.admin.headers)
    assert listed.json() == []


async def test_jobs_list_with_filters_and_pages_within_the_centre(jobs: JobsWorld) -> None:
    a = jobs.world.a
    by_technician = (await jobs.start()).json()
    by_manager = (await jobs.start(headers=a.manager.headers)).json()
    await jobs.wait(by_technician["id"])
    await jobs.wait(by_manager["id"])

    async def ids(headers: dict[str, str], **params: str) -> list[str]:
        response = await jobs.client.get("/api/v1/jobs", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()]

    newest_first = [by_manager["id"], by_technician["id"]]
    assert await ids(a.radiologist.headers) == newest_first
    assert await ids(a.key.headers) == newest_first  # jobs:read
    assert await ids(a.radiologist.headers, user_id=str(a.technician.id)) == [by_technician["id"]]
    assert await ids(a.radiologist.headers, status="completed", model_id=MODEL) == newest_first
    assert await ids(a.radiologist.headers, status="failed") == []
    assert await ids(a.radiologist.headers, study_id=str(jobs.study_id), skip="1") == [
        by_technician["id"]
    ]
    assert await ids(a.radiologist.headers, limit="1") == [by_manager["id"]]
    assert await ids(jobs.world.b.radiologist.headers) == []
    assert await ids(jobs.world.admin.headers, centre_id=str(jobs.world.b.id)) == []
    other = await jobs.client.get(
        f"/api/v1/jobs/{by_manager['id']}", headers=jobs.world.b.manager.headers
    )
    assert_problem(other, 404)
    bad_status = await jobs.client.get(
        "/api/v1/jobs", headers=a.radiologist.headers, params={"status": "sleeping"}
    )
    assert_problem(bad_status, 400)


async def test_a_running_job_is_cancelled_and_stops_at_its_next_stage(jobs: JobsWorld) -> None:
    jobs.work.hold = True
    job = (await jobs.start()).json()
    await jobs.wait(job["id"], {"running"})

    cancelled = await jobs.client.post(
        f"/api/v1/jobs/{job['id']}/cancel", headers=jobs.world.a.radiologist.headers
    )
    jobs.work.release.set()
    final = await jobs.wait(job["id"])
    again = await jobs.client.post(
        f"/api/v1/jobs/{job['id']}/cancel", headers=jobs.world.a.technician.headers
    )
    foreign = await jobs.client.post(
        f"/api/v1/jobs/{job['id']}/cancel", headers=jobs.world.b.manager.headers
    )

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert final["status"] == "cancelled" and final["progress"] < 1.0
    assert_problem(again, 409)
    assert_problem(foreign, 404)


async def test_an_external_processor_reports_progress_with_a_jobs_report_key(
    jobs: JobsWorld,
) -> None:
    world = jobs.world
    jobs.work.hold = True
    reporter = await create_key(
        world.client,
        world.admin.headers,
        name="processor",
        centre_id=world.a.id,
        scopes=["jobs:report"],
    )
    foreign = await create_key(
        world.client,
        world.admin.headers,
        name="b processor",
        centre_id=world.b.id,
        scopes=["jobs:report"],
    )
    job = (await jobs.start()).json()
    url = f"/api/v1/jobs/{job['id']}/events"

    progressed = await world.client.post(
        url, headers=reporter.headers, json={"stage": "inference", "progress": 0.9, "message": "m"}
    )
    without_scope = await world.client.post(url, headers=world.a.key.headers, json={"progress": 1})
    as_user = await world.client.post(url, headers=world.a.technician.headers, json={})
    other_centre = await world.client.post(url, headers=foreign.headers, json={"progress": 0.5})
    out_of_range = await world.client.post(url, headers=reporter.headers, json={"progress": 2})
    bad_status = await world.client.post(url, headers=reporter.headers, json={"status": "queued"})
    failed = await world.client.post(
        url, headers=reporter.headers, json={"status": "failed", "message": "GPU fell over"}
    )
    jobs.work.release.set()

    assert progressed.status_code == 200, progressed.text
    assert progressed.json()["progress"] == 0.9 and progressed.json()["message"] == "m"
    assert "jobs:report" in assert_problem(without_scope, 403)["detail"]
    assert_problem(as_user, 403)
    assert_problem(other_centre, 404)
    assert_problem(out_of_range, 400)
    assert_problem(bad_status, 400)
    assert failed.json()["status"] == "failed"
    assert failed.json()["error_message"] == "GPU fell over"
    assert (await jobs.wait(job["id"]))["status"] == "failed"


async def test_a_dead_letter_is_listed_and_retried_by_an_admin(jobs: JobsWorld) -> None:
    admin, technician = jobs.world.admin.headers, jobs.world.a.technician.headers
    jobs.work.fail_with = lambda: OSError("scratch disk full")
    job = (await jobs.start()).json()
    failed_once = await jobs.wait(job["id"])

    listed = await jobs.client.get("/api/v1/jobs/dead-letters", headers=admin)
    forbidden = await jobs.client.get("/api/v1/jobs/dead-letters", headers=technician)
    not_by_technician = await jobs.client.post(
        f"/api/v1/jobs/{job['id']}/retry", headers=technician
    )
    jobs.work.fail_with = None
    retried = await jobs.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=admin)
    done = await jobs.wait(job["id"])
    twice = await jobs.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=admin)

    assert failed_once["attempts"] == 2
    assert failed_once["error_message"] == "OSError: scratch disk full"
    assert [j["id"] for j in listed.json()] == [job["id"]]
    assert_problem(forbidden, 403)
    assert_problem(not_by_technician, 403)
    assert retried.status_code == 200, retried.text
    assert retried.json()["attempts"] == 0
    assert done["status"] == "completed" and done["attempts"] == 1
    assert "only a failed job" in assert_problem(twice, 422)["detail"]


async def test_bad_input_fails_the_job_at_once_with_a_clear_message(jobs: JobsWorld) -> None:
    jobs.work.fail_with = lambda: InvalidInput("series has no readable image")

    job = (await jobs.start()).json()
    done = await jobs.wait(job["id"])

    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["error_message"] == "series has no readable image"


async def test_an_upload_with_a_model_starts_its_job(jobs: JobsWorld) -> None:
    world = jobs.world
    data = synthetic_ct_series(slices=1).files[0]

    response = await upload_one(
        world.client, world.a.technician.headers, "one.dcm", data, model_id=MODEL
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["job_id"] is not None
    done = await jobs.wait(body["job_id"])
    assert done["status"] == "completed" and done["study_id"] == body["study_id"]


async def test_an_upload_without_a_model_uses_the_only_installed_one(jobs: JobsWorld) -> None:
    data = synthetic_ct_series(slices=1).files[0]

    response = await upload_one(jobs.client, jobs.world.a.technician.headers, "one.dcm", data)

    job = await jobs.wait(response.json()["job_id"])
    assert job["model_id"] == MODEL


async def test_an_upload_that_cannot_start_its_job_stores_nothing(jobs: JobsWorld) -> None:
    world = jobs.world
    container = world.served.container
    before = stored_keys(container)
    uploader = await create_key(
        world.client,
        world.admin.headers,
        name="uploader",
        centre_id=world.a.id,
        scopes=["studies:write"],
    )
    data = synthetic_ct_series(slices=1).files[0]

    unknown = await upload_one(
        world.client, world.a.technician.headers, "x.dcm", data, model_id="nope"
    )
    no_jobs_scope = await upload_one(world.client, uploader.headers, "x.dcm", data, model_id=MODEL)
    after_refusals = stored_keys(container)
    default_model = await upload_one(world.client, uploader.headers, "x.dcm", data)

    assert "not installed" in assert_problem(unknown, 422)["detail"]
    assert "jobs:write" in assert_problem(no_jobs_scope, 403)["detail"]
    assert after_refusals == before
    # without a model and without jobs:write, the file is stored and no job is started
    assert default_model.status_code == 201, default_model.text
    assert default_model.json()["job_id"] is None
    assert len(stored_keys(container)) == len(before) + 1


async def test_stopping_serve_lets_a_running_job_finish_within_the_grace(jobs: JobsWorld) -> None:
    jobs.work.hold = True
    running = [(await jobs.start()).json() for _ in range(2)]  # the two in-process workers
    waiting = (await jobs.start()).json()
    for job in running:
        await jobs.wait(job["id"], {"running"})
    job_queue = jobs.world.served.container.job_queue

    closing = asyncio.create_task(job_queue.aclose(grace_s=5))
    await asyncio.sleep(0.1)
    jobs.work.release.set()
    await closing

    for job in running:
        assert (await jobs.wait(job["id"], {"completed"}))["attempts"] == 1
    # not started before the stop: still queued in the database for the next start's sweep
    assert (await jobs.wait(waiting["id"], {"queued"}))["attempts"] == 0


async def test_stopping_serve_hands_a_job_still_running_after_the_grace_back(
    jobs: JobsWorld,
) -> None:
    jobs.work.hold = True
    job = (await jobs.start()).json()
    await jobs.wait(job["id"], {"running"})
    job_queue = jobs.world.served.container.job_queue

    closing = asyncio.create_task(job_queue.aclose(grace_s=1))
    await asyncio.sleep(1.4)  # past the grace: the next progress report hands it back
    jobs.work.release.set()
    await closing

    back = await jobs.wait(job["id"], {"queued"})
    assert (back["attempts"], back["error_message"]) == (0, None)
