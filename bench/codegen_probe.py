#!/usr/bin/env python3
"""What a code generator option would add on top of a shipped decision, before
it becomes a knob: .text of labelled corpus modules under one candidate (default:
the shipped default) with and without LLVM options such as
`-machine-outliner-reruns=1` (or with a pipeline element appended, --append),
measured in-process with the measuring core.

    python bench/codegen_probe.py [--split train] [--sample 600] \
        [--set=-machine-outliner-reruns=1 --set=-enable-global-merge-func ...]

Each option set is parsed into libLLVM's own registry (the one the measuring
core links) in a fresh worker process, so no option outlives its set. Probes
decide what to build, so they use the training split (or validation), never
test. Writes bench/results/codegen_probe.{json,md}.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import ctypes
import datetime as dt
import json
import math
import multiprocessing as mp
import platform
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from clang_llm import pipelines  # noqa: E402
from clang_llm.train import model as M  # noqa: E402

DEFAULT_OPTIONS = ("-machine-outliner-reruns=1", "-machine-outliner-reruns=2", "-enable-global-merge-func")


def _set_llvm_options(options: list[str]) -> None:
    """Parse options into the libLLVM the measuring core uses. The core links
    the shared libLLVM, so dlopen of the same file returns the same instance
    and its cl::opt registry."""
    if not options:
        return
    from clang_llm import _core  # noqa: F401  (loads libLLVM)

    lib = next(line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
               if "/libLLVM" in line)
    llvm = ctypes.CDLL(lib)
    argv = [b"clang-llm-probe"] + [o.encode() for o in options]
    llvm.LLVMParseCommandLineOptions.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.c_char_p]
    llvm.LLVMParseCommandLineOptions(len(argv), (ctypes.c_char_p * len(argv))(*argv), None)


def _measure(job):
    name, options, passes, codegen, paths = job
    from clang_llm import _core

    _set_llvm_options(list(options))
    out = {}
    for p in paths:
        try:
            m = _core.LoadedModule(Path(p).read_bytes(), Path(p).name)
            r = m.measure(passes, codegen)
            out[Path(p).stem] = (r["text"], r["data"])
        except Exception as e:  # one module's failure is a result, not the probe's end
            out[Path(p).stem] = f"error: {e}"
    return name, out


def _isolated(job):
    """One job in a fresh process of its own: options set in one job never leak
    into another, and an option that makes LLVM abort (IPRA does on some x87
    code) costs its job's modules, not the probe."""
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        try:
            return ex.submit(_measure, job).result()
        except BrokenProcessPool:
            return job[0], {Path(p).stem: "error: the worker died (LLVM aborted)" for p in job[4]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="train", choices=("train", "validation"))
    ap.add_argument("--sample", type=int, default=600, help="modules drawn from those with bitcode here")
    ap.add_argument("--candidate", default=None, help="candidate name (default: the shipped default)")
    ap.add_argument("--set", dest="sets", action="append", metavar="OPTIONS",
                    help="an option set, one string split on spaces; repeatable, written --set=-opt=1 "
                         f"since the options start with a dash (default: {' '.join(DEFAULT_OPTIONS)})")
    ap.add_argument("--append", dest="appends", action="append", default=[], metavar="ELEMENT",
                    help="a module-level pipeline element measured appended to the candidate's pipeline "
                         "(no options), e.g. 'function(dse,adce,simplifycfg)'; repeatable")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "codegen_probe")
    args = ap.parse_args()

    cand = pipelines.by_name(args.candidate) if args.candidate else pipelines.best_fixed()
    lab = M.load_labels(None)
    have, _ = M.rows_with_bitcode(lab, args.split, None)
    rows = sorted(random.Random(args.seed).sample(have, min(args.sample, len(have))))
    if not rows:
        print(f"codegen_probe: no {args.split} module has bitcode here (clang-llm-data corpus build)",
              file=sys.stderr)
        return 1
    paths = [str(M._module_path(None, lab.modules[i])) for i in rows]
    # (name in the report, LLVM options, pipeline): the candidate as it is, each
    # option set on it, and each element appended to its pipeline ("+element").
    sets = [("", (), cand.passes)] \
        + [(" ".join(o.split()), tuple(o.split()), cand.passes) for o in (args.sets or ([] if args.appends else DEFAULT_OPTIONS))] \
        + [("+" + a, (), cand.passes + "," + a) for a in args.appends]
    chunk = max(1, math.ceil(len(paths) / (4 * args.workers)))
    jobs = [(*s, cand.codegen, paths[k:k + chunk]) for s in sets for k in range(0, len(paths), chunk)]
    t0 = time.time()
    sizes: dict[str, dict[str, int | str]] = {name: {} for name, _, _ in sets}
    # Other allocated bytes (.rodata, .data; not unwind tables): an option that
    # moves code into data, as denser jump tables do, shows up here.
    data: dict[str, dict[str, int]] = {name: {} for name, _, _ in sets}
    from tqdm import tqdm

    with cf.ThreadPoolExecutor(args.workers) as ex:
        for name, out in tqdm(ex.map(_isolated, jobs), total=len(jobs), desc="probe", unit="job"):
            for h, v in out.items():
                if isinstance(v, str):  # the module's error
                    sizes[name][h] = v
                else:
                    sizes[name][h], data[name][h] = v
    base, base_data = sizes[""], data[""]
    oz = {lab.modules[i]: lab.size[i, 0] for i in rows}
    # The probe's own baseline must be the label table's measurement of the
    # candidate, or the machine differs from the one that made the labels.
    j = lab.candidates.index(cand.name)
    labelled = {lab.modules[i]: lab.size[i, j] for i in rows if not math.isnan(lab.size[i, j])}
    agree = sum(1 for h, v in labelled.items() if base.get(h) == int(v))
    results = {}
    for name, got in sizes.items():
        ok = [h for h in got if isinstance(got[h], int) and isinstance(base.get(h), int) and base[h] > 0]
        ratios = [got[h] / base[h] for h in ok]
        results[name or "(none)"] = {
            "modules": len(ok),
            "errors": sum(1 for v in got.values() if isinstance(v, str)),
            "geomean_vs_candidate": math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None,
            "total_vs_candidate": sum(got[h] for h in ok) / sum(base[h] for h in ok) if ok else None,
            "smaller": sum(r < 1 for r in ratios), "larger": sum(r > 1 for r in ratios),
            # As a per-module knob: the smaller of the candidate with and without the set.
            "best_of_both_vs_candidate": math.exp(sum(math.log(min(r, 1.0)) for r in ratios) / len(ratios))
            if ratios else None,
            "text_and_data_vs_candidate": math.exp(sum(math.log((got[h] + data[name][h]) / (base[h] + base_data[h]))
                                                       for h in ok) / len(ok)) if ok else None,
            "geomean_vs_oz": math.exp(sum(math.log(got[h] / oz[h]) for h in ok if oz[h] > 0)
                                      / max(1, sum(1 for h in ok if oz[h] > 0))),
        }
    report = {"command": "python bench/codegen_probe.py " + " ".join(sys.argv[1:]),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.processor() or platform.machine()}, {mp.cpu_count()} CPUs",
              "candidate": cand.name, "codegen": cand.codegen, "split": args.split, "modules": len(rows),
              "seconds": round(time.time() - t0, 1),
              "baseline_matches_labels": f"{agree} of {len(labelled)}", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Code generator options on top of `{cand.name}`", "",
             f"{len(rows)} {args.split}-split modules with bitcode here, .text measured in-process "
             f"({report['date']}, {report['seconds']} s). Ratios are geomeans over modules with code; the "
             f"candidate's own sizes here equal the label table's on {report['baseline_matches_labels']} "
             "modules.", "",
             "| LLVM options (+: pipeline element appended) | modules | errors | vs the candidate (geomean) | total .text | smaller / larger | "
             "vs -Oz | per-module best of with and without | .text + data vs the candidate (geomean) |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for name, r in results.items():
        g = r["geomean_vs_candidate"]
        lines.append(f"| `{name}` | {r['modules']} | {r['errors']} | {g - 1:+.3%} | "
                     f"{r['total_vs_candidate'] - 1:+.3%} | {r['smaller']} / {r['larger']} | "
                     f"{r['geomean_vs_oz'] - 1:+.3%} | {r['best_of_both_vs_candidate'] - 1:+.3%} | "
                     f"{r['text_and_data_vs_candidate'] - 1:+.3%} |"
                     if g is not None else f"| `{name}` | 0 | {r['errors']} | | | | | | |")
    lines += ["", f"Command: `{report['command']}`"]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
