"""The ``hounsfield`` command line.

A configuration or connection problem stops the command with one line on stderr and exit
status 1, never a traceback: settings, database and storage errors are caught here, at the
boundary, and nowhere else.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
import msgspec
import uvicorn

from adapters.inference import FilesystemModelRegistry, OnnxInferenceEngine
from adapters.postgres.migrate import MigrationChecksumMismatch
from adapters.postgres.migrate import migrate as apply_migrations
from domain.errors import DomainError
from domain.identity import SYSTEM_PRINCIPAL
from domain.services.models import ModelCatalogue
from domain.studies import Modality, Sex, Urgency
from entrypoints import ingest as ingest_client
from entrypoints.api_processes import SERVER_OPTIONS, serve_processes
from entrypoints.bootstrap import (
    BUNDLED_MODELS_DIR,
    bootstrap,
    ensure_private_dir,
    start_embedded_postgres,
)
from entrypoints.folder_tools import FOLDER_COMMANDS
from entrypoints.http import create_app
from entrypoints.jobs import api_process_sweeps
from entrypoints.logging import configure_logging
from entrypoints.settings import MAX_HTTP_WORKERS, Settings, SettingsError, redact_url
from entrypoints.worker import run_workers

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class _Options:
    config_file: Path | None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: $HOUNSFIELD_CONFIG, else ./hounsfield.toml if present).",
)
@click.version_option(package_name="hounsfield", prog_name="hounsfield")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Hounsfield: medical-imaging AI platform.

    Settings come from HOUNSFIELD_* environment variables and an optional TOML file; with
    none set, everything runs on the embedded default in ./var.
    """
    ctx.obj = _Options(config_file=config_file)


@cli.command()
@click.option("--host", default=None, help="Interface to listen on [default: HOUNSFIELD_HOST].")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on [default: HOUNSFIELD_PORT].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_HTTP_WORKERS),
    default=None,
    help="API processes on the one port; the machine's cores is a good number"
    " [default: HOUNSFIELD_HTTP_WORKERS, 1].",
)
@click.pass_obj
def serve(options: _Options, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the HTTP API until SIGTERM or Ctrl-C (the embedded PostgreSQL stops with it)."""
    with _clean_failures():
        settings = _settings(options)
        settings = msgspec.structs.replace(
            settings,
            host=host if host is not None else settings.host,
            port=port if port is not None else settings.port,
            http_workers=workers if workers is not None else settings.http_workers,
        )
        configure_logging(level=settings.log_level, log_format=settings.effective_log_format)
        first_start = not settings.data_dir.exists()
        # Claim the port before starting anything: a busy port fails fast, in one line.
        listener = _listen(settings.host, settings.port)
        with listener:
            if settings.http_workers == 1:
                _run_until_stopped(lambda: _serve(settings, listener, first_start=first_start))
                return

            def announce(password: str | None) -> None:
                _print_banner(settings, first_start=first_start)
                _print_admin_password(password)

            serve_processes(
                settings,
                listener,
                workers=settings.http_workers,
                config_file=options.config_file,
                announce=announce,
            )


@cli.command()
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes (each with its own database pool and broker connection).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=2,
    show_default=True,
    help="Jobs each process runs at once.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(0, 3600),
    default=30.0,
    show_default=True,
    help="Seconds a running job gets to finish after SIGTERM before it is handed back.",
)
@click.pass_obj
def worker(options: _Options, processes: int, threads: int, grace_s: float) -> None:
    """Run queue workers (HOUNSFIELD_BROKER_URL) until SIGTERM or Ctrl-C."""
    with _clean_failures():
        settings = _settings(options)
        configure_logging(level=settings.log_level, log_format=settings.effective_log_format)
        status = run_workers(settings, processes=processes, threads=threads, grace_s=grace_s)
    raise SystemExit(status)


@cli.command()
@click.pass_obj
def migrate(options: _Options) -> None:
    """Apply pending database migrations and list what was applied."""
    with _clean_failures():
        settings = _settings(options)
        configure_logging(level="warning", log_format=settings.effective_log_format)
        where, applied = _run_until_stopped(lambda: _migrate(settings))
        click.echo(f"database: {where}")
        if applied:
            for name in applied:
                click.echo(f"applied {name}")
        else:
            click.echo("up to date: no migrations to apply")


@cli.group()
def users() -> None:
    """Manage user accounts from the command line."""


@users.command("create-admin")
@click.option("--username", default="admin", show_default=True, help="The new admin's username.")
@click.option("--email", required=True, help="The new admin's email address.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@click.pass_obj
def create_admin(options: _Options, username: str, email: str, password_stdin: bool) -> None:
    """Create an admin account (works whether or not another admin exists)."""
    with _clean_failures():
        settings = _settings(options)
        if password_stdin:
            password = click.get_text_stream("stdin").readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        configure_logging(level="warning", log_format=settings.effective_log_format)
        user = _run_until_stopped(lambda: _create_admin(settings, username, email, password))
        if user is not None:
            click.echo(f"created admin {user.username} ({user.id})")


@cli.group()
def models() -> None:
    """The analysis models of the models directory."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of lines.")
