"""Build real Debian source packages with a given compiler (end-to-end tests, benchmarks).

    tree = debsrc.prepare("xz-utils", workdir / "xz")        # fetch + extract (cached)
    res = debsrc.build("xz-utils", tree, "clang-llm", "-Oz-llm")
    ok = debsrc.run_tests("xz-utils", tree).ok
    sizes = debsrc.text_sizes(res.objects)

Sources come from ``apt-get source --download-only`` (the machine's deb-src entries)
and are cached under CACHE_DIR, so only the first use needs the mirror. A Recipe
says how one package is configured, built and tested; commands are argv lists with
{cc}, {cflags} and {jobs} filled in, never shell strings, so flags with spaces
survive every build system unchanged.

Nothing here imports the compiler-side modules at import time: tests use this
module to decide whether to skip before anything heavy is loaded.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(os.environ.get("CLANG_LLM_SRC_CACHE") or Path.home() / ".cache" / "clang-llm" / "debsrc")

TAIL_LINES = 40
BUILD_LOG = "debsrc-build.log"
TEST_LOG = "debsrc-test.log"

# Variables that would silently change what the recipe's command lines ask for
# (an exported CFLAGS is read by configure and CMake, MAKEFLAGS by make); a build
# here gets exactly the compiler and flags the caller names.
_SCRUBBED_ENV = ("CC", "CXX", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "MAKEFLAGS", "MFLAGS",
                 "MAKELEVEL", "CMAKE_BUILD_TYPE", "CMAKE_GENERATOR", "CMAKE_C_COMPILER_LAUNCHER")


class DebSrcError(Exception):
    """Base class: something outside the compiler went wrong (apt, dpkg-source, a build)."""


class FetchError(DebSrcError):
    """apt-get source failed: no deb-src entry, no network, unknown package."""


class BuildError(DebSrcError):
    """A configure or build command failed; the message ends with the log's tail."""

    def __init__(self, message: str, log: Path | None = None, tail: str = ""):
        super().__init__(message + (f"\n--- last lines of {log} ---\n{tail}" if tail else ""))
        self.log = log
        self.tail = tail


# --- recipes ---------------------------------------------------------------------

Command = tuple[str, ...]


@dataclass(frozen=True)
class Recipe:
    package: str                        # Debian source package name
    system: str                         # "cmake" | "make" | "autotools" (for reports)
    configure: tuple[Command, ...]
    build: tuple[Command, ...]
    test: tuple[Command, ...]
    # Some Debian patch series rewrite the upstream build system into one that
    # only works under dpkg-buildpackage (lua's libtool conversion); such recipes
    # build the pristine upstream tree instead.
    apply_patches: bool = True
    # Files written into the tree before configuring (relative path -> text):
    # stubs for files a DFSG repack removed, test scripts.
    files: Mapping[str, str] = field(default_factory=dict)
    note: str = ""


