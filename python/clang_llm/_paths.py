"""Where the shipped files are. Import-light: the driver uses it on every call."""

from __future__ import annotations

import os
import shutil
from importlib import resources

from . import LLVM_MAJOR

PLUGIN_NAME = f"clang_llm_plugin.llvm{LLVM_MAJOR}.so"


class NotFound(Exception):
    pass


def plugin_path() -> str:
    """The pass plugin shipped in this package (wheel or editable install)."""
    p = resources.files("clang_llm").joinpath(PLUGIN_NAME)
    if not p.is_file():
        raise NotFound(f"the clang-llm plugin {PLUGIN_NAME} is not installed next to the clang_llm package; "
                       "reinstall clang-llm (pip install .)")
    return os.fspath(p)


def find_clang(cxx: bool = False) -> str:
    """clang-22 (or clang++-22): CLANG_LLM_CLANG / CLANG_LLM_CLANGXX, PATH, Debian's llvm-22 dir."""
    var = "CLANG_LLM_CLANGXX" if cxx else "CLANG_LLM_CLANG"
    name = f"clang++-{LLVM_MAJOR}" if cxx else f"clang-{LLVM_MAJOR}"
    override = os.environ.get(var)
    if override:
        found = shutil.which(override)
        if not found:
            raise NotFound(f"{var}={override} is not an executable")
        return found
    found = shutil.which(name)
    if found:
        return found
    fallback = f"/usr/lib/llvm-{LLVM_MAJOR}/bin/{'clang++' if cxx else 'clang'}"
    if os.access(fallback, os.X_OK):
        return fallback
    raise NotFound(f"cannot find {name}: install it (apt-get install clang-{LLVM_MAJOR}) or set {var}")


def find_tool(tool: str) -> str:
    for cand in (f"{tool}-{LLVM_MAJOR}", f"/usr/lib/llvm-{LLVM_MAJOR}/bin/{tool}"):
        found = shutil.which(cand)
        if found:
            return found
    raise NotFound(f"cannot find {tool}-{LLVM_MAJOR}: install llvm-{LLVM_MAJOR}")
