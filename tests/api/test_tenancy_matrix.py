"""Patient data never crosses centres, on every route of the application.

Centre A is seeded with one of everything (a DICOM study uploaded through ``POST /studies``, a
second one analysed by the in-process runner with its result, DICOM SEG and AI draft, a report
written by its radiologist, a price and an invoice, an annotation and a measurement, a staged
upload, API keys). Then every route is called, by each non-admin actor of centre B (manager,
radiologist, technician, and an API key with every scope), with centre A's ids:

- a route that names one of A's resources answers a 404 problem document, word for word the
  answer for an id that names nothing: never 2xx, never 403 (tenancy before permission), never
  5xx. The one exception is a create whose body names A's centre or study when the caller's
  role may never create that at all: its 403 must equal the one for the caller's own centre
  (as ``test_identity_access_matrix`` documents), so it says nothing about A;
- a list or search answers only B's items, whatever filter names A (``centre_id=<A>`` too),
  and its ``X-Total-Count`` counts nothing of A; DICOMweb searches naming A find nothing;
- a websocket on A's job closes with 4404, a subscription to it on ``/ws`` gets an error,
  both exactly as for an unknown job;
- no answer (body or headers) carries anything of A that the caller did not send itself
  (patient name and id, DICOM UIDs, ids, study code, report text, staging key);
- a route that would change something changes nothing of A (re-read as the admin);
- B's own requests that also name one of A's resources answer as for an unknown one, and B
  uploading the very files A holds gets a study of its own.

The routes are enumerated from ``app.routes``: a route added later without an entry in
:data:`MATRIX` fails :func:`test_every_route_has_a_tenancy_entry` with the message to add one.
The world is seeded once per module, in memory and on PostgreSQL (whose repositories filter
by centre in SQL); every check only reads or is refused, but the same-files upload (which
removes what it made) and a manager's key request (a key of B, as documented).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

import httpx
import pydicom
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute

from domain.identity import Scope
from model_export.synthetic import synthetic_ct
from tests.api.conftest import database_of_its_own, serve
from tests.api.dicomweb_helpers import stow_body, stow_headers
from tests.api.identity_fixtures import Key, World, assert_problem, create_key, seed_world
from tests.api.studies_helpers import multipart, post_studies
from tests.fixtures.analysis import dicom_ct_from_hu
from tests.fixtures.imaging import synthetic_ct_series

MODEL = "demo-lesion-unet"
PATIENT_A = ("Tenancy^Alice", "TENANCY-A-0001")
PATIENT_B = ("Other^Bob", "OTHER-B-0002")
FINDINGS_A = "Tenancy probe: 7 mm nodule, right upper lobe, seen only by centre A."
ALL_SCOPES = [scope.value for scope in Scope]
ACTORS = ("manager", "radiologist", "technician", "api-key")
PIXEL_DATA = "7FE00010"
FINAL = {"completed", "failed", "cancelled"}

# -- the seeded world -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Ids:
    """The resources of one centre the matrix names (strings, as they go into requests)."""

    centre: str
    study: str
    study_code: str
    study_uid: str
    series: str
    series_uid: str
    instance: str
    sop_uid: str
    radiologist: str


@dataclass(frozen=True, kw_only=True)
class CentreA(Ids):
    """Everything of centre A, with the analysed study's job, result and reports."""

    analysed_study: str
    job: str
    result: str
    ai_report: str
    report: str
    price: str
    invoice: str
    invoice_number: str
    annotation: str
    measurement: str
    user: str
    uploader: str
    """A's technician, who uploaded and started the job."""
    key: str
    key_prefix: str
    staged_key: str
    seg: bytes
    study_files: tuple[bytes, ...]
    """The DICOM files of A's first study, as uploaded."""
    markers: frozenset[str]
    """Every string of A's data an answer to B must not carry (unless B sent it)."""


@dataclass(frozen=True, kw_only=True)
class Tenancy:
    world: World
    a: CentreA
    b: Ids
    b_key: Key
    """Centre B's API key with every scope."""

    @property
    def client(self) -> httpx.AsyncClient:
        return self.world.client

    @property
    def app(self) -> Litestar:
        return self.world.served.app

    def headers(self, actor: str) -> dict[str, str]:
        b = self.world.b
        return {
            "manager": b.manager.headers,
            "radiologist": b.radiologist.headers,
            "technician": b.technician.headers,
            "api-key": self.b_key.headers,
        }[actor]


def with_patient(files: list[bytes], name: str, patient_id: str) -> list[bytes]:
    """The files with this patient in their headers (what WADO would hand out)."""
    out = []
    for data in files:
        dataset = pydicom.dcmread(io.BytesIO(data))
        dataset.PatientName, dataset.PatientID = name, patient_id
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def ok_bytes(response: httpx.Response) -> bytes:
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    return response.content


async def upload(world: World, technician_headers: dict[str, str], files: list[bytes]) -> Any:
    response = await post_studies(
        world.client, technician_headers, [(f"slice-{n}.dcm", d) for n, d in enumerate(files)]
    )
    body = await ok(response, 201)
    (study,) = body["studies"]
    return study, body["files"]


async def centre_ids(
    world: World, headers: dict[str, str], centre: UUID, files: list[bytes]
) -> Ids:
    client = world.client
    study, uploaded = await upload(world, headers, files)
    (series,) = await ok(await client.get(f"/api/v1/studies/{study['id']}/series", headers=headers))
    radiologist = world.a.radiologist if centre == world.a.id else world.b.radiologist
    sop_uid = pydicom.dcmread(io.BytesIO(files[0])).SOPInstanceUID
    instance = next(f["instance_id"] for f in uploaded if f["file_name"] == "slice-0.dcm")
    return Ids(
        centre=str(centre),
        study=study["id"],
        study_code=study["code"],
        study_uid=study["study_instance_uid"],
        series=series["id"],
        series_uid=series["series_instance_uid"],
        instance=instance,
        sop_uid=str(sop_uid),
        radiologist=str(radiologist.id),
    )


async def finished(world: World, job_id: str) -> dict[str, Any]:
    for _ in range(1200):
        job = await ok(
            await world.client.get(f"/api/v1/jobs/{job_id}", headers=world.a.radiologist.headers)
        )
        if job["status"] in FINAL:
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


