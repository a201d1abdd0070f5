"""The default back end's decision: `clang-llm-data best-fixed [--write]`.

Per flag set (clang_llm.sizes.FLAG_SETS: the module as captured, unwind tables
on; and without them), the validated candidate with the best geomean image ratio
(the bytes a module adds to the linked program) on the label table's training
split becomes the default (candidates.tsv's best_fixed, best_fixed_no_unwind),
among candidates whose RAM summed over the training modules exceeds -Oz's by
at most RAM_TOLERANCE (a top-1 choice cannot check RAM per module, verify mode
does; a rule of no growth at all would exclude four candidates in five for the
8-byte GOT slot of one library call each adds on one module, while a table
moved to .data costs far more than the tolerance); and a greedy cover
of the same labels, where a candidate that needs more RAM counts as -Oz, becomes
verify mode's order. A consumer of the label table and of model's scoring rules,
so it sits above both: labels (the table) <- model (the scores) <- best_fixed.
"""

from __future__ import annotations

import sys

from .labels import add_table_options
from .model import coverage_order, fixed_ranking, load_labels

# The default may need this share more RAM than -Oz over the training modules:
# 0.1%, about 490 bytes of the 260 training modules' 492 KB, a few GOT slots.
RAM_TOLERANCE = 0.001


def choose(lab, validated: list[str]) -> dict:
    """The default and verify order of one flag set's labels, with the figures
    behind them."""
    import numpy as np

    train = lab.scored("train", [j for j, n in enumerate(lab.candidates) if n in validated])
    growth = lab.ram_growth(train)
    total = np.zeros(len(lab.candidates))
    if lab.ram is not None:
        ram = lab.ram[train]
        # A failed evaluation falls back to -Oz, and so does its RAM.
        total = np.where(np.isnan(ram), ram[:, :1], ram).sum(axis=0)
    more_ram = {n for j, n in enumerate(lab.candidates) if n in validated and total[j] > total[0] * (1 + RAM_TOLERANCE)}
    order, score, used = fixed_ranking(lab, [n for n in validated if n not in more_ram])
    verify, after, covered = coverage_order(lab, validated)
    return {"order": [lab.candidates[j] for j in order], "score": score, "used": used,
            "more_ram": {n: int(total[j] - total[0]) for j, n in enumerate(lab.candidates) if n in more_ram},
            "ram_growth": {n: int(growth[j]) for j, n in enumerate(lab.candidates) if n in validated and growth[j]},
            "verify": [lab.candidates[j] for j in verify], "after": after, "covered": covered}


def _cmd(args) -> int:
    from .. import pipelines, sizes

    validated = pipelines.usable_names()
    for flag_set in args.flag_sets:
        try:
            lab = load_labels(args.labels, flag_set)
        except ValueError as e:
            print(f"clang-llm-data best-fixed: {e}", file=sys.stderr)
            return 2
        got = choose(lab, validated)
        if not got["used"]:
            print("clang-llm-data best-fixed: no training modules with every candidate measured", file=sys.stderr)
            return 2
        print(f"## {flag_set} ({sizes.FLAG_SETS[flag_set]})")
        for n in got["order"][:12]:
            print(f"{n:40} {got['score'][n]:.5f}")
        if got["more_ram"]:
            print(f"not a default (over {RAM_TOLERANCE:.1%} more RAM than -Oz summed over the training modules, bytes): "
                  + ", ".join(f"{n} (+{k})" for n, k in sorted(got["more_ram"].items(), key=lambda x: -x[1])[:12]))
        best = got["order"][0]
        print(f"best fixed on {got['used']} training modules: {best} (more RAM than -Oz on "
              f"{got['ram_growth'].get(best, 0)} of them)")
        print(f"verify order on {got['covered']} training modules (geomean of the smallest of -Oz and the first k): "
              + ", ".join(f"{n} {r:.5f}" for n, r in list(zip(got["verify"], got["after"]))[:8]) + ", ...")
        if args.write:
            out = pipelines.set_best_fixed(best, {
                "chosen_on": f"labels.parquet training split, flag set {flag_set}, {got['used']} modules, "
                             f"image bytes, at most {RAM_TOLERANCE:.1%} more RAM than -Oz summed over them",
                "geomean_ratio": round(got["score"][best], 6),
                "command": "clang-llm-data best-fixed --write",
                "verify_order": {"chosen_on": f"labels.parquet training split, flag set {flag_set}, "
                                              f"{got['covered']} modules",
                                 "geomean_after": [round(r, 6) for r in got["after"][:8]]}},
                got["verify"], flag_set)
            print(f"wrote {out}")
    return 0


def register(sub) -> None:
    from .. import sizes

    b = sub.add_parser("best-fixed", help="the validated candidate best on the label table's training split")
    add_table_options(b, modules=False)
    b.add_argument("--flag-sets", nargs="+", choices=list(sizes.FLAG_SETS), default=list(sizes.FLAG_SETS))
    b.add_argument("--write", action="store_true", help="make it the default (best_fixed in candidates.tsv)")
    b.set_defaults(func=_cmd)
