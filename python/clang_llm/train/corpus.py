"""The corpus: unoptimised modules of real Debian source packages, split by package.

    clang-llm-data corpus build [--packages zlib gzip ...] [--jobs N] [--force]
    clang-llm-data corpus status                # what is built, per package
    clang-llm-data corpus split                 # add built packages to data/split.json
    clang-llm-data corpus stats                 # rewrite data/corpus_stats.json (whole manifest built)
    python -m clang_llm.train.corpus build ...  # the same, without the other sub-commands

    from clang_llm.train import corpus
    for m in corpus.modules(split="train"):     # hash, path, package, source, ir_instructions, ...
        ...

Every package named in the manifest (data/corpus_manifest.toml) is fetched with
``apt-get source`` (clang_llm.train.debsrc), configured with CC=clang-llm CFLAGS=-Oz-llm
and built through its own build system with capture mode on (CLANG_LLM_CAPTURE,
see clang_llm.policy.capture), so each translation unit's module is saved as it
leaves clang's front end. Configure runs without capture: its probe programs are
not code anybody ships, and leaving them out spares an interpreter per probe.
Builds use ``make -k``: the corpus needs modules, not working binaries, so a
partly failed build counts as long as it produced modules.

Of what a build captured, the corpus keeps one module per source file (libtool
and CMake compile files twice, for shared and static libraries), drops build
system probes and anything compiled from outside the source tree, and labels
test-suite programs (kind "test"); modules() leaves those out unless asked, and
modules without a function definition (kind "empty": tables, or code #ifdef'd
away) too. A module several packages produced (identical IR) is stored once.

On disk, under clang_llm.train.data_root()/corpus/ (rebuildable, not committed):
    modules/<hash>.bc, <hash>.json   the kept modules and their capture sidecars
    packages/<package>.json          one record per package: status, timings, modules
    logs/<package>.log               the package's configure + build output
Committed, in clang_llm/train/data/: the manifest, corpus_stats.json (per
package: status, build time, modules, IR instructions; written only by a corpus
that holds every manifest package, a partial one keeps its statistics under its
root) and split.json (package -> train / validation / test).

A package whose record exists is skipped by ``build`` (the build is resumable)
unless --force, or unless its manifest entry changed since it was built, or
(with --retry-failed) its last build failed. The split is extended only by
``corpus split`` (or ``build --split``): packages keep their split once given
one, so the test packages stay fixed as the corpus grows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import debsrc
from . import committed_dir, data_root, write_atomic

MANIFEST = committed_dir() / "corpus_manifest.toml"
STATS = committed_dir() / "corpus_stats.json"
SPLIT = committed_dir() / "split.json"

SPLITS = ("train", "validation", "test")
DEFAULT_TARGETS = {"train": 0.70, "validation": 0.15, "test": 0.15}
SPLIT_WEIGHT_CAP = 200  # modules a package counts with when balancing the split
DEFAULT_SEED = 20261123
# Leakage goes one way only: a module that occurs in packages of several splits
# counts for the most protected one, so training never sees a test module.
_PROTECTION = {"test": 3, "validation": 2, "train": 1, None: 0}

CFLAGS = "-Oz-llm"
SYSTEMS = ("autotools", "cmake", "make", "custom")


class CorpusError(Exception):
    """A problem with the manifest, the corpus directory or a package's set-up."""


# --- layout -------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def modules(self) -> Path:
        return self.root / "modules"

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def builds(self) -> Path:
        return self.root / "build"

    @property
    def captures(self) -> Path:
        return self.root / "capture"

    def record(self, package: str) -> Path:
        return self.packages / f"{package}.json"


def layout(root: Path | None = None) -> Layout:
    return Layout(Path(root) if root else data_root() / "corpus")