async def seed_centre_a(world: World) -> CentreA:
    client, admin, a = world.client, world.admin, world.a
    files = with_patient(synthetic_ct_series(slices=4, rows=12, columns=10).files, *PATIENT_A)
    ids = await centre_ids(world, a.technician.headers, a.id, files)

    # an analysis on a phantom small enough to run in a second, with lesions for a SEG
    phantom = synthetic_ct((16, 64, 64), (2.0, 1.5, 1.5), seed=20_261_126)
    z, y, x = phantom.origin_mm
    slices = dicom_ct_from_hu(phantom.hu, spacing_mm=(2.0, 1.5, 1.5), origin_lps=(x, y, z))
    analysed, _ = await upload(world, a.technician.headers, with_patient(slices, *PATIENT_A))
    started = await ok(
        await client.post(
            "/api/v1/jobs",
            headers=a.technician.headers,
            json={"study_id": analysed["id"], "model_id": MODEL},
        ),
        201,
    )
    job = await finished(world, started["id"])
    assert job["status"] == "completed", job
    result = await ok(await client.get(f"/api/v1/jobs/{job['id']}/result", headers=admin.headers))
    seg = await client.get(f"/api/v1/jobs/{job['id']}/mask", headers=admin.headers)
    assert seg.status_code == 200, "the phantom's analysis must find a lesion (for a SEG)"
    ai_report = await ok(
        await client.get(f"/api/v1/studies/{analysed['id']}/ai-report", headers=admin.headers)
    )

    # a report written by A's radiologist on the first study, which is then invoiced
    await ok(
        await client.patch(
            f"/api/v1/studies/{ids.study}/assign",
            headers=a.manager.headers,
            json={"radiologist_id": ids.radiologist},
        )
    )
    report = await ok(
        await client.post(
            "/api/v1/reports",
            headers=a.radiologist.headers,
            json={"study_id": ids.study, "findings": FINDINGS_A, "impression": "Follow up."},
        ),
        201,
    )
    price = await ok(
        await client.post(
            "/api/v1/billing/pricing",
            headers=admin.headers,
            json={"centre_id": str(a.id), "modality": "ct", "amount": "123.45", "currency": "usd"},
        ),
        201,
    )
    invoice = await ok(
        await client.post(
            "/api/v1/billing/invoices", headers=admin.headers, json={"study_id": ids.study}
        ),
        201,
    )
    notes = f"/api/v1/instances/{ids.instance}"
    annotation = await ok(
        await client.post(
            f"{notes}/annotations",
            headers=a.radiologist.headers,
            json={"text": "Tenancy probe note", "position": [3.5, 4.0]},
        ),
        201,
    )
    measurement = await ok(
        await client.post(
            f"{notes}/measurements",
            headers=a.radiologist.headers,
            json={"kind": "line", "points": [[1, 2], [4, 6]], "value": 5.0, "unit": "mm"},
        ),
        201,
    )
    staged = await ok(
        await client.post(
            "/api/v1/uploads/presign",
            headers=a.technician.headers,
            json={"file_name": "large.dcm"},
        ),
        201,
    )
    put = await client.put(staged["url"], content=files[0])
    assert put.status_code == 200, put.text
    keys = await ok(
        await client.get("/api/v1/api-keys", headers=admin.headers, params={"centre_id": str(a.id)})
    )
    key = next(k for k in keys if k["id"] == str(a.spare_key.id))

    # A looks at its images first: whatever a later cache keeps must not reach B
    for url in (
        f"{API}/instances/{ids.instance}/rendered",
        f"{API}/instances/{ids.instance}/metadata",
        f"{API}/studies/{ids.study}/instances/1",
        wado(ids),
        wado(ids, "/metadata"),
        wado(ids, "/frames/1"),
        wado(ids, "/rendered"),
    ):
        ok_bytes(await client.get(url, headers=a.radiologist.headers))

    instance_uids = [pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for d in [*files, *slices]]
    analysed_series = await ok(
        await client.get(f"/api/v1/studies/{analysed['id']}/series", headers=admin.headers)
    )
    markers = {
        *PATIENT_A,
        FINDINGS_A,
        ids.centre,
        ids.study,
        ids.study_code,
        ids.study_uid,
        ids.series,
        ids.series_uid,
        ids.instance,
        analysed["id"],
        analysed["code"],
        analysed["study_instance_uid"],
        *(s["id"] for s in analysed_series),
        *(s["series_instance_uid"] for s in analysed_series),
        *(str(uid) for uid in instance_uids),
        job["id"],
        result["id"],
        ai_report["id"],
        report["id"],
        price["id"],
        invoice["id"],
        invoice["number"],
        annotation["id"],
        measurement["id"],
        str(a.staff.id),
        str(a.radiologist.id),
        str(a.technician.id),
        str(a.manager.id),
        str(a.key.id),
        str(a.spare_key.id),
        key["prefix"],
        staged["key"],
    }
    return CentreA(
        **{name: getattr(ids, name) for name in Ids.__dataclass_fields__},
        analysed_study=analysed["id"],
        job=job["id"],
        result=result["id"],
        ai_report=ai_report["id"],
        report=report["id"],
        price=price["id"],
        invoice=invoice["id"],
        invoice_number=invoice["number"],
        annotation=annotation["id"],
        measurement=measurement["id"],
        user=str(a.staff.id),
        uploader=str(a.technician.id),
        key=str(a.spare_key.id),
        key_prefix=key["prefix"],
        staged_key=staged["key"],
        seg=seg.content,
        study_files=tuple(files),
        markers=frozenset(markers),
    )


@pytest.fixture(scope="module")
async def tenancy(
    tmp_path_factory: pytest.TempPathFactory, module_database: str | None
) -> AsyncIterator[Tenancy]:
    async with AsyncExitStack() as stack:
        options = await database_of_its_own(stack, module_database)
        # thousands of requests from the same few clients within a minute
        limits = {
            f"rate_limit_{kind}_per_minute": "1000000" for kind in ("uploads", "analyses", "reads")
        }
        served = await serve(
            stack, tmp_path_factory.mktemp("tenancy") / "data", **options, **limits
        )
        world = await seed_world(served)
        a = await seed_centre_a(world)
        files = with_patient(synthetic_ct_series(slices=2, rows=12, columns=10).files, *PATIENT_B)
        b = await centre_ids(world, world.b.technician.headers, world.b.id, files)
        b_key = await create_key(
            world.client, world.admin.headers, name="b all", centre_id=world.b.id, scopes=ALL_SCOPES
        )
        yield Tenancy(world=world, a=a, b=b, b_key=b_key)


