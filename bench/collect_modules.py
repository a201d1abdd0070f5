#!/usr/bin/env python3
"""Build real Debian source packages with clang-llm and capture their modules.

    python bench/collect_modules.py                    # every package below
    python bench/collect_modules.py --packages zlib xz-utils

Each package is built with CC=clang-llm CFLAGS=-Oz-llm and the capture policy
(bench/capture_policy.py), which stores every module's unoptimised bitcode and
lets clang's -Oz pipeline run, so the build itself is plain -Oz. Afterwards one
module per source file is kept (libtool and CMake compile the same file twice,
for the shared and the static library; zstd's programs recompile the library),
build-system probes and (unless --include-tests) test-suite programs are dropped, and the kept modules are copied to
--modules-dir as <hash>.bc (+ <hash>.json). The manifest bench/results/
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
from clang_llm import debsrc  # noqa: E402
from clang_llm.debsrc import Recipe  # noqa: E402


# --- extra recipes -------------------------------------------------------------
# Packages that debsrc.RECIPES does not cover and that build with one or two plain
# commands. Builds only (the measurement set needs modules, not test runs), so
# test=() throughout. debsrc's own recipes always take precedence.

def _cmake(package: str, source_dir: str = ".", *options: str) -> Recipe:
    # An empty CMAKE_BUILD_TYPE keeps CMake from adding its own -O flags, and the
    # emptied per-type flags cover projects that force a build type (brotli picks
    # Release, whose -O3 would come after and beat -Oz-llm). CMake >= 4 refuses
    # these projects' old cmake_minimum_required without the policy floor.
    return Recipe(
        package=package, system="cmake",
        configure=(("cmake", "-S", source_dir, "-B", "build", "-DCMAKE_C_COMPILER={cc}",
                    "-DCMAKE_C_FLAGS={cflags}", "-DCMAKE_BUILD_TYPE=",
                    "-DCMAKE_C_FLAGS_RELEASE=", "-DCMAKE_C_FLAGS_RELWITHDEBINFO=",
                    "-DCMAKE_C_FLAGS_MINSIZEREL=", "-DCMAKE_C_FLAGS_DEBUG=",
                    "-DCMAKE_POLICY_VERSION_MINIMUM=3.5", *options),),
        build=(("cmake", "--build", "build", "--parallel", "{jobs}"),),
        test=(),
        note="bench/collect_modules.py recipe",
    )


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
        _cmake("jansson"),
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

# Compiler and feature probes of CMake and autoconf: not code anybody ships.
_PROBE_PARTS = {"CMakeScratch", "CMakeTmp", "CompilerIdC", "CompilerIdCXX"}


def _is_probe(meta: dict, rel: str) -> bool:
    name = os.path.basename(rel)
    # "-" and /dev/null: compiler-option probes fed from stdin (libdeflate's
    # cc-option); have_*.c: zstd's library probes.
    if meta["source"] in ("-", "/dev/null") or name.startswith(
            ("conftest", "CMakeC", "CheckIncludeFile", "CheckSymbolExists", "CheckFunctionExists",
             "CheckTypeSize", "have_")):
        return True
    parts = set(Path(meta.get("cwd", "")).parts) | set(Path(rel).parts)
    return bool(_PROBE_PARTS & parts)


# Test-suite programs are not what a package ships, and some are extreme: jansson's
# API tests (one assertion macro expanded hundreds of times) shrink ~40% under the
# IR outliner and would move the whole set's geomean by more than a point.
_TEST_DIRS = {"test", "tests", "testsuite"}


def _is_test(rel: str) -> bool:
    return bool(_TEST_DIRS & set(Path(rel).parts[:-1]))


def _relative_source(meta: dict, tree: Path) -> str:
    p = Path(os.path.normpath(os.path.join(meta.get("cwd", ""), meta["source"])))
    try:
        return str(p.relative_to(tree))
    except ValueError:
        return meta["source"]


def select(capture_dir: Path, tree: Path, max_bytes: int, tests: bool) -> tuple[list[dict], dict]:
    """One module per source file of the package; (chosen, counts of what was dropped)."""
    by_source: dict[str, list[dict]] = {}
    dropped = {"probes": 0, "tests": 0, "duplicates": 0, "too_big": 0}
    for side in sorted(capture_dir.glob("*.json")):
        meta = json.loads(side.read_text())
        if not (capture_dir / (meta["hash"] + ".bc")).exists():
            continue
        rel = _relative_source(meta, tree)
        if _is_probe(meta, rel):
            dropped["probes"] += 1
            continue
        if not tests and _is_test(rel):
            dropped["tests"] += 1
            continue
        if meta["bytes"] > max_bytes:
            dropped["too_big"] += 1
            continue
        by_source.setdefault(rel, []).append({**meta, "rel_source": rel})
    chosen = []
    for rel, variants in sorted(by_source.items()):
        # Among a file's variants (PIC/non-PIC, extra -D flags) take the one without
        # -fPIC, then the smallest hash: stable from one rebuild to the next.
        variants.sort(key=lambda m: ("-fPIC" in m.get("argv", []), m["hash"]))
        chosen.append(variants[0])
        dropped["duplicates"] += len(variants) - 1
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
        "CLANG_LLM_POLICY": str(HERE / "capture_policy.py"),
        "CLANG_LLM_CAPTURE_DIR": str(capture),
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
        "recipe": "clang_llm.debsrc" if package in debsrc.RECIPES else "bench/collect_modules.py",
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
