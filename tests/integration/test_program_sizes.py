"""bench/program_sizes.py: which files of a build tree count as linked programs,
and how configurations are compared with -Oz file by file."""

import math
import os
import sys

import pytest

from conftest import ROOT, run

sys.path.insert(0, str(ROOT / "bench"))
import program_sizes as ps  # noqa: E402

pytestmark = pytest.mark.integration


def test_linked_programs_are_executables_and_shared_objects(clang, tmp_path):
    (tmp_path / "m.c").write_text("int f(int x) { return x * 3; }\nint main(void) { return f(1) - 3; }\n")
    (tmp_path / "l.c").write_text("int g(int x) { return x + 1; }\n")
    run([clang, "-Oz", "m.c", "-o", "prog"], cwd=tmp_path)  # Debian's clang links PIE: ET_DYN with an interpreter
    run([clang, "-Oz", "-no-pie", "m.c", "-o", "static-addr"], cwd=tmp_path)  # ET_EXEC
    run([clang, "-Oz", "-fPIC", "-shared", "l.c", "-o", "libl.so.1"], cwd=tmp_path)
    os.symlink("libl.so.1", tmp_path / "libl.so")  # counted once, as the file it names
    os.link(tmp_path / "prog", tmp_path / "prog-builtin")  # git's builtins: hard links, counted once
    run([clang, "-Oz", "-c", "l.c", "-o", "l.o"], cwd=tmp_path)
    run(["ar", "rc", "libl.a", "l.o"], cwd=tmp_path)
    for probe in (tmp_path / "CMakeFiles" / "3.31" / "CompilerIdC" / "a.out",
                  tmp_path / "_build" / "CMakeFiles" / "4.4.5" / "CMakeDetermineCompilerABI_C.bin",
                  tmp_path / "conftest"):
        probe.parent.mkdir(parents=True, exist_ok=True)
        run([clang, "m.c", "-o", str(probe)], cwd=tmp_path)
    found = ps.linked_programs(tmp_path)
    assert {k: v["kind"] for k, v in found.items()} == {
        "prog": "executable", "static-addr": "executable", "libl.so.1": "shared object"}
    assert all(v["text"] > 0 for v in found.values())
    assert ps.elf_kind(tmp_path / "m.c") is None and ps.elf_kind(tmp_path / "l.o") is None


def _row(status="ok", **programs):
    return {"status": status, "programs": {k: {"kind": "executable", "text": v} for k, v in programs.items()}}


def test_compare_pairs_files_and_leaves_out_one_sided_ones():
    rows = {("p", "oz"): _row(a=100, b=200, gone=50, **{"CMakeFiles/x.bin": 7}),
            ("p", "llm"): _row(a=90, b=220, new=10, **{"CMakeFiles/x.bin": 7}),
            ("q", "oz"): _row(c=1000), ("q", "llm"): _row("partial", c=900)}
    cmp_ = ps.compare(rows, ["p", "q", "absent"], ["oz", "llm"])
    p = cmp_["packages"]["p"]["configs"]["llm"]
    assert (p["files"], p["smaller"], p["larger"]) == (2, 1, 1)
    assert p["only_one_side"] == ["gone", "new"]
    assert p["total_ratio"] == pytest.approx(310 / 300)
    assert p["geomean_ratio"] == pytest.approx(math.sqrt(0.9 * 1.1))
    assert cmp_["packages"]["q"]["status"] == {"oz": "ok", "llm": "partial"}
    overall = cmp_["overall"]["llm"]
    assert (overall["packages"], overall["files"], overall["packages_larger"]) == (2, 3, 1)
    assert overall["total_ratio"] == pytest.approx(1210 / 1300)
    assert overall["geomean_of_package_totals"] == pytest.approx(math.sqrt(310 / 300 * 0.9))
    assert "absent" not in cmp_["packages"]
