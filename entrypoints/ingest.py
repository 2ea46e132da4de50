"""``hounsfield ingest DIR``: upload a folder of images to a Hounsfield server.

The folder is walked recursively. DICOM files are grouped by ``StudyInstanceUID`` (read from
the header alone: pydicom stops before the pixel data) and sent in batches of a few files per
``POST /api/v1/studies``; any other file (NIfTI, PNG, JPEG, or something the server will
refuse) goes alone. Batches are uploaded by a bounded number of parallel requests.

Resending is safe: the server keys instances by their UIDs, so an instance it already holds is
counted as a duplicate, not stored twice. That makes every request retryable: 429 waits for
``Retry-After``; 5xx answers and connection failures are retried with exponential backoff.

A batch the server refuses (4xx) is all-or-nothing on the server side. When the problem
document names one of the batch's files, that file is recorded as rejected with the server's
reason and the rest of the batch is sent again; when it names none, the batch is split in
halves until the refused files are found.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import click
import httpx
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

API_PATH = "/api/v1"
STUDIES_PATH = f"{API_PATH}/studies"
TOKEN_PATH = f"{API_PATH}/auth/token"
HEALTH_PATH = "/health"

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_CONCURRENCY = 4
DEFAULT_BATCH_SIZE = 16
DEFAULT_BATCH_BYTES = 64 * 1000 * 1000
"""A batch stops growing at this many bytes, well under the server's request limit."""
DEFAULT_RETRIES = 5
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_SKIPPED_NAMES = frozenset({"DICOMDIR"})
"""A DICOMDIR indexes the files around it; it is not an image."""


class IngestAborted(click.ClickException):
    """The ingest cannot go on (server unreachable, credentials refused); one line."""


@dataclass(frozen=True)
class StudyFields:
    """Optional study and patient fields, sent with every request as form fields."""

    patient_name: str | None = None
    patient_id: str | None = None
    patient_age: str | None = None
    patient_sex: str | None = None
    modality: str | None = None
    description: str | None = None
    urgency: str | None = None

    def form(self) -> dict[str, str]:
        """The fields that were given, as multipart form fields."""
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class Credentials:
    """An API key (``hf_...``), or a username and password to get a bearer token with."""

    api_key: str | None = None
    username: str | None = None
    password: str | None = None


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class LocalFile:
    path: Path
    name: str
    """The path relative to the ingested folder (POSIX separators): the multipart file name."""
    size_bytes: int
    is_dicom: bool


@dataclass(frozen=True)
class Batch:
    """The files of one request: DICOM files of one study, or one other file."""

    files: tuple[LocalFile, ...]
    study_instance_uid: str | None = None

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


@dataclass(frozen=True)
class Rejection:
    name: str
    reason: str
    status: int | None = None
    """The HTTP status the server answered; ``None`` when no answer came (or read failed)."""


@dataclass(frozen=True)
class Plan:
    batches: list[Batch]
    unreadable: list[Rejection]

    @property
    def files(self) -> int:
        return sum(len(b.files) for b in self.batches)

    @property
    def size_bytes(self) -> int:
        return sum(b.size_bytes for b in self.batches)


def walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` in a stable order; hidden entries and DICOMDIRs skipped."""
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.upper() in _SKIPPED_NAMES:
                continue
            path = Path(directory, name)
            if path.is_file():
                yield path


def study_uid_of(path: Path) -> str | None:
    """The ``StudyInstanceUID`` of a DICOM Part 10 file, or None for anything else.

    Reads only the file meta and the header up to that tag, never the pixel data.
    """
    try:
        dataset = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
    except (InvalidDicomError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        return None
    uid = dataset.get("StudyInstanceUID")
    return str(uid) if uid else ""


def plan_ingest(
    root: Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> Plan:
    """Group the files under ``root`` into requests.

    DICOM files of one study share batches of at most ``batch_size`` files and about
    ``batch_bytes`` bytes; a DICOM file without a StudyInstanceUID, and every other file,
    is a batch of its own (the server says what is wrong with it).
    """
    by_study: dict[str, list[LocalFile]] = {}
    single: list[Batch] = []
    unreadable: list[Rejection] = []
    for path in walk(root):
        name = path.relative_to(root).as_posix()
        try:
            size = path.stat().st_size
            uid = study_uid_of(path)
        except OSError as err:
            unreadable.append(Rejection(name, f"cannot read: {err.strerror or err}"))
            continue
        local = LocalFile(path=path, name=name, size_bytes=size, is_dicom=uid is not None)
        if uid:
            by_study.setdefault(uid, []).append(local)
        else:
            single.append(Batch(files=(local,)))
    batches: list[Batch] = []
    for uid, files in by_study.items():
        chunk: list[LocalFile] = []
        for local in files:
            too_big = sum(f.size_bytes for f in chunk) + local.size_bytes > batch_bytes
            if chunk and (len(chunk) >= batch_size or too_big):
                batches.append(Batch(files=tuple(chunk), study_instance_uid=uid))
                chunk = []
            chunk.append(local)
        if chunk:
            batches.append(Batch(files=tuple(chunk), study_instance_uid=uid))
    return Plan(batches=batches + single, unreadable=unreadable)


# --------------------------------------------------------------------------- outcome


@dataclass
class Summary:
    files: int = 0
    size_bytes: int = 0
    stored: int = 0
    duplicates: int = 0
    requests: int = 0
    retries: int = 0
    studies: set[str] = field(default_factory=set)
    rejected: list[Rejection] = field(default_factory=list)
    failed: list[Rejection] = field(default_factory=list)
    """Files the server could not take (5xx or no answer after every retry)."""
    elapsed_s: float = 0.0
    aborted: str | None = None
    """Why the ingest stopped early, if it did."""

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.failed or self.aborted)

    def lines(self) -> list[str]:
        rate = self.files / self.elapsed_s if self.elapsed_s > 0 else 0.0
        mb = self.size_bytes / 1e6
        mb_rate = mb / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out = [
            f"stored      {self.stored}",
            f"duplicates  {self.duplicates}",
            f"rejected    {len(self.rejected)}",
        ]
        out += [f"  {r.name}: {_with_status(r)}" for r in sorted(self.rejected, key=_by_name)]
        if self.failed:
            out.append(f"failed      {len(self.failed)}")
            out += [f"  {r.name}: {_with_status(r)}" for r in sorted(self.failed, key=_by_name)]
        out.append(f"studies     {len(self.studies)}")
        out.append(
            f"elapsed     {self.elapsed_s:.1f} s for {self.files} files ({mb:.1f} MB):"
            f" {rate:.1f} files/s, {mb_rate:.1f} MB/s"
        )
        return out


def _by_name(rejection: Rejection) -> str:
    return rejection.name


def _with_status(rejection: Rejection) -> str:
    return f"{rejection.reason} ({rejection.status})" if rejection.status else rejection.reason


class Progress(Protocol):
    def advance(self, files: int, size_bytes: int) -> None: ...


class _NoProgress:
    def advance(self, files: int, size_bytes: int) -> None:
        pass


# --------------------------------------------------------------------------- uploading


class _Refused(Exception):
    """The server refused the credentials or has no studies route: stop everything."""


class Uploader:
    """Sends batches to ``POST /api/v1/studies`` with retries; records the outcome."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        credentials: Credentials,
        fields: StudyFields,
        summary: Summary,
        progress: Progress,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._form = fields.form()
        self._summary = summary
        self._progress = progress
        self._retries = retries
        self._sleep = sleep
        self._auth: dict[str, str] = {}
        self._sign_in_lock = asyncio.Lock()

    async def sign_in(self) -> None:
        """Turn the credentials into request headers (a token costs one request)."""
        credentials = self._credentials
        if credentials.api_key:
            self._auth = {"X-API-Key": credentials.api_key}
            return
        if not credentials.username:
            raise IngestAborted(
                "no credentials: give --api-key (or HOUNSFIELD_API_KEY) or --username"
            )
        response = await self._request(
            "POST",
            TOKEN_PATH,
            data={"username": credentials.username, "password": credentials.password or ""},
        )
        if response.status_code != 200:
            raise IngestAborted(f"sign-in as {credentials.username!r} refused: {_detail(response)}")
        self._auth = {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def send(self, batch: Batch) -> None:
        """Upload one batch; refused files are narrowed down and recorded one by one."""
        pending = [batch.files]
        while pending:
            files = pending.pop()
            response = await self._post(files)
            if response is None:
                continue
            if response.is_success:
                self._count_success(files, response)
                continue
            culprit = _named_file(response, files)
            if culprit is not None:
                reason = _reason_for(culprit, _detail(response))
                self._record(self._summary.rejected, [culprit], reason, response.status_code)
                rest = tuple(f for f in files if f is not culprit)
                if rest:
                    pending.append(rest)
            elif len(files) > 1:
                middle = len(files) // 2
                pending += [files[middle:], files[:middle]]
            else:
                self._reject(files, response)

    async def _post(self, files: Sequence[LocalFile]) -> httpx.Response | None:
        """POST the files; None when they were recorded as failed (nothing more to do)."""
        try:
            contents = await asyncio.to_thread(_read_all, files)
        except OSError as err:
            self._record(self._summary.failed, files, f"cannot read: {err.strerror or err}", None)
            return None
        multipart = [
            ("files", (f.name, data, "application/dicom" if f.is_dicom else _OCTET))
            for f, data in zip(files, contents, strict=True)
        ]
        response = await self._request(
            "POST", STUDIES_PATH, data=self._form, files=multipart, authenticated=True
        )
        if response.status_code in (401, 403):
            raise _Refused(f"the server refused the credentials: {_detail(response)}")
        if response.status_code in (404, 405):
            raise _Refused(
                f"{self._client.base_url} has no POST {STUDIES_PATH} route"
                f" ({response.status_code}): is it a Hounsfield server?"
            )
        if response.status_code >= 500:
            self._record(self._summary.failed, files, _detail(response), response.status_code)
            return None
        return response

    async def _request(
        self, method: str, path: str, *, authenticated: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request with retries: 429 after Retry-After, 5xx and transport errors with
        exponential backoff. 401 with a password signs in again once."""
        signed_in_again = False
        attempt = 0
        while True:
            headers = self._auth if authenticated else {}
            try:
                response = await self._client.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as err:
                if attempt >= self._retries:
                    raise _Unreachable(_transport_reason(err)) from err
                await self._wait(attempt, None)
                attempt += 1
                continue
            finally:
                self._summary.requests += 1
            status = response.status_code
            # Being told to slow down is no failure: 429 gets a longer leash than errors.
            limit = self._retries * 4 if status == 429 else self._retries
            if (status == 429 or status in _TRANSIENT_STATUSES) and attempt < limit:
                await self._wait(attempt, _retry_after_s(response))
                attempt += 1
                continue
            password = self._credentials.password
            if status == 401 and authenticated and password is not None and not signed_in_again:
                signed_in_again = True  # the token expired during a long ingest
                async with self._sign_in_lock:
                    await self.sign_in()
                continue
            return response

    async def _wait(self, attempt: int, retry_after_s: float | None) -> None:
        self._summary.retries += 1
        if retry_after_s is None:
            retry_after_s = min(MAX_BACKOFF_S, 0.5 * 2**attempt) * (0.5 + random.random())
        await self._sleep(min(retry_after_s, MAX_RETRY_AFTER_S))

    def _count_success(self, files: Sequence[LocalFile], response: httpx.Response) -> None:
        stored, duplicates, studies = _counts(response, len(files))
        self._summary.stored += stored
        self._summary.duplicates += duplicates
        self._summary.studies.update(studies)
        self._progress.advance(len(files), sum(f.size_bytes for f in files))

    def _reject(self, files: Sequence[LocalFile], response: httpx.Response) -> None:
        self._record(self._summary.rejected, files, _detail(response), response.status_code)

    def _record(
        self,
        into: list[Rejection],
        files: Sequence[LocalFile],
        reason: str,
        status: int | None,
    ) -> None:
        into.extend(Rejection(f.name, reason, status) for f in files)
        self._progress.advance(len(files), sum(f.size_bytes for f in files))


class _Unreachable(Exception):
    """No answer from the server after every retry."""


_OCTET = "application/octet-stream"


def _read_all(files: Sequence[LocalFile]) -> list[bytes]:
    return [f.path.read_bytes() for f in files]


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), else None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(response: httpx.Response) -> str:
    """The problem document's detail (or title), on one line."""
    problem = _problem(response)
    text = problem.get("detail") or problem.get("title")
    if not isinstance(text, str) or not text.strip():
        text = response.reason_phrase or f"HTTP {response.status_code}"
    return " ".join(text.split())


def _named_file(response: httpx.Response, files: Sequence[LocalFile]) -> LocalFile | None:
    """The file of ``files`` a refusal names: a ``file``/``filename`` member of the problem
    document, else the file name quoted in its detail."""
    problem = _problem(response)
    by_name = {f.name: f for f in files}
    for key in ("file", "filename", "file_name"):
        value = problem.get(key)
        if isinstance(value, str) and value in by_name:
            return by_name[value]
    detail = problem.get("detail")
    if not isinstance(detail, str):
        return None
    named = [f for f in files if f"'{f.name}'" in detail or f'"{f.name}"' in detail]
    return named[0] if len(named) == 1 else None


def _reason_for(file: LocalFile, detail: str) -> str:
    """The detail without a leading "file 'NAME' was refused: " (the summary names it)."""
    for quoted in (f"'{file.name}'", f'"{file.name}"'):
        head, found, tail = detail.partition(quoted)
        if found and head.strip().lower() in ("", "file") and ": " in tail:
            return tail.split(": ", 1)[1]
    return detail


def _counts(response: httpx.Response, sent: int) -> tuple[int, int, set[str]]:
    """(stored, duplicates, study ids) from a success answer.

    Counts may be numbers or lists; a body without them counts every file as stored.
    """
    body = _problem(response)

    def number(key: str) -> int | None:
        value = body.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, list):
            return len(value)
        return None

    stored, duplicates = number("stored"), number("duplicates")
    if stored is None and duplicates is None:
        stored, duplicates = sent, 0
    studies: set[str] = set()
    for key in ("studies", "created", "joined"):
        for study in body.get(key) or ():
            if isinstance(study, dict) and isinstance(study.get("id"), str):
                studies.add(study["id"])
    if isinstance(body.get("study_id"), str):
        studies.add(body["study_id"])
    return stored or 0, duplicates or 0, studies


def _transport_reason(err: httpx.TransportError) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def normalise_url(url: str) -> str:
    """The server's root URL: no trailing slash, no ``/api/v1`` suffix."""
    url = url.strip().rstrip("/")
    if url.endswith(API_PATH):
        url = url[: -len(API_PATH)]
    if not url.startswith(("http://", "https://")):
        raise IngestAborted(f"--url {url!r} must start with http:// or https://")
    return url


async def ingest(
    plan: Plan,
    *,
    url: str,
    credentials: Credentials,
    fields: StudyFields = StudyFields(),
    concurrency: int = DEFAULT_CONCURRENCY,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
    timeout_s: float = 300.0,
) -> Summary:
    """Upload ``plan`` to the server at ``url`` with at most ``concurrency`` requests in flight.

    Raises:
        IngestAborted: the server cannot be reached at all, or refuses the credentials
            before anything was sent.
    """
    summary = Summary(files=plan.files, size_bytes=plan.size_bytes)
    summary.rejected.extend(plan.unreadable)
    started = time.perf_counter()
    base = normalise_url(url)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(timeout_s, connect=10.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        try:
            await client.get(HEALTH_PATH)
        except httpx.TransportError as err:
            raise IngestAborted(f"cannot reach {base}: {_transport_reason(err)}") from None
        uploader = Uploader(
            client,
            credentials=credentials,
            fields=fields,
            summary=summary,
            progress=progress or _NoProgress(),
            retries=retries,
        )
        try:
            await uploader.sign_in()
        except _Unreachable as err:
            raise IngestAborted(f"cannot reach {base}: {err}") from None
        queue = list(reversed(plan.batches))

        async def worker() -> None:
            while queue and summary.aborted is None:
                batch = queue.pop()
                try:
                    await uploader.send(batch)
                except _Unreachable as err:
                    summary.aborted = f"lost the connection to {base}: {err}"
                except _Refused as err:
                    summary.aborted = str(err)

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    summary.elapsed_s = time.perf_counter() - started
    return summary


# --------------------------------------------------------------------------- command line


class RichProgress:
    """A progress bar on stderr: files and megabytes sent, rate, time left."""

    def __init__(self, *, files: int, size_bytes: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as Bar

        self._files = files
        self._done = 0
        self._bar = Bar(
            TextColumn("[bold]ingest"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("ingest", total=size_bytes, files=self._label())

    def _label(self) -> str:
        return f"{self._done}/{self._files} files"

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def advance(self, files: int, size_bytes: int) -> None:
        self._done += files
        self._bar.update(self._task, advance=size_bytes, files=self._label())


def run_ingest(
    directory: Path,
    *,
    url: str,
    credentials: Credentials,
    fields: StudyFields,
    concurrency: int,
    batch_size: int,
    show_progress: bool | None = None,
) -> bool:
    """What ``hounsfield ingest`` does: plan, upload, print the summary; True when every
    file was stored or already there."""
    normalise_url(url)  # a bad URL fails before the folder is read
    click.echo(f"scanning {directory} ...", err=True)
    plan = plan_ingest(directory, batch_size=batch_size)
    if plan.files == 0 and not plan.unreadable:
        raise IngestAborted(f"no files to ingest in {directory}")
    if show_progress is None:
        show_progress = click.get_text_stream("stderr").isatty()
    click.echo(
        f"uploading {plan.files} files ({plan.size_bytes / 1e6:.1f} MB) in"
        f" {len(plan.batches)} requests to {normalise_url(url)}",
        err=True,
    )
    if show_progress:
        with RichProgress(files=plan.files, size_bytes=plan.size_bytes) as bar:
            summary = _run(plan, url, credentials, fields, concurrency, bar)
    else:
        summary = _run(plan, url, credentials, fields, concurrency, None)
    click.echo("\n".join(summary.lines()))
    if summary.aborted:
        raise IngestAborted(summary.aborted)
    return summary.ok


def _run(
    plan: Plan,
    url: str,
    credentials: Credentials,
    fields: StudyFields,
    concurrency: int,
    progress: Progress | None,
) -> Summary:
    return asyncio.run(
        ingest(
            plan,
            url=url,
            credentials=credentials,
            fields=fields,
            concurrency=concurrency,
            progress=progress,
        )
    )
