"""LLVM 22's machine outliner crashes code generation on modules that ask for
retpoline/LVI thunks or speculative load hardening (openssh builds with
-mretpoline). clang-llm must compile them anyway: every route leaves the
outliner off for such modules, whatever the decision says."""

import subprocess

import pytest

from clang_llm import _core, pipelines
from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

SRC = """
typedef int (*fn)(int);
int a(int x, fn f, fn g) { int r = f(x) + g(x + 1); r += f(r) * 3; return r + g(r); }
int b(int x, fn f, fn g) { int r = f(x) + g(x + 1); r += f(r) * 3; return r - g(r); }
int c(int x, fn f, fn g) { int r = f(x) + g(x + 1); r += f(r) * 3; return r ^ g(r); }
"""
HAZARDS = {"-mretpoline": "retpoline-indirect-calls", "-mspeculative-load-hardening": "speculative load hardening",
           "-mlvi-cfi": "lvi-cfi"}


@pytest.fixture
def src(tmp_path):
    p = tmp_path / "h.c"
    p.write_text(SRC)
    return p


def mo_candidate():
    return next(c for c in pipelines.candidates() if c.machine_outliner and c.validated)


@pytest.mark.parametrize("flag", sorted(HAZARDS))
def test_clang_itself_crashes_so_the_guard_matters(flag, src, clang):
    r = subprocess.run([clang, "-Oz", flag, "-c", str(src), "-o", str(src.with_suffix(".o")),
                        "-mllvm", "-enable-machine-outliner=always"], capture_output=True)
    assert r.returncode != 0  # if LLVM fixes this, the guard can go


@pytest.mark.parametrize("flag", sorted(HAZARDS))
def test_outliner_candidates_compile_hazardous_modules(flag, src, tmp_path, clang):
    cand = mo_candidate()
    env = clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=cand.name)
    run([BIN / "clang-llm", "-Oz-llm", flag, "-c", src, "-o", tmp_path / "mo.o"], env=env)
    # Same object as the same pipeline without the outliner.
    env["CLANG_LLM_PIPELINE"] = cand.passes
    run([BIN / "clang-llm", "-Oz-llm", flag, "-c", src, "-o", tmp_path / "plain.o"], env=env)
    assert (tmp_path / "mo.o").read_bytes() == (tmp_path / "plain.o").read_bytes()

    bc = tmp_path / "h.bc"
    subprocess.run([clang, "-Oz", flag, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", str(src),
                    "-o", str(bc)], check=True)
    m = _core.LoadedModule(bc.read_bytes(), "h.bc")
    assert m.machine_outliner_hazard() == HAZARDS[flag]
    assert m.measure(cand.passes, True) == m.measure(cand.passes, False)


REPEATED = """
extern int g1, g2, g3, g4, g5;
extern void use(int);
#define BODY(k) g1 = x * 3 + k; g2 = g1 ^ 7; g3 = g2 + g1; g4 = g3 - 11; g5 = g4 * g1; use(g5); use(g4 + 1);
void f1(int x) { BODY(1) }
void f2(int x) { BODY(2) }
void f3(int x) { BODY(3) }
void f4(int x) { BODY(4) }
"""


def test_ordinary_modules_keep_the_outliner(tmp_path, clang):
    src, bc = tmp_path / "r.c", tmp_path / "r.bc"
    src.write_text(REPEATED)
    subprocess.run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", str(src), "-o", str(bc)],
                   check=True)
    m = _core.LoadedModule(bc.read_bytes(), "h.bc")
    assert m.machine_outliner_hazard() is None
    # The outliner still acts here (on this module it outlines, and the calls cost bytes).
    assert m.measure(pipelines.oz_pipeline(), True)["text"] != m.measure(pipelines.oz_pipeline(), False)["text"]
