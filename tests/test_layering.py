"""Imports go one way (docs/architecture.md): entry points -> integrations -> domain -> leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> modules it must never import
FORBIDDEN = {
    "domain": ("schema", "tasks", "project", "integrations", "realtime.consumer"),
    "integrations": ("schema", "tasks", "realtime.consumer"),
    "realtime": ("tasks", "integrations"),
    "schema": ("tasks",),
    "tasks": ("schema", "realtime.consumer"),
}
# The leaf modules domain code may use to reach the outside.
DOMAIN_LEAVES = {"realtime.publish", "realtime.groups"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from realtime import publish` counts as importing realtime.publish.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    offences = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if package == "domain" and name.startswith("realtime."):
                if not any(name == leaf or name.startswith(leaf + ".") for leaf in DOMAIN_LEAVES):
                    offences.append(f"{path.relative_to(ROOT)} imports {name}")
                continue
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offences == []
