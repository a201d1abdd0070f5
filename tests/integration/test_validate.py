"""The correctness gate against the real clang-22, clang-llm, gcc torture tests and csmith.

Small fixed subsets keep this quick; the full gate is `clang-llm-data validate`.
Outcomes are never read from the cache here (use_cache=False): every verdict is
computed by compiling and running.
"""

import os
import shutil
import subprocess
import sys

import pytest

from clang_llm import pipelines
from clang_llm.train import validate

pytestmark = pytest.mark.integration

JOBS = min(2, os.cpu_count() or 1)


@pytest.fixture(scope="module")
def suites(clang):
    """The torture tests and csmith programs of the committed baselines."""
    import glob

    # Skipped only where the tools are missing: with them installed (as set-up
    # does) a suite that cannot be rebuilt from its baseline is a failure, not
    # a reason to skip the gate's tests.
    if not shutil.which("csmith") or not glob.glob(validate.GCC_SOURCE_GLOB):
        pytest.skip("csmith or gcc-12-source not installed")
    return validate.torture_tests(), validate.csmith_tests()


def test_csmith_programs_do_not_depend_on_where_they_are_generated(tmp_path, monkeypatch):
    """csmith copies its command line into the program; the baseline's digests
    must come out the same on every machine (they once held a temporary file name)."""
    if not shutil.which("csmith"):
        pytest.skip("csmith not installed")
    texts = []
    for sub in ("a", "b"):
        monkeypatch.setattr(validate, "csmith_dir", lambda sub=sub: tmp_path / sub)
        texts.append(validate.csmith_program(1).read_bytes())
    assert texts[0] == texts[1]
    seed, digest, _ = validate._read_baseline(validate.CSMITH_BASELINE)[0]
    assert seed == "1" and validate._digest(texts[0]) == digest


def test_baselines_are_large_enough(suites):
    torture, csmith = suites
    assert len(torture) >= 1800 and len(csmith) >= 300
    ids = {t.id for t in torture}
    assert any(i.startswith("gcc.c-torture/execute/") for i in ids)
    assert any(i.startswith("gcc.dg/torture/") for i in ids)


def test_clangs_oz_pipeline_passes(suites):
    v = validate.validate(pipelines.oz_pipeline(), jobs=JOBS, limit=40, use_cache=False)
    assert v.ok, v.reasons
    assert v.counts["torture"] == {"tests": 40, "passed": 40, "failed": 0, "cached": 0}
    assert v.counts["csmith"]["passed"] == 40
    assert v.counts["determinism"]["passed"] == 24
    assert v.counts["programs"] == {"tests": len(validate.PROGRAMS), "passed": len(validate.PROGRAMS),
                                    "failed": 0, "cached": 0}


def test_aborting_pipeline_is_rejected_with_llvms_reason(suites):
    v = validate.validate("function(licm)", jobs=JOBS, limit=5, use_cache=False)
    assert not v.ok
    assert "LICM requires MemorySSA" in v.reasons[0], v.reasons


def test_unparsable_pipeline_is_rejected(suites):
    v = validate.validate("function(no-such-pass)", jobs=JOBS, limit=5, use_cache=False)
    assert not v.ok and "does not parse" in v.reasons[0], v.reasons


# A pipeline that parses, compiles every test and produces wrong code: LLVM 22's
# Attributor run first (it is not part of any default pipeline) miscompiles
# about 4% of the torture tests, e.g. 20010224-1.c aborts (found by this gate:
# 28 of a 700-test subset fail; `opt-22 -passes=attributor` then default<Oz>
# reproduces it without clang-llm).
MISCOMPILED = ("gcc.c-torture/execute/20010224-1.c", "gcc.c-torture/execute/990811-1.c",
               "gcc.c-torture/execute/20030404-1.c")
ATTRIBUTOR_FIRST = "attributor,{oz}"


def test_wrong_code_pipeline_is_rejected(suites):
    ids = {t.id for t in suites[0]}
    assert set(MISCOMPILED) <= ids  # all pass at clang-22 -O0 and -Oz
    only = [*MISCOMPILED, *sorted(ids)[:3]]
    bad = validate.validate(ATTRIBUTOR_FIRST.format(oz=pipelines.oz_pipeline()), suites=("torture",),
                            jobs=JOBS, only=only, use_cache=False)
    assert not bad.ok
    assert {f[0] for f in bad.failures["torture"]} == set(MISCOMPILED), bad.failures
    assert all(status == "run-fail" for _, status, _ in bad.failures["torture"])
    assert bad.reasons[0].startswith("torture: 3 of 6 tests fail: ") and "20010224-1.c (run-fail: " in bad.reasons[0]
    # The same tests pass under clang's own pipeline: the failure is the pipeline's.
    good = validate.validate(pipelines.oz_pipeline(), suites=("torture",), jobs=JOBS, only=only, use_cache=False)
    assert good.ok and good.counts["torture"]["passed"] == 6