# -- the matrix -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Call:
    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    files: list[tuple[str, Any]] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def sent(self) -> str:
        """What the caller itself put into the request (an answer may echo it)."""
        return " ".join(
            [self.url, json.dumps(self.params), json.dumps(self.json), json.dumps(self.data)]
        )

    async def send(self, client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
        return await client.request(
            self.method,
            self.url,
            params=self.params,
            json=self.json,
            data=self.data,
            files=self.files,
            content=self.content,
            headers={**headers, **self.headers},
        )


Builder = Callable[[CentreA, Ids], list[Call]]
"""The calls of one route: ``(A's resources, the caller's own centre's resources)``."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """How one route is checked.

    ``named``: each call names A's resource, answered 404 (a problem document);
    ``listed``: a list or search: 2xx with none of A's items, or a 403 problem (the role may
    not list at all), or 404 (DICOMweb searches under a study B does not have);
    ``unscoped``: the route names no centre's data (``reason`` says why);
    ``special``: checked by its own test below (``reason`` names it).
    ``refused_anywhere``: for creates into a centre the body names (users, keys, prices,
    uploads), a 403 is accepted when the caller gets the same refusal for its own centre (the
    role may never do it, so the answer tells nothing about A); creates that name A's study
    (jobs, reports, invoices) are 404 for every role. ``own_centre``: a 201 is accepted when
    what was made belongs to the caller's own centre (documented: a manager's key is always of
    their centre).
    """

    kind: str
    build: Builder | None = None
    reason: str = ""
    refused_anywhere: bool = False
    own_centre: bool = False


def named(build: Builder, **options: Any) -> Entry:
    return Entry(kind="named", build=build, **options)


def listed(build: Builder) -> Entry:
    return Entry(kind="listed", build=build)


def unscoped(reason: str) -> Entry:
    return Entry(kind="unscoped", reason=reason)


def special(reason: str) -> Entry:
    return Entry(kind="special", reason=reason)


def get(url: str, **params: str) -> Call:
    return Call(method="GET", url=url, params=params)


API = "/api/v1"
WADO_INSTANCE = "/dicomweb/studies/{study:str}/series/{series:str}/instances/{instance:str}"


def wado(a: Ids, suffix: str = "", *, series: bool = True, instance: bool = True) -> str:
    url = f"/dicomweb/studies/{a.study_uid}"
    if series:
        url += f"/series/{a.series_uid}"
        if instance:
            url += f"/instances/{a.sop_uid}"
    return url + suffix


def wado_reads(a: Ids, url: str) -> list[Call]:
    """A WADO-RS read of A's UIDs, plainly and naming A's centre (``?centre_id=``, which
    only admins may point elsewhere)."""
    return [get(url), get(url, centre_id=a.centre)]


def fresh_dicom() -> bytes:
    return with_patient(synthetic_ct_series(slices=1).files, *PATIENT_B)[0]


def stow(url: str, centre: str) -> Call:
    return Call(
        method="POST",
        url=url,
        params={"centre_id": centre},
        content=stow_body([fresh_dicom()]),
        headers=stow_headers({}),
    )


# fmt: off
MATRIX: dict[tuple[str, str], Entry] = {
    # -- public and installation-wide
    ("GET", "/health"): unscoped("liveness, no data"),
    ("GET", "/health/detailed"): unscoped("dependency health, no centre's data"),
    ("GET", "/metrics"): unscoped("Prometheus counters, no ids or patient data"),
    ("GET", "/openapi.json"): unscoped("the API description"),
    ("GET", "/docs"): unscoped("the API documentation"),
    ("GET", "/docs/openapi.json"): unscoped("the API description"),
    ("GET", "/docs/{path:str}"): unscoped("documentation assets"),
    ("GET", "/docs/oauth2-redirect.html"): unscoped("documentation assets"),
    ("GET", API): unscoped("what this API is"),
    ("GET", f"{API}/models"): unscoped("models are installation-wide"),
    ("GET", f"{API}/models/{{model_id:str}}"): unscoped("models are installation-wide"),
    ("POST", f"{API}/auth/token"): unscoped("signing in names no resource"),
    ("GET", f"{API}/auth/me"): unscoped("the caller's own profile"),
    ("POST", f"{API}/centres"): unscoped("makes a new centre (admins only); names none"),
    ("POST", f"{API}/anonymize/batch"): unscoped(
        "de-identifies the files the caller sends; reads and stores nothing"
    ),
    # -- identity
    ("POST", f"{API}/auth/register"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/auth/register", json=new_user(own)
    )], refused_anywhere=True),
    ("GET", f"{API}/users"): listed(lambda a, own: [
        get(f"{API}/users"), get(f"{API}/users", centre_id=a.centre),
    ]),
    ("POST", f"{API}/users"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/users", json=new_user(own)
    )], refused_anywhere=True),
    ("GET", f"{API}/users/{{user_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/users/{a.user}")
    ]),
    ("PATCH", f"{API}/users/{{user_id:uuid}}"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/users/{a.user}", json={"full_name": "Renamed"}
    )]),
    ("PATCH", f"{API}/users/{{user_id:uuid}}/deactivate"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/users/{a.user}/deactivate"
    )]),
    ("GET", f"{API}/centres"): listed(lambda a, own: [
        get(f"{API}/centres"), get(f"{API}/centres", name="Centre A"),
    ]),
    ("GET", f"{API}/centres/{{centre_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/centres/{a.centre}")
    ]),
    ("PATCH", f"{API}/centres/{{centre_id:uuid}}"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/centres/{a.centre}", json={"contact_phone": "+41 21 000 00 00"}
    )]),
    ("PATCH", f"{API}/centres/{{centre_id:uuid}}/deactivate"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/centres/{a.centre}/deactivate"
    )]),
    ("GET", f"{API}/api-keys"): listed(lambda a, own: [
        get(f"{API}/api-keys"), get(f"{API}/api-keys", centre_id=a.centre),
    ]),
    ("POST", f"{API}/api-keys"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/api-keys",
        json={"name": "probe", "scopes": ["studies:read"], "centre_id": own.centre},
    )], refused_anywhere=True, own_centre=True),
    ("DELETE", f"{API}/api-keys/{{key_id:uuid}}"): named(lambda a, own: [
        Call(method="DELETE", url=f"{API}/api-keys/{a.key}")
    ]),
    ("GET", f"{API}/audit"): listed(lambda a, own: [
        get(f"{API}/audit"), get(f"{API}/audit", centre_id=a.centre),
        get(f"{API}/audit", resource=f"study:{a.study}"),
    ]),
    # -- studies, images, uploads
    ("GET", f"{API}/studies"): listed(lambda a, own: [
        get(f"{API}/studies"),
        get(f"{API}/studies", centre_id=a.centre),
        get(f"{API}/studies", patient_name="Tenancy"),
        get(f"{API}/studies", patient_id=PATIENT_A[1]),
        get(f"{API}/studies", assigned_radiologist_id=a.radiologist),
        get(f"{API}/studies", status="report_generated", modality="ct", urgency="routine"),
    ]),
    ("POST", f"{API}/studies"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/studies", data={"centre_id": own.centre},
        files=multipart([("probe.dcm", fresh_dicom())]),
    )], refused_anywhere=True),
    ("GET", f"{API}/studies/{{study_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/studies/{a.study}")
    ]),
    ("DELETE", f"{API}/studies/{{study_id:uuid}}"): named(lambda a, own: [
        Call(method="DELETE", url=f"{API}/studies/{a.study}")
    ]),
    ("GET", f"{API}/studies/code/{{code:str}}"): named(lambda a, own: [
        get(f"{API}/studies/code/{a.study_code}")
    ]),
    ("GET", f"{API}/studies/{{study_id:uuid}}/series"): named(lambda a, own: [
        get(f"{API}/studies/{a.study}/series")
    ]),
    ("GET", f"{API}/studies/{{study_id:uuid}}/instances"): named(lambda a, own: [
        get(f"{API}/studies/{a.study}/instances")
    ]),
    ("GET", f"{API}/studies/{{study_id:uuid}}/instances/{{which:str}}"): named(lambda a, own: [
        get(f"{API}/studies/{a.study}/instances/1"),
        get(f"{API}/studies/{a.study}/instances/{a.instance}"),
    ]),
    ("POST", f"{API}/upload"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/upload", data={"centre_id": own.centre},
        files=multipart([("probe.dcm", fresh_dicom())], "file"),
    )], refused_anywhere=True),
    ("GET", f"{API}/instances/{{instance_id:uuid}}/metadata"): named(lambda a, own: [
        get(f"{API}/instances/{a.instance}/metadata")
    ]),
    ("GET", f"{API}/instances/{{instance_id:uuid}}/rendered"): named(lambda a, own: [
        get(f"{API}/instances/{a.instance}/rendered"),
        get(f"{API}/instances/{a.instance}/rendered", window="400", level="40", format="jpeg"),
    ]),
    ("GET", f"{API}/instances/{{instance_id:uuid}}/annotations"): named(lambda a, own: [
        get(f"{API}/instances/{a.instance}/annotations")
    ]),
    ("POST", f"{API}/instances/{{instance_id:uuid}}/annotations"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/instances/{a.instance}/annotations",
        json={"text": "from B", "position": [1.0, 1.0]},
    )]),
    ("DELETE", f"{API}/instances/{{instance_id:uuid}}/annotations/{{annotation_id:uuid}}"):
        named(lambda a, own: [Call(
            method="DELETE",
            url=f"{API}/instances/{a.instance}/annotations/{a.annotation}",
        )]),
    ("GET", f"{API}/instances/{{instance_id:uuid}}/measurements"): named(lambda a, own: [
        get(f"{API}/instances/{a.instance}/measurements")
    ]),
    ("POST", f"{API}/instances/{{instance_id:uuid}}/measurements"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/instances/{a.instance}/measurements",
        json={"kind": "line", "points": [[0, 0], [3, 4]], "value": 5.0, "unit": "mm"},
    )]),
    ("DELETE", f"{API}/instances/{{instance_id:uuid}}/measurements/{{measurement_id:uuid}}"):
        named(lambda a, own: [Call(
            method="DELETE",
            url=f"{API}/instances/{a.instance}/measurements/{a.measurement}",
        )]),
    ("POST", f"{API}/uploads/presign"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/uploads/presign",
        json={"file_name": "probe.dcm", "centre_id": own.centre},
    )], refused_anywhere=True),
    ("PUT", f"{API}/uploads/{{key:path}}"): special(
        "test_a_presigned_url_of_b_cannot_write_a_staged_key_of_a"
    ),
    ("POST", f"{API}/studies/from-storage"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/studies/from-storage",
        json={"key": a.staged_key},
    )]),
    # -- workflow and reports
    ("GET", f"{API}/studies/{{study_id:uuid}}/ai-report"): named(lambda a, own: [
        get(f"{API}/studies/{a.analysed_study}/ai-report")
    ]),
    ("PATCH", f"{API}/studies/{{study_id:uuid}}/assign"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/studies/{a.study}/assign",
        json={"radiologist_id": own.radiologist},
    )]),
    ("POST", f"{API}/studies/{{study_id:uuid}}/review"): named(lambda a, own: [
        Call(method="POST", url=f"{API}/studies/{a.study}/review")
    ]),
    ("GET", f"{API}/reports"): listed(lambda a, own: [
        get(f"{API}/reports"),
        get(f"{API}/reports", centre_id=a.centre),
        get(f"{API}/reports", study_id=a.study),
        get(f"{API}/reports", author_id=a.radiologist),
        get(f"{API}/reports", is_ai_generated="true"),
    ]),
    ("POST", f"{API}/reports"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/reports",
        json={"study_id": a.study, "findings": "From B.", "impression": "None."},
    )]),
    ("GET", f"{API}/reports/{{report_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/reports/{a.report}"),
        get(f"{API}/reports/{a.ai_report}"),
    ]),
    ("PATCH", f"{API}/reports/{{report_id:uuid}}"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/reports/{a.report}", json={"findings": "Changed by B."},
    )]),
    ("PATCH", f"{API}/reports/{{report_id:uuid}}/verify"): named(lambda a, own: [
        Call(method="PATCH", url=f"{API}/reports/{a.report}/verify"),
    ]),
    ("GET", f"{API}/reports/{{report_id:uuid}}/versions"): named(lambda a, own: [
        get(f"{API}/reports/{a.report}/versions"),
    ]),
    # -- billing
    ("GET", f"{API}/billing/pricing"): listed(lambda a, own: [
        get(f"{API}/billing/pricing"), get(f"{API}/billing/pricing", centre_id=a.centre),
    ]),
    ("POST", f"{API}/billing/pricing"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/billing/pricing",
        json={"centre_id": own.centre, "modality": "mr", "amount": "1.00", "currency": "usd"},
    )], refused_anywhere=True),
    ("GET", f"{API}/billing/pricing/{{price_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/billing/pricing/{a.price}")
    ]),
    ("PATCH", f"{API}/billing/pricing/{{price_id:uuid}}"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/billing/pricing/{a.price}", json={"amount": "0.01"},
    )]),
    ("GET", f"{API}/billing/invoices"): listed(lambda a, own: [
        get(f"{API}/billing/invoices"),
        get(f"{API}/billing/invoices", centre_id=a.centre),
        get(f"{API}/billing/invoices", study_id=a.study),
    ]),
    ("POST", f"{API}/billing/invoices"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/billing/invoices", json={"study_id": a.study},
    )]),
    ("GET", f"{API}/billing/invoices/{{invoice_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/billing/invoices/{a.invoice}")
    ]),
    ("PATCH", f"{API}/billing/invoices/{{invoice_id:uuid}}/status"): named(lambda a, own: [Call(
        method="PATCH", url=f"{API}/billing/invoices/{a.invoice}/status",
        json={"status": "cancelled"},
    )]),
    # -- interop
    ("POST", f"{API}/studies/{{study_id:uuid}}/anonymize"): named(lambda a, own: [
        Call(method="POST", url=f"{API}/studies/{a.study}/anonymize")
    ]),
    ("POST", f"{API}/export"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/export", json={"image_ids": [a.instance]}
    ), Call(
        method="POST", url=f"{API}/export",
        json={"image_ids": [a.instance], "format": "npy", "include_metadata": True},
    )]),
    ("POST", f"{API}/measure"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/measure", data={"study_id": a.analysed_study},
        files=[("file", ("seg.dcm", a.seg, "application/dicom"))],
    )]),
    # -- jobs and analyses
    ("GET", f"{API}/jobs"): listed(lambda a, own: [
        get(f"{API}/jobs"),
        get(f"{API}/jobs", centre_id=a.centre),
        get(f"{API}/jobs", study_id=a.analysed_study),
        get(f"{API}/jobs", model_id=MODEL),
        get(f"{API}/jobs", user_id=a.uploader),
    ]),
    ("POST", f"{API}/jobs"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/jobs", json={"study_id": a.study, "model_id": MODEL},
    ), Call(
        method="POST", url=f"{API}/jobs", json={"series_id": a.series, "model_id": MODEL},
    )]),
    ("GET", f"{API}/jobs/dead-letters"): listed(lambda a, own: [get(f"{API}/jobs/dead-letters")]),
    ("GET", f"{API}/jobs/{{job_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/jobs/{a.job}")
    ]),
    ("POST", f"{API}/jobs/{{job_id:uuid}}/cancel"): named(lambda a, own: [
        Call(method="POST", url=f"{API}/jobs/{a.job}/cancel")
    ]),
    ("POST", f"{API}/jobs/{{job_id:uuid}}/events"): named(lambda a, own: [Call(
        method="POST", url=f"{API}/jobs/{a.job}/events",
        json={"status": "failed", "message": "from B"},
    )]),
    ("POST", f"{API}/jobs/{{job_id:uuid}}/retry"): named(lambda a, own: [
        Call(method="POST", url=f"{API}/jobs/{a.job}/retry")
    ]),
    ("GET", f"{API}/jobs/{{job_id:uuid}}/result"): named(lambda a, own: [
        get(f"{API}/jobs/{a.job}/result")
    ]),
    ("GET", f"{API}/jobs/{{job_id:uuid}}/mask"): named(lambda a, own: [
        get(f"{API}/jobs/{a.job}/mask")
    ]),
    ("GET", f"{API}/analysis/{{analysis_id:uuid}}"): named(lambda a, own: [
        get(f"{API}/analysis/{a.result}")
    ]),
    # -- DICOMweb: searches find nothing of A, retrieves are 404
    ("GET", "/dicomweb/studies"): listed(lambda a, own: [
        get("/dicomweb/studies"),
        get("/dicomweb/studies", StudyInstanceUID=a.study_uid),
        get("/dicomweb/studies", PatientName="Tenancy*"),
        get("/dicomweb/studies", PatientID=PATIENT_A[1]),
        get("/dicomweb/studies", AccessionNumber=a.study_code),
    ]),
    ("GET", "/dicomweb/series"): listed(lambda a, own: [
        get("/dicomweb/series"),
        get("/dicomweb/series", StudyInstanceUID=a.study_uid),
        get("/dicomweb/series", SeriesInstanceUID=a.series_uid),
    ]),
    ("GET", "/dicomweb/instances"): listed(lambda a, own: [
        get("/dicomweb/instances"),
        get("/dicomweb/instances", SOPInstanceUID=a.sop_uid),
        get("/dicomweb/instances", StudyInstanceUID=a.study_uid),
    ]),
    ("GET", "/dicomweb/studies/{study:str}/series"): listed(lambda a, own: [
        get(wado(a, "/series", series=False)),
    ]),
    ("GET", "/dicomweb/studies/{study:str}/instances"): listed(lambda a, own: [
        get(wado(a, "/instances", series=False)),
    ]),
    ("GET", "/dicomweb/studies/{study:str}/series/{series:str}/instances"): listed(lambda a, own: [
        get(wado(a, "/instances", instance=False)),
    ]),
    ("GET", "/dicomweb/studies/{study:str}"): named(lambda a, own: wado_reads(
        a, wado(a, series=False)
    )),
    ("GET", "/dicomweb/studies/{study:str}/metadata"): named(lambda a, own: wado_reads(
        a, wado(a, "/metadata", series=False)
    )),
    ("GET", "/dicomweb/studies/{study:str}/series/{series:str}"): named(lambda a, own: wado_reads(
        a, wado(a, instance=False)
    )),
    ("GET", "/dicomweb/studies/{study:str}/series/{series:str}/metadata"): named(
        lambda a, own: wado_reads(a, wado(a, "/metadata", instance=False))
    ),
    ("GET", WADO_INSTANCE): named(lambda a, own: wado_reads(a, wado(a))),
    ("GET", f"{WADO_INSTANCE}/metadata"): named(lambda a, own: wado_reads(
        a, wado(a, "/metadata")
    )),
    ("GET", f"{WADO_INSTANCE}/rendered"): named(lambda a, own: wado_reads(
        a, wado(a, "/rendered")
    )),
    ("GET", f"{WADO_INSTANCE}/frames/{{frames:str}}"): named(lambda a, own: wado_reads(
        a, wado(a, "/frames/1")
    )),
    ("GET", f"{WADO_INSTANCE}/frames/{{frames:str}}/rendered"): named(lambda a, own: wado_reads(
        a, wado(a, "/frames/1/rendered")
    )),
    ("GET", f"{WADO_INSTANCE}/bulkdata/{{tag:str}}"): named(lambda a, own: wado_reads(
        a, wado(a, f"/bulkdata/{PIXEL_DATA}")
    )),
    ("POST", "/dicomweb/studies"): named(lambda a, own: [
        stow("/dicomweb/studies", own.centre)
    ], refused_anywhere=True),
    ("POST", "/dicomweb/studies/{study:str}"): named(lambda a, own: [
        stow(f"/dicomweb/studies/{a.study_uid}", own.centre)
    ], refused_anywhere=True),
    # -- websockets
    ("WS", "/ws"): special("test_a_subscription_to_a_job_of_a_gets_an_error"),
    ("WS", "/ws/jobs/{job_id:str}"): special("test_the_socket_of_a_job_of_a_closes_with_4404"),
}
# fmt: on


def new_user(own: Ids) -> dict[str, Any]:
    """A user for a centre; the matrix names A's centre through ``own`` = A for the call."""
    return {
        "username": f"probe-{own.centre[:8]}",
        "email": "probe@example.org",
        "full_name": "Probe",
        "role": "technician",
        "password": "correct horse battery staple",
        "centre_id": own.centre,
    }


