"""Pipeline grammar, search and candidate selection, with evaluations faked where
LLVM is not the point (the grammar tests do ask the real PassBuilder)."""

from __future__ import annotations

import argparse
import math
import random
import shutil
import subprocess

import pytest

from clang_llm import pipelines
from clang_llm.train import passes as P
from clang_llm.train import search, select
from clang_llm.train.store import Result, pipeline_key


def test_oz_pipeline_round_trips():
    oz = pipelines.oz_pipeline()
    assert P.unparse(P.parse(oz)) == oz


@pytest.mark.parametrize("bad", ["function(sroa", "a<b", "function(x))", ",x"])
def test_unbalanced_pipelines_are_rejected(bad):
    with pytest.raises(ValueError):
        P.parse(bad)


def test_vocabulary_keeps_levels_apart():
    voc = P.vocabulary()
    names = {lvl: {n.name for n in nodes} for lvl, nodes in voc.by_level.items()}
    assert "licm" in names[P.LOOP_MSSA] and "licm" not in names[P.FUNCTION]
    # licm aborts LLVM outside loop-mssa; indvars aborts it inside.
    assert "licm" not in names[P.LOOP] and "indvars" not in names[P.LOOP_MSSA]
    assert "instcombine" in names[P.FUNCTION] and "instcombine" not in names[P.MODULE]
    assert "globaldce" in names[P.MODULE]
    assert not any(n in P.INERT for lvl in names.values() for n in lvl)
    assert not any(n in P.NOT_INSERTED for lvl in names.values() for n in lvl)
    assert "lower-constant-intrinsics" in pipelines.oz_pipeline()


def test_edits_apply_where_they_say():
    ind = P.Individual("oz", (("append", "mergefunc"),))
    assert ind.passes() == pipelines.oz_pipeline() + ",mergefunc"
    nodes = P.base_nodes("oz")
    first = nodes[0]
    dropped = P.apply_edit(nodes, ("del", (), 0))
    assert dropped[0] != first and len(dropped) == len(nodes) - 1
    swapped = P.apply_edit(nodes, ("swap", (), 0))
    assert swapped[0] == nodes[1] and swapped[1] == nodes[0]
    # An edit that no longer fits is skipped, not an error.
    assert P.apply_edit(nodes, ("del", (0, 5, 9), 3)) is None


def _names(text: str) -> list[str]:
    return [n.name for _, _, lst in P.lists(P.parse(text)) for n in lst]


def test_required_passes_survive_every_edit():
    """ee-instrument and always-inline carry C semantics (-finstrument-functions,
    always_inline extern inline): no edit removes or moves them, and mutants
    and random pipelines always have them."""
    nodes = P.base_nodes("oz")
    ai = next(i for i, n in enumerate(nodes) if n.name == "always-inline")
    for edit in (("del", (), ai), ("swap", (), ai), ("swap", (), ai - 1), ("dup", (), ai),
                 ("param", (), ai, "x")):
        assert P.apply_edit(nodes, edit) is None, edit
    rng = random.Random(3)
    ind = P.Individual("oz")
    for _ in range(300):
        ind = P.mutate(ind, rng, max_edits=5)
        assert P.REQUIRED <= set(_names(ind.passes())), ind.edits
    for _ in range(50):
        text = P.random_pipeline(rng)
        assert P.REQUIRED <= set(_names(text))
        assert P.with_required(text) == text


def test_loop_mssa_lists_hold_only_passes_that_preserve_memoryssa():
    """LLVM aborts a pipeline with a loop-mssa list holding e.g. indvars; the
    gate used to exclude such random pipelines one by one."""
    mssa = {n.text() for n in P.vocabulary().by_level[P.LOOP_MSSA]}
    rng = random.Random(11)

    def check(text):
        for _, level, lst in P.lists(P.parse(text)):
            if level == P.LOOP_MSSA:
                assert {n.text() for n in lst} <= mssa, text

    ind = P.Individual("oz")
    for _ in range(400):
        ind = P.mutate(ind, rng, max_edits=5)
        check(ind.passes())
    for _ in range(200):
        check(P.random_pipeline(rng))


