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
    assert all(v["text"] > 0 and v["image"] > v["text"] for v in found.values())
    assert "m.c" in found["prog"]["sources"]
    assert ps.elf_kind(tmp_path / "m.c") is None and ps.elf_kind(tmp_path / "l.o") is None


def _row(status="ok", objects=None, **programs):
    def sizes(v):
        image, sources = v if isinstance(v, tuple) else (v, [])
        return {"kind": "executable", "image": image, "text": image // 2, "ram": 8, "unwind": 4,
                "sources": sources}

    return {"status": status, "programs": {k: sizes(v) for k, v in programs.items()}, "objects": objects or {}}


def test_compare_pairs_files_and_leaves_out_one_sided_ones():
    rows = {("p", "oz", "default"): _row(a=100, b=200, gone=50),
            ("p", "llm", "default"): _row(a=90, b=220, new=10),
            ("q", "oz", "default"): _row(c=1000), ("q", "llm", "default"): _row("partial", c=900)}
    cmp_ = ps.compare(rows, ["p", "q", "absent"], ["oz", "llm"], ["default"])["default"]
    p = cmp_["packages"]["p"]["configs"]["llm"]
    assert (p["files"], p["smaller"], p["larger"]) == (2, 1, 1)
    assert p["only_one_side"] == ["gone", "new"]
    assert p["image_total_ratio"] == pytest.approx(310 / 300)
    assert p["image_geomean_ratio"] == pytest.approx(math.sqrt(0.9 * 1.1))
    assert p["larger_files"] == [["b", 200, 220]]
    assert cmp_["packages"]["q"]["status"] == {"oz": "ok", "llm": "partial"}
    overall = cmp_["overall"]["llm"]
    assert (overall["packages"], overall["files"], overall["packages_larger"]) == (2, 3, 1)
    assert overall["image_total_ratio"] == pytest.approx(1210 / 1300)
    assert "absent" not in cmp_["packages"]


def test_agreement_sums_the_objects_each_program_keeps():
    objs = {"oz": {"a/x.o": {"source": "x.c", "image": 50, "text": 30}, "a/y.o": {"source": "y.c", "image": 50,
                                                                                 "text": 30},
                   "b/y.o": {"source": "y.c", "image": 10, "text": 5}},
            "llm": {"a/x.o": {"source": "x.c", "image": 40, "text": 10}, "a/y.o": {"source": "y.c", "image": 52,
                                                                                 "text": 20},
                    "b/y.o": {"source": "y.c", "image": 10, "text": 5}}}
    rows = {("p", c, "default"): _row(objects={k: v for k, v in objs[c].items() if k.startswith("a/")},
                                      prog=(n, ["Scrt1.o", "x.c", "crtstuff.c"]))
            for c, n in (("oz", 100), ("llm", 91))}
    ag = ps.compare(rows, ["p"], ["oz", "llm"], ["default"])["default"]["overall"]["llm"]["agreement"]
    assert (ag["files"], ag["measured_delta"], ag["predicted_delta"], ag["text_predicted_delta"]) == (1, -9, -10, -20)
    assert ag["within_64B_or_0.1pct"] == 1 and ag["same_sign"] == 1
    # A source name two objects share cannot be told apart: the file is left out.
    rows = {("p", c, "default"): _row(objects=objs[c], prog=(n, ["y.c"])) for c, n in (("oz", 100), ("llm", 91))}
    ag = ps.compare(rows, ["p"], ["oz", "llm"], ["default"])["default"]["overall"]["llm"]["agreement"]
    assert ag == {"files": 0, "skipped": 1}