def app_routes(app: Litestar) -> set[tuple[str, str]]:
    """Every (method, path) of the application, websockets as ``WS``."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, HTTPRoute):
            found |= {(m, route.path) for m in route.methods if m not in ("OPTIONS", "HEAD")}
    return found


# -- checks -----------------------------------------------------------------------------------


def leaked(response: httpx.Response, call: Call, markers: frozenset[str]) -> list[str]:
    """A's data in the answer that the caller did not send itself."""
    text = " ".join([*response.headers.values(), response.content.decode("latin-1")])
    sent = call.sent()
    return sorted(m for m in markers if m in text and m not in sent)


async def snapshot(t: Tenancy) -> list[Any]:
    """Centre A as its admin reads it (audit aside: reads and refusals are audited)."""
    a, admin, client = t.a, t.world.admin.headers, t.client
    urls = [
        f"{API}/centres/{a.centre}",
        f"{API}/users/{a.user}",
        f"{API}/studies/{a.study}",
        f"{API}/studies/{a.analysed_study}",
        f"{API}/studies/{a.study}/instances",
        f"{API}/studies/{a.analysed_study}/instances",
        f"{API}/jobs/{a.job}",
        f"{API}/jobs/{a.job}/result",
        f"{API}/reports/{a.report}/versions",
        f"{API}/reports/{a.ai_report}/versions",
        f"{API}/billing/pricing/{a.price}",
        f"{API}/billing/invoices/{a.invoice}",
        f"{API}/instances/{a.instance}/annotations",
        f"{API}/instances/{a.instance}/measurements",
    ]
    lists = [
        f"{API}/studies",
        f"{API}/jobs",
        f"{API}/reports",
        f"{API}/billing/pricing",
        f"{API}/billing/invoices",
        f"{API}/users",
        f"{API}/api-keys",
    ]
    state: list[Any] = []
    for url in urls:
        state.append((url, await ok(await client.get(url, headers=admin))))
    for url in lists:
        params = {"centre_id": a.centre}
        state.append((url, await ok(await client.get(url, headers=admin, params=params))))
    staged = await t.world.served.container.blob_store.exists(a.staged_key)
    state.append(("staged upload kept", staged))
    return state


