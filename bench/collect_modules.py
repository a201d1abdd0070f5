#!/usr/bin/env python3
"""Build real Debian source packages with clang-llm and capture their modules.

    python bench/collect_modules.py                    # every package below
    python bench/collect_modules.py --packages zlib xz-utils

Each package is built with CC=clang-llm CFLAGS=-Oz-llm in capture mode
(CLANG_LLM_CAPTURE, see clang_llm.policy.capture) with the `oz` policy, so every
module's unoptimised bitcode is stored and the build itself is plain -Oz.
Afterwards clang_llm.train.corpus.select keeps one module per source file
(libtool and CMake compile the same file twice, for the shared and the static
library; zstd's programs recompile the library) and drops build-system probes;
test-suite programs are dropped too unless --include-tests, and the kept modules
are copied to --modules-dir as <hash>.bc (+ <hash>.json). The training corpus
(clang-llm-data corpus build) is the larger sibling of this set. The manifest bench/results/
measurement_set.json lists them; bench/fixed_pipelines.py measures that set.

Module hashes are stable only while a package is built at the same path (CMake
passes absolute source paths, which end up in the module), so builds happen in
a fixed folder (--work).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path.home() / ".cache" / "clang-llm"

sys.path.insert(0, str(REPO / "python"))  # harmless when clang_llm is installed (editable)
from clang_llm.train import debsrc  # noqa: E402
from clang_llm.train.debsrc import Recipe  # noqa: E402
from clang_llm.train import corpus  # noqa: E402


# --- extra recipes -------------------------------------------------------------
# Packages that debsrc.RECIPES does not cover and that build with one or two plain
# commands. Builds only (the measurement set needs modules, not test runs), so
# test=() throughout. debsrc's own recipes always take precedence.

def _cmake(package: str) -> Recipe:
    return debsrc.cmake_recipe(package, note="bench/collect_modules.py recipe")


EXTRA_RECIPES: dict[str, Recipe] = {
    r.package: r for r in (
        Recipe(
            package="zstd", system="make", configure=(),
            # Command-line CFLAGS replace the Makefiles' -O3 and warning flags.
            build=(("make", "-j{jobs}", "-C", "lib", "libzstd.a", "CC={cc}", "CFLAGS={cflags}"),
                   ("make", "-j{jobs}", "-C", "programs", "zstd", "CC={cc}", "CFLAGS={cflags}")),
            test=(), note="bench/collect_modules.py recipe",
        ),
        Recipe(
            package="lz4", system="make", configure=(),
            build=(("make", "-j{jobs}", "-C", "lib", "liblz4.a", "CC={cc}", "CFLAGS={cflags}"),
                   ("make", "-j{jobs}", "-C", "programs", "lz4", "CC={cc}", "CFLAGS={cflags}")),
            test=(), note="bench/collect_modules.py recipe",
        ),
        Recipe(
            # The Makefile puts the caller's CFLAGS after its own -O2, so -Oz-llm wins.
            package="libdeflate", system="make", configure=(),
            build=(("make", "-j{jobs}", "CC={cc}", "CFLAGS={cflags}"),),
            test=(), note="bench/collect_modules.py recipe",
        ),
        _cmake("libyaml"),
        # (expat is left out: its CMake build of 2.5.0 fails with CMake 4, and the
        # tarball has no configure script.)
        _cmake("brotli"),
        # jansson: debsrc's own recipe (with its tests).
    )
}

DEFAULT_PACKAGES = ["zlib", "lua5.4", "xz-utils", "bzip2", "zstd", "lz4", "libdeflate",
                    "libyaml", "brotli", "jansson"]


def recipe_for(package: str) -> Recipe:
    if package in debsrc.RECIPES:
        return debsrc.RECIPES[package]
    if package in EXTRA_RECIPES:
        return EXTRA_RECIPES[package]
    raise SystemExit(f"no recipe for {package} (known: {', '.join([*debsrc.RECIPES, *EXTRA_RECIPES])})")


# --- choosing the set -------------------------------------------------------------

def select(capture_dir: Path, tree: Path, max_bytes: int, tests: bool) -> tuple[list[dict], dict]:
    """One module per source file of the package; (chosen, counts of what was dropped)."""
    kept, dropped = corpus.select(capture_dir, tree)
    dropped = {"probes": dropped["probes"] + dropped["outside"], "tests": 0,
               "duplicates": dropped["variants"], "too_big": 0}
    chosen = []
    for meta in kept:
        if meta["kind"] == "test" and not tests:
            dropped["tests"] += 1
        elif meta["bytes"] > max_bytes:
            dropped["too_big"] += 1
        else:
            chosen.append(meta)
    return chosen, dropped


# --- building ---------------------------------------------------------------------

def build_package(package: str, args) -> dict:
    rec = recipe_for(package)
    tree = Path(args.work) / package
    capture = Path(args.work) / f"{package}.capture"
    for d in (tree, capture):
        shutil.rmtree(d, ignore_errors=True)
    capture.mkdir(parents=True)
    debsrc.prepare(package, tree)
    log = Path(args.work) / f"{package}.decisions.jsonl"
    log.unlink(missing_ok=True)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "CLANG_LLM_POLICY": "oz",
        "CLANG_LLM_CAPTURE": str(capture.resolve()),
        "CLANG_LLM_CAPTURE_PKG": package,
        "CLANG_LLM_LOG": str(log),
    }
    t0 = time.monotonic()
    res = debsrc.build(rec, tree, "clang-llm", "-Oz-llm", env=env, jobs=args.jobs)
    build_s = time.monotonic() - t0

    decisions = [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []
    fallbacks = [d for d in decisions if d.get("fallback")]
    chosen, dropped = select(capture, tree.resolve(), args.max_bytes, args.include_tests)
    out = Path(args.modules_dir)
    out.mkdir(parents=True, exist_ok=True)
    for m in chosen:
        shutil.copyfile(capture / (m["hash"] + ".bc"), out / (m["hash"] + ".bc"))
        (out / (m["hash"] + ".json")).write_text(json.dumps(m, indent=1) + "\n")
    version = ""
    dsc = sorted(debsrc.fetch(package).glob("*.dsc"))
    if dsc:
        for ln in dsc[-1].read_text(errors="replace").splitlines():
            if ln.startswith("Version:"):
                version = ln.split(":", 1)[1].strip()
                break
    info = {
        "version": version,
        "recipe": "clang_llm.train.debsrc" if package in debsrc.RECIPES else "bench/collect_modules.py",
        "system": rec.system,
        "build_s": round(build_s, 1),
        "modules_seen": len(decisions),
        "fallbacks": len(fallbacks),
        "captured": len(list(capture.glob("*.bc"))),
        "selected": len(chosen),
        "dropped": dropped,
    }
    print(f"{package} {version}: built in {build_s:.0f}s ({res.log}); plugin saw {len(decisions)} modules, "
          f"{len(fallbacks)} fallbacks; captured {info['captured']}, kept {len(chosen)} ({dropped})",
          file=sys.stderr)
    if fallbacks:
        print(f"  first fallback: {fallbacks[0].get('fallback')}", file=sys.stderr)
    return {"info": info, "modules": [{"hash": m["hash"], "package": package, "source": m["rel_source"],
                                       "bytes": m["bytes"]} for m in chosen]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packages", nargs="+", default=DEFAULT_PACKAGES,
                    help="Debian source packages to build (default: %(default)s)")
    ap.add_argument("--work", default=str(CACHE / "build"), help="build folder (default: %(default)s)")
    ap.add_argument("--modules-dir", default=str(CACHE / "modules"),
                    help="where the set's <hash>.bc files go (default: %(default)s)")
    ap.add_argument("--manifest", default="bench/results/measurement_set.json",
                    help="manifest to write; entries of packages not rebuilt are kept (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=2, help="make -j (default: %(default)s)")
    ap.add_argument("--max-bytes", type=int, default=4 << 20,
                    help="leave out modules with more bitcode than this (default: %(default)s)")
    ap.add_argument("--include-tests", action="store_true",
                    help="keep modules from test-suite folders (test/, tests/, testsuite/)")
    ap.add_argument("--keep-going", action="store_true", help="skip a package whose build fails")
    args = ap.parse_args(argv)
    for p in args.packages:
        recipe_for(p)

    manifest_path = Path(args.manifest)
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    packages = {k: v for k, v in old.get("packages", {}).items() if k not in args.packages}
    modules = [m for m in old.get("modules", []) if m["package"] not in args.packages]
    for p in args.packages:
        try:
            got = build_package(p, args)
        except debsrc.DebSrcError as e:
            if not args.keep_going:
                raise
            print(f"{p}: skipped: {e}", file=sys.stderr)
            continue
        packages[p] = got["info"]
        modules += got["modules"]

    from clang_llm import _core

    modules.sort(key=lambda m: (m["package"], m["source"]))
    doc = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/collect_modules.py",
                               *(sys.argv[1:] if argv is None else argv)]),
        "llvm": _core.LLVM_VERSION,
        "modules_dir": "~/.cache/clang-llm/modules (not committed; rebuild with the command above)",
        "packages": dict(sorted(packages.items())),
        "count": len(modules),
        "modules": modules,
    }
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {manifest_path}: {len(modules)} modules from {len(packages)} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
