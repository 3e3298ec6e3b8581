"""The package's layout as the README's Layout section states it: imports point one way (no cycles, robots/
below everything that learns), one training loop, small modules and functions.

These read the source (ast), so they fail when a change breaks the architecture, not only its behaviour.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "posegen"
README = ROOT / "README.md"
MAX_MODULE_LINES = 520
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: Dict[str, Path] = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str) -> Set[str]:
    """posegen modules that module ``name`` imports anywhere in its body (top level or inside functions)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "posegen"}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path.name == "__init__.py", node)
            if target.split(".")[0] != "posegen":
                continue
            for a in node.names:  # "from . import sub" names a submodule
                sub = f"{target}.{a.name}"
                out.add(sub if sub in MODULES else target)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {m: _imports(m) for m in MODULES}


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    cycles: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert cycles == [], f"import cycles: {cycles}"


LEARNING = ("posegen.flow", "posegen.models", "posegen.objectives", "posegen.training", "posegen.samplers",
            "posegen.paths", "posegen.solvers")


@pytest.mark.parametrize("layer, forbidden", [
    ("posegen.robots", LEARNING + ("posegen.data", "posegen.planning", "posegen.cli", "posegen.config")),
    ("posegen.manifolds", ("posegen.",)),
    ("posegen.optional", ("posegen.",)),
    ("posegen.training", ("posegen.data", "posegen.robots", "posegen.samplers", "posegen.planning", "posegen.cli",
                          "posegen.config")),
    ("posegen.samplers", ("posegen.planning", "posegen.cli", "posegen.config")),
    ("posegen.planning", ("posegen.cli",)),
])
def test_imports_point_one_way(layer, forbidden):
    bad = {}
    for m, deps in GRAPH.items():
        if m == layer or m.startswith(layer + "."):
            hit = sorted(d for d in deps if any(d == f or d.startswith(f if f.endswith(".") else f + ".")
                                                 or (not f.endswith(".") and d == f) for f in forbidden)
                         and not (d == layer or d.startswith(layer + ".")))
            if hit:
                bad[m] = hit
    assert bad == {}, f"{layer} must not import {forbidden}: {bad}"


def _steps_an_optimiser(node: ast.AST) -> bool:
    """``x.backward(...)``, ``x.zero_grad(...)`` or ``opt.step(...)`` / ``optimizer.step(...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    attr, owner = node.func.attr, node.func.value
    owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
    return attr in ("backward", "zero_grad") or (attr == "step" and "opt" in owner_name.lower())


def test_only_the_training_loop_steps_an_optimiser():
    found = [f"{p.relative_to(ROOT)}:{node.lineno}" for m, p in MODULES.items() if not m.startswith("posegen.training")
             for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))) if _steps_an_optimiser(node)]
    assert found == []
    trainer = MODULES["posegen.training.trainer"]
    assert any(_steps_an_optimiser(n) for n in ast.walk(ast.parse(trainer.read_text(encoding="utf-8"))))


def _long_functions(path: Path) -> List[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                       and isinstance(body[0].value.value, str))
            start = body[0].end_lineno + 1 if has_doc else node.lineno
            if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    return out


def _layout_exceptions() -> Set[str]:
    """Paths the README's Layout section names as larger than the limits, with its reason."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    section = section[: section.find("\n## ", 4)] if "\n## " in section[4:] else section
    return set(re.findall(r"`(posegen/[\w/]+\.py)` is longer", section))


def test_modules_and_functions_stay_small():
    allowed = _layout_exceptions()
    big = [f"{p.relative_to(ROOT)} ({len(p.read_text(encoding='utf-8').splitlines())} lines)"
           for p in MODULES.values() if len(p.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES
           and str(p.relative_to(ROOT)) not in allowed]
    long = [f for p in MODULES.values() if str(p.relative_to(ROOT)) not in allowed for f in _long_functions(p)]
    assert big == [] and long == [], ("over the limits and not explained in the README's Layout section: "
                                      f"modules {big}, functions {long}")