def matrix_params(kind: str) -> list[Any]:
    return [
        pytest.param(route, id=f"{route[0]} {route[1]}")
        for route, entry in MATRIX.items()
        if entry.kind == kind
    ]


def test_every_route_has_a_tenancy_entry(tenancy: Tenancy) -> None:
    routes = app_routes(tenancy.app)
    missing = sorted(routes - set(MATRIX))
    assert not missing, (
        "routes without a tenancy entry: add each to MATRIX in tests/api/test_tenancy_matrix.py "
        "(the calls that name centre A's resources, or unscoped(reason)): "
        + ", ".join(f"{m} {p}" for m, p in missing)
    )
    stale = sorted(set(MATRIX) - routes)
    assert not stale, f"MATRIX names routes the app no longer has: {stale}"


@pytest.mark.parametrize("route", matrix_params("named"))
async def test_a_route_naming_a_resource_of_a_is_404_for_b(
    tenancy: Tenancy, route: tuple[str, str]
) -> None:
    entry = MATRIX[route]
    assert entry.build is not None
    changes = route[0] != "GET"
    before = await snapshot(tenancy) if changes else None
    failures = []
    for actor in ACTORS:
        for call in entry.build(tenancy.a, tenancy.a):
            response = await call.send(tenancy.client, tenancy.headers(actor))
            problem = check_named(tenancy, entry, call, actor, response)
            if problem is None:
                problem = await check_refusal_is_centre_blind(tenancy, entry, actor, response)
            if problem is None and response.status_code == 404:
                problem = await check_as_if_unknown(tenancy, call, actor, response)
            if problem:
                failures.append(f"{actor} {call.method} {call.url}: {problem}")
    if before is not None:
        after = await snapshot(tenancy)
        if after != before:
            failures.append("centre A changed: " + first_difference(before, after))
    assert not failures, "\n".join(failures)


