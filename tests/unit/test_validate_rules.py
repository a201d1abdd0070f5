"""The correctness gate's pure parts: GCC test directives, error extraction, and
the policy's machine-outliner knob for raw pipelines."""

import json

import pytest

from clang_llm import pipelines, policy
from clang_llm.train import validate


@pytest.mark.parametrize("words, expected", [
    (["*-*-*"], True),
    (["x86_64-*-linux*"], True),
    (["i?86-*-*", "x86_64-*-*"], True),
    (["powerpc*-*-*", "arm*-*-*"], False),
    (["int128"], True),
    (["!", "run_expensive_tests"], True),
    (["!", "lp64"], False),
    ([["x86_64-*-*"], "&&", ["!", "ia32"]], True),
    (["hppa*-*-hpux*", "&&", ["!", "lp64"]], False),
    (["ia32", "||", "int128"], True),
])
def test_selector(words, expected):
    assert validate.selector(words) is expected


def test_selector_unknown_keyword_is_not_guessed():
    with pytest.raises(validate._Unknown):
        validate.selector(["some_new_effective_target"])


def test_directives_parse_nested_braces_and_quotes():
    text = ('/* { dg-do run { target { { i?86-*-* x86_64-*-* } && { ! ia32 } } } } */\n'
            '/* { dg-options "-fwrapv -DN=\\"x\\"" } */\n')
    assert validate.directives(text) == [
        ("do", ["run", ["target", [["i?86-*-*", "x86_64-*-*"], "&&", ["!", "ia32"]]]]),
        ("options", ['-fwrapv -DN="x"']),
    ]


@pytest.mark.parametrize("text, run, flags, why", [
    ("int main() { return 0; }", False, (), ""),
    ("int main() { return 0; }", True, None, "not a dg-do run test"),
    ("/* { dg-do compile } */", True, None, "dg-do compile"),
    ('/* { dg-do run } */\n/* { dg-options "-O2 -fwrapv -fdump-tree-optimized" } */', True, ("-fwrapv",), ""),
    ('/* { dg-options "-fno-common" { target hppa*-*-hpux* } } */', False, (), ""),
    ('/* { dg-options "-DEXPENSIVE" { target run_expensive_tests } } */', False, (), ""),
    ('/* { dg-additional-options "-msse2" { target { i?86-*-* x86_64-*-* } } } */', False, ("-msse2",), ""),
    ("/* { dg-require-effective-target int128 } */", False, (), ""),
    ("/* { dg-require-effective-target dfp } */", False, None, "needs effective target dfp"),
    ('/* { dg-skip-if "" { *-*-* } { "-O0" } { "" } } */', False, None, "dg-skip-if matches this target"),
    ('/* { dg-skip-if "small" { avr-*-* } } */', False, (), ""),
    ('/* { dg-xfail-run-if "" { powerpc-ibm-aix* } } */', False, (), ""),
    ("/* { dg-do run { xfail { x86_64-*-* } } } */", True, None, "dg-do run is not for this target"),
    ("/* { dg-add-options ieee } */", False, (), ""),
    ("/* { dg-add-options float16 } */", False, None, "dg-add-options float16 (GCC-specific options)"),
    ('/* { dg-additional-sources "other.c" } */', False, None, "dg-additional-sources is not supported here"),
    ('/* { dg-options "-flto" } */', False, None, "option -flto needs clang's own middle end"),
    ("/* { dg-require-effective-target mystery_feature } */", False, None,
     "cannot decide selector term mystery_feature"),
])
def test_test_flags(text, run, flags, why):
    assert validate.test_flags(text, run) == (flags, why)


def test_first_error_keeps_the_policy_reason_without_traceback():
    err = ("error: clang-llm: policy failed (strict mode): policy error: PolicyError: fixed: LLVM ERROR: "
           "LICM requires MemorySSA (loop-mssa) (exit status 3)  At:   /x/policy.py(153): _decide_top1\n"
           "1 error generated.\n")
    assert validate._first_error(err) == "LLVM ERROR: LICM requires MemorySSA (loop-mssa) (exit status 3)"
    assert validate._first_error("x.c:1:1: error: expected ';'\n1 error generated.\n") == \
        "x.c:1:1: error: expected ';'"


