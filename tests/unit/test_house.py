"""The shape of the package: no import cycle, no module reaching into another's private names, and a
light ``import ternlib`` (the heavy stacks load only when a feature that needs them is used)."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "ternlib"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = MODULES[module].name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import anywhere in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((_resolve(module, node), [a.name for a in node.names], node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the ternlib modules it imports (at any depth: module level or inside a function)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, names, _ in _imports(m):
            if target not in MODULES:
                continue
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            rest = [n for n in names if f"{target}.{n}" not in MODULES]
            graph[m].update(subs)
            if rest or not names:
                graph[m].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if d == n:
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                cyc = visit(d)
                if cyc:
                    return cyc
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            cyc = visit(n)
            if cyc:
                return cyc
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_uses_another_modules_private_names():
    bad = []
    for m in MODULES:
        for target, names, line in _imports(m):
            if target.startswith("ternlib") and target != m:
                bad += [f"{m}:{line} imports {target}.{n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
        tree = ast.parse(MODULES[m].read_text())
        aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   for a in node.names if (_resolve(m, node) + "." + a.name) in MODULES}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{m}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("heavy", ["transformers", "sentence_transformers", "torchvision", "faiss", "sklearn"])
def test_import_ternlib_stays_light(heavy):
    code = f"import sys, ternlib; sys.exit(1 if {heavy!r} in sys.modules else 0)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, f"import ternlib imported {heavy}" + res.stderr[-2000:]


def test_the_image_api_loads_on_first_use():
    code = ("import sys, ternlib; assert 'ternlib.vision' not in sys.modules; "
            "f = ternlib.load_image_encoder; assert 'ternlib.vision' in sys.modules; "
            "assert ternlib.DEFAULT_IMAGE_MODEL == 'google/vit-base-patch16-224'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_xdist_workers_share_the_cores():
    """Under pytest-xdist, tests/conftest.py gives each worker its share of the cores before torch starts
    (oversubscribed OpenMP threads spin-wait: the suite took twice as long on 2 cores)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        pytest.skip("not run by a pytest-xdist worker")
    import torch

    assert "OMP_NUM_THREADS" in os.environ
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])
