"""The main job on the bundled example: build examples/minicalc with its own Makefile
three ways (clang-22 -Oz, clang-llm -Oz-llm, clang-llm -Oz-llm=verify), run its
self-check, and print the .text size of every object and of the program.

    .venv/bin/python examples/run_example.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from clang_llm import _core, policy

HERE = Path(__file__).resolve().parent
SRC = HERE / "minicalc"
BIN = Path(sys.executable).parent

CONFIGS = [
    ("clang-22 -Oz", "clang-22", "-Oz"),
    ("clang-llm -Oz-llm", str(BIN / "clang-llm"), "-Oz-llm"),
    ("clang-llm -Oz-llm=verify", str(BIN / "clang-llm"), "-Oz-llm=verify"),
]


def text_of(path: Path) -> int:
    return _core.object_sizes(path.read_bytes())["text"]


def build(workdir: Path, cc: str, cflags: str) -> dict[str, int]:
    shutil.copytree(SRC, workdir)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(["make", "-s", f"CC={cc}", f"CFLAGS={cflags}", "check"], cwd=workdir, env=env, check=True)
    sizes = {o.name: text_of(o) for o in sorted(workdir.glob("*.o"))}
    sizes["minicalc (linked)"] = text_of(workdir / "minicalc")
    return sizes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="build in this directory and keep the results")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="clang-llm-example-"))
    results = {}
    for i, (label, cc, cflags) in enumerate(CONFIGS):
        print(f"== building minicalc with {label}", flush=True)
        results[label] = build(root / f"build{i}", cc, cflags)
    if not args.keep:
        shutil.rmtree(root)

    base = results[CONFIGS[0][0]]
    width = max(map(len, base)) + 2
    print(f"\n.text bytes per object (policy back end: {policy.backend_name()})")
    print("".ljust(width) + "".join(label.rjust(26) for label, *_ in CONFIGS))
    for name, ref in base.items():
        cells = []
        for label, *_ in CONFIGS:
            got = results[label][name]
            cells.append(f"{got} ({(got / ref - 1) * 100:+.1f}%)".rjust(26) if ref else str(got).rjust(26))
        print(name.ljust(width) + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
