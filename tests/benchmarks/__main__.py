"""``just bench``: run every benchmark and (re)write docs/benchmarks.md.

    .venv/bin/python -m tests.benchmarks [--slices 300] [--levels 1,4,8] [--repeat 2]

Each benchmark runs in its own temporary directory; one that cannot run (Orthanc not
installed, a server that does not start) is reported on the page instead of stopping the rest.
Timings are only ever written here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks import (
    analysis,
    deidentify,
    foundation,
    ingest_comparison,
    jobs,
    live_progress,
)
from tests.benchmarks.dicomweb import benchmark as dicomweb_benchmark
from tests.benchmarks.machine import describe
from tests.benchmarks.results import Table

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "benchmarks.md"


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: levels are positive integers")
    return levels


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--slices", type=int, default=300, help="slices in the CT series")
    parser.add_argument(
        "--levels", type=_levels, default=[1, 4, 8], help="parallel requests, e.g. 1,4,8"
    )
    parser.add_argument(
        "--batch-sizes",
        type=_levels,
        default=[16, 1],
        help="files per Hounsfield request, e.g. 16,1",
    )
    parser.add_argument(
        "--workers",
        type=_levels,
        default=sorted({1, ingest_comparison.cores()}),
        help="API processes of the Hounsfield servers, e.g. 1,2 (default: 1 and the cores)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration")
    parser.add_argument(
        "--ingest-repeat",
        type=int,
        default=3,
        help="interleaved rounds of the ingest comparison (it is the noisiest benchmark)",
    )
    parser.add_argument(
        "--events", type=int, default=300, help="progress events timed to a websocket client"
    )
    parser.add_argument("--no-orthanc", action="store_true", help="skip the Orthanc comparison")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Markdown file to write")
    return parser.parse_args(argv)


def _attempt(title: str, run: Callable[[Path], Table]) -> Table:
    """Run one benchmark in a fresh temporary directory; a failure becomes a remark."""
    print(f"benchmark: {title} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="hounsfield-bench-"))
    try:
        table = run(workdir)
    except Exception as err:
        traceback.print_exc()
        table = Table(title=title, headers=[])
        table.remarks.append(f"Could not run: {type(err).__name__}: {' '.join(str(err).split())}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"benchmark: {title} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return table


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    machine = describe(REPO)
    command = " ".join(["python -m tests.benchmarks", *argv])

    ingest_tables: list[Table] = []

    def run_ingest(workdir: Path) -> Table:
        comparison = ingest_comparison.benchmark(
            workdir,
            slices=args.slices,
            levels=args.levels,
            batch_sizes=args.batch_sizes,
            workers=args.workers,
            repeat=args.ingest_repeat,
            with_orthanc=not args.no_orthanc,
        )
        first, *rest = comparison.tables
        ingest_tables.extend(rest)
        return first

    tables = [_attempt("Ingest over HTTP, Hounsfield and Orthanc", run_ingest)]
    tables.extend(ingest_tables)
    tables.append(_attempt("Blob store", lambda w: foundation.blob_store(w, slices=args.slices)))
    tables.append(_attempt("Repository", lambda w: foundation.repositories(w, slices=args.slices)))
    tables.append(
        _attempt("Live progress", lambda w: live_progress.benchmark(w, events=args.events))
    )
    tables.append(_attempt("Jobs", lambda w: jobs.benchmark(w)))
    tables.append(
        _attempt(
            "DICOMweb",
            lambda w: dicomweb_benchmark(w, slices=args.slices, with_orthanc=not args.no_orthanc),
        )
    )
    more_analysis: list[Table] = []

    def run_analysis(workdir: Path) -> Table:
        first, *rest = analysis.benchmark(workdir, repeat=args.repeat)
        more_analysis.extend(rest)
        return first

    tables.append(_attempt("Analysis", run_analysis))
    tables.extend(more_analysis)

    tables.append(
        _attempt(
            "De-identification",
            lambda w: deidentify.benchmark(w, slices=args.slices, repeat=args.repeat),
        )
    )

    lines = [
        "# Benchmarks",
        "",
        "Written by `just bench` (`.venv/bin/python -m tests.benchmarks`); run it again to"
        " refresh this page. Timings live here, never in tests.",
        "",
        f"- command: `{command}`",
        *machine.lines(),
        "- the benchmark client and the servers share this machine's cores",
        "",
    ]
    for table in tables:
        lines += table.markdown()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