def test_random_pipelines_inline_and_fold():
    """C test suites count on inlining and a final instcombine/simplifycfg
    (link_failure folds, __builtin_constant_p after inlining)."""
    rng = random.Random(5)
    for _ in range(100):
        nodes = P.parse(P.random_pipeline(rng))
        assert any(n.name == "cgscc" for n in nodes)
        assert "inline" in _names(P.unparse(nodes))
        tail = nodes[-1]
        assert tail.name == "function" and [c.name for c in tail.children] == ["instcombine", "simplifycfg"]
        assert tail.children[0].text() == P.oz_pass("instcombine")


def test_old_random_bases_come_back_repaired():
    old = "function(sroa<modify-cfg>,early-cse<>,mem2reg),globaldce,function(instsimplify)"
    fixed = P.Individual(old).passes()
    assert fixed == "function(ee-instrument<>),function(sroa<modify-cfg>,early-cse<>,mem2reg),always-inline," \
                    "globaldce,function(instsimplify)"


def test_sink_seed_matches_the_shipped_candidate():
    sink = next(s for s in search.seeds() if len(s.edits) == 1 and s.edits[0][0] == "param"
                and not s.machine_outliner)
    assert sink.passes() == pipelines.with_sink_common_insts(pipelines.oz_pipeline())


@pytest.fixture(scope="module")
def small_module(tmp_path_factory):
    clang = shutil.which("clang-22")
    if not clang:
        pytest.skip("clang-22 is not installed")
    d = tmp_path_factory.mktemp("mod")
    (d / "m.c").write_text("""
        int tab[64];
        static int sq(int x) { return x * x; }
        int f(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(tab[i & 63]); return s; }
        int g(int n) { switch (n) { case 1: return 4; case 2: return 9; case 3: return 1; default: return n; } }
    """)
    subprocess.run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", str(d / "m.c"),
                    "-o", str(d / "m.bc")], check=True)
    from clang_llm import _core

    return _core.LoadedModule((d / "m.bc").read_bytes(), "m.bc")


def test_generated_pipelines_parse(small_module):
    """Mutations of -Oz and random pipelines keep to the grammar the PassBuilder accepts."""
    rng = random.Random(7)
    ind = P.Individual("oz")
    for _ in range(150):
        ind2 = P.mutate(ind, rng)
        assert small_module.check(ind2.passes()) is None, ind2.edits
        if rng.random() < 0.3:
            ind = ind2  # also mutate mutants
    for _ in range(40):
        text = P.random_pipeline(rng)
        assert small_module.check(text) is None, text
    assert small_module.check(P.with_required("function(instsimplify)")) is None


# --- search and selection with a fake evaluator -------------------------------------

def _fake_size(passes: str, codegen: int) -> int:
    """A deterministic stand-in for .text: -Oz is 1000; mergefunc saves 30,
    the outliner 10, split-for-size 3, size layout 2, each extra pass costs 1; "dup" of licm breaks the build."""
    if passes.count("licm") > pipelines.oz_pipeline().count("licm") + 1:
        return -1
    extra = len(P.parse(passes)) - len(P.base_nodes("oz"))
    cg = int(codegen)
    return 1000 - 30 * min(passes.count("mergefunc"), 1) - (10 if cg & 1 else 0) - (3 if cg & 2 else 0) - (2 if cg & 8 else 0) + abs(extra)


@pytest.fixture
def fake_evaluate(monkeypatch):
    from clang_llm.train import evaluate

    calls = []

    def run(jobs, store, **kw):
        out = {}
        for j in jobs:
            calls.append(j)
            size = _fake_size(j.passes, j.codegen)
            res = Result(None, None, None, "LLVM ERROR: fake", 0.0) if size < 0 else Result(size, 0, 0, None, 0.0,
                                                                                          image=size, ram=0)
            out[(j.module_hash, pipeline_key(j.passes, j.codegen))] = res
        return out

    monkeypatch.setattr(evaluate, "run", run)
    return calls


def _args():
    return argparse.Namespace(backend="local", workers=1, timeout=10, address=None, quiet=True)


