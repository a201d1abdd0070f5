"""Where the shipped files are. Import-light: the driver uses it on every call.

Shipped files are looked up along the package's own search path (what
importlib.resources does for a plain or editable install, where the built plugin
and the Python sources live in different directories); importlib.resources itself
is the fallback for anything else, e.g. a zipped package. Importing it costs more
than a whole pass-through compile may add, so it is only imported when needed.
"""

from __future__ import annotations

import os

import clang_llm

from . import LLVM_MAJOR

PLUGIN_NAME = f"clang_llm_plugin.llvm{LLVM_MAJOR}.so"


class NotFound(Exception):
    pass


def shipped_file(*parts: str) -> str | None:
    """Path of a file shipped in the clang_llm package, or None."""
    for base in getattr(clang_llm, "__path__", ()):
        p = os.path.join(base, *parts)
        if os.path.isfile(p):
            return p
    from importlib import resources

    p = resources.files("clang_llm").joinpath(*parts)
    return os.fspath(p) if p.is_file() else None


def read_shipped(*parts: str) -> str:
    path = shipped_file(*parts)
    if path is None:
        raise NotFound(f"clang_llm is missing its data file {'/'.join(parts)}; reinstall clang-llm")
    with open(path, encoding="utf-8") as f:
        return f.read()


def plugin_path() -> str:
    """The pass plugin shipped in this package (wheel or editable install)."""
    p = shipped_file(PLUGIN_NAME)
    if p is None:
        raise NotFound(f"the clang-llm plugin {PLUGIN_NAME} is not installed next to the clang_llm package; "
                       "reinstall clang-llm (pip install .)")
    return p


def _which(name: str) -> str | None:
    if os.sep in name:
        return name if os.access(name, os.X_OK) and os.path.isfile(name) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.access(p, os.X_OK) and os.path.isfile(p):
            return p
    return None


def find_clang(cxx: bool = False) -> str:
    """clang-22 (or clang++-22): CLANG_LLM_CLANG / CLANG_LLM_CLANGXX, PATH, Debian's llvm-22 dir."""
    var = "CLANG_LLM_CLANGXX" if cxx else "CLANG_LLM_CLANG"
    name = f"clang++-{LLVM_MAJOR}" if cxx else f"clang-{LLVM_MAJOR}"
    override = os.environ.get(var)
    if override:
        found = _which(override)
        if not found:
            raise NotFound(f"{var}={override} is not an executable")
        return found
    found = _which(name) or _which(f"/usr/lib/llvm-{LLVM_MAJOR}/bin/{'clang++' if cxx else 'clang'}")
    if found:
        return found
    raise NotFound(f"cannot find {name}: install it (apt-get install clang-{LLVM_MAJOR}) or set {var}")


def find_tool(tool: str) -> str:
    found = _which(f"{tool}-{LLVM_MAJOR}") or _which(f"/usr/lib/llvm-{LLVM_MAJOR}/bin/{tool}")
    if not found:
        raise NotFound(f"cannot find {tool}-{LLVM_MAJOR}: install llvm-{LLVM_MAJOR}")
    return found
