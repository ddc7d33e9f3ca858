"""An embedded PostgreSQL (the ``pgserver`` package) in a local data directory.

``pgserver`` runs ``initdb`` and ``pg_ctl`` and counts the processes using a
server in ``PGDATA/.handle_pids.json``, stopping it when the last one leaves.
This module adds what a switch that may crash and restart needs around it:

- one cross-process file lock around the whole start, so two processes
  started at once on one directory run ``initdb``/``pg_ctl start`` once and
  the second connects to the first one's server;
- a ``postmaster.pid`` left by a crash is checked before starting: when its
  pid now belongs to some other process (common after a container restart,
  where pids are small and reused), PostgreSQL itself would refuse to start,
  so the stale file and socket lock files are removed;
- pids of dead processes are pruned from the handle list, or the server
  would never be stopped again after one crash;
- an in-process reference count, because pgserver has one handle per
  process: a second ``open_database`` in the same process must not let the
  first ``close`` stop the server under it.

All of it is blocking (subprocesses, file locks): callers on an event loop
run :func:`acquire` and :meth:`EmbeddedServer.release` in a thread.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from switch.store.errors import DatabaseUnavailable

__all__ = ["EmbeddedServer", "acquire"]

log = logging.getLogger("isoswitch.store")

# A server that is starting or stopping (another process holds it) gets this
# long to settle before we give up.
_SETTLE_SECONDS = 30.0

_registry: dict[Path, EmbeddedServer] = {}
# Process-wide by nature: it mirrors pgserver's own per-process instance table.
_registry_lock = threading.Lock()


@dataclass(slots=True, eq=False)
class EmbeddedServer:
    """A running embedded server, shared by everything in this process that acquired it."""

    pgdata: Path
    dsn: str  # unix-socket DSN of the ``postgres`` database, user ``postgres``
    _server: Any = field(repr=False)
    _refs: int = 1

    def release(self) -> None:
        """Drop one reference; the last one in the last process stops the server."""
        with _registry_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            _registry.pop(self.pgdata, None)
            with _file_lock(self.pgdata.parent / (self.pgdata.name + ".lock")):
                # pgserver stops the server only when this pid is the last in its handle list.
                self._server.cleanup()
            pgserver = _pgserver()
            # When another process still uses the server, pgserver keeps its
            # instance cached; a later acquire in this process must register anew.
            pgserver.PostgresServer._instances.pop(self.pgdata, None)
            atexit.unregister(self._server._cleanup)
            log.info("embedded postgres released", extra={"pgdata": str(self.pgdata)})


def acquire(pgdata: Path) -> EmbeddedServer:
    """Start (or join) the embedded server in ``pgdata``; creates the directories."""
    pgdata = pgdata.expanduser().resolve()
    with _registry_lock:
        running = _registry.get(pgdata)
        if running is not None:
            running._refs += 1
            return running
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _file_lock(pgdata.parent / (pgdata.name + ".lock")):
                _clear_stale_state(pgdata)
                server = _pgserver().get_server(pgdata, cleanup_mode="stop")
                dsn = server.get_uri()
        except DatabaseUnavailable:
            raise
        except Exception as e:  # pgserver fails with bare asserts, CalledProcessError, TimeoutExpired
            raise DatabaseUnavailable(f"embedded postgres in {pgdata} did not start: {e!r} (see {pgdata}/log)") from e
        handle = EmbeddedServer(pgdata=pgdata, dsn=dsn, _server=server)
        _registry[pgdata] = handle
        log.info("embedded postgres ready", extra={"pgdata": str(pgdata)})
        return handle


def _pgserver() -> ModuleType:
    # Imported late: with DATABASE_URL the embedded server is never needed.
    # pgserver asks platformdirs for a runtime dir at import; without
    # XDG_RUNTIME_DIR that warns (RuntimeDirWarning) and falls back to
    # /run/user/<uid> or $TMPDIR/runtime-<uid>, which is fine: pgserver only
    # keeps a lock file (and, for very long paths, the socket) there.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    return pgserver


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; released by the kernel if we die holding it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _clear_stale_state(pgdata: Path) -> None:
    """Make a crash's leftovers harmless before pgserver looks at them (under the file lock)."""
    _prune_handles(pgdata)
    pid_file = pgdata / "postmaster.pid"
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return
        pid = _int(lines[0]) if lines else None
        if pid is None or not _is_our_postmaster(pid, pgdata):
            # Dead or reused pid: nothing of ours runs, so the file is stale.
            # (A dead pid alone PostgreSQL would handle; a reused one it refuses.)
            log.warning("removing stale postmaster.pid", extra={"pgdata": str(pgdata), "pid": pid})
            socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else pgdata
            for d in {pgdata, socket_dir}:
                for lock in d.glob(".s.PGSQL.*.lock"):
                    with contextlib.suppress(FileNotFoundError):
                        lock.unlink()
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
            return
        # Ours and alive: pgserver can use it once it is ready (it asserts
        # "ready" and would fail on a server that is still starting or stopping).
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return
        if time.monotonic() > deadline:
            raise DatabaseUnavailable(f"embedded postgres in {pgdata} (pid {pid}) stays not ready")
        time.sleep(0.1)


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    import psutil  # a pgserver dependency

    try:
        proc = psutil.Process(pid)
        if "postgres" not in proc.name():
            return False
        # The postmaster runs as ``postgres -D <pgdata> ...``.
        return str(pgdata) in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # someone else's postgres: do not touch its files


def _prune_handles(pgdata: Path) -> None:
    import psutil

    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _int(s: str) -> int | None:
    try:
        return int(s.strip())
    except ValueError:
        return None
