"""The debsrc recipes' test suites must be deterministic: the correctness gate
(programs suite) reads a failure as a miscompile."""

import shutil
import subprocess

import pytest

from clang_llm.train import debsrc
from clang_llm.train import validate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pcre2_tree(tmp_path_factory, clang):
    try:
        debsrc.fetch("pcre2")
    except debsrc.FetchError as e:
        pytest.skip(f"cannot fetch Debian source package pcre2: {e}")
    tree = debsrc.prepare("pcre2", tmp_path_factory.mktemp("pcre2") / "src")
    debsrc.build("pcre2", tree, "clang-22", "-Oz", jobs=2)
    return tree


def test_pcre2grep_is_built_without_fork_callouts(pcre2_tree):
    """pcre2grep 10.42 forks a callout's program before flushing its own stdout,
    so under load RunGrepTest's callout output comes out in another order
    (issue 28: RunGrepTest failed under `make -j2 check`). The recipe builds the
    non-fork callouts, whose output pcre2grep writes itself, in order."""
    out = subprocess.run([pcre2_tree / "pcre2grep", "--help"], capture_output=True, text=True).stdout
    assert "Non-fork callout scripts in patterns are supported" in out


def test_pcre2s_tests_pass_and_the_baseline_names_this_recipe(pcre2_tree):
    r = debsrc.run_tests("pcre2", pcre2_tree, jobs=2)
    assert r.ok, r.tail
    rows = {row[0]: row[1] for row in validate._read_baseline(validate.PROGRAMS_BASELINE)}
    assert rows["pcre2"] == validate._recipe_digest("pcre2")


def test_pcre2grep_callouts_run_in_order_under_load(pcre2_tree):
    """RunGrepTest's forking callout command, run while the CPUs are busy: the
    output must always match the quiet-machine order (the fork build gave 12
    swaps in 300 runs; a bounded number of runs here)."""
    if not shutil.which("sh"):
        pytest.skip("no sh")
    grep = pcre2_tree / "pcre2grep"
    cmd = [str(grep), '(T)(..(.))(?C"/bin/echo|Arg1: [$1] [$2] [$3]|Arg2: $|${1}$| ($4) ($14) ($0)")()',
           str(pcre2_tree / "testdata" / "grepinputv")]
    busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(3)]
    try:
        outs = {subprocess.run(cmd, capture_output=True).stdout for _ in range(150)}
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert len(outs) == 1, "callout output order depends on scheduling"
