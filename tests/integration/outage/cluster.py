"""A throw-away PostgreSQL cluster a test may restart and stop at will: ``initdb`` into a
scratch directory, served on a free TCP port of 127.0.0.1, driven with ``pg_ctl``.

PostgreSQL refuses to run as root: under root the cluster belongs to the same unprivileged
system user the embedded PostgreSQL of ``talk up`` uses (``talk-postgres``, created when
missing). The binaries are the local installation's (``pg_config --bindir``, or the newest
``/usr/lib/postgresql/*/bin``). Nothing here touches the shared server on 5432.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from services.embedded_postgres import _system_owner
from tests.e2e.processes import free_port

INSTALL = ("No PostgreSQL server binaries (initdb, pg_ctl, postgres) for the outage tests: "
           "install the server package (e.g. `apt-get install postgresql`), or put its bin "
           "directory first on PATH")


def server_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise RuntimeError(INSTALL)


class ThrowawayCluster:
    """``start()`` once; then ``restart_fast()``, ``stop_immediate()``, ``start()`` again;
    ``remove()`` stops it and deletes its files. ``options``: more server settings
    (``name=value``); ``initdb=False`` leaves the data directory to be made otherwise (a
    standby's, by ``pg_basebackup``: tests/integration/standby/replication.py)."""

    def __init__(self, *, options: tuple[str, ...] = (), initdb: bool = True,
                 prefix: str = "talk-outage-") -> None:
        self.bindir = server_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.pgdata = self.root / "pgdata"
        self.log = self.root / "postgres.log"
        self.options = options
        self._owner = _system_owner()  # None unless we are root
        if self._owner is not None:
            os.chown(self.root, *self._owner)
        if initdb:
            self._initdb()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                                cwd=self.root, timeout=timeout, **self._as_owner())
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stderr.decode(errors='replace')}\n{self.log_tail()}")

    def _as_owner(self) -> dict[str, object]:
        if self._owner is None:
            return {}
        uid, gid = self._owner
        return {"user": uid, "group": gid, "extra_groups": []}

    def _initdb(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions",
                  "--no-sync")

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log),
                  *args)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off "
                   "-c shared_buffers=16MB -c max_connections=60"
                   + "".join(f" -c {option}" for option in self.options))
        self._pg_ctl("start", "-w", "-t", "30", "-o", options)

    def ensure_running(self) -> None:
        """Start it if it is not running (``pg_ctl status`` exits 3 then)."""
        status = subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "status"],
                                stdin=subprocess.DEVNULL, capture_output=True, cwd=self.root,
                                **self._as_owner())
        if status.returncode == 3:
            self.start()

    def restart_fast(self) -> None:
        """``pg_ctl restart -m fast``: sessions are ended, the server is back at once."""
        self._pg_ctl("restart", "-m", "fast", "-w", "-t", "30")

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: every process exits at once, no checkpoint."""
        self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"
