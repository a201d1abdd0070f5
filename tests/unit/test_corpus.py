"""The corpus's bookkeeping without a compiler: manifest, module selection, records,
the split, and capture mode's writing rules (with a fake module handle)."""

import json
import os
from pathlib import Path

import pytest

from clang_llm import policy
from clang_llm.train import corpus


# --- the manifest ------------------------------------------------------------------

def test_committed_manifest_is_valid_and_large_enough():
    entries = corpus.load_manifest()
    assert len(entries) >= 40
    for e in entries.values():
        r = e.recipe()
        assert r.build, e.package
        # Every command keeps going past errors: the corpus needs modules, not binaries.
        assert any("-k" in cmd for cmd in r.build), e.package
        assert len(e.fingerprint) == 16


def write_manifest(tmp_path, text):
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_manifest_defaults_and_rendering(tmp_path):
    m = corpus.load_manifest(write_manifest(tmp_path, """
[defaults]
apply_patches = false
[packages.a]
system = "autotools"
configure_args = ["--disable-nls"]
make_args = ["all"]
[packages.b]
system = "make"
make_vars = { CC = "{cc}", MYCFLAGS = "{cflags}" }
apply_patches = true
"""))
    assert list(m) == ["a", "b"]
    a, b = m["a"], m["b"]
    assert not a.apply_patches and b.apply_patches
    assert a.recipe().configure == (("./configure", "CC={cc}", "CFLAGS={cflags}", "--disable-nls"),)
    assert a.recipe().build == (("make", "-k", "-j{jobs}", "all"),)
    assert corpus._stage_env(a, "/venv/bin/clang-llm", None, "a")["CLANG_LLM_CAPTURE"] == ""
    assert b.recipe().build == (("make", "-k", "-j{jobs}", "CC={cc}", "MYCFLAGS={cflags}"),)


def test_stage_environment(tmp_path):
    e = corpus.parse_entry("p", {"system": "autotools", "env": {"FORCE_UNSAFE_CONFIGURE": "1"}})
    env = corpus._stage_env(e, "/venv/bin/clang-llm", Path("/corpus/capture/p"), "p")
    assert env["PATH"].startswith("/venv/bin" + os.pathsep)
    assert env["CLANG_LLM_CAPTURE"] == "/corpus/capture/p" and env["CLANG_LLM_CAPTURE_PKG"] == "p"
    assert env["CLANG_LLM_POLICY"] == "oz" and env["FORCE_UNSAFE_CONFIGURE"] == "1"
    # Settings from the caller's shell that would fail the build or skip the capture are neutralised.
    assert env["CLANG_LLM_STRICT"] == "0" and env["CLANG_LLM_LOG"] == "" and env["CLANG_LLM_MODE"] == ""


def test_fingerprint_follows_the_entry(tmp_path):
    one = corpus.load_manifest(write_manifest(tmp_path, '[packages.a]\nsystem = "autotools"\n'))["a"]
    same = corpus.load_manifest(write_manifest(tmp_path, '[packages.a]\nsystem = "autotools"\n'))["a"]
    other = corpus.load_manifest(write_manifest(
        tmp_path, '[packages.a]\nsystem = "autotools"\nconfigure_args = ["--x"]\n'))["a"]
    assert one.fingerprint == same.fingerprint != other.fingerprint


@pytest.mark.parametrize("text, message", [
    ('[packages.a]\nsystem = "scons"\n', "system must be one of"),
    ('[packages.a]\nsystem = "make"\nmake_flags = []\n', "unknown key"),
    ('[packages.a]\nsystem = "custom"\n', "needs build"),
    ('[packages.a]\nsystem = "make"\nmake_args = "all"\n', "list of strings"),
    ('[packages.a]\nsystem = "make"\nbootstrap = ["autoreconf"]\n', "list of strings"),
    ("[defaults]\n", "lists no"),
    ("[packages.a\n", "m.toml"),
])
def test_manifest_errors_are_clear(tmp_path, text, message):
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.load_manifest(write_manifest(tmp_path, text))


