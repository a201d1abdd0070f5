#!/usr/bin/env python3
"""Where top-1 stops: measurements behind the README's "why top-1 stays level
with the default", from the committed label and feature tables (no corpus).

    python bench/top1_limits.py [--quick]

1. Out of fold on the training split (the package folds `train` uses, so each
   training package is predicted by models that never saw it), top-1 of other
   formulations of the shipped LightGBM against the best fixed pipeline:
   per-candidate log ratio to -Oz (as shipped), targets relative to the default,
   one binary classifier per candidate ("smaller than the default by 0.5%"),
   packages weighted equally in the fit, and ranking only the first 8 / 4
   candidates of the static cover; the regressors with and without a
   preference margin for the default.
2. Package favourites: the best candidate of each package chosen on that
   package's own modules (in sample: an upper bound), and chosen on a random half
   and scored on the other half, against the default and the oracle.
3. IR instruction count as a stand-in for measuring in verify mode: among -Oz
   and the first k of the cover, the fewest IR instructions after the pipeline,
   against the smallest measured .text.
4. Where the gap lies: the default everywhere except on modules of at most N
   IR instructions (as the policy sees them), which verify mode's top-4
   measures, per module (geomean) and in bytes (total .text). The per-module
   target weighs a 50-byte module as much as a 50 KB one.
5. Size classes: the best fixed candidate of each class of module size (IR
   instructions), chosen on the training split, as a rule for every split.
6. A perfect guard: the default, and -Oz exactly where the default is larger
   (a bound on what avoiding regressions could add to top-1).

Writes bench/results/top1_limits.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from clang_llm import pipelines, ranker  # noqa: E402
from clang_llm.train import labels as labels_mod, model as M  # noqa: E402

MARGINS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
CLASS_GAIN = 0.005  # log ratio: "smaller than the default by about 0.5%"


def geomean_change(text, chosen) -> float:
    return M.score(text, chosen)["geomean_ratio"] - 1.0


def package_change(text, chosen, packages) -> float:
    """Geomean over packages of each package's geomean: every held-out package
    counts once, however many modules it has (ffmpeg alone holds 14% of the
    training modules)."""
    ok = text[:, 0] > 0
    logs = np.log(chosen[ok] / text[ok, 0])
    pk = np.asarray(packages)[ok]
    return float(np.expm1(np.mean([logs[pk == p].mean() for p in sorted(set(pk))])))


def fit_predict(feats, y, train, columns, dflt, mode, seed=0, packages=None):
    import lightgbm as lgb

    pred = np.zeros_like(y)
    size = Counter(packages[i] for i in train) if mode == "balanced" else {}
    for j in columns:
        if mode == "classify" and j == dflt:
            continue
        rows = [i for i in train if not np.isnan(y[i, j]) and not np.isnan(y[i, dflt])]
        target = y[rows, j]
        params = M.lgbm_params(seed)
        if mode in ("relative", "classify") and j != dflt:
            target = target - y[rows, dflt]
        if mode == "classify":
            target = (target < -CLASS_GAIN).astype(float)
            params["objective"] = "binary"
            del params["alpha"]
        # "balanced": every package weighs as much as any other in the fit, as
        # the held-out packages do when scored per package.
        weight = np.array([1.0 / size[packages[i]] for i in rows]) if mode == "balanced" else None
        booster = lgb.train(params, lgb.Dataset(feats[rows], target, weight=weight), num_boost_round=M.LGBM_ROUNDS)
        pred[:, j] = booster.predict(feats)
    if mode == "relative":
        for j in columns:
            if j != dflt:
                pred[:, j] += pred[:, dflt]  # only differences matter to the ranking
    return pred


def formulations(lab, data, dflt, usable, cover, quick):
    feats, y = data["feats"], data["y"]
    runs = {"as shipped (log ratio to -Oz)": ("absolute", usable),
            "relative to the default": ("relative", usable),
            "classifiers: beats the default by 0.5%": ("classify", usable),
            "packages weighted equally in the fit": ("balanced", usable),
            "first 8 of the cover only": ("absolute", sorted(set(cover[:8]) | {dflt})),
            "first 4 of the cover only": ("absolute", sorted(set(cover[:4]) | {dflt}))}
    if quick:
        runs = dict(list(runs.items())[:1])
    train = np.array(lab.scored("train"))
    text = lab.size[train]
    pkgs = [lab.package[i] for i in train]
    out = {"best fixed": geomean_change(text, text[:, dflt])}
    balanced = {"best fixed": package_change(text, text[:, dflt], pkgs)}
    for name, (mode, columns) in runs.items():
        t0 = time.time()
        oof = np.zeros_like(y)
        for flab in M.package_folds(lab, M.RESIDUAL_FOLDS, 0):
            held = np.array(flab.rows("held-out"))
            oof[held] = fit_predict(feats, y, flab.rows("train"), columns, dflt, mode, packages=lab.package)[held]
        p = oof[train]
        idx = np.arange(len(train))
        if mode == "classify":
            q = np.full_like(p, -1.0)
            q[:, [j for j in columns if j != dflt]] = p[:, [j for j in columns if j != dflt]]
            picks = {f"threshold {t}": np.where(q.max(1) > t, q.argmax(1), dflt) for t in THRESHOLDS}
        else:
            masked = np.full_like(p, np.inf)
            masked[:, columns] = p[:, columns]
            picks = {f"margin {m}": ranker.lowered(masked, dflt, m).argmin(1) for m in MARGINS}
        res = {k: geomean_change(text, text[idx, j]) for k, j in picks.items()}
        balanced[name] = {k: package_change(text, text[idx, j], pkgs) for k, j in picks.items()}
        out[name] = res
        print(f"{name}: {min(res.values()):+.4%} at best ({time.time() - t0:.0f} s)", file=sys.stderr)
    return out, balanced


def code_rows(lab, split: str, ins: dict | None = None) -> list[int]:
    """The split's scored modules that have code under -Oz (the ratios' base),
    and, given ins (ir_instructions()), only those with an instruction count."""
    return [i for i in lab.scored(split) if lab.size[i, 0] > 0 and (ins is None or lab.modules[i] in ins)]


def favourites(lab, dflt, usable, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "validation", "test"):
        rows = code_rows(lab, split)
        y = np.nan_to_num(np.log(lab.size[rows][:, usable] / lab.size[rows][:, :1]), nan=0.0)
        pkg = np.array([lab.package[i] for i in rows])
        d = usable.index(dflt)
        in_sample = sum(y[pkg == p].mean(0).min() * (pkg == p).sum() for p in set(pkg)) / len(rows)
        halves = []
        for _ in range(20):
            scored = []
            for p in sorted(set(pkg)):
                idx = np.flatnonzero(pkg == p)
                rng.shuffle(idx)
                a, b = idx[: len(idx) // 2], idx[len(idx) // 2:]
                j = int(y[a].mean(0).argmin()) if len(a) else d
                scored.append(y[b, j])
            halves.append(np.concatenate(scored).mean())
        out[split] = {"modules": len(rows), "packages": len(set(pkg)), "default": float(np.expm1(y[:, d].mean())),
                      "package_best_in_sample": float(np.expm1(in_sample)),
                      "package_best_from_half": float(np.expm1(np.mean(halves))),
                      "oracle": float(np.expm1(y.min(1).mean()))}
    return out


def ir_proxy(lab, cover):
    table = labels_mod.read(None).select(["module", "candidate", "ir_instructions"]).to_pydict()
    row = {h: i for i, h in enumerate(lab.modules)}
    col = {c: j for j, c in enumerate(lab.candidates)}
    ir = np.full(lab.size.shape, np.nan)
    for h, c, n in zip(table["module"], table["candidate"], table["ir_instructions"]):
        if h in row and c in col and n is not None:
            ir[row[h], col[c]] = n
    out = {}
    for split in ("validation", "test"):
        rows = code_rows(lab, split)
        t, n = np.nan_to_num(lab.size[rows], nan=np.inf), np.nan_to_num(ir[rows], nan=np.inf)
        t[np.isinf(t)] = np.repeat(t[:, :1], t.shape[1], axis=1)[np.isinf(t)]  # failed: -Oz
        idx = np.arange(len(rows))
        out[split] = {}
        for k in (2, 4, 8):
            cands = [0] + cover[:k]
            measured = t[:, cands].min(1)
            by_ir = t[idx, np.array(cands)[n[:, cands].argmin(1)]]
            out[split][f"k{k}"] = {"measured": geomean_change(t, measured), "by_ir": geomean_change(t, by_ir),
                                   "by_ir_regressed": float((by_ir > t[:, 0]).mean())}
    return out


SMALL = (100, 200, 400, 800)


def ir_instructions() -> dict[str, float]:
    """Each labelled module's IR instruction count as the policy sees it (the
    feature table holds log1p)."""
    import pyarrow.parquet as pq

    ft = pq.read_table(M.FEATURE_TABLE, columns=["module", "instructions"]).to_pydict()
    return dict(zip(ft["module"], np.expm1(ft["instructions"])))


def small_modules(lab, dflt, cover, ins, k=4):
    """Per split and threshold N: the default, except verify top-k (-Oz and the
    first k of the cover, the smallest measured) on modules of at most N IR
    instructions (ins: ir_instructions()): geomean and total .text against -Oz,
    modules regressed, and the small modules' share of modules and of -Oz .text."""
    out = {}
    for split in ("validation", "test"):
        rows = code_rows(lab, split, ins)
        t = lab.size[rows]
        oz = t[:, 0]
        top1 = M.choose_sizes(t, [[dflt]] * len(rows))
        verify = M.choose_sizes(t, [cover] * len(rows), k)
        n = np.array([ins[lab.modules[i]] for i in rows])
        out[split] = {"modules": len(rows)}
        for thr in (0,) + SMALL:
            small = n <= thr
            s = M.score(t, np.where(small, verify, top1))
            out[split][str(thr)] = {"geomean": s["geomean_ratio"] - 1, "total": -s["total_reduction"],
                                    "regressed": s["regressed"], "module_share": float(small.mean()),
                                    "oz_text_share": float(oz[small].sum() / oz.sum())}
    return out