# Lua's source tarball ships no test suite, so the interpreter checks itself: each
# block asserts computed values, covering the VM, GC, string library (patterns,
# format, pack), tables, closures/upvalues, coroutines, errors and integer/float
# arithmetic. It runs once as source and once as luac bytecode (dump/undump).
_LUA_SELFTEST = r"""
local checks = 0
local function eq(a, b, what)
  checks = checks + 1
  if a ~= b then error(string.format("%s: got %s, expected %s", what, tostring(a), tostring(b)), 2) end
end

-- integer and float arithmetic
eq(7 // 2, 3, "floor div"); eq(-7 // 2, -4, "neg floor div"); eq(7 % -3, -2, "mod sign")
eq(math.maxinteger + 1, math.mininteger, "integer wraparound")
eq(2^10, 1024.0, "pow"); eq(math.type(1), "integer"); eq(math.type(1.0), "float")
eq(3 | 5, 7, "bor"); eq(6 & 3, 2, "band"); eq(1 << 62, 4611686018427387904, "shl"); eq(~0, -1, "bnot")
eq(math.floor(-3.5), -4, "floor"); eq(math.tointeger(8.0), 8, "tointeger")
eq(string.format("%.3f", math.pi), "3.142", "format float")
eq(tostring(1e300 * 1e10), "inf", "overflow to inf")

-- recursion and closures with shared upvalues
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
eq(fib(24), 46368, "fib")
local function counter()
  local n = 0
  return function() n = n + 1; return n end, function() return n end
end
local inc, get = counter(); inc(); inc(); inc()
eq(get(), 3, "shared upvalue")
local fs = {}
for i = 1, 5 do fs[i] = function() return i * i end end
eq(fs[4](), 16, "fresh loop variable per iteration")

-- tables: array part, hash part, sort, concat, length, next
local t = {}
for i = 1, 1000 do t[i] = (i * 7919) % 1009 end
table.sort(t)
for i = 2, #t do assert(t[i - 1] <= t[i], "sorted") end
eq(#t, 1000, "length")
local h = {}
for i = 1, 2000 do h["k" .. i] = i end
local sum = 0
for _, v in pairs(h) do sum = sum + v end
eq(sum, 2000 * 2001 // 2, "hash sum")
eq(table.concat({1, 2, 3}, "-"), "1-2-3", "concat")
local u = {table.unpack({10, 20, 30}, 2)}
eq(#u, 2, "unpack"); eq(u[2], 30, "unpack value")
table.insert(u, 1, 5); eq(table.remove(u), 30, "insert/remove")
eq(select("#", nil, nil, 3), 3, "select #")

-- strings: patterns, gsub with function, byte/char, rep, pack/unpack, utf8
eq(("hello world"):gsub("o", "0"), "hell0 w0rld", "gsub")
eq(select(2, ("a,b,,c"):gsub(",", ",")), 3, "gsub count")
local words = {}
for w in ("the quick  brown fox"):gmatch("%a+") do words[#words + 1] = w end
eq(#words, 4, "gmatch"); eq(words[3], "brown", "gmatch word")
eq(("x=10, y=20"):gsub("(%w+)=(%w+)", "%2=%1"), "10=x, 20=y", "captures")
eq(("%d items"):format(42), "42 items", "format int")
eq(string.char(72, 105), "Hi", "char"); eq(("A"):byte(), 65, "byte")
eq(("ab"):rep(3, ","), "ab,ab,ab", "rep sep")
eq(string.unpack("<i4", string.pack("<i4", -123456)), -123456, "pack i4")
eq(#string.pack("z", "abc"), 4, "pack z")
eq(utf8.len("h\u{e9}llo"), 5, "utf8 len"); eq(utf8.char(0x20AC), "\u{20AC}", "utf8 char")
eq(("Hello"):upper():lower():reverse(), "olleh", "upper/lower/reverse")
eq(string.find("abc[d]", "[d]", 1, true), 4, "plain find")

-- coroutines: generators, passing values both ways, status, wrap
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i * 10) end return "done" end)
eq(gen(), 10, "wrap 1"); eq(gen(), 20, "wrap 2"); eq(gen(), 30, "wrap 3"); eq(gen(), "done", "wrap end")
local co = coroutine.create(function(a) local b = coroutine.yield(a + 1); return b * 2 end)
local ok1, v1 = coroutine.resume(co, 1); eq(v1, 2, "resume in")
local ok2, v2 = coroutine.resume(co, 21); eq(v2, 42, "resume out")
eq(coroutine.status(co), "dead", "status"); assert(ok1 and ok2)
local perms = 0
local function permgen(a, n)
  if n == 0 then coroutine.yield(a) else
    for i = 1, n do a[n], a[i] = a[i], a[n]; permgen(a, n - 1); a[n], a[i] = a[i], a[n] end
  end
end
for _ in coroutine.wrap(function() permgen({1, 2, 3, 4, 5}, 5) end) do perms = perms + 1 end
eq(perms, 120, "permutations")

-- errors: pcall, error objects, xpcall with traceback, error levels, close vars
local okp, err = pcall(function() error({code = 7}) end)
eq(okp, false, "pcall status"); eq(err.code, 7, "error object")
local okx, msg = xpcall(function() local x = nil; return x.field end, function(m) return "handled: " .. m end)
eq(okx, false, "xpcall"); assert(msg:find("handled: .*attempt to index"), msg)
eq(select(2, pcall(error, "plain", 0)), "plain", "error level 0")
local closed = false
do local _ <close> = setmetatable({}, {__close = function() closed = true end}) end
eq(closed, true, "to-be-closed variable")

-- metatables: arithmetic, index/newindex, eq, tostring, call, len
local V = {}
V.__index = V
V.__add = function(a, b) return setmetatable({x = a.x + b.x}, V) end
V.__eq = function(a, b) return a.x == b.x end
V.__tostring = function(a) return "V(" .. a.x .. ")" end
V.__len = function(a) return a.x end
V.__call = function(a, k) return a.x * k end
local a, b = setmetatable({x = 2}, V), setmetatable({x = 3}, V)
eq(tostring(a + b), "V(5)", "__add/__tostring"); eq(a + b == setmetatable({x = 5}, V), true, "__eq")
eq(#b, 3, "__len"); eq(b(4), 12, "__call")
local log = {}
local proxy = setmetatable({}, {__newindex = function(_, k, v) log[#log + 1] = k .. "=" .. v end})
proxy.a = 1; proxy.b = 2
eq(table.concat(log, ";"), "a=1;b=2", "__newindex")

-- load, string.dump round trip, environments, goto, varargs
local f = load("local a, b = ...; return a * b")
eq(f(6, 7), 42, "load chunk")
local g = load(string.dump(function(x) return x .. "!" end))
eq(g("hey"), "hey!", "dump/load")
local env = {y = 5}
eq(load("return y * 2", "chunk", "t", env)(), 10, "custom _ENV")
local i, acc = 0, 0
::top:: i = i + 1; acc = acc + i; if i < 10 then goto top end
eq(acc, 55, "goto loop")
local function va(...) return select("#", ...), ... end
eq(va(nil, nil), 2, "vararg count")

-- garbage collector: weak tables drop unreachable keys, finalizers run
local weak = setmetatable({}, {__mode = "k"})
do weak[{}] = true end
collectgarbage(); collectgarbage()
eq(next(weak), nil, "weak key collected")
local finalized = false
do setmetatable({}, {__gc = function() finalized = true end}) end
collectgarbage(); collectgarbage()
eq(finalized, true, "finalizer ran")
local big = {}
for k = 1, 200000 do big[k] = {k} end
big = nil; collectgarbage()
assert(collectgarbage("count") < 20000, "memory released")

-- os/io basics that do not touch the network or user files
local name = os.tmpname()
local fh = assert(io.open(name, "w")); fh:write("line1\n", 42, "\n"); fh:close()
local lines = {}
for l in io.lines(name) do lines[#lines + 1] = l end
os.remove(name)
eq(lines[2], "42", "io round trip")
eq(type(os.time()), "number", "os.time")

print(string.format("lua self-test: %d checks passed", checks))
"""

