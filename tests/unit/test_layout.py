"""The tree shows the architecture: runtime <- data engine <- bench.

The runtime package (what runs in a compile: driver, policy, pipelines, features,
ir, ranker, explain) never imports the data engine (clang_llm.train), and no two
modules import each other, not even inside a function. Checked by reading the
imports (ast), so a lazy import counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "python" / "clang_llm"


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The clang_llm modules `name` imports (a package's names resolve to its
    submodules where they are modules)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "clang_llm"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "clang_llm":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out |= subs or {target}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def is_data_side(name: str) -> bool:
    return name == "clang_llm.train" or name.startswith("clang_llm.train.")


def test_runtime_never_imports_the_data_engine():
    bad = sorted(f"{a} imports {b}" for a, deps in graph().items() if not is_data_side(a)
                 for b in deps if is_data_side(b))
    assert not bad, bad


def test_no_import_cycles():
    g = graph()
    # Package __init__ modules re-export; an edge into a package's own __init__
    # from inside it is how Python resolves `from . import x`, not a dependency.
    g = {a: {b for b in deps if not a.startswith(b + ".")} for a, deps in g.items()}
    cycles, state = [], {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_the_package_never_imports_bench():
    for p in PKG.rglob("*.py"):
        tree = ast.parse(p.read_text(), str(p))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] == "bench" for n in names), p
