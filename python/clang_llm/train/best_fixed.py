"""The default back end's decision: `clang-llm-data best-fixed [--write]`.

Per flag set (clang_llm.sizes.FLAG_SETS: the module as captured, unwind tables
on; and without them), the validated candidate with the best geomean image ratio
(the bytes a module adds to the linked program) on the label table's training
split becomes the default (candidates.tsv's best_fixed, best_fixed_no_unwind),
among candidates that never make a training module need more RAM than -Oz (a
top-1 choice cannot check RAM per module; verify mode does); and a greedy cover
of the same labels, where a candidate that needs more RAM counts as -Oz, becomes
verify mode's order. A consumer of the label table and of model's scoring rules,
so it sits above both: labels (the table) <- model (the scores) <- best_fixed.
"""

from __future__ import annotations

import sys

from .labels import add_table_options
from .model import coverage_order, fixed_ranking, load_labels


def choose(lab, validated: list[str]) -> dict:
    """The default and verify order of one flag set's labels, with the figures
    behind them."""
    train = lab.scored("train", [j for j, n in enumerate(lab.candidates) if n in validated])
    growth = lab.ram_growth(train)
    no_ram = [n for j, n in enumerate(lab.candidates) if n in validated and growth[j] == 0]
    order, score, used = fixed_ranking(lab, no_ram)
    verify, after, covered = coverage_order(lab, validated)
    return {"order": [lab.candidates[j] for j in order], "score": score, "used": used,
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
        if got["ram_growth"]:
            print("not a default (more RAM than -Oz on some training modules): "
                  + ", ".join(f"{n} ({k})" for n, k in sorted(got["ram_growth"].items(), key=lambda x: -x[1])[:12]))
        best = got["order"][0]
        print(f"best fixed on {got['used']} training modules: {best}")
        print(f"verify order on {got['covered']} training modules (geomean of the smallest of -Oz and the first k): "
              + ", ".join(f"{n} {r:.5f}" for n, r in list(zip(got["verify"], got["after"]))[:8]) + ", ...")
        if args.write:
            out = pipelines.set_best_fixed(best, {
                "chosen_on": f"labels.parquet training split, flag set {flag_set}, {got['used']} modules, "
                             "image bytes, no more RAM than -Oz on any of them",
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