def cmake_recipe(package: str, source_dir: str = ".", *options: str, test: tuple[Command, ...] = (),
                 apply_patches: bool = True, note: str = "") -> Recipe:
    """A CMake project built in build/ with the caller's compiler and flags only.

    An empty CMAKE_BUILD_TYPE keeps CMake from adding its own -O flags, and the
    emptied per-type flags cover projects that force a build type (brotli picks
    Release, whose -O3 would come after and beat -Oz-llm). CMake >= 4 refuses
    old cmake_minimum_required versions without the policy floor."""
    return Recipe(
        package=package, system="cmake",
        configure=(("cmake", "-S", source_dir, "-B", "build", "-DCMAKE_C_COMPILER={cc}",
                    "-DCMAKE_C_FLAGS={cflags}", "-DCMAKE_BUILD_TYPE=",
                    "-DCMAKE_C_FLAGS_RELEASE=", "-DCMAKE_C_FLAGS_RELWITHDEBINFO=",
                    "-DCMAKE_C_FLAGS_MINSIZEREL=", "-DCMAKE_C_FLAGS_DEBUG=",
                    "-DCMAKE_POLICY_VERSION_MINIMUM=3.5", *options),),
        build=(("cmake", "--build", "build", "--parallel", "{jobs}"),),
        test=test, apply_patches=apply_patches, note=note,
    )