def check_named(
    t: Tenancy, entry: Entry, call: Call, actor: str, response: httpx.Response
) -> str | None:
    """Why the answer is wrong, or None."""
    found = leaked(response, call, t.a.markers)
    if found:
        return f"{response.status_code} carries A's data {found}"
    status = response.status_code
    if status == 404:
        try:
            assert_problem(response, 404)
        except AssertionError as err:
            return f"404 but not a problem document: {err}"
        return None
    if status == 403 and entry.refused_anywhere:
        return None  # checked against the caller's own centre next
    if status == 201 and entry.own_centre:
        made = response.json().get("centre_id")
        return None if made == t.b.centre else f"201 made something in centre {made}"
    return f"{status}, not 404: {response.text[:300]}"


async def check_refusal_is_centre_blind(
    t: Tenancy, entry: Entry, actor: str, response: httpx.Response
) -> str | None:
    """A 403 on a create naming A is fine only when the caller gets the very same refusal
    for its own centre: the role may never do it, so the answer says nothing about A."""
    if response.status_code != 403 or entry.build is None:
        return None
    foreign = response.json()
    for own_call in entry.build(t.a, t.b)[:1]:  # the own-centre twin of the first call
        own = await own_call.send(t.client, t.headers(actor))
        if own.status_code != 403 or own.json().get("detail") != foreign.get("detail"):
            return (
                f"403 for A's resource but {own.status_code} for its own centre's: "
                "tenancy must come before permission"
            )
    return None


def ghost_of(marker: str) -> str:
    """An identifier of the same kind as ``marker`` that names nothing."""
    if "/" in marker:  # a staging key: the same centre's area, an upload never made
        parts = marker.split("/")
        parts[-2] = str(uuid4())
        return "/".join(parts)
    try:
        UUID(marker)
    except ValueError:
        pass
    else:
        return str(uuid4())
    if marker.replace(".", "").isdigit():
        return f"2.25.{uuid4().int}"
    return "".join(reversed(marker))  # a study code: same alphabet and length


def haunted(call: Call, markers: frozenset[str]) -> tuple[Call, dict[str, str]]:
    """``call`` with every one of A's identifiers in it replaced by a ghost, and the map."""
    sent = call.sent()
    ghosts = {m: ghost_of(m) for m in sorted(markers, key=len, reverse=True) if m in sent}

    # one pass, longest first: a ghost is never itself haunted again
    pattern = re.compile("|".join(re.escape(m) for m in ghosts)) if ghosts else None

    def swap(text: str) -> str:
        return text if pattern is None else pattern.sub(lambda m: ghosts[m.group(0)], text)

    changed = replace(
        call,
        url=swap(call.url),
        params={k: swap(v) for k, v in call.params.items()},
        json=json.loads(swap(json.dumps(call.json))),
        data=None if call.data is None else {k: swap(v) for k, v in call.data.items()},
    )
    return changed, ghosts


async def check_as_if_unknown(
    t: Tenancy, call: Call, actor: str, response: httpx.Response
) -> str | None:
    """A's resource is answered exactly as one that does not exist: same status, type, title
    and detail (but the id), so the answer does not even tell that it exists."""
    ghost_call, ghosts = haunted(call, t.a.markers)
    if not ghosts:
        return None
    ghost = await ghost_call.send(t.client, t.headers(actor))
    seen = response.json()
    unseen = ghost.json() if ghost.content else {}
    back = {ghost: marker for marker, ghost in ghosts.items()}
    detail = re.sub(
        "|".join(re.escape(g) for g in back), lambda m: back[m.group(0)], str(unseen.get("detail"))
    )
    same = (ghost.status_code, unseen.get("type"), unseen.get("title"), detail) == (
        response.status_code,
        seen["type"],
        seen["title"],
        seen["detail"],
    )
    if same:
        return None
    return (
        f"A's resource: {response.status_code} {seen['detail']!r}; an unknown one: "
        f"{ghost.status_code} {unseen.get('detail')!r}"
    )


