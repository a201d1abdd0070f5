"""-Oz-llm output is reproducible: the same bytes from another working directory
and another TMPDIR, for every output kind, and it names the source as clang does.

Issue 28: `-S -emit-llvm` wrote "; ModuleID = '/tmp/clang-llm-XXXX/raw.bc'" (the
driver's temporary bitcode, which opt-22 read) where clang writes the source name.
"""

import shutil
import subprocess

import pytest

from conftest import BIN, clean_env

pytestmark = pytest.mark.integration

SOURCE = r"""
#include <stdio.h>
static int table[16];
static int fill(int n) { for (int i = 0; i < 16; i++) table[i] = i * n + (i ^ n); return table[n & 15]; }
int main(int argc, char **argv) { (void)argv; printf("%d\n", fill(argc + 6)); return 0; }
"""

KINDS = {"obj": ["-c"], "asm": ["-S"], "bc": ["-emit-llvm", "-c"], "ll": ["-S", "-emit-llvm"]}
SUFFIX = {"obj": ".o", "asm": ".s", "bc": ".bc", "ll": ".ll"}


def _compile(cc, flag, kind, stdin, work, tmpdir, **env):
    work.mkdir(parents=True, exist_ok=True)
    tmpdir.mkdir(parents=True, exist_ok=True)
    (work / "unit.c").write_text(SOURCE)
    out = "out" + SUFFIX[kind]
    inputs = ["-x", "c", "-"] if stdin else ["unit.c"]
    r = subprocess.run([str(cc), flag, *KINDS[kind], *inputs, "-o", out], cwd=work, capture_output=True,
                       input=SOURCE.encode() if stdin else None,
                       env=clean_env(TMPDIR=tmpdir, CLANG_LLM_STRICT=1, **env))
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return (work / out).read_bytes()


def _names(data: bytes, kind: str, tmp_path) -> list[str]:
    """The ModuleID and source_filename lines (bitcode keeps only the latter)."""
    if kind == "bc":
        f = tmp_path / "names.bc"
        f.write_bytes(data)
        data = subprocess.run(["llvm-dis-22", str(f), "-o", "-"], check=True, capture_output=True).stdout
        return [ln for ln in data.decode().splitlines() if ln.startswith("source_filename")]
    return [ln for ln in data.decode().splitlines()[:2]
            if ln.startswith(("; ModuleID", "source_filename"))]


@pytest.mark.parametrize("mode", ["-Oz-llm", "-Oz-llm=verify"])
@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_output_is_the_same_from_another_directory(kind, stdin, mode, tmp_path, clang):
    first = _compile(BIN / "clang-llm", mode, kind, stdin, tmp_path / "a" / "w", tmp_path / "a" / "t")
    second = _compile(BIN / "clang-llm", mode, kind, stdin, tmp_path / "b" / "w" / "deeper",
                      tmp_path / "b" / "tmp")
    assert first == second
    assert b"clang-llm-" not in first and str(tmp_path).encode() not in first
    if kind in ("ll", "bc"):
        if kind == "bc" and not shutil.which("llvm-dis-22"):
            pytest.skip("llvm-dis-22 not installed")
        ref = _compile(clang, "-Oz", kind, stdin, tmp_path / "ref" / "w", tmp_path / "ref" / "t")
        names = _names(first, kind, tmp_path)
        assert names and names == _names(ref, kind, tmp_path)


def test_ll_names_the_source_path_as_given(tmp_path, clang):
    """clang writes the source path exactly as its command line spells it."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "unit.c").write_text(SOURCE)
    for src in ("./sub/unit.c", str(tmp_path / "sub" / "unit.c")):
        got = subprocess.run([str(BIN / "clang-llm"), "-Oz-llm", "-S", "-emit-llvm", src, "-o", "-"],
                             cwd=tmp_path, capture_output=True, env=clean_env(CLANG_LLM_STRICT=1), check=True).stdout
        ref = subprocess.run([clang, "-Oz", "-S", "-emit-llvm", src, "-o", "-"], cwd=tmp_path,
                             capture_output=True, check=True).stdout
        assert got.decode().splitlines()[:2] == ref.decode().splitlines()[:2]