# --- choosing modules from captures -------------------------------------------------

def fake_capture(capture, tree, h, source, cwd=None, argv=(), bc=True):
    """A capture sidecar as policy.capture writes it (with a placeholder .bc)."""
    capture.mkdir(parents=True, exist_ok=True)
    meta = {"hash": h, "source": source, "cwd": str(cwd or tree), "argv": ["clang-22", *argv],
            "package": "p", "bytes": 100, "ir_instructions": 10, "functions": 1}
    (capture / f"{h}.json").write_text(json.dumps(meta))
    if bc:
        (capture / f"{h}.bc").write_bytes(b"BC")
    return meta


def test_select_keeps_one_module_per_source_and_drops_probes(tmp_path):
    tree, cap = tmp_path / "tree", tmp_path / "cap"
    (tree / "lib").mkdir(parents=True)
    fake_capture(cap, tree, "b1", "lib/a.c", argv=["-fPIC"])          # shared-library variant
    fake_capture(cap, tree, "a1", "a.c", cwd=tree / "lib")            # same file, other cwd
    fake_capture(cap, tree, "c1", "main.c")
    fake_capture(cap, tree, "d1", "conftest.c")                       # autoconf probe
    fake_capture(cap, tree, "d2", "-")                                # cc-option probe on stdin
    fake_capture(cap, tree, "d3", "src.c", cwd=tree / "_build/CMakeFiles/CMakeScratch/TryCompile-x")
    fake_capture(cap, tree, "e1", "/usr/share/x/gen.c")               # outside the tree
    fake_capture(cap, tree, "f1", "tests/check_main.c")
    fake_capture(cap, tree, "f2", "src/test_util.c")
    fake_capture(cap, tree, "g1", "half.c", bc=False)                 # interrupted capture
    kept, dropped = corpus.select(cap, tree)
    got = {m["rel_source"]: (m["hash"], m["kind"]) for m in kept}
    assert got == {"lib/a.c": ("a1", "module"), "main.c": ("c1", "module"),
                   "tests/check_main.c": ("f1", "test"), "src/test_util.c": ("f2", "test")}
    assert dropped == {"probes": 3, "outside": 1, "excluded": 0, "variants": 1, "incomplete": 1}


def test_select_honours_manifest_tests_and_exclude(tmp_path):
    tree, cap = tmp_path / "tree", tmp_path / "cap"
    tree.mkdir()
    fake_capture(cap, tree, "a", "bench/x.c")
    fake_capture(cap, tree, "b", "contrib/old/y.c")
    fake_capture(cap, tree, "c", "src/z.c")
    entry = corpus.parse_entry("p", {"system": "make", "tests": ["bench"], "exclude": ["contrib/*/*.c"]})
    kept, dropped = corpus.select(cap, tree, entry)
    assert {m["rel_source"]: m["kind"] for m in kept} == {"bench/x.c": "test", "src/z.c": "module"}
    assert dropped["excluded"] == 1


# --- records, modules() and the split ------------------------------------------------

def write_record(root, package, mods, status="ok"):
    """mods: (hash, kind) pairs; kind "empty" stands for a module without functions."""
    corpus._write_json(corpus.layout(root).record(package), {
        "package": package, "status": status, "fingerprint": "x", "version": "1",
        "modules": [{"hash": h, "source": f"{h}.c", "kind": "module" if kind == "empty" else kind, "bytes": 10,
                     "ir_instructions": 0 if kind == "empty" else 5, "functions": 0 if kind == "empty" else 1}
                    for h, kind in mods]})


def test_assign_split_is_deterministic_balanced_and_by_package():
    sizes = {f"pkg{i}": 50 + (i * 37) % 400 for i in range(60)}
    first = corpus.assign_split(sizes)
    assert first == corpus.assign_split(dict(reversed(list(sizes.items()))))
    assert set(first) == set(sizes) and set(first.values()) == set(corpus.SPLITS)
    total = sum(sizes.values())
    for s, target in corpus.DEFAULT_TARGETS.items():
        share = sum(n for p, n in sizes.items() if first[p] == s) / total
        assert abs(share - target) < 0.05, (s, share)
    assert corpus.assign_split(sizes, seed=1) != first


