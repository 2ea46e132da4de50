"""``hounsfield anonymize``, ``hounsfield export`` and ``hounsfield metadata``: a folder of
files worked through by a pool of processes (pydicom and Pillow hold the GIL), with a progress
bar on stderr. Nothing here talks to a server; the same adapters as the API do the work.

``anonymize`` de-identifies every file in one run (one plan, so one UID map and one date
offset for all processes) and writes ``deidentification-report.json`` next to the files;
``export`` writes PNG/JPEG frames or ``.npy`` arrays (and metadata JSON); ``metadata`` writes
one CSV row per DICOM instance from its header (pixel data is never read).
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from domain.deidentification import (
    ChangeKey,
    ChangeTally,
    DeidentificationOptions,
    DeidentificationPlan,
    RefusedFile,
)
from domain.errors import InvalidInput
from domain.ports.exporting import ExportFormat
from domain.studies import Window

REPORT_NAME = "deidentification-report.json"
DEFAULT_WORKERS = max(1, min(8, os.cpu_count() or 1))
METADATA_COLUMNS = (
    "file",
    "SOPInstanceUID",
    "SOPClassUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "PatientID",
    "PatientName",
    "PatientSex",
    "PatientAge",
    "StudyDate",
    "StudyDescription",
    "SeriesNumber",
    "SeriesDescription",
    "InstanceNumber",
    "AccessionNumber",
    "Manufacturer",
    "BodyPartExamined",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "PhotometricInterpretation",
    "PixelSpacing",
    "SliceThickness",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "WindowCenter",
    "WindowWidth",
    "RescaleSlope",
    "RescaleIntercept",
    "TransferSyntaxUID",
)

T = TypeVar("T")


def files_in(directory: Path) -> list[Path]:
    """Every regular file under ``directory``, hidden ones left out, in a stable order."""
    found = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.is_symlink():
            found.append(path)
    return sorted(found)


# -- progress and the pool --------------------------------------------------------------------


class FolderProgress:
    """A bar on stderr (``rich``, the style of ``hounsfield ingest``), or nothing."""

    def __init__(self, label: str, total: int, *, show: bool) -> None:
        self._bar: Any = None
        if show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> FolderProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1)


def in_pool(
    work: Callable[..., T],
    jobs: Iterable[tuple[Any, ...]],
    *,
    workers: int,
    progress: FolderProgress,
) -> Iterator[T]:
    """``work(*job)`` for every job, in ``workers`` processes (in this one when 1), results
    in job order."""
    listed = list(jobs)
    if workers <= 1:
        for job in listed:
            yield work(*job)
            progress.advance()
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: list[Future[T]] = [pool.submit(work, *job) for job in listed]
        for future in futures:
            result = future.result()
            progress.advance()
            yield result


def _show_progress(choice: bool | None) -> bool:
    return sys.stderr.isatty() if choice is None else choice


# -- anonymize ----------------------------------------------------------------------------------


@dataclass
class FileOutcome:
    changes: list[tuple[ChangeKey, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: str | None = None


def anonymize_file(source: str, target: str, plan: DeidentificationPlan) -> FileOutcome:
    """De-identify one file into ``target`` (runs in a worker process)."""
    from adapters.dicom.deidentify import PydicomDeidentifier

    try:
        result = PydicomDeidentifier().deidentify(Path(source).read_bytes(), plan)
    except InvalidInput as err:
        return FileOutcome(refused=err.detail)
    except OSError as err:
        return FileOutcome(refused=f"cannot be read: {err.strerror or err}")
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(result.data)
    return FileOutcome(changes=result.changes, warnings=result.warnings)


def run_anonymize(
    in_dir: Path,
    out_dir: Path,
    options: DeidentificationOptions,
    *,
    keep_names: bool,
    workers: int,
    show_progress: bool,
) -> ChangeTally:
    """De-identify every file of ``in_dir`` into ``out_dir``; returns what was done."""
    sources = files_in(in_dir)
    plan = DeidentificationPlan.fresh(options)
    width = max(5, len(str(len(sources))))
    targets = [
        out_dir / (source.relative_to(in_dir) if keep_names else f"{n:0{width}d}.dcm")
        for n, source in enumerate(sources, start=1)
    ]
    tally = ChangeTally()
    jobs = [(str(s), str(t), plan) for s, t in zip(sources, targets, strict=True)]
    with FolderProgress("anonymize", len(jobs), show=show_progress) as progress:
        outcomes = in_pool(anonymize_file, jobs, workers=workers, progress=progress)
        for source, outcome in zip(sources, outcomes, strict=True):
            if outcome.refused is not None:
                name = str(source.relative_to(in_dir))
                tally.refused.append(RefusedFile(name=name, reason=outcome.refused))
                continue
            tally.merge(outcome.changes)
            for warning in outcome.warnings:
                tally.warnings[warning] += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    report = msgspec.json.format(msgspec.json.encode(tally.report(options)), indent=2)
    (out_dir / REPORT_NAME).write_bytes(report)
    return tally


# -- export -------------------------------------------------------------------------------------


def export_file(
    source: str, target_base: str, format: ExportFormat, window: Window | None, metadata: bool
) -> str | None:
    """Export one file's frames next to ``target_base``; the reason when it cannot be read."""
    from adapters.images.export import PillowImageCodec
    from adapters.images.formats import read_image
    from domain.services.export import export_frames

    codec = PillowImageCodec()
    try:
        image = read_image(Path(source).read_bytes(), require_pixel_data=True)
        frames = image.frames()
        exported, windows = export_frames(frames, codec, format=format, window=window)
    except InvalidInput as err:
        return err.detail
    except (OSError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    base = Path(target_base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for suffix, content in exported:
        if suffix == "npy":
            base.with_name(base.name + ".npy").write_bytes(content)
        else:
            (base / suffix).parent.mkdir(parents=True, exist_ok=True)
            (base / suffix).write_bytes(content)
    if metadata:
        fields = image.fields
        document = {
            "file": Path(source).name,
            "format": image.format.value,
            "rows": frames.rows,
            "columns": frames.columns,
            "number_of_frames": frames.number_of_frames,
            "photometric_interpretation": frames.photometric_interpretation,
            "pixel_spacing": fields.instance.pixel_spacing,
            "windows": windows,
            "header": fields.header,
        }
        encoded = msgspec.json.format(msgspec.json.encode(document), indent=2)
        base.with_name(base.name + ".json").write_bytes(encoded)
    return None


def run_export(
    in_dir: Path,
    out_dir: Path,
    *,
    format: ExportFormat,
    window: Window | None,
    metadata: bool,
    workers: int,
    show_progress: bool,
) -> tuple[int, list[RefusedFile]]:
    sources = files_in(in_dir)
    jobs = [
        (str(s), str(out_dir / s.relative_to(in_dir)), format, window, metadata) for s in sources
    ]
    refused: list[RefusedFile] = []
    with FolderProgress("export", len(jobs), show=show_progress) as progress:
        for source, reason in zip(
            sources, in_pool(export_file, jobs, workers=workers, progress=progress), strict=True
        ):
            if reason is not None:
                refused.append(RefusedFile(name=str(source.relative_to(in_dir)), reason=reason))
    return len(sources) - len(refused), refused


# -- metadata -----------------------------------------------------------------------------------


def header_row(source: str) -> dict[str, str] | None:
    """The CSV row of one DICOM file, or None when it is not DICOM (header only)."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError):
        return None
    if "SOPInstanceUID" not in ds:
        return None
    row = {}
    for column in METADATA_COLUMNS[1:]:
        meta = getattr(ds, "file_meta", None)
        holder = meta if column == "TransferSyntaxUID" and meta is not None else ds
        try:
            value = holder.get(column, "")
        except Exception:  # a malformed value: leave its cell empty
            value = ""
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            row[column] = "\\".join(str(v) for v in value)
        else:
            row[column] = "" if value is None else str(value)
    return row


def run_metadata(
    in_dir: Path, out_csv: Path, *, workers: int, show_progress: bool
) -> tuple[int, int]:
    """Write the rows; returns (instances written, files that are not DICOM)."""
    sources = files_in(in_dir)
    written = skipped = 0
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with (
        out_csv.open("w", newline="", encoding="utf-8") as handle,
        FolderProgress("metadata", len(sources), show=show_progress) as progress,
    ):
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        rows = in_pool(header_row, [(str(s),) for s in sources], workers=workers, progress=progress)
        for source, row in zip(sources, rows, strict=True):
            if row is None:
                skipped += 1
                continue
            writer.writerow({"file": str(source.relative_to(in_dir)), **row})
            written += 1
    return written, skipped


# -- the commands -------------------------------------------------------------------------------

_IN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_OUT_DIR = click.Path(file_okay=False, path_type=Path)
_workers = click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Worker processes.",
)
_progress = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar [default: when stderr is a terminal].",
)


@click.command("anonymize")
@click.argument("in_dir", type=_IN_DIR)
@click.argument("out_dir", type=_OUT_DIR)
@click.option(
    "--dates",
    type=click.Choice(["remove", "keep", "shift"]),
    default="remove",
    show_default=True,
    help="The profile's action, Retain Full Dates, or Retain Modified Dates (one offset).",
)
@click.option("--shift-days", type=int, default=None, help="With --dates shift: the offset.")
@click.option("--retain-uids", is_flag=True, help="Retain UIDs Option: keep the original UIDs.")
@click.option(
    "--keep-names",
    is_flag=True,
    help="Keep the input's file names and folders (they may name the patient); "
    "default: numbered 00001.dcm ...",
)
@_workers
@_progress
def anonymize_command(
    in_dir: Path,
    out_dir: Path,
    dates: str,
    shift_days: int | None,
    retain_uids: bool,
    keep_names: bool,
    workers: int,
    progress: bool | None,
) -> None:
    """De-identify every DICOM file of IN_DIR into OUT_DIR (PS3.15 Basic Profile)."""
    try:
        options = msgspec.convert(
            {"dates": dates, "date_shift_days": shift_days, "retain_uids": retain_uids},
            DeidentificationOptions,
        )
    except msgspec.ValidationError as err:
        raise click.UsageError(str(err)) from None
    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise click.UsageError("OUT_DIR must not be IN_DIR or inside it")
    tally = run_anonymize(
        in_dir,
        out_dir,
        options,
        keep_names=keep_names,
        workers=workers,
        show_progress=_show_progress(progress),
    )
    click.echo(
        f"{tally.files} file(s) de-identified into {out_dir}, {len(tally.refused)} refused; "
        f"report: {out_dir / REPORT_NAME}",
        err=True,
    )
    for refused in tally.refused[:20]:
        click.echo(f"  refused {refused.name}: {refused.reason}", err=True)
    if tally.refused:
        raise SystemExit(1)


@click.command("export")
@click.argument("in_dir", type=_IN_DIR)
@click.argument("out_dir", type=_OUT_DIR)
@click.option(
    "--format",
    "format_",
    type=click.Choice([f.value for f in ExportFormat]),
    default="png",
    show_default=True,
)
@click.option("--window", type=float, default=None, help="Window width (with --level).")
@click.option("--level", type=float, default=None, help="Window centre (with --window).")
@click.option("--metadata", is_flag=True, help="Write <file>.json with geometry and header.")
@_workers
@_progress
def export_command(
    in_dir: Path,
    out_dir: Path,
    format_: str,
    window: float | None,
    level: float | None,
    metadata: bool,
    workers: int,
    progress: bool | None,
) -> None:
    """Export the images of IN_DIR (DICOM, NIfTI, PNG, JPEG) as PNG, JPEG or .npy."""
    if (window is None) != (level is None):
        raise click.UsageError("--window and --level go together")
    chosen = None
    if window is not None and level is not None:
        if window <= 0:
            raise click.UsageError("--window must be > 0")
        chosen = Window(center=level, width=window)
    done, refused = run_export(
        in_dir,
        out_dir,
        format=ExportFormat(format_),
        window=chosen,
        metadata=metadata,
        workers=workers,
        show_progress=_show_progress(progress),
    )
    click.echo(f"{done} image(s) exported into {out_dir}, {len(refused)} skipped", err=True)
    for item in refused[:20]:
        click.echo(f"  skipped {item.name}: {item.reason}", err=True)


@click.command("metadata")
@click.argument("in_dir", type=_IN_DIR)
@click.argument("out_csv", type=click.Path(dir_okay=False, path_type=Path))
@_workers
@_progress
def metadata_command(in_dir: Path, out_csv: Path, workers: int, progress: bool | None) -> None:
    """Write one CSV row per DICOM instance of IN_DIR (header fields, no pixel data)."""
    written, skipped = run_metadata(
        in_dir, out_csv, workers=workers, show_progress=_show_progress(progress)
    )
    click.echo(
        f"{written} instance(s) written to {out_csv}, {skipped} non-DICOM file(s) skipped", err=True
    )


FOLDER_COMMANDS = (anonymize_command, export_command, metadata_command)
