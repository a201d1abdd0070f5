"""Fuzzing clang-llm's three ways in (slow: `pytest -m slow tests/integration/test_fuzz.py`).

- opt-22 with the plugin on corrupt bitcode: a clean error, never a crash or hang
  (where opt-22 alone survives the same input: its bitcode reader is not ours).
- random argument lists through the native launcher and the Python driver: they
  agree, and neither crashes or prints a Python traceback.
- random csmith programs through verify mode in strict mode: the program prints
  what clang-22 -O0's build of it prints.

Each part is bounded by a count and per-process timeouts. Failures name the
input (a seed, or a file kept under the test's tmp_path) to reproduce it.
"""

import os
import random
import shutil
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BIN, clean_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CRASH_MARKS = ("PLEASE submit a bug report", "Stack dump", "Traceback (most recent call last)",
               "Segmentation fault", "Aborted")
SOURCE = r"""
#include <string.h>
struct node { struct node *next; int key; char tag[8]; };
static struct node pool[32];
int walk(int n) {
  struct node *head = 0;
  for (int i = 0; i < n && i < 32; i++) { pool[i].key = i * 7 % 13; memcpy(pool[i].tag, "abcdefg", 8);
    pool[i].next = head; head = &pool[i]; }
  int s = 0; for (struct node *p = head; p; p = p->next) s += p->key * (p->tag[p->key & 7]);
  return s;
}
double mix(double a, int b) { return b > 3 ? a * b : a / (b + 1); }
"""


def _crashed(r: subprocess.CompletedProcess) -> bool:
    err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
    return r.returncode < 0 or any(m in err for m in CRASH_MARKS)


# --- corrupt bitcode through the plugin ---------------------------------------------

@pytest.fixture(scope="module")
def good_bitcode(tmp_path_factory, clang):
    d = tmp_path_factory.mktemp("bc")
    (d / "f.c").write_text(SOURCE)
    subprocess.run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", d / "f.c", "-o", d / "f.bc"],
                   check=True)
    return (d / "f.bc").read_bytes()


def _mutants(data: bytes, rng: random.Random, count: int):
    """Truncations (the header, mid-block, one byte short), byte flips, and random
    bytes behind a valid magic."""
    for cut in (0, 2, 4, 8, 32, len(data) // 3, len(data) // 2, len(data) - 1):
        yield f"truncated-{cut}", data[:cut]
    for i in range(count):
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):  # more flips rarely parse at all
            b[rng.randrange(8, len(b))] = rng.randrange(256)
        yield f"flipped-{i}", bytes(b)
    for i in range(count // 2):
        yield f"random-{i}", b"BC\xc0\xde" + rng.randbytes(rng.randint(0, 2048))


def test_corrupt_bitcode_gives_a_clean_error(good_bitcode, tmp_path, opt, plugin):
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "2811")))
    env = clean_env(CLANG_LLM_POLICY_TIMEOUT="20")
    deadline = time.monotonic() + 240
    crashed, checked, reached = [], 0, 0
    for name, data in _mutants(good_bitcode, rng, 24):
        if time.monotonic() > deadline:
            break
        path = tmp_path / f"{name}.bc"
        path.write_bytes(data)
        try:
            ours = subprocess.run([opt, f"-load-pass-plugin={plugin}", "-passes=llm-oz", path, "-o", os.devnull],
                                  capture_output=True, text=True, timeout=120, env=env)
        except subprocess.TimeoutExpired:
            crashed.append(f"{path}: hung")
            continue
        if not _crashed(ours):
            if ours.returncode != 0:
                assert "error" in ours.stderr.lower(), (path, ours.stderr[-500:])
            checked += 1
            reached += ours.returncode == 0
            continue
        # opt's own reader and verifier on the same input: a crash there is LLVM's.
        plain = subprocess.run([opt, "-passes=verify", path, "-o", os.devnull], capture_output=True, text=True,
                               timeout=120)
        if not _crashed(plain):
            crashed.append(f"{path}: exit {ours.returncode}: {ours.stderr[-300:]}")
    assert not crashed, "\n".join(crashed)
    assert checked >= 10
    assert reached >= 3, "too few mutants parsed to reach the plugin's policy"


# --- random argument lists through the launcher and the driver ------------------------

