"""The programs suite keeps what a failed package test suite left behind, and says where.

A flake (issue 28: pcre2's RunGrepTest under `make -j2 check`) can only be
diagnosed from the suite's own files: automake's test-suite.log, the failing
test's .log, and the output the test script diffed (pcre2's testtrygrep).
"""

import os
import time
from pathlib import Path

from clang_llm.train import debsrc
from clang_llm.train import validate


def _fake_package(monkeypatch, tmp_path, fail_in: str):
    monkeypatch.setenv("CLANG_LLM_DATA", str(tmp_path / "data"))

    def prepare(package, dest):
        dest.mkdir(parents=True)
        for name in ("configure", "README"):  # as copied from the tarball: old
            (dest / name).write_text("from the tarball\n")
            os.utime(dest / name, (time.time() - 3600, time.time() - 3600))
        return dest

    def build(package, tree, cc, cflags, env=None, jobs=2, timeout=None):
        (tree / debsrc.BUILD_LOG).write_text("$ make\nbuilt\n")
        (tree / "pcre2grep").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(64))
        if fail_in == "build":
            raise debsrc.BuildError("pcre2: build failed (exit 2): make", tree / debsrc.BUILD_LOG, "error: x")

    def run_tests(package, tree, env=None, jobs=2, timeout=None):
        (tree / debsrc.TEST_LOG).write_text("$ make -j2 check\nFAIL: RunGrepTest\n")
        (tree / "test-suite.log").write_text("FAIL: RunGrepTest\n")
        (tree / "RunGrepTest.log").write_text("--- testdata/grepoutputC\n+++ testtrygrep\n")
        (tree / "RunGrepTest.trs").write_text(":test-result: FAIL\n")
        (tree / "testtrygrep").write_text("Arg1: [T]\nThe quick brown\n")
        (tree / "sub").mkdir()
        (tree / "sub" / "t.o").write_bytes(b"\x7fELF" + bytes(64))
        (tree / "sub" / "case.out").write_text("got 1\n")
        return debsrc.TestResult(package, False, 2, 0.1, tree / debsrc.TEST_LOG, "FAIL: RunGrepTest")

    monkeypatch.setattr(debsrc, "prepare", prepare)
    monkeypatch.setattr(debsrc, "build", build)
    monkeypatch.setattr(debsrc, "run_tests", run_tests)
    comp = validate.Compiler("policy onnx", ["clang-llm", "-Oz-llm"], {})
    test = validate.Test("programs", "programs/pcre2", tmp_path / "pcre2.dsc", ())
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return validate.build_and_test_package(comp, test, work, 2)


def _kept_dir(detail: str) -> Path:
    assert "logs: " in detail, detail
    d = Path(detail.rsplit("logs: ", 1)[1].strip())
    assert d.is_dir() and d.is_relative_to(validate.cache_dir() / "program-logs"), d
    return d


def test_a_failed_test_suite_keeps_its_logs_and_outputs_where_the_detail_says(monkeypatch, tmp_path):
    o = _fake_package(monkeypatch, tmp_path, fail_in="tests")
    assert o.status == "run-fail"
    d = _kept_dir(o.detail)
    kept = {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}
    assert {debsrc.BUILD_LOG, debsrc.TEST_LOG, "tree/test-suite.log", "tree/RunGrepTest.log",
            "tree/RunGrepTest.trs", "tree/testtrygrep", "tree/sub/case.out"} <= kept, kept
    # Objects and programs `make check` built are not evidence; files older than
    # the test run came with the source.
    assert not kept & {"tree/pcre2grep", "tree/sub/t.o", "tree/README", "tree/configure"}, kept
    assert (d / "tree" / "testtrygrep").read_text() == "Arg1: [T]\nThe quick brown\n"


def test_a_failed_build_keeps_its_log_where_the_detail_says(monkeypatch, tmp_path):
    o = _fake_package(monkeypatch, tmp_path, fail_in="build")
    assert o.status == "compile-error"
    assert (_kept_dir(o.detail) / debsrc.BUILD_LOG).read_text() == "$ make\nbuilt\n"


def test_two_failures_of_one_package_do_not_overwrite_each_other(monkeypatch, tmp_path):
    first = _kept_dir(_fake_package(monkeypatch, tmp_path, fail_in="tests").detail)
    second = _kept_dir(_fake_package(monkeypatch, tmp_path, fail_in="tests").detail)
    assert first != second and (first / "tree" / "testtrygrep").is_file()
