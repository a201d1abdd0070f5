#!/usr/bin/env python3
"""What the candidate set can do under the image metric, per flag set and split.

    python bench/image_limits.py [--labels FILE] [--out bench/results/image_limits]

From the label table (clang_llm.train.labels: every labelled module's image bytes,
RAM and .text under every validated candidate, with unwind tables and without),
per flag set (clang_llm.sizes.FLAG_SETS) and split, against -Oz on the same
modules:

- the flag set's default (candidates.tsv's best_fixed / best_fixed_no_unwind):
  what top-1 -Oz-llm gets;
- verify mode with k = 1, 2, 4, 8 along the flag set's verify order: the smallest
  image among -Oz and the first k that need no more RAM than -Oz;
- the oracle of every validated candidate under the same rule: the limit of any
  policy that picks from this set;
- the same 8 candidates chosen by .text instead (the old objective), scored by
  image: what optimising .text does to the bytes users ship;
- with --search RUN (a `clang-llm-data search --from-set` run on training or
  validation modules, never the test split): how much smaller a per-module search
  gets than the set's own oracle on the same modules, i.e. what the pipeline
  space holds that the candidate set misses.

Ratios are geomeans over modules with code; "total" is the summed image bytes.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))
sys.path.insert(0, str(HERE))

from build_bench import machine_info  # noqa: E402


def limits(lab, flag_set: str, split: str) -> dict | None:
    import numpy as np

    from clang_llm import pipelines
    from clang_llm.train import model as M

    usable = pipelines.usable_indices()
    rows = [i for i in lab.scored(split, usable) if lab.size[i, 0] > 0]
    if not rows:
        return None
    size, vsize = lab.size[rows], lab.verify_size()[rows]
    col = {n: j for j, n in enumerate(lab.candidates)}
    default = col[pipelines.best_fixed(flag_set).name]
    order = [col[c.name] for c in pipelines.verify_order(flag_set) if c.name in col][:8]
    out = {"modules": len(rows), "default": pipelines.best_fixed(flag_set).name,
           "top1_default": M.score(size, size[:, default]),
           "ram_larger_default": int((lab.ram[rows][:, default] > lab.ram[rows][:, 0]).sum())
           if lab.ram is not None else None}
    for k in (1, 2, 4, 8):
        # -Oz first: verify mode measures it besides the k, even for k = 1.
        out[f"verify_k{k}"] = M.score(size, M.choose_sizes(vsize, [[0, *order]] * len(rows), k + 1))
    best = np.nanmin(np.nan_to_num(vsize[:, usable], nan=np.inf), axis=1)
    out["oracle"] = M.score(size, np.minimum(best, vsize[:, 0]))
    if lab.text is not None:
        text = lab.text[rows]
        pick = np.nanargmin(np.nan_to_num(text[:, [0, *order]], nan=np.inf), axis=1)
        by_text = np.array([size[i, [0, *order][p]] for i, p in enumerate(pick)])
        out["by_text_among_8"] = M.score(size, by_text)
    return out


def search_limit(name: str) -> dict:
    """A search run's per-module best against the set's oracle (its seeds) on
    the same modules, both against -Oz: geomean and total ratios."""
    import math

    from clang_llm.train import search

    run = search.load_summary(name)
    if run.get("split") == "test":
        raise SystemExit(f"search run {name} searched the test split")
    rows = [r for r in run["rows"] if r["oz_text"] and r["oz_text"] > 0 and math.isfinite(r["best_text"])]

    def ratios(key):
        return {"geomean": math.exp(sum(math.log(r[key] / r["oz_text"]) for r in rows) / len(rows)),
                "total": sum(r[key] for r in rows) / sum(r["oz_text"] for r in rows)}

    return {"name": name, "split": run["split"], "modules": len(rows), "budget": run["budget"],
            "set_oracle": ratios("seed_best_text"), "search_best": ratios("best_text")}


def markdown(rep: dict) -> str:
    from clang_llm import sizes

    def pct(x):
        return f"{(x - 1) * 100:+.2f}%"

    lines = ["# What the candidate set can do under the image metric", "",
             f"{rep['date']}, {rep['machine']['cpu']}, {rep['machine']['cores']} cores, commit "
             f"{rep['machine']['commit']}. Label table: `{rep['labels']}`. Image bytes against -Oz per module "
             "(geomean over modules with code; total: summed bytes); a candidate that needs more RAM than -Oz "
             "counts as -Oz in verify mode and the oracle.", ""]
    for fs, per in rep["flag_sets"].items():
        lines += [f"## {fs}: {sizes.FLAG_SETS[fs]}", "",
                  "| split | modules | default (top-1) | larger | verify k=1 | k=2 | k=4 | k=8 | oracle "
                  "| by .text among the 8 |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for split, r in per.items():
            if r is None:
                continue
            cell = lambda k: f"{pct(r[k]['geomean_ratio'])} ({pct(1 - r[k]['total_reduction'])})"  # noqa: E731
            lines.append(f"| {split} | {r['modules']} | {cell('top1_default')} | "
                         f"{r['top1_default']['regressed'] * 100:.1f}% | {cell('verify_k1')} | {cell('verify_k2')} | "
                         f"{cell('verify_k4')} | {cell('verify_k8')} | {cell('oracle')} | "
                         f"{cell('by_text_among_8') if 'by_text_among_8' in r else ''} |")
        lines += ["", f"Default: `{next(iter(per.values()))['default']}`. Each cell: geomean (total).", ""]
    for run in rep.get("searches", []):
        lines += [f"Per-module search `{run['name']}` ({run['split']} split, {run['modules']} modules, "
                  f"{run['budget']} evaluations each beyond the set, unwind tables on): the set's oracle "
                  f"{pct(run['set_oracle']['geomean'])} ({pct(run['set_oracle']['total'])}), the search's best "
                  f"{pct(run['search_best']['geomean'])} ({pct(run['search_best']['total'])}) against -Oz, "
                  "geomean (total); each module's best is taken as found, without the correctness gate.", ""]
    lines.append(f"Command: `{rep['command']}`.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", type=Path, help="label table (default: the committed labels.parquet)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "image_limits")
    ap.add_argument("--search", nargs="+", default=[], metavar="RUN",
                    help="search runs (--from-set) whose per-module best to set against the set's oracle")
    args = ap.parse_args(argv)

    from clang_llm import sizes
    from clang_llm.train import committed_dir
    from clang_llm.train import model as M

    rep = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
           "labels": str(args.labels or (committed_dir() / "labels.parquet").relative_to(HERE.parent)),
           "command": " ".join(["python", "bench/image_limits.py", *(argv if argv is not None else sys.argv[1:])]),
           "flag_sets": {}}
    for fs in sizes.FLAG_SETS:
        lab = M.load_labels(args.labels, fs)
        rep["flag_sets"][fs] = {split: limits(lab, fs, split) for split in ("train", "validation", "test")}
    rep["searches"] = [search_limit(name) for name in args.search]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
