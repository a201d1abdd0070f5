"""Per-module pipeline search: find pipelines that make each module smaller than -Oz.

    clang-llm-data search run --split train --sample 300 --budget 200
    clang-llm-data search minimise --run NAME

The search is an evolutionary loop run in rounds over all modules at once, so
that each round is one batch for the evaluator (local pool or Ray):

  round 0   seeds: clang's -Oz pipeline and its known variants (sink-common-insts
            in the first simplifycfg, mergefunc appended), each with
            and without the machine outliner;
  round k   for every module, children of its best few individuals (1-3 edits:
            insert / delete / swap / repeat a pass, change its parameters, append
            a module pass, toggle the outliner) and a few random pipelines from
            -Oz's vocabulary (passes.random_pipeline).

Every run is deterministic for a given seed (each module has its own RNG) and
every evaluation lands in the result store, so an interrupted run resumes by
running the same command: the replay takes its results from the store.

``minimise`` shrinks each module's winner by dropping edits one at a time while
the module gets no larger; the minimised winners are what candidate selection
(select.py) draws from.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import committed_dir, data_root, write_atomic
from . import passes as P

FAILED = math.inf


@dataclass
class ModuleState:
    hash: str
    path: str
    rng: random.Random
    seen: dict[str, tuple[P.Individual, float]] = field(default_factory=dict)  # pipeline key -> (ind, text)
    evaluations: int = 0
    # (evaluations so far, best image bytes so far) after every round: what a smaller budget would have found.
    history: list[tuple[int, float]] = field(default_factory=list)

    def ranked(self) -> list[tuple[P.Individual, float]]:
        # Ties go to fewer edits: a simpler pipeline that is as small is the better one.
        return sorted(self.seen.values(), key=lambda it: (it[1], len(it[0].edits), it[0].describe()))

    @property
    def oz_text(self) -> float:
        return self.seen[key_of(P.Individual("oz"))][1]


def key_of(ind: P.Individual) -> str:
    from .store import pipeline_key

    return pipeline_key(ind.passes(), ind.machine_outliner)


def _first_simplifycfg_sink() -> P.Edit:
    """The edit that turns on sink-common-insts in -Oz's first simplifycfg."""
    for path, _level, lst in P.lists(P.base_nodes("oz")):
        for i, n in enumerate(lst):
            if n.name == "simplifycfg":
                return ("param", path, i, P.flip_simplifycfg_flag(n.params or "", "sink-common-insts"))
    raise ValueError("clang's -Oz pipeline has no simplifycfg")


def seeds() -> list[P.Individual]:
    sink = _first_simplifycfg_sink()
    # (Seeds with iroutliner appended were dropped: pipelines.UNSAFE_PASSES.)
    edit_sets = [(), (sink,), (("append", "mergefunc"),), (sink, ("append", "mergefunc"))]
    return [P.Individual("oz", edits, mo) for mo in (False, True) for edits in edit_sets]


def set_seeds() -> list[P.Individual]:
    """The shipped set's validated pipelines as seeds (search --from-set): the
    search then starts at the set's per-module oracle, so what it finds is what
    the set is missing, the material for growing it (select --grow)."""
    from .. import pipelines

    return [P.Individual(c.passes, (), c.machine_outliner) for c in pipelines.candidates()
            if c.validated and c.name != "oz"]


def seed_list(from_set: bool) -> list[P.Individual]:
    """What every module's search starts from: seeds(), and with from_set the
    shipped set's pipelines too (one of each pipeline)."""
    out, keys = [], set()
    for ind in [*seeds(), *(set_seeds() if from_set else ())]:
        k = key_of(ind)
        if k not in keys:
            keys.add(k)
            out.append(ind)
    return out


