"""CPU time by server process: the front and its workers, PostgreSQL's backends, the simulator.

Issue 10 asks for the CPU of one durable authorization summed over every
server process, so each group is read from Linux ``/proc`` at the start and
at the end of the measured window and reported as seconds and µs per
response, plus their sum:

- ``front``: the ``--target-pid`` process itself;
- ``front_workers``: its children (``isoswitch up --workers N``), minus the
  simulator and PostgreSQL;
- ``postgres``: the postmaster (from ``--pg-pid``, or the first line of the
  data directory's ``postmaster.pid``) and its children (backends, WAL
  writer, checkpointer...), found by scanning ``/proc`` for their parent;
- ``simulator``: ``--sim-pid``, or the front's child whose command line runs
  ``acquirer_sim`` (``isoswitch up`` starts it so).

Members are found again at the end: a process present at both ends counts
its difference; one born during the window counts all its time; one that
ended during the window is lost (its CPU went to its parent's ``cutime``,
which is not read) and is counted in ``exited``.

>>> ProcSpec(target_pid=None).empty
True
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GROUPS",
    "ProcSpec",
    "ProcWatch",
    "children",
    "cpu_seconds",
    "postmaster_pid",
]

GROUPS = ("front", "front_workers", "postgres", "simulator")

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/PID/stat`` (after ``(comm)``); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (proc(5) fields 14 and 15); None when unreadable."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in ``/proc``."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            out[int(entry.name)] = int(fields[1])
    return out


def children(pid: int, parents: Mapping[int, int] | None = None) -> list[int]:
    """The direct children of ``pid``.

    >>> children(1, {5: 1, 6: 5, 7: 1})
    [5, 7]
    """
    parents = _parents() if parents is None else parents
    return sorted(p for p, pp in parents.items() if pp == pid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster's pid from ``postmaster.pid`` in ``data_dir`` or ``data_dir/pg`` (what ``isoswitch up
    --data-dir`` makes); None when there is none."""
    for d in (data_dir, data_dir / "pg"):
        try:
            first = (d / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        except OSError:
            continue
        if first.isdigit():
            return int(first)
    return None


@dataclass(frozen=True, slots=True)
class ProcSpec:
    """Which processes to read; every field optional."""

    target_pid: int | None = None  # the front (the process of ``isoswitch up``)
    pg_pid: int | None = None  # the postmaster
    pg_data: Path | None = None  # or its data directory (postmaster.pid)
    sim_pid: int | None = None

    @property
    def empty(self) -> bool:
        return self.target_pid is None and self.pg_pid is None and self.pg_data is None and self.sim_pid is None

    def postmaster(self) -> int | None:
        if self.pg_pid is not None:
            return self.pg_pid
        return postmaster_pid(self.pg_data) if self.pg_data is not None else None

    def groups(self) -> dict[str, list[int]]:
        """Group name -> its pids now (groups with nothing to read are left out)."""
        parents = _parents()
        out: dict[str, list[int]] = {}
        pm = self.postmaster()
        pg = [pm, *children(pm, parents)] if pm is not None and pm in parents else []
        sim = [self.sim_pid] if self.sim_pid is not None else []
        if self.target_pid is not None:
            out["front"] = [self.target_pid]
            kids = [p for p in children(self.target_pid, parents) if p not in pg and p not in sim]
            if not sim:
                sim = [p for p in kids if "acquirer_sim" in _cmdline(p)]
            workers = [p for p in kids if p not in sim]
            if workers:
                out["front_workers"] = workers
        if pg:
            out["postgres"] = pg
        if sim:
            out["simulator"] = sim
        return out


def _read(pids: Iterable[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        s = cpu_seconds(pid)
        if s is not None:
            out[pid] = s
    return out


class ProcWatch:
    """CPU seconds of each group between :meth:`start` and :meth:`stop`."""

    def __init__(self, spec: ProcSpec) -> None:
        self.spec = spec
        self.before: dict[str, dict[int, float]] = {}
        self.after: dict[str, dict[int, float]] = {}

    def start(self) -> None:
        self.before = {g: _read(pids) for g, pids in self.spec.groups().items()}

    def stop(self) -> None:
        now = self.spec.groups()
        for g, pids in self.before.items():  # a group seen at the start is read at the end too
            now.setdefault(g, list(pids))
        self.after = {g: _read(set(pids) | set(self.before.get(g, {}))) for g, pids in now.items()}

    def seconds(self, group: str) -> float | None:
        """CPU seconds of ``group`` over the window, None when it was not read."""
        if group not in self.after:
            return None
        b, a = self.before.get(group, {}), self.after[group]
        return sum(s - b.get(pid, 0.0) for pid, s in a.items())

    def figures(self, responses: int, elapsed: float) -> dict[str, Any]:
        """``{group: {"pids", "cpu_s", "us_per_response", "cores"}, ..., "sum": {...}}`` (module docstring)."""
        per = max(responses, 1)
        out: dict[str, Any] = {}
        total = 0.0
        for g in GROUPS:
            s = self.seconds(g)
            if s is None:
                continue
            total += s
            out[g] = {
                "pids": sorted(self.after[g]),
                "exited": len(set(self.before.get(g, {})) - set(self.after[g])),
                "cpu_s": round(s, 3),
                "us_per_response": round(s / per * 1e6, 1),
                "cores": round(s / elapsed, 2) if elapsed > 0 else 0.0,
            }
        if out:
            out["sum"] = {
                "cpu_s": round(total, 3),
                "us_per_response": round(total / per * 1e6, 1),
                "cores": round(total / elapsed, 2) if elapsed > 0 else 0.0,
            }
        return out
