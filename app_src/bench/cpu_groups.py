"""Bench only: one CPU cgroup per service for a block, as a container runtime places them.

docker compose runs each service of the stack in a container of its own, and every container is
a CPU cgroup of equal weight (cpu.shares 1024 on cgroup v1, cpu.weight 100 on v2: Docker's
defaults). Started by the bench, the services are plain processes that share one CPU group (or,
with the kernel's sched_autogroup, one per session), so on a saturated machine the scheduler
shares the CPUs by thread instead of by service. `CpuGroups` moves each service's processes into
a group of its own for the block and moves them back afterwards; where the cgroup files are not
writable (no root, a read-only /sys) it says why and places nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def descendants(pid: int) -> list[int]:
    """pid and every process below it (PostgreSQL's backends, gunicorn's workers)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # exited meanwhile
    return found


class CpuGroups:
    """`with CpuGroups() as groups:` then `groups.place(name, pid)` for each service's process tree.

    `groups.reason` is None when the groups exist, else why they could not be made; `place` and
    `preexec` then do nothing, so the caller runs the same code either way and reports the reason.
    """

    def __init__(self):
        self.reason: str | None = None
        self.kind = ""
        self.weight: tuple[str, str] = ("", "")  # the file that weighs a group, and Docker's default
        self.home: Path | None = None  # the cgroup this process was in: where everything goes back
        self.base: Path | None = None
        self.groups: dict[str, Path] = {}

    def _locate(self) -> None:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = next((line.split(":", 2)[2] for line in lines if "cpu" in line.split(":", 2)[1].split(",")), None)
        if v1 is not None and (CGROUP / "cpu" / "cpu.shares").exists():
            self.home, self.weight = CGROUP / "cpu" / v1.lstrip("/"), ("cpu.shares", "1024")
            self.kind = "cgroup v1 cpu.shares 1024"
            return
        own = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
        if own is None or "cpu" not in (CGROUP / "cgroup.controllers").read_text().split():
            raise OSError("no cgroup CPU controller here")
        if own != "/":
            # v2 moves a process only between groups below a common parent it may write, and a
            # group with processes cannot have children with controllers: not worth it for a bench
            raise OSError(f"cgroup v2 and this process is in {own}, not the root group")
        (CGROUP / "cgroup.subtree_control").write_text("+cpu")
        self.home, self.weight = CGROUP, ("cpu.weight", "100")
        self.kind = "cgroup v2 cpu.weight 100"

    def __enter__(self) -> CpuGroups:
        try:
            self._locate()
            self.base = self.home / f"votingapp-bench-{os.getpid()}"
            self.base.mkdir()
            if self.home == CGROUP:  # v2: the groups below need the controller handed down
                (self.base / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            self.reason = f"{exc.__class__.__name__}: {exc}"
            self.base = None
        return self

    def _group(self, name: str) -> Path:
        if name not in self.groups:
            path = self.base / name
            path.mkdir()
            (path / self.weight[0]).write_text(self.weight[1])
            self.groups[name] = path
        return self.groups[name]

    def place(self, name: str, pid: int, *, tree: bool = True) -> int:
        """Move pid (with tree, its whole process tree) into group `name`; returns how many moved."""
        if self.base is None:
            return 0
        procs = self._group(name) / "cgroup.procs"
        moved = 0
        for p in descendants(pid) if tree else [pid]:
            try:
                procs.write_text(str(p))
                moved += 1
            except ProcessLookupError:
                continue
        return moved

    def preexec(self, name: str):
        """For subprocess: the child puts itself into group `name` before it execs (None: nothing)."""
        if self.base is None:
            return None
        procs = str(self._group(name) / "cgroup.procs")

        def enter():
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))

        return enter

    def __exit__(self, *exc) -> None:
        if self.base is None:
            return
        home = self.home / "cgroup.procs"
        for path in self.groups.values():
            for p in (path / "cgroup.procs").read_text().split():
                try:
                    home.write_text(p)
                except ProcessLookupError:
                    continue
            path.rmdir()
        self.base.rmdir()
