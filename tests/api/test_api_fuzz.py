"""Every operation of the OpenAPI document, fuzzed by schemathesis: whatever arrives, the answer
is never a 5xx, and every 4xx is an RFC 9457 problem document (``application/problem+json``
with type, title, status and detail). DICOMweb routes included; multipart uploads too.

Schemathesis generates, per operation, cases that fit the document (well-formed but wrong:
random UUIDs, huge numbers, unicode) and cases that break it (wrong types, missing fields).
Each case goes out as an admin or as a technician of centre A; each path parameter is as
generated, a seeded id (study, image, job, DICOM UIDs; so handlers get past "not found") or a
hostile segment (NUL bytes, 40-digit numbers, '²'). A deterministic sweep puts every hostile
segment into every path parameter beside seeded ids, so such a parser bug fails every run.

Schemathesis's pytest integration (``from_fixture``/``parametrize``) fails on pytest 9
(``Function._nodeid``), so its strategies drive plain Hypothesis tests here, one operation after
another, and every failing operation is reported. The app runs on an event loop of this
module's own: the tests are sync, and the container must live on the loop that serves it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema

from domain.jobs import Job
from domain.ports.jobs import ProgressReporter
from tests.api.conftest import serve
from tests.api.identity_fixtures import PROBLEM_MEDIA_TYPE, World, seed_world
from tests.api.studies_helpers import upload_one
from tests.fixtures.imaging import synthetic_ct_series

EXAMPLES_PER_OPERATION = 20
"""Per operation and generation mode: about 90 operations, near a minute on 2 cores."""


async def _no_work(job: Job, progress: ProgressReporter) -> None:
    """Jobs the fuzzer starts finish at once: the analysis pipeline is not what is tested here."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """The app under test, the loop it runs on, and the real values path parameters may take."""

    loop: asyncio.AbstractEventLoop
    world: World
    known: Mapping[str, list[str]]

    def headers_of(self, who: str) -> dict[str, str]:
        member = self.world.admin if who == "admin" else self.world.a.technician
        return member.headers

    def send(self, request: httpx.Request) -> httpx.Response:
        return self.loop.run_until_complete(self.world.client.send(request))


async def _seed(world: World) -> dict[str, list[str]]:
    """A study of centre A with one image and its job; the ids fuzzed paths may point at."""
    series = synthetic_ct_series(slices=1)
    technician = world.a.technician.headers
    uploaded = await upload_one(
        world.client, technician, "ct.dcm", series.files[0], model_id="demo-lesion-unet"
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    return {
        "study_id": [body["study_id"]],
        "instance_id": [body["image_id"]],
        "job_id": [body["job_id"]],
        "code": [body["study_code"]],
        "which": [body["image_id"], "1"],
        "model_id": ["demo-lesion-unet"],
        # Never the admin's or centre A's technician's own: the fuzzer may deactivate them.
        "user_id": [str(world.a.staff.id), str(world.b.technician.id)],
        "centre_id": [str(world.b.id)],
        "key_id": [str(world.a.spare_key.id), str(world.b.key.id)],
        "study": [series.study_instance_uid],
        "series": [series.series_instance_uid],
        "instance": [series.sop_instance_uids[0]],
        "frames": ["1"],
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    try:
        served = loop.run_until_complete(
            serve(
                stack,
                tmp_path_factory.mktemp("fuzz") / "data",
                job_handler=_no_work,
                rate_limit_uploads_per_minute="1000000",
                rate_limit_analyses_per_minute="1000000",
                rate_limit_reads_per_minute="1000000",
            )
        )
        world = loop.run_until_complete(seed_world(served))
        known = loop.run_until_complete(_seed(world))
        yield Target(loop=loop, world=world, known=known)
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


@pytest.fixture(scope="module")
def api_schema(target: Target) -> BaseSchema:
    document = target.loop.run_until_complete(target.world.client.get("/openapi.json")).json()
    return schemathesis.openapi.from_dict(document)


def _request(case: Case, target: Target, who: str) -> httpx.Request:
    """The case as an httpx request (schemathesis serialises for requests), signed in as ``who``.

    The body is read here, so what httpx cannot encode (lone surrogates in a field name,
    control characters in a URL) is the generator's problem, not a failure of the app.
    """
    sent = case.as_transport_kwargs(base_url="http://testserver")
    headers = {
        name: value
        for name, value in (sent.get("headers") or {}).items()
        if name.lower() not in {"authorization", "x-api-key", "user-agent"}
    }
    arguments: dict[str, Any] = {
        "headers": {**headers, **target.headers_of(who)},
        "params": sent.get("params") or None,
        "cookies": sent.get("cookies") or None,
    }
    data = sent.get("data")
    if "json" in sent:
        arguments["json"] = sent["json"]
    if sent.get("files"):
        arguments["files"] = [(name, _part(part)) for name, part in sent["files"]]
        if isinstance(data, Mapping):
            arguments["data"] = data
    elif isinstance(data, Mapping):
        arguments["data"] = data
    elif data is not None:
        arguments["content"] = data.encode() if isinstance(data, str) else data
    try:
        request = target.world.client.build_request(sent["method"], sent["url"], **arguments)
        request.read()
    except (UnicodeEncodeError, httpx.InvalidURL):
        reject()
    return request


def _part(part: Any) -> Any:
    """A multipart part as httpx takes it: numbers and booleans become their text."""
    if isinstance(part, tuple):
        filename, content, *rest = part
        return (filename, _part(content), *rest)
    if isinstance(part, str | bytes):
        return part
    return json.dumps(part)


def _deletes_the_study(case: Case) -> bool:
    """Deleting the seeded study would leave every later operation nothing to find."""
    return case.method.upper() == "DELETE" and case.path == "/api/v1/studies/{study_id}"


def _path_value(case: Case, name: str, target: Target) -> st.SearchStrategy[str | None]:
    """Each path parameter independently: as generated (``None``), a seeded id, or hostile."""
    hostile = HOSTILE_SEGMENTS.map(lambda text: quote(text, safe=""))
    if name not in target.known or _deletes_the_study(case):
        return st.one_of(st.none(), hostile)
    return st.one_of(st.none(), st.sampled_from(target.known[name]), hostile)


HOSTILE_VALUES = [
    *("\x00", "a\x00b", "9" * 40, "-1", "0", "1e308", "NaN", " ", "..", "%00", "%ff", "x" * 5000),
    *("\u202e", "\u00b2", "\u0661", "\U0001f600"),  # RTL mark; digits to isdigit(), not int()
]
"""Path segments no route expects: NUL bytes, huge numbers, encodings, unicode."""
HOSTILE_SEGMENTS = st.one_of(st.sampled_from(HOSTILE_VALUES), st.text(min_size=1, max_size=300))
PLACEHOLDER_ID = "00000000-0000-4000-8000-000000000000"
"""For path parameters without a seeded value: well-formed, found nowhere."""


def assert_clear_answer(response: httpx.Response, curl: str) -> None:
    """Below 500, and a 4xx is a problem document whose status is the response's."""
    answer = f"{response.status_code} {response.headers.get('content-type')}: {response.text[:600]}"
    where = f"{answer}\n  for {curl[:1500]}"
    assert response.status_code < 500, where
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", "").startswith(PROBLEM_MEDIA_TYPE), where
    body = response.json()
    assert isinstance(body, dict), where
    assert body.get("status") == response.status_code, where
    assert isinstance(body.get("type"), str) and body["type"], where
    assert isinstance(body.get("title"), str) and body["title"], where
    assert isinstance(body.get("detail"), str) and body["detail"], where


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_bad_input_gets_a_problem_document_never_a_server_error(
    api_schema: BaseSchema, target: Target, mode: GenerationMode
) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _breakable(operation):
            continue
        try:
            _fuzz(operation, mode, target)
        except Unsatisfiable:
            # Nothing in the operation can break its schema (no parameters, or only strings).
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # each operation's failure is reported, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, f"{len(failures)} of {len(operations)} operations:\n" + "\n\n".join(
        failures
    )


