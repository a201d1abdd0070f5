"""The evaluation layer: result store, crash-isolated worker pool, Ray backend, CLI.

Runs on a tiny corpus compiled here from C (skipped without clang-22); every
number is checked against clang_llm._core measuring in this process.
"""

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from clang_llm.train import evaluate
from clang_llm.train.evaluate import Job, run
from clang_llm.train.store import Result, Store, StoreError, pipeline_key

SOURCES = {
    # Every unit has a loop: LICM only aborts on a function that has one.
    "sum.c": "int sum(const int *a, int n) { int s = 0; for (int i = 0; i < n; i++) s += a[i] * 3; return s; }\n",
    "table.c": """
static int tbl[64];
int fill(int x) { for (int i = 0; i < 64; i++) tbl[i] = i * x; int s = 0;
                  for (int i = 0; i < 64; i++) s ^= tbl[i] + x; return s; }
""",
    "strings.c": """
#include <string.h>
int count(const char *s, char c) { int n = 0; for (size_t i = 0; i < strlen(s); i++) n += s[i] == c; return n; }
void rev(char *s) { size_t n = strlen(s); for (size_t i = 0; i < n / 2; i++) { char t = s[i]; s[i] = s[n-1-i]; s[n-1-i] = t; } }
""",
    "switch.c": """
int classify(int x) { int r = 0; while (x) { switch (x & 7) { case 0: r += 1; break; case 1: r += 7; break;
  case 2: r ^= 3; break; case 5: r -= 2; break; default: r += x; } x >>= 3; } return r; }
int twice(int x) { return classify(x) + classify(x + 1); }
""",
}

LICM = "function(licm)"  # LICM without loop-mssa: "LLVM ERROR: LICM requires MemorySSA"
HANG = "function(sroa),function(instcombine)"


def _pipelines():
    from clang_llm import pipelines

    oz = pipelines.by_name("oz")
    sink = pipelines.with_sink_common_insts(oz.passes)
    return [(oz.passes, False), (sink, False), (oz.passes, True), ("function(instcombine,simplifycfg)", False)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """[(content hash, .bc path)] of the C units above, compiled like clang -Oz's front end."""
    clang = shutil.which("clang-22")
    if not clang:
        pytest.skip("clang-22 is not installed (run scripts/setup.sh)")
    from clang_llm import _core

    d = tmp_path_factory.mktemp("corpus")
    mods = []
    for name, text in SOURCES.items():
        src = d / name
        src.write_text(text)
        bc = d / (src.stem + ".bc")
        subprocess.run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-c", "-emit-llvm", "-o", bc, src],
                       check=True, capture_output=True)
        mods.append((_core.LoadedModule(bc.read_bytes(), str(bc)).content_hash(), bc))
    return mods


@pytest.fixture(scope="module")
def expected(corpus):
    """What _core measures in this process: the numbers the pool must reproduce."""
    from clang_llm import _core

    out = {}
    for h, bc in corpus:
        m = _core.LoadedModule(bc.read_bytes(), str(bc))
        for passes, mo in _pipelines():
            out[(h, pipeline_key(passes, mo))] = m.measure(passes, mo)
    return out


def jobs_for(corpus, pipes=None):
    return [Job(h, bc, p, mo) for h, bc in corpus for p, mo in (pipes or _pipelines())]


def assert_matches(results, expected):
    for ident, want in expected.items():
        got = results[ident]
        assert got.ok, (ident, got.error)
        assert (got.text, got.data, got.ir_instructions) == (want["text"], want["data"], want["ir_instructions"])


def sizes_only(rows):
    return [(r.module_hash, r.key, r.text, r.data, r.ir_instructions, r.error) for r in rows]


# --- store ------------------------------------------------------------------------

def test_pipeline_key_names_passes_and_outliner():
    k = pipeline_key("function(sroa)", False)
    assert len(k) == 16 and int(k, 16) >= 0
    assert k == pipeline_key("function(sroa)")
    assert k != pipeline_key("function(sroa)", True)
    assert k != pipeline_key("function(sroa),function(dce)")


def test_pipeline_keys_of_knob_bits_keep_the_outliner_keys():
    # Stores and label tables made before the other knobs hold keys of
    # (passes, False/True); bits 0/1 must name the same results.
    assert pipeline_key("function(sroa)", False) == pipeline_key("function(sroa)", 0)
    assert pipeline_key("function(sroa)", True) == pipeline_key("function(sroa)", 1)
    assert len({pipeline_key("function(sroa)", b) for b in range(16)}) == 16


