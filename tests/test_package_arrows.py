"""Imports point one way: the service and the worker use the engine, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

FUSION = Path(__file__).resolve().parents[1] / "fusion"


def test_the_engine_imports_nothing_of_the_service_or_the_worker() -> None:
    backwards = []
    for path in sorted(FUSION.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            backwards += [
                f"{path.relative_to(FUSION.parent)}: {name}"
                for name in names
                if name.split(".")[0] in ("service", "worker")
            ]
    assert backwards == []