def test_search_finds_and_minimises(fake_evaluate):
    mods = [{"hash": f"{i:016x}", "path": f"/nonexistent/{i}.bc"} for i in range(3)]
    states = search.search(mods, None, budget=60, round_size=12, seed=1, args=_args())
    assert all(st.evaluations == 60 for st in states)
    winners = search.minimise(states, None, _args())
    for st in states:
        ind, text = winners[st.hash]
        assert text <= 960  # mergefunc and the outliner found
        assert text <= st.ranked()[0][1]
        # Minimal: dropping any remaining edit makes it larger under the fake model.
        for j in range(len(ind.edits)):
            smaller = P.Individual(ind.base, ind.edits[:j] + ind.edits[j + 1:], ind.machine_outliner)
            assert _fake_size(smaller.passes(), smaller.machine_outliner) > text
    summary = search.summarise(states, winners)
    assert summary["geomean_best_vs_oz"] == pytest.approx(0.96)
    # The budget curve: seeds only, then the full budget (which ends with the minimised winners).
    curve = summary["geomean_best_by_budget"]
    assert set(curve) == {"12", "60"}
    assert curve["12"]["geomean"] == pytest.approx(summary["geomean_seed_oracle_vs_oz"])
    assert curve["60"]["geomean"] == pytest.approx(summary["geomean_best_vs_oz"])
    assert curve["60"]["geomean"] <= curve["12"]["geomean"]


def test_best_within_budget():
    history = [(12, 1000.0), (36, 990.0), (60, 950.0)]
    assert search.best_within(history, 12) == 1000.0
    assert search.best_within(history, 50) == 990.0
    assert search.best_within(history, 600) == 950.0
    assert search.best_within(history, 5) == search.FAILED


def test_search_is_deterministic(fake_evaluate):
    mods = [{"hash": "00000000000000aa", "path": "/x.bc"}]
    a = search.search(mods, None, budget=40, round_size=10, seed=3, args=_args())
    b = search.search(mods, None, budget=40, round_size=10, seed=3, args=_args())
    assert list(a[0].seen) == list(b[0].seen)


def test_greedy_selection_and_oracle():
    inf = math.inf
    rows = [[1.0, 0.9, 1.0, 1.1],
            [1.0, 1.0, 0.8, 1.1],
            [1.0, 1.05, 1.0, inf]]
    order = select.greedy(rows, 3)
    assert order[0] == 0 and set(order[1:]) == {1, 2}
    assert order[1] == 2  # 0.8 saves more than 0.9
    o = select.oracle(rows, order)
    assert o["geomean"] == pytest.approx((0.9 * 0.8 * 1.0) ** (1 / 3))
    assert o["regressed"] == 0 and o["improved"] == pytest.approx(2 / 3)
    assert select.oracle(rows, [3])["regressed"] == pytest.approx(1.0)


def test_greedy_picks_around_an_exclusion():
    """When the gate bans a pick, the next one is the best addition to what is
    kept, not the next entry of a list chosen with the banned one in it."""
    rows = [[1.0, 0.90, 0.91, 1.0],
            [1.0, 0.90, 0.91, 1.0],
            [1.0, 1.00, 1.00, 0.95]]
    assert select.greedy(rows, 3) == [0, 1, 3]
    assert select.best_addition(rows, [0], banned={1}) == 2
    assert select.best_addition(rows, [0, 2], banned={1}) == 3
    assert select.best_addition(rows, [0, 2, 3], banned={1}) is None


def test_member_names_keep_shipped_names_and_never_reuse_one():
    shipped = pipelines.candidates()
    oz = P.Individual("oz")
    again = [P.Individual(c.passes, machine_outliner=c.machine_outliner) for c in shipped[1:3]]
    fresh = [P.Individual("oz", edits=(), machine_outliner=True),  # oz+mo: not shipped
             P.Individual(P.unparse(P.parse("function(instcombine<no-verify-fixpoint>),globaldce")))]
    assert all(pipelines.find(i.passes(), i.machine_outliner) is None for i in fresh)
    names = select.member_names([oz, fresh[0], *again, fresh[1]])
    assert names[0] == "oz" and names[2:4] == [c.name for c in shipped[1:3]]
    assert len(set(names)) == len(names)
    assert not {names[1], names[4]} & {c.name for c in shipped}
    numbers = {n.removesuffix("+mo") for n in [*names[1:2], *names[4:]]}
    assert not numbers & {c.name.removesuffix("+mo") for c in shipped}   # no s07 beside an s07+mo
    assert names[1].endswith("+mo") and not names[4].endswith("+mo")
    assert not numbers & pipelines.retired_names()   # nor a number an earlier set used