@click.pass_obj
def list_models(options: _Options, as_json: bool) -> None:
    """List the usable models; the ones refused go to stderr with the reason."""
    with _clean_failures():
        settings = _settings(options)
        # the registry logs what it refuses: on stderr, so --json stays one document
        configure_logging(level="error", log_format=settings.effective_log_format)
        models_dir = settings.models_dir or BUNDLED_MODELS_DIR
    registry = FilesystemModelRegistry(models_dir)
    catalogue = ModelCatalogue(registry=registry, engine=OnnxInferenceEngine(models_dir))
    found = catalogue.list(SYSTEM_PRINCIPAL)
    problems = registry.problems()
    if as_json:
        document = {"models_dir": str(models_dir), "models": found, "problems": problems}
        click.echo(msgspec.json.encode(document).decode())
    else:
        click.echo(f"models in {models_dir}")
        for info in found:
            model = info.manifest
            dice = model.metrics.get("held_out_dice")
            quality = "" if dice is None else f"  held-out Dice {dice:.2f}"
            use = "clinical use" if model.clinical_use else "NOT FOR CLINICAL USE"
            click.echo(f"{model.id}  {model.version}  {model.task}  {info.device}  {use}{quality}")
    for problem in problems:
        click.echo(f"refused {problem.directory}: {problem.reason}", err=True)


def _client_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the commands that talk to a running server: where, and as whom."""
    for option in reversed(
        (
            click.option(
                "--url",
                envvar="HOUNSFIELD_URL",
                default=ingest_client.DEFAULT_URL,
                show_default=True,
                help="The server (also $HOUNSFIELD_URL); start one with `just serve`.",
            ),
            click.option(
                "--api-key",
                envvar="HOUNSFIELD_API_KEY",
                help="An hf_... key (or $HOUNSFIELD_API_KEY).",
            ),
            click.option(
                "--username",
                help="Sign in as this user instead of using an API key (e.g. the admin"
                " `just serve` printed).",
            ),
            click.option(
                "--password-stdin", is_flag=True, help="Read the password from standard input."
            ),
        )
    ):
        command = option(command)
    return command


def _credentials(
    api_key: str | None, username: str | None, password_stdin: bool
) -> ingest_client.Credentials:
    """An API key, or a user whose password comes from stdin or a prompt."""
    password = None
    if username and not api_key:
        if password_stdin:
            password = click.get_text_stream("stdin").readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True)
    return ingest_client.Credentials(api_key=api_key, username=username, password=password)


@cli.command("ingest")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_client_options
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=ingest_client.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="DICOM files of one study per request.",
)
@click.option("--modality", help="ct, mr, xray, us, pet, nm, other (or an alias such as mri).")
@click.option("--description", help="Study description.")
@click.option("--urgency", type=click.Choice([u.value for u in Urgency]))
@click.option("--patient-name")
@click.option("--patient-id")
@click.option("--patient-age", help="DICOM AS, e.g. 045Y.")
@click.option("--patient-sex", type=click.Choice([s.value for s in Sex], case_sensitive=False))
@click.option("--progress/--no-progress", default=None, help="[default: when stderr is a terminal]")
def ingest(
    directory: Path,
    url: str,
    api_key: str | None,
    username: str | None,
    password_stdin: bool,
    concurrency: int,
    batch_size: int,
    progress: bool | None,
    **study_fields: str | None,
) -> None:
    """Upload every image under DIRECTORY (recursively) and summarise what was stored.

    DICOM files are grouped by study into batches; other files go one per request. Exits
    with status 1 when any file was rejected or the server could not be reached.
    """
    with _clean_failures():
        if study_fields["modality"] is not None:
            try:
                study_fields["modality"] = Modality.parse(study_fields["modality"]).value
            except ValueError as err:
                raise click.BadParameter(str(err), param_hint="--modality") from None
        ok = ingest_client.run_ingest(
            directory,
            url=url,
            credentials=_credentials(api_key, username, password_stdin),
            fields=ingest_client.StudyFields(**study_fields),
            concurrency=concurrency,
            batch_size=batch_size,
            show_progress=progress,
        )
    if not ok:
        raise SystemExit(1)


@cli.command("demo")
@_client_options
@click.option("--seed", type=int, default=7, show_default=True, help="Which phantom to draw.")
def demo(
    url: str, api_key: str | None, username: str | None, password_stdin: bool, seed: int
) -> None:
    """Show the whole flow on a synthetic CT study: upload, analyse, lesions, metrics, URLs.

    An admin's demo goes into a centre named "Hounsfield demo centre" (created once); other
    users' and keys' demos go into their own centre.
    """
    from rich.console import Console

    from entrypoints.demo import DemoFailed, run_demo

    with _clean_failures():
        credentials = _credentials(api_key, username, password_stdin)
        try:
            asyncio.run(run_demo(url, credentials, seed=seed, console=Console()))
        except DemoFailed as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            raise click.ClickException(f"cannot reach {url}: {err}") from None


async def _create_admin(settings: Settings, username: str, email: str, password: str) -> Any:
    container = await bootstrap(settings)
    try:
        return await container.services.users.create_admin(
            username=username, email=email, password=password
        )
    finally:
        await container.aclose()


for _command in FOLDER_COMMANDS:  # anonymize, export, metadata: folder tools, no server
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hounsfield")


def _settings(options: _Options) -> Settings:
    return Settings.from_env(config_file=options.config_file)


@contextmanager
def _clean_failures() -> Iterator[None]:
    """Turn the errors an operator can fix into one line on stderr and exit status 1."""
    try:
        yield
    except DomainError as err:
        raise click.ClickException(_one_line(err.detail)) from None
    except (SettingsError, MigrationChecksumMismatch) as err:
        raise click.ClickException(_one_line(str(err))) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Stopped(Exception):
    """SIGTERM or SIGINT arrived; shut down cleanly."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's: about
    7 % less server CPU per ingested file (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _run_until_stopped(make: Callable[[], Any]) -> Any:
    """Run the coroutine ``make()`` returns; SIGTERM/SIGINT unwind it (``finally`` runs).

    uvicorn captures these signals while it serves, shuts down gracefully, then re-raises
    them once it has restored our handler: that arrives here as ``_Stopped`` after the
    server stopped, and the caller's clean-up (stopping the embedded PostgreSQL) still runs.
    """
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in _STOP_SIGNALS}
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            return runner.run(make())
    except _Stopped:
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as err:
        listener.close()
        reason = err.strerror or str(err)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None
    return listener