def test_store_roundtrip_and_reopen(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        a = st.add_pipeline("function(sroa)")
        b = st.add_pipeline("function(sroa)", codegen=1)
        assert st.add_pipeline("function(sroa)") == a
        st.put("m1", a, Result(100, 8, 40, None, 0.25))
        st.put("m1", b, Result.failure("timeout after 1 s", 1.0))
        st.put("m2", a, Result(50, 0, 10, None, 0.5))
        with pytest.raises(StoreError, match="add_pipeline"):
            st.put("m1", "0123456789abcdef", Result(1, 1, 1, None, 0.0))
        with pytest.raises(ValueError, match="either sizes or an error"):
            st.put("m1", a, Result(None, None, None, None, 0.0))
    with Store(path) as st:
        assert len(st) == 3
        assert st.get("m1", a) == Result(100, 8, 40, None, 0.25) and st.get("m1", a).ok
        assert not st.get("m1", b).ok and st.get("m1", b).error == "timeout after 1 s"
        assert st.get("m3", a) is None
        assert set(st.get_many("m1")) == {a, b}
        assert st.passes_of(b) == ("function(sroa)", 1)
        assert st.pipelines()[a].codegen == 0
        with pytest.raises(KeyError):
            st.passes_of("ffffffffffffffff")
        assert [r.module_hash for r in st.table()] == ["m1", "m1", "m2"]
        assert [(r.module_hash, r.key) for r in st.table(module_hashes=["m2"])] == [("m2", a)]
        assert [r.module_hash for r in st.table(keys=[a])] == ["m1", "m2"]
        assert st.table(module_hashes=["m1"], keys=[b])[0].error == "timeout after 1 s"
        assert st.table(module_hashes=[]) == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The 5 KB pipeline texts are stored once, not per result.
    assert db.execute("SELECT count(*) FROM pipelines").fetchone()[0] == 2
    db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema 99"):
        Store(path)


# --- local pool -------------------------------------------------------------------

def test_results_equal_direct_measurement_and_resume(corpus, expected, tmp_path):
    jobs = jobs_for(corpus)
    with Store(tmp_path / "s.sqlite") as st:
        # A first, interrupted-like run over half the jobs, with duplicates.
        first = run(jobs[::2] + jobs[::2][:3], st, workers=2, progress=False)
        assert first.evaluated == len(jobs[::2]) and first.reused == 0 and first.failed == 0
        stamps = {(r.module_hash, r.key): st.created(r.module_hash, r.key) for r in st.table()}

        res = run(jobs, st, workers=2, progress=False)
        assert res.reused == len(jobs[::2]) and res.evaluated == len(jobs) - len(jobs[::2])
        assert len(res) == len(jobs) == len(st)
        assert_matches(res, expected)
        # What was stored before was not measured again.
        assert all(st.created(*ident) == t for ident, t in stamps.items())

        again = run(jobs, st, workers=2, progress=False)
        assert again.evaluated == 0 and again.reused == len(jobs)
        assert_matches(again, expected)
        assert sizes_only(st.table()) == sorted(
            (h, k, e["text"], e["data"], e["ir_instructions"], None) for (h, k), e in expected.items())


def test_llvm_abort_costs_one_result(corpus, expected, tmp_path):
    # The premise: this pipeline really takes the process down with it.
    h, bc = corpus[0]
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from clang_llm import _core; "
         "_core.LoadedModule(open(sys.argv[1], 'rb').read(), 'm').measure(sys.argv[2])", str(bc), LICM],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "LLVM ERROR" in probe.stderr, probe

    good = jobs_for(corpus)
    # One worker, crashes in the middle of each module's batch: the rest of the
    # batch must move to a fresh worker.
    jobs = []
    for h, bc in corpus:
        mine = [j for j in good if j.module_hash == h]
        jobs += mine[:2] + [Job(h, bc, LICM)] + mine[2:]
    with Store(tmp_path / "s.sqlite") as st:
        res = run(jobs, st, workers=1, progress=False)
        assert res.evaluated == len(jobs) and res.failed == len(corpus)
        for h, _ in corpus:
            bad = res[(h, pipeline_key(LICM))]
            assert not bad.ok and "worker exited with status 1" in bad.error
            assert "LLVM ERROR: LICM requires MemorySSA" in bad.error
            assert st.get(h, pipeline_key(LICM)) == bad  # failures are results too
        assert_matches(res, expected)
        assert run(jobs, st, workers=1, progress=False).evaluated == 0