def test_retire_records_numbers_a_new_set_drops():
    old = [pipelines.Candidate("oz", "p"), pipelines.Candidate("s01+mo", "a", True),
           pipelines.Candidate("s02", "b"), pipelines.Candidate("oz+sink+mo", "c", True)]
    retired = select.retire(old, ["oz", "s01+mo", "s40"], {"s08"})
    assert retired == {"s02", "s08"}   # derivation names describe themselves: not recorded
    assert "s08" in pipelines.retired_names()  # the shipped file carries the 16-set's retired numbers
    text = pipelines.write(old, "oz", {}, retired)
    meta, cands = pipelines.parse(text)
    assert meta["retired"] == "s02 s08" and cands == tuple(old)


def test_runs_add_up_without_searching_a_module_twice(fake_evaluate, monkeypatch, tmp_path):
    """--exclude-runs samples only modules earlier runs did not search."""
    import json

    from clang_llm.train import corpus

    monkeypatch.setenv("CLANG_LLM_DATA", str(tmp_path))
    mods = [{"hash": f"{i:016x}", "path": f"/nonexistent/{i}.bc", "ir_instructions": 10} for i in range(8)]
    monkeypatch.setattr(corpus, "modules", lambda split=None: list(mods))
    parser = argparse.ArgumentParser()
    search.register(parser.add_subparsers())

    def run(*argv):
        args = parser.parse_args(["search", "--budget", "14", "--round-size", "6", "--quiet", *argv])
        assert args.func(args) == 0
        rows = json.loads((tmp_path / "search" / args.name / "summary.json").read_text())["rows"]
        return {r["module"] for r in rows}

    def args_for(*argv):
        args = parser.parse_args(["search", *argv])
        return args.func(args)

    first = run("--name", "a", "--sample", "5")
    second = run("--name", "b", "--sample", "5", "--exclude-runs", "a")
    assert len(first) == 5 and second == {m["hash"] for m in mods} - first
    # A kept summary is what selection reads once the run folder is gone.
    monkeypatch.setattr(search, "committed_dir", lambda: tmp_path / "committed")
    assert args_for("--name", "a", "--keep") == 0
    kept = search.load_summary("a")
    (tmp_path / "search" / "a" / "summary.json").unlink()
    assert search.load_summary("a") == kept and {r["module"] for r in kept["rows"]} == first
    assert args_for("--name", "never-ran", "--keep") == 2
    # Every round leaves a snapshot, so a run stopped for time still has its budget curve.
    progress = json.loads((tmp_path / "search" / "a" / "progress.json").read_text())
    assert progress["round"] >= 1 and progress["modules"] == 5 and "geomean_best_by_budget" in progress


def _search_and_select_cli(monkeypatch, tmp_path, n_modules: int) -> argparse.ArgumentParser:
    """`search` and `select` over a fake corpus of n modules per split, data under tmp_path."""
    from clang_llm.train import corpus

    monkeypatch.setenv("CLANG_LLM_DATA", str(tmp_path))
    mods = {split: [{"hash": f"{i:015x}{n}", "path": f"/nonexistent/{split}{i}.bc", "ir_instructions": 10}
                    for i in range(n_modules)] for n, split in enumerate(("train", "validation"))}
    monkeypatch.setattr(corpus, "modules", lambda split=None: list(mods[split]))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    search.register(sub)
    select.register(sub)
    return parser


def test_select_reports_the_shipped_set_on_the_same_validation_modules(fake_evaluate, monkeypatch, tmp_path):
    import json

    parser = _search_and_select_cli(monkeypatch, tmp_path, 6)
    args = parser.parse_args(["search", "--name", "a", "--budget", "30", "--round-size", "6", "--quiet"])
    assert args.func(args) == 0
    out = tmp_path / "selection.json"
    args = parser.parse_args(["select", "--runs", "a", "--k", "4", "--max-pool", "8", "--train-sample", "4",
                              "--val-sample", "3", "--report", str(out), "--quiet"])
    assert args.func(args) == 0
    report = json.loads(out.read_text())
    shipped = report["shipped_set_validation"]
    assert shipped["candidates"] == len(pipelines.candidates())
    assert shipped["oracle_of_k"]["1"]["geomean"] == pytest.approx(1.0)  # -Oz alone
    k = max(map(int, shipped["oracle_of_k"]))
    best = min(_fake_size(c.passes, c.codegen) for c in pipelines.candidates()[:k]) / 1000
    assert best < 1.0 and shipped["oracle_of_k"][str(k)]["geomean"] == pytest.approx(best)
    assert report["validation_modules"] == 3


