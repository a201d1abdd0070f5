"""Capture mode (CLANG_LLM_CAPTURE) with the real clang-22, and a tiny corpus built
through make by clang_llm.train.corpus."""

import json
import shutil
import subprocess

import pytest

from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

A_C = r"""
#include "util.h"
int table[16];
int fill(int n) {
    int sum = 0;
    for (int i = 0; i < n && i < 16; i++) { table[i] = twice(i); sum += table[i]; }
    return sum;
}
"""
B_C = r"""
#include <string.h>
#include "util.h"
int count_vowels(const char *s) {
    int n = 0;
    for (; *s; s++) n += strchr("aeiou", *s) != 0;
    return n;
}
int main(int argc, char **argv) { return fill(argc) + count_vowels(argv[0]) == 0; }
"""
UTIL_H = "static inline int twice(int x) { return 2 * x; }\nint fill(int n);\n"
TEST_C = '#include "../src/util.h"\nint main(void) { return fill(4) != 12; }\n'
BROKEN_C = "int broken( { return }\n"
# A Makefile in the style of real ones: a compiler-option probe on stdin, the same
# file compiled twice (static and PIC), a test program, and one file that does not
# compile (make -k goes on; the package counts as partly built).
MAKEFILE = """\
all: probe tiny libtiny-pic.a tests/t_main.o broken.o
probe:
\techo 'int x;' | $(CC) $(CFLAGS) -x c -c - -o /dev/null
tiny: src/a.o src/b.o
\t$(CC) $(CFLAGS) -o $@ src/a.o src/b.o
libtiny-pic.a: src/a.pic.o
\tar rc $@ src/a.pic.o
%.pic.o: %.c
\t$(CC) $(CFLAGS) -fPIC -c $< -o $@
%.o: %.c
\t$(CC) $(CFLAGS) -c $< -o $@
"""


@pytest.fixture
def tree(tmp_path):
    t = tmp_path / "tiny"
    (t / "src").mkdir(parents=True)
    (t / "tests").mkdir()
    (t / "src" / "a.c").write_text(A_C)
    (t / "src" / "b.c").write_text(B_C)
    (t / "src" / "util.h").write_text(UTIL_H)
    (t / "tests" / "t_main.c").write_text(TEST_C)
    (t / "broken.c").write_text(BROKEN_C)
    (t / "Makefile").write_text(MAKEFILE)
    return t


def compile_a(tree, out, **env):
    return run([BIN / "clang-llm", "-Oz-llm", "-c", "src/a.c", "-o", out], env=clean_env(**env), cwd=tree)


def captured(cap):
    return sorted(p.name for p in cap.iterdir()) if cap.exists() else []


def test_capture_saves_the_unoptimised_module_by_hash_and_objects_are_unchanged(tree, tmp_path, clang):
    from clang_llm import _core

    cap, log = tmp_path / "cap", tmp_path / "log.jsonl"
    compile_a(tree, "plain.o")
    compile_a(tree, "captured.o", CLANG_LLM_CAPTURE=cap, CLANG_LLM_CAPTURE_PKG="tiny", CLANG_LLM_LOG=log)
    assert (tree / "plain.o").read_bytes() == (tree / "captured.o").read_bytes()

    names = captured(cap)
    assert len(names) == 2 and names[0].endswith(".bc") and names[1] == names[0][:-3] + ".json"
    h = names[0][:-3]
    # Named by the hash the policy sees for the module at compile time.
    assert [json.loads(line)["hash"] for line in log.read_text().splitlines()] == [h]
    bc = (cap / f"{h}.bc").read_bytes()
    m = _core.LoadedModule(bc, name="a")
    assert m.content_hash() == h  # the bitcode keeps the use-list order the hash sees
    # Taken before any optimisation: -Oz's front end leaves locals in allocas.
    assert " alloca " in m.ir_text()
    meta = json.loads((cap / f"{h}.json").read_text())
    assert meta["hash"] == h and meta["source"] == "src/a.c" and meta["cwd"] == str(tree)
    assert meta["package"] == "tiny" and meta["bytes"] == len(bc)
    assert {"-c", "src/a.c", "-Oz"} <= set(meta["argv"])
    assert meta["ir_instructions"] == m.instruction_count()
    assert meta["functions"] == sum(1 for ln in m.ir_text().splitlines() if ln.startswith("define "))

    # The same module compiled again, twice at once (make -j): still one capture.
    env = clean_env(CLANG_LLM_CAPTURE=cap)
    procs = [subprocess.Popen([BIN / "clang-llm", "-Oz-llm", "-c", "src/a.c", "-o", f"again{i}.o"], cwd=tree,
                              env=env) for i in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    assert captured(cap) == names


def test_capture_to_stdout_and_unusable_directory_never_change_the_build(tree, tmp_path, clang):
    plain = run([BIN / "clang-llm", "-Oz-llm", "-c", "src/a.c", "-o", "-"], cwd=tree).stdout
    ok = run([BIN / "clang-llm", "-Oz-llm", "-c", "src/a.c", "-o", "-"], cwd=tree,
             env=clean_env(CLANG_LLM_CAPTURE=tmp_path / "cap"))
    assert ok.stdout == plain and ok.stderr == b""
    assert len(captured(tmp_path / "cap")) == 2

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    bad = run([BIN / "clang-llm", "-Oz-llm", "-c", "src/a.c", "-o", "-"], cwd=tree,
              env=clean_env(CLANG_LLM_CAPTURE=blocker / "cap"))
    assert bad.returncode == 0 and bad.stdout == plain
    lines = bad.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clang-llm: warning: cannot capture 'src/a.c'")


def test_tiny_corpus_through_make(tree, tmp_path, monkeypatch, clang):
    from clang_llm.train import corpus

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    manifest = tmp_path / "manifest.toml"
    manifest.write_text('[packages.tiny]\nsystem = "make"\n')
    root, stats, split = tmp_path / "corpus", tmp_path / "stats.json", tmp_path / "split.json"
    monkeypatch.setattr(corpus, "prepare_tree", lambda entry, dest: shutil.copytree(tree, dest))
    monkeypatch.setattr(corpus, "_version", lambda package: "1.0-1")
    kw = dict(root=root, manifest=manifest, stats_path=stats, split_path=split, jobs=2, update_split=True,
              echo=lambda s: None)

    rec = corpus.build(**kw)["tiny"]
    assert rec["status"] == "partial" and "make -k" in rec["reason"]
    assert any("broken.c" in e for e in rec["errors"])
    got = {m["source"]: m["kind"] for m in rec["modules"]}
    assert got == {"src/a.c": "module", "src/b.c": "module", "tests/t_main.c": "test"}
    assert rec["dropped"]["probes"] == 1 and rec["dropped"]["variants"] == 1
    assert not (root / "build" / "tiny").exists() and not (root / "capture" / "tiny").exists()

    mods = corpus.modules(root=root, split_path=split)
    assert [m["source"] for m in mods] == ["src/a.c", "src/b.c"]
    for m in mods:
        assert (root / "modules" / f"{m['hash']}.bc").read_bytes()[:4] == b"BC\xc0\xde"
        side = json.loads((root / "modules" / f"{m['hash']}.json").read_text())
        assert side["package"] == "tiny" and side["rel_source"] == m["source"]
    assert json.loads(split.read_text())["packages"] == {"tiny": "train"}
    assert json.loads(stats.read_text())["packages"]["tiny"]["modules"] == 2

    # Resumable: a built package is skipped; --force builds it again, to the same modules.
    assert corpus.build(**kw) == {}
    again = corpus.build(force=True, **kw)["tiny"]
    assert again["modules"] == rec["modules"]