_CTEST = (("ctest", "--test-dir", "build", "--output-on-failure", "-j{jobs}"),)

RECIPES: dict[str, Recipe] = {
    r.package: r for r in (
        Recipe(
            package="zlib",
            system="cmake",
            # zlib 1.2.13 asks for CMake 2.4; CMake >= 4 refuses that without a floor.
            configure=(("cmake", "-S", ".", "-B", "build", "-DCMAKE_C_COMPILER={cc}",
                        "-DCMAKE_C_FLAGS={cflags}", "-DCMAKE_BUILD_TYPE=",
                        "-DCMAKE_POLICY_VERSION_MINIMUM=3.5"),),
            build=(("cmake", "--build", "build", "--parallel", "{jobs}"),),
            test=(("ctest", "--test-dir", "build", "--output-on-failure"),),
            # The DFSG tarball drops win32/, but CMakeLists.txt lists the Windows
            # resource file on every platform; only its existence matters here.
            files={"win32/zlib1.rc": ""},
        ),
        Recipe(
            package="lua5.4",
            system="make",
            configure=(),
            # MYCFLAGS comes after the Makefile's -O2, so the caller's -O flag wins;
            # the "linux" target is the readline-free one in Lua 5.4.
            build=(("make", "-C", "src", "-j{jobs}", "linux", "CC={cc}", "MYCFLAGS={cflags}"),),
            test=(("src/lua", "-W", "debsrc-selftest.lua"),
                  ("src/luac", "-o", "debsrc-selftest.luac", "debsrc-selftest.lua"),
                  ("src/lua", "debsrc-selftest.luac")),
            apply_patches=False,
            files={"debsrc-selftest.lua": _LUA_SELFTEST},
            note="pristine upstream tree (Debian's patches turn it into a libtool build)",
        ),
        Recipe(
            package="xz-utils",
            system="autotools",
            configure=(("./configure", "CC={cc}", "CFLAGS={cflags}"),),
            build=(("make", "-j{jobs}"),),
            test=(("make", "-j{jobs}", "check"),),
        ),
        Recipe(
            package="bzip2",
            system="make",
            configure=(),
            # The Makefile's CFLAGS also carries -D_FILE_OFFSET_BITS=64; keep it.
            build=(("make", "-j{jobs}", "CC={cc}", "CFLAGS={cflags} -Wall -D_FILE_OFFSET_BITS=64",
                    "libbz2.a", "bzip2", "bzip2recover"),),
            test=(("make", "test"),),
        ),
        # Two JSON libraries with unit tests of their own (jansson 213, cJSON 19),
        # for the correctness gate's programs. Built as the corpus builds them,
        # without Debian's patches (jansson's only touches a test script, cJSON's
        # are security fixes of the same code).
        cmake_recipe("jansson", ".", "-DJANSSON_BUILD_DOCS=OFF", test=_CTEST, apply_patches=False,
                     note="pristine upstream tree, as in the corpus"),
        cmake_recipe("cjson", ".", "-DENABLE_CJSON_TEST=ON", "-DENABLE_CUSTOM_COMPILER_FLAGS=OFF",
                     test=_CTEST, apply_patches=False, note="pristine upstream tree, as in the corpus"),
        Recipe(
            # RunTest compares pcre2test's output on thousands of patterns (interpreter and DFA
            # matcher, UTF-8, Unicode properties) with the expected files; RunGrepTest does the
            # same for pcre2grep. Static only: libtool would compile every file twice.
            #
            # Without fork callouts: pcre2grep 10.42 runs a `(?C"/bin/echo|...")` callout by
            # fork() and flushes its own buffered stdout only afterwards, in the parent, while
            # the child execs echo and writes to the same file. On a busy machine the child
            # sometimes writes first, the previous match's line lands after the callout's
            # output and RunGrepTest's diff against testdata/grepoutputC fails: 15 of 60
            # `make -j2 check` runs beside another `make -j2` build, every one with that swap;
            # 0 of 60 without fork callouts. RunTest running beside it under -j2 only adds
            # load (the two scripts share no temporary file). The non-fork build prints
            # callout output itself, in order; RunGrepTest then compares with grepoutputCN.
            package="pcre2",
            system="autotools",
            configure=(("./configure", "CC={cc}", "CFLAGS={cflags}", "--disable-shared",
                        "--disable-pcre2grep-callout-fork"),),
            build=(("make", "-j{jobs}"),),
            test=(("make", "-j{jobs}", "check"),),
            apply_patches=False,
            note="pristine upstream tree, as in the corpus",
        ),
    )
}


