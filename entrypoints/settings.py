"""Settings: one frozen struct, read from ``HOUNSFIELD_*`` variables and an optional TOML file.

Precedence, lowest first: defaults, the TOML file (``HOUNSFIELD_CONFIG``, else
``./hounsfield.toml`` when present), then environment variables. TOML keys are the field
names (``port = 8080``); variables are ``HOUNSFIELD_`` plus the upper-cased field name
(``HOUNSFIELD_PORT=8080``). Relative paths are resolved against the working directory.

Every bad value raises :class:`SettingsError` with one line that names the variable (or the
TOML key and file) and says what is expected, so that start-up can stop with that line.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from domain.services.staging import PRESIGN_TTL_S

ENV_PREFIX = "HOUNSFIELD_"
CONFIG_VARIABLE = "HOUNSFIELD_CONFIG"
MAX_HTTP_WORKERS = 64
DEFAULT_CONFIG_FILE = Path("hounsfield.toml")

Environment = Literal["development", "production"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "console", "json"]

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
DATABASE_SCHEMES = ("postgresql", "postgres")


class SettingsError(Exception):
    """A setting has a value Hounsfield cannot start with; the message is one line."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything an operator can configure. ``None`` means "the embedded default"."""

    environment: Environment = "development"
    data_dir: Path = Path("var")
    """Embedded database, default blob store, generated secret key."""
    database_url: str | None = None
    """``postgresql://...``; ``None`` starts an embedded PostgreSQL in ``data_dir/postgres``."""
    storage_url: str | None = None
    """A directory, ``file:///path``, ``s3://bucket?...``, ``memory://``; ``None`` is
    ``data_dir/blobs``."""
    broker_url: str | None = None
    """``redis://...`` or ``amqp://...``; ``None`` runs jobs in-process."""
    models_dir: Path | None = None
    """``None`` uses the bundled models."""
    secret_key: str | None = None
    """``None`` generates one, kept in ``data_dir/secret_key`` (mode 0600)."""
    host: str = "127.0.0.1"
    port: int = 8000
    http_workers: int = 1
    """API processes ``serve`` runs on its one port (each with its own database pool and, without
    a broker, its own job threads). The cores of the machine is a good number; see
    docs/operations.md."""
    log_level: LogLevel = "info"
    log_format: LogFormat = "auto"
    """``auto`` is ``console`` in development and ``json`` in production."""
    max_upload_bytes: int = 500 * 1000 * 1000
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    access_token_ttl_s: int = 1800
    public_base_url: str | None = None
    """The URL clients reach the API at (for presigned and absolute links)."""
    token_issuer: str = "hounsfield"
    token_audience: str = "hounsfield-api"
    token_private_key_file: Path | None = None
    """A PEM RSA or EC (P-256) private key: tokens are then RS256/ES256 instead of HS256."""
    rate_limit_uploads_per_minute: int = 100
    """Per client; a centre as a whole gets ten times as many."""
    rate_limit_analyses_per_minute: int = 100
    rate_limit_reads_per_minute: int = 1000
    ws_heartbeat_interval_s: float = 20.0
    """How often an idle websocket gets a ``{"type": "heartbeat"}`` message (proxies close
    connections that stay silent, often after 60 s)."""
    initial_admin: bool = True
    """Create an ``admin`` with a generated password, printed once, when no admin exists."""
    inference_threads: int | None = None
    """onnxruntime threads per model session; ``None``: one per core. With several worker
    processes on one machine, cores / processes keeps them from fighting over the cores."""
    job_queue_name: str = "hounsfield-jobs"
    """The broker queue job ids travel on (API and workers must agree)."""
    job_threads: int = 2
    """Jobs run at once inside ``hounsfield serve`` when no broker is configured."""
    job_max_attempts: int = 3
    job_lease_s: float = 60.0
    """A running job's worker renews its lease every third of this; a dead worker's job is
    taken over once the lease expired."""
    job_retry_backoff_s: float = 5.0
    """Delay before retrying a job after a transient fault; doubled per further attempt."""
    job_retry_backoff_max_s: float = 300.0
    job_sweep_interval_s: float = 30.0
    """How often ``serve`` and each worker look for jobs to queue again."""
    job_requeue_after_s: float = 900.0
    """A queued job no worker took for this long is sent to the queue again."""
    staging_ttl_s: float = 86400.0
    """Staged uploads (presigned PUTs) not ingested after this long are deleted; swept
    every ``job_sweep_interval_s`` by each API process."""

    def __repr__(self) -> str:
        shown = {name: getattr(self, name) for name in self.__struct_fields__}
        if self.secret_key is not None:
            shown["secret_key"] = "***"
        for name in ("database_url", "storage_url", "broker_url"):
            shown[name] = redact_url(shown[name])
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        if self.log_format == "auto":
            return "json" if self.environment == "production" else "console"
        return self.log_format

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret_key"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: Path | str | None = None,
    ) -> Settings:
        """Read the TOML file (if any) and the ``HOUNSFIELD_*`` variables of ``environ``.

        Args:
            environ: the variables to read; ``os.environ`` when ``None``.
            config_file: a TOML file that must exist; when ``None``, ``HOUNSFIELD_CONFIG``
                names it, else ``./hounsfield.toml`` is read when present.
        """
        env = os.environ if environ is None else environ
        values: dict[str, tuple[Any, str]] = {}
        path = _config_path(env, config_file)
        if path is not None:
            for key, value in _read_toml(path).items():
                values[key] = (value, f"{key} in {path}")
        for name in cls.__struct_fields__:
            variable = ENV_PREFIX + name.upper()
            raw = env.get(variable)
            if raw is not None:
                values[name] = (raw.strip(), variable)
        return cls.from_values(values)

    @classmethod
    def from_values(cls, values: Mapping[str, tuple[Any, str]]) -> Settings:
        """Build from ``{field: (value, where it came from)}``; ``where`` names it in errors."""
        fields = dict(zip(cls.__struct_fields__, msgspec.structs.fields(cls), strict=True))
        converted: dict[str, Any] = {}
        for name, (value, source) in values.items():
            field = fields.get(name)
            if field is None:
                raise SettingsError(f"{source}: unknown setting; known: {', '.join(fields)}")
            converted[name] = _convert(value, field.type, name=name, source=source)
        settings = cls(**converted)
        _validate(settings, {name: source for name, (_, source) in values.items()})
        return msgspec.structs.replace(
            settings,
            data_dir=settings.data_dir.expanduser().absolute(),
            models_dir=(
                None if settings.models_dir is None else settings.models_dir.expanduser().absolute()
            ),
        )


