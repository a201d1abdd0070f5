#!/usr/bin/env python3
"""Evaluations per second per core: the in-process evaluator vs opt + llc.

    python bench/eval_speed.py                      # Lua 5.4's modules, oz + 3 candidates
    python bench/eval_speed.py --limit 5 --pipelines oz oz+sink
    python bench/eval_speed.py --corpus 100         # a seeded sample of the corpus's training modules

Route "in-process": clang_llm.train.evaluate.run() with one worker and a fresh
store (what the data engine does: the module parsed once per worker, each
pipeline run on a copy, the object generated in memory with clang -Oz's code
generator).
Route "opt+llc": per evaluation, ``opt-22 --relocation-model=pic
-passes=<the same pipeline>`` writes bitcode and ``llc-22 -O2
--relocation-model=pic -filetype=obj --addrsig`` the object (clang -Oz generates
code at -O2, PIC/PIE, with an address-significance table; CPU and features come
from the functions' attributes in both routes), both with -disable-verify since
the in-process route verifies nothing either.
Both routes run one evaluation at a time, one after the other, so each gets a
core; CPU seconds (user + sys of the processes that did the work) are reported
beside wall time because the machine may be shared.

The .text of every (module, pipeline) is compared between the routes.

Writes bench/results/eval_speed.json and eval_speed.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))  # harmless when clang_llm is installed (editable)

from clang_llm import _core, pipelines  # noqa: E402
from clang_llm.train import debsrc  # noqa: E402
from clang_llm.train.evaluate import Job, run  # noqa: E402
from clang_llm.train.store import Store, pipeline_key  # noqa: E402

DEFAULT_PIPELINES = ("oz", "oz+sink", "oz+iroutliner", "oz+mergefunc")
LLC_FLAGS = ("-O2", "--relocation-model=pic", "-filetype=obj", "--addrsig")
# opt needs the relocation model too: with its default (static) target machine,
# rel-lookup-table-converter keeps absolute lookup tables that clang, building
# PIE, makes relative. The in-process route runs no verifier (clang -Oz does not
# either), so neither do these: the same work.
OPT_FLAGS = ("--relocation-model=pic", "-disable-verify")
LLC_EXTRA = ("-disable-verify",)


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        sys.exit(f"{name} is not installed (run scripts/setup.sh)")
    return path


def machine() -> str:
    from clang_llm.train import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, LLVM {_core.LLVM_VERSION}"


def lua_modules(work: Path, clang: str, limit: int | None) -> list[tuple[str, str, Path]]:
    """(source name, content hash, .bc) for Lua 5.4's src/*.c, unoptimised as clang -Oz's front end leaves them."""
    try:
        debsrc.fetch("lua5.4")
    except debsrc.FetchError as e:
        sys.exit(f"cannot fetch Debian source package lua5.4: {e}")
    tree = debsrc.extract("lua5.4", work / "lua")
    sources = sorted((tree / "src").glob("*.c"))[:limit]
    out = []
    for c in sources:
        bc = work / "bc" / (c.stem + ".bc")
        bc.parent.mkdir(exist_ok=True)
        # LUA_USE_LINUX as Debian's build sets it: the same code paths a real build compiles.
        subprocess.run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c",
                        "-DLUA_USE_LINUX", "-I", str(tree / "src"), "-o", str(bc), str(c)],
                       check=True, capture_output=True)
        out.append((c.name, _core.LoadedModule(bc.read_bytes(), str(bc)).content_hash(), bc))
    return out


def corpus_modules(n: int, seed: int = 0) -> list[tuple[str, str, Path]]:
    """(package/source, hash, .bc) for a seeded sample of the corpus's training
    modules: the data engine's real workload, whose size mix differs from Lua's."""
    import random

    from clang_llm.train import corpus

    mods = sorted(corpus.modules("train"), key=lambda m: m["hash"])
    if not mods:
        sys.exit("the corpus has no training modules: run `clang-llm-data corpus build` first")
    mods = random.Random(seed).sample(mods, min(n, len(mods)))
    return [(f"{m['package']}/{os.path.basename(m.get('source') or m['hash'])}", m["hash"], Path(m["path"]))
            for m in mods]


def cpu_seconds() -> float:
    """This process and its reaped children: the evaluator's parent side counts too."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def in_process(mods, pipes, work: Path, timeout: float) -> dict:
    jobs = [Job(h, bc, c.passes, c.codegen) for _, h, bc in mods for c in pipes]
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    # The worker is a child process: its CPU time is counted once the pool has reaped it.
    with Store(work / "store.sqlite") as store:
        res = run(jobs, store, workers=1, timeout=timeout, progress=sys.stderr.isatty(), desc="in-process")
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    failed = {f"{h}/{k}": r.error for (h, k), r in res.items() if not r.ok}
    return {"wall_s": wall, "cpu_s": cpu, "evaluations": len(jobs), "failed": failed,
            "eval_s": sum(r.seconds for r in res.values()),
            "text": {f"{h}/{k}": r.text for (h, k), r in res.items()},
            "seconds": {f"{h}/{k}": r.seconds for (h, k), r in res.items()}}


