#!/usr/bin/env python3
"""The held-out evaluation of the shipped model, on the TEST split.

    python bench/model_eval.py [--labels FILE] [--modules DIR] [--model FILE]

Runs the model exactly as the policy does (clang_llm.ranker on each module's
textual IR, printed from its bitcode by clang_llm._core; for a model that reads
only module features, the committed feature table's vectors, which are what the
runtime computes, so no corpus is needed) and compares, against
-Oz measured in the same label table:

- best fixed: the shipped default (candidates.tsv's best_fixed) and the candidate
  with the best geomean on the training split of this table;
- best-fixed verify order, top-k: what verify mode measures without a model
  (the best-fixed back end's static verify_order, chosen for coverage);
- model top-1: the candidate the model ranks first;
- model verify top-k (k = 2, 4, 8): the smallest of -Oz and the first k of the
  model's verify order (its residual cover, clang_llm.ranker.verify_order; the k
  best predicted for a model without residuals), which is what -Oz-llm=verify
  keeps (exact: every candidate's size is in the table); beside it the k best
  predicted, for comparison;
- oracle of K: the smallest candidate per module (the ceiling of any ranking).

Per module (geomean of image ratios (clang_llm.sizes; flag set: unwind tables on) over modules
with code, total image bytes, share
of modules improved / regressed) and per package: the label table has no linked
programs, so each package's total image bytes over its modules stand in for its
program (linking would add the same runtime and startup code to every policy).

A candidate whose evaluation failed counts as -Oz (the policy falls back).
Writes bench/results/model_eval.{json,md,png}.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def per_package(text, chosen, packages) -> dict:
    import numpy as np

    out = {}
    for p in sorted(set(packages)):
        idx = [i for i, q in enumerate(packages) if q == p]
        oz = float(text[idx, 0].sum())
        out[p] = {"modules": len(idx), "oz": int(oz), "chosen": int(chosen[idx].sum()),
                  "ratio": float(chosen[idx].sum() / oz) if oz else 1.0}
    ratios = [v["ratio"] for v in out.values() if v["oz"] > 0]
    return {"packages": out,
            "geomean_ratio": float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0,
            "improved": sum(v["chosen"] < v["oz"] for v in out.values()),
            "regressed": sum(v["chosen"] > v["oz"] for v in out.values())}


def main(argv=None) -> int:
    from clang_llm.train import labels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    labels.add_evaluation_options(ap, HERE / "results" / "model_eval")
    args = ap.parse_args(argv)

    import numpy as np
    from tqdm import tqdm

    from clang_llm import _core, pipelines, ranker
    from clang_llm.train import model as M

    r = ranker.get(args.model)
    lab = M.load_labels(args.labels)
    rows, missing = M.rows_with_bitcode(lab, args.split, args.modules)
    table = {}
    if r.inputs == ["features"]:
        # A feature-only model reads nothing of a module but its runtime feature
        # vector, which the committed table holds: no corpus needed for those.
        table = M.read_feature_table()
        rows, missing = sorted(rows + [i for i in missing if lab.modules[i] in table]), \
            [i for i in missing if lab.modules[i] not in table]
    if missing:
        print(f"model_eval: {len(missing)} {args.split} modules have neither bitcode here nor a row in the "
              "feature table; left out", file=sys.stderr)
    scored = set(lab.scored(args.split))
    unmeasured = [i for i in rows if i not in scored]
    if unmeasured:
        # An extended table may lack the newer candidates where no bitcode was at hand.
        print(f"model_eval: {len(unmeasured)} {args.split} modules lack some candidate's evaluation; left out",
              file=sys.stderr)
        rows = [i for i in rows if i in scored]
    if not rows:
        print(f"model_eval: no {args.split} modules in {lab.source}", file=sys.stderr)
        return 2
    text = lab.size[rows]
    packages = [lab.package[i] for i in rows]
    t0 = time.time()
    pred = np.zeros_like(text)
    pool = None
    outside = np.zeros(len(rows), dtype=bool)  # features outside the model's training range
    for n, i in enumerate(tqdm(rows, desc="predict", file=sys.stderr)):
        h = lab.modules[i]
        if h in table:
            feed = {"features": table[h]}
        else:
            path = M._module_path(args.modules, h)
            feed = r.feeds(_core.LoadedModule(path.read_bytes(), path.name).ir_text())
        pred[n], pool = r.predict_feed(feed, residuals=True)
        outside[n] = r.outside(feed) is not None
    order = M.order_from_predictions(r.ranking_scores(pred, outside))
    # The order the best-fixed back end hands verify mode (candidates.tsv's verify_order).
    static_row = [lab.candidates.index(c.name) for c in pipelines.verify_order()]
    # What verify mode measures under the model: its residual cover (ranker.verify_order),
    # the static order where the module is outside the model's training range.
    cover = M.static_where_outside(M.verify_orders(pred, pool), outside, static_row)

    y = M.targets(lab.size)
    trained_best = M.fixed_ranking(lab, pipelines.usable_names())[0][0]
    shipped_best = lab.candidates.index(pipelines.best_fixed().name)

    static = np.tile(static_row, (len(rows), 1))

    def fixed(j):
        return np.tile(np.array([j] + [k for k in range(len(lab.candidates)) if k != j]), (len(rows), 1))

    policies = {
        f"best fixed, shipped default ({lab.candidates[shipped_best]})": M.choose_sizes(text, fixed(shipped_best)),
        f"best fixed on training labels ({lab.candidates[trained_best]})": M.choose_sizes(text, fixed(trained_best)),
        **{f"best-fixed verify order, top-{k}": M.choose_sizes(text, static, k) for k in (2, 4, 8)},
        "model top-1": M.choose_sizes(text, order),
        **({"model top-1, predictions alone (no preference for the default)":
            M.choose_sizes(text, M.order_from_predictions(pred))} if r.prefer else {}),
        **{f"model verify top-{k}": M.choose_sizes(text, cover, k) for k in (2, 4, 8)},
        **({f"model verify top-{k}, k best predicted": M.choose_sizes(text, order, k) for k in (2, 4, 8)}
           if pool is not None else {}),
        f"oracle of the {len(pipelines.usable_names())} validated candidates": M.choose_sizes(
            text, M.usable_first(np.argsort(np.nan_to_num(text, nan=math.inf), axis=1, kind="stable"))),
    }
    results = {name: {"modules": M.score(text, chosen), "programs": per_package(text, chosen, packages)}
               for name, chosen in policies.items()}
    known = ~np.isnan(y[rows])
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/model_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "labels": lab.source, "split": args.split, "modules": len(rows), "packages": len(set(packages)),
        "left_out_without_bitcode": len(missing), "left_out_unmeasured": len(unmeasured),
        "from_feature_table": sum(lab.modules[i] in table for i in rows),
        "model": r.path, "model_meta": {k: v for k, v in r.meta.items() if k not in ("candidates",)},
        "prediction_mae_log_ratio": float(np.abs(pred - y[rows])[known].mean()),
        "top1_is_oracle": float(np.mean([text[n, order[n, 0]] == np.nanmin(text[n]) for n in range(len(rows))])),
        # Where the model overrides the default at all (its preference keeps it unless a gain is predicted).
        "top1_not_default": int(np.sum(order[:, 0] != shipped_best)),
        # Where top-1 kept the default because the model would extrapolate.
        "outside_training_range": int(outside.sum()),
        # Which candidates it picks instead: near relatives of the default, or other pipelines.
        "top1_choices": dict(collections.Counter(lab.candidates[j] for j in order[:, 0]).most_common()),
        "seconds": round(time.time() - t0, 1),
        "results": results,
        "program_note": "no linked programs in the label table: per package, the total image bytes of its labelled "
                        "modules stands in (bench/program_sizes.py builds and links the test packages)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")

    md = [
        f"# Model evaluation ({args.split} split, held out)", "",
        f"{len(rows)} modules from {len(set(packages))} packages of `{lab.source}`"
        + (f" ({len(missing)} with neither bitcode nor a feature-table row left out)" if missing else "")
        + (f" ({len(unmeasured)} not measured under every candidate left out)" if unmeasured else "")
        + f"; model `{r.path}` "
        f"(variant {r.meta.get('variant', '?')}, inputs {r.meta.get('inputs')}). Sizes are image bytes (what a "
        "module adds to a linked program, unwind tables on) measured with clang -Oz's code generator; ratios "
        "are policy / -Oz (lower is better).", "",
        "## Per module", "",
        "| policy | geomean ratio | total reduction | improved | regressed |", "| --- | --- | --- | --- | --- |",
    ]
    for name, res in results.items():
        s = res["modules"]
        md.append(f"| {name} | {s['geomean_ratio']:.5f} | {s['total_reduction']:+.3%} | {s['improved']:.1%} | "
                  f"{s['regressed']:.1%} |")
    md += ["", "## Per package (total of its labelled modules; linked programs: `bench/program_sizes.py`)", "",
           "| policy | geomean of package ratios | packages improved | packages regressed |", "| --- | --- | --- | --- |"]
    for name, res in results.items():
        p = res["programs"]
        md.append(f"| {name} | {p['geomean_ratio']:.5f} | {p['improved']} | {p['regressed']} |")
    md += ["", f"Prediction error (mean |predicted - measured| of log(size_c / size_oz)): "
               f"{report['prediction_mae_log_ratio']:.4f}; top-1 is a per-module best candidate in "
               f"{report['top1_is_oracle']:.1%} of modules; top-1 is not the shipped default on "
               f"{report['top1_not_default']} of {len(rows)} modules; {report['outside_training_range']} modules "
               "have features outside the model's training range, where top-1 keeps the default.", "",
           "Top-1 picks: " + ", ".join(f"`{c}` {n}" for c, n in report["top1_choices"].items()) + ".", "",
           f"![per-module ratios]({args.out.with_suffix('.png').name})", "",
           f"Command: `{report['command']}` ({report['date']})."]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    plot(policies, text, args.out.with_suffix(".png"))
    print("\n".join(md))
    return 0


def plot(policies: dict, text, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    code = text[:, 0] > 0
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = list(policies)
    geo = [float(np.exp(np.mean(np.log(np.maximum(policies[n][code], 1e-9) / text[code, 0])))) for n in names]
    a.barh(range(len(names)), [(1 - g) * 100 for g in geo], color="tab:blue")
    a.set_yticks(range(len(names)), [n if len(n) < 40 else n[:37] + "..." for n in names], fontsize=8)
    a.invert_yaxis()
    a.set_xlabel("geomean image reduction vs -Oz (%)")
    a.axvline(0, color="black", linewidth=0.8)
    for name in names:
        r = np.sort(policies[name][code] / text[code, 0])
        b.plot(r, np.arange(1, len(r) + 1) / len(r), label=name if len(name) < 40 else name[:37] + "...")
    b.set_xlim(0.85, 1.1)
    b.axvline(1.0, color="black", linewidth=0.8)
    b.set_xlabel("per-module image ratio vs -Oz")
    b.set_ylabel("share of modules (CDF)")
    b.legend(fontsize=7)
    fig.suptitle("clang-llm policy vs -Oz on held-out modules")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
