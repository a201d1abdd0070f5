"""A user policy that crashes, hangs or makes LLVM report a fatal error inside a
real clang-22 compile: the build gets clang's -Oz object and one warning line
(an error under CLANG_LLM_STRICT), never a crash report, a reproducer or a lost
output file."""

import time

import pytest

from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

SOURCE = "int scale(int x) { return x * 3 + 1; }\nint table[4] = {1, 2, 3, 4};\n"

POLICIES = {
    "segv": ("import ctypes\ndef choose(m):\n    ctypes.string_at(0)\n", "crashed (SIGSEGV)"),
    # clang's own fatal error handler would delete its output files on the way
    # out (and print the crash report); in the child neither may happen.
    "llvm-fatal": ("import ctypes\ndef choose(m):\n"
                   "    ctypes.CDLL(None)._ZN4llvm18report_fatal_errorEPKcb(b'boom from a policy', False)\n",
                   "LLVM ERROR: boom from a policy"),
    "hang": ("import time\ndef choose(m):\n    time.sleep(30)\n    return 'oz'\n",
             "gave no ranking within 1 s (CLANG_LLM_POLICY_TIMEOUT)"),
}


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_a_failing_policy_costs_a_fallback_not_the_build(kind, tmp_path, clang):
    body, why = POLICIES[kind]
    policy = tmp_path / f"{kind}.py"
    policy.write_text(body)
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    src = work / "f.c"
    src.write_text(SOURCE)
    env = dict(CLANG_LLM_POLICY=policy, CLANG_LLM_POLICY_TIMEOUT=1, TMPDIR=tmp)
    start = time.monotonic()
    r = run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", work / "a.o"], env=clean_env(**env), cwd=work)
    assert time.monotonic() - start < 20
    err = r.stderr.decode().splitlines()
    reason = why if kind == "llvm-fatal" else f"policy {policy} {why}"
    assert err == [f"clang-llm: warning: using clang's -Oz pipeline for '{src}': {reason}"]
    run([clang, "-Oz", "-c", src, "-o", work / "b.o"])
    assert (work / "a.o").read_bytes() == (work / "b.o").read_bytes()

    strict = run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", work / "c.o"], check=False,
                 env=clean_env(CLANG_LLM_STRICT=1, **env), cwd=work)
    msg = strict.stderr.decode()
    assert strict.returncode == 1 and "clang-llm: policy failed (strict mode)" in msg and why in msg, msg
    assert "PLEASE submit a bug report" not in msg and "Stack dump" not in msg
    # No reproducer (clang writes it to TMPDIR), no core file, nothing else;
    # strict mode's error leaves no object, as any compile error does.
    assert list(tmp.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == ["a.o", "b.o", "f.c"]
