"""The correctness gate: a pipeline enters the shipped candidate set only if it passes.

    clang-llm-data validate baseline                      # once: torture baseline + csmith references
    clang-llm-data validate pipelines --candidates        # every candidate -> data/validation.json
    clang-llm-data validate pipelines --pipeline-file F [--machine-outliner | --codegen BITS] [--limit N]

    from clang_llm.train import validate
    v = validate.validate(passes, codegen=0)   # -> Verdict(ok, reasons, counts, seconds)

A pipeline (passes, codegen knob bits) passes when

- determinism: real modules compiled twice give the same object bytes;
- torture: every self-checking C test from Debian's gcc-12-source
  (gcc.c-torture/execute and the ``dg-do run`` tests of gcc.dg/torture) that
  passes at both clang-22 -O0 and -Oz still passes;
- rules: it contains none of pipelines.UNSAFE_PASSES (passes known to
  miscompile; nothing is compiled for such a pipeline);
- regressions: self-checking C programs that pipelines once miscompiled
  (data/gate_regressions/), each reduced from the case that was found, pass;
- csmith: on csmith-generated programs (fixed seeds) the output equals -O0's;
- programs: real Debian source packages (zlib, bzip2, lua5.4, xz-utils, jansson,
  cjson, pcre2; the recipes of clang_llm.train.debsrc) built with the pipeline through their own build
  systems still pass their own test suites. Single-file tests miss what whole
  programs exercise: s19+mo passed the other suites and broke zlib's inflate.

Programs are compiled through the route users get: ``clang-llm -Oz-llm`` with
the ``fixed`` back end and CLANG_LLM_STRICT=1, so a pipeline that does not parse
or aborts LLVM is an error here instead of a silent fallback to -Oz. Every
compile and every run is its own process with a timeout: an abort or a hang
costs one test.

The baselines are committed data (data/torture_baseline.txt,
data/csmith_baseline.txt; ``validate baseline`` rebuilds them). The extracted
suite, the generated programs and every (pipeline, test) outcome are cached
under ``data_root()/validate`` so a rerun only compiles what changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import REPO, committed_dir, data_root, write_atomic

SUITES = ("determinism", "regressions", "torture", "csmith", "programs")

COMPILE_TIMEOUT = 60.0
RUN_TIMEOUT = 10.0
# csmith programs can loop for a long time; only quick ones are kept, so the
# run timeout above leaves a wide margin for slower (less optimised) code.
CSMITH_MAX_O0_SECONDS = 1.0
CSMITH_PROGRAMS = 300
CSMITH_MAX_SEEDS = 3000
CSMITH_INCLUDE = "/usr/include/csmith"
DETERMINISM_TORTURE = 16
DETERMINISM_CSMITH = 8

TRIPLET = "x86_64-pc-linux-gnu"
GCC_SOURCE_GLOB = "/usr/src/gcc-12/gcc-12*.tar.xz"
TORTURE_DIRS = ("gcc.c-torture/execute", "gcc.dg/torture")

# The torture tests are 1990s-style C (implicit int, implicit declarations of
# abort/exit), accepted by GCC 12 but errors by default in clang 16 and later.
# -w does not silence warnings that default to errors, so they are named.
BASE_FLAGS = ("-w", "-Wno-implicit-function-declaration", "-Wno-implicit-int", "-Wno-int-conversion",
              "-Wno-incompatible-pointer-types", "-Wno-return-type")
LINK_FLAGS = ("-lm",)

TORTURE_BASELINE = "torture_baseline.txt"
CSMITH_BASELINE = "csmith_baseline.txt"
PROGRAMS_BASELINE = "programs_baseline.txt"
REGRESSIONS_DIR = "gate_regressions"

# Packages with a debsrc recipe whose test suite checks the program's behaviour:
# zlib's example round-trips (de)compression, bzip2 compares against reference
# streams, Lua checks its VM and libraries, xz runs ~30 C test programs, jansson
# and cJSON parse and print JSON in 213 and 19 unit tests, PCRE2 matches thousands
# of regular expressions against expected output.
PROGRAMS = ("zlib", "bzip2", "lua5.4", "xz-utils", "jansson", "cjson", "pcre2")
# Whole builds and test suites: minutes, not seconds, on a loaded machine.
PROGRAM_TIMEOUT = 900.0
REPORT = "validation.json"


class ValidateError(Exception):
    """The gate cannot run (missing suite, stale baseline, missing tool)."""


# --- GCC testsuite directives ---------------------------------------------------
#
# gcc's testsuite steers each test with DejaGnu directives in comments, e.g.
# /* { dg-do run { target int128 } } */. Only what can be decided for
# x86_64-linux under clang is honoured; anything else skips the test, because
# running a test in a way its author did not intend makes the gate reject good
# pipelines.

# Effective-target keywords as they hold for x86_64-linux-gnu. Tests needing a
# feature clang lacks (nested functions, _Float32) are kept here as true: they
# fail to compile at -O0 and so never enter the baseline.
EFFECTIVE_TRUE = frozenset("""
int32plus int32 lp64 size32plus ptr32plus alloca label_values indirect_jumps trampolines
int128 stdint_types longlong64 double64 double64plus large_double inf c99_runtime fileio
mmap mempcpy untyped_assembly return_address fenv fenv_exceptions sse_runtime sse2_runtime
scheduling nonlocal_goto sync_int_long sync_char_short weak alias visibility
float16_runtime float32_runtime float32x_runtime float64_runtime float64x_runtime
float128_runtime float128x_runtime floatn_nx_runtime float32 __float128
base_quadfloat_support exceptions pthread signal cas_int fpic pie fstack_protector unwrapped
""".split())
EFFECTIVE_FALSE = frozenset("""
ia32 x32 ilp32 int16 freestanding run_expensive_tests vxworks_kernel dfp hppa
arm_fp16_alternative_ok vmx_hw avr nvptx newlib_nano_io
""".split())

# Directives that do not change whether or how the test runs.
_IGNORED_DIRECTIVES = frozenset("""
final prune-output warning message bogus excess-errors require-weak require-alias
require-visibility require-stack-size require-fork timeout timeout-factor
""".split())
# dg-add-options that add nothing on x86_64-linux (ieee: -mieee on alpha/sh; stack_size: small targets).
_NOOP_ADD_OPTIONS = frozenset({"ieee", "stack_size"})


class _Unknown(Exception):
    """A selector names something we cannot decide for this target."""


def _tcl_words(text: str, pos: int) -> tuple[list, int]:
    """Parse a Tcl list from text[pos:] up to the closing brace that ends it.

    Returns (words, index after the closing brace). A braced word is returned as
    a nested list, a quoted word as a string.
    """
    words: list = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif ch == "}":
            return words, pos + 1
        elif ch == "{":
            sub, pos = _tcl_words(text, pos + 1)
            words.append(sub)
        elif ch == '"':
            end = pos + 1
            buf = []
            while end < n and text[end] != '"':
                if text[end] == "\\" and end + 1 < n:
                    end += 1
                buf.append(text[end])
                end += 1
            if end >= n:
                raise ValueError("unterminated quoted word")
            words.append("".join(buf))
            pos = end + 1
        else:
            end = pos
            while end < n and not text[end].isspace() and text[end] not in "{}":
                end += 1
            words.append(text[pos:end])
            pos = end
    raise ValueError("unbalanced braces")


_DIRECTIVE = re.compile(r"\{\s*dg-([A-Za-z0-9_-]+)")


def directives(text: str) -> list[tuple[str, list]]:
    """The dg- directives of a test: [(name without "dg-", arguments)]."""
    out = []
    for m in _DIRECTIVE.finditer(text):
        words, _ = _tcl_words(text, m.end())
        out.append((m.group(1), words))
    return out


def _flatten(words) -> list[str]:
    out: list[str] = []
    for w in words if isinstance(words, list) else [words]:
        out.extend(_flatten(w) if isinstance(w, list) else [w])
    return out


def _term(word) -> bool:
    if isinstance(word, list):
        return selector(word)
    if "-" in word or "*" in word or "?" in word:  # a target triplet pattern
        return fnmatch.fnmatchcase(TRIPLET, word)
    if word in EFFECTIVE_TRUE:
        return True
    if word in EFFECTIVE_FALSE:
        return False
    raise _Unknown(word)


def selector(words: list) -> bool:
    """Evaluate a DejaGnu target selector (a list of triplets / effective targets,
    or an expression with !, && and ||) for x86_64-linux-gnu."""
    if not any(w in ("!", "&&", "||") for w in words if isinstance(w, str)):
        return any(_term(w) for w in words)
    pos = 0

    def atom() -> bool:
        nonlocal pos
        if pos >= len(words):
            raise _Unknown("truncated selector expression")
        w = words[pos]
        pos += 1
        if w == "!":
            return not atom()
        return _term(w)

    def conj() -> bool:
        nonlocal pos
        value = atom()
        while pos < len(words) and words[pos] == "&&":
            pos += 1
            value = atom() and value
        return value

    value = conj()
    while pos < len(words) and words[pos] == "||":
        pos += 1
        value = conj() or value
    if pos != len(words):
        raise _Unknown(f"cannot read selector {words!r}")
    return value


def _clause(args: list, index: int) -> bool:
    """Does the optional ``{ target SEL }`` clause at args[index] hold? (absent: yes)"""
    if len(args) <= index:
        return True
    clause = args[index]
    if not isinstance(clause, list) or not clause:
        raise _Unknown(f"clause {clause!r}")
    kind, sel = clause[0], clause[1:]
    if len(sel) == 1 and isinstance(sel[0], list):
        sel = sel[0]
    if kind == "target":
        return selector(sel)
    if kind == "xfail":  # expected to fail there: running it would only test the target
        return not selector(sel)
    raise _Unknown(f"clause kind {kind!r}")


def _option_words(arg) -> list[str]:
    text = " ".join(_flatten(arg)) if isinstance(arg, list) else arg
    return shlex.split(text)


# Options we replace (optimisation level) or that only affect GCC's dump files.
_DROP_OPTION = re.compile(r"-O.*|-fdump-.*|-fno-diagnostics.*|-fdiagnostics-.*|-save-temps")


def test_flags(text: str, require_run: bool) -> tuple[tuple[str, ...] | None, str]:
    """(extra compiler flags, "") for a runnable test, or (None, why it is skipped)."""
    from .. import driver

    try:
        found = directives(text)
    except ValueError as e:
        return None, f"unreadable directive: {e}"
    flags: list[str] = []
    saw_run = False
    try:
        for name, args in found:
            if name == "do":
                if not args or args[0] != "run":
                    return None, f"dg-do {args[0] if args else '?'}"
                if not _clause(args, 1):
                    return None, "dg-do run is not for this target"
                saw_run = True
            elif name in ("options", "additional-options"):
                if not args:
                    return None, f"empty dg-{name}"
                if _clause(args, 1):
                    flags += _option_words(args[0])
            elif name == "require-effective-target":
                if not args:
                    return None, "empty dg-require-effective-target"
                if _clause(args, 1) and not _term(args[0]):
                    return None, f"needs effective target {args[0]}"
            elif name in ("skip-if", "xfail-if", "xfail-run-if"):
                # Skipped or expected to fail on a matching target, for some
                # option sets: we run at other levels than GCC, so any match skips.
                if len(args) < 2 or not isinstance(args[1], list):
                    return None, f"dg-{name} without a selector"
                if selector(args[1]):
                    return None, f"dg-{name} matches this target"
            elif name == "add-options":
                what = args[0] if args and isinstance(args[0], str) else "?"
                if what not in _NOOP_ADD_OPTIONS:
                    return None, f"dg-add-options {what} (GCC-specific options)"
            elif name not in _IGNORED_DIRECTIVES:
                return None, f"dg-{name} is not supported here"
    except _Unknown as e:
        return None, f"cannot decide selector term {e}"
    if require_run and not saw_run:
        return None, "not a dg-do run test"
    kept = [f for f in flags if not _DROP_OPTION.fullmatch(f)]
    for f in kept:
        name = f.split("=", 1)[0]
        if name in driver.NEEDS_CLANG_MIDDLE_END:
            # clang-llm must compile with clang's own middle end for these
            # (strict mode refuses), so the test cannot exercise a pipeline.
            return None, f"option {f} needs clang's own middle end"
    return tuple(kept), ""


# --- tests -----------------------------------------------------------------------

@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest test class, whatever imports it
    suite: str                  # "regressions", "torture", "csmith" or "programs"
    id: str                     # path under gcc/testsuite, "csmith/<seed>", "regressions/<file>", "programs/<package>"
    source: Path
    flags: tuple[str, ...]      # beyond BASE_FLAGS
    expect: str | None = None   # csmith: the -O0 output; torture: exit status 0 is the check
    digest: str = ""            # identifies source, flags and expectation


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return data_root() / "validate"


def torture_root() -> Path:
    """gcc/testsuite with the two torture directories, extracted once from
    Debian's gcc-12-source tarball into the cache."""
    root = cache_dir() / "gcc-testsuite"
    stamp = root / ".extracted"
    if stamp.is_file():
        return root / "testsuite"
    import glob

    tarballs = sorted(glob.glob(GCC_SOURCE_GLOB))
    if not tarballs:
        raise ValidateError(f"no GCC source tarball at {GCC_SOURCE_GLOB}: install Debian's gcc-12-source "
                            "(apt-get install gcc-12-source)")
    tarball = tarballs[-1]
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gcc-testsuite.", dir=root.parent))
    try:
        patterns = [f"*/gcc/testsuite/{d}/*" for d in TORTURE_DIRS]
        r = subprocess.run(["tar", "-xJf", tarball, "-C", str(tmp), "--wildcards", *patterns],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ValidateError(f"cannot extract the torture tests from {tarball}: {r.stderr.strip()[-500:]}")
        (top,) = [p for p in tmp.iterdir() if p.is_dir()]
        (tmp / "testsuite").mkdir()
        (top / "gcc" / "testsuite").rename(tmp / "testsuite" / "_t")
        for d in TORTURE_DIRS:
            dest = tmp / "testsuite" / d
            dest.parent.mkdir(parents=True, exist_ok=True)
            (tmp / "testsuite" / "_t" / d).rename(dest)
        shutil.rmtree(tmp / "testsuite" / "_t")
        shutil.rmtree(top)
        (tmp / ".extracted").write_text(Path(tarball).name + "\n")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root / "testsuite"


def discover_torture(root: Path | None = None) -> tuple[list[Test], dict[str, str]]:
    """All torture tests this gate can run, and {test id: why skipped} for the rest.

    Only the top level of each directory: builtins/ needs GCC's helper library and
    the other subdirectories are target-specific (ieee/ needs its .x option files).
    """
    root = root or torture_root()
    tests, skipped = [], {}
    for d in TORTURE_DIRS:
        require_run = d != "gcc.c-torture/execute"  # execute/ runs every test unless told otherwise
        for path in sorted((root / d).glob("*.c")):
            tid = f"{d}/{path.name}"
            data = path.read_bytes()
            flags, why = test_flags(data.decode("utf-8", errors="replace"), require_run)
            if flags is None:
                skipped[tid] = why
                continue
            tests.append(Test("torture", tid, path, flags, None, _digest(data, *flags)))
    return tests, skipped


def csmith_dir() -> Path:
    return cache_dir() / "csmith"


def csmith_version() -> str:
    exe = shutil.which("csmith")
    if not exe:
        raise ValidateError("csmith is not installed (apt-get install csmith libcsmith-dev)")
    # csmith writes platform.info into its working directory: keep it out of the caller's.
    with tempfile.TemporaryDirectory(prefix="csmith-") as tmp:
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, cwd=tmp)
    return r.stdout.split("\n")[0].strip() or "unknown"


