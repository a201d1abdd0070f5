#!/usr/bin/env python3
"""How long the onnx policy takes per module, on one core.

    python bench/policy_speed.py [--labels FILE] [--modules DIR] [--model FILE] [--split test]

For every module of the split (from the label table; bitcode from --modules or
the corpus), as the plugin would: print the module to text (module.ir_text(),
reported apart: it is the plugin's cost, not the model's), then the policy's
work: normalisation, tokenisation and features (Ranker.feeds), and the ONNX
inference; apart, what verify mode adds (the residual cover, ranker.verify_order). The process is pinned to one core and onnxruntime runs one thread,
as in a `make -j` build. Writes bench/results/policy_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def summary(values) -> dict:
    return {"median_ms": round(statistics.median(values), 3), "p90_ms": round(pct(values, 90), 3),
            "p99_ms": round(pct(values, 99), 3), "max_ms": round(max(values), 3),
            "mean_ms": round(statistics.fmean(values), 3)}


def main(argv=None) -> int:
    from clang_llm.train import labels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    labels.add_evaluation_options(ap, HERE / "results" / "policy_speed")
    ap.add_argument("--repeat", type=int, default=3, help="runs per module; the fastest counts")
    args = ap.parse_args(argv)

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from clang_llm import _core, ranker
    from clang_llm.train import cpu_model
    from clang_llm.train import model as M

    t0 = time.perf_counter()
    r = ranker.get(args.model)
    r.rank("define void @f() {\n  ret void\n}\n")
    first_ms = (time.perf_counter() - t0) * 1000
    lab = M.load_labels(args.labels)
    rows, missing = M.rows_with_bitcode(lab, args.split, args.modules)
    if missing:
        print(f"policy_speed: {len(missing)} {args.split} modules have no bitcode here; left out", file=sys.stderr)
    if not rows:
        print(f"policy_speed: no {args.split} modules in {lab.source}", file=sys.stderr)
        return 2
    per = []
    pool = None
    for i in rows:
        h = lab.modules[i]
        path = M._module_path(args.modules, h)
        mod = _core.LoadedModule(path.read_bytes(), h)
        best = None
        for _ in range(args.repeat):
            a = time.perf_counter()
            text = mod.ir_text()
            b = time.perf_counter()
            feeds = r.feeds(text)
            c = time.perf_counter()
            pred = r.session.run(["log_ratio"], feeds)[0]
            d = time.perf_counter()
            if r.has_residuals:
                pool = r.session.run(["residuals"], feeds)[0] if pool is None else pool
                ranker.verify_order(pred, pool)
            e = time.perf_counter()
            t = ((b - a) * 1000, (c - b) * 1000, (d - c) * 1000, (e - d) * 1000)
            if best is None or sum(t[1:3]) < sum(best[1:3]):
                best = t
        per.append({"module": h, "ir_bytes": len(text), "chunks": int(feeds["tokens"].shape[0]) if "tokens" in feeds else 0,
                    "ir_text_ms": best[0], "prepare_ms": best[1], "inference_ms": best[2],
                    "policy_ms": best[1] + best[2], "verify_order_ms": best[3]})
    # What running the back end where it cannot take the compiler down costs
    # (policy._rank_in_child: fork, the child's set-up, the reply over a pipe),
    # against the same ranking in this process; the model is loaded in both.
    from clang_llm import policy

    isolation = []
    for i in rows[:40]:
        mod = _core.LoadedModule(M._module_path(args.modules, lab.modules[i]).read_bytes(), lab.modules[i])
        a = time.perf_counter()
        policy._onnx(mod)
        b = time.perf_counter()
        policy._rank_in_child("onnx", policy._onnx, mod)
        c = time.perf_counter()
        isolation.append(((c - b) - (b - a)) * 1000)
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, pinned to 1, "
                   f"{platform.system()}, load average {os.getloadavg()[0]:.1f} at the end",
        "command": "python bench/policy_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": r.path, "model_inputs": r.inputs, "model_variant": r.meta.get("variant", ""),
        "labels": lab.source, "split": args.split, "modules": len(per), "left_out_without_bitcode": len(missing),
        "first_call_ms": round(first_ms, 1),
        "policy": summary([p["policy_ms"] for p in per]),
        "prepare": summary([p["prepare_ms"] for p in per]),
        "inference": summary([p["inference_ms"] for p in per]),
        "ir_text": summary([p["ir_text_ms"] for p in per]),
        "verify_order": summary([p["verify_order_ms"] for p in per]),
        "isolation_added": summary(isolation),
        "targets": {"median_ms": 2.0, "p99_ms": 20.0},
        "slowest": sorted(per, key=lambda p: -p["policy_ms"])[:5],
    }
    report["meets_targets"] = report["policy"]["median_ms"] <= 2.0 and report["policy"]["p99_ms"] <= 20.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    rows_md = [f"| {name} | {report[k]['median_ms']} | {report[k]['p90_ms']} | {report[k]['p99_ms']} | {report[k]['max_ms']} |"
               for name, k in (("policy (prepare + inference)", "policy"), ("  prepare: normalise, tokenise, features",
                                                                          "prepare"),
                               ("  inference (onnxruntime, 1 thread)", "inference"),
                               ("module.ir_text() (the plugin's printing; not policy time)", "ir_text"),
                               ("verify order (residual cover; verify mode only)", "verify_order"),
                               ("isolation added: ranking in a forked child (onnx and .py back ends)",
                                "isolation_added"))]
    md = [
        "# Policy time per module", "",
        f"{report['modules']} {args.split}-split modules of `{lab.source}`, model `{r.path}` "
        f"({report['model_variant'] or 'unknown variant'}, inputs {','.join(r.inputs)}); {report['machine']}; "
        f"best of {args.repeat} runs per module. First call (import, session, tokenizer): {report['first_call_ms']} ms.",
        "", "| stage | median ms | p90 ms | p99 ms | max ms |", "| --- | --- | --- | --- | --- |", *rows_md, "",
        f"Targets: median <= 2 ms, p99 <= 20 ms: {'met' if report['meets_targets'] else 'NOT met'}.",
        f"Command: `{report['command']}` ({report['date']}).",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