async def _serve(settings: Settings, listener: socket.socket, *, first_start: bool) -> None:
    container = await bootstrap(settings)
    try:
        _print_banner(settings, first_start=first_start)
        if settings.initial_admin and not settings.database_url:
            _print_admin_password(await container.services.users.ensure_initial_admin())
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(container), host=settings.host, port=settings.port, **SERVER_OPTIONS
            )
        )
        async with api_process_sweeps(container):
            with suppress(_Stopped):
                await server.serve(sockets=[listener])
    finally:
        await container.aclose()


async def _migrate(settings: Settings) -> tuple[str, list[str]]:
    async with AsyncExitStack() as resources:
        if settings.database_url:
            dsn, where = settings.database_url, redact_url(settings.database_url) or ""
        else:
            await asyncio.to_thread(ensure_private_dir, settings.data_dir)
            dsn = await start_embedded_postgres(settings, resources)
            where = f"embedded PostgreSQL in {settings.postgres_dir}"
        applied = await apply_migrations(dsn)
    return where, applied


def _print_admin_password(password: str | None) -> None:
    if password is not None:
        # Shown once on the terminal, never logged; there is no fixed default password.
        click.echo(
            "\n  No admin existed, so one was created. Sign in once and change the"
            f" password:\n    username  admin\n    password  {password}\n"
        )


def _print_banner(settings: Settings, *, first_start: bool) -> None:
    version = importlib.metadata.version("hounsfield")
    database = (
        redact_url(settings.database_url)
        if settings.database_url
        else f"embedded PostgreSQL in {settings.postgres_dir}"
    )
    storage = redact_url(settings.storage_url) or str(settings.blobs_dir)
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        f"Hounsfield {version} ({settings.environment})",
        f"  data      {settings.data_dir}" + ("  (created: first start)" if first_start else ""),
        f"  database  {database}",
        f"  storage   {storage}",
        f"  queue     {(settings.broker_url and redact_url(settings.broker_url)) or 'in-process'}",
        f"  api       {base}/api/v1   docs {base}/docs",
        f"  processes {settings.http_workers}",
    ]
    click.echo("\n".join(lines))