def test_split_keeps_assigned_packages_and_test_stays_fixed_on_reassign():
    sizes = {f"pkg{i}": 100 for i in range(20)}
    first = corpus.assign_split(sizes)
    grown = corpus.assign_split({**sizes, "new1": 300, "new2": 50}, previous=first)
    assert {p: grown[p] for p in first} == first
    redrawn = corpus.assign_split(sizes, previous=first, seed=99, keep=("test",))
    assert {p for p, s in redrawn.items() if s == "test"} >= {p for p, s in first.items() if s == "test"}


def test_modules_by_split_and_cross_split_duplicates(tmp_path):
    root, split_path = tmp_path / "corpus", tmp_path / "split.json"
    write_record(root, "alpha", [("h1", "module"), ("shared", "module"), ("t1", "test"), ("e1", "empty")])
    write_record(root, "beta", [("h2", "module"), ("shared", "module")])
    write_record(root, "gamma", [], status="failed")
    corpus._write_json(split_path, {"packages": {"alpha": "train", "beta": "test"}})
    train = corpus.modules("train", root=root, split_path=split_path)
    test = corpus.modules("test", root=root, split_path=split_path)
    # A module both packages produced must never be trained on: it counts for test.
    assert [m["hash"] for m in train] == ["h1"]
    assert sorted(m["hash"] for m in test) == ["h2", "shared"]
    assert train[0]["path"] == str(root / "modules" / "h1.bc") and train[0]["package"] == "alpha"
    every = corpus.modules(root=root, split_path=split_path, include_tests=True, include_empty=True)
    assert {m["hash"]: m["kind"] for m in every} == {"h1": "module", "h2": "module", "shared": "module",
                                                     "t1": "test", "e1": "empty"}
    assert [m["hash"] for m in corpus.modules(["train", "validation"], root=root, split_path=split_path)] == ["h1"]
    with pytest.raises(corpus.CorpusError, match="unknown split"):
        corpus.modules("dev", root=root, split_path=split_path)


def test_write_split_and_stats(tmp_path):
    root, split_path, stats_path = tmp_path / "corpus", tmp_path / "split.json", tmp_path / "stats.json"
    for i in range(12):
        write_record(root, f"p{i:02}", [(f"p{i}m{j}", "module") for j in range(10 + i)] + [(f"p{i}e", "empty")])
    write_record(root, "broken", [], status="failed")
    doc = corpus.write_split(root, split_path)
    assert "broken" not in doc["packages"] and len(doc["packages"]) == 12
    assert sum(c["modules"] for c in doc["counts"].values()) == sum(10 + i for i in range(12))
    assert doc == corpus.write_split(root, split_path)  # rerunning changes nothing
    test_pkgs = {p for p, s in doc["packages"].items() if s == "test"}
    assert test_pkgs
    again = corpus.write_split(root, split_path, seed=7, reassign=True)
    assert {p for p, s in again["packages"].items() if s == "test"} >= test_pkgs
    assert set(corpus.packages("test", split_path=split_path)) == {
        p for p, s in again["packages"].items() if s == "test"}

    stats = corpus.write_stats(root, stats_path)
    assert stats["totals"]["unique_modules"] == sum(10 + i for i in range(12))
    assert stats["totals"]["packages"] == {"ok": 12, "partial": 0, "failed": 1}
    assert stats["packages"]["p03"]["ir_instructions"] == 13 * 5
    assert stats["packages"]["p03"]["empty_modules"] == 1 and stats["totals"]["empty_modules"] == 12
    assert json.loads(stats_path.read_text()) == stats


