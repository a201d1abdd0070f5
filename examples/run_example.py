"""The main job on the bundled example: build examples/minicalc with its own Makefile
three ways (clang-22 -Oz, clang-llm -Oz-llm, clang-llm -Oz-llm=verify), run its
self-check, and print the sizes a user measures: of the linked program, what
`size` counts (text + data) and its RAM (data + bss); of every object, the bytes
it adds to the program (clang_llm.sizes); .text beside them.

    .venv/bin/python examples/run_example.py [--keep DIR] [--cflags=-fno-asynchronous-unwind-tables]
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


def sizes_of(path: Path) -> dict:
    return _core.object_sizes(path.read_bytes())


def build(workdir: Path, cc: str, cflags: str) -> dict[str, dict]:
    shutil.copytree(SRC, workdir)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(["make", "-s", f"CC={cc}", f"CFLAGS={cflags}", "check"], cwd=workdir, env=env, check=True)
    sizes = {"minicalc (linked)": sizes_of(workdir / "minicalc")}
    sizes.update({o.name: sizes_of(o) for o in sorted(workdir.glob("*.o"))})
    return sizes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="build in this directory and keep the results")
    ap.add_argument("--cflags", default="", help="more flags for every build, e.g. -fno-asynchronous-unwind-tables")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="clang-llm-example-"))
    results = {}
    for i, (label, cc, cflags) in enumerate(CONFIGS):
        print(f"== building minicalc with {label}", flush=True)
        results[label] = build(root / f"build{i}", cc, f"{cflags} {args.cflags}".strip())
    if not args.keep:
        shutil.rmtree(root)

    base = results[CONFIGS[0][0]]
    width = max(map(len, base)) + 2
    for key, title in (("image", "image bytes (the linked program: `size` text + data; an object: what it adds)"),
                       ("ram", "RAM bytes (data + bss)"), ("text", ".text bytes (a diagnostic)")):
        print(f"\n{title}; policy back end: {policy.backend_name()}")
        print("".ljust(width) + "".join(label.rjust(26) for label, *_ in CONFIGS))
        for name, ref in base.items():
            cells = []
            for label, *_ in CONFIGS:
                got, was = results[label][name][key], ref[key]
                cells.append((f"{got} ({(got / was - 1) * 100:+.1f}%)" if was else str(got)).rjust(26))
            print(name.ljust(width) + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
