"""The driver against the real clang-22: transparent without -Oz-llm, exact with it."""

import subprocess

import pytest

from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(void) {
    int v[8] = {5, 3, 9, 1, 7, 2, 8, 6};
    qsort(v, 8, sizeof v[0], cmp);
    char buf[64];
    snprintf(buf, sizeof buf, "%d%d%d%d%d%d%d%d", v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    return strcmp(buf, "12356789") != 0;
}
"""


@pytest.fixture
def prog(tmp_path):
    p = tmp_path / "prog.c"
    p.write_text("#include <stdlib.h>\n" + PROGRAM)
    return p


def both(args, cwd, stdin=None, **env):
    """Run clang-22 and clang-llm with the same arguments."""
    ref = subprocess.run(["clang-22", *map(str, args)], cwd=cwd, capture_output=True, input=stdin)
    got = subprocess.run([str(BIN / "clang-llm"), *map(str, args)], cwd=cwd, capture_output=True, input=stdin,
                         env=clean_env(**env))
    return ref, got


@pytest.mark.parametrize("args", [["--version"], ["-dumpversion"], ["-print-prog-name=ld"],
                                  ["-print-search-dirs"], ["-###", "-c", "prog.c"]])
def test_queries_identical(args, prog, clang):
    ref, got = both(args, prog.parent)
    assert (got.returncode, got.stdout, got.stderr) == (ref.returncode, ref.stdout, ref.stderr)


def test_pass_through_objects_identical(prog, clang, tmp_path):
    for flags in (["-O2"], ["-O0", "-g"], ["-Oz", "-fPIC"]):
        ref, got = both([*flags, "-c", "prog.c", "-o", "-"], prog.parent)
        assert got.returncode == 0 and got.stdout == ref.stdout


def test_errors_keep_clangs_exit_code_and_message(tmp_path, clang):
    bad = tmp_path / "bad.c"
    bad.write_text("int f( { return }\n")
    for extra in ([], ["-Oz-llm"]):
        ref, got = both(["-c", "bad.c", "-o", "bad.o"], tmp_path)
        got_llm = subprocess.run([str(BIN / "clang-llm"), *extra, "-c", "bad.c", "-o", "bad.o"], cwd=tmp_path,
                                 capture_output=True, env=clean_env(CLANG_LLM_STRICT=1))
        assert got_llm.returncode == ref.returncode == 1
        assert got_llm.stderr == ref.stderr
    ref, got = both(["-c", "missing.c"], tmp_path)
    assert got.returncode == ref.returncode != 0 and got.stderr == ref.stderr


def test_compile_and_link_and_run(prog, tmp_path):
    exe = tmp_path / "prog"
    run([BIN / "clang-llm", "-Oz-llm", prog, "-o", exe], env=clean_env(CLANG_LLM_STRICT=1))
    assert subprocess.run([exe]).returncode == 0
    # No -o: a.out in the working directory, like clang.
    run([BIN / "clang-llm", "-Oz-llm", prog.name], env=clean_env(CLANG_LLM_STRICT=1), cwd=tmp_path)
    assert subprocess.run([tmp_path / "a.out"]).returncode == 0


def test_several_inputs_stdin_and_stdout(prog, tmp_path):
    other = tmp_path / "other.c"
    other.write_text("int other(int x) { return x + 1; }\n")
    log = tmp_path / "log.jsonl"
    env = clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_LOG=log)
    run([BIN / "clang-llm", "-Oz-llm", "-c", prog.name, other.name], env=env, cwd=tmp_path)
    assert (tmp_path / "prog.o").exists() and (tmp_path / "other.o").exists()
    r = subprocess.run([str(BIN / "clang-llm"), "-Oz-llm", "-x", "c", "-", "-c", "-o", "-"],
                       input=other.read_bytes(), capture_output=True, env=env)
    assert r.returncode == 0 and r.stdout[:4] == b"\x7fELF"
    assert len(log.read_text().splitlines()) == 3


def test_preprocess_and_dependencies(prog, tmp_path):
    ref, got = both(["-Oz", "-E", "prog.c"], prog.parent)
    _, got_llm = both(["-Oz-llm", "-E", "prog.c"], prog.parent)
    assert got_llm.stdout == ref.stdout and got_llm.returncode == 0
    run([BIN / "clang-llm", "-Oz-llm", "-MD", "-MF", "prog.d", "-MT", "prog.o", "-c", "prog.c"],
        env=clean_env(CLANG_LLM_STRICT=1), cwd=tmp_path)
    assert (tmp_path / "prog.d").read_text().startswith("prog.o:")


def test_configure_probe_to_dev_null(prog, tmp_path):
    run([BIN / "clang-llm", "-Oz-llm", "-c", prog, "-o", "/dev/null"], env=clean_env(CLANG_LLM_STRICT=1))
    run([BIN / "clang-llm", "-Oz-llm", prog, "-o", "/dev/null"], env=clean_env(CLANG_LLM_STRICT=1))


def test_response_file(prog, tmp_path):
    rsp = tmp_path / "args.rsp"
    rsp.write_text(f"-Oz-llm -c {prog} -o {tmp_path / 'rsp.o'}\n")
    log = tmp_path / "log.jsonl"
    run([BIN / "clang-llm", f"@{rsp}"], env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_LOG=log))
    assert (tmp_path / "rsp.o").exists() and log.exists()


def test_emit_llvm_is_optimised(prog, tmp_path, clang):
    env = clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_POLICY="oz")
    run([BIN / "clang-llm", "-Oz-llm", "-emit-llvm", "-c", prog.name], env=env, cwd=tmp_path)
    run([BIN / "clang-llm", "-Oz-llm", "-emit-llvm", "-S", prog.name, "-o", "prog.ll"], env=env, cwd=tmp_path)
    run([clang, "-Oz", "-emit-llvm", "-S", prog.name, "-o", "ref.ll"], cwd=tmp_path)
    ours = (tmp_path / "prog.ll").read_text()
    assert (tmp_path / "prog.bc").read_bytes()[:2] == b"BC"
    # Byte for byte clang -Oz's, the module ID line included (it once named the
    # driver's temporary bitcode file).
    assert ours == (tmp_path / "ref.ll").read_text()


def test_assembly_and_object_inputs(prog, tmp_path):
    run(["clang-22", "-Oz", "-S", prog, "-o", tmp_path / "prog.s"])
    run([BIN / "clang-llm", "-Oz-llm", "-c", tmp_path / "prog.s", "-o", tmp_path / "s.o"],
        env=clean_env(CLANG_LLM_STRICT=1))
    run([BIN / "clang-llm", "-Oz-llm", tmp_path / "s.o", "-o", tmp_path / "exe"], env=clean_env(CLANG_LLM_STRICT=1))
    assert subprocess.run([tmp_path / "exe"]).returncode == 0


def test_cxx(tmp_path):
    src = tmp_path / "f.cpp"
    src.write_text("#include <vector>\nint main(){std::vector<int> v{3,1,2}; int s=0; for(int x: v) s+=x;"
                   " return s == 6 ? 0 : 1;}\n")
    log = tmp_path / "log.jsonl"
    run([BIN / "clang-llm++", "-Oz-llm", src, "-o", tmp_path / "f"],
        env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_LOG=log))
    assert subprocess.run([tmp_path / "f"]).returncode == 0 and log.exists()


def test_lto_falls_back_with_a_note(prog, tmp_path):
    r = run([BIN / "clang-llm", "-Oz-llm", "-flto", "-c", prog, "-o", tmp_path / "f.o"])
    assert b"clang-llm: warning: compiling with plain -Oz" in r.stderr
    r = run([BIN / "clang-llm", "-Oz-llm", "-flto", "-c", prog, "-o", tmp_path / "f.o"],
            env=clean_env(CLANG_LLM_STRICT=1), check=False)
    assert r.returncode == 1


def test_recursive_clang_is_an_error(prog, tmp_path):
    r = subprocess.run([str(BIN / "clang-llm"), "-Oz-llm", "-c", str(prog)], capture_output=True, timeout=60,
                       env=clean_env(CLANG_LLM_CLANG=BIN / "clang-llm"), cwd=tmp_path)
    assert r.returncode == 1 and b"recursive invocation" in r.stderr


def test_module_cli(plugin):
    r = run([BIN / "python", "-m", "clang_llm", "--plugin-path"])
    assert r.stdout.decode().strip() == plugin
    fp = run([BIN / "python", "-m", "clang_llm", "--fingerprint"]).stdout.strip()
    assert len(fp) == 32
    fp2 = run([BIN / "python", "-m", "clang_llm", "--fingerprint"], env=clean_env(CLANG_LLM_POLICY="oz")).stdout.strip()
    assert fp2 != fp  # another back end decides differently, so ccache must not mix them


def test_module_independent_decisions_start_no_python(prog, tmp_path, clang):
    """The default back end's decision is made by the driver; the plugin then never
    starts an interpreter. A broken interpreter path proves it under strict mode."""
    no_python = dict(CLANG_LLM_STRICT=1, CLANG_LLM_PYTHON="/nonexistent/python3")
    run([BIN / "clang-llm", "-Oz-llm", "-c", prog, "-o", tmp_path / "a.o"], env=clean_env(**no_python))
    run([BIN / "clang-llm", "-Oz-llm", "-c", prog, "-o", tmp_path / "b.o"],
        env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_LOG=tmp_path / "log.jsonl"))
    assert (tmp_path / "a.o").read_bytes() == (tmp_path / "b.o").read_bytes()
    # Logging needs the policy in the plugin, so then the interpreter is required.
    r = run([BIN / "clang-llm", "-Oz-llm", "-c", prog, "-o", tmp_path / "c.o"],
            env=clean_env(CLANG_LLM_LOG=tmp_path / "log2.jsonl", **no_python), check=False)
    assert r.returncode != 0 and b"No module named 'clang_llm'" in r.stderr
