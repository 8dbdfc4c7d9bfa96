"""How many CPUs this process may really use: the thread budget for torch and ONNX Runtime.

Both libraries start one thread per core of the host by default, whatever share of it the process has.
A worker pinned to a few cores (affinity) or given a CPU quota by its container (cgroup) then runs more
threads than it has CPUs, and threads that spin waiting for each other lose their time slices: training
ran 11x slower beside two busy processes. The budget is the smallest of the affinity mask, the cgroup
quota and an operator's limit.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_V1_MOUNTS = ("cpu", "cpu,cpuacct")
"""Where v1 mounts the cpu controller: its own folder, or one shared with cpuacct (often both, one a link)."""


def usable_cpus(*limits: int | None, root: Path = Path("/")) -> int:
    """CPUs this process may run on at once: at least 1, and at most each of `limits` (a caller's or an
    operator's; None or 0 is no limit). `root` is where /proc and /sys are: tests give fake cgroup files."""
    candidates = [_affinity(), _cgroup_limit(root), *(limit for limit in limits if limit)]
    return max(1, min(count for count in candidates if count is not None))


def _affinity() -> int:
    """CPUs in the affinity mask (taskset, cpuset, a container's --cpuset-cpus)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS and Windows have no affinity call


def _cgroup_limit(root: Path) -> int | None:
    """ceil(quota / period) of the strictest CPU quota on this process's cgroup or its ancestors (v2
    cpu.max, v1 cpu.cfs_quota_us); None where no quota is set or no cgroup file can be read."""
    mount = root / "sys" / "fs" / "cgroup"
    own = own_cgroups(root)
    limits = [_v2_limit(folder / "cpu.max") for folder in cgroup_ancestors(mount, own.get(""))]
    for controller in _V1_MOUNTS:
        limits += [_v1_limit(folder) for folder in cgroup_ancestors(mount / controller, own.get("cpu"))]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def own_cgroups(root: Path) -> dict[str, str]:
    """/proc/self/cgroup as controller -> path ("" is the v2 hierarchy)."""
    try:
        lines = (root / "proc" / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return {}
    own: dict[str, str] = {}
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) == 3:
            own.update(dict.fromkeys(fields[1].split(","), fields[2]))
    return own


def cgroup_ancestors(mount: Path, path: str | None) -> list[Path]:
    """The cgroup's folder under the mount and every folder above it up to the mount. In a container the
    mount is often the container's own cgroup while /proc/self/cgroup names the host's path: folders
    that do not exist are skipped, and the mount itself is always looked at."""
    parts = [part for part in (path or "").split("/") if part]
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_limit(cpu_max: Path) -> int | None:
    """cpu.max holds "quota period", or "max period" for no limit."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else _cpus(int(quota), int(period))


def _v1_limit(folder: Path) -> int | None:
    """cpu.cfs_quota_us is -1 for no limit."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 else _cpus(quota, period)


def _cpus(quota: int, period: int) -> int | None:
    return max(1, math.ceil(quota / period)) if period > 0 else None