def opt_llc(mods, pipes, work: Path, opt: str, llc: str, timeout: float) -> dict:
    text, failed, seconds = {}, {}, {}
    n = 0
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for _, h, bc in mods:
        for c in pipes:
            ident = f"{h}/{pipeline_key(c.passes, c.codegen)}"
            opt_out, obj = work / "opt.bc", work / "out.o"
            t = time.perf_counter()
            try:
                subprocess.run([opt, *OPT_FLAGS, f"-passes={c.passes}", str(bc), "-o", str(opt_out)],
                               check=True, capture_output=True, timeout=timeout)
                subprocess.run([llc, *LLC_FLAGS, *LLC_EXTRA, str(opt_out), "-o", str(obj)],
                               check=True, capture_output=True, timeout=timeout)
                text[ident] = _core.object_sizes(obj.read_bytes())["text"]
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                err = getattr(e, "stderr", b"") or b""
                failed[ident] = f"{e}: {err.decode(errors='replace')[-300:]}"
                text[ident] = None
            seconds[ident] = time.perf_counter() - t
            n += 1
    return {"wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - cpu0, "evaluations": n,
            "failed": failed, "text": text, "seconds": seconds}


def markdown(rep: dict) -> str:
    a, b = rep["routes"]["in_process"], rep["routes"]["opt_llc"]
    agree = rep["text_agreement"]
    L = ["# In-process evaluation vs opt + llc", "",
         f"{rep['date']}; {rep['machine']}.", "",
         f"Reproduce: `{rep['command']}`", "",
         f"{rep['modules']} modules ({rep['workload']}) x {len(rep['pipelines'])} pipelines "
         f"({', '.join(rep['pipelines'])}) = {a['evaluations']} evaluations per route, one at a time.", "",
         "| route | wall ms / eval | CPU ms / eval | evals / s (wall) | evals / CPU-s | failures |",
         "|---|---:|---:|---:|---:|---:|"]
    for name, r in (("in-process (`clang_llm.train.evaluate`, 1 worker)", a),
                    (f"`opt-22 {' '.join(OPT_FLAGS)} -passes=...` + `llc-22 {' '.join(LLC_FLAGS + LLC_EXTRA)}`", b)):
        L.append(f"| {name} | {r['wall_ms_per_eval']:.1f} | {r['cpu_ms_per_eval']:.1f} | "
                 f"{r['evals_per_s']:.2f} | {r['evals_per_cpu_s']:.2f} | {len(r['failed'])} |")
    L += ["", f"Speed-up of the in-process route: **{rep['speedup_cpu']:.2f}x** in CPU time per evaluation "
              f"(the per-core rate), {rep['speedup_wall']:.2f}x in wall time "
              f"(the machine's load during the run: {rep['load_average']}).", "",
          "Both routes do the same optimisation and code generation; the in-process route saves "
          "the two process starts, parsing the module twice and writing bitcode and the object "
          "per evaluation, so its advantage is largest on small modules; "
          f"median over modules {rep['median_module_speedup']:.2f}x.", "",
          "| module | bitcode KB | in-process ms / eval | opt+llc ms / eval | speed-up |",
          "|---|---:|---:|---:|---:|"]
    for m in rep["per_module"]:
        L.append(f"| {m['module']} | {m['bitcode_kb']:.0f} | {m['in_process_ms']:.1f} | "
                 f"{m['opt_llc_ms']:.1f} | {m['speedup']:.2f}x |")
    L += ["", "(per-module times are wall times of single evaluations, in the worker for the "
              "in-process route, so they include waiting for a core on a loaded machine)", "",
          f"In-process, the evaluations themselves (inside the worker) took {a['eval_ms_per_eval']:.1f} ms "
          "on average; the rest is the worker's start, IPC and the store.", "",
          f".text agreement between the routes: {agree['equal']} of {agree['compared']} (module, pipeline) "
          f"pairs equal."]
    if agree["differences"]:
        L += ["", "| module | pipeline | in-process .text | opt+llc .text |", "|---|---|---:|---:|"]
        for d in agree["differences"]:
            L.append(f"| {d['module']} | {d['pipeline']} | {d['in_process']} | {d['opt_llc']} |")
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", nargs="+", default=list(DEFAULT_PIPELINES), metavar="NAME",
                    help="candidate names (without the machine outliner: llc would need it per module)")
    ap.add_argument("--limit", type=int, help="only the first N Lua sources")
    ap.add_argument("--corpus", type=int, metavar="N",
                    help="instead of Lua, a seeded sample of N training modules of the corpus")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)

    clang, opt, llc = tool("clang-22"), tool("opt-22"), tool("llc-22")
    # Shipped candidates, or the fixed -Oz derivations (pipelines.derived_candidates)
    # the default list names, which stay the same whatever set ships.
    known = {c.name: c for c in (*pipelines.derived_candidates(), *pipelines.candidates())}
    unknown = [n for n in args.pipelines if n not in known]
    if unknown:
        ap.error(f"unknown pipeline name(s) {unknown}; known: {', '.join(sorted(known))}")
    pipes = [known[n] for n in args.pipelines]
    if any(c.codegen for c in pipes):
        sys.exit("choose candidates without code generator knobs (+mo, +ss, ...)")
    names = {pipeline_key(c.passes, False): c.name for c in pipes}

    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        work = Path(tmp)
        mods = corpus_modules(args.corpus) if args.corpus else lua_modules(work, clang, args.limit)
        bc_sizes = {h: bc.stat().st_size for _, h, bc in mods}
        print(f"{len(mods)} modules x {len(pipes)} pipelines", file=sys.stderr)
        a = in_process(mods, pipes, work, args.timeout)
        print(f"in-process: {a['wall_s']:.1f} s", file=sys.stderr)
        b = opt_llc(mods, pipes, work, opt, llc, args.timeout)
        print(f"opt+llc:    {b['wall_s']:.1f} s", file=sys.stderr)

    src_of = {h: name for name, h, _ in mods}
    diffs, equal, compared = [], 0, 0
    for ident, t in a["text"].items():
        u = b["text"].get(ident)
        if t is None or u is None:
            continue
        compared += 1
        if t == u:
            equal += 1
        else:
            h, k = ident.split("/")
            diffs.append({"module": src_of[h], "pipeline": names[k], "in_process": t, "opt_llc": u})
    per_module = []
    for name, h, bc in mods:
        ta = [v for k, v in a["seconds"].items() if k.startswith(h + "/")]
        tb = [v for k, v in b["seconds"].items() if k.startswith(h + "/")]
        ma, mb = 1000 * sum(ta) / len(ta), 1000 * sum(tb) / len(tb)
        per_module.append({"module": name, "bitcode_kb": bc_sizes[h] / 1024, "in_process_ms": ma,
                           "opt_llc_ms": mb, "speedup": mb / ma})
    for r in (a, b):
        r["wall_ms_per_eval"] = 1000 * r["wall_s"] / r["evaluations"]
        r["cpu_ms_per_eval"] = 1000 * r["cpu_s"] / r["evaluations"]
        r["evals_per_s"] = r["evaluations"] / r["wall_s"]
        r["evals_per_cpu_s"] = r["evaluations"] / r["cpu_s"]
    a["eval_ms_per_eval"] = 1000 * a.pop("eval_s") / a["evaluations"]
    dsc = next(debsrc.fetch("lua5.4").glob("*.dsc"), None)
    rep = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": shlex.join(["python", "bench/eval_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "lua_version": dsc.stem.split("_", 1)[1] if dsc else "5.4",
        "workload": (f"{len(mods)} corpus training modules (seeded sample)" if args.corpus
                     else f"Lua {dsc.stem.split('_', 1)[1] if dsc else '5.4'}, src/*.c"),
        "modules": len(mods),
        "pipelines": [c.name for c in pipes],
        "opt_flags": list(OPT_FLAGS),
        "llc_flags": list(LLC_FLAGS + LLC_EXTRA),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "routes": {"in_process": {k: v for k, v in a.items() if k not in ("text", "seconds")},
                   "opt_llc": {k: v for k, v in b.items() if k not in ("text", "seconds")}},
        "per_module": per_module,
        "median_module_speedup": statistics.median(m["speedup"] for m in per_module),
        "speedup_wall": b["wall_s"] / a["wall_s"],
        "speedup_cpu": b["cpu_s"] / a["cpu_s"],
        "text_agreement": {"compared": compared, "equal": equal, "differences": diffs},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_speed.json").write_text(json.dumps(rep, indent=1) + "\n")
    (args.out / "eval_speed.md").write_text(markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