def test_from_set_seeds_start_at_the_sets_oracle(fake_evaluate):
    """search --from-set seeds each module with the shipped validated pipelines,
    so its seed oracle is the set's oracle and a winner is what the set misses."""
    mods = [{"hash": "00000000000000bb", "path": "/x.bc"}]
    args = _args()
    args.from_set = True
    states = search.search(mods, None, budget=80, round_size=10, seed=2, args=args)
    shipped = [c for c in pipelines.candidates() if c.validated]
    seen = {j.passes for j in fake_evaluate}
    assert all(c.passes in seen for c in shipped)
    summary = search.summarise(states, search.minimise(states, None, args), from_set=True)
    seed_best = min(_fake_size(i.passes(), i.machine_outliner) for i in search.seed_list(True))
    assert summary["rows"][0]["seed_best_text"] == seed_best
    assert summary["rows"][0]["winner_text"] <= seed_best
    # A shipped base reads as its candidate, not as a random pipeline.
    c = next(c for c in shipped if c.name != "oz")
    assert P.Individual(c.passes, (), c.machine_outliner).describe().startswith(c.name.removesuffix("+mo"))


def test_without_drops_a_pass_everywhere_and_keeps_the_rest():
    text = "function(instcombine<no-verify-fixpoint>,loop(loop-deletion)),iroutliner,globaldce,iroutliner"
    assert P.unparse(P.without(P.parse(text), {"iroutliner"})) == \
        "function(instcombine<no-verify-fixpoint>,loop(loop-deletion)),globaldce"
    assert P.unparse(P.without(P.parse(text), {"loop-deletion"})) == \
        "function(instcombine<no-verify-fixpoint>,loop()),iroutliner,globaldce,iroutliner"


def test_safe_pool_strips_unsafe_passes_and_what_is_shipped():
    shipped_c = [c for c in pipelines.candidates() if c.validated]
    shipped = [P.Individual(c.passes, (), c.machine_outliner) for c in shipped_c]
    c = shipped_c[1]
    with_iro = P.Individual(c.passes, (("append", "iroutliner"),), c.machine_outliner)
    new = P.Individual("oz", (("append", "mergefunc"), ("append", "iroutliner")), True)
    pool = select.safe_pool([with_iro, new, shipped[2]], shipped)
    assert len(pool) == 1   # with_iro stripped is shipped; shipped[2] is shipped
    assert "iroutliner" not in pool[0].passes() and pool[0].passes().endswith(",mergefunc")
    assert pool[0].machine_outliner


def test_grow_picks_what_the_set_misses_and_writes_a_candidates_file(fake_evaluate, monkeypatch, tmp_path):
    import json

    parser = _search_and_select_cli(monkeypatch, tmp_path, 5)
    args = parser.parse_args(["search", "--name", "g", "--budget", "60", "--round-size", "8", "--from-set",
                              "--quiet"])
    assert args.func(args) == 0
    out, report_path = tmp_path / "grow.tsv", tmp_path / "grow.json"
    args = parser.parse_args(["select", "--runs", "g", "--grow", str(out), "--k", "2", "--train-sample", "4",
                              "--val-sample", "3", "--report", str(report_path), "--quiet"])
    assert args.func(args) == 0
    report = json.loads(report_path.read_text())
    meta, rows = pipelines.parse(out.read_text())
    assert 1 <= len(rows) <= 2 and not any(r.validated for r in rows)
    shipped = pipelines.candidates()
    taken = {c.name.removesuffix("+mo") for c in shipped} | pipelines.retired_names()
    assert not {r.name.removesuffix("+mo") for r in rows} & taken
    assert all(pipelines.find(r.passes, r.codegen) is None for r in rows)
    assert all(not pipelines.unsafe_passes(r.passes) for r in rows)
    assert json.loads(meta["provenance"])["grows"] == pipelines.set_hash()
    # Under the fake sizes the set's best is the same on every module, so the
    # first pick lowers the oracle exactly when it is smaller than that best.
    set_best = min(_fake_size(c.passes, c.codegen) for c in shipped if c.validated) / 1000
    first = _fake_size(rows[0].passes, rows[0].codegen) / 1000
    assert report["shipped_oracle"]["validation"]["geomean"] == pytest.approx(set_best)
    assert report["grown_oracle"]["1"]["validation"]["geomean"] == pytest.approx(min(set_best, first))


