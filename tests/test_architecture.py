"""The import arrows of the repository point one way: the engine (fusion/) depends on nothing of ours, the
service on the engine, the worker on both. Inside the service, domain packages form no cycle and the shared
core imports no domain. The job spec, which the API builds its schema from, stays free of PyTorch."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_files(package: str) -> Iterator[Path]:
    yield from sorted((REPO / package).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports, at any depth (imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imports_of_packages(package: str, forbidden: set[str]) -> dict[str, list[str]]:
    """Files of `package` importing any of the `forbidden` top-level packages, with what they import."""
    offenders = {}
    for path in python_files(package):
        found = sorted(name for name in imported_modules(path) if name.split(".")[0] in forbidden)
        if found:
            offenders[str(path.relative_to(REPO))] = found
    return offenders


def test_the_engine_imports_nothing_of_the_service_or_the_worker() -> None:
    assert imports_of_packages("fusion", {"service", "worker"}) == {}


def test_the_service_never_imports_the_worker() -> None:
    assert imports_of_packages("service", {"worker"}) == {}


def service_domain(path: Path) -> str:
    """service/jobs/router.py -> jobs; top-level modules (service/main.py) are their own node."""
    parts = path.relative_to(REPO / "service").parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def domain_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in python_files("service"):
        own = service_domain(path)
        edges = graph.setdefault(own, set())
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "service" and len(parts) > 1 and parts[1] != own:
                edges.add(parts[1])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for successor in sorted(graph.get(node, ())):
            cycle = visit(successor, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_service_domains_form_no_cycle() -> None:
    assert find_cycle(domain_graph()) is None


def test_the_service_core_imports_no_domain() -> None:
    """core/ is what every domain may use: settings, database, storage, errors."""
    assert domain_graph()["core"] == set()


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_job_spec_and_the_api_schema_import_no_torch() -> None:
    code = "import sys, fusion.spec, service.jobs.schemas; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