def perfect_guard(lab, dflt):
    """Per split: the default, and -Oz exactly where the default is larger. No
    guard that decides before measuring can do better, so this bounds what
    avoiding regressions alone could add to top-1."""
    out = {}
    for split in ("train", "validation", "test"):
        t = lab.size[code_rows(lab, split)]
        default, guarded = M.score(t, t[:, dflt]), M.score(t, np.minimum(t[:, dflt], t[:, 0]))
        out[split] = {"modules": len(t), "default": default["geomean_ratio"] - 1,
                      "guarded": guarded["geomean_ratio"] - 1, "default_total": -default["total_reduction"],
                      "guarded_total": -guarded["total_reduction"], "default_regressed": default["regressed"]}
    return out


SIZE_CLASSES = (50, 100, 200, 400, 800, 1600)


def size_classes(lab, dflt, usable, ins):
    """The best fixed candidate per class of IR instruction count (ins:
    ir_instructions()), chosen on the training split: its pick and the default
    per class and split, and the rule (each module gets its class's pick)
    against the default, per split."""
    edges = (0,) + SIZE_CLASSES + (np.inf,)
    rows = {s: code_rows(lab, s, ins) for s in ("train", "validation", "test")}
    logs = {s: np.log(lab.size[r][:, usable] / lab.size[r][:, :1]) for s, r in rows.items()}
    size = {s: np.array([ins[lab.modules[i]] for i in r]) for s, r in rows.items()}
    d = usable.index(dflt)
    classes, rule = [], {s: np.zeros(len(r)) for s, r in rows.items()}
    for lo, hi in zip(edges, edges[1:]):
        inside = {s: (size[s] > lo) & (size[s] <= hi) for s in rows}
        # A class with no training module has nothing to choose on: it keeps the
        # default (nanmean of an empty slice would pick column 0 silently).
        pick = int(np.nanmean(logs["train"][inside["train"]], 0).argmin()) if inside["train"].any() else d
        row = {"from": lo, "to": None if np.isinf(hi) else hi, "pick": lab.candidates[usable[pick]]}
        for s in rows:
            y = logs[s][inside[s]]
            rule[s][inside[s]] = y[:, pick]
            row[s] = {"modules": int(inside[s].sum()), "default": float(np.expm1(y[:, d].mean())) if len(y) else None,
                      "pick": float(np.expm1(y[:, pick].mean())) if len(y) else None,
                      "default_regressed": float((y[:, d] > 0).mean()) if len(y) else None}
        classes.append(row)
    return {"classes": classes, "rule": {s: float(np.expm1(rule[s].mean())) for s in rows},
            "default": {s: float(np.expm1(logs[s][:, d].mean())) for s in rows}}