TOKENS = ["-Oz-llm", "-Oz-llm=verify", "-Oz-llm=", "-Oz-llm=x", "-O2", "-Oz", "-c", "-S", "-E", "-emit-llvm",
          "-o", "out.o", "-o", "-", "a.c", "b.s", "missing.c", "-", "--", "-x", "c", "-xc", "none", "@rsp",
          "@missing", "-flto", "-fno-lto", "-fsanitize=address", "-MD", "-MF", "dep.d", "-Xclang", "-mllvm",
          "-fpass-plugin=/nonexistent.so", "-###", "-v", "--version", "-g", "-Wall", "-D", "X=1", "-I", "."]
ARG_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@pytest.fixture(scope="module")
def argdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("args")
    return d


def _reset(d):
    (d / "a.c").write_text("int f(int x) { return x * 3; }\nint main(void) { return f(0); }\n")
    (d / "b.s").write_text(".text\n.globl g\ng:\n ret\n")
    (d / "rsp").write_text("-Oz-llm -c a.c\n")


def _call(prog, args, cwd, **env):
    return subprocess.run([str(BIN / prog), *args], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=120, env=clean_env(**env))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(TOKENS), ARG_TEXT), max_size=8))
def test_random_arguments_never_crash_and_both_front_doors_agree(argdir, args):
    _reset(argdir)
    native = _call("clang-llm", args, argdir, CLANG_LLM_DRY_RUN=1)
    python = _call("clang-llm-py", args, argdir, CLANG_LLM_DRY_RUN=1)
    for r in (native, python):
        assert not _crashed(r), (args, r.stderr[-1000:])
    assert (native.returncode, native.stdout) == (python.returncode, python.stdout), args
    # And for real: the same exit status from both, no crash, no traceback.
    # Random text with a '/' could name a file outside the test's directory.
    if any("/" in a for a in args if a not in TOKENS):
        return
    _reset(argdir)
    real_native = _call("clang-llm", args, argdir, CLANG_LLM_POLICY_TIMEOUT="20")
    _reset(argdir)
    real_python = _call("clang-llm-py", args, argdir, CLANG_LLM_POLICY_TIMEOUT="20")
    for r in (real_native, real_python):
        assert not _crashed(r), (args, r.stderr[-1000:])
    assert real_native.returncode == real_python.returncode, (args, real_native.stderr[-500:],
                                                               real_python.stderr[-500:])


# --- csmith programs through verify mode ------------------------------------------------

CSMITH_INCLUDE = "/usr/include/csmith"


def test_csmith_programs_under_verify_mode_print_what_O0_prints(tmp_path, clang):
    if not shutil.which("csmith") or not os.path.isfile(os.path.join(CSMITH_INCLUDE, "csmith.h")):
        pytest.skip("csmith is not installed")
    base = int(os.environ.get("FUZZ_SEED", str(random.SystemRandom().randrange(1 << 30))))
    deadline = time.monotonic() + 300
    flags = ["-w", f"-I{CSMITH_INCLUDE}"]
    compared, wrong = 0, []
    for seed in range(base, base + 40):
        if time.monotonic() > deadline or compared >= 20:
            break
        src = tmp_path / f"{seed}.c"
        gen = subprocess.run(["csmith", "--seed", str(seed)], capture_output=True, timeout=60, cwd=tmp_path)
        if gen.returncode != 0 or not gen.stdout:
            continue
        src.write_bytes(gen.stdout)
        ref_exe, exe = tmp_path / f"{seed}.O0", tmp_path / f"{seed}.llm"
        subprocess.run([clang, "-O0", *flags, src, "-o", ref_exe], check=True, capture_output=True, timeout=120)
        try:
            ref = subprocess.run([ref_exe], capture_output=True, timeout=5)
        except subprocess.TimeoutExpired:
            continue  # a long-running program: no reference in the time allowed
        if ref.returncode != 0:
            continue
        built = subprocess.run([BIN / "clang-llm", "-Oz-llm=verify", *flags, src, "-o", exe], capture_output=True,
                               text=True, timeout=300, env=clean_env(CLANG_LLM_STRICT=1))
        assert built.returncode == 0 and not _crashed(built), f"csmith --seed {seed}: {built.stderr[-1000:]}"
        try:
            got = subprocess.run([exe], capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            wrong.append(f"csmith --seed {seed}: hangs at -Oz-llm=verify, runs at -O0")
            continue
        if (got.returncode, got.stdout) != (ref.returncode, ref.stdout):
            wrong.append(f"csmith --seed {seed}: -O0 printed {ref.stdout[-80:]!r}, verify {got.stdout[-80:]!r}")
        compared += 1
    assert not wrong, f"FUZZ_SEED={base}\n" + "\n".join(wrong)
    assert compared >= 5, f"FUZZ_SEED={base}: only {compared} programs ran in time"