def _module_rng(seed: int, module_hash: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{seed}:{module_hash}".encode()).hexdigest()[:16], 16))


def propose(state: ModuleState, n: int, parents: int = 4, random_share: float = 0.1) -> list[P.Individual]:
    """n new individuals for one module (not yet seen)."""
    top = [ind for ind, text in state.ranked()[:parents] if text < FAILED] or [P.Individual("oz")]
    out: list[P.Individual] = []
    keys = set(state.seen)
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        if state.rng.random() < random_share:
            child = P.Individual(P.random_pipeline(state.rng), (), state.rng.random() < 0.5)
        else:
            # Rank-weighted choice: the best parent is picked most often.
            weights = [1.0 / (i + 1) for i in range(len(top))]
            child = P.mutate(state.rng.choices(top, weights)[0], state.rng)
        k = key_of(child)
        if k not in keys:
            keys.add(k)
            out.append(child)
    return out


def _evaluate(states: list[ModuleState], batch: dict[str, list[P.Individual]], store, args, desc: str) -> None:
    from . import evaluate

    jobs, index = [], {}
    for st in states:
        for ind in batch.get(st.hash, ()):
            passes, k = ind.passes(), key_of(ind)
            jobs.append(evaluate.Job(st.hash, st.path, passes, ind.machine_outliner))
            index[(st.hash, k)] = (st, ind)
    results = evaluate.run(jobs, store, backend=args.backend, workers=args.workers, timeout=args.timeout,
                           address=args.address, progress=not args.quiet, desc=desc)
    for (mh, k), (st, ind) in index.items():
        res = results[(mh, k)]
        st.seen[k] = (ind, float(res.size) if res.ok else FAILED)
        st.evaluations += 1
    for st in states:
        if st.hash in batch:
            st.history.append((st.evaluations, min(t for _, t in st.seen.values())))


def search(modules: list[dict], store, *, budget: int, round_size: int, seed: int, args,
           on_round=None) -> list[ModuleState]:
    """Run the search over modules (records with 'hash' and 'path'); returns their states.
    on_round(states, round) is called after every round (progress snapshots)."""
    states = [ModuleState(m["hash"], str(m["path"]), _module_rng(seed, m["hash"])) for m in modules]
    first = seed_list(getattr(args, "from_set", False))
    _evaluate(states, {st.hash: first for st in states}, store, args, "search: seeds")
    states = [st for st in states if st.seen.get(key_of(P.Individual("oz")), (None, FAILED))[1] < FAILED]
    rnd = 0
    while True:
        batch = {st.hash: propose(st, min(round_size, budget - st.evaluations))
                 for st in states if st.evaluations < budget}
        if not any(batch.values()):
            break
        rnd += 1
        _evaluate(states, batch, store, args, f"search: round {rnd}")
        if on_round is not None:
            on_round(states, rnd)
    return states


def minimise(states: list[ModuleState], store, args) -> dict[str, tuple[P.Individual, float]]:
    """Each module's winner with every edit dropped that does not pay for itself."""
    current = {}
    for st in states:
        best, text = st.ranked()[0]
        current[st.hash] = [best, text, len(best.edits) - 1]  # try dropping edits last to first
    rnd = 0
    while True:
        batch, trial = {}, {}
        for st in states:
            ind, text, j = current[st.hash]
            if j < 0 or text >= st.oz_text:
                continue
            cand = P.Individual(ind.base, ind.edits[:j] + ind.edits[j + 1:], ind.machine_outliner)
            k = key_of(cand)
            if k in st.seen:
                trial[st.hash] = (cand, st.seen[k][1])
            else:
                batch[st.hash] = [cand]
                trial[st.hash] = (cand, None)
        if not trial:
            break
        rnd += 1
        if batch:
            _evaluate(states, batch, store, args, f"minimise: step {rnd}")
        by_hash = {st.hash: st for st in states}
        for mh, (cand, text) in trial.items():
            if text is None:
                text = by_hash[mh].seen[key_of(cand)][1]
            ind, best_text, j = current[mh]
            if text <= best_text:
                current[mh] = [cand, text, j - 1]
            else:
                current[mh][2] = j - 1
    # The outliner is a knob, not an edit: keep it only where it pays.
    return {mh: (ind, text) for mh, (ind, text, _) in current.items()}


# --- reporting and files --------------------------------------------------------------

def individual_json(ind: P.Individual) -> dict:
    return {"base": ind.base, "edits": [list(e) for e in ind.edits], "machine_outliner": ind.machine_outliner}


def individual_from_json(d: dict) -> P.Individual:
    edits = tuple(tuple(tuple(x) if isinstance(x, list) else x for x in e) for e in d["edits"])
    return P.Individual(d["base"], edits, bool(d["machine_outliner"]))


def geomean(ratios: list[float]) -> float:
    ratios = [r for r in ratios if r > 0 and math.isfinite(r)]
    return math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else 1.0


def best_within(history: list[tuple[int, float]], budget: int) -> float:
    """Best image size a search stopped after `budget` evaluations had found (rounds end on their own counts)."""
    within = [t for n, t in history if n <= budget]
    return within[-1] if within else FAILED


# Budgets at which summaries report what the search had found, to show what more evaluations buy.
BUDGET_CURVE = (12, 60, 120, 300, 600, 1000, 2000)


def summarise(states: list[ModuleState], winners: dict[str, tuple[P.Individual, float]],
              from_set: bool = False) -> dict:
    rows, best_ratio, seed_ratio = [], [], []
    curve: dict[int, list[float]] = {b: [] for b in BUDGET_CURVE}
    seed_keys = {key_of(s) for s in seed_list(from_set)}
    for st in states:
        oz = st.oz_text
        if not oz:
            continue  # no code: nothing to win
        best_ind, best = st.ranked()[0]
        seed_best = min(t for k, (_, t) in st.seen.items() if k in seed_keys)
        win_ind, win = winners.get(st.hash, (best_ind, best))
        best_ratio.append(win / oz)
        seed_ratio.append(seed_best / oz)
        for b in BUDGET_CURVE:
            found = min(best_within(st.history, b), win if b >= st.evaluations else math.inf)
            # A budget below the seed round (39 seeds under --from-set) has found nothing yet: no point.
            if st.evaluations >= b and found < FAILED:
                curve[b].append(found / oz)
        rows.append({"module": st.hash, "oz_text": oz, "best_text": best, "seed_best_text": seed_best,
                     "evaluations": st.evaluations,
                     "failures": sum(1 for _, t in st.seen.values() if t == FAILED),
                     "winner": individual_json(win_ind), "winner_text": win, "winner_name": win_ind.describe()})
    return {
        "modules": len(rows),
        "evaluations": sum(r["evaluations"] for r in rows),
        "failures": sum(r["failures"] for r in rows),
        "geomean_best_vs_oz": geomean(best_ratio),
        "geomean_seed_oracle_vs_oz": geomean(seed_ratio),
        "improved_share": sum(1 for r in best_ratio if r < 1) / max(len(best_ratio), 1),
        # Geomean of the best found within each budget, over the modules searched at least that far.
        "geomean_best_by_budget": {str(b): {"modules": len(r), "geomean": geomean(r)}
                                   for b, r in curve.items() if r},
        "rows": rows,
    }


def run_dir(name: str) -> Path:
    return data_root() / "search" / name


def summary_path(name: str) -> Path:
    return run_dir(name) / "summary.json"


def kept_path(name: str) -> Path:
    """The committed copy of a run's summary (search --keep): the store and the
    run folder are rebuilt data, but selection only needs the winners."""
    return committed_dir() / "search" / f"{name}.json.gz"


def load_summary(name: str) -> dict:
    """What search run `name` wrote (summarise's dict plus the run's settings):
    the run folder's summary, else the committed copy."""
    path = summary_path(name)
    if not path.exists() and kept_path(name).exists():
        return json.loads(gzip.decompress(kept_path(name).read_bytes()))
    return json.loads(path.read_text())


def keep_summary(name: str) -> Path:
    out = kept_path(name)
    # mtime=0: the same summary gives the same bytes, so a re-keep changes nothing in git.
    write_atomic(out, gzip.compress(json.dumps(load_summary(name), separators=(",", ":")).encode(), mtime=0))
    return out


def _cmd_run(args) -> int:
    from .. import pipelines
    from . import corpus
    from .store import Store

    if args.keep:
        if not summary_path(args.name).exists():
            print(f"clang-llm-data search: run {args.name!r} has no summary ({summary_path(args.name)})",
                  file=sys.stderr)
            return 2
        print(f"wrote {keep_summary(args.name)}")
        return 0

    mods = corpus.modules(split=args.split)
    if args.max_instructions:
        mods = [m for m in mods if m.get("ir_instructions", 0) <= args.max_instructions]
    mods = [m for m in mods if m.get("ir_instructions", 1) > 0]
    done = set()
    for name in args.exclude_runs:
        done |= {row["module"] for row in load_summary(name)["rows"]}
    mods = [m for m in mods if m["hash"] not in done]
    rng = random.Random(args.seed)
    mods = sorted(mods, key=lambda m: m["hash"])
    if args.sample and args.sample < len(mods):
        mods = rng.sample(mods, args.sample)
    if not mods:
        print(f"clang-llm-data search: no modules in split {args.split!r}; build the corpus first",
              file=sys.stderr)
        return 2
    out = run_dir(args.name)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    settings = {"split": args.split, "budget": args.budget, "seed": args.seed, "sample": len(mods),
                "from_set": pipelines.set_hash() if args.from_set else None,
                "command": "clang-llm-data " + " ".join(sys.argv[1:]) if sys.argv else ""}

    def snapshot(states: list[ModuleState], rnd: int) -> None:
        # What the run has found so far, before minimisation: a run stopped for
        # time still reports its budget curve (the store keeps the evaluations).
        snap = {k: v for k, v in summarise(states, {}, args.from_set).items() if k != "rows"}
        snap.update(settings, round=rnd, seconds=round(time.time() - start, 1))
        write_atomic(run_dir(args.name) / "progress.json", json.dumps(snap, indent=1))

    with Store(args.store or data_root() / "results.sqlite") as store:
        states = search(mods, store, budget=args.budget, round_size=args.round_size, seed=args.seed, args=args,
                        on_round=snapshot)
        winners = minimise(states, store, args)
    summary = summarise(states, winners, args.from_set)
    summary.update(settings, seconds=round(time.time() - start, 1))
    summary_path(args.name).write_text(json.dumps(summary, indent=1))
    print(f"search {args.name}: {summary['modules']} modules, {summary['evaluations']} evaluations "
          f"({summary['failures']} failed); geomean vs -Oz: best found {summary['geomean_best_vs_oz']:.4f}, "
          f"best seed {summary['geomean_seed_oracle_vs_oz']:.4f}; improved {summary['improved_share']:.0%}")
    print(f"wrote {summary_path(args.name)}")
    return 0


def add_eval_options(p) -> None:
    """Options every command that evaluates shares."""
    p.add_argument("--store", type=Path, help="result store (default DATA/results.sqlite)")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--address", help="Ray cluster address (backend ray)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub) -> None:
    p = sub.add_parser("search", help="per-module pipeline search (resumable)")
    p.add_argument("--name", default="default", help="run name (output under DATA/search/NAME)")
    p.add_argument("--split", default="train", choices=("train", "validation"),
                   help="never the test split: its packages stay unseen")
    p.add_argument("--sample", type=int, default=300, help="modules drawn from the split (0: all)")
    p.add_argument("--budget", type=int, default=200, help="evaluations per module")
    p.add_argument("--round-size", type=int, default=24, help="new individuals per module per round")
    p.add_argument("--max-instructions", type=int, default=20000,
                   help="skip modules with more IR instructions (their evaluations dominate time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude-runs", nargs="*", default=[], metavar="RUN",
                   help="leave out modules these runs searched, so that runs add up to a larger sample")
    p.add_argument("--from-set", action="store_true",
                   help="seed every module with the shipped set's validated pipelines too: the search "
                        "then looks for what the set misses (the seed oracle is the set's oracle)")
    p.add_argument("--keep", action="store_true",
                   help="copy the finished run's summary (gzipped) into the committed data and exit")
    add_eval_options(p)
    p.set_defaults(func=_cmd_run)