def test_resume_skips_built_packages_unless_changed(tmp_path):
    entries = corpus.load_manifest(write_manifest(tmp_path, """
[packages.a]
system = "make"
[packages.b]
system = "make"
[packages.c]
system = "make"
[packages.d]
system = "make"
"""))
    recs = {"a": {"fingerprint": entries["a"].fingerprint, "status": "ok"},
            "b": {"fingerprint": "stale", "status": "ok"},
            "c": {"fingerprint": entries["c"].fingerprint, "status": "failed"}}
    assert corpus._todo(entries, recs, force=False, retry_failed=False) == ["b", "d"]
    assert corpus._todo(entries, recs, force=False, retry_failed=True) == ["b", "c", "d"]
    assert corpus._todo(entries, recs, force=True, retry_failed=False) == ["a", "b", "c", "d"]


# --- capture mode (policy side) ---------------------------------------------------------

class FakeModule:
    route = "clang"
    source_filename = "dir/f.c"
    triple = "x86_64-pc-linux-gnu"

    def __init__(self, h="00112233aabbccdd", bitcode=b"BC\xc0\xde-module"):
        self.h, self.data, self.bitcode_calls = h, bitcode, 0

    def content_hash(self):
        return self.h

    def bitcode(self):
        self.bitcode_calls += 1
        return self.data

    def instruction_count(self):
        return 42

    def function_count(self):
        return 3


def test_capture_writes_bitcode_and_sidecar(tmp_path, monkeypatch):
    monkeypatch.setenv(policy.CAPTURE_PKG_VAR, "demo")
    out = tmp_path / "cap"
    m = FakeModule()
    assert policy.capture(m, str(out)) == m.h
    assert (out / f"{m.h}.bc").read_bytes() == m.data
    meta = json.loads((out / f"{m.h}.json").read_text())
    assert meta["source"] == "dir/f.c" and meta["package"] == "demo" and meta["cwd"] == os.getcwd()
    assert meta["argv"] and meta["ir_instructions"] == 42 and meta["functions"] == 3
    assert meta["bytes"] == len(m.data)
    assert sorted(p.name for p in out.iterdir()) == [f"{m.h}.bc", f"{m.h}.json"]  # no temporary files left
    policy.capture(m, str(out))
    assert m.bitcode_calls == 1  # already captured: not written again


def test_capture_failure_is_one_warning_and_the_decision_stands(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(policy.CAPTURE_VAR, str(blocker / "cap"))
    monkeypatch.setattr(policy, "_capture_warned", False)
    monkeypatch.setenv("CLANG_LLM_POLICY", "oz")
    decisions = [policy.plugin_entry(FakeModule(h=f"{i:016x}")) for i in range(3)]
    assert all(d.name == "oz" and d.fallback is None for d in decisions)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("clang-llm: warning: cannot capture") == 1


def test_capture_needs_an_absolute_directory(monkeypatch):
    with pytest.raises(ValueError, match="absolute"):
        policy.capture(FakeModule(), "relative/dir")


def test_no_preset_decision_while_capturing(monkeypatch, tmp_path):
    monkeypatch.setenv("CLANG_LLM_POLICY", "oz")
    assert policy.preset_decision() is not None  # module-independent: decided in the driver
    monkeypatch.setenv(policy.CAPTURE_VAR, str(tmp_path))
    assert policy.preset_decision() is None


def test_partial_corpus_keeps_its_statistics_beside_its_records(tmp_path, monkeypatch):
    """The committed corpus_stats.json describes the whole manifest: a corpus
    that lacks manifest packages must not overwrite it with a part."""
    entries = corpus.load_manifest(write_manifest(tmp_path, """
[packages.a]
system = "make"
[packages.b]
system = "make"
"""))
    committed = tmp_path / "committed_stats.json"
    monkeypatch.setattr(corpus, "STATS", committed)
    root = tmp_path / "corpus"
    write_record(root, "a", [("am0", "module")])
    assert corpus.stats_path(root, entries) == root / "corpus_stats.json"
    corpus.write_stats(root, manifest=entries)
    assert not committed.exists() and json.loads((root / "corpus_stats.json").read_text())["totals"]["not_built"] == ["b"]
    write_record(root, "b", [("bm0", "module")])
    assert corpus.stats_path(root, entries) == committed
    corpus.write_stats(root, manifest=entries)
    assert json.loads(committed.read_text())["totals"]["unique_modules"] == 2
