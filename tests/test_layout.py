"""The tree keeps its shape: no import cycles, the service reads no libvirt, and the README's
module table names every module there is (and none that is gone)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

from tests.conftest import ROOT

PACKAGES = ("scheduler", "agents", "vmpack_lab", "dashboards")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _run_time_imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """Modules of the project that ``module`` imports when it runs; imports kept for type
    checking alone (under ``if TYPE_CHECKING:``) name a type, not a dependency."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: None if is_package else -1]
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _graph() -> nx.DiGraph:
    known = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for module, path in known.items():
        graph.add_edges_from((module, target) for target in _run_time_imports(path, module, known))
    return graph


def test_no_import_cycles() -> None:
    cycles = list(nx.simple_cycles(_graph()))
    assert cycles == [], f"import cycles: {cycles[:5]}"


def test_the_service_and_the_engine_do_not_import_libvirt() -> None:
    graph = _graph()
    libvirt_readers = {"agents.libvirt_probe", "agents.migrate", "agents.agent"}
    for module in ("scheduler.service.server", "scheduler.engine"):
        reached = nx.descendants(graph, module)
        assert not reached & libvirt_readers, f"{module} reaches {reached & libvirt_readers}"


def test_the_readme_module_table_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| stage | package | modules |", 1)[1].split("\n\n", 1)[0]
    listed = set()
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        package = cells[1].strip("`")
        for module in re.findall(r"`([\w./]+\.py)`", cells[2]):
            listed.add(package + module)
    present = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    }
    assert sorted(present - listed) == [], "modules missing from the README's table"
    assert sorted(listed - present) == [], "README's table names modules that do not exist"