def redact_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (for logs and messages)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


_EXPECTED: dict[str, str] = {
    "environment": "'development' or 'production'",
    "data_dir": "a directory path",
    "database_url": "a postgresql:// URL",
    "storage_url": "a directory path or a file:///, s3://bucket or memory:// URL",
    "broker_url": "a redis:// or amqp:// URL",
    "models_dir": "a directory path",
    "secret_key": "a string of at least 32 characters",
    "host": "a host name or IP address",
    "port": "an integer from 1 to 65535",
    "log_level": "one of debug, info, warning, error, critical",
    "log_format": "one of auto, console, json",
    "max_upload_bytes": "a positive integer (bytes)",
    "db_pool_min_size": "a positive integer",
    "db_pool_max_size": "a positive integer, at least db_pool_min_size",
    "access_token_ttl_s": "a positive integer (seconds)",
    "public_base_url": "an http:// or https:// URL",
    "token_issuer": "a non-empty string",
    "token_audience": "a non-empty string",
    "token_private_key_file": "the path of a PEM RSA or EC private key file",
    "rate_limit_uploads_per_minute": "a positive integer",
    "rate_limit_analyses_per_minute": "a positive integer",
    "rate_limit_reads_per_minute": "a positive integer",
    "ws_heartbeat_interval_s": "a positive number of seconds",
    "initial_admin": "true or false",
    "inference_threads": "a positive integer, or empty for one per core",
    "job_queue_name": "letters, digits, '.', '_' or '-', starting with a letter or '_'",
    "job_threads": "a positive integer",
    "http_workers": "an integer from 1 to 64",
    "job_max_attempts": "a positive integer",
    "job_lease_s": "a positive number of seconds",
    "job_retry_backoff_s": "a number of seconds >= 0",
    "job_retry_backoff_max_s": "a number of seconds >= 0",
    "job_sweep_interval_s": "a positive number of seconds",
    "job_requeue_after_s": "a number of seconds greater than job_retry_backoff_max_s",
    "staging_ttl_s": f"a number of seconds greater than {PRESIGN_TTL_S} (the upload URLs' life)",
}


def _problem(sources: Mapping[str, str], name: str, got: object) -> SettingsError:
    source = sources.get(name, ENV_PREFIX + name.upper())
    shown = got if name != "secret_key" else "<hidden>"
    if isinstance(shown, str) and name.endswith("_url"):
        shown = redact_url(shown)
    return SettingsError(f"{source} must be {_EXPECTED[name]}, got {shown!r}")


