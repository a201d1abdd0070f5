#!/usr/bin/env python3
"""How many of the search's random pipelines survive the correctness gate's canaries.

    python bench/search_grammar.py [--n 30] [--seed 1000]

Random pipelines (passes.random_pipeline, each from its own seeded RNG) are run
through the gate's canary tests: the torture tests and csmith programs that some
pipeline has already failed (validate._canaries, from the gate's outcome cache,
so run the gate once first). A grammar that produces pipelines failing there
wastes the search's evaluations on winners selection must then throw away.
Writes bench/results/search_grammar.{json,md}.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="random pipelines")
    ap.add_argument("--seed", type=int, default=1000, help="pipeline i is drawn with random.Random(seed + i)")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "search_grammar")
    args = ap.parse_args(argv)

    from clang_llm.train import cpu_model
    from clang_llm.train import passes as P
    from clang_llm.train import validate as V

    canaries = V._canaries()
    if not canaries:
        sys.exit("no canaries yet: the gate has not failed any pipeline here (run `clang-llm-data select --write`)")
    rows, failing = [], collections.Counter()
    start = time.perf_counter()
    for i in range(args.n):
        text = P.random_pipeline(random.Random(args.seed + i))
        v = V.validate(text, False, only=canaries, jobs=args.jobs)
        failed = sorted(tid for fails in v.failures.values() for tid, _, _ in fails)
        failing.update(failed)
        if not v.ok and not failed:  # the smoke test: no test ran
            failed = ["(smoke) " + "; ".join(v.reasons)]
        rows.append({"seed": args.seed + i, "ok": v.ok, "failed": failed})
        print(f"{i}: {'ok' if v.ok else 'FAIL ' + ', '.join(failed)[:150]}", file=sys.stderr)
    passed = sum(r["ok"] for r in rows)
    rep = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": cpu_model(),
           "command": "python bench/search_grammar.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "canaries": len(canaries), "pipelines": args.n, "passed": passed,
           "seconds": round(time.perf_counter() - start, 1),
           "failing_tests": dict(failing.most_common()), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
    lines = [f"# Random search pipelines against the gate's canaries", "",
             f"{rep['date']}; {rep['machine']}.", "", f"Reproduce: `{rep['command'].strip()}`", "",
             f"{passed} of {args.n} random pipelines pass all {len(canaries)} canary tests "
             f"({rep['seconds']:.0f} s).", "", "| test | pipelines failing it |", "|---|---:|"]
    lines += [f"| {t} | {n} |" for t, n in failing.most_common()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"{passed}/{args.n} pass; wrote {args.out}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
