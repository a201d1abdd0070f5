"""python -m clang_llm --plugin-path | --version | --fingerprint"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from . import LLVM_MAJOR, __version__, _paths


def fingerprint() -> str:
    """Changes whenever the code clang-llm would produce may change: the plugin,
    the policy code and back end, the candidate set, the model, and clang-22
    itself. Meant for ccache: compiler_check = string:<this>."""
    from importlib import resources

    from . import pipelines, policy

    h = hashlib.sha256()
    h.update(f"clang-llm {__version__} llvm {LLVM_MAJOR}\n".encode())
    h.update(f"backend {policy.backend_name()}\n".encode())
    h.update(f"candidates {pipelines.set_hash()}\n".encode())
    pkg = resources.files("clang_llm")
    # Everything that decides a pipeline: the plugin, the policy and what the
    # learned back end reads (normalisation, features, ranker, model, tokenizer).
    for name in (_paths.PLUGIN_NAME, "data/candidates.tsv", "policy.py", "pipelines.py", "driver.py", "ir.py", "features.py",
                 "ranker.py", "data/model.onnx", "data/tokenizer.json"):
        f = pkg.joinpath(*name.split("/"))
        if f.is_file():
            h.update(name.encode() + f.read_bytes())
    clang = os.path.realpath(_paths.find_clang())
    st = os.stat(clang)
    h.update(f"{clang} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clang_llm", description=__doc__)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--plugin-path", action="store_true", help="print the pass plugin's path")
    g.add_argument("--version", action="store_true", help="print clang-llm's and LLVM's versions")
    g.add_argument("--fingerprint", action="store_true",
                   help="print a hash of everything that decides the generated code (for ccache)")
    args = ap.parse_args(argv)
    try:
        if args.plugin_path:
            print(_paths.plugin_path())
        elif args.version:
            from . import _core

            print(f"clang-llm {__version__} (LLVM {_core.LLVM_VERSION}, plugin {_paths.PLUGIN_NAME})")
        else:
            print(fingerprint())
    except _paths.NotFound as e:
        print(f"clang-llm: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