def recipe(recipe_or_name: Recipe | str) -> Recipe:
    if isinstance(recipe_or_name, Recipe):
        return recipe_or_name
    try:
        return RECIPES[recipe_or_name]
    except KeyError:
        raise DebSrcError(f"no recipe for {recipe_or_name!r} (known: {', '.join(RECIPES)})") from None


# --- fetching and extracting -------------------------------------------------------

def _tail(text: str, n: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _file_tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return _tail(f.read().decode("utf-8", "replace"), n)
    except OSError:
        return ""


def _dsc(directory: Path) -> Path | None:
    found = sorted(directory.glob("*.dsc"))
    return found[-1] if found else None


def fetch(package: str) -> Path:
    """The directory under CACHE_DIR holding package's .dsc and tarballs (downloads once)."""
    target = CACHE_DIR / package
    if _dsc(target):
        return target
    if shutil.which("apt-get") is None:
        raise FetchError("apt-get is not available on this machine")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Download beside the cache entry and rename it into place, so an interrupted
    # or concurrent fetch never leaves a half-filled directory that looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=CACHE_DIR))
    try:
        proc = subprocess.run(["apt-get", "source", "--download-only", package], cwd=tmp,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0 or not _dsc(tmp):
            raise FetchError(f"apt-get source --download-only {package} failed (exit {proc.returncode}); "
                             "is there a deb-src entry and a reachable mirror?\n"
                             + _tail(proc.stdout + proc.stderr, 15))
        try:
            tmp.rename(target)
        except OSError:
            if not _dsc(target):  # lost a race to another fetch only if that one finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract(package: str, dest: Path, apply_patches: bool | None = None) -> Path:
    """Unpack package's source into dest (which must not exist yet) and return dest.

    apply_patches=None follows the package's recipe (Debian patches applied unless
    the recipe says otherwise).
    """
    dest = Path(dest)
    if apply_patches is None:
        apply_patches = RECIPES[package].apply_patches if package in RECIPES else True
    dsc = _dsc(fetch(package))
    if dsc is None:
        raise FetchError(f"no .dsc for {package} in {CACHE_DIR / package}")
    if dest.exists():
        raise DebSrcError(f"{dest} already exists; extract needs a fresh directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["dpkg-source", "--no-check", *([] if apply_patches else ["--skip-patches"]), "-x",
           str(dsc), str(dest)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0 or not dest.is_dir():
        raise DebSrcError(f"{shlex.join(cmd)} failed (exit {proc.returncode})\n" + _tail(proc.stdout + proc.stderr))
    return dest


def prepare(package: str, dest: Path) -> Path:
    """A fresh, writable source tree at dest, copied from a cached pristine extraction.

    Copies keep modification times, which autotools trees rely on: a configure
    that looks older than configure.ac would make make try to rerun autoconf.
    """
    patched = RECIPES[package].apply_patches if package in RECIPES else True
    pristine = CACHE_DIR / package / ("tree" if patched else "tree-upstream")
    if not pristine.is_dir():
        tmp = CACHE_DIR / package / f".tree-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        extract(package, tmp, apply_patches=patched)
        try:
            tmp.rename(pristine)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not pristine.is_dir():
                raise
    dest = Path(dest)
    if dest.exists():
        raise DebSrcError(f"{dest} already exists; prepare needs a fresh directory")
    shutil.copytree(pristine, dest, symlinks=True)
    return dest


# --- building and testing ------------------------------------------------------------

@dataclass
class BuildResult:
    package: str
    tree: Path
    cc: str
    cflags: str
    configure_s: float
    build_s: float
    log: Path
    # CPU seconds (user + system) of every process the stage ran. Unlike wall
    # time, this barely moves when other work shares the machine.
    configure_cpu_s: float = 0.0
    build_cpu_s: float = 0.0

    @property
    def wall_s(self) -> float:
        """Configure plus build: what a user waits for."""
        return self.configure_s + self.build_s

    @property
    def cpu_s(self) -> float:
        return self.configure_cpu_s + self.build_cpu_s

    @property
    def objects(self) -> list[Path]:
        return object_files(self.tree)


@dataclass
class TestResult:
    package: str
    ok: bool
    returncode: int
    seconds: float
    log: Path
    tail: str

    __test__ = False  # not a pytest test class despite the name


def _resolve_cc(cc: str, env: Mapping[str, str]) -> str:
    """An absolute path for cc, so CMake's cache and sub-makes see the same compiler."""
    first, *rest = cc.split()
    found = shutil.which(first, path=env.get("PATH"))
    if found is None:
        raise BuildError(f"compiler {first!r} is not on PATH ({env.get('PATH', '')})")
    return " ".join([found, *rest])


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    out["LC_ALL"] = "C"  # stable tool messages in the logs
    if env:
        out.update(env)
    return out


def _fill(cmd: Command, values: Mapping[str, str]) -> list[str]:
    out = []
    for arg in cmd:
        for key, val in values.items():
            arg = arg.replace("{" + key + "}", val)
        out.append(arg)
    return out


def _run_logged(cmds: Sequence[list[str]], cwd: Path, env: Mapping[str, str], log,
                timeout: float | None) -> tuple[int, list[str] | None]:
    """Run cmds in order into the open log; (returncode, failing command or None)."""
    for cmd in cmds:
        log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            log.write(f"\n[debsrc] timed out after {timeout} s\n")
            return 124, cmd
        except OSError as e:
            log.write(f"\n[debsrc] cannot run: {e}\n")
            return 127, cmd
        if rc != 0:
            return rc, cmd
    return 0, None


def _children_cpu() -> float:
    """CPU time of this process's finished descendants (make waits for its jobs,
    so a finished stage's whole process tree is counted). Process-wide: builds
    running in threads of one process would count each other's time."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def build(recipe_or_name: Recipe | str, src: Path, cc: str, cflags: str,
          env: Mapping[str, str] | None = None, jobs: int = 2, timeout: float | None = 3600) -> BuildResult:
    """Configure and build src with cc/cflags; raises BuildError (with the log's tail) on failure.

    The log goes to src/debsrc-build.log; env is added to the (scrubbed) environment.
    """
    r = recipe(recipe_or_name)
    src = Path(src).resolve()
    full_env = _environment(env)
    values = {"cc": _resolve_cc(cc, full_env), "cflags": cflags, "jobs": str(jobs)}
    for rel, text in r.files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text, encoding="utf-8")
    log_path = src / BUILD_LOG
    times, cpu = [], []
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"[debsrc] {r.package} ({r.system}) CC={values['cc']} CFLAGS={cflags}\n")
        for stage, cmds in (("configure", r.configure), ("build", r.build)):
            start, cpu_start = time.perf_counter(), _children_cpu()
            rc, failed = _run_logged([_fill(c, values) for c in cmds], src, full_env, log, timeout)
            times.append(time.perf_counter() - start)
            cpu.append(_children_cpu() - cpu_start)
            if failed:
                log.flush()
                raise BuildError(f"{r.package}: {stage} failed (exit {rc}): {shlex.join(failed)}",
                                 log_path, _file_tail(log_path))
    return BuildResult(r.package, src, values["cc"], cflags, times[0], times[1], log_path, cpu[0], cpu[1])


def run_tests(recipe_or_name: Recipe | str, src: Path, env: Mapping[str, str] | None = None,
              jobs: int = 2, timeout: float | None = 3600) -> TestResult:
    """Run the package's own tests in a built tree; never raises for a failing test.

    Give env the same compiler settings as the build (PATH, CLANG_LLM_*): some
    test suites compile test programs with the configured compiler (xz's make check).
    """
    r = recipe(recipe_or_name)
    src = Path(src).resolve()
    full_env = _environment(env)
    values = {"jobs": str(jobs)}
    log_path = src / TEST_LOG
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        rc, _ = _run_logged([_fill(c, values) for c in r.test], src, full_env, log, timeout)
    return TestResult(r.package, rc == 0, rc, time.perf_counter() - start, log_path, _file_tail(log_path))


# --- looking at the results ------------------------------------------------------------

# Directories of build-system probes (CMake's compiler identification and try-compiles,
# meson's sanity checks, autoconf's conftest.dir): nothing in them is part of the package.
PROBE_DIRS = frozenset({"CompilerIdC", "CompilerIdCXX", "CMakeScratch", "CMakeTmp", "meson-private",
                        "conftest.dir"})


def object_files(tree: Path) -> list[Path]:
    """The package's object files under tree (build-system probes left out), sorted."""
    tree = Path(tree)
    out = []
    for p in tree.rglob("*.o"):
        rel = p.relative_to(tree)
        if p.is_file() and not (PROBE_DIRS & set(rel.parts)) and not p.name.startswith("conftest"):
            out.append(p)
    return sorted(out)


def text_sizes(objects: Sequence[Path], root: Path | None = None) -> dict[str, int]:
    """Executable-section bytes per object, keyed by path relative to root (or the name).

    A diagnostic (the project's one size function, _core.object_sizes, reads
    them); what verify mode compares and reports rank by is the image, the bytes
    an object adds to the linked program (clang_llm.sizes).
    """
    from .. import _core  # imported here: loading the extension is not free

    out = {}
    for p in objects:
        key = str(Path(p).relative_to(root)) if root else str(p)
        out[key] = int(_core.object_sizes(Path(p).read_bytes())["text"])
    return out


def object_source_name(obj: Path) -> str | None:
    """The source file name an ELF object was compiled from (its STT_FILE symbol).

    clang records the base name of the main source file there; it maps objects
    back to sources however the build system named them (libtool's prefixed
    objects, CMake's foo.c.o). None for objects without one.
    """
    names = source_names(obj)
    return names[0] if names else None


def source_names(elf: Path) -> list[str]:
    """Every STT_FILE symbol's name in an ELF file's symbol table, in order: one
    for an object, one per object with local symbols in a linked program (the
    linker keeps them unless the program is stripped)."""
    data = Path(elf).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []  # only little-endian ELF64, which is all clang-22 makes here
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)

    def section(i):
        # sh_type, sh_offset, sh_size, sh_link, sh_entsize
        base = shoff + i * shentsize
        typ, = struct.unpack_from("<I", data, base + 4)
        off, size = struct.unpack_from("<QQ", data, base + 0x18)
        link, = struct.unpack_from("<I", data, base + 0x28)
        entsize, = struct.unpack_from("<Q", data, base + 0x38)
        return typ, off, size, link, entsize

    out = []
    for i in range(shnum):
        typ, off, size, link, entsize = section(i)
        if typ != 2 or not entsize:  # SHT_SYMTAB
            continue
        _, stroff, strsize, _, _ = section(link)
        for j in range(size // entsize):
            name, info = struct.unpack_from("<IB", data, off + j * entsize)
            if info & 0xF == 4 and name:  # STT_FILE
                end = data.index(b"\0", stroff + name)
                out.append(data[stroff + name:end].decode("utf-8", "replace"))
    return out
