"""``hounsfield demo``: the whole flow on a synthetic CT study, against a running server.

It draws a phantom with lesions of known size (``model_export.synthetic``), writes it as a DICOM
CT series, uploads it, starts an analysis with the demo model, follows the job live over the
websocket, and prints the lesions found next to the lesions placed, with the URLs to look at.
Everything goes through the public API, so it doubles as a worked example of a client.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from websockets.asyncio.client import connect

from adapters.dicom.writing import ct_series_from_hu
from entrypoints.ingest import Credentials
from model_export.synthetic import Phantom, synthetic_ct

DEMO_CENTRE = "Hounsfield demo centre"
DEMO_MODEL = "demo-lesion-unet"
SHAPE = (48, 192, 192)
SPACING_MM = (2.5, 1.0, 1.0)
FINAL = {"completed", "failed", "cancelled"}


class DemoFailed(Exception):
    """A step of the demo was refused; the message says which and why."""


@dataclass(frozen=True)
class DemoOutcome:
    study_id: str
    study_code: str
    job_id: str
    status: str
    placed: int
    found: int
    analysis_id: str | None


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    return str(body.get("detail") or body.get("title") or response.status_code)


def _check(response: httpx.Response, step: str, *expected: int) -> Any:
    if response.status_code not in (expected or (200,)):
        raise DemoFailed(f"{step}: {_problem(response)} (HTTP {response.status_code})")
    return response.json() if response.content else None


def phantom_series(seed: int) -> tuple[Phantom, list[tuple[str, bytes]]]:
    """A phantom and its DICOM files, shuffled (upload order must not matter)."""
    phantom = synthetic_ct(SHAPE, SPACING_MM, seed=seed)
    z, y, x = phantom.origin_mm
    files = ct_series_from_hu(
        phantom.hu,
        spacing_mm=SPACING_MM,
        origin_lps=(x, y, z),
        patient_name="Demo^Phantom",
        patient_id=f"DEMO-{seed}",
        study_description="Hounsfield demo: synthetic CT with lesions",
    )
    named = [(f"slice-{k:03d}.dcm", data) for k, data in enumerate(files)]
    random.Random(seed).shuffle(named)
    return phantom, named


class DemoClient:
    def __init__(self, client: httpx.AsyncClient, console: Console) -> None:
        self._client = client
        self._console = console
        self.headers: dict[str, str] = {}
        self._token = ""

    async def sign_in(self, credentials: Credentials) -> dict[str, Any]:
        if credentials.api_key:
            self.headers = {"X-API-Key": credentials.api_key}
            self._token = credentials.api_key
        elif credentials.username:
            token = _check(
                await self._client.post(
                    "/api/v1/auth/token",
                    data={"username": credentials.username, "password": credentials.password},
                ),
                "sign-in",
            )
            self._token = token["access_token"]
            self.headers = {"Authorization": f"Bearer {self._token}"}
        else:
            raise DemoFailed("no credentials: give --api-key or --username")
        me = await self._client.get("/api/v1/auth/me", headers=self.headers)
        if me.status_code == 401:
            raise DemoFailed(f"sign-in refused: {_problem(me)}")
        # an API key has no profile (403): it uploads into its own centre
        return dict(_check(me, "who am I")) if me.status_code == 200 else {}

    async def centre_for(self, me: dict[str, Any]) -> str | None:
        """Admins upload into a demo centre (made once); everyone else into their own."""
        if me.get("centre_id") or me.get("role") != "admin":
            return None
        found = _check(
            await self._client.get(
                "/api/v1/centres", params={"name_contains": DEMO_CENTRE}, headers=self.headers
            ),
            "find the demo centre",
        )
        for centre in found:
            if centre["name"] == DEMO_CENTRE:
                return str(centre["id"])
        created = _check(
            await self._client.post(
                "/api/v1/centres", json={"name": DEMO_CENTRE}, headers=self.headers
            ),
            "create the demo centre",
            201,
        )
        return str(created["id"])

    async def upload(self, files: list[tuple[str, bytes]], centre_id: str | None) -> dict[str, Any]:
        form = {"modality": "ct", "urgency": "routine"}
        if centre_id:
            form["centre_id"] = centre_id
        response = await self._client.post(
            "/api/v1/studies",
            headers=self.headers,
            data=form,
            files=[("files", (name, data, "application/dicom")) for name, data in files],
        )
        (study,) = _check(response, "upload", 201)["studies"]
        return dict(study)

    async def start_job(self, study_id: str) -> dict[str, Any]:
        response = await self._client.post(
            "/api/v1/jobs",
            headers=self.headers,
            json={"study_id": study_id, "model_id": DEMO_MODEL},
        )
        return dict(_check(response, "start the analysis", 201))

    async def follow(self, job_id: str) -> str:
        """Watch the job live on ``/ws/jobs/{id}``; poll ``GET /jobs/{id}`` if that fails."""
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=self._console,
        )
        with progress:
            task = progress.add_task("queued", total=1.0)
            try:
                return await self._follow_websocket(job_id, progress, task)
            except (OSError, ValueError, KeyError) as err:
                self._console.print(f"websocket unavailable ({type(err).__name__}); polling")
                return await self._poll(job_id, progress, task)

    async def _follow_websocket(self, job_id: str, progress: Progress, task: Any) -> str:
        base = urlsplit(str(self._client.base_url))
        scheme = "wss" if base.scheme == "https" else "ws"
        url = urlunsplit(
            (scheme, base.netloc, f"/ws/jobs/{job_id}", f"token={quote(self._token)}", "")
        )
        status = "queued"
        async with connect(url, open_timeout=10) as socket:
            async for frame in socket:
                message = json.loads(frame)
                if message.get("type") == "error":
                    raise DemoFailed(f"watching the job: {message.get('detail')}")
                if message.get("type") != "job":
                    continue
                status = message["status"]
                label = message.get("stage") or status
                progress.update(task, completed=message["progress"], description=label)
                if status in FINAL:
                    break
        return status

    async def _poll(self, job_id: str, progress: Progress, task: Any) -> str:
        while True:
            job = _check(
                await self._client.get(f"/api/v1/jobs/{job_id}", headers=self.headers), "job"
            )
            progress.update(task, completed=job["progress"], description=job["stage"] or "")
            if job["status"] in FINAL:
                return str(job["status"])
            await asyncio.sleep(0.5)

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self._client.get(f"/api/v1/jobs/{job_id}", headers=self.headers)
        return dict(_check(response, "job"))

    async def result(self, job_id: str) -> dict[str, Any]:
        response = await self._client.get(f"/api/v1/jobs/{job_id}/result", headers=self.headers)
        return dict(_check(response, "result"))


def _lesion_table(phantom: Phantom, result: dict[str, Any]) -> tuple[Table, Table]:
    placed = Table(title="Lesions placed in the phantom (ground truth)")
    for column in ("#", "kind", "centre x,y,z LPS (mm)", "volume mm3 (voxels)"):
        placed.add_column(column)
    for lesion in phantom.lesions:
        volume = lesion.voxel_count * float(np.prod(phantom.spacing_mm))
        placed.add_row(
            str(lesion.label),
            lesion.kind,
            ", ".join(f"{v:.0f}" for v in reversed(lesion.centre_mm)),  # world z,y,x = LPS
            f"{volume:,.0f}",
        )
    found = Table(title="Lesions found by the demo model (IBSI morphology)")
    for column in (
        "#",
        "centre x,y,z LPS (mm)",
        "volume mm3",
        "diameter mm",
        "sphericity",
        "conf.",
    ):
        found.add_column(column)
    for number, detection in enumerate(result["detections"], start=1):
        metrics = detection.get("metrics") or {}
        centre = metrics.get("centre_of_mass_mm")
        found.add_row(
            str(number),
            ", ".join(f"{v:.0f}" for v in centre) if centre else "-",
            f"{metrics.get('volume_mm3', math.nan):,.0f}",
            f"{metrics.get('diameter_mm', math.nan):.1f}",
            f"{metrics.get('sphericity', math.nan):.2f}",
            f"{detection['confidence']:.2f}",
        )
    return placed, found


async def run_demo(
    url: str, credentials: Credentials, *, seed: int, console: Console
) -> DemoOutcome:
    phantom, files = phantom_series(seed)
    console.print(
        f"Phantom (seed {seed}): {SHAPE[0]} slices of {SHAPE[1]}x{SHAPE[2]}, "
        f"{len(phantom.lesions)} lesion(s), {sum(len(d) for _, d in files) / 1e6:.1f} MB of DICOM"
    )
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as http:
        client = DemoClient(http, console)
        me = await client.sign_in(credentials)
        centre_id = await client.centre_for(me)
        study = await client.upload(files, centre_id)
        console.print(f"Uploaded study {study['code']} ({study['id']})")
        job = await client.start_job(str(study["id"]))
        console.print(f"Analysis job {job['id']} with model {DEMO_MODEL}")
        status = await client.follow(str(job["id"]))
        if status != "completed":
            final = await client.job(str(job["id"]))
            raise DemoFailed(f"the analysis ended {status}: {final.get('error_message')}")
        result = await client.result(str(job["id"]))
    placed, found = _lesion_table(phantom, result)
    console.print(placed)
    console.print(found)
    console.print(result.get("summary", ""))
    links = {
        "study": f"{url}/api/v1/studies/{study['id']}",
        "job": f"{url}/api/v1/jobs/{job['id']}",
        "result": f"{url}/api/v1/jobs/{job['id']}/result",
        "analysis": f"{url}/api/v1/analysis/{result['id']}",
        "segmentation (DICOM SEG)": f"{url}/api/v1/jobs/{job['id']}/mask",
        "AI draft report": f"{url}/api/v1/studies/{study['id']}/ai-report",
        "DICOMweb metadata": f"{url}/dicomweb/studies/{study['study_instance_uid']}/metadata",
        "API documentation": f"{url}/docs",
    }
    for name, link in links.items():
        console.print(f"  {name:26} {link}")
    return DemoOutcome(
        study_id=str(study["id"]),
        study_code=str(study["code"]),
        job_id=str(job["id"]),
        status=status,
        placed=len(phantom.lesions),
        found=len(result["detections"]),
        analysis_id=str(result["id"]),
    )
