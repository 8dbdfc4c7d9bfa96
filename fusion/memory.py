"""How much memory this process may use: the default of a worker's job memory budget.

A container's limit (cgroup) is what the kernel enforces with its OOM killer, and is often far below the
host's memory, which /proc/meminfo reports inside the container too.
"""

from __future__ import annotations

import os
from pathlib import Path

from fusion.cpus import cgroup_ancestors, own_cgroups

FALLBACK_BYTES = 8 * 2**30
"""Where neither a cgroup limit nor the host's memory can be read."""


def usable_memory_bytes(root: Path = Path("/")) -> int:
    """The strictest cgroup memory limit on this process or its ancestors (v2 memory.max, v1
    memory.limit_in_bytes), else the host's memory. `root` is where /proc and /sys are: tests give fakes."""
    mount = root / "sys" / "fs" / "cgroup"
    own = own_cgroups(root)
    limits = [_limit(folder / "memory.max") for folder in cgroup_ancestors(mount, own.get(""))]
    limits += [
        _limit(folder / "memory.limit_in_bytes") for folder in cgroup_ancestors(mount / "memory", own.get("memory"))
    ]
    host = _host_memory(root)
    # v1 writes "no limit" as a huge number: a limit above the host's memory limits nothing.
    found = [limit for limit in limits if limit is not None and (host is None or limit < host)]
    return min(found) if found else host or FALLBACK_BYTES


def _limit(path: Path) -> int | None:
    """Bytes; None for v2's "max" or an unreadable file."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _host_memory(root: Path) -> int | None:
    try:
        for line in (root / "proc" / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if root == Path("/"):
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None
    return None


JOB_SHARE = 0.8
"""Of the memory a worker may use, what one job may: the rest is for the worker process itself and the page
cache that memory-mapped component outputs are read through."""


def default_job_memory_bytes() -> int:
    return int(JOB_SHARE * usable_memory_bytes())