def _write_json(path: Path, doc) -> None:
    write_atomic(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")


# --- the manifest --------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One package of the manifest; see the comment at the top of the manifest file."""

    package: str
    system: str
    configure_script: str = "./configure"
    configure_args: tuple[str, ...] = ()
    make_args: tuple[str, ...] = ()
    # make variables that carry the compiler; packages whose Makefiles want the
    # flags elsewhere (Lua's MYCFLAGS, Kbuild's EXTRA_CFLAGS) name their own.
    make_vars: Mapping[str, str] = field(default_factory=lambda: {"CC": "{cc}", "CFLAGS": "{cflags}"})
    cmake_args: tuple[str, ...] = ()
    source_dir: str = "."
    bootstrap: tuple[tuple[str, ...], ...] = ()
    configure: tuple[tuple[str, ...], ...] = ()
    build: tuple[tuple[str, ...], ...] = ()
    apt: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    apply_patches: bool = True
    files: Mapping[str, str] = field(default_factory=dict)
    tests: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    timeout: float = 3600.0
    note: str = ""
    raw: Mapping = field(default_factory=dict, compare=False, repr=False)

    @property
    def fingerprint(self) -> str:
        """Changes when the entry does, so an edited recipe is rebuilt on resume."""
        text = json.dumps({"format": 1, **self.raw}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def recipe(self) -> debsrc.Recipe:
        """The entry as debsrc commands ({cc}, {cflags} and {jobs} filled in by debsrc)."""
        make_vars = [f"{k}={v}" for k, v in self.make_vars.items()]
        if self.system == "autotools":
            configure = (*self.bootstrap,
                         (self.configure_script, "CC={cc}", "CFLAGS={cflags}", *self.configure_args))
            build = (("make", "-k", "-j{jobs}", *self.make_args),)
        elif self.system == "cmake":
            # An empty build type keeps CMake's own -O flags away, and the emptied
            # per-type flags cover projects that force a type (their -O3 would come
            # after -Oz-llm and win). CMake >= 4 needs the policy floor for the
            # old cmake_minimum_required of many Debian packages.
            configure = (*self.bootstrap,
                         ("cmake", "-S", self.source_dir, "-B", "_build", "-DCMAKE_C_COMPILER={cc}",
                          "-DCMAKE_C_FLAGS={cflags}", "-DCMAKE_BUILD_TYPE=",
                          "-DCMAKE_C_FLAGS_RELEASE=", "-DCMAKE_C_FLAGS_RELWITHDEBINFO=",
                          "-DCMAKE_C_FLAGS_MINSIZEREL=", "-DCMAKE_C_FLAGS_DEBUG=",
                          "-DCMAKE_POLICY_VERSION_MINIMUM=3.5", *self.cmake_args))
            build = (("cmake", "--build", "_build", "--parallel", "{jobs}", "--", "-k", *self.make_args),)
        elif self.system == "make":
            configure = (*self.bootstrap, *self.configure)
            build = (("make", "-k", "-j{jobs}", *make_vars, *self.make_args),)
        else:  # custom
            configure = (*self.bootstrap, *self.configure)
            build = self.build
        return debsrc.Recipe(package=self.package, system=self.system, configure=configure, build=build,
                             test=(), apply_patches=self.apply_patches, files=dict(self.files), note=self.note)


_ENTRY_KEYS = {"system", "configure_script", "configure_args", "make_args", "make_vars", "cmake_args",
               "source_dir", "bootstrap", "configure", "build", "apt", "env", "apply_patches", "files", "tests",
               "exclude", "timeout", "note"}


def _strings(value, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorpusError(f"{what} must be a list of strings")
    return tuple(value)


def _commands(value, what: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise CorpusError(f"{what} must be a list of commands (lists of strings)")
    return tuple(_strings(c, f"each command of {what}") for c in value)


def parse_entry(package: str, table: Mapping, defaults: Mapping | None = None) -> Entry:
    merged = {**(defaults or {}), **table}
    unknown = set(merged) - _ENTRY_KEYS
    if unknown:
        raise CorpusError(f"manifest entry {package}: unknown key(s) {', '.join(sorted(unknown))}")
    system = merged.get("system")
    if system not in SYSTEMS:
        raise CorpusError(f"manifest entry {package}: system must be one of {', '.join(SYSTEMS)}, not {system!r}")
    if system == "custom" and not merged.get("build"):
        raise CorpusError(f"manifest entry {package}: a custom system needs build = [[...], ...]")
    kw: dict = {"package": package, "system": system, "raw": dict(merged)}
    for key in ("configure_args", "make_args", "cmake_args", "apt", "tests", "exclude"):
        if key in merged:
            kw[key] = _strings(merged[key], f"{package}.{key}")
    for key in ("bootstrap", "configure", "build"):
        if key in merged:
            kw[key] = _commands(merged[key], f"{package}.{key}")
    for key in ("make_vars", "files", "env"):
        if key in merged:
            v = merged[key]
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                raise CorpusError(f"{package}.{key} must be a table of strings")
            kw[key] = dict(v)
    for key, typ in (("source_dir", str), ("configure_script", str), ("note", str), ("apply_patches", bool),
                     ("timeout", (int, float))):
        if key in merged:
            if not isinstance(merged[key], typ):
                raise CorpusError(f"{package}.{key} has the wrong type ({type(merged[key]).__name__})")
            kw[key] = merged[key]
    return Entry(**kw)


def load_manifest(path: Path | None = None) -> dict[str, Entry]:
    """Package name -> Entry, in manifest order."""
    path = Path(path or MANIFEST)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise CorpusError(f"no corpus manifest at {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise CorpusError(f"{path}: {e}") from None
    defaults = doc.get("defaults", {})
    packages = doc.get("packages")
    if not isinstance(packages, dict) or not packages:
        raise CorpusError(f"{path} lists no [packages.NAME] tables")
    return {name: parse_entry(name, table, defaults) for name, table in packages.items()}


# --- choosing modules from a build's captures -------------------------------------------

# Compiler and feature probes of autoconf, CMake and Meson, and the compiler-option
# probes Makefiles feed from stdin: not code anybody ships.
_PROBE_PREFIXES = ("conftest", "_configtest", "cmTC_", "CMakeCCompilerId", "CMakeCXXCompilerId",
                   "CheckIncludeFile", "CheckSymbolExists", "CheckFunctionExists", "CheckTypeSize",
                   "CheckCSourceCompiles", "have_")
_STDIN_SOURCES = ("", "-", "/dev/null", "<stdin>")
# Test suites: not what a package ships, and some are extreme (one assertion macro
# expanded hundreds of times) in ways that would dominate size statistics.
_TEST_DIRS = frozenset({"test", "tests", "testsuite", "testsuites", "t", "unittest", "unittests",
                        "unit-tests", "regress", "regression", "fuzz", "fuzzing"})
_TEST_NAME = re.compile(r"(^test[_-].*|.*[_-]test|.*[_-]unittest)\.c$")
_PIC_FLAGS = frozenset({"-fPIC", "-fpic", "-DPIC"})


def _rel_source(meta: Mapping, tree: Path) -> str | None:
    """The module's source relative to the package tree, or None if outside it."""
    src = meta.get("source", "")
    p = Path(os.path.normpath(os.path.join(meta.get("cwd", ""), src)))
    try:
        return str(p.relative_to(tree))
    except ValueError:
        return None


def classify(meta: Mapping, tree: Path, entry: Entry | None = None) -> tuple[str, str | None]:
    """(kind, path relative to tree): kind is "module", "test", "probe", "outside" or "excluded"."""
    src = meta.get("source", "")
    if src in _STDIN_SOURCES:
        return "probe", None
    rel = _rel_source(meta, tree)
    cwd_parts = set(Path(meta.get("cwd", "")).parts)
    if os.path.basename(src).startswith(_PROBE_PREFIXES) or debsrc.PROBE_DIRS & (cwd_parts | set(Path(src).parts)):
        return "probe", rel
    if rel is None:
        return "outside", None
    parts = Path(rel).parts
    if entry and any(Path(rel).match(g) for g in entry.exclude):
        return "excluded", rel
    extra = {Path(t).parts for t in (entry.tests if entry else ())}
    if (_TEST_DIRS & set(parts[:-1]) or _TEST_NAME.match(parts[-1])
            or any(parts[:len(t)] == t for t in extra)):
        return "test", rel
    return "module", rel


def _variant_key(meta: Mapping):
    # Among one file's variants (PIC for the shared library, extra -D flags) the
    # non-PIC one, then the smallest hash: the same choice on every rebuild.
    return (bool(_PIC_FLAGS & set(meta.get("argv", []))), meta["hash"])


def select(capture_dir: Path, tree: Path, entry: Entry | None = None) -> tuple[list[dict], dict]:
    """One module per source file of the package; (kept sidecars, counts of what was dropped).

    Kept sidecars gain "rel_source" and "kind" ("module" or "test").
    """
    tree = Path(tree).resolve()
    by_source: dict[str, list[dict]] = {}
    dropped = {"probes": 0, "outside": 0, "excluded": 0, "variants": 0, "incomplete": 0}
    for side in sorted(Path(capture_dir).glob("*.json")):
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            dropped["incomplete"] += 1
            continue
        if not side.with_suffix(".bc").is_file():
            dropped["incomplete"] += 1
            continue
        what, rel = classify(meta, tree, entry)
        if what in ("probe", "outside", "excluded"):
            dropped[{"probe": "probes"}.get(what, what)] += 1
            continue
        by_source.setdefault(rel, []).append({**meta, "rel_source": rel, "kind": what})
    kept = []
    for rel, variants in sorted(by_source.items()):
        variants.sort(key=_variant_key)
        kept.append(variants[0])
        dropped["variants"] += len(variants) - 1
    return kept, dropped


def ir_stats(bitcode: bytes) -> dict:
    """IR statistics of a module file, for sidecars that lack them."""
    from .. import _core  # loading LLVM is not free: only when needed

    m = _core.LoadedModule(bitcode, name="module")
    functions = sum(1 for line in m.ir_text().splitlines() if line.startswith("define "))
    return {"ir_instructions": int(m.instruction_count()), "functions": functions}


def kind(m: Mapping) -> str:
    """A module record's kind: "test", "empty" (no function definitions: only data
    or nothing, so no pipeline has anything to work on) or "module"."""
    if m.get("kind") == "test":
        return "test"
    return "empty" if m.get("functions") == 0 else m.get("kind", "module")


# --- building one package --------------------------------------------------------------

def _driver() -> str:
    """clang-llm of this installation (next to the running Python in a venv)."""
    beside = Path(sys.executable).parent / "clang-llm"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("clang-llm")
    if not found:
        raise CorpusError("clang-llm is not on PATH (is clang-llm installed in this Python environment?)")
    return found


def _installed(pkg: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip().endswith(" installed")


def ensure_apt(packages: Iterable[str], log=None) -> None:
    """apt-get install the manifest's build dependencies that are missing."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise CorpusError(f"missing build dependencies {' '.join(missing)}: "
                          f"run apt-get install {' '.join(missing)} as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    for attempt in range(2):
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if log:
            log.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
        if r.returncode == 0:
            return
        if attempt == 0:  # stale package lists are the usual cause
            subprocess.run(["apt-get", "update"], env=env, stdin=subprocess.DEVNULL, capture_output=True)
    raise CorpusError(f"apt-get install {' '.join(missing)} failed: {(r.stderr or r.stdout).strip()[-500:]}")


def _version(package: str) -> str:
    for dsc in sorted(debsrc.fetch(package).glob("*.dsc"))[-1:]:
        for line in dsc.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return ""


def prepare_tree(entry: Entry, tree: Path) -> None:
    """A fresh source tree of entry's package at tree (which must not exist yet),
    patched or not as the entry says: what the corpus build and the linked-program
    benchmark (bench/program_sizes.py) configure."""
    if entry.apply_patches or entry.package in debsrc.RECIPES:
        # debsrc.prepare keeps a pristine copy (its own recipe decides on patches).
        debsrc.prepare(entry.package, tree)
    else:
        debsrc.extract(entry.package, tree, apply_patches=False)


def _error_lines(log: Path, limit: int = 5) -> list[str]:
    """The first compiler/make errors of a build log: why a build was partial."""
    out = []
    pat = re.compile(r"(error:|Error \d+|\*\*\* )")
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                if pat.search(line) and "warning:" not in line:
                    out.append(line.strip()[:300])
                    if len(out) >= limit:
                        break
    except OSError:
        pass
    return out


def _stage_env(entry: Entry, driver: str, capture: Path | None, package: str) -> dict[str, str]:
    venv_bin = str(Path(driver).parent)
    env = {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        # clang's own -Oz pipeline: the build is exactly -Oz whatever candidates
        # exist, and the captured module is taken before any pipeline runs anyway.
        "CLANG_LLM_POLICY": "oz",
        # Settings of the caller's shell that would change or fail the build.
        "CLANG_LLM_MODE": "", "CLANG_LLM_LOG": "", "CLANG_LLM_STRICT": "0",
        "CLANG_LLM_CAPTURE": str(capture) if capture else "",
        "CLANG_LLM_CAPTURE_PKG": package if capture else "",
    }
    env.update(entry.env)
    return env


def build_package(entry: Entry, lay: Layout, jobs: int = 2, keep_tree: bool = False) -> dict:
    """Fetch, configure and build one package in capture mode; move its kept modules
    into the corpus and write its record. Returns the record (also for failures)."""
    pkg = entry.package
    # dpkg-source leaves copies of the tarballs beside the tree it extracts: a
    # folder per package keeps them where removing the build removes them too.
    # (The path is part of some modules' hashes: CMake passes absolute paths.)
    workdir = lay.builds / pkg
    tree = workdir / "tree"
    capture = lay.captures / pkg
    log_path = lay.logs / f"{pkg}.log"
    for d in (workdir, capture):
        shutil.rmtree(d, ignore_errors=True)
    for d in (lay.logs, lay.modules, lay.packages, lay.builds):
        d.mkdir(parents=True, exist_ok=True)
    capture.mkdir(parents=True)
    record = {"package": pkg, "system": entry.system, "fingerprint": entry.fingerprint,
              "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "version": "", "status": "failed", "reason": "", "configure_s": 0.0, "build_s": 0.0}
    driver = _driver()
    recipe = entry.recipe()
    t_start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            ensure_apt(entry.apt, log)
            record["version"] = _version(pkg)
            prepare_tree(entry, tree)
        except (CorpusError, debsrc.DebSrcError) as e:
            record["reason"] = f"set-up: {' '.join(str(e).split())[:500]}"
            _write_json(lay.record(pkg), record)
            return record
    stages = (("configure", debsrc.Recipe(pkg, entry.system, recipe.configure, (), (), recipe.apply_patches,
                                          recipe.files), None),
              ("build", debsrc.Recipe(pkg, entry.system, (), recipe.build, (), recipe.apply_patches,
                                      recipe.files), capture))
    failure = None
    for stage, rec, cap in stages:
        t0 = time.monotonic()
        try:
            debsrc.build(rec, tree, driver, CFLAGS, env=_stage_env(entry, driver, cap, pkg), jobs=jobs,
                         timeout=entry.timeout)
        except debsrc.BuildError as e:
            failure = (stage, str(e).splitlines()[0])
        finally:
            record[f"{stage}_s"] = round(time.monotonic() - t0, 1)
            # debsrc writes each stage's log afresh; the package's log keeps both.
            if (tree / debsrc.BUILD_LOG).exists():
                with open(log_path, "a", encoding="utf-8") as log, \
                        open(tree / debsrc.BUILD_LOG, encoding="utf-8", errors="replace") as part:
                    shutil.copyfileobj(part, log)
        if failure:
            break

    kept, dropped = select(capture, tree, entry)
    captured = len(list(capture.glob("*.json")))
    modules = []
    for meta in kept:
        h = meta["hash"]
        if "ir_instructions" not in meta or "functions" not in meta:
            meta.update(ir_stats((capture / f"{h}.bc").read_bytes()))
        meta["package"] = pkg
        target = lay.modules / f"{h}.bc"
        if not target.exists():
            # The first package to produce a module owns its sidecar; a later one
            # still lists the hash in its own record.
            os.replace(capture / f"{h}.bc", target)
            _write_json(lay.modules / f"{h}.json", meta)
        modules.append({"hash": h, "source": meta["rel_source"], "kind": meta["kind"], "bytes": meta.get("bytes"),
                        "ir_instructions": meta["ir_instructions"], "functions": meta["functions"]})
    record.update({
        "captured": captured,
        "dropped": dropped,
        "modules": modules,
    })
    if failure is None and not modules:
        # A build that succeeds without a module lost the flags on the way (a
        # Makefile that sets its own CFLAGS or a later -O), or built nothing in C.
        record["reason"] = (f"the build captured no modules ({dropped['probes']} probes): "
                            f"does it compile C with CC={driver} and CFLAGS={CFLAGS}?")
    elif failure is None:
        record["status"] = "ok"
    else:
        stage, why = failure
        record["status"] = "partial" if modules and stage == "build" else "failed"
        record["reason"] = why
        record["errors"] = _error_lines(log_path)
    record["wall_s"] = round(time.monotonic() - t_start, 1)
    _write_json(lay.record(pkg), record)
    shutil.rmtree(capture, ignore_errors=True)
    if not keep_tree:
        shutil.rmtree(workdir, ignore_errors=True)
    return record


# --- the corpus as a whole ---------------------------------------------------------------

def records(root: Path | None = None) -> dict[str, dict]:
    """Package -> its build record (every package built so far, failed ones too)."""
    lay = layout(root)
    out = {}
    for p in sorted(lay.packages.glob("*.json")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CorpusError(f"corrupt package record {p}: {e}") from None
        out[rec["package"]] = rec
    return out


def load_split(path: Path | None = None) -> dict[str, str]:
    """Package -> split name, from split.json ({} if there is none yet)."""
    path = Path(path or SPLIT)
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8"))["packages"])


def _splits_wanted(split) -> set[str] | None:
    if split is None:
        return None
    wanted = {split} if isinstance(split, str) else set(split)
    bad = wanted - set(SPLITS)
    if bad:
        raise CorpusError(f"unknown split(s) {', '.join(sorted(bad))} (expected {', '.join(SPLITS)})")
    return wanted


def modules(split: str | Iterable[str] | None = None, include_tests: bool = False,
            include_empty: bool = False, root: Path | None = None, split_path: Path | None = None) -> list[dict]:
    """The corpus's unique modules, each once, sorted by (package, source).

    split: "train", "validation", "test", several of them, or None for every
    built package (also those the split does not name yet). A record is a dict:
    hash, path (the .bc), package, source (relative to the package's tree), kind
    ("module", or with include_tests "test", with include_empty "empty": see kind()),
    split, bytes, ir_instructions, functions. A module that several packages
    produced appears once, under the most protected split of those packages (test,
    then validation, then train).

    hash is the content hash the plugin computed at compile time, and the file's
    name: key results by it. A module read back from its .bc can hash differently
    (about a third do), because the plugin's bitcode does not keep the use-list
    order, which the printed IR the hash covers shows in its "; preds" comments.
    """
    lay = layout(root)
    assignment = load_split(split_path)
    wanted = _splits_wanted(split)
    best: dict[str, dict] = {}
    for pkg, rec in records(root).items():
        sp = assignment.get(pkg)
        for m in rec.get("modules", []):
            k = kind(m)
            if (k == "test" and not include_tests) or (k == "empty" and not include_empty):
                continue
            item = {**m, "kind": k, "package": pkg, "split": sp, "path": str(lay.modules / f"{m['hash']}.bc")}
            have = best.get(m["hash"])
            if have is None or (_PROTECTION[sp], have["package"]) > (_PROTECTION[have["split"]], pkg):
                best[m["hash"]] = item
    out = [m for m in best.values() if wanted is None or m["split"] in wanted]
    out.sort(key=lambda m: (m["package"], m["source"], m["hash"]))
    return out


def packages(split: str | Iterable[str] | None = None, split_path: Path | None = None) -> list[str]:
    """Package names assigned to the given split(s) (every assigned package for None)."""
    wanted = _splits_wanted(split)
    return sorted(p for p, s in load_split(split_path).items() if wanted is None or s in wanted)


def _package_counts(recs: Mapping[str, dict]) -> dict[str, dict]:
    """Per usable package: unique non-test modules it owns and their IR instructions."""
    counts = {}
    for pkg, rec in recs.items():
        mods = [m for m in rec.get("modules", []) if kind(m) == "module"]
        if rec.get("status") in ("ok", "partial") and mods:
            counts[pkg] = {"modules": len(mods), "ir_instructions": sum(m["ir_instructions"] or 0 for m in mods)}
    return counts


def _seeded_key(seed: int, package: str) -> str:
    return hashlib.sha256(f"{seed}:{package}".encode()).hexdigest()


def assign_split(sizes: Mapping[str, int], previous: Mapping[str, str] | None = None,
                 targets: Mapping[str, float] | None = None, seed: int = DEFAULT_SEED,
                 keep: Iterable[str] = SPLITS) -> dict[str, str]:
    """Package -> split, balancing module counts towards targets.

    Packages already assigned in previous whose split is in keep stay where they
    are (by default every one: test packages never move once chosen). The others
    are taken in a seeded pseudo-random order, and each goes to the split furthest
    below its share of the total; the result depends only on the inputs.
    """
    targets = dict(targets or DEFAULT_TARGETS)
    if set(targets) != set(SPLITS) or abs(sum(targets.values()) - 1) > 1e-9:
        raise CorpusError(f"split targets must give {', '.join(SPLITS)} shares summing to 1")
    keep = set(keep)
    out = {p: s for p, s in (previous or {}).items() if s in keep and p in sizes}
    have = {s: sum(sizes[p] for p, sp in out.items() if sp == s) for s in SPLITS}
    total = sum(sizes.values())
    for pkg in sorted((p for p in sizes if p not in out), key=lambda p: _seeded_key(seed, p)):
        deficit = {s: targets[s] * total - have[s] for s in SPLITS}
        # Ties (e.g. an empty corpus) go in SPLITS order.
        choice = max(SPLITS, key=lambda s: (deficit[s] / targets[s] if targets[s] else float("-inf"),
                                            -SPLITS.index(s)))
        out[pkg] = choice
        have[choice] += sizes[pkg]
    return dict(sorted(out.items()))


def write_split(root: Path | None = None, path: Path | None = None, seed: int | None = None,
                reassign: bool = False) -> dict:
    """Update split.json with every usable built package. Assignments already there
    stay; with reassign, train and validation are redrawn but test stays fixed."""
    path = Path(path or SPLIT)
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    seed = seed if seed is not None else old.get("seed", DEFAULT_SEED)
    targets = old.get("targets", DEFAULT_TARGETS)
    counts = _package_counts(records(root))
    # A package that dropped out of the corpus keeps its assignment: a test package
    # must not become trainable by failing once and being rebuilt later.
    previous = old.get("packages", {})
    # Balance on capped module counts: a split filled by one large package (a
    # thousand modules of postgresql) would measure one code base, not held-out code.
    sizes = {p: min(c["modules"], SPLIT_WEIGHT_CAP) for p, c in counts.items()}
    assigned = assign_split(sizes, previous, targets, seed, keep=("test",) if reassign else SPLITS)
    for p, s in previous.items():
        assigned.setdefault(p, s)
    summary = {s: {"packages": 0, "modules": 0, "ir_instructions": 0} for s in SPLITS}
    for p, s in assigned.items():
        c = counts.get(p)
        if c:
            summary[s]["packages"] += 1
            summary[s]["modules"] += c["modules"]
            summary[s]["ir_instructions"] += c["ir_instructions"]
    doc = {
        "about": "Package -> split of the corpus (clang_llm.train.corpus). Test packages are never "
                 "used by search, candidate selection or training. Counts are non-test modules.",
        "seed": seed,
        "targets": targets,
        "counts": summary,
        "packages": dict(sorted(assigned.items())),
    }
    _write_json(path, doc)
    return doc


def stats_path(root: Path | None = None, manifest: Mapping[str, Entry] | None = None,
               recs: Mapping[str, dict] | None = None) -> Path:
    """Where the statistics of this corpus go: the committed corpus_stats.json
    describes a build of the whole manifest, so a corpus that lacks manifest
    packages (a partial rebuild on a new machine) writes its own beside its
    records instead of overwriting the committed figures with a part of them."""
    recs = records(root) if recs is None else recs
    if manifest is not None and set(manifest) - set(recs):
        return layout(root).root / "corpus_stats.json"
    return STATS


def write_stats(root: Path | None = None, path: Path | None = None,
                manifest: Mapping[str, Entry] | None = None) -> dict:
    """corpus_stats.json: per package status, timings, modules and IR totals
    (at `path`, default stats_path())."""
    recs = records(root)
    per = {}
    unique: dict[str, dict] = {}
    status_count = {"ok": 0, "partial": 0, "failed": 0}
    owners: dict[str, set[str]] = {}
    for pkg, rec in recs.items():
        for m in rec.get("modules", []):
            owners.setdefault(m["hash"], set()).add(pkg)
    for pkg, rec in recs.items():
        mods = rec.get("modules", [])
        lib = [m for m in mods if kind(m) == "module"]
        status_count[rec["status"]] = status_count.get(rec["status"], 0) + 1
        row = {
            "version": rec.get("version", ""),
            "system": rec.get("system", ""),
            "status": rec["status"],
            "configure_s": rec.get("configure_s", 0.0),
            "build_s": rec.get("build_s", 0.0),
            "captured": rec.get("captured", 0),
            "modules": len(lib),
            "test_modules": sum(1 for m in mods if kind(m) == "test"),
            "empty_modules": sum(1 for m in mods if kind(m) == "empty"),
            "ir_instructions": sum(m["ir_instructions"] or 0 for m in lib),
            "functions": sum(m["functions"] or 0 for m in lib),
            "bitcode_bytes": sum(m["bytes"] or 0 for m in lib),
            # Modules another package produced too (identical IR, e.g. shared gnulib files).
            "shared": sum(1 for m in lib if len(owners[m["hash"]]) > 1),
            "dropped": rec.get("dropped", {}),
        }
        if rec.get("reason"):
            row["reason"] = rec["reason"]
        per[pkg] = row
        for m in lib:
            unique.setdefault(m["hash"], m)
    not_built = sorted(set(manifest or {}) - set(recs))
    doc = {
        "about": "Corpus statistics (clang_llm.train.corpus); rebuild: clang-llm-data corpus build",
        "llvm": _llvm_version(),
        "totals": {
            "packages": status_count,
            "not_built": not_built,
            "unique_modules": len(unique),
            "ir_instructions": sum(m["ir_instructions"] or 0 for m in unique.values()),
            "bitcode_bytes": sum(m["bytes"] or 0 for m in unique.values()),
            "test_modules": sum(r["test_modules"] for r in per.values()),
            "empty_modules": sum(r["empty_modules"] for r in per.values()),
        },
        "packages": per,
    }
    _write_json(Path(path or stats_path(root, manifest, recs)), doc)
    return doc


def _llvm_version() -> str:
    try:
        from .. import _core

        return _core.LLVM_VERSION
    except ImportError:
        return ""


@contextlib.contextmanager
def _locked(lay: Layout):
    lay.root.mkdir(parents=True, exist_ok=True)
    with open(lay.root / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CorpusError(f"another corpus build is running on {lay.root}") from None
        yield


def _todo(entries: Mapping[str, Entry], recs: Mapping[str, dict], force: bool, retry_failed: bool) -> list[str]:
    out = []
    for name, entry in entries.items():
        rec = recs.get(name)
        if (force or rec is None or rec.get("fingerprint") != entry.fingerprint
                or (retry_failed and rec.get("status") == "failed")):
            out.append(name)
    return out


def build(names: Iterable[str] | None = None, jobs: int = 2, force: bool = False, retry_failed: bool = False,
          keep_trees: bool = False, root: Path | None = None, manifest: Path | None = None,
          stats_path: Path | None = None, split_path: Path | None = None, update_split: bool = False,
          echo=print) -> dict[str, dict]:
    """Build the named manifest packages (all by default) that need it; returns their records.

    The split is only extended when asked (update_split, or `corpus split`): which
    packages become test packages should not depend on where a build was stopped.
    """
    # Read once: the manifest may be edited while a long build runs.
    entries = all_entries = load_manifest(manifest)
    if names:
        names = list(names)
        unknown = [n for n in names if n not in entries]
        if unknown:
            raise CorpusError(f"not in the manifest: {', '.join(unknown)}")
        entries = {n: entries[n] for n in names}
    lay = layout(root)
    from tqdm import tqdm

    done = {}
    with _locked(lay):
        todo = _todo(entries, records(root), force, retry_failed)
        skipped = len(entries) - len(todo)
        if skipped:
            echo(f"corpus: {skipped} package(s) already built (--force rebuilds, --retry-failed retries failures)")
        bar = tqdm(todo, desc="packages", unit="pkg", disable=None, file=sys.stderr)
        for name in bar:
            bar.set_postfix_str(name)
            rec = build_package(entries[name], lay, jobs=jobs, keep_tree=keep_trees)
            done[name] = rec
            n_mod = sum(1 for m in rec.get("modules", []) if kind(m) == "module")
            n_test = sum(1 for m in rec.get("modules", []) if kind(m) == "test")
            line = (f"{name} {rec['version']}: {rec['status']} in {rec.get('wall_s', 0):.0f}s, "
                    f"{n_mod} modules (+{n_test} test) of {rec.get('captured', 0)} captured")
            if rec.get("reason"):
                line += f"; {rec['reason'][:300]}"
            (bar.write if not bar.disable else echo)(line)
            write_stats(root, stats_path, all_entries)
        if update_split and todo:
            write_split(root, split_path)
    return done


# --- command line -----------------------------------------------------------------------

def _cmd_build(args) -> int:
    done = build(args.packages or None, jobs=args.jobs, force=args.force, retry_failed=args.retry_failed,
                 keep_trees=args.keep_trees, manifest=args.manifest, update_split=args.split)
    failed = [p for p, r in done.items() if r["status"] == "failed"]
    _print_summary()
    if failed:
        print(f"corpus: {len(failed)} package(s) failed: {', '.join(failed)} (logs: {layout().logs})",
              file=sys.stderr)
    return 0


def _print_summary(split_path: Path | None = None) -> None:
    recs = records()
    per_split: dict[str | None, int] = {}
    for m in modules(split_path=split_path):
        per_split[m["split"]] = per_split.get(m["split"], 0) + 1
    status: dict[str, int] = {}
    for r in recs.values():
        status[r["status"]] = status.get(r["status"], 0) + 1
    print(f"corpus: {len(recs)} packages ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))}); "
          f"{sum(per_split.values())} unique modules: "
          + ", ".join(f"{s} {per_split.get(s, 0)}" for s in SPLITS)
          + (f", not in the split yet {per_split[None]}" if per_split.get(None) else ""))
    missing = sorted(set(_package_counts(recs)) - set(load_split(split_path)))
    if missing:
        print(f"corpus: {len(missing)} built package(s) are not in the split yet ({', '.join(missing[:8])}"
              f"{', ...' if len(missing) > 8 else ''}): run `clang-llm-data corpus split`")


def _cmd_status(args) -> int:
    recs = records()
    assignment = load_split()
    entries = load_manifest(args.manifest)
    for name in entries:
        rec = recs.get(name)
        if rec is None:
            print(f"{name:24} not built")
            continue
        mods = rec.get("modules", [])
        n_mod = sum(1 for m in mods if kind(m) == "module")
        n_test = sum(1 for m in mods if kind(m) == "test")
        stale = "" if rec.get("fingerprint") == entries[name].fingerprint else " (manifest entry changed)"
        print(f"{name:24} {rec['status']:8} {n_mod:6} modules {n_test:5} test  "
              f"{rec.get('wall_s', 0):7.0f}s  {assignment.get(name, '-'):10}{stale}"
              + (f"  {rec['reason'][:120]}" if rec.get("reason") else ""))
    _print_summary()
    return 0


def _cmd_split(args) -> int:
    doc = write_split(seed=args.seed, reassign=args.reassign)
    for s in SPLITS:
        c = doc["counts"][s]
        print(f"{s:10} {c['packages']:3} packages {c['modules']:7} modules {c['ir_instructions']:10} IR instructions")
    print(f"wrote {SPLIT}")
    return 0


def _cmd_stats(args) -> int:
    entries = load_manifest(args.manifest)
    path = stats_path(manifest=entries)
    doc = write_stats(path=path, manifest=entries)
    print(f"wrote {path}: {doc['totals']['unique_modules']} unique modules"
          + (f" ({len(doc['totals']['not_built'])} manifest packages not built here, so not {STATS})"
             if doc["totals"]["not_built"] else ""))
    return 0


def register(subparsers) -> None:
    ap = subparsers.add_parser("corpus", help="build the module corpus from Debian source packages",
                               description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="corpus_command", required=True)
    b = sub.add_parser("build", help="build manifest packages in capture mode (resumable)")
    b.add_argument("--packages", nargs="+", metavar="PKG", help="only these manifest packages")
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="make -j (default: %(default)s)")
    b.add_argument("--force", action="store_true", help="rebuild packages that are already built")
    b.add_argument("--retry-failed", action="store_true", help="rebuild packages whose last build failed")
    b.add_argument("--keep-trees", action="store_true", help="keep build trees (default: removed after capture)")
    b.add_argument("--split", action="store_true",
                   help="afterwards add the new packages to split.json (see `corpus split`)")
    b.add_argument("--manifest", type=Path, default=None, help=f"(default: {MANIFEST})")
    b.set_defaults(func=_cmd_build)
    s = sub.add_parser("status", help="per-package build status, modules and split")
    s.add_argument("--manifest", type=Path, default=None)
    s.set_defaults(func=_cmd_status)
    p = sub.add_parser("split", help="add built packages to split.json (existing assignments stay)")
    p.add_argument("--seed", type=int, default=None, help="seed for packages not assigned yet")
    p.add_argument("--reassign", action="store_true",
                   help="redraw train/validation (test packages stay fixed)")
    p.set_defaults(func=_cmd_split)
    t = sub.add_parser("stats", help=f"rewrite {STATS.name} from the package records")
    t.add_argument("--manifest", type=Path, default=None)
    t.set_defaults(func=_cmd_stats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clang_llm.train.corpus")
    register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["corpus", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except (CorpusError, debsrc.DebSrcError) as e:
        print(f"clang-llm-data corpus: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("clang-llm-data corpus: interrupted (finished packages are kept; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
