"""The thread budget: the CPUs a process may use, from its affinity, its cgroup's CPU quota and a limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fusion.cpus import usable_cpus


@pytest.fixture(autouse=True)
def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host of 8 CPUs, all in the affinity mask unless a test says otherwise."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_no_cgroup_files_means_the_affinity_mask(tmp_path: Path) -> None:
    assert usable_cpus(root=tmp_path) == 8


def test_affinity_subset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5, 7}, raising=False)
    assert usable_cpus(root=tmp_path) == 3


@pytest.mark.parametrize(("cpu_max", "expected"), [("150000 100000\n", 2), ("max 100000\n", 8), ("20000 100000", 1)])
def test_cgroup_v2_quota_rounds_up(tmp_path: Path, cpu_max: str, expected: int) -> None:
    root = write(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": cpu_max})
    assert usable_cpus(root=root) == expected


def test_cgroup_v2_quota_of_the_process_own_cgroup_or_an_ancestor(tmp_path: Path) -> None:
    """On a host the process sits deep in the hierarchy; the strictest quota on the way up applies."""
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "0::/workers.slice/worker-1.service\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
            "sys/fs/cgroup/workers.slice/cpu.max": "300000 100000\n",
            "sys/fs/cgroup/workers.slice/worker-1.service/cpu.max": "max 100000\n",
        },
    )
    assert usable_cpus(root=root) == 3


def test_cgroup_v2_inside_a_container_that_sees_the_host_path(tmp_path: Path) -> None:
    """Without a cgroup namespace /proc/self/cgroup names the host's path, absent under the container's
    mount: the mount's own cpu.max still counts."""
    root = write(tmp_path, {"proc/self/cgroup": "0::/docker/abc123\n", "sys/fs/cgroup/cpu.max": "250000 100000\n"})
    assert usable_cpus(root=root) == 3


@pytest.mark.parametrize(("quota", "expected"), [("150000", 2), ("-1", 8)])
def test_cgroup_v1_quota(tmp_path: Path, quota: str, expected: int) -> None:
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "4:memory:/\n3:cpu,cpuacct:/\n0::/\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": f"{quota}\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert usable_cpus(root=root) == expected


def test_cgroup_v1_quota_on_a_separate_cpu_mount(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "proc/self/cgroup": "2:cpuacct:/\n1:cpu:/batch\n",
            "sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us": "400000\n",
            "sys/fs/cgroup/cpu/batch/cpu.cfs_period_us": "100000\n",
        },
    )
    assert usable_cpus(root=root) == 4


def test_a_limit_lowers_the_budget_but_never_raises_it(tmp_path: Path) -> None:
    root = write(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "400000 100000\n"})
    assert usable_cpus(2, root=root) == 2
    assert usable_cpus(16, root=root) == 4
    assert usable_cpus(0, None, root=root) == 4  # 0 and None: no limit


def test_unreadable_cgroup_files_are_no_limit(tmp_path: Path) -> None:
    root = write(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "garbage"})
    assert usable_cpus(root=root) == 8