def formulation_table(results: dict) -> list[str]:
    """Markdown rows: each formulation's best setting, then all of them."""
    lines = ["| formulation | best | all |", "| --- | ---: | --- |"]
    for name, res in results.items():
        if isinstance(res, float):
            lines.append(f"| {name} | {res:+.3%} | |")
        else:
            best = min(res, key=res.get)
            lines.append(f"| {name} | {res[best]:+.3%} ({best}) | "
                         + ", ".join(f"{k}: {v:+.3%}" for k, v in res.items()) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the shipped formulation (for a smoke run)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "top1_limits")
    args = ap.parse_args(argv)
    lab = M.load_labels(None)
    lab, data, _, _ = M.prepare_token_free(lab, argparse.Namespace(modules=None, features=None, quiet=True,
                                                                   allow_missing=True))
    usable = [j for j in pipelines.usable_indices() if j != 0]
    dflt = lab.candidates.index(pipelines.best_fixed().name)
    cover = M.coverage_order(lab, [lab.candidates[j] for j in usable])[0]
    ins = ir_instructions()
    by_module, by_package = formulations(lab, data, dflt, usable, cover, args.quick)
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python bench/top1_limits.py" + (" --quick" if args.quick else ""),
              "default": lab.candidates[dflt], "training_modules_scored": len(lab.scored("train")),
              "out_of_fold": by_module, "out_of_fold_per_package": by_package,
              "package_favourites": favourites(lab, dflt, [0] + usable),
              "ir_proxy": ir_proxy(lab, cover), "small_modules": small_modules(lab, dflt, cover, ins),
              "size_classes": size_classes(lab, dflt, usable, ins), "perfect_guard": perfect_guard(lab, dflt)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Where top-1 stops", "", f"Default `{report['default']}`; `{report['command']}` ({report['date']}).", "",
             f"## Out-of-fold top-1, {report['training_modules_scored']} training modules, "
             f"{M.RESIDUAL_FOLDS} package folds (geomean .text vs -Oz)", "",
             *formulation_table(report["out_of_fold"]),
             "", "The same, every held-out training package weighted once (geomean of package geomeans):", "",
             *formulation_table(report["out_of_fold_per_package"])]
    lines += ["", "## Package favourites (geomean .text vs -Oz)", "",
              "| split | modules / packages | default | package best, in sample | package best from half | oracle |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for split, v in report["package_favourites"].items():
        lines.append(f"| {split} | {v['modules']} / {v['packages']} | {v['default']:+.2%} | "
                     f"{v['package_best_in_sample']:+.2%} | {v['package_best_from_half']:+.2%} | {v['oracle']:+.2%} |")
    lines += ["", "## Verify by IR instruction count instead of measuring (-Oz and the first k of the cover)", "",
              "| split | k | measured | fewest IR instructions | larger than -Oz |", "| --- | --- | ---: | ---: | ---: |"]
    for split, ks in report["ir_proxy"].items():
        for k, v in ks.items():
            lines.append(f"| {split} | {k[1:]} | {v['measured']:+.2%} | {v['by_ir']:+.2%} | {v['by_ir_regressed']:.1%} |")
    lines += ["", "## The default, with verify top-4 on modules of at most N IR instructions", "",
              "| split | N | geomean | total .text | regressed | share of modules | share of -Oz .text |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for split, by_n in report["small_modules"].items():
        for thr, v in by_n.items():
            if thr != "modules":
                lines.append(f"| {split} | {thr if thr != '0' else '0 (the default alone)'} | {v['geomean']:+.2%} | "
                             f"{v['total']:+.2%} | {v['regressed']:.1%} | {v['module_share']:.1%} | "
                             f"{v['oz_text_share']:.1%} |")
    sc = report["size_classes"]
    lines += ["", "## The best fixed candidate per size class (IR instructions), chosen on training", "",
              "| class | pick | " + " | ".join(f"{s}: modules, default (regressed), pick" for s in sc["rule"]) + " |",
              "| --- | --- | " + " | ".join("---" for _ in sc["rule"]) + " |"]
    for c in sc["classes"]:
        cells = [f"{c[s]['modules']}, {c[s]['default']:+.2%} ({c[s]['default_regressed']:.1%}), {c[s]['pick']:+.2%}"
                 if c[s]["modules"] else "0"
                 for s in sc["rule"]]
        lines.append(f"| {c['from']}-{c['to'] or ''} | `{c['pick']}` | " + " | ".join(cells) + " |")
    lines.append("| all: the rule against the default | | "
                 + " | ".join(f"{sc['rule'][s]:+.3%} / {sc['default'][s]:+.3%}" for s in sc["rule"]) + " |")
    lines += ["", "## A perfect guard: the default, and -Oz exactly where the default is larger", "",
              "| split | modules | default: geomean, total, regressed | guarded: geomean, total |",
              "| --- | ---: | --- | --- |"]
    for split, v in report["perfect_guard"].items():
        lines.append(f"| {split} | {v['modules']} | {v['default']:+.2%}, {v['default_total']:+.2%}, "
                     f"{v['default_regressed']:.1%} | {v['guarded']:+.2%}, {v['guarded_total']:+.2%} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
