"""The default back end's decision: `clang-llm-data best-fixed [--write]`.

The validated candidate with the best geomean .text ratio on the label table's
training split becomes the default (candidates.tsv's best_fixed), and a greedy
cover of the same labels becomes verify mode's order. A consumer of the label
table and of model's scoring rules, so it sits above both: labels (the table)
<- model (the scores) <- best_fixed.
"""

from __future__ import annotations

import sys

from .labels import add_table_options
from .model import coverage_order, fixed_ranking, load_labels


def _cmd(args) -> int:
    """The default back end's pipeline: the validated candidate with the best
    geomean .text ratio on the label table's training split; and the order its
    verify mode measures candidates in (model.coverage_order)."""
    from .. import pipelines

    lab = load_labels(args.labels)
    validated = pipelines.usable_names()
    order, score, used = fixed_ranking(lab, validated)
    if not used:
        print("clang-llm-data best-fixed: no training modules with every candidate measured", file=sys.stderr)
        return 2
    for j in order:
        print(f"{lab.candidates[j]:36} {score[lab.candidates[j]]:.5f}")
    best = lab.candidates[order[0]]
    print(f"best fixed on {used} training modules: {best}")
    verify, after, covered = coverage_order(lab, validated)
    verify = [lab.candidates[j] for j in verify]
    print(f"verify order on {covered} training modules (geomean of the smallest of -Oz and the first k): "
          + ", ".join(f"{n} {r:.5f}" for n, r in list(zip(verify, after))[:8]) + ", ...")
    if args.write:
        out = pipelines.set_best_fixed(best, {
            "chosen_on": f"labels.parquet training split, {used} modules",
            "geomean_ratio": round(score[best], 6), "command": "clang-llm-data best-fixed --write",
            "verify_order": {"chosen_on": f"labels.parquet training split, {covered} modules",
                             "geomean_after": [round(r, 6) for r in after[:8]]}}, verify)
        print(f"wrote {out}")
    return 0


def register(sub) -> None:
    b = sub.add_parser("best-fixed", help="the validated candidate best on the label table's training split")
    add_table_options(b, modules=False)
    b.add_argument("--write", action="store_true", help="make it the default (best_fixed in candidates.tsv)")
    b.set_defaults(func=_cmd)