def _breakable(operation: APIOperation) -> bool:
    """Whether the operation has anything a value can violate: a body, or a parameter that is
    more than any string (hostile path segments cover those; the search would only give up)."""
    raw = operation.definition.raw
    parameters = raw.get("parameters", [])
    return "requestBody" in raw or any(p.get("schema") != {"type": "string"} for p in parameters)


def _fuzz(operation: APIOperation, mode: GenerationMode, target: Target) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        # No shrinking: the failure already names the request, and shrinking ~90 operations
        # that fail together would take many minutes.
        phases=[Phase.explicit, Phase.generate],
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        who=st.sampled_from(["admin", "technician"]),
        data=st.data(),
    )
    def fuzz(case: Case, who: str, data: st.DataObject) -> None:
        for name in case.path_parameters or {}:
            case.path_parameters[name] = (
                data.draw(_path_value(case, name, target), label=f"path {name}")
                or case.path_parameters[name]
            )
        request = _request(case, target, who)
        response = target.send(request)
        assert_clear_answer(response, case.as_curl_command())

    fuzz()


def test_each_path_parameter_takes_hostile_values_beside_real_ones(
    api_schema: BaseSchema, target: Target
) -> None:
    """Every hostile value in every path parameter, the others seeded ids: deterministic, so a
    parser that trusts ``str.isdigit()`` is caught on every run, not once in a thousand."""
    failures: list[str] = []
    for operation in (result.ok() for result in api_schema.get_all_operations()):
        names = [parameter.name for parameter in operation.path_parameters]
        real = {name: target.known.get(name, [PLACEHOLDER_ID])[0] for name in names}
        for name, hostile, who in itertools.product(names, HOSTILE_VALUES, ["admin", "technician"]):
            case = operation.Case(path_parameters={**real, name: quote(hostile, safe="")})
            response = target.send(_request(case, target, who))
            try:
                assert_clear_answer(response, f"{case.method} {case.formatted_path} as {who}")
            except AssertionError as exc:
                failures.append(f"{operation.label} {name}={hostile[:20]!r}: {exc}")
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:20])


def test_the_seeded_study_outlives_the_fuzzing(target: Target) -> None:
    """The seeded ids the fuzzer substitutes still lead somewhere, so handlers were reached."""
    study = target.known["study_id"][0]
    request = target.world.client.build_request(
        "GET", f"/api/v1/studies/{study}", headers=target.headers_of("technician")
    )
    response = target.send(request)
    assert response.status_code == 200, response.text
    assert UUID(response.json()["id"]) == UUID(study)


def test_a_presigned_upload_expiry_in_unicode_digits_is_refused(target: Target) -> None:
    request = target.world.client.build_request(
        "PUT",
        "/api/v1/uploads/staging/some/file.dcm",
        params={"expires": "\u00b2", "signature": "0" * 64},
        content=b"DICM",
        headers=target.headers_of("technician"),
    )

    response = target.send(request)

    assert_clear_answer(response, "PUT /api/v1/uploads/...?expires=\u00b2")
    assert response.status_code == 401
