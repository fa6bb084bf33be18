"""The layering docs/architecture.md draws, checked on the source: what each package may import.

Imports inside functions count (a cycle hidden in a function is still a cycle of the design);
imports under `if TYPE_CHECKING:` do not, they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "tables", "sinks")
FRAMEWORKS = ("faust", "aiokafka", "mode", "confluent_kafka", "rocksdict", "fastavro")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST) -> set[str]:
    """Modules imported anywhere except under `if TYPE_CHECKING:`, as dotted names (for
    `from a import b`, both `a` and `a.b`: b may be a module)."""
    names: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            names |= set().union(*(_runtime_imports(child) for child in node.orelse))
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        names |= _runtime_imports(node)
    return names


def _all_imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


MODULES = {
    _module_name(path): ast.parse(path.read_text())
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def _graph() -> dict[str, set[str]]:
    return {name: {dep for dep in _runtime_imports(tree) if dep in MODULES} - {name} for name, tree in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_modules_found_are_the_project():
    assert {"streams.app", "streams.runtime.engine", "tables.order", "sinks.webhook"} <= set(MODULES)


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_tables_is_the_pure_core():
    """No framework, no shell, no clock or randomness: the business rules are plain functions."""
    for name, tree in MODULES.items():
        if name.split(".")[0] != "tables":
            continue
        for imported in _all_imports(tree):
            top = imported.split(".")[0]
            assert top not in (*FRAMEWORKS, "streams", "sinks", "random", "time"), f"{name} imports {imported}"


def test_processors_use_the_runtime_by_its_interface():
    """Consumption, transactions and commits are the runtime's: a processor is a `BatchAgent` over
    a `PartitionedStore`, and never touches Faust, aiokafka or librdkafka itself."""
    interface = ("streams.runtime.processor", "streams.runtime.store")
    for name, tree in MODULES.items():
        if not name.startswith("streams.processors"):
            continue
        for imported in _all_imports(tree):
            assert imported.split(".")[0] not in ("faust", "aiokafka", "mode", "confluent_kafka"), (name, imported)
            if imported.startswith("streams.runtime"):
                assert imported in interface, f"{name} imports {imported}"


def test_only_the_runtime_drives_the_kafka_clients_of_the_pipeline():
    """aiokafka (Faust's client) is used by the runtime alone; tools use confluent-kafka."""
    for name, tree in MODULES.items():
        if not name.startswith("streams.runtime"):
            assert not any(i.split(".")[0] == "aiokafka" for i in _all_imports(tree)), name


def test_the_simulator_stands_alone():
    """Users may copy it to feed their own test environments: it imports nothing of the project."""
    for name, tree in MODULES.items():
        if name.startswith("streams.simulator"):
            for imported in _all_imports(tree):
                assert imported.split(".")[0] not in PACKAGES, f"{name} imports {imported}"