def test_hang_times_out_and_the_rest_goes_on(corpus, expected, tmp_path, monkeypatch):
    monkeypatch.setenv(evaluate.HANG_ENV, HANG)
    h, bc = corpus[1]
    mine = [j for j in jobs_for(corpus) if j.module_hash == h]
    jobs = mine[:1] + [Job(h, bc, HANG)] + mine[1:]
    with Store(tmp_path / "s.sqlite") as st:
        t0 = time.monotonic()
        res = run(jobs, st, workers=1, timeout=1.5, progress=False)
        assert time.monotonic() - t0 < 30
        hung = res[(h, pipeline_key(HANG))]
        assert hung.error == "timeout after 1.5 s" and hung.seconds >= 1.5
        assert res.failed == 1 and sum(r.ok for r in res.values()) == len(mine)
        assert_matches(res, {k: v for k, v in expected.items() if k[0] == h})
        assert st.get(h, pipeline_key(HANG)) == hung
        # Stored failures are kept, unless asked to try again (here it hangs again).
        assert run(jobs, st, workers=1, timeout=1.5, progress=False).evaluated == 0
        assert run(jobs, st, workers=1, timeout=1.5, progress=False, retry_failed=True).evaluated == 1


def test_interrupted_run_keeps_what_arrived(corpus, expected, tmp_path, monkeypatch):
    monkeypatch.setenv(evaluate.HANG_ENV, HANG)
    h, bc = corpus[2]
    mine = [j for j in jobs_for(corpus) if j.module_hash == h]
    jobs = mine[:2] + [Job(h, bc, HANG)] + mine[2:]
    path = tmp_path / "s.sqlite"

    interrupted = threading.Event()

    def ctrl_c_once_two_are_stored():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(path) as db:
                    if db.execute("SELECT count(*) FROM results").fetchone()[0] >= 2:
                        break
            except sqlite3.OperationalError:  # not created yet
                pass
            time.sleep(0.05)
        # Again if the first one was lost (the run hangs for 60 s on the third job).
        while not interrupted.is_set():
            os.kill(os.getpid(), signal.SIGINT)
            interrupted.wait(5.0)

    # Ctrl-C as Python handles it by default, whatever an earlier test installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Store(path) as st:
            threading.Thread(target=ctrl_c_once_two_are_stored, daemon=True).start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    run(jobs, st, workers=1, timeout=60, progress=False)
            finally:
                interrupted.set()
            assert len(st) == 2
            monkeypatch.delenv(evaluate.HANG_ENV)
            res = run(jobs, st, workers=1, progress=False)
            assert res.reused == 2 and res.evaluated == len(jobs) - 2 and res.failed == 0
            assert_matches(res, {k: v for k, v in expected.items() if k[0] == h})
    finally:
        signal.signal(signal.SIGINT, previous)


def test_unreadable_module_is_reported_not_stored(corpus, tmp_path):
    junk = tmp_path / "junk.bc"
    junk.write_bytes(b"BC\xc0\xde not really bitcode")
    h, bc = corpus[0]
    jobs = [Job("00000000deadbeef", junk, "function(sroa)"), Job(h, bc, "function(sroa)")]
    with Store(tmp_path / "s.sqlite") as st:
        res = run(jobs, st, workers=2, progress=False)
        bad = res[("00000000deadbeef", pipeline_key("function(sroa)"))]
        assert not bad.ok and "cannot load module" in bad.error
        assert res.not_stored == 1 and len(st) == 1 and res[(h, pipeline_key("function(sroa)"))].ok
        with pytest.raises(FileNotFoundError, match="nowhere.bc"):
            run([Job("1111111111111111", tmp_path / "nowhere.bc", "function(sroa)")], st, progress=False)


def test_store_of_another_llvm_is_refused(corpus, tmp_path):
    with Store(tmp_path / "s.sqlite") as st:
        st.set_meta("llvm", "17.0.6")
        with pytest.raises(StoreError, match="LLVM 17.0.6"):
            run(jobs_for(corpus[:1]), st, progress=False)


def test_batches_split_few_modules_and_keep_many_whole():
    items = [(f"k{i}", "p", False) for i in range(12)]
    few = evaluate._batches({"m": ("m.bc", items)}, parallel=4, max_size=64)
    assert len(few) >= 4 and [it for b in few for it in b.items] == items
    many = {f"m{i}": (f"m{i}.bc", items) for i in range(40)}
    whole = evaluate._batches(many, parallel=4, max_size=64)
    assert len(whole) == 40 and all(len(b.items) == 12 for b in whole)
    capped = evaluate._batches(many, parallel=1, max_size=5)
    assert all(len(b.items) <= 5 for b in capped) and sum(len(b.items) for b in capped) == 480


# --- Ray ----------------------------------------------------------------------------