def test_knob_pool_offers_shipped_pipelines_with_more_knobs():
    shipped = [c for c in pipelines.candidates() if c.validated]
    pool = select.knob_pool(shipped)
    have = {(c.passes, c.codegen) for c in shipped}
    assert pool and not {(c.passes, c.codegen) for c in pool} & have
    for c in pool:
        # Named after a shipped candidate with the same passes and fewer knobs.
        assert any(b.passes == c.passes and c.codegen & b.codegen == b.codegen != c.codegen
                   and c.name == b.name.removesuffix(pipelines.knob_suffix(b.codegen)) + pipelines.knob_suffix(c.codegen)
                   for b in shipped), c.name
    assert len({c.name for c in pool}) == len(pool)


def test_grow_with_knobs_picks_knob_variants(fake_evaluate, monkeypatch, tmp_path):
    import json

    parser = _search_and_select_cli(monkeypatch, tmp_path, 5)
    # The shipped set without its knob variants: once it ships a variant with
    # every knob the fake sizes reward, no knob variant can beat it.
    plain = tuple(c for c in pipelines.candidates() if c.codegen in (0, 1))
    monkeypatch.setattr(pipelines, "candidates", lambda: plain)
    monkeypatch.setattr(pipelines, "best_fixed", lambda: plain[0])
    out, report_path = tmp_path / "knobs.tsv", tmp_path / "knobs.json"
    args = parser.parse_args(["select", "--grow", str(out), "--knobs", "--k", "1", "--train-sample", "4",
                              "--val-sample", "3", "--report", str(report_path), "--quiet"])
    assert args.func(args) == 0
    _, rows = pipelines.parse(out.read_text())
    assert len(rows) == 1 and not rows[0].validated
    shipped = [c for c in pipelines.candidates() if c.validated]
    # The pick is a shipped pipeline with a knob its shipped twins lack.
    twins = [c for c in shipped if c.passes == rows[0].passes]
    assert twins and all(rows[0].codegen & ~c.codegen for c in twins)
    report = json.loads(report_path.read_text())
    # Under the fake sizes every module has the same best, so one pick reaches
    # the best knob variant, and the shipped set's oracle counts its own knobs.
    set_best = min(_fake_size(c.passes, c.codegen) for c in shipped) / 1000
    pool_best = min(_fake_size(c.passes, c.codegen) for c in select.knob_pool(shipped)) / 1000
    assert pool_best < set_best
    assert _fake_size(rows[0].passes, rows[0].codegen) / 1000 == pytest.approx(pool_best)
    assert report["shipped_oracle"]["validation"]["geomean"] == pytest.approx(set_best)
    assert report["grown_oracle"]["1"]["validation"]["geomean"] == pytest.approx(pool_best)
    args = parser.parse_args(["select", "--knobs", "--quiet"])
    assert args.func(args) == 2


def test_verify_pool_offers_mergefunc_and_branch_knobs_once():
    members = pipelines.verify_order()[:6]
    taken = select._taken_numbers()
    pool = select.verify_pool(members, set(taken))
    shipped = {(c.passes, c.codegen) for c in pipelines.candidates()}
    names = {c.name for c in pipelines.candidates()}
    assert pool and len({(c.passes, c.codegen) for c in pool}) == len(pool)
    assert not shipped & {(c.passes, c.codegen) for c in pool}
    assert not names & {c.name for c in pool}
    for m in members:
        mine = [c for c in pool if c.note.startswith(m.name + " with")]
        merged = [c for c in mine if c.passes != m.passes]
        assert all(c.passes == pipelines.appended(m.passes, "mergefunc") for c in merged)
        # One fresh number per member's mergefunc pipeline, never a shipped one.
        assert len({c.name.split("+")[0] for c in merged}) <= 1
        assert all(c.name.split("+")[0] not in taken for c in merged)
        assert all(c.codegen & m.codegen == m.codegen for c in mine)
        if "mergefunc" in m.passes:
            assert not merged


