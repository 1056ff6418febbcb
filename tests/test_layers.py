"""The house's shape, held by tests: data flows one way through the rooms of src/eigenshift, no
module imports one above it or forms a circle (every import counts: inside functions and under
TYPE_CHECKING too), no module outgrows 400 lines, every hook goes through capture/hooks.py (so
each is removed when its context closes), and the command line loads no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "eigenshift"
# Bottom to top: a module may import its own room and the rooms below, never one above.
LAYERS = [("core",), ("models", "data"), ("scoring",), ("capture",), ("locate",),
          ("interventions",), ("export",), ("engines",), ("evidence",), ("evaluation",),
          ("report",), ("studies",), ("cli",), ("__init__", "__main__")]  # fmt: skip
LEVEL = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(module: str) -> set[str]:
    """Every eigenshift module `module` imports (a from-import of a package counts the package)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            targets = [mod] + [f"{mod}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_layer():
    assert {_room(m) for m in MODULES if m != "eigenshift.__main__"} <= set(LEVEL)


def test_no_import_runs_up_a_layer():
    upward = [f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps
              if LEVEL[_room(b)] > LEVEL[_room(a)]]  # fmt: skip
    assert upward == []


def test_no_import_circle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert circles == []


def test_every_hook_is_registered_by_capture_hooks():
    """One hook mechanism: `hooks.hooked` registers and always removes; a raw `register_*hook`
    elsewhere could outlive an exception and leave the model edited."""
    raw = sorted(f"{module}:{node.lineno}" for module, path in MODULES.items()
                 if module != "eigenshift.capture.hooks"
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Attribute) and node.attr.startswith("register_")
                 and node.attr.endswith("hook"))  # fmt: skip
    assert not raw, f"hooks registered outside eigenshift.capture.hooks: {raw}"
    assert "register_forward_pre_hook" in MODULES["eigenshift.capture.hooks"].read_text()


def test_no_module_exceeds_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


@pytest.mark.parametrize("module", ["eigenshift.cli.evaluate", "eigenshift.cli.fit",
                                    "eigenshift.cli.explain", "eigenshift.cli.inspect",
                                    "eigenshift.cli.locate"])  # fmt: skip
def test_commands_are_built_without_torch(module):
    """Every command's options come from torch-free configs: --help and a refused setting answer
    in a fraction of a second (benchmarks/bench_startup.py times them)."""
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'transformers', 'sklearn', "
            "'matplotlib') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