def csmith_program(seed: int, fresh: bool = False) -> Path:
    """The program csmith generates for this seed (cached; generated on first use,
    or again if fresh)."""
    path = csmith_dir() / f"{seed}.c"
    if path.is_file() and not fresh:
        return path
    exe = shutil.which("csmith")
    if not exe:
        raise ValidateError("csmith is not installed (apt-get install csmith libcsmith-dev)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # From stdout, not -o FILE: csmith copies its command line into the program's
    # header comment, so a temporary file name would make every machine's program
    # (and its digest) differ from the baseline's.
    r = subprocess.run([exe, "--seed", str(seed)], capture_output=True, timeout=120, cwd=path.parent)
    if r.returncode != 0 or not r.stdout:
        raise ValidateError(f"csmith --seed {seed} failed: {r.stderr.decode(errors='replace').strip()[-300:]}")
    write_atomic(path, r.stdout)
    return path


def _csmith_flags() -> tuple[str, ...]:
    if not Path(CSMITH_INCLUDE, "csmith.h").is_file():
        raise ValidateError(f"csmith's runtime headers are missing from {CSMITH_INCLUDE} "
                            "(apt-get install libcsmith-dev)")
    return (f"-I{CSMITH_INCLUDE}",)


# --- running one compile / one program -------------------------------------------

_TIMEOUT_CMD = shutil.which("timeout")


@dataclass
class Proc:
    rc: int | None          # None: timed out
    out: str
    err: str
    seconds: float


def _run(cmd: list[str], timeout: float, env: dict | None = None, cwd: str | None = None) -> Proc:
    """Run in a session of its own, so a timeout kills the whole tree (clang's
    linker, the plugin's trial children), not just the direct child."""
    start = time.perf_counter()
    if _TIMEOUT_CMD:
        # A second deadline that does not depend on us: if this process is
        # interrupted, a looping test program still dies instead of spinning on.
        cmd = [_TIMEOUT_CMD, "-s", "KILL", f"{timeout + 5:g}", *cmd]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        rc = None
    return Proc(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.perf_counter() - start)


def _first_error(stderr: str) -> str:
    """The line of a failed compile that says why, shortened."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        # The plugin's strict-mode error wraps the policy's reason in a Python
        # exception with its traceback ("... At: file(line): ..."): keep the reason.
        _, sep, why = ln.partition("policy failed (strict mode): ")
        if sep:
            why = re.sub(r"^(policy error: )?(PolicyError: )?(fixed: )?", "", why)
            return why.split("  At:")[0].strip()[:240]
    for pat in ("LLVM ERROR", "clang-llm: error", "error:", "fatal", "Assertion", "Stack dump"):
        for ln in lines:
            if pat in ln:
                return ln[:240]
    return (lines[-1][:240] if lines else "no message")


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


class Compiler:
    """How a test is compiled: plain clang-22 at a level, or clang-llm with a pipeline."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cc: tuple[str, str] | None = None):
        self.name, self.argv, self.env = name, argv, env
        # (CC, CFLAGS) for whole-package builds: a build system's probes and link
        # steps need a compiler command that behaves as a user's CC does.
        self.cc = cc or (argv[0], " ".join(argv[1:]))

    @classmethod
    def clang(cls, level: str) -> Compiler:
        from .. import _paths

        return cls(f"clang{level}", [_paths.find_clang(), level], _clean_env())

    @classmethod
    def pipeline(cls, passes: str, codegen: int, pipeline_file: Path) -> Compiler:
        """The command clang-llm's driver runs for -Oz-llm when the decision is
        known before the module is (policy.preset_decision): clang-22 with the
        plugin, handed the pipeline directly, so a shipped candidate runs exactly
        as in a user's build and the gate's ~2,300 compiles skip the driver's and
        the embedded policy's start-up. Should the plugin not accept the preset, it
        asks the policy, which is set to the same pipeline (fixed, strict), so
        nothing else is ever compiled in its place."""
        from .. import _paths, policy

        env = _clean_env()
        env.update(CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE_FILE=str(pipeline_file), CLANG_LLM_STRICT="1")
        env["CLANG_LLM_CODEGEN"] = str(int(codegen))
        env[policy.PRESET_VAR] = f"{int(codegen)}:{passes}"
        # -fno-crash-diagnostics: a pipeline that crashes LLVM is an expected verdict
        # here, not a bug report to leave in /tmp once per test.
        # Packages build with CC=clang-llm CFLAGS=-Oz-llm, a user's route; the
        # preset in env reaches the plugin there too.
        return cls(f"pipeline {pipeline_file.stem}", [_paths.find_clang(), "-Oz", "-fno-crash-diagnostics", "-Xclang",
                                "-disable-llvm-passes", f"-fpass-plugin={_paths.plugin_path()}"], env,
                   cc=(clang_llm_exe(), "-Oz-llm -fno-crash-diagnostics"))

    @classmethod
    def policy(cls, backend: str) -> Compiler:
        env = _clean_env()
        env.update(CLANG_LLM_POLICY=backend, CLANG_LLM_STRICT="1")
        return cls(f"policy {backend}", [clang_llm_exe(), "-Oz-llm"], env)


def clang_llm_exe() -> str:
    here = Path(sys.executable).parent / "clang-llm"
    if here.is_file():
        return str(here)
    found = shutil.which("clang-llm")
    if not found:
        raise ValidateError("cannot find the clang-llm command (is clang-llm installed in this environment?)")
    return found


# Which clang-22 to run is a choice of toolchain, made the same way for the
# baselines (find_clang) and for clang-llm, so it is passed on.
_TOOLCHAIN_VARS = ("CLANG_LLM_CLANG", "CLANG_LLM_CLANGXX")


def _clean_env() -> dict[str, str]:
    """The environment without the developer's clang-llm settings, which would
    otherwise change what is being validated."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CLANG_LLM_") or k in _TOOLCHAIN_VARS}


@dataclass
class Outcome:
    # pass | compile-error | compile-timeout | run-fail | run-timeout | wrong-output | nondeterministic
    status: str
    detail: str = ""
    seconds: float = 0.0
    # Not kept in the result cache: what the program printed and how long it ran.
    output: str = ""
    run_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "pass"


def build_and_run(comp: Compiler, test: Test, work: Path, run_timeout: float = RUN_TIMEOUT,
                  objects: _Results | None = None) -> Outcome:
    """Compile and link one test, run it, and judge its exit status / output.

    objects: outcomes by (test, object bytes). The test is then compiled to an
    object first; an object some earlier compile (any pipeline's) produced has
    its outcome already, and is neither linked nor run again. Pipelines close to
    each other compile most small tests to the same bytes."""
    from .. import _paths

    start = time.perf_counter()
    obj_key = None
    with tempfile.TemporaryDirectory(prefix="t.", dir=work) as tmp:
        exe = os.path.join(tmp, "a.out")
        if objects is None:
            steps = [([*comp.argv, *BASE_FLAGS, *test.flags, str(test.source), "-o", exe, *LINK_FLAGS], comp.env)]
        else:
            obj = os.path.join(tmp, "t.o")
            steps = [([*comp.argv, *BASE_FLAGS, *test.flags, "-c", str(test.source), "-o", obj], comp.env),
                     ([_paths.find_clang(), *BASE_FLAGS, *test.flags, obj, "-o", exe, *LINK_FLAGS], _clean_env())]
        for n, (argv, env) in enumerate(steps):
            c = _run(argv, COMPILE_TIMEOUT, env, tmp)
            if c.rc is None:
                return Outcome("compile-timeout", f"compile took over {COMPILE_TIMEOUT:g} s", time.perf_counter() - start)
            if c.rc != 0:
                o = Outcome("compile-error", _first_error(c.err), time.perf_counter() - start)
                if obj_key:
                    objects.put_key("object", test.id, obj_key, o)
                return o
            if objects is not None and n == 0:
                obj_key = f"{test.digest}:{_digest(Path(obj).read_bytes())}"
                known = objects.get_key("object", test.id, obj_key)
                if known is not None:
                    return Outcome(known.status, known.detail, time.perf_counter() - start)
        r = _run([exe], run_timeout, _clean_env(), tmp)
    o = _judge(test, r, time.perf_counter() - start, run_timeout)
    if obj_key:
        objects.put_key("object", test.id, obj_key, o)
    return o


def _judge(test: Test, r: Proc, secs: float, run_timeout: float) -> Outcome:
    if r.rc is None:
        return Outcome("run-timeout", f"ran over {run_timeout:g} s", secs)
    if r.rc != 0:
        what = f"exit {r.rc}" if r.rc > 0 else _signal_name(r.rc)
        return Outcome("run-fail", what, secs)
    out = r.out.strip()
    if test.expect is not None and out != test.expect:
        return Outcome("wrong-output", f"printed {out[:80]!r}, expected {test.expect!r}", secs, out, r.seconds)
    return Outcome("pass", "", secs, out, r.seconds)


def compile_twice(comp: Compiler, test: Test, work: Path) -> Outcome:
    """Compile one module to an object twice; the bytes must be equal."""
    start = time.perf_counter()
    objs = []
    with tempfile.TemporaryDirectory(prefix="d.", dir=work) as tmp:
        for i in range(2):
            obj = os.path.join(tmp, f"{i}.o")
            c = _run([*comp.argv, *BASE_FLAGS, *test.flags, "-c", str(test.source), "-o", obj],
                     COMPILE_TIMEOUT, comp.env, tmp)
            if c.rc is None:
                return Outcome("compile-timeout", f"compile took over {COMPILE_TIMEOUT:g} s",
                               time.perf_counter() - start)
            if c.rc != 0:
                return Outcome("compile-error", _first_error(c.err), time.perf_counter() - start)
            objs.append(Path(obj).read_bytes())
    secs = time.perf_counter() - start
    if objs[0] != objs[1]:
        return Outcome("nondeterministic", f"objects differ ({len(objs[0])} vs {len(objs[1])} bytes)", secs)
    return Outcome("pass", "", secs)


def _parallel(items: list, fn: Callable, jobs: int, progress: Callable[[int, int], None] | None = None):
    """fn over items on `jobs` threads (each call spends its time in subprocesses);
    yields (item, result) as they finish."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(fn, it): it for it in items}
        for done, fut in enumerate(as_completed(futures), 1):
            if progress:
                progress(done, len(items))
            yield futures[fut], fut.result()


def _work_dir() -> Path:
    d = cache_dir() / "work"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _ordered(tests: list[Test]) -> list[Test]:
    """A stable order that spreads any prefix across the whole suite (for --limit)."""
    return sorted(tests, key=lambda t: hashlib.sha256(t.id.encode()).hexdigest())


# --- baselines ----------------------------------------------------------------------

def _clang_version() -> str:
    from .. import _paths

    r = subprocess.run([_paths.find_clang(), "--version"], capture_output=True, text=True)
    return r.stdout.split("\n")[0].strip()


def build_torture_baseline(jobs: int, out: Path, log: Callable[[str], None] = print) -> dict:
    """Find the torture tests that compile and pass at clang-22 -O0 and -Oz."""
    tests, skipped = discover_torture()
    log(f"torture: {len(tests)} runnable tests ({len(skipped)} skipped by their directives)")
    work = _work_dir()
    levels = {lvl: Compiler.clang(lvl) for lvl in ("-O0", "-Oz")}
    passed: dict[str, set[str]] = {lvl: set() for lvl in levels}
    failures: dict[str, dict[str, int]] = {lvl: {} for lvl in levels}
    jobs_list = [(lvl, t) for t in tests for lvl in levels]
    start = time.perf_counter()
    for (lvl, t), o in _parallel(jobs_list, lambda job: build_and_run(levels[job[0]], job[1], work), jobs,
                                 _progress_printer("torture baseline", log)):
        if o.ok:
            passed[lvl].add(t.id)
        else:
            failures[lvl][o.status] = failures[lvl].get(o.status, 0) + 1
    both = [t for t in tests if t.id in passed["-O0"] and t.id in passed["-Oz"]]
    stats = {
        "found": len(tests) + len(skipped), "skipped_by_directives": len(skipped), "runnable": len(tests),
        "pass_O0": len(passed["-O0"]), "pass_Oz": len(passed["-Oz"]), "pass_both": len(both),
        "failures_O0": failures["-O0"], "failures_Oz": failures["-Oz"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    tarball = (cache_dir() / "gcc-testsuite" / ".extracted").read_text().strip()
    header = [
        "# The gcc torture tests (self-checking) that compile and pass at both clang-22 -O0 and -Oz.",
        "# Rebuild: clang-llm-data validate baseline   (clang_llm/train/validate.py)",
        f"# source\t{tarball} (Debian gcc-12-source): {', '.join(TORTURE_DIRS)}",
        f"# clang\t{_clang_version()}",
        f"# flags\t{' '.join(BASE_FLAGS)} <test's dg-options> <level> ... {' '.join(LINK_FLAGS)}",
        f"# stats\t{json.dumps(stats, sort_keys=True)}",
        "# test id<TAB>digest of source and flags",
    ]
    write_atomic(out, "\n".join(header + [f"{t.id}\t{t.digest}" for t in sorted(both, key=lambda t: t.id)]) + "\n")
    log(f"torture: {stats['pass_O0']} pass at -O0, {stats['pass_Oz']} at -Oz, {len(both)} at both -> {out}")
    return stats


def build_csmith_baseline(jobs: int, out: Path, count: int = CSMITH_PROGRAMS,
                          log: Callable[[str], None] = print) -> dict:
    """Generate programs for seeds 1, 2, ... until `count` are kept: those that
    finish quickly at -O0 and print the same at -Oz. Their -O0 output is the reference."""
    flags = _csmith_flags()
    work = _work_dir()
    o0, oz = Compiler.clang("-O0"), Compiler.clang("-Oz")
    kept: dict[int, tuple[str, str]] = {}
    dropped: dict[int, str] = {}
    start = time.perf_counter()

    def judge(seed: int) -> tuple[str, str | None]:
        src = csmith_program(seed)
        # Programs slower than the limit are dropped anyway: do not wait for them.
        ref = build_and_run(o0, Test("csmith", f"csmith/{seed}", src, flags), work,
                            run_timeout=2 * CSMITH_MAX_O0_SECONDS)
        if not ref.ok:
            return "O0 " + ref.status, None
        if ref.run_seconds > CSMITH_MAX_O0_SECONDS:
            return "slow at -O0", None
        # csmith prints one checksum line; anything else is not a usable reference.
        if not ref.output or "\n" in ref.output or "\t" in ref.output:
            return "no checksum line", None
        z = build_and_run(oz, Test("csmith", f"csmith/{seed}", src, flags, ref.output), work)
        if not z.ok:
            return "Oz " + z.status, None
        return "kept", ref.output

    seed = 1
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while len(kept) < count and seed <= CSMITH_MAX_SEEDS:
            batch = list(range(seed, min(seed + max(8, count - len(kept)), CSMITH_MAX_SEEDS + 1)))
            seed = batch[-1] + 1
            for s, (status, expect) in zip(batch, pool.map(judge, batch)):
                if status == "kept":
                    kept[s] = (_digest(csmith_program(s).read_bytes()), expect)
                else:
                    dropped[s] = status
            log(f"csmith baseline: {len(kept)} kept after {seed - 1} seeds")
    seeds = sorted(kept)[:count]
    if len(seeds) < count:
        raise ValidateError(f"only {len(seeds)} csmith programs qualified in {CSMITH_MAX_SEEDS} seeds")
    why_dropped: dict[str, int] = {}
    for s, status in dropped.items():
        if s < max(seeds):  # the last batch may have gone past the seed that completed the set
            why_dropped[status] = why_dropped.get(status, 0) + 1
    stats = {"seeds_tried": max(seeds), "kept": len(seeds), "dropped": why_dropped,
             "seconds": round(time.perf_counter() - start, 1)}
    header = [
        "# csmith programs (seed -> generated program digest, -O0 output) that finish within "
        f"{CSMITH_MAX_O0_SECONDS:g} s at clang-22 -O0 and print the same at -Oz.",
        "# Rebuild: clang-llm-data validate baseline   (clang_llm/train/validate.py)",
        f"# csmith\t{csmith_version()} (Debian csmith): csmith --seed SEED",
        f"# clang\t{_clang_version()}",
        f"# flags\t{' '.join(BASE_FLAGS)} {' '.join(flags)} <level> ... {' '.join(LINK_FLAGS)}",
        f"# stats\t{json.dumps(stats, sort_keys=True)}",
        "# seed<TAB>program digest<TAB>expected output",
    ]
    write_atomic(out, "\n".join(header + [f"{s}\t{kept[s][0]}\t{kept[s][1]}" for s in seeds]) + "\n")
    log(f"csmith: kept {len(seeds)} of {max(seeds)} seeds -> {out}")
    return stats


def _read_baseline(name: str) -> list[list[str]]:
    path = committed_dir() / name
    if not path.is_file():
        raise ValidateError(f"no baseline {path}: run `clang-llm-data validate baseline` first")
    return [ln.split("\t") for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def torture_tests() -> list[Test]:
    """The torture baseline's tests, checked against the extracted suite."""
    rows = _read_baseline(TORTURE_BASELINE)
    found = {t.id: t for t in discover_torture()[0]}
    out = []
    for row in rows:
        tid, digest = row[0], row[1]
        t = found.get(tid)
        if t is None or t.digest != digest:
            raise ValidateError(f"torture test {tid} differs from the baseline (another gcc-12-source, or "
                                "changed directive handling): rebuild with `clang-llm-data validate baseline`")
        out.append(t)
    return out


def csmith_tests() -> list[Test]:
    rows = _read_baseline(CSMITH_BASELINE)
    flags = _csmith_flags()
    out = []
    for seed, digest, expect in rows:
        src = csmith_program(int(seed))
        if _digest(src.read_bytes()) != digest:
            # A cache written by an older version of this code (-o FILE) holds another header.
            src = csmith_program(int(seed), fresh=True)
        if _digest(src.read_bytes()) != digest:
            raise ValidateError(f"csmith seed {seed} generates another program than the baseline's (csmith "
                                f"version {csmith_version()}?): rebuild with `clang-llm-data validate baseline`")
        out.append(Test("csmith", f"csmith/{seed}", src, flags, expect, _digest(digest, expect, *flags)))
    return out


def _recipe_digest(package: str) -> str:
    from . import debsrc

    return _digest(repr(debsrc.recipe(package)))


def regression_tests() -> list[Test]:
    """The gate's own regression programs: C files that exit 0 when compiled
    correctly (a `// flags: ...` line adds options). Each must pass at clang-22
    -O0 and -Oz (checked by the integration tests), so no baseline is kept."""
    out = []
    for path in sorted((committed_dir() / REGRESSIONS_DIR).glob("*.c")):
        data = path.read_bytes()
        flags: tuple[str, ...] = ()
        for line in data.decode("utf-8", "replace").splitlines():
            if line.startswith("// flags:"):
                flags = tuple(shlex.split(line.split(":", 1)[1]))
        out.append(Test("regressions", f"regressions/{path.name}", path, flags, None, _digest(data, *flags)))
    if not out:
        raise ValidateError(f"no regression programs in {committed_dir() / REGRESSIONS_DIR}")
    return out


def _program_test(package: str) -> Test:
    """A package of PROGRAMS as a test; its digest names the Debian source
    (the .dsc pins every tarball's checksum) and the recipe, so cached outcomes
    are not reused for another source version."""
    from . import debsrc

    try:
        dsc = debsrc._dsc(debsrc.fetch(package))
    except debsrc.DebSrcError as e:
        raise ValidateError(f"cannot fetch the source of {package} for the programs suite: "
                            f"{str(e).splitlines()[0]}") from None
    if dsc is None:
        raise ValidateError(f"no .dsc for {package} in {debsrc.CACHE_DIR}")
    return Test("programs", f"programs/{package}", dsc, (), None, _digest(dsc.read_bytes(), _recipe_digest(package)))


def program_tests() -> list[Test]:
    """The programs baseline's packages, with the sources apt gives now.

    A recipe changed since the baseline is an error (rebuild it). A newer Debian
    source (a stable or security update) is not: it is what users build, and a
    version that failed at -Oz would fail every pipeline, -Oz's own included."""
    out = []
    for package, recipe_digest, *_ in _read_baseline(PROGRAMS_BASELINE):
        if _recipe_digest(package) != recipe_digest:
            raise ValidateError(f"programs/{package}: the debsrc recipe changed since the baseline: "
                                "rebuild with `clang-llm-data validate baseline`")
        out.append(_program_test(package))
    return out


def build_and_test_package(comp: Compiler, test: Test, work: Path, jobs: int) -> Outcome:
    """Build a package of the programs suite with comp (its build system, its
    probes) and run the package's own test suite. A failure keeps the build and
    test logs, and whatever the test suite wrote (test-suite.log, per-test logs
    and outputs), in a directory under cache_dir()/program-logs that the
    outcome's detail names: a flake is diagnosed from what it left, not rerun."""
    from . import debsrc

    package = test.id.split("/", 1)[1]
    start = time.perf_counter()
    cc, cflags = comp.cc
    with tempfile.TemporaryDirectory(prefix=f"p.{package}.", dir=work) as tmp:
        tree = debsrc.prepare(package, Path(tmp) / "src")
        try:
            debsrc.build(package, tree, cc, cflags, env=comp.env, jobs=jobs, timeout=PROGRAM_TIMEOUT)
        except debsrc.BuildError as e:
            what = str(e).splitlines()[0]
            kept = _keep_logs(comp, package, tree)
            return Outcome("compile-timeout" if "(exit 124)" in what else "compile-error",
                           f"{what}: {_first_error(debsrc._file_tail(tree / debsrc.BUILD_LOG))}; logs: {kept}",
                           time.perf_counter() - start)
        tests_started = time.time()
        r = debsrc.run_tests(package, tree, env=comp.env, jobs=jobs, timeout=PROGRAM_TIMEOUT)
        if r.ok:
            return Outcome("pass", "", time.perf_counter() - start)
        kept = _keep_logs(comp, package, tree, since=tests_started)
        status = "run-timeout" if r.returncode == 124 else "run-fail"
        return Outcome(status, f"test suite exit {r.returncode}: {_failed_lines(r.tail)}; logs: {kept}",
                       time.perf_counter() - start)


def _failed_lines(tail: str, n: int = 3) -> str:
    """The lines of a test log's tail that say what failed (else its last lines)."""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    hits = [ln for ln in lines if re.search(r"fail|error|abort|mismatch|differ", ln, re.I)]
    return " | ".join((hits or lines)[-n:])[:300]


# What a failed test suite leaves is text the suite wrote while it ran (automake's
# test-suite.log and <test>.log/.trs, ctest's Testing/Temporary, pcre2's testtry*
# outputs that its scripts diff against the expected files). Programs, objects and
# archives that `make check` (re)built are not evidence, and the caps keep one
# runaway log from filling the cache.
_KEPT_FILE_MAX = 4 << 20
_KEPT_TOTAL_MAX = 64 << 20
_KEPT_FILES_MAX = 400


def _is_artifact(path: Path) -> bool:
    if path.suffix in (".o", ".a", ".so", ".lo", ".la", ".gcda", ".gcno"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return True


def _keep_logs(comp: Compiler, package: str, tree: Path, since: float | None = None) -> Path:
    """Copy the build and test logs, and every text file the test suite wrote
    into the tree (modified at or after `since`), to a fresh directory; returns it."""
    from . import debsrc

    tag = re.sub(r"[^A-Za-z0-9_.+-]", "_", comp.name)
    root = cache_dir() / "program-logs"
    root.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f"{tag}.{package}.{time.strftime('%Y%m%d-%H%M%S')}.", dir=root))
    for name in (debsrc.BUILD_LOG, debsrc.TEST_LOG):
        if (tree / name).is_file():
            shutil.copyfile(tree / name, d / name)
    if since is None:
        return d
    total = files = 0
    # mtimes have the file system's granularity; a second's slack keeps a file
    # written in the test run's first instant.
    cutoff = since - 1.0
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree)
        if files >= _KEPT_FILES_MAX or rel.name in (debsrc.BUILD_LOG, debsrc.TEST_LOG):
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_mtime < cutoff or st.st_size > _KEPT_FILE_MAX \
                or total + st.st_size > _KEPT_TOTAL_MAX or _is_artifact(path):
            continue
        dest = d / "tree" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        total += st.st_size
        files += 1
    return d


def build_programs_baseline(jobs: int, out: Path, log: Callable[[str], None] = print) -> dict:
    """The packages of PROGRAMS that build and pass their test suites at clang-22 -Oz."""
    work = _work_dir()
    oz = Compiler.clang("-Oz")
    rows, failed = [], {}
    start = time.perf_counter()
    for package in PROGRAMS:
        t = _program_test(package)
        o = build_and_test_package(oz, t, work, jobs)
        log(f"programs baseline: {package} {o.status} ({o.seconds:.0f} s) {o.detail}")
        if o.ok:
            rows.append(f"{package}\t{_recipe_digest(package)}\t{t.source.name}")
        else:
            failed[package] = f"{o.status}: {o.detail}"
    stats = {"packages": len(PROGRAMS), "pass_Oz": len(rows), "failed_Oz": failed,
             "seconds": round(time.perf_counter() - start, 1)}
    header = [
        "# Debian source packages whose own test suites pass when built with clang-22 -Oz",
        "# (recipes: clang_llm.train.debsrc). Rebuild: clang-llm-data validate baseline",
        f"# clang\t{_clang_version()}",
        f"# stats\t{json.dumps(stats, sort_keys=True)}",
        "# package<TAB>digest of the recipe<TAB>the Debian source it passed with",
    ]
    write_atomic(out, "\n".join(header + rows) + "\n")
    log(f"programs: {len(rows)} of {len(PROGRAMS)} pass at -Oz -> {out}")
    return stats


def _progress_printer(what: str, log: Callable[[str], None]) -> Callable[[int, int], None]:
    step = {"next": 0.0}

    def progress(done: int, total: int) -> None:
        if done == total or done / total >= step["next"]:
            log(f"  {what}: {done}/{total}")
            step["next"] = done / total + 0.1

    return progress


# --- validating a pipeline ------------------------------------------------------------

@dataclass
class Verdict:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    # suite -> {"tests", "passed", "failed", "cached"}
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    # suite -> [(test id, status, detail)] of every failure
    failures: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    # Time spent in the tests' compiles and runs, cached outcomes included: unlike
    # `seconds` it does not shrink when a rerun finds everything cached.
    test_seconds: float = 0.0

    def to_json(self, max_failures: int = 50) -> dict:
        return {"ok": self.ok, "reasons": self.reasons, "counts": self.counts, "seconds": round(self.seconds, 1),
                "test_seconds": round(self.test_seconds, 1),
                "failures": {s: [list(f) for f in fs[:max_failures]] for s, fs in self.failures.items()}}


_toolchain_id: str | None = None


def toolchain_id() -> str:
    """What the cached outcomes depend on besides the pipeline: the plugin and clang."""
    global _toolchain_id
    if _toolchain_id is None:
        from .. import _paths

        clang = os.path.realpath(_paths.find_clang())
        st = os.stat(clang)
        _toolchain_id = _digest(Path(_paths.plugin_path()).read_bytes(), f"{clang} {st.st_size} {st.st_mtime_ns}",
                                " ".join(BASE_FLAGS + LINK_FLAGS), f"{COMPILE_TIMEOUT} {RUN_TIMEOUT}")
    return _toolchain_id


def pipeline_key(passes: str, codegen: int) -> str:
    from .store import pipeline_key as key

    return key(passes, codegen)


class _Results:
    """Outcomes of one pipeline, appended to a JSON-lines file as they arrive."""

    # Timeouts are not kept: on two shared cores they may be load, not the pipeline.
    TRANSIENT = ("compile-timeout", "run-timeout")

    def __init__(self, path: Path | None):
        self.path = path
        self.lock = threading.Lock()
        self.known: dict[tuple[str, str, str], Outcome] = {}
        if path and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interrupted run
                    continue
                self.known[(e["suite"], e["test"], e["digest"])] = Outcome(e["status"], e["detail"], e["seconds"])

    def get(self, suite: str, t: Test) -> Outcome | None:
        return self.get_key(suite, t.id, t.digest)

    def put(self, suite: str, t: Test, o: Outcome) -> None:
        self.put_key(suite, t.id, t.digest, o)

    def get_key(self, suite: str, test_id: str, digest: str) -> Outcome | None:
        return self.known.get((suite, test_id, digest))

    def put_key(self, suite: str, test_id: str, digest: str, o: Outcome) -> None:
        if self.path is None or o.status in self.TRANSIENT:
            return
        line = json.dumps({"suite": suite, "test": test_id, "digest": digest, "status": o.status,
                           "detail": o.detail, "seconds": round(o.seconds, 3)})
        with self.lock:
            self.known[(suite, test_id, digest)] = o
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def _canaries() -> set[str]:
    """Ids of the tests any pipeline has failed, from the outcome cache."""
    return {test for f in (cache_dir() / "results").glob("*.jsonl")
            for (_suite, test, _digest), o in _Results(f).known.items() if not o.ok}


SMOKE_PROGRAM = r"""
#include <stdio.h>
static int tri(int n) { int s = 0; for (int i = 1; i <= n; i++) s += i; return s; }
int main(void) { printf("%d\n", tri(10)); return tri(10) != 55; }
"""


def _smoke(comp: Compiler, work: Path) -> str | None:
    """None if the pipeline compiles and runs a trivial program, else why not.
    A pipeline that does not parse or aborts on everything fails here, once."""
    src = work / "smoke.c"
    if not src.is_file():
        src.write_text(SMOKE_PROGRAM)
    o = build_and_run(comp, Test("smoke", "smoke.c", src, (), "55"), work)
    return None if o.ok else f"{o.status}: {o.detail}"


def validate(passes: str, codegen: int = 0, *, suites: Iterable[str] = SUITES,
             jobs: int | None = None, limit: int | None = None, only: Iterable[str] | None = None,
             use_cache: bool = True, log: Callable[[str], None] | None = None,
             fail_fast: bool = False) -> Verdict:
    """Run the correctness gate on one pipeline.

    fail_fast: first run the canaries, the tests some other pipeline already
    failed (selection meets the same weak spots again and again: a fold that a
    link_failure test needs, a miscompiled csmith program), and stop there if
    any fails; the verdict is then final but its counts cover the canaries only.

    limit: at most this many tests per suite (a fixed subset spread over the
    suite), for quick runs; a verdict on a subset is not a full validation.
    only: just these test ids (e.g. "gcc.c-torture/execute/20000113-1.c",
    "csmith/12"), to re-check known failures.
    """
    from .. import pipelines

    unsafe = pipelines.unsafe_passes(passes)
    if unsafe:
        return Verdict(ok=False, reasons=[f"rules: contains {name}: {pipelines.UNSAFE_PASSES[name]}"
                                          for name in unsafe])
    key = pipeline_key(passes, codegen)
    pdir = cache_dir() / "pipelines"
    pdir.mkdir(parents=True, exist_ok=True)
    pfile = pdir / f"{key}.pipeline"
    if not pfile.is_file() or pfile.read_text() != passes:
        write_atomic(pfile, passes)
    comp = Compiler.pipeline(passes, codegen, pfile)
    cache = cache_dir() / "results" / f"{key}-{toolchain_id()}.jsonl" if use_cache else None
    objects = cache_dir() / "objects" / f"{toolchain_id()}.jsonl" if use_cache else None
    if fail_fast and only is None:
        canaries = _canaries() if use_cache else set()
        if canaries:
            early = run_gate(comp, cache, suites=suites, jobs=jobs, limit=limit, only=canaries, log=log,
                             objects=objects)
            if not early.ok:
                early.reasons.append(f"(fail-fast: stopped after {sum(c['tests'] for c in early.counts.values())} "
                                     "canary tests that other pipelines failed)")
                return early
    return run_gate(comp, cache, suites=suites, jobs=jobs, limit=limit, only=only, log=log, objects=objects)


def validate_policy(backend: str, *, suites: Iterable[str] = ("regressions", "torture", "csmith", "programs"),
                    jobs: int | None = None, limit: int | None = None,
                    log: Callable[[str], None] | None = None) -> Verdict:
    """The gate's suites compiled by clang-llm -Oz-llm under a policy back end
    (e.g. the learned one): what a user's build gets, module by module. Not
    cached: a policy's decisions change with its model."""
    return run_gate(Compiler.policy(backend), None, suites=suites, jobs=jobs, limit=limit, log=log)


def run_gate(comp: Compiler, cache: Path | None, *, suites: Iterable[str] = SUITES, jobs: int | None = None,
             limit: int | None = None, only: Iterable[str] | None = None,
             log: Callable[[str], None] | None = None, objects: Path | None = None) -> Verdict:
    """The suites compiled by comp; outcomes kept in cache (a JSON-lines file) if
    given, and by object bytes in objects (shared by all compilers) if given."""
    suites = tuple(suites)
    only = set(only) if only is not None else None
    unknown = set(suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites {sorted(unknown)} (expected some of {', '.join(SUITES)})")
    jobs = jobs or os.cpu_count() or 1
    start = time.perf_counter()
    work = _work_dir()
    results, by_object = _Results(cache), _Results(objects) if objects else None
    for store in (results, by_object):
        if store is not None and store.path:
            store.path.parent.mkdir(parents=True, exist_ok=True)

    verdict = Verdict(ok=True)
    why = _smoke(comp, work)
    if why:
        verdict.ok = False
        verdict.reasons.append(f"pipeline: cannot compile and run a trivial program: {why}")
        verdict.seconds = time.perf_counter() - start
        return verdict

    # suite -> (tests, how to run one, how many at once)
    plan: dict[str, tuple[list[Test], Callable, int]] = {}
    torture = csmith = None
    if "torture" in suites or "determinism" in suites:
        torture = _ordered(torture_tests())
    if "csmith" in suites or "determinism" in suites:
        csmith = _ordered(csmith_tests())
    if "determinism" in suites:
        # The largest modules give the optimiser the most room to depend on
        # something unstable (hash order, addresses).
        big = sorted(torture, key=lambda t: (-t.source.stat().st_size, t.id))[:DETERMINISM_TORTURE]
        plan["determinism"] = (big + csmith[:DETERMINISM_CSMITH],
                               lambda t: compile_twice(comp, t, work), jobs)
    if "regressions" in suites:
        plan["regressions"] = (regression_tests(), lambda t: build_and_run(comp, t, work, objects=by_object), jobs)
    if "torture" in suites:
        plan["torture"] = (torture, lambda t: build_and_run(comp, t, work, objects=by_object), jobs)
    if "csmith" in suites:
        plan["csmith"] = (csmith, lambda t: build_and_run(comp, t, work, objects=by_object), jobs)
    if "programs" in suites:
        # One package at a time; its build runs `jobs` compiles in parallel.
        plan["programs"] = (program_tests(), lambda t: build_and_test_package(comp, t, work, jobs), 1)

    for suite in SUITES:
        if suite not in plan:
            continue
        tests, fn, at_once = plan[suite]
        if only is not None:
            tests = [t for t in tests if t.id in only]
        if limit is not None:
            tests = tests[:limit]
        outcomes: dict[str, Outcome] = {}
        todo = []
        for t in tests:
            cached = results.get(suite, t)
            if cached is not None:
                outcomes[t.id] = cached
            else:
                todo.append(t)
        for t, o in _parallel(todo, fn, at_once, _progress_printer(suite, log) if log else None):
            outcomes[t.id] = o
            results.put(suite, t, o)
        verdict.test_seconds += sum(outcomes[t.id].seconds for t in tests)
        failed = sorted((t.id, outcomes[t.id].status, outcomes[t.id].detail) for t in tests
                        if not outcomes[t.id].ok)
        verdict.counts[suite] = {"tests": len(tests), "passed": len(tests) - len(failed), "failed": len(failed),
                                 "cached": len(tests) - len(todo)}
        if failed:
            verdict.ok = False
            verdict.failures[suite] = failed
            shown = ", ".join(f"{Path(tid).name} ({status}: {detail})" for tid, status, detail in failed[:4])
            more = f", and {len(failed) - 4} more" if len(failed) > 4 else ""
            verdict.reasons.append(f"{suite}: {len(failed)} of {len(tests)} tests fail: {shown}{more}")
    verdict.seconds = time.perf_counter() - start
    return verdict


# --- command line ------------------------------------------------------------------------

def _cmd_baseline(args) -> int:
    try:
        if not args.skip_torture:
            build_torture_baseline(args.jobs, committed_dir() / TORTURE_BASELINE)
        if not args.skip_csmith:
            build_csmith_baseline(args.jobs, committed_dir() / CSMITH_BASELINE, args.csmith_programs)
        if not args.skip_programs:
            build_programs_baseline(args.jobs, committed_dir() / PROGRAMS_BASELINE)
    except ValidateError as e:
        print(f"clang-llm-data: error: {e}", file=sys.stderr)
        return 1
    return 0


def _machine() -> str:
    import platform

    from . import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, {_clang_version()}"


def merge_entries(old: dict, new: dict) -> dict:
    """A report entry for a run of some suites, on top of an earlier entry for the
    same pipeline: the suites run now replace theirs, the others keep the earlier
    verdicts (a suite added to the gate need not cost a rerun of the rest). Each
    run's suites, date, toolchain and limit stay listed under "runs"."""
    def run(e):
        return {k: e.get(k) for k in ("suites", "date", "toolchain", "limit")}

    redone = set(new["suites"])
    kept = [s for s in old["suites"] if s not in redone]
    suites = [s for s in SUITES if s in redone or s in kept]
    limit = None if old.get("limit") is None and new.get("limit") is None else (new.get("limit") or old.get("limit"))
    reasons = [r for r in old["reasons"] if r.split(":", 1)[0] in kept] + new["reasons"]
    return {
        **new,
        "ok": not reasons, "excluded": bool(reasons), "reasons": reasons,
        "full": set(suites) == set(SUITES) and limit is None and (old.get("full") or set(kept) == set()),
        "limit": limit, "suites": suites,
        "counts": {s: c for s, c in {**old["counts"], **new["counts"]}.items() if s in suites},
        "failures": {**{s: f for s, f in old.get("failures", {}).items() if s in kept}, **new.get("failures", {})},
        "seconds": round(old.get("seconds", 0) + new["seconds"], 1),
        "test_seconds": round(old.get("test_seconds", 0) + new["test_seconds"], 1),
        "runs": old.get("runs", [run(old)]) + [run(new)],
    }


def _cmd_pipelines(args) -> int:
    from .. import pipelines

    todo: list[tuple[str, str, int]] = []
    if args.candidates_file:
        args.candidates = True
    if args.candidates:
        wanted = set(args.names.split(",")) if args.names else None
        source = (pipelines.parse(Path(args.candidates_file).read_text())[1] if args.candidates_file
                  else pipelines.candidates())
        for c in source:
            if wanted is None or c.name in wanted:
                todo.append((c.name, c.passes, c.codegen))
        if wanted and wanted - {n for n, _, _ in todo}:
            print(f"clang-llm-data: error: no candidates named {sorted(wanted - {n for n, _, _ in todo})}",
                  file=sys.stderr)
            return 1
    for path in args.pipeline_file or ():
        text = Path(path).read_text().strip()
        if not text:
            print(f"clang-llm-data: error: {path} is empty", file=sys.stderr)
            return 1
        codegen = args.codegen if args.codegen is not None else int(args.machine_outliner)
        name = Path(path).stem + pipelines.knob_suffix(codegen)
        todo.append((name, text, codegen))
    if not todo:
        print("clang-llm-data: error: give --candidates and/or --pipeline-file", file=sys.stderr)
        return 1

    report_path = Path(args.report)
    report = {"pipelines": []}
    if report_path.is_file():  # keep entries of pipelines not validated in this run
        report = json.loads(report_path.read_text())
    entries = {(e["name"], e["key"]): e for e in report.get("pipelines", [])}
    if args.candidates and not args.names and not args.candidates_file:
        # The whole shipped set: the report describes that set, not earlier ones.
        current = {(name, pipeline_key(passes, codegen)) for name, passes, codegen in todo}
        entries = {k: e for k, e in entries.items() if k in current}
    suites = tuple(args.suites.split(","))
    failed_any = False
    for name, passes, codegen in todo:
        print(f"validating {name} ({len(passes)} chars, codegen={codegen})", file=sys.stderr)
        try:
            v = validate(passes, codegen, suites=suites, jobs=args.jobs, limit=args.limit,
                         only=args.only.split(",") if args.only else None, use_cache=not args.fresh,
                         log=lambda s: print(s, file=sys.stderr))
        except ValidateError as e:
            print(f"clang-llm-data: error: {e}", file=sys.stderr)
            return 1
        key = pipeline_key(passes, codegen)
        entry = {"name": name, "key": key, "codegen": codegen, "ok": v.ok, "excluded": not v.ok,
                 "full": args.limit is None and not args.only and set(suites) == set(SUITES),
                 "limit": args.limit, "toolchain": toolchain_id(),
                 "suites": list(suites), **v.to_json(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if (name, key) in entries and not entry["full"] and not args.only:
            entry = merge_entries(entries[(name, key)], entry)
        entries[(name, key)] = entry
        failed_any |= not v.ok
        state = "ok" if v.ok else "EXCLUDED: " + "; ".join(v.reasons)
        print(f"{name}: {state} ({v.seconds:.0f} s; {json.dumps(v.counts)})", file=sys.stderr)
        report = {
            # Entries may come from several runs (each records its limit and suites).
            "command": "clang-llm-data validate pipelines --candidates [--names N,...] [--limit N]",
            "machine": _machine(),
            "baseline": {"regressions": len(regression_tests()), "torture": len(_read_baseline(TORTURE_BASELINE)),
                         "csmith": len(_read_baseline(CSMITH_BASELINE)),
                         "programs": len(_read_baseline(PROGRAMS_BASELINE))},
            "pipelines": sorted(entries.values(), key=lambda e: e["name"]),
        }
        report_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(report_path, json.dumps(report, indent=1) + "\n")
    print(f"wrote {report_path}", file=sys.stderr)
    return 2 if failed_any and args.check else 0


def admit(path: Path, report_path: Path, names: list[str] | None = None) -> list[str]:
    """Add candidates gated outside the shipped set (`validate pipelines
    --candidates-file`) to it: each named row of the candidates file (default:
    every row the shipped set lacks) joins candidates.tsv as validated, and its
    gate entry joins the shipped report, only if that entry is a full, passing
    run of every suite of this gate, for the same pipeline, on this toolchain.
    Returns the names added. The new rows go last, so that a label table of the
    set before can be extended (`clang-llm-data labels --extend`)."""
    from .. import pipelines
    from .store import pipeline_key

    shipped = {c.name: c for c in pipelines.candidates()}
    rows = pipelines.parse(Path(path).read_text())[1]
    if names is None:
        todo = [c for c in rows if c.name not in shipped]
    else:
        by = {c.name: c for c in rows}
        unknown = [n for n in names if n not in by]
        if unknown:
            raise ValidateError(f"{path} has no candidates named {', '.join(unknown)}")
        todo = [by[n] for n in names]
    gate = {(e["name"], e["key"]): e for e in json.loads(Path(report_path).read_text())["pipelines"]}
    retired = pipelines.retired_names()
    entries = []
    for c in todo:
        if c.name in shipped:
            raise ValidateError(f"{c.name}: the shipped set has a candidate of that name")
        if c.name.removesuffix(pipelines.knob_suffix(c.codegen)) in retired:
            raise ValidateError(f"{c.name}: an earlier set's candidate carried that name")
        unsafe = pipelines.unsafe_passes(c.passes)
        if unsafe:
            raise ValidateError(f"{c.name}: contains {', '.join(unsafe)}")
        e = gate.get((c.name, pipeline_key(c.passes, c.codegen)))
        why = ("no gate entry for this pipeline" if e is None
               else "not a full run of every suite" if not (e.get("full") and set(e["suites"]) == set(SUITES))
               else "excluded: " + "; ".join(e.get("reasons", [])) if not e.get("ok")
               else f"gated on another toolchain ({e['toolchain']})" if e.get("toolchain") != toolchain_id()
               else None)
        if why:
            raise ValidateError(f"{c.name}: {why} in {report_path}")
        entries.append(e)
    if not todo:
        return []
    pipelines.add_candidates([c._replace(validated=True) for c in todo])
    shipped_report = committed_dir() / REPORT
    rep = json.loads(shipped_report.read_text())
    keep = {(e["name"], e["key"]) for e in entries}
    rep["pipelines"] = sorted([e for e in rep["pipelines"] if (e["name"], e["key"]) not in keep] + entries,
                              key=lambda e: e["name"])
    write_atomic(shipped_report, json.dumps(rep, indent=1) + "\n")
    return [c.name for c in todo]


def _cmd_admit(args) -> int:
    try:
        added = admit(Path(args.candidates_file), Path(args.report), args.names.split(",") if args.names else None)
    except (ValidateError, OSError, KeyError, ValueError) as e:
        print(f"clang-llm-data: error: {e}", file=sys.stderr)
        return 1
    print(f"admitted {len(added)} candidate(s): {' '.join(added) or '-'}; the label table, best-fixed and the "
          "model now need `labels --extend`, `best-fixed --write` and `train`", file=sys.stderr)
    return 0


def _cmd_policy(args) -> int:
    from .. import pipelines

    suites = tuple(args.suites.split(","))
    print(f"gate suites {','.join(suites)} under CLANG_LLM_POLICY={args.backend}", file=sys.stderr)
    try:
        v = validate_policy(args.backend, suites=suites, jobs=args.jobs, limit=args.limit,
                            log=lambda s: print(s, file=sys.stderr))
    except ValidateError as e:
        print(f"clang-llm-data: error: {e}", file=sys.stderr)
        return 1
    report = {"command": "clang-llm-data " + " ".join(sys.argv[1:]), "machine": _machine(),
              "backend": args.backend, "candidate_set": pipelines.set_hash(), "suites": list(suites),
              "limit": args.limit, "toolchain": toolchain_id(), "ok": v.ok, **v.to_json(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.report)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(report, indent=1) + "\n")
    print(f"{args.backend}: {'ok' if v.ok else 'FAILED: ' + '; '.join(v.reasons)} ({v.seconds:.0f} s; "
          f"{json.dumps(v.counts)}); wrote {out}", file=sys.stderr)
    return 0 if v.ok else 2


def register(sub) -> None:
    from .. import pipelines

    p = sub.add_parser("validate", help="the correctness gate (determinism, gcc torture tests, csmith, "
                                        "packages' test suites)")
    vsub = p.add_subparsers(dest="validate_command", required=True)
    b = vsub.add_parser("baseline", help="build the torture baseline, the csmith references and the programs "
                                         "baseline (committed data)")
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    b.add_argument("--csmith-programs", type=int, default=CSMITH_PROGRAMS)
    b.add_argument("--skip-torture", action="store_true")
    b.add_argument("--skip-csmith", action="store_true")
    b.add_argument("--skip-programs", action="store_true")
    b.set_defaults(func=_cmd_baseline)
    v = vsub.add_parser("pipelines", help="validate pipelines; write a JSON report (ok or excluded with reasons)")
    v.add_argument("--candidates", action="store_true", help="the shipped candidate set (clang_llm.pipelines)")
    v.add_argument("--names", help="with --candidates: only these, comma-separated")
    v.add_argument("--candidates-file", help="instead of the shipped set, the candidates of this file (the format "
                                             "of candidates.tsv), e.g. pipelines for a next set")
    v.add_argument("--pipeline-file", action="append", help="a file holding one pipeline (may repeat)")
    v.add_argument("--machine-outliner", action="store_true", help="with --pipeline-file: outliner on")
    v.add_argument("--codegen", type=int, choices=range(pipelines.ALL_KNOBS + 1), metavar="BITS",
                   help="with --pipeline-file: code generator knob bits (pipelines.KNOBS; 1 = --machine-outliner)")
    v.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {','.join(SUITES)}")
    v.add_argument("--limit", type=int, help="at most N tests per suite (fixed subset): quick, not a full gate")
    v.add_argument("--only", help="just these test ids, comma-separated (e.g. to re-check failures)")
    v.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    v.add_argument("--fresh", action="store_true", help="ignore cached outcomes")
    v.add_argument("--report", default=str(committed_dir() / REPORT))
    v.add_argument("--check", action="store_true", help="exit with status 2 if any pipeline is excluded")
    v.set_defaults(func=_cmd_pipelines)
    a = vsub.add_parser("admit", help="add candidates that passed the whole gate in another report "
                                      "(validate pipelines --candidates-file) to the shipped set")
    a.add_argument("--candidates-file", required=True, help="where the rows come from (candidates.tsv format)")
    a.add_argument("--report", required=True, help="the gate report of that file's pipelines")
    a.add_argument("--names", help="only these, comma-separated (default: every row the shipped set lacks)")
    a.set_defaults(func=_cmd_admit)
    q = vsub.add_parser("policy", help="the gate's test programs compiled with -Oz-llm under a policy back end "
                                       "(the decisions a build gets); exit status 2 if any test fails")
    q.add_argument("--backend", default="onnx", help="CLANG_LLM_POLICY for the compiles (default onnx)")
    q.add_argument("--suites", default="regressions,torture,csmith,programs", help=f"comma-separated subset of {','.join(SUITES)}")
    q.add_argument("--limit", type=int, help="at most N tests per suite (fixed subset)")
    q.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    q.add_argument("--report", default=str(REPO / "bench" / "results" / "policy_gate.json"))
    q.set_defaults(func=_cmd_policy)
