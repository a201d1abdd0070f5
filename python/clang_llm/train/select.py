"""Choose the candidate set: K pipelines that together cover most of the headroom.

    clang-llm-data select --runs default --k 64 [--write]

The pool is every minimised search winner (search.py) plus the seed pipelines.
Each pool pipeline is measured on every module of a training sample and a
validation sample (cross-evaluation: a winner was only measured on its own
module during search). Selection is greedy on the training modules: start from
clang's -Oz pipeline (always in the set, it is the fallback), then repeatedly
add the pipeline that most lowers the geomean of the per-module best of the set.
The report scores the greedy prefixes on the *validation* modules, which
selection never saw: best single pipeline, oracle-of-K for several K, the
oracle of the whole pool and, where search ran on validation modules, the
full-search oracle.

Pipelines must pass the correctness gate (validate.py) before they may be
written into the shipped candidate set: ``--write`` validates the chosen ones in
greedy order, leaves out (and records) those that fail, and writes the first k
that pass into clang_llm/data/candidates.tsv.

Growing the shipped set instead of replacing it (labels and models keep their
columns):

    clang-llm-data search --name train-e --from-set ...
    clang-llm-data select --runs train-e train-d --grow new.tsv --k 16
    clang-llm-data validate pipelines --candidates-file new.tsv --report gate.json
    clang-llm-data validate admit --candidates-file new.tsv --report gate.json
    clang-llm-data labels --extend

``--grow`` runs greedy from the shipped validated set rather than from -Oz, so
each pick is the pipeline that most lowers the per-module best of the set plus
the picks so far; unsafe passes are stripped from older runs' winners first.

``--grow FILE --knobs`` offers, instead of search winners, the shipped validated
pipelines with more code generator knobs (KNOB_OFFERS: split-for-size, size layout, no machine
LICM and no LSR, with and without the machine outliner); a pick is named after its pipeline, e.g.
s42+mo+ss. The search itself does not vary these knobs.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from . import committed_dir, data_root
from . import passes as P
from .search import (FAILED, add_eval_options, geomean, individual_from_json, individual_json, key_of,
                     load_summary, seeds)

DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64)

# Knob bits select --knobs adds to each shipped pipeline's own (pipelines.KNOBS):
# split for size, also with the outliner. IPRA is not offered: it crashed LLVM
# 22 in the gate (x87 code, now a hazard that keeps it off) and added ~0.2% on
# top of split-for-size where it applies (80 training modules under s42+mo: ss
# -0.65%, ipra -0.17%, both -0.82%), too little for the risk of a less-used path.
# Size layout (8) alone and with split for size, since it moved the default by
# -0.42% (600 training modules) and -0.46% (297 validation modules) in
# bench/codegen_probe.py, and s42+mo+ss+sl and s50+mo+sl pass the gate.
# No machine LICM (16) and no LSR (32), alone and together: together they moved
# the default by -1.34% on 600 training modules, alone by -0.83% and -0.51%
# (2026-12-05, bench/results/codegen_probe_hoist.md).
# Rep block operations (64) and split branch conditions (128), together, and
# with no machine CSE (256): on top of the default they moved 600 training
# modules by -0.11%, -0.30%, -0.41% and -0.51%
# (2026-12-06, bench/results/codegen_probe_branches.md). No machine sinking
# (512), also with the reverse local order (1024): -0.31% and -0.41% on 400
# training modules as per-module choices on top of the new default, though
# both cost bytes on average (bench/results/codegen_probe_sinking.md).
KNOB_OFFERS = (2, 3, 8, 10, 11, 16, 32, 48, 64, 128, 192, 448, 512, 1536)


def pool_from_runs(runs: list[str], max_pool: int) -> list[P.Individual]:
    """Seeds plus the winners of the given search runs, most frequent winners first."""
    count: dict[str, list] = {}
    for name in runs:
        summary = load_summary(name)
        # A run seeded with the shipped set (search --from-set) counts what a
        # winner adds over the set's best on its module, not over -Oz.
        ref = "seed_best_text" if summary.get("from_set") else "oz_text"
        for row in summary["rows"]:
            if row["winner_text"] >= min(row[ref], row["oz_text"]):
                continue
            ind = individual_from_json(row["winner"])
            gain = math.log(row[ref] / row["winner_text"])
            entry = count.setdefault(key_of(ind), [ind, 0, 0.0])
            entry[1] += 1
            entry[2] += gain
    ranked = sorted(count.values(), key=lambda e: (-e[2], -e[1], e[0].describe()))
    pool, keys = [], set()
    for ind in [*seeds(), *(e[0] for e in ranked)]:
        k = key_of(ind)
        if k not in keys:
            keys.add(k)
            pool.append(ind)
    return pool[:max_pool]


def _pair(item) -> tuple[str, int]:
    """(passes, codegen knob bits) of a search Individual or a Candidate."""
    if isinstance(item, P.Individual):
        return item.passes(), int(item.machine_outliner)
    return item.passes, item.codegen


def ratio_matrix(modules: list[dict], pool: list, store, args) -> list[list[float]]:
    """R[m][p] = image bytes (clang_llm.sizes) of module m under pool[p] (an
    Individual or a Candidate) / image bytes under -Oz (inf when it failed, or
    when it needs more RAM than -Oz: verify mode would never take it)."""
    from . import evaluate
    from .store import pipeline_key

    pairs = [_pair(x) for x in pool]
    jobs = [evaluate.Job(m["hash"], str(m["path"]), passes, cg) for m in modules for passes, cg in pairs]
    res = evaluate.run(jobs, store, backend=args.backend, workers=args.workers, timeout=args.timeout,
                       address=args.address, progress=not args.quiet, desc="select: cross-evaluation")
    oz_key = key_of(P.Individual("oz"))
    keys = [pipeline_key(*pair) for pair in pairs]
    rows = []
    for m in modules:
        oz = res[(m["hash"], oz_key)]
        if not oz.ok or not oz.size:
            continue  # modules without code (or that -Oz cannot compile) say nothing about pipelines
        rows.append([r.size / oz.size if r.ok and r.ram <= oz.ram else FAILED
                     for r in (res[(m["hash"], k)] for k in keys)])
    return rows


def knob_pool(shipped) -> list:
    """Each shipped candidate with each of KNOB_OFFERS added to its own knobs,
    named after it (s42+mo -> s42+mo+ss); none the set has already."""
    from .. import pipelines

    seen, out = {(c.passes, c.codegen) for c in shipped}, []
    for c in shipped:
        stem = c.name.removesuffix(pipelines.knob_suffix(c.codegen))
        for bits in KNOB_OFFERS:
            cg = c.codegen | bits
            if (c.passes, cg) in seen:
                continue
            seen.add((c.passes, cg))
            added = [name for name, bit, _ in pipelines.KNOBS if cg & bit and not c.codegen & bit]
            out.append(pipelines.Candidate(stem + pipelines.knob_suffix(cg), c.passes, cg, False,
                                           f"{c.name} with {'+'.join(added)}"))
    return out


# What --verify offers each member of verify mode's order: mergefunc appended
# (it merges identical functions that the other passes leave behind; appended to
# the default it was one of climb d2's two steps) and the branch knobs (rep+sbr),
# alone and together. +nmcse on them entered no cover in a screen of 21 such
# variants on 700 labelled training modules.
VERIFY_OFFERS = ((True, 0), (True, 192), (False, 192))


def verify_pool(members, taken: set[str]) -> list:
    """VERIFY_OFFERS applied to each of members (shipped candidates), none the
    set has already. A mergefunc variant is another pipeline, so it takes a
    fresh sNN (taken: numbers in use, updated) and a note naming its source."""
    from .. import pipelines

    seen = {(c.passes, c.codegen) for c in pipelines.candidates()}
    out, number = [], {}
    for c in members:
        stem = c.name.removesuffix(pipelines.knob_suffix(c.codegen))
        for merge, bits in VERIFY_OFFERS:
            merged = merge and "mergefunc" not in c.passes
            passes = pipelines.appended(c.passes, "mergefunc") if merged else c.passes
            cg = c.codegen | bits
            if (passes, cg) in seen:
                continue
            seen.add((passes, cg))
            if merged and c.name not in number:
                number[c.name] = _fresh_name(len(pipelines.candidates()), taken, False)
            name = (number[c.name] if merged else stem) + pipelines.knob_suffix(cg)
            added = [n for n, bit, _ in pipelines.KNOBS if cg & bit and not c.codegen & bit]
            parts = (["mergefunc appended"] if merged else []) + (["+".join(added)] if added else [])
            out.append(pipelines.Candidate(name, passes, cg, False, f"{c.name} with {' and '.join(parts)}"))
    return out


def cover(rows: list[list[float]], k: int, oz: int, considered: list[int]) -> list[int]:
    """Verify mode's greedy order over rows (ratios to -Oz): the first k of
    considered, each lowering most the sum of log(smallest ratio so far), with
    -Oz (index oz, always measured) as the floor."""
    others = set(range(len(rows[0]) if rows else 0)) - set(considered)
    return greedy(rows, k + 1, [oz], banned=others)[1:]


def best_addition(rows: list[list[float]], chosen: list[int], banned: set[int] = frozenset()) -> int | None:
    """The pool pipeline that most lowers the sum of log(per-module best) when added to chosen."""
    best = [min(r[c] for c in chosen) for r in rows]
    gains = []
    for p in range(len(rows[0]) if rows else 0):
        if p in chosen or p in banned:
            continue
        total = sum(math.log(min(b, r[p])) for b, r in zip(best, rows) if math.isfinite(min(b, r[p])))
        gains.append((total, p))
    return min(gains)[1] if gains else None


def single_cost(rows: list[list[float]], p: int) -> float:
    """Sum of log ratios of pool pipeline p alone (a failed module costs 50): lower is better."""
    return sum(math.log(r[p]) if math.isfinite(r[p]) else 50 for r in rows)


def greedy(rows: list[list[float]], k: int, first: int | list[int] = 0, banned: set[int] = frozenset()) -> list[int]:
    """Indices of k pool pipelines chosen greedily for the lowest sum of log(best ratio),
    starting from `first` (one index or a list already chosen), never from banned."""
    chosen = list(first) if isinstance(first, list) else [first]
    while len(chosen) < k:
        p = best_addition(rows, chosen, banned)
        if p is None:
            break
        chosen.append(p)
    return chosen


def oracle(rows: list[list[float]], subset: list[int]) -> dict:
    per_module = [min(r[p] for p in subset) for r in rows]
    return {"geomean": geomean(per_module),
            "improved": sum(1 for x in per_module if x < 1) / max(len(per_module), 1),
            "regressed": sum(1 for x in per_module if x > 1) / max(len(per_module), 1)}


def safe_pool(pool: list[P.Individual], shipped: list) -> list[P.Individual]:
    """The pool without what the shipped set (Individuals or Candidates) has and
    with UNSAFE_PASSES removed (older runs searched with iroutliner; what else
    they found may still pay)."""
    from .. import pipelines
    from .store import pipeline_key

    keys, out = {pipeline_key(*_pair(x)) for x in shipped}, []
    for ind in pool:
        unsafe = pipelines.unsafe_passes(ind.passes())
        if unsafe:
            ind = P.Individual(P.unparse(P.without(ind.nodes(), set(unsafe))), (), ind.machine_outliner)
        if key_of(ind) not in keys:
            keys.add(key_of(ind))
            out.append(ind)
    return out


def _samples(args) -> tuple[list[dict], list[dict]]:
    """The seeded training and validation samples selection cross-evaluates on."""
    from . import corpus

    rng = random.Random(args.seed)
    train = sorted((m for m in corpus.modules("train") if 0 < m.get("ir_instructions", 1) <= args.max_instructions),
                   key=lambda m: m["hash"])
    val = sorted((m for m in corpus.modules("validation") if 0 < m.get("ir_instructions", 1) <= args.max_instructions),
                 key=lambda m: m["hash"])
    return rng.sample(train, min(args.train_sample, len(train))), rng.sample(val, min(args.val_sample, len(val)))


def _cmd_grow(args) -> int:
    """select --grow: pick k pipelines from the pool that most lower the per-module
    best of the shipped set's validated candidates (greedy from the whole set,
    not from -Oz), and write them as a candidates file for the gate (`validate
    pipelines --candidates-file`) and `validate admit`. Nothing shipped changes."""
    from .. import pipelines
    from .store import Store

    if args.verify:
        return _grow_verify(args)
    # The shipped candidates keep all their knob bits: as Individuals (outliner
    # bit only) their split-for-size and size-layout savings went missing, and
    # greedy then paid for search winners the set already covers.
    shipped = [c for c in pipelines.candidates() if c.validated]
    pool: list = knob_pool(shipped) if args.knobs else []
    # --max-pool per run: runs seeded differently rank their winners on different
    # scales (gain over the set's best vs over -Oz), so one ranking would let one run crowd out the other.
    for run in [] if args.knobs else args.runs:
        pool += safe_pool(pool_from_runs([run], 10**9), shipped + pool)[:args.max_pool]
    if not pool:
        print("clang-llm-data select --grow: the runs found nothing the shipped set lacks", file=sys.stderr)
        return 2
    train, val = _samples(args)
    start = time.time()
    both = shipped + pool
    with Store(args.store or data_root() / "results.sqlite") as store:
        rtrain = ratio_matrix(train, both, store, args)
        rval = ratio_matrix(val, both, store, args)
    base = list(range(len(shipped)))
    order = greedy(rtrain, len(base) + min(args.k, len(pool)), base)[len(base):]
    ks = [k for k in DEFAULT_KS if k <= len(order)]
    taken = _taken_numbers()
    new = [both[p] if args.knobs else
           pipelines.Candidate(_fresh_name(len(pipelines.candidates()), taken, both[p].machine_outliner),
                               both[p].passes(), both[p].machine_outliner, False, both[p].describe())
           for p in order]
    out = Path(args.grow)
    out.write_text(pipelines.write(new, pipelines.best_fixed().name,
                                   {"command": "clang-llm-data " + " ".join(sys.argv[1:]),
                                    "date": time.strftime("%Y-%m-%d"),
                                    **({"knobs": list(KNOB_OFFERS)} if args.knobs else {"runs": args.runs}),
                                    "grows": pipelines.set_hash()}))
    report = {
        "command": "clang-llm-data " + " ".join(sys.argv[1:]), "seed": args.seed,
        **({"knob_offers": list(KNOB_OFFERS)} if args.knobs else {"runs": args.runs}),
        "pool": len(pool), "train_modules": len(rtrain), "validation_modules": len(rval),
        "seconds": round(time.time() - start, 1), "candidate_set": pipelines.set_hash(),
        "shipped_validated": len(base),
        "shipped_oracle": {"train": oracle(rtrain, base), "validation": oracle(rval, base)},
        "grown_oracle": {str(k): {"train": oracle(rtrain, base + order[:k]), "validation": oracle(rval, base + order[:k])}
                         for k in ks},
        "pool_oracle": {"train": oracle(rtrain, list(range(len(both)))),
                        "validation": oracle(rval, list(range(len(both))))},
        "chosen": [{"name": c.name, "note": c.note} for c in new],
        "candidates_file": str(out),
    }
    (args.report or committed_dir() / "selection_grow.json").write_text(json.dumps(report, indent=1))
    print(f"pool {len(pool)} new pipelines; train {len(rtrain)}, validation {len(rval)} modules")
    print(f"shipped set ({len(base)} validated): validation oracle {report['shipped_oracle']['validation']['geomean']:.4f}")
    for k, v in report["grown_oracle"].items():
        print(f"  + {k} new: validation oracle {v['validation']['geomean']:.4f} (train {v['train']['geomean']:.4f})")
    print(f"wrote {out} ({len(new)} candidates, not yet validated)")
    return 0


def _grow_verify(args) -> int:
    """select --grow FILE --verify K: variants (VERIFY_OFFERS) of the first
    --verify-from members of the shipped verify order, and of those the ones
    that verify mode's greedy cover over members and variants puts among its
    first K on the training sample, written to FILE for the gate and `validate
    admit`. The cover is recomputed over the whole set by `best-fixed --write`
    once the label table has them; members further down the shipped order
    rarely enter the first K, so they are left out of the cross-evaluation."""
    from .. import pipelines
    from .store import Store

    members = pipelines.verify_order()[:args.verify_from]
    pool = verify_pool(members, _taken_numbers())
    if not pool:
        print("clang-llm-data select --grow --verify: the shipped set has every variant already", file=sys.stderr)
        return 2
    train, val = _samples(args)
    start = time.time()
    both = [pipelines.by_name("oz")] + members + pool  # -Oz first: its ratio is 1, verify mode's floor
    with Store(args.store or data_root() / "results.sqlite") as store:
        rtrain = ratio_matrix(train, both, store, args)
        rval = ratio_matrix(val, both, store, args)
    shipped_cols = list(range(1, 1 + len(members)))
    order = cover(rtrain, args.verify, 0, list(range(1, len(both))))
    base = cover(rtrain, args.verify, 0, shipped_cols)
    new = [both[p] for p in order if p > len(members)]
    out = Path(args.grow)
    out.write_text(pipelines.write(new, pipelines.best_fixed().name,
                                   {"command": "clang-llm-data " + " ".join(sys.argv[1:]),
                                    "date": time.strftime("%Y-%m-%d"), "grows": pipelines.set_hash()}))

    def curve(rows, chosen):
        return {str(k): oracle(rows, [0] + chosen[:k]) for k in range(1, len(chosen) + 1)}

    report = {
        "command": "clang-llm-data " + " ".join(sys.argv[1:]), "seed": args.seed,
        "members": [c.name for c in members], "offers": [list(o) for o in VERIFY_OFFERS], "pool": len(pool),
        "train_modules": len(rtrain), "validation_modules": len(rval),
        "seconds": round(time.time() - start, 1), "candidate_set": pipelines.set_hash(),
        "shipped_cover": {"order": [both[p].name for p in base],
                          "train": curve(rtrain, base), "validation": curve(rval, base)},
        "grown_cover": {"order": [both[p].name for p in order],
                        "train": curve(rtrain, order), "validation": curve(rval, order)},
        "chosen": [{"name": c.name, "note": c.note} for c in new],
        "candidates_file": str(out),
    }
    (args.report or committed_dir() / "selection_verify.json").write_text(json.dumps(report, indent=1))
    k = str(len(order))
    print(f"pool {len(pool)} variants of {len(members)} verify members; train {len(rtrain)}, "
          f"validation {len(rval)} modules")
    for name, entry in (("shipped", report["shipped_cover"]), ("grown", report["grown_cover"])):
        print(f"  {name} cover top-{k}: validation {entry['validation'][k]['geomean']:.4f} "
              f"(train {entry['train'][k]['geomean']:.4f}): {', '.join(entry['order'])}")
    print(f"wrote {out} ({len(new)} candidates, not yet validated)")
    return 0


def _cmd_select(args) -> int:
    from .store import Store

    if (args.knobs or args.verify) and not args.grow:
        print("clang-llm-data select: --knobs and --verify need --grow FILE", file=sys.stderr)
        return 2
    if args.grow:
        return _cmd_grow(args)

    pool = pool_from_runs(args.runs, args.max_pool)
    train, val = _samples(args)
    start = time.time()
    from .. import pipelines

    # The set the package ships, scored on the same validation modules: what a
    # new pool would add over it.
    shipped = [P.Individual(c.passes, machine_outliner=c.machine_outliner) for c in pipelines.candidates()]
    with Store(args.store or data_root() / "results.sqlite") as store:
        rtrain = ratio_matrix(train, pool, store, args)
        rval = ratio_matrix(val, pool, store, args)
        rshipped = ratio_matrix(val, shipped, store, args)
    order = greedy(rtrain, min(max(args.k, max(DEFAULT_KS)), len(pool)))
    single = min(range(len(pool)), key=lambda p: single_cost(rtrain, p))
    ks = [k for k in DEFAULT_KS if k <= len(order)]
    report = {
        "pool": len(pool), "train_modules": len(rtrain), "validation_modules": len(rval),
        "runs": args.runs, "seed": args.seed, "seconds": round(time.time() - start, 1),
        "command": "clang-llm-data " + " ".join(sys.argv[1:]),
        "best_single": {"name": pool[single].describe(), "train": oracle(rtrain, [single]),
                        "validation": oracle(rval, [single])},
        "oracle_of_k": {str(k): {"train": oracle(rtrain, order[:k]), "validation": oracle(rval, order[:k])}
                        for k in ks},
        "pool_oracle": {"train": oracle(rtrain, list(range(len(pool)))),
                        "validation": oracle(rval, list(range(len(pool))))},
        "shipped_set_validation": {
            "candidate_set": pipelines.set_hash(), "candidates": len(shipped),
            "oracle_of_k": {str(k): oracle(rshipped, list(range(k))) for k in DEFAULT_KS if k <= len(shipped)}},
        "chosen": [{"name": pool[p].describe(), **individual_json(pool[p])} for p in order[:args.k]],
    }
    for name in args.validation_runs:
        s = load_summary(name)
        report.setdefault("full_search_oracle_validation", {})[name] = {
            "modules": s["modules"], "geomean": s["geomean_best_vs_oz"], "budget": s["budget"]}
    if args.write:
        report["written"] = write_candidates(pool, order, rtrain, args, rval)
    out = args.report or committed_dir() / "selection.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"pool {len(pool)}, train {len(rtrain)}, validation {len(rval)} modules")
    print(f"best single {report['best_single']['name']}: validation geomean "
          f"{report['best_single']['validation']['geomean']:.4f}")
    for k, v in report["oracle_of_k"].items():
        print(f"oracle-of-{k}: validation geomean {v['validation']['geomean']:.4f} (train {v['train']['geomean']:.4f})")
    ship = report["shipped_set_validation"]["oracle_of_k"]
    print(f"shipped set ({len(shipped)}): validation geomean {ship[max(ship, key=int)]['geomean']:.4f}")
    print(f"wrote {out}")
    return 0


def member_names(members: list[P.Individual]) -> list[str]:
    """Names for a candidate set in order (clang's -Oz first). Pipelines already
    shipped keep their names (logs, reports and the default refer to them); a new
    one gets the first sNN, from its rank on, that no shipped pipeline has, so a
    name never changes meaning."""
    from .. import pipelines

    known = [pipelines.find(ind.passes(), ind.machine_outliner) for ind in members]
    taken = _taken_numbers()
    names = []
    for rank, (ind, old) in enumerate(zip(members, known)):
        if rank == 0:
            name = "oz"
        elif old is not None:
            name = old.name
        else:
            name = _fresh_name(rank, taken, ind.machine_outliner)
        names.append(name)
    return names


def _taken_numbers() -> set[str]:
    """The sNN numbers a new candidate may not take: the shipped set's and those
    earlier sets retired. By number: s07 and s07+mo would read as one pipeline
    with and without the outliner."""
    from .. import pipelines

    return {c.name.removesuffix("+mo") for c in pipelines.candidates()} | pipelines.retired_names()


def _fresh_name(start: int, taken: set[str], machine_outliner: bool) -> str:
    """The first sNN from start on that is not taken (and take it)."""
    n = start
    while f"s{n:02d}" in taken:
        n += 1
    taken.add(f"s{n:02d}")
    return f"s{n:02d}" + ("+mo" if machine_outliner else "")


def retire(old: Iterable, new_names: Iterable[str], retired: set[str]) -> set[str]:
    """The retired numbers once a new set replaces `old`: those already retired and
    those of old candidates the new set drops (derivation names such as
    oz+sink+mo describe their pipeline, so they cannot be reused wrongly)."""
    keep = {n.removesuffix("+mo") for n in new_names}
    dropped = {c.name.removesuffix("+mo") for c in old} - keep
    return (set(retired) | {n for n in dropped if re.fullmatch(r"s\d+", n)}) - keep


def write_candidates(pool: list[P.Individual], order: list[int], rtrain: list[list[float]], args,
                     rval: list[list[float]] | None = None) -> dict:
    """Pick greedily, validating each pick, until k pipelines passed the gate;
    write them into the shipped candidates.tsv; return what was kept and
    excluded (and, given rval, the kept set's scores on the validation modules)."""
    from .. import pipelines
    from . import validate

    kept, banned, excluded = [order[0]], set(), {}  # clang's own pipeline: the gate's reference

    def passes_gate(p: int) -> bool:
        ind = pool[p]
        verdict = validate.validate(ind.passes(), ind.machine_outliner, limit=args.validate_limit, fail_fast=True)
        if verdict.ok:
            print(f"kept {ind.describe()}", file=sys.stderr)
            return True
        banned.add(p)
        excluded[ind.describe()] = verdict.reasons
        print(f"excluded {ind.describe()}: {'; '.join(verdict.reasons)}", file=sys.stderr)
        return False

    # The default back end ships the best single pipeline, so the set holds the
    # best single one that passes the gate, whether or not greedy coverage wants it.
    by_single = sorted(range(len(pool)), key=lambda p: single_cost(rtrain, p))
    for p in by_single:
        if len(kept) >= args.k:
            break
        if p not in kept and passes_gate(p):
            kept.append(p)
            break
    # Then greedy again around every exclusion: the next pick is the best addition
    # to what passed, never one chosen on the assumption that a failed pipeline is in.
    while len(kept) < args.k:
        p = best_addition(rtrain, kept, banned)
        if p is None:
            break
        if passes_gate(p):
            kept.append(p)
    single = min(kept, key=lambda p: single_cost(rtrain, p))
    cands, names = [], dict(zip(kept, member_names([pool[p] for p in kept])))
    retired = retire(pipelines.candidates(), names.values(), pipelines.retired_names())
    for p in kept:
        ind, name = pool[p], names[p]
        validated = args.validate_limit is None or name == "oz"
        cands.append(pipelines.Candidate(name, ind.passes(), ind.machine_outliner, validated, ind.describe()))
    provenance = {"command": "clang-llm-data " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
                  "train_modules": len(rtrain), "runs": args.runs}
    best = names[single] if sum(math.log(r[single]) for r in rtrain if math.isfinite(r[single])) < 0 else "oz"
    path = Path(pipelines.__file__).with_name("data") / "candidates.tsv"
    path.write_text(pipelines.write(cands, best, provenance, retired))
    print(f"wrote {path}: {len(cands)} candidates ({len(excluded)} excluded by the gate), best fixed {best}")
    out = {"path": str(path), "candidates": [names[p] for p in kept], "best_fixed": best, "excluded": excluded}
    if rval:
        out["validation"] = {"best_fixed": oracle(rval, [single]),
                             "oracle_of_k": {str(k): oracle(rval, kept[:k]) for k in DEFAULT_KS if k <= len(kept)}}
    return out


def register(sub) -> None:
    p = sub.add_parser("select", help="choose the candidate set from search winners")
    p.add_argument("--runs", nargs="+", default=["default"], help="search runs (training split) to pool")
    p.add_argument("--validation-runs", nargs="*", default=[],
                   help="search runs on the validation split (reported as the full-search oracle)")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--max-pool", type=int, default=96)
    p.add_argument("--train-sample", type=int, default=300)
    p.add_argument("--val-sample", type=int, default=200)
    p.add_argument("--max-instructions", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=Path)
    p.add_argument("--write", action="store_true",
                   help="validate the chosen pipelines and write the first k that pass into candidates.tsv")
    p.add_argument("--grow", metavar="FILE",
                   help="instead: pick --k pipelines that add most to the shipped set's validated candidates "
                        "and write them to FILE (candidates.tsv format) for the gate and `validate admit`")
    p.add_argument("--knobs", action="store_true",
                   help="with --grow: offer the shipped pipelines with more code generator knobs "
                        "(KNOB_OFFERS) instead of search winners")
    p.add_argument("--verify", type=int, metavar="K", default=0,
                   help="with --grow: offer mergefunc and branch-knob variants (VERIFY_OFFERS) of the shipped "
                        "verify order's first members and keep those verify mode's cover puts in its first K")
    p.add_argument("--verify-from", type=int, default=8,
                   help="with --verify: how many of the shipped verify order's members get variants")
    p.add_argument("--validate-limit", type=int, default=None,
                   help="validate on a subset of each suite (quick runs; such candidates are marked unvalidated)")
    add_eval_options(p)
    p.set_defaults(func=_cmd_select)