@pytest.mark.parametrize("route", matrix_params("listed"))
async def test_lists_and_searches_of_b_hold_nothing_of_a(
    tenancy: Tenancy, route: tuple[str, str]
) -> None:
    entry = MATRIX[route]
    assert entry.build is not None
    failures = []
    for actor in ACTORS:
        for call in entry.build(tenancy.a, tenancy.b):
            response = await call.send(tenancy.client, tenancy.headers(actor))
            where = f"{actor} {call.method} {call.url} {call.params}"
            problem = check_listed(tenancy, route, call, response)
            if problem:
                failures.append(f"{where}: {problem}")
    assert not failures, "\n".join(failures)


def check_listed(
    t: Tenancy, route: tuple[str, str], call: Call, response: httpx.Response
) -> str | None:
    """Why a list's or search's answer is wrong, or None."""
    status = response.status_code
    found = leaked(response, call, t.a.markers)
    if found:
        return f"{status} lists A's data {found}"
    if status in (403, 404):
        assert_problem(response, status)
        return None
    if status not in (200, 204):
        return f"{status} {response.text[:300]}"
    items = response.json() if status == 200 else []
    if route[1].startswith("/dicomweb") and call.params and items:
        return f"a search naming A found {response.text[:300]}"
    total = response.headers.get("X-Total-Count")
    if total is not None and int(total) != len(items):
        return f"X-Total-Count {total} counts more than the {len(items)} items B may see"
    return None


async def test_b_lists_its_own_items_where_a_lists_a_s(tenancy: Tenancy) -> None:
    """The lists above are not empty by accident: B's own study is there, A's is not."""
    for actor in ACTORS:
        listed = await ok(
            await tenancy.client.get(f"{API}/studies", headers=tenancy.headers(actor))
        )
        assert [s["id"] for s in listed] == [tenancy.b.study], actor
        found = await tenancy.client.get(
            "/dicomweb/studies", headers={**tenancy.headers(actor), "Accept": "application/json"}
        )
        uids = [s["0020000D"]["Value"][0] for s in found.json()]
        assert uids == [tenancy.b.study_uid], actor


def first_difference(before: list[Any], after: list[Any]) -> str:
    for old, new in zip(before, after, strict=True):
        if old != new:
            return f"{old[0]}: {json.dumps(old[1])[:400]} -> {json.dumps(new[1])[:400]}"
    return "?"


UNSCOPED_CALLS: dict[tuple[str, str], list[Call]] = {
    ("GET", "/docs/{path:str}"): [get("/docs/swagger.html")],
    ("GET", f"{API}/models/{{model_id:str}}"): [get(f"{API}/models/{MODEL}")],
    ("POST", f"{API}/auth/token"): [
        Call(
            method="POST",
            url=f"{API}/auth/token",
            data={"username": "a-radiologist", "password": "wrong password, twelve+"},
        )
    ],
    ("POST", f"{API}/centres"): [Call(method="POST", url=f"{API}/centres", json={"name": "C"})],
    ("POST", f"{API}/anonymize/batch"): [
        Call(
            method="POST",
            url=f"{API}/anonymize/batch",
            files=multipart([("probe.dcm", fresh_dicom())]),
        )
    ],
}
"""The calls of unscoped routes that are not a plain GET of their path."""


@pytest.mark.parametrize("route", matrix_params("unscoped"))
async def test_a_route_that_names_no_centre_says_nothing_of_a(
    tenancy: Tenancy, route: tuple[str, str]
) -> None:
    """Health, metrics, docs, models, signing in: nothing of A, for B or for anyone."""
    calls = UNSCOPED_CALLS.get(route) or [Call(method=route[0], url=route[1])]
    failures = []
    for actor in (*ACTORS, "nobody"):
        headers = {} if actor == "nobody" else tenancy.headers(actor)
        for call in calls:
            response = await call.send(tenancy.client, headers)
            found = leaked(response, call, tenancy.a.markers)
            if found or response.status_code >= 500:
                failures.append(f"{actor} {call.url}: {response.status_code} carries {found}")
    assert not failures, "\n".join(failures)


# -- B's own resource with a reference to A's -------------------------------------------------

MIXED: dict[str, Callable[[CentreA, Ids], Call]] = {
    "assigns B's study to A's radiologist": lambda a, b: Call(
        method="PATCH",
        url=f"{API}/studies/{b.study}/assign",
        json={"radiologist_id": a.radiologist},
    ),
    "reads A's instance as one of B's study": lambda a, b: get(
        f"{API}/studies/{b.study}/instances/{a.instance}"
    ),
    "removes A's annotation through B's instance": lambda a, b: Call(
        method="DELETE", url=f"{API}/instances/{b.instance}/annotations/{a.annotation}"
    ),
    "removes A's measurement through B's instance": lambda a, b: Call(
        method="DELETE", url=f"{API}/instances/{b.instance}/measurements/{a.measurement}"
    ),
    "writes an addendum to A's report on B's study": lambda a, b: Call(
        method="POST",
        url=f"{API}/reports",
        json={
            "study_id": b.study,
            "findings": "Addendum.",
            "impression": "None.",
            "amends_report_id": a.report,
        },
    ),
    "exports B's and A's images together": lambda a, b: Call(
        method="POST", url=f"{API}/export", json={"image_ids": [b.instance, a.instance]}
    ),
    "analyses A's series as part of B's study": lambda a, b: Call(
        method="POST",
        url=f"{API}/jobs",
        json={"study_id": b.study, "series_id": a.series, "model_id": MODEL},
    ),
    "retrieves A's series under B's study UID": lambda a, b: get(
        f"/dicomweb/studies/{b.study_uid}/series/{a.series_uid}"
    ),
    "retrieves A's instance under B's study and series UIDs": lambda a, b: get(
        f"/dicomweb/studies/{b.study_uid}/series/{b.series_uid}/instances/{a.sop_uid}"
    ),
    "searches A's series within B's study": lambda a, b: get(
        f"/dicomweb/studies/{b.study_uid}/series", SeriesInstanceUID=a.series_uid
    ),
}
"""Requests about B's own resources that also name one of A's: A's is answered as unknown."""


def found_nothing(response: httpx.Response) -> bool:
    """An empty search result (DICOMweb answers 200 ``[]`` or 204)."""
    return response.status_code == 204 or (response.status_code == 200 and response.json() == [])


@pytest.mark.parametrize("what", list(MIXED))
async def test_a_reference_to_a_inside_b_s_own_request_is_unknown(
    tenancy: Tenancy, what: str
) -> None:
    call = MIXED[what](tenancy.a, tenancy.b)
    changes = call.method != "GET"
    before = await snapshot(tenancy) if changes else None
    failures = []
    for actor in ACTORS:
        response = await call.send(tenancy.client, tenancy.headers(actor))
        status, found = response.status_code, leaked(response, call, tenancy.a.markers)
        if found:
            failures.append(f"{actor}: {status} carries A's data {found}")
        elif status >= 500 or (status < 400 and not found_nothing(response)):
            failures.append(f"{actor}: {status} {response.text[:300]}")
        elif status >= 400:
            problem = await check_as_if_unknown(tenancy, call, actor, response)
            if problem:
                failures.append(f"{actor}: {problem}")
    after = await snapshot(tenancy) if before is not None else None
    if before is not None and after != before:
        failures.append("centre A changed: " + first_difference(before, after))
    assert not failures, "\n".join(failures)