def test_cover_starts_from_oz_and_takes_complements():
    inf = math.inf
    # Columns: -Oz, a (good on module 0), b (good on module 1), c (a little on both), d (fails on 0).
    rows = [[1.0, 0.80, 1.10, 0.95, inf],
            [1.0, 1.20, 0.85, 0.95, 0.70]]
    assert select.cover(rows, 2, 0, [1, 2, 3]) == [1, 2]
    assert select.cover(rows, 1, 0, [3]) == [3]
    # A failure counts as -Oz (measured beside it), not as a loss: d comes first.
    assert select.cover(rows, 2, 0, [1, 2, 3, 4]) == [4, 1]


def test_grow_verify_keeps_the_variants_the_cover_takes(fake_evaluate, monkeypatch, tmp_path):
    import json

    parser = _search_and_select_cli(monkeypatch, tmp_path, 5)
    # Members without mergefunc, so that a variant can beat them under the fake sizes.
    members = [c for c in pipelines.verify_order() if "mergefunc" not in c.passes][:4]
    monkeypatch.setattr(pipelines, "verify_order", lambda: members)
    out, report_path = tmp_path / "verify.tsv", tmp_path / "verify.json"
    args = parser.parse_args(["select", "--grow", str(out), "--verify", "2", "--verify-from", "4",
                              "--train-sample", "4", "--val-sample", "3", "--report", str(report_path), "--quiet"])
    assert args.func(args) == 0
    _, rows = pipelines.parse(out.read_text())
    report = json.loads(report_path.read_text())
    assert report["members"] == [c.name for c in members]
    assert [r.name for r in rows] == [c["name"] for c in report["chosen"]]
    assert rows and not any(r.validated for r in rows)
    # Every fake module is alike, so the cover's first pick is the smallest pipeline
    # of members and variants: a variant, since mergefunc saves 30 bytes there.
    best = min(_fake_size(c.passes, c.codegen) for c in members + list(rows))
    assert report["grown_cover"]["order"][0] == rows[0].name
    assert _fake_size(rows[0].passes, rows[0].codegen) == best
    assert best < min(_fake_size(c.passes, c.codegen) for c in members)
    grown, shipped = report["grown_cover"]["validation"]["2"], report["shipped_cover"]["validation"]["2"]
    assert grown["geomean"] == pytest.approx(best / 1000) and grown["geomean"] < shipped["geomean"]
    args = parser.parse_args(["select", "--verify", "2", "--quiet"])
    assert args.func(args) == 2


# --- population climb ---------------------------------------------------------------

def _leaves(passes: str) -> int:
    return sum(1 for _, _, lst in P.lists(P.parse(passes)) for n in lst if not n.is_adaptor)


@pytest.fixture
def fake_climb_evaluate(monkeypatch):
    """Code grows with every pass beyond -Oz's (5 bytes each); mergefunc saves 30
    bytes of code but adds 200 of writable data (image and RAM); a pipeline with
    3 instcombines more than -Oz fails to compile."""
    from clang_llm.train import evaluate

    oz_leaves = _leaves(pipelines.oz_pipeline())
    oz_combines = pipelines.oz_pipeline().count("instcombine")

    def run(jobs, store, **kw):
        out = {}
        for j in jobs:
            merge = "mergefunc" in j.passes
            text = 1000 + 5 * (_leaves(j.passes) - oz_leaves) + int(j.module_hash[-1], 16) - (30 if merge else 0)
            bad = j.passes.count("instcombine") >= oz_combines + 3
            ram = 100 + (200 if merge else 0)
            res = Result.failure("LLVM ERROR: fake") if bad else Result(text, ram, 0, None, 0.0, image=text + ram,
                                                                          ram=ram)
            out[(j.module_hash, pipeline_key(j.passes, j.codegen))] = res
        return out

    monkeypatch.setattr(evaluate, "run", run)