def _convert(value: Any, type_: Any, *, name: str, source: str) -> Any:
    if isinstance(value, str) and value == "" and _accepts_none(type_):
        return None
    try:
        return msgspec.convert(value, type_, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as err:
        raise _problem({name: source}, name, value) from err


def _accepts_none(type_: Any) -> bool:
    return type(None) in getattr(type_, "__args__", ())


def _dec_hook(type_: type, value: Any) -> Any:
    if type_ is Path and isinstance(value, str) and value:
        return Path(value)
    raise TypeError(f"cannot read {value!r} as {type_.__name__}")


def _config_path(env: Mapping[str, str], config_file: Path | str | None) -> Path | None:
    if config_file is not None:
        path, source = Path(config_file), "the config file"
    elif env.get(CONFIG_VARIABLE):
        path, source = Path(env[CONFIG_VARIABLE]), CONFIG_VARIABLE
    elif DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE.absolute()
    else:
        return None
    if not path.is_file():
        raise SettingsError(f"{source} must name an existing TOML file, got '{path}'")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingsError(f"{path} is not a readable TOML file: {err}") from err
    # Accept both flat keys and a [hounsfield] table.
    table = document.get("hounsfield", document)
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [hounsfield] must be a table")
    return table


def _validate(settings: Settings, sources: Mapping[str, str]) -> None:
    def fail(name: str) -> SettingsError:
        return _problem(sources, name, getattr(settings, name))

    if not 1 <= settings.port <= 65535:
        raise fail("port")
    if not settings.host:
        raise fail("host")
    if not 1 <= settings.http_workers <= MAX_HTTP_WORKERS:
        raise fail("http_workers")
    for name in (
        "max_upload_bytes",
        "db_pool_min_size",
        "access_token_ttl_s",
        "rate_limit_uploads_per_minute",
        "rate_limit_analyses_per_minute",
        "rate_limit_reads_per_minute",
        "ws_heartbeat_interval_s",
    ):
        if getattr(settings, name) <= 0:
            raise fail(name)
    if settings.inference_threads is not None and settings.inference_threads < 1:
        raise fail("inference_threads")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9._-]{0,99}", settings.job_queue_name):
        raise fail("job_queue_name")
    for name in ("job_threads", "job_max_attempts", "job_lease_s", "job_sweep_interval_s"):
        if not (math.isfinite(getattr(settings, name)) and getattr(settings, name) > 0):
            raise fail(name)
    for name in ("job_retry_backoff_s", "job_retry_backoff_max_s"):
        if not (math.isfinite(getattr(settings, name)) and getattr(settings, name) >= 0):
            raise fail(name)
    if not settings.job_requeue_after_s > settings.job_retry_backoff_max_s:
        raise fail("job_requeue_after_s")
    # a client has the URL's whole life to upload; it gets at least as long again to ask
    # for the ingest before its staged file may be swept
    if not (math.isfinite(settings.staging_ttl_s) and settings.staging_ttl_s > PRESIGN_TTL_S):
        raise fail("staging_ttl_s")
    if settings.db_pool_max_size < max(settings.db_pool_min_size, 1):
        raise fail("db_pool_max_size")
    if settings.secret_key is not None and len(settings.secret_key) < 32:
        raise fail("secret_key")
    for name in ("token_issuer", "token_audience"):
        if not getattr(settings, name).strip():
            raise fail(name)
    if (
        settings.token_private_key_file is not None
        and not settings.token_private_key_file.is_file()
    ):
        raise fail("token_private_key_file")
    if settings.database_url is not None:
        parts = urlsplit(settings.database_url)
        if parts.scheme not in DATABASE_SCHEMES or not (parts.hostname or parts.query):
            raise fail("database_url")
        _check_port(parts, lambda: fail("database_url"))
    if settings.storage_url is not None and not _valid_storage_url(settings.storage_url):
        raise fail("storage_url")
    if settings.broker_url is not None:
        parts = urlsplit(settings.broker_url)
        if parts.scheme not in ("redis", "rediss", "amqp", "amqps") or not parts.hostname:
            raise fail("broker_url")
        _check_port(parts, lambda: fail("broker_url"))
    if settings.public_base_url is not None:
        parts = urlsplit(settings.public_base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail("public_base_url")


def _check_port(parts: Any, fail: Any) -> None:
    try:
        _ = parts.port
    except ValueError as err:
        raise fail() from err


def _valid_storage_url(url: str) -> bool:
    """A first check only; the storage adapter validates the details (s3 parameters...)."""
    if not _URL_SCHEME.match(url):
        return bool(url.strip())  # a plain directory path
    parts = urlsplit(url)
    if parts.scheme == "file":
        return bool(parts.path) and parts.netloc in ("", "localhost")
    if parts.scheme == "s3":
        return bool(parts.netloc)
    return parts.scheme == "memory"
