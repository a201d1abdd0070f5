"""A clang-llm user policy that captures modules for the measurement set.

    CLANG_LLM_POLICY=/path/to/bench/capture_policy.py
    CLANG_LLM_CAPTURE_DIR=~/.cache/clang-llm/modules/raw   (required)
    CLANG_LLM_CAPTURE_PKG=zlib                                (optional label)

For every module the plugin sees it stores the unoptimised bitcode as
<dir>/<content_hash>.bc plus <content_hash>.json (source file, package, the
compiler command line and directory, so bench tools can rebuild the object),
and always returns clang's own -Oz pipeline, so the build is exactly -Oz.

Capturing must never break or change a build: every error is swallowed (and
reported once on stderr), and nothing is written to stdout (`-o -` streams the
object there).
"""

from __future__ import annotations

import json
import os
import sys

import _clang_llm_plugin  # provided by the plugin's embedded interpreter

# configure's probe programs are not code anybody ships.
_SKIP_PREFIXES = ("conftest", "_configtest", "cmTC_", "CMakeC", "CheckSymbolExists",
                  "CheckIncludeFile", "CheckFunctionExists", "CheckTypeSize")

_SKIP_DIRS = {"CMakeScratch", "CMakeTmp", "CompilerIdC"}

_warned = False


def _cmdline() -> list[str]:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0") if a]


def _write_atomic(path: str, data: bytes) -> None:
    # make -j may compile the same module twice at once: write-then-rename keeps
    # readers from ever seeing a half-written file.
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _capture(module) -> None:
    out = os.environ.get("CLANG_LLM_CAPTURE_DIR")
    if not out:
        raise RuntimeError("CLANG_LLM_CAPTURE_DIR is not set")
    src = module.source_filename
    if os.path.basename(src).startswith(_SKIP_PREFIXES):
        return
    if any(part in _SKIP_DIRS for part in os.getcwd().split(os.sep)):
        return
    os.makedirs(out, exist_ok=True)
    h = module.content_hash()
    bc_path = os.path.join(out, h + ".bc")
    meta_path = os.path.join(out, h + ".json")
    if os.path.exists(bc_path) and os.path.exists(meta_path):
        return
    bc = module.bitcode()
    meta = {
        "hash": h,
        "source": src,
        "package": os.environ.get("CLANG_LLM_CAPTURE_PKG", ""),
        "bytes": len(bc),
        "route": module.route,
        "cwd": os.getcwd(),
        "argv": _cmdline(),
    }
    _write_atomic(bc_path, bc)
    _write_atomic(meta_path, (json.dumps(meta, indent=1) + "\n").encode())


def choose(module) -> str:
    global _warned
    try:
        _capture(module)
    except Exception as e:  # a capture problem must not cost the build
        if not _warned:
            _warned = True
            print(f"clang-llm capture: warning: {type(e).__name__}: {e}", file=sys.stderr)
    return _clang_llm_plugin.oz_pipeline