def test_climb_judges_image_ram_and_failures():
    from clang_llm.train import climb

    assert climb.judge([100, 200], [110, 210], [90, 190], [100, 200], 0.01)[0]
    # Smaller, but not by the gain asked for.
    assert not climb.judge([100, 200], [110, 210], [99, 200], [109, 210], 0.01)[0]
    # A smaller image that needs more RAM (a table made writable).
    assert climb.judge([100, 200], [110, 210], [90, 190], [130, 230], 0.01)[2] == "RAM larger"
    assert climb.judge([100, 200], [110, 210], [50, None], [60, None], 0.01)[2] == "failed on a module"
    # Equal is not smaller.
    assert not climb.judge([100], [100], [100], [100], 0.0)[0]


def test_climb_keeps_only_smaller_pipelines_and_resumes(fake_climb_evaluate, tmp_path):
    from clang_llm.train import climb

    fit = [(f"{i:016x}", f"/nonexistent/{i}.bc") for i in range(3)]
    oz = pipelines.by_name("oz")

    def run(log, steps):
        return climb.climb(fit, oz, steps=steps, mutants=4, min_gain=0.0, seed=1, store=None, args=_args(),
                           log_path=log)

    steps, finals = run(tmp_path / "a.jsonl", 8)
    assert len(steps) == 8 and len(finals) > 1 and finals[0] == oz.passes
    sizes = [_leaves(f) for f in finals]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert not any("mergefunc" in f for f in finals)
    assert all(not pipelines.unsafe_passes(f) for f in finals)
    # A rerun with more steps replays the log and goes on as an unbroken run would.
    resumed, resumed_finals = run(tmp_path / "a.jsonl", 14)
    unbroken, unbroken_finals = run(tmp_path / "b.jsonl", 14)
    assert resumed_finals == unbroken_finals
    assert [s["tried"] for s in resumed] == [s["tried"] for s in unbroken]
    assert resumed[:8] == steps


def test_climb_for_a_verify_set_counts_only_what_beats_the_others():
    from clang_llm.train import climb

    # Two modules; the others' best is 90 and 200 bytes of .text.
    floor = climb.floor_of([([100, 200], [110, 230]), ([90, None], [95, None]), ([120, 210], [120, 210])])
    assert floor == [(90, 95), (200, 230)]
    # The pipeline counts where it is smaller; a failure stays a failure.
    assert climb.with_floor(([80, 250], [100, 260]), floor) == ([80, 200], [100, 230])
    assert climb.with_floor(([80, None], [100, None]), floor) == ([80, None], [100, None])
    assert climb.with_floor(([80, 250], [100, 260]), None) == ([80, 250], [100, 260])
    # A mutant that only shrinks a module the others already win gains nothing.
    cur = climb.with_floor(([100, 250], [100, 250]), floor)
    new = climb.with_floor(([95, 250], [95, 250]), floor)
    assert climb.judge(*cur, *new, 0.0)[:2] == (False, 0.0)
    # Where every other pipeline failed, the climbed one stands alone.
    assert climb.floor_of([([None], [None])]) == [(math.inf, math.inf)]
    assert climb.with_floor(([70], [80]), climb.floor_of([([None], [None])])) == ([70], [80])


def test_climb_offers_come_first_once_per_pipeline_and_never_unsafe():
    from clang_llm.train import climb

    nodes = P.base_nodes(pipelines.by_name("oz").passes)
    seen: set[str] = set()
    got = climb.propose(nodes, random.Random(0), 3, seen, offers=("function(dse,adce)", "iroutliner"))
    assert got[0] == ([("append", "function(dse,adce)")], P.unparse(nodes) + ",function(dse,adce)")
    # The unsafe offer is dropped; the random mutants still number 3.
    assert len(got) == 4 and not any(pipelines.unsafe_passes(t) for _, t in got)
    # Offered again on the same pipeline (a later step that accepted nothing): not measured twice.
    again = climb.propose(nodes, random.Random(1), 3, seen, offers=("function(dse,adce)",))
    assert len(again) == 3 and got[0][1] not in [t for _, t in again]