def test_regression_programs_pass_under_clang_and_catch_what_they_were_reduced_from(clang, tmp_path):
    """Each regression program is correct C: it passes at clang-22 -O0 and -Oz.
    iroutliner-cmp-swap.c must still catch the IR outliner's miscompile when the
    rule that keeps iroutliner out is bypassed (run_gate directly), so the gate
    would catch the same wrong code arriving by another pass."""
    tests = validate.regression_tests()
    assert "regressions/iroutliner-cmp-swap.c" in {t.id for t in tests}
    for level in ("-O0", "-Oz"):
        for t in tests:
            o = validate.build_and_run(validate.Compiler.clang(level), t, tmp_path)
            assert o.ok, (level, t.id, o.status, o.detail)
    excluded = pipelines.by_name("s01+mo")  # the default until the bug was found
    assert pipelines.unsafe_passes(excluded.passes) == ["iroutliner"]
    pfile = tmp_path / "s01.pipeline"
    pfile.write_text(excluded.passes)
    comp = validate.Compiler.pipeline(excluded.passes, excluded.codegen, pfile)
    v = validate.run_gate(comp, None, suites=("regressions",), jobs=JOBS, only=["regressions/iroutliner-cmp-swap.c"])
    assert not v.ok and v.failures["regressions"][0][:2] == ("regressions/iroutliner-cmp-swap.c", "run-fail"), v.failures
    # Through the front door the rule answers first, and nothing is compiled.
    rejected = validate.validate(excluded.passes, excluded.codegen, use_cache=False)
    assert not rejected.ok and rejected.reasons[0].startswith("rules: contains iroutliner: ") and not rejected.counts


@pytest.fixture(scope="module")
def programs(suites):
    """The programs suite's packages (skips where no Debian mirror is reachable
    and nothing is cached, as the end-to-end builds do)."""
    try:
        return validate.program_tests()
    except validate.ValidateError as e:
        if "cannot fetch" in str(e):
            pytest.skip(f"Debian sources not available: {e}")
        raise


def test_programs_suite_rejects_a_pipeline_that_breaks_zlib(programs, tmp_path):
    """s19+mo passed the torture and csmith suites yet makes zlib's own test fail
    (inflate error -5): the programs suite must catch that, and must not blame
    clang's own pipeline for the same package."""
    assert {t.id for t in programs} == {f"programs/{p}" for p in validate.PROGRAMS}
    bad = pipelines.by_name("s19+mo")  # kept in candidates.tsv as an excluded row
    # Past the rule that now rejects it for its iroutliner: the suite must catch it by itself.
    pfile = tmp_path / "s19.pipeline"
    pfile.write_text(bad.passes)
    v = validate.run_gate(validate.Compiler.pipeline(bad.passes, bad.codegen, pfile), None,
                          suites=("programs",), jobs=JOBS, only=["programs/zlib"])
    assert not v.ok
    (tid, status, detail), = v.failures["programs"]
    assert tid == "programs/zlib" and status == "run-fail" and "example" in detail, v.failures
    assert v.reasons[0].startswith("programs: 1 of 1 tests fail: zlib (run-fail: test suite exit ")
    good = validate.validate(pipelines.oz_pipeline(), suites=("programs",), jobs=JOBS, only=["programs/zlib"],
                             use_cache=False)
    assert good.ok, good.reasons


def test_run_timeout_kills_a_looping_program(tmp_path, monkeypatch, clang):
    src = tmp_path / "loop.c"
    src.write_text("int main(void) { volatile int x = 1; while (x) ; return 0; }\n")
    t = validate.Test("torture", "loop.c", src, ())
    o = validate.build_and_run(validate.Compiler.clang("-O0"), t, tmp_path, run_timeout=1.0)
    assert o.status == "run-timeout" and o.seconds < 8


def test_nondeterministic_compiler_is_caught(tmp_path, clang):
    """A compiler whose objects carry random bytes must fail determinism."""
    fake = tmp_path / "fake-cc"
    fake.write_text(f"""#!{sys.executable}
import os, subprocess, sys
args = sys.argv[1:]
rc = subprocess.call([{clang!r}, *args])
out = args[args.index("-o") + 1]
with open(out, "ab") as f:
    f.write(os.urandom(8))
sys.exit(rc)
""")
    fake.chmod(0o755)
    src = tmp_path / "m.c"
    src.write_text("int f(int x) { return x * 3; }\n")
    t = validate.Test("torture", "m.c", src, ())
    comp = validate.Compiler("fake", [str(fake), "-Oz"], validate._clean_env())
    assert validate.compile_twice(comp, t, tmp_path).status == "nondeterministic"
    same = validate.Compiler("clang", [clang, "-Oz"], validate._clean_env())
    assert validate.compile_twice(same, t, tmp_path).status == "pass"