# -- the routes checked on their own ----------------------------------------------------------


async def test_a_presigned_url_of_b_cannot_write_a_staged_key_of_a(tenancy: Tenancy) -> None:
    """``PUT /uploads/{key}`` authenticates by its signature alone: B's signature does not
    cover A's staging key, whatever the key."""
    t = tenancy
    issued = await ok(
        await t.client.post(
            f"{API}/uploads/presign",
            headers=t.world.b.technician.headers,
            json={"file_name": "large.dcm"},
        ),
        201,
    )
    own_key = issued["key"]
    forged = issued["url"].replace(own_key, t.a.staged_key, 1)
    assert forged != issued["url"]

    response = await t.client.put(forged, content=b"not from A")

    assert_problem(response, 401)
    assert not leaked(response, Call(method="PUT", url=forged), t.a.markers)
    stored = await t.world.served.container.blob_store.get(t.a.staged_key)
    assert stored != b"not from A"


async def test_the_socket_of_a_job_of_a_closes_with_4404(tenancy: Tenancy) -> None:
    """As for a job that does not exist: one error frame, then 4404."""
    for actor in ACTORS:
        seen = await socket_answer(tenancy, actor, tenancy.a.job, subscribe=False)
        unknown = await socket_answer(tenancy, actor, str(uuid4()), subscribe=False)

        assert seen == unknown, (actor, seen, unknown)
        frames, close = seen
        assert close == ("websocket.close", 4404), (actor, close)
        assert [f["type"] for f in frames] == ["error"], (actor, frames)


async def test_a_subscription_to_a_job_of_a_gets_an_error(tenancy: Tenancy) -> None:
    """As for a job that does not exist: an error, never the job's state; the socket stays."""
    for actor in ACTORS:
        seen = await socket_answer(tenancy, actor, tenancy.a.job, subscribe=True)
        unknown = await socket_answer(tenancy, actor, str(uuid4()), subscribe=True)

        assert seen == unknown, (actor, seen, unknown)
        frames, _ = seen
        assert [f["type"] for f in frames if f["type"] != "heartbeat"] == ["error"], frames


async def socket_answer(
    t: Tenancy, actor: str, job_id: str, *, subscribe: bool
) -> tuple[list[dict[str, Any]], tuple[str, int | None]]:
    """The frames the server sent (the job id written as ``<job>``) and how it closed."""
    if subscribe:
        message = json.dumps({"action": "subscribe", "job_id": job_id})
        sent = await websocket(t.app, "/ws", t.headers(actor), [message])
    else:
        sent = await websocket(t.app, f"/ws/jobs/{job_id}", t.headers(actor))
    text = json.dumps([m for m in sent if m["type"] == "websocket.send"])
    found = [m for m in t.a.markers if m in text and m != t.a.job]
    assert not found, (actor, found)
    frames = [
        json.loads(m["text"].replace(job_id, "<job>"))
        for m in sent
        if m["type"] == "websocket.send"
    ]
    last = sent[-1]
    return frames, (last["type"], last.get("code"))


async def websocket(
    app: Litestar,
    path: str,
    headers: dict[str, str],
    texts: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Drive the app's websocket over ASGI on this loop (Litestar's test client would run the
    app on another loop, where the container's pool cannot be used): connect, send ``texts``
    and wait for each answer (then 0.2 s more), or without texts wait for the server to close;
    disconnect; what the app sent, in order."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    closed = asyncio.Event()
    replied = asyncio.Event()
    await incoming.put({"type": "websocket.connect"})
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return await incoming.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "websocket.send":
            replied.set()
        if message["type"] == "websocket.close":
            closed.set()

    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        for text in texts:
            replied.clear()
            await incoming.put({"type": "websocket.receive", "text": text})
            await asyncio.wait_for(replied.wait(), timeout=5)
        if not texts:
            await asyncio.wait_for(closed.wait(), timeout=5)
        else:
            await asyncio.sleep(0.2)  # anything the server would send after the answer
    finally:
        await incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, timeout=5)
    return sent


async def test_b_holding_the_same_files_as_a_gets_a_study_of_its_own(tenancy: Tenancy) -> None:
    """The same study sent to both centres: B's upload (multipart or STOW-RS, into A's study
    UID) makes B's own copy; it neither joins A's study nor says that A has it."""
    t, a = tenancy, tenancy.a
    headers = t.world.b.technician.headers
    ids_of_a = {a.study, a.series, a.instance, a.centre, a.study_code}
    before = await snapshot(t)
    a_headers = {**t.world.a.technician.headers, "Accept": "application/dicom+json"}
    metadata_url = f"/dicomweb/studies/{a.study_uid}/metadata"
    a_metadata = await ok(await t.client.get(metadata_url, headers=a_headers))
    made: list[str] = []
    try:
        uploaded = await post_studies(
            t.client, headers, [(f"{n}.dcm", data) for n, data in enumerate(a.study_files)]
        )
        body = await ok(uploaded, 201)
        (study,) = body["studies"]
        made.append(study["id"])
        own = await ok(await t.client.get(f"{API}/studies/{study['id']}", headers=headers))
        assert (own["centre_id"], own["id"]) == (t.b.centre, study["id"])
        assert study["id"] != a.study
        assert not [m for m in ids_of_a if m in uploaded.text]
        assert not any(f.get("duplicate") for f in body["files"]), body["files"]

        stowed = await t.client.post(
            f"/dicomweb/studies/{a.study_uid}",
            content=stow_body([a.study_files[0]]),
            headers=stow_headers(headers),
        )
        assert stowed.status_code == 200, stowed.text
        assert not [m for m in ids_of_a if m in stowed.text]
        listed = await ok(await t.client.get(f"{API}/studies", headers=headers))
        assert {s["id"] for s in listed} == {t.b.study, study["id"]}, "STOW joined B's copy"
        after = await snapshot(t)
        assert after == before, first_difference(before, after)
        # one study UID, two centres: each retrieves its own copy only
        b_headers = {**headers, "Accept": "application/dicom+json"}
        b_metadata = await ok(await t.client.get(metadata_url, headers=b_headers))
        assert len(b_metadata) == len(a.study_files)
        assert await ok(await t.client.get(metadata_url, headers=a_headers)) == a_metadata
        for who in (a_headers, b_headers):
            found = await ok(
                await t.client.get(
                    "/dicomweb/studies", headers=who, params={"StudyInstanceUID": a.study_uid}
                )
            )
            assert [s["00201208"]["Value"] for s in found] == [[len(a.study_files)]]
    finally:
        for study_id in made:
            deleted = await t.client.delete(
                f"{API}/studies/{study_id}", headers=t.world.admin.headers
            )
            assert deleted.status_code == 204, deleted.text