# --- the fixed back end's outliner knob (policy.py) --------------------------------

@pytest.fixture
def fixed(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")

    def use(pipeline, outliner=None):
        monkeypatch.setenv("CLANG_LLM_PIPELINE", pipeline)
        if outliner is None:
            monkeypatch.delenv("CLANG_LLM_MACHINE_OUTLINER", raising=False)
        else:
            monkeypatch.setenv("CLANG_LLM_MACHINE_OUTLINER", outliner)
        return policy._fixed(None)[0]

    return use


def test_raw_pipeline_takes_the_outliner_from_the_environment(fixed):
    raw = "function(sroa),function(instcombine<no-verify-fixpoint>)"
    assert fixed(raw).machine_outliner is False
    assert fixed(raw, "0").machine_outliner is False
    cand = fixed(raw, "1")
    assert (cand.name, cand.passes, cand.machine_outliner, cand.validated) == ("fixed", raw, True, False)
    # Unvalidated: the driver must not preset it; the plugin asks the policy,
    # which trial-runs it and hands the outliner to code generation.
    assert policy.preset_decision() is None


def test_raw_pipeline_equal_to_a_candidate_picks_the_matching_variant(fixed):
    oz = pipelines.oz_pipeline()
    assert fixed(oz).name == "oz"
    mo = next(c for c in pipelines.candidates() if c.machine_outliner)
    assert fixed(mo.passes, "1") == mo
    if mo.validated:
        assert policy.preset_decision() == f"1:{mo.passes}"
    # The same text without its knob is another pipeline, and not trusted as that candidate.
    plain = fixed(mo.passes, "0")
    assert not plain.machine_outliner and plain != mo


def test_candidate_name_keeps_its_own_knobs(fixed):
    assert fixed("oz", "1").machine_outliner is False
    mo = next(c for c in pipelines.candidates() if c.machine_outliner)
    assert fixed(mo.name).machine_outliner is True


def test_canaries_are_the_tests_any_pipeline_failed(monkeypatch, tmp_path):
    """fail-fast selection tries these first; passes and cut-off lines are not canaries."""
    monkeypatch.setenv("CLANG_LLM_DATA", str(tmp_path))
    res = tmp_path / "validate" / "results"
    res.mkdir(parents=True)
    line = lambda test, status: json.dumps({"suite": "torture", "test": test, "digest": "d", "status": status,
                                            "detail": "", "seconds": 0.1})
    (res / "a-x.jsonl").write_text("\n".join([line("t/1.c", "pass"), line("t/2.c", "compile-error")]) + "\n")
    (res / "b-x.jsonl").write_text("\n".join([line("t/3.c", "wrong-output"), '{"suite": "tor']) + "\n")
    assert validate._canaries() == {"t/2.c", "t/3.c"}


@pytest.fixture
def fake_sources(monkeypatch, tmp_path):
    """debsrc's cache with a fake .dsc per package, and a baseline in tmp_path."""
    from clang_llm.train import debsrc

    def fetch(package):
        d = tmp_path / "src" / package
        d.mkdir(parents=True, exist_ok=True)
        if not list(d.glob("*.dsc")):
            (d / f"{package}_1.0-1.dsc").write_text(f"Source: {package}\nVersion: 1.0-1\n")
        return d

    monkeypatch.setattr(debsrc, "fetch", fetch)
    monkeypatch.setattr(validate, "committed_dir", lambda: tmp_path)
    rows = [f"{p}\t{validate._recipe_digest(p)}\t{p}_1.0-1.dsc" for p in validate.PROGRAMS]
    (tmp_path / validate.PROGRAMS_BASELINE).write_text("# header\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_program_tests_follow_the_baseline_and_the_source_version(fake_sources):
    first = validate.program_tests()
    assert [t.id for t in first] == [f"programs/{p}" for p in validate.PROGRAMS]
    # A Debian update (new .dsc) is still tested, under a new digest, so outcomes
    # cached for the old source are not reused.
    zdir = fake_sources / "src" / "zlib"
    (zdir / "zlib_1.0-1.dsc").rename(zdir / "zlib_1.0-1+deb12u1.dsc")
    (zdir / "zlib_1.0-1+deb12u1.dsc").write_text("Source: zlib\nVersion: 1.0-1+deb12u1\n")
    again = {t.id: t.digest for t in validate.program_tests()}
    before = {t.id: t.digest for t in first}
    assert again["programs/zlib"] != before["programs/zlib"]
    assert {k: v for k, v in again.items() if k != "programs/zlib"} == \
        {k: v for k, v in before.items() if k != "programs/zlib"}


def test_program_tests_refuse_a_recipe_changed_since_the_baseline(fake_sources, monkeypatch):
    from dataclasses import replace

    from clang_llm.train import debsrc

    monkeypatch.setitem(debsrc.RECIPES, "bzip2", replace(debsrc.RECIPES["bzip2"], test=(("true",),)))
    with pytest.raises(validate.ValidateError, match="programs/bzip2: the debsrc recipe changed"):
        validate.program_tests()


def test_failed_lines_name_what_failed():
    tail = "Test project /x\n1/2 Test #1: example ...***Failed\n2/2 Test #2: ok ... Passed\n" \
           "50% tests passed, 1 tests failed out of 2\nErrors while running CTest\n"
    assert validate._failed_lines(tail) == ("1/2 Test #1: example ...***Failed | 50% tests passed, 1 tests failed "
                                            "out of 2 | Errors while running CTest")
    assert validate._failed_lines("all\ngood\n") == "all | good"


def test_a_run_of_some_suites_merges_into_the_full_entry():
    """Adding a suite to the gate costs a run of that suite, not of the rest:
    the earlier verdicts of the other suites stay, and so do their failures."""
    old = {"name": "p", "key": "k", "ok": False, "excluded": True, "full": True, "limit": None, "toolchain": "t0",
           "suites": ["determinism", "torture", "csmith"], "date": "d0", "seconds": 80.0, "test_seconds": 120.0,
           "reasons": ["torture: 1 of 1962 tests fail: x.c (run-fail: exit 1)"],
           "counts": {"determinism": {"tests": 24, "passed": 24}, "torture": {"tests": 1962, "passed": 1961},
                      "csmith": {"tests": 300, "passed": 300}},
           "failures": {"torture": [["x.c", "run-fail", "exit 1"]]}}
    new = {"name": "p", "key": "k", "ok": True, "excluded": False, "full": False, "limit": None, "toolchain": "t1",
           "suites": ["regressions", "programs"], "date": "d1", "seconds": 40.0, "test_seconds": 50.0,
           "reasons": [], "counts": {"regressions": {"tests": 1, "passed": 1}, "programs": {"tests": 6, "passed": 6}},
           "failures": {}}
    m = validate.merge_entries(old, new)
    assert m["suites"] == list(validate.SUITES) and m["full"]
    assert not m["ok"] and m["reasons"] == old["reasons"] and m["failures"] == old["failures"]
    assert set(m["counts"]) == set(validate.SUITES) and m["seconds"] == 120.0
    assert [r["date"] for r in m["runs"]] == ["d0", "d1"] and m["toolchain"] == "t1"
    # Rerunning a suite replaces its verdict; a rule violation needs no suite at all.
    fixed = validate.merge_entries(m, {**new, "suites": ["torture"], "counts": {"torture": {"tests": 1962,
                                       "passed": 1962}}, "date": "d2"})
    assert fixed["ok"] and fixed["full"] and "torture" not in fixed["failures"] and len(fixed["runs"]) == 3
    rules = validate.merge_entries(fixed, {**new, "ok": False, "counts": {}, "reasons": ["rules: contains x: y"]})
    assert not rules["ok"] and rules["reasons"] == ["rules: contains x: y"] and rules["full"]
