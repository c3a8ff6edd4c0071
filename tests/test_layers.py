"""The package's layers, said once: no upward import, no cycle between subpackages.

A unit is a subpackage of secure_fgrpo (``secure_sum``) or a top-level module (``config``).
Every import counts, the lazy ones inside functions and those under TYPE_CHECKING included: a
lazy import hides a cycle from Python, not from a reader. A unit may import only units of a
lower layer; units of one layer are independent of each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "secure_fgrpo"

# Lowest first. Why this order: privacy wraps GRPO training (as Opacus wraps torch) and sizes
# noise for the secure sum, so it sits above both; config gathers every section's dataclass;
# federation runs a config; the audit re-runs federation pieces on what the server saw; the
# deployments and the CLI drive everything below them; the root API re-exports (lazily) the top.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "seeding", "fileio", "configio", "rounds"),
    ("tasks",),
    ("model",),
    ("rollout",),
    ("secure_sum", "gain", "data"),
    ("grpo",),
    ("privacy",),
    ("config",),
    ("federation",),
    ("audit", "runfolder"),
    ("report", "flower", "deploy", "keys_cli", "demo"),
    ("cli",),
    ("__init__",),
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    """secure_fgrpo.a.b -> a; secure_fgrpo -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """Every secure_fgrpo module the file at ``path`` imports (absolute names), with its line."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    out = []
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                out.append((module, node.lineno))
            else:  # from . import x: x may be a module
                out += [(f"{module}.{a.name}", node.lineno) for a in node.names]
    return [(m, line) for m, line in out if m == "secure_fgrpo" or m.startswith("secure_fgrpo.")]


def _edges(files: dict[Path, str | None]) -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> where; ``files`` maps a path to its source (None: read it)."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path, source in files.items():
        src = _unit(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for module, line in _imports(path, source):
            dst = _unit(module)
            if dst != src:
                edges[src, dst].append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return edges


def _package() -> dict[Path, str | None]:
    return dict.fromkeys(sorted(PACKAGE.rglob("*.py")))


def _upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    return [f"{a} -> {b} ({', '.join(where)})" for (a, b), where in sorted(edges.items())
            if a in LEVEL and b in LEVEL and LEVEL[b] >= LEVEL[a]]


def _cycles(pairs: set[tuple[str, str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in pairs:
        graph[a].add(b)
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_every_unit_has_a_layer() -> None:
    units = {_unit(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert units - set(LEVEL) == set(), "add the new unit to LAYERS"


def test_no_cycle_between_subpackages() -> None:
    cycles = _cycles(set(_edges(_package())))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_upward_import() -> None:
    bad = _upward(_edges(_package()))
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_privacy_uses_the_backends_through_their_packages() -> None:
    """privacy sizes noise for the masked sum through secure_sum.masked's public names, never its modules."""
    deep = [f"{path.relative_to(PACKAGE.parent)}:{line} {module}"
            for path in sorted((PACKAGE / "privacy").rglob("*.py")) for module, line in _imports(path)
            if module.startswith(("secure_fgrpo.secure_sum.masked.", "secure_fgrpo.secure_sum.ckks."))]
    assert not deep, deep


@pytest.mark.parametrize("source, expect", [
    ("from ..config import RunConfig\n", "config"),  # relative, two levels up
    ("def f():\n    from ..federation import runner\n", "federation"),  # lazy
    ("from .. import cli\n", "cli"),  # a module named in the import list
])
def test_the_scanner_sees_every_kind_of_import(source: str, expect: str) -> None:
    """Teeth: a grpo file importing upward in each of these forms is caught."""
    probe = PACKAGE / "grpo" / "probe.py"  # never written: its source is given
    edges = _edges({probe: source})
    assert list(edges) == [("grpo", expect)]
    assert _upward(edges) == [f"grpo -> {expect} (secure_fgrpo/grpo/probe.py:{source.count(chr(10))})"]


def test_a_cycle_is_found() -> None:
    assert _cycles({("a", "b"), ("b", "c"), ("c", "a")}) == [["a", "b", "c", "a"]]
    assert _cycles({("a", "b"), ("b", "c")}) == []


def test_the_root_api_is_lazy_and_complete() -> None:
    """``import secure_fgrpo`` loads no torch, no backend, no submodule; every public name resolves."""
    code = ("import sys, secure_fgrpo as sf\n"
            "assert 'torch' not in sys.modules and 'tenseal' not in sys.modules, 'heavy import'\n"
            "assert [m for m in sys.modules if m.startswith('secure_fgrpo.')] == [], 'eager submodule'\n"
            "assert sf.__all__ == sorted(sf._API)\n"
            "for name in sf.__all__:\n"
            "    assert getattr(sf, name).__name__ == name, name\n"
            "assert callable(sf.load_config) and 'torch' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=PACKAGE.parent, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'Federaton'"):
        import secure_fgrpo

        _ = secure_fgrpo.Federaton  # type: ignore[attr-defined]