def test_ray_backend_gives_the_local_table(corpus, tmp_path):
    ray = pytest.importorskip("ray")
    jobs = jobs_for(corpus) + [Job(h, bc, LICM) for h, bc in corpus]
    with Store(tmp_path / "local.sqlite") as st:
        run(jobs, st, workers=2, progress=False)
        local = sizes_only(st.table())
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        with Store(tmp_path / "ray.sqlite") as st:
            res = run(jobs, st, backend="ray", progress=False)
            assert res.evaluated == len(jobs) and res.failed == len(corpus) and res.not_stored == 0
            assert sizes_only(st.table()) == local
            assert "LLVM ERROR" in res[(corpus[0][0], pipeline_key(LICM))].error
            assert run(jobs, st, backend="ray", progress=False).evaluated == 0
    finally:
        ray.shutdown()


# --- command line -------------------------------------------------------------------

def test_cli_evaluates_candidates_and_pipeline_files(corpus, tmp_path, capsys):
    from clang_llm import _core, pipelines

    ap = argparse.ArgumentParser()
    evaluate.register(ap.add_subparsers(dest="command", required=True))
    named = tmp_path / "named.pipeline"
    mo = next(c for c in pipelines.candidates() if c.machine_outliner)
    named.write_text(f"{mo.name}\n")
    custom = tmp_path / "custom.pipeline"
    custom.write_text("function(sroa,instcombine)\n")
    store = tmp_path / "s.sqlite"
    folder = corpus[0][1].parent
    args = ap.parse_args(["evaluate", "--modules", str(folder), "--candidates", "--pipeline-file",
                          str(named), str(custom), "--store", str(store), "--workers", "2", "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    n_cands = len(pipelines.candidates())
    # The named file holds a candidate already: evaluated (and listed) once.
    assert f"{len(corpus)} modules x {n_cands + 1} pipelines" in out and pipelines.candidates()[1].name in out
    with Store(store) as st:
        # The files are not named by hash: their content hashes were computed.
        assert set(st.module_hashes()) == {h for h, _ in corpus}
        assert st.passes_of(pipeline_key(mo.passes, True)) == (mo.passes, True)
        keys = {pipeline_key(c.passes, c.codegen) for c in pipelines.candidates()}
        keys.add(pipeline_key("function(sroa,instcombine)"))
        assert {r.key for r in st.table()} == keys
        h, bc = corpus[2]
        want = _core.LoadedModule(bc.read_bytes(), "m").measure("function(sroa,instcombine)")
        assert st.get(h, pipeline_key("function(sroa,instcombine)")).text == want["text"]
    # Rerun: nothing left to do.
    assert args.func(args) == 0
    assert f"0 evaluated (0 failed), {len(corpus) * (n_cands + 1)} already in" in capsys.readouterr().out


def test_labels_extend_measures_only_the_missing_pairs(corpus, expected, tmp_path, monkeypatch):
    """A label table made for the first two candidates, extended after two more
    were appended: the new pairs are what _core measures, the module without
    bitcode keeps none, and the store was asked for nothing twice."""
    from clang_llm import pipelines
    from clang_llm.train import labels

    cands = tuple(pipelines.Candidate(n, p, mo) for n, (p, mo) in zip(("oz", "sink", "oz+mo", "ic"), _pipelines()))
    args = argparse.Namespace(backend="local", workers=1, timeout=60.0, address=None, quiet=True)
    mods = [{"hash": h, "path": str(bc), "package": "tiny", "split": "train"} for h, bc in corpus]
    monkeypatch.setattr(pipelines, "candidates", lambda: cands[:2])
    with Store(tmp_path / "s.sqlite") as store:
        old = labels.build(mods, store, args)
    monkeypatch.setattr(pipelines, "candidates", lambda: cands)
    with Store(tmp_path / "s.sqlite") as store:
        before = len(store.table())
        table, measured, absent = labels.extend(old, store, args, {h: str(bc) for h, bc in corpus[1:]})
        assert len(store.table()) == before + measured
    # Both flag sets (with and without unwind tables) of every module.
    assert (measured, absent) == (2 * 2 * (len(corpus) - 1), 2 * 2)
    got = {(r["module"], r["flags"], r["candidate"]): r for r in table.to_pylist()}
    assert len(got) == table.num_rows == 2 * 2 * len(corpus) + measured
    for h, _ in corpus[1:]:
        for c in cands[2:]:
            want = expected[(h, pipeline_key(c.passes, c.codegen))]
            assert got[(h, "default", c.name)]["text"] == want["text"]
            assert got[(h, "default", c.name)]["image"] == want["image"]
            # Without unwind tables: the same code, no FDEs.
            assert got[(h, "no-unwind", c.name)]["unwind"] == 0
            assert got[(h, "no-unwind", c.name)]["image"] == want["image"] - want["unwind"]
    assert not any((corpus[0][0], c.name) in got for c in cands[2:])
