"""clang-llm-data: the data engine's command line.

Each data-engine module that has a command defines ``register(subparsers)``,
which adds its sub-command(s) with ``set_defaults(func=...)``; func(args) returns
the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands, in the order of a full rebuild.
COMMAND_MODULES = ("corpus", "evaluate", "search", "climb", "select", "validate", "labels", "best_fixed",
                   "model")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="clang-llm-data", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        mod = importlib.import_module(f"clang_llm.train.{name}")
        mod.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("clang-llm-data: interrupted (results so far are kept; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