REPEATED = r"""
extern int g[16];
#define BODY g[0] += 1; g[1] ^= g[0] * 3; g[2] -= g[1] << 2; g[3] |= g[2] + 7; \
    g[4] += g[3] * 5; g[5] ^= g[4] - 9; g[6] += g[5] >> 1; g[7] -= g[6] * 11;
void f1(int x) { g[8] = x; BODY }
void f2(int x) { g[9] = x; BODY }
void f3(int x) { g[10] = x; BODY }
void f4(int x) { g[11] = x; BODY }
"""


def test_machine_outliner_knob_reaches_the_compile(tmp_path, clang):
    """The gate compiles raw pipelines with CLANG_LLM_MACHINE_OUTLINER: the
    outliner must really run (an OUTLINED_FUNCTION appears) only when asked."""
    src = tmp_path / "rep.c"
    src.write_text(REPEATED)
    # Not a candidate's exact text, so it reaches the plugin as a raw pipeline.
    raw = pipelines.oz_pipeline() + ",function(instsimplify)"
    assert pipelines.find(raw, True) is None and pipelines.find(raw, False) is None
    pfile = tmp_path / "raw.pipeline"
    pfile.write_text(raw)
    objs = {}
    for mo in (False, True):
        comp = validate.Compiler.pipeline(raw, mo, pfile)
        out = tmp_path / f"rep{int(mo)}.o"
        r = subprocess.run([*comp.argv, "-c", str(src), "-o", str(out)], env=comp.env, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        objs[mo] = out.read_bytes()
    assert b"OUTLINED_FUNCTION" in objs[True] and b"OUTLINED_FUNCTION" not in objs[False]
    assert len(objs[True]) != len(objs[False])


def test_cli_writes_a_report_with_reasons(tmp_path, suites):
    import argparse

    bad = tmp_path / "licm.pipeline"
    bad.write_text("function(licm)\n")
    good = tmp_path / "oz.pipeline"
    good.write_text(pipelines.oz_pipeline())
    report = tmp_path / "report.json"
    ap = argparse.ArgumentParser()
    validate.register(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(["validate", "pipelines", "--pipeline-file", str(bad), "--pipeline-file", str(good),
                          "--limit", "8", "--jobs", str(JOBS), "--report", str(report), "--check", "--fresh"])
    assert args.func(args) == 2  # one pipeline excluded
    import json

    rep = json.loads(report.read_text())
    by_name = {e["name"]: e for e in rep["pipelines"]}
    assert by_name["oz"]["ok"] and not by_name["oz"]["excluded"] and by_name["oz"]["limit"] == 8
    assert by_name["licm"]["excluded"] and "LICM requires MemorySSA" in by_name["licm"]["reasons"][0]
    assert rep["baseline"]["torture"] >= 1800


def test_learned_policy_builds_pass(suites):
    """What -Oz-llm with the shipped model compiles (each test's own choice of
    candidate) runs correctly; a broken model would fail strict mode here."""
    v = validate.validate_policy("onnx", jobs=JOBS, limit=15)
    assert v.ok, v.reasons
    assert v.counts["torture"]["passed"] == 15 and v.counts["csmith"]["passed"] == 15


def test_outcomes_are_shared_by_object_bytes(suites, tmp_path):
    """With an object store, a test compiled to bytes already judged is not linked
    or run again: a planted verdict for those bytes is what the gate reports."""
    import json

    pfile = tmp_path / "oz.pipeline"
    pfile.write_text(pipelines.oz_pipeline())
    comp = validate.Compiler.pipeline(pipelines.oz_pipeline(), False, pfile)
    store = tmp_path / "objects.jsonl"
    first = validate.run_gate(comp, None, suites=("torture",), jobs=JOBS, limit=6, objects=store)
    assert first.ok, first.reasons
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(rows) == 6 and all(r["suite"] == "object" and r["status"] == "pass" for r in rows)
    rows[0].update(status="run-fail", detail="planted")
    store.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = validate.run_gate(comp, None, suites=("torture",), jobs=JOBS, limit=6, objects=store)
    assert not again.ok and "planted" in again.reasons[0], again.reasons
    assert len(store.read_text().splitlines()) == 6  # nothing was linked and run again
