#!/usr/bin/env python3
"""Measure every candidate pipeline on every module of the measurement set.

    python bench/fixed_pipelines.py                       # the committed set
    python bench/fixed_pipelines.py --bc /tmp/luabc       # ad hoc: a folder of .bc files

Each module is measured in-process with clang_llm._core (clang -Oz's code
generator, object .text bytes), but inside worker processes, so a pipeline that
aborts LLVM or hangs costs one measurement, not the run. A second round in fresh
worker processes, with the candidates in reverse order, re-measures every module
(or a sample) to check that sizes are deterministic across processes and
independent of what the process measured before.

Writes (by default under bench/results/):
  fixed_pipelines.json        the report `python -m clang_llm.pipelines rebuild --report` reads
  fixed_pipelines.md          the same as tables
  fixed_pipelines_sizes.json  every module's .text/.data per pipeline (for later analysis)
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import random
import shlex
import signal
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_SET = HERE / "results" / "measurement_set.json"
DEFAULT_MODULES = Path(os.environ.get("CLANG_LLM_MODULES", "~/.cache/clang-llm/modules")).expanduser()


# --- worker side ---------------------------------------------------------------

def _worker(conn, err_path: str) -> None:
    # LLVM writes crash reports to fd 2; a file per worker lets the parent quote
    # the reason of the measurement that died.
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    from clang_llm import _core

    while True:
        job = conn.recv()
        if job is None:
            return
        path, items = job
        try:
            with open(path, "rb") as f:
                m = _core.LoadedModule(f.read(), name=path)
        except Exception as e:
            conn.send(("load_error", f"{type(e).__name__}: {e}"))
            continue
        for key, passes, outliner in items:
            conn.send(("start", key, os.lseek(2, 0, os.SEEK_CUR)))
            t0 = time.perf_counter()
            try:
                sizes = m.measure(passes, outliner)
                conn.send(("ok", key, {"text": sizes["text"], "data": sizes["data"]},
                           time.perf_counter() - t0))
            except Exception as e:
                conn.send(("err", key, f"{type(e).__name__}: {e}", time.perf_counter() - t0))
        conn.send(("end",))


# --- parent side: a small crash-tolerant pool -----------------------------------

class Pool:
    """Runs (module, [measurements]) jobs on `n` spawned workers.

    A worker that dies or overruns the per-measurement timeout is replaced; the
    measurement it was running is recorded as failed and the rest of its job is
    re-queued, so one bad pipeline cannot take other results with it.
    """

    def __init__(self, n: int, timeout: float, errdir: str):
        self.ctx = mp.get_context("spawn")  # fresh processes: fresh ASLR and LLVM state
        self.n, self.timeout, self.errdir = n, timeout, errdir
        self.workers: list[dict] = []
        self.spawned = 0

    def _spawn(self) -> dict:
        parent, child = self.ctx.Pipe()
        err = os.path.join(self.errdir, f"worker{self.spawned}.stderr")
        self.spawned += 1
        p = self.ctx.Process(target=_worker, args=(child, err), daemon=True)
        p.start()
        child.close()
        return {"proc": p, "conn": parent, "err": err, "job": None}

    @staticmethod
    def _crash_reason(w: dict, prefix: str) -> str:
        try:
            with open(w["err"], "rb") as f:
                f.seek(w.get("err_pos", 0))
                text = f.read(20000).decode("utf-8", "replace")
        except OSError:
            text = ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # The first line LLVM prints is the cause; the rest is a stack dump.
        for ln in lines:
            if "LLVM ERROR" in ln or "Assertion" in ln or "error" in ln.lower():
                return f"{prefix}: {ln[:300]}"
        return f"{prefix}: {lines[0][:300]}" if lines else prefix

    def run(self, jobs: list[tuple], on_result) -> None:
        """jobs: (module_id, path, items); on_result(module_id, key, sizes|None, error|None, secs)."""
        queue = collections.deque(jobs)
        self.workers = [self._spawn() for _ in range(min(self.n, len(jobs)) or 1)]
        try:
            while queue or any(w["job"] for w in self.workers):
                for w in self.workers:
                    if w["job"] is None and queue:
                        mid, path, items = queue.popleft()
                        w["job"] = {"id": mid, "path": path, "items": list(items), "done": set()}
                        w["current"], w["since"] = None, time.monotonic()
                        w["conn"].send((path, items))
                busy = [w for w in self.workers if w["job"]]
                now = time.monotonic()
                wait_for = min(max(0.0, w["since"] + self.timeout - now) for w in busy)
                ready = wait([w["conn"] for w in busy] + [w["proc"].sentinel for w in busy],
                             timeout=wait_for + 0.05)
                for i, w in enumerate(self.workers):
                    if not w["job"]:
                        continue
                    dead = False
                    try:
                        while w["conn"].poll():
                            self._handle(w, w["conn"].recv(), on_result)
                            if not w["job"]:
                                break
                    except (EOFError, OSError):
                        dead = True
                    if not w["job"]:
                        continue
                    if dead or w["proc"].sentinel in ready and not w["proc"].is_alive():
                        w["proc"].join(1)
                        code = w["proc"].exitcode
                        why = (f"worker killed by {signal.Signals(-code).name}" if code and code < 0
                               else f"worker exited with status {code}")
                        self.workers[i] = self._replace(w, self._crash_reason(w, why), queue, on_result)
                    elif time.monotonic() - w["since"] > self.timeout:
                        w["proc"].kill()
                        w["proc"].join()
                        why = f"timeout after {self.timeout:g}s"
                        self.workers[i] = self._replace(w, why, queue, on_result)
        finally:
            for w in self.workers:
                try:
                    w["conn"].send(None)
                except OSError:
                    pass
            for w in self.workers:
                w["proc"].join(5)
                if w["proc"].is_alive():
                    w["proc"].kill()

    def _handle(self, w: dict, msg: tuple, on_result) -> None:
        job = w["job"]
        kind = msg[0]
        if kind == "start":
            w["current"], w["err_pos"], w["since"] = msg[1], msg[2], time.monotonic()
        elif kind in ("ok", "err"):
            key = msg[1]
            job["done"].add(key)
            w["current"] = None
            if kind == "ok":
                on_result(job["id"], key, msg[2], None, msg[3])
            else:
                on_result(job["id"], key, None, msg[2], msg[3])
        elif kind == "load_error":
            for key, _, _ in job["items"]:
                on_result(job["id"], key, None, "cannot load module: " + msg[1], 0.0)
            w["job"] = None
        elif kind == "end":
            w["job"] = None

    def _replace(self, w: dict, why: str, queue, on_result) -> dict:
        job = w["job"]
        cur = w.get("current")
        if cur is not None:
            on_result(job["id"], cur, None, why, time.monotonic() - w["since"])
            job["done"].add(cur)
        rest = [it for it in job["items"] if it[0] not in job["done"]]
        if cur is None and rest:
            # Died between measurements (e.g. while loading): charge the next one
            # rather than looping forever on the same module.
            on_result(job["id"], rest[0][0], None, why, 0.0)
            rest = rest[1:]
        if rest:
            queue.appendleft((job["id"], job["path"], rest))
        w["conn"].close()
        return self._spawn()


# --- the measurement set ----------------------------------------------------------

def load_modules(args) -> list[dict]:
    mods = []
    if args.bc:
        for p in args.bc:
            p = Path(p)
            files = sorted(p.glob("*.bc")) if p.is_dir() else [p]
            for f in files:
                side = f.with_suffix(".json")
                meta = json.loads(side.read_text()) if side.exists() else {}
                mods.append({"hash": meta.get("hash", f.stem), "package": meta.get("package") or f.parent.name,
                             "source": meta.get("rel_source", meta.get("source", f.name)), "path": str(f), "bytes": f.stat().st_size})
    else:
        manifest = json.loads(Path(args.set).read_text())
        for e in manifest["modules"]:
            f = Path(args.modules_dir) / (e["hash"] + ".bc")
            if not f.exists():
                sys.exit(f"missing module {f} (rebuild the set: python bench/collect_modules.py)")
            mods.append({**e, "path": str(f)})
    if args.limit:
        mods = mods[: args.limit]
    if not mods:
        sys.exit("no modules to measure")
    return mods


# --- statistics -----------------------------------------------------------------

def geomean(xs: list[float]) -> float | None:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def compare(names: list[str], mods: list[dict], sizes: dict) -> dict:
    """Per pipeline, against oz, over the modules where both were measured."""
    out = {}
    for n in names:
        ratios, tot_c, tot_o, imp, reg, eq = [], 0, 0, 0, 0, 0
        for m in mods:
            s = sizes.get(m["hash"], {})
            o, c = s.get("oz"), s.get(n)
            if o is None or c is None:
                continue
            tot_c += c["text"]
            tot_o += o["text"]
            imp += c["text"] < o["text"]
            reg += c["text"] > o["text"]
            eq += c["text"] == o["text"]
            if o["text"] > 0:  # text-free modules (pure data) say nothing about a pipeline
                ratios.append(max(c["text"], 1) / o["text"])
        k = imp + reg + eq
        out[n] = {
            "measured": k,
            "geomean_ratio": round(geomean(ratios), 6) if ratios else None,
            "total_ratio": round(tot_c / tot_o, 6) if tot_o else None,
            "improved": round(imp / k, 4) if k else None,
            "regressed": round(reg / k, 4) if k else None,
            "equal": round(eq / k, 4) if k else None,
            "n_improved": imp, "n_regressed": reg, "n_equal": eq,
            "text_bytes": tot_c,
        }
    return out


def oracle(pool_names: list[str], mods: list[dict], sizes: dict) -> dict:
    """Best of `pool_names` per module, measured against oz: the headroom of a perfect chooser."""
    ratios, tot_b, tot_o, wins = [], 0, 0, collections.Counter()
    for m in mods:
        s = sizes.get(m["hash"], {})
        if "oz" not in s:
            continue
        got = {n: s[n]["text"] for n in pool_names if n in s}
        best = min(got, key=lambda n: (got[n], n != "oz"))  # ties go to oz
        wins[best] += 1
        tot_b += got[best]
        tot_o += s["oz"]["text"]
        if s["oz"]["text"] > 0:
            ratios.append(max(got[best], 1) / s["oz"]["text"])
    return {"pool": pool_names, "geomean_ratio": round(geomean(ratios), 6) if ratios else None,
            "total_ratio": round(tot_b / tot_o, 6) if tot_o else None, "wins": dict(wins.most_common())}


# --- output -----------------------------------------------------------------------

def pct(r: float | None) -> str:
    return "n/a" if r is None else f"{(r - 1) * 100:+.2f}%"


def share(r: float | None) -> str:
    return "n/a" if r is None else f"{r * 100:.0f}%"


def markdown(rep: dict) -> str:
    L = [f"# Fixed candidate pipelines vs clang-22 -Oz", "",
         f"{rep['modules']} modules from {len(rep['per_package'])} packages; {rep['date']}; {rep['machine']}.", "",
         f"Reproduce: `{rep['command']}`", "",
         "Ratios are object `.text` bytes relative to `oz` (clang-22 -Oz exactly); geomean over "
         "modules with non-empty `.text`, total = sum of `.text` over all modules. "
         "validated = zero failures, deterministic in both rounds, and the pipeline parses.", "",
         "| pipeline | geomean | total | smaller | larger | equal | failures | validated |",
         "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for p in rep["pipelines"]:
        L.append(f"| {p['name']} | {pct(p['geomean_ratio'])} | {pct(p['total_ratio'])} | "
                 f"{share(p['improved'])} | {share(p['regressed'])} | {share(p['equal'])} | "
                 f"{p['failures']} | {'yes' if p['validated'] else 'no'} |")
    L += ["", "## Oracle (best candidate per module)", "",
          "| pool | geomean | total | modules won |", "|---|---:|---:|---|"]
    for label, o in rep["oracle"].items():
        wins = ", ".join(f"{k} {v}" for k, v in o["wins"].items())
        L.append(f"| {label} | {pct(o['geomean_ratio'])} | {pct(o['total_ratio'])} | {wins} |")
    names = [p["name"] for p in rep["pipelines"] if p["name"] != "oz"]
    L += ["", "## Per package (geomean .text vs oz; smaller/larger share in brackets)", "",
          "| package | modules | oz .text | " + " | ".join(names) + " | oracle |",
          "|---|---:|---:|" + "---:|" * (len(names) + 1)]
    for pkg, d in rep["per_package"].items():
        cells = [f"{pct(d['pipelines'][n]['geomean_ratio'])} ({share(d['pipelines'][n]['improved'])}/"
                 f"{share(d['pipelines'][n]['regressed'])})" for n in names]
        L.append(f"| {pkg} | {d['modules']} | {d['oz_text']} | " + " | ".join(cells)
                 + f" | {pct(d['oracle']['geomean_ratio'])} |")
    t = rep["timing"]
    L += ["", "## Timing", "",
          f"- wall time {t['wall_s']:.0f} s with {t['workers']} workers; {t['measurements']} measurements "
          f"({t['modules_per_s']:.2f} modules/s for all candidates, one round)",
          f"- mean per module, all {len(rep['pipelines'])} candidates, one round: {t['s_per_module']:.2f} s "
          f"(median {t['median_s_per_module']:.2f} s, max {t['max_s_per_module']:.1f} s)",
          f"- mean per measurement (pipeline + codegen): {t['s_per_measurement'] * 1000:.0f} ms"]
    if rep["failures"]:
        L += ["", "## Failures", ""]
        for f in rep["failures"][:50]:
            L.append(f"- {f['pipeline']} on {f['package']}/{f['source']} ({f['hash']}), round {f['round']}: "
                     f"{f['error']}")
    if rep["nondeterministic"]:
        L += ["", "## Nondeterminism", ""]
        for f in rep["nondeterministic"][:50]:
            L.append(f"- {f['pipeline']} on {f['package']}/{f['source']}: {f['first']} vs {f['second']}")
    return "\n".join(L) + "\n"


def machine() -> str:
    from clang_llm import _core
    from clang_llm.train import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, LLVM {_core.LLVM_VERSION}"


class Progress:
    def __init__(self, total: int, label: str):
        self.total, self.label, self.n, self.t0, self.last = total, label, 0, time.monotonic(), 0.0
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=label, unit="meas", file=sys.stderr)
        except ImportError:
            self.bar = None

    def step(self) -> None:
        self.n += 1
        if self.bar:
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= 10 or self.n == self.total:
            self.last = now
            el = now - self.t0
            eta = el / self.n * (self.total - self.n)
            print(f"{self.label}: {self.n}/{self.total} measurements, {el:.0f}s elapsed, ~{eta:.0f}s left",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


# --- end to end: the in-process measurement against real compiles ---------------

_DEP_FLAGS_WITH_VALUE = {"-MF", "-MT", "-MQ"}


def _user_command(argv: list[str], out: str) -> list[str] | None:
    """The clang-llm command a build ran, from the clang-22 command the driver made.

    The driver appends -Xclang -disable-llvm-passes -fpass-plugin=... and turns the
    winning -Oz-llm into -Oz (the last -O flag). Dependency outputs are dropped so
    the re-run writes nothing into the package's tree.
    """
    if len(argv) < 4 or argv[-3:-1] != ["-Xclang", "-disable-llvm-passes"] \
            or not argv[-1].startswith("-fpass-plugin=") or "-c" not in argv:
        return None
    args = argv[1:-3]
    last_o = max((i for i, a in enumerate(args) if a.startswith("-O")), default=None)
    if last_o is None or args[last_o] != "-Oz":
        return None
    args[last_o] = "-Oz-llm"
    cmd, i = ["clang-llm"], 0
    while i < len(args):
        a = args[i]
        if a in _DEP_FLAGS_WITH_VALUE or a == "-o":
            i += 2
            continue
        if a in ("-MD", "-MMD", "-MP") or (a.startswith("-o") and len(a) > 2):
            i += 1
            continue
        cmd.append(a)
        i += 1
    return cmd + ["-o", out]


def e2e_check(args, mods: list[dict]) -> int:
    """Compile sample modules' sources with clang-llm (best-fixed and oz policies)
    and plain clang-22 -Oz, and compare object .text with the in-process numbers."""
    import subprocess

    from clang_llm import _core, pipelines

    best, oz = pipelines.best_fixed(), pipelines.by_name("oz")
    def meta_of(m):
        side = Path(m["path"]).with_suffix(".json")
        return json.loads(side.read_text()) if side.exists() else {}

    # Round-robin over packages so every package is represented. Only modules whose
    # build ran cc1 in-process have a driver command line to re-run (clang forks
    # cc1 when one command compiles several files or also links).
    per_pkg = collections.defaultdict(list)
    not_rerunnable = 0
    for m in sorted(mods, key=lambda m: m["hash"]):
        if _user_command(meta_of(m).get("argv", []), "x.o") is None:
            not_rerunnable += 1
            continue
        per_pkg[m["package"]].append(m)
    sample, queues = [], [list(v) for _, v in sorted(per_pkg.items())]
    while len(sample) < args.e2e and any(queues):
        for q in queues:
            if q and len(sample) < args.e2e:
                sample.append(q.pop(0))
    rows, mismatches = [], 0
    venv_bin = str(Path(sys.executable).parent)
    with tempfile.TemporaryDirectory(prefix="e2e.") as tmp:
        for m in sample:
            meta = meta_of(m)
            row = {"hash": m["hash"], "package": m["package"], "source": m["source"]}
            user = _user_command(meta.get("argv", []), os.path.join(tmp, "out.o"))
            if user is None or not os.path.isdir(meta.get("cwd", "")):
                row["skipped"] = "no re-runnable compile command recorded"
                rows.append(row)
                continue
            lm = _core.LoadedModule(Path(m["path"]).read_bytes(), name=m["path"])
            row["measured_oz"] = lm.measure(oz.passes, oz.codegen)["text"]
            row["measured_best"] = lm.measure(best.passes, best.codegen)["text"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("CLANG_LLM_")}
            env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
            env["CLANG_LLM_STRICT"] = "1"
            log = os.path.join(tmp, "decisions.jsonl")
            for label, cmd, extra in (
                    ("clang_oz", ["clang-22"] + [("-Oz" if a == "-Oz-llm" else a) for a in user[1:]], {}),
                    ("llm_oz", user, {"CLANG_LLM_POLICY": "oz", "CLANG_LLM_LOG": log}),
                    ("llm_best", user, {"CLANG_LLM_POLICY": "best-fixed", "CLANG_LLM_LOG": log})):
                if os.path.exists(log):
                    os.unlink(log)
                p = subprocess.run(cmd, cwd=meta["cwd"], env={**env, **extra}, capture_output=True, text=True)
                if p.returncode != 0:
                    row[label] = None
                    row[label + "_error"] = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
                    continue
                row[label] = int(_core.object_sizes(Path(tmp, "out.o").read_bytes())["text"])
                if extra and os.path.exists(log):
                    d = [json.loads(ln) for ln in open(log)]
                    row[label + "_decisions"] = [x["pipeline"] for x in d]
                    row[label + "_hash_matches"] = [x["hash"] for x in d] == [m["hash"]]
            row["ok"] = (row.get("clang_oz") == row.get("llm_oz") == row["measured_oz"]
                         and row.get("llm_best") == row["measured_best"])
            mismatches += not row["ok"]
            rows.append(row)
            print(f"{m['package']}/{m['source']}: oz {row['measured_oz']} (clang {row.get('clang_oz')}, "
                  f"clang-llm {row.get('llm_oz')}); {best.name} {row['measured_best']} "
                  f"(clang-llm {row.get('llm_best')}) {'ok' if row['ok'] else 'MISMATCH'}", file=sys.stderr)
    done = [r for r in rows if "skipped" not in r]
    rep = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": shlex.join(["python", "bench/fixed_pipelines.py", *sys.argv[1:]]),
        "best_fixed": best.name,
        "checked": len(done), "skipped": len(rows) - len(done), "mismatches": mismatches,
        "set_modules_without_rerunnable_command": not_rerunnable,
        "what": "object .text of a real re-compile (clang-22 -Oz; clang-llm -Oz-llm with policy oz and "
                "best-fixed) against LoadedModule.measure() of the captured module",
        "rows": rows,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e_check.json").write_text(json.dumps(rep, indent=1) + "\n")
    print(f"e2e: {len(done)} modules re-compiled, {mismatches} mismatches, {len(rows) - len(done)} skipped",
          file=sys.stderr)
    return 1 if mismatches else 0


# --- main -------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default=str(DEFAULT_SET.relative_to(REPO)),
                    help="measurement-set manifest (default: %(default)s)")
    ap.add_argument("--modules-dir", default="~/.cache/clang-llm/modules",
                    help="where the set's <hash>.bc files are (default: %(default)s)")
    ap.add_argument("--bc", nargs="+", help="measure these .bc files / folders instead of the set")
    ap.add_argument("--out-dir", default="bench/results", help="report folder (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per measurement (default: %(default)s)")
    ap.add_argument("--determinism-sample", type=int, default=-1,
                    help="modules re-measured in round 2 (-1: all, 0: skip; default: all)")
    ap.add_argument("--only", nargs="+", help="measure only these candidates (oz is always added)")
    ap.add_argument("--candidates", type=Path,
                    help="a candidates file in candidates.tsv's format to measure instead of the shipped set "
                         "(e.g. pipelines not shipped yet)")
    ap.add_argument("--limit", type=int, help="first N modules only (smoke tests)")
    ap.add_argument("--e2e", type=int, metavar="N",
                    help="instead: re-compile N modules' sources for real and compare .text with the "
                         "in-process measurement (writes e2e_check.json)")
    args = ap.parse_args(argv)
    args.modules_dir = os.path.expanduser(args.modules_dir)

    from clang_llm import _core, pipelines

    cands = list(pipelines.parse(args.candidates.read_text())[1] if args.candidates else pipelines.candidates())
    if args.only:
        unknown = set(args.only) - {c.name for c in cands}
        if unknown:
            sys.exit(f"unknown candidates: {', '.join(sorted(unknown))}")
        cands = [c for c in cands if c.name == "oz" or c.name in args.only]
    names = [c.name for c in cands]
    mods = load_modules(args)
    if args.e2e:
        return e2e_check(args, mods)
    by_hash = {m["hash"]: m for m in mods}
    print(f"{len(mods)} modules, {len(cands)} candidates, {args.workers} workers", file=sys.stderr)

    # A pipeline the parser rejects fails everywhere; check it once, up front.
    probe = _core.LoadedModule(Path(mods[0]["path"]).read_bytes(), name=mods[0]["path"])
    parse_errors = {c.name: e for c in cands if (e := probe.check(c.passes))}
    del probe

    sizes: dict[str, dict] = collections.defaultdict(dict)    # round 1
    sizes2: dict[str, dict] = collections.defaultdict(dict)   # round 2
    secs: dict[str, float] = collections.defaultdict(float)   # round-1 seconds per module
    failures = []
    n_meas = 0

    def run_round(rnd: int, subset: list[dict], order: list, store: dict) -> None:
        nonlocal n_meas
        jobs = [(m["hash"], m["path"], [(c.name, c.passes, c.codegen) for c in order
                                        if c.name not in parse_errors])
                for m in sorted(subset, key=lambda m: -m["bytes"])]  # big first: the tail stays short
        prog = Progress(sum(len(j[2]) for j in jobs), f"round {rnd}")

        def on_result(mid, key, sz, err, t):
            nonlocal n_meas
            prog.step()
            if rnd == 1:
                secs[mid] += t
                n_meas += 1
            if sz is not None:
                store[mid][key] = sz
            else:
                m = by_hash[mid]
                failures.append({"pipeline": key, "hash": mid, "package": m["package"], "source": m["source"],
                                 "round": rnd, "error": err})
                print(f"\nfailure: {key} on {m['source']}: {err}", file=sys.stderr)

        with tempfile.TemporaryDirectory(prefix="fixed_pipelines.") as errdir:
            Pool(args.workers, args.timeout, errdir).run(jobs, on_result)
        prog.close()

    t0 = time.monotonic()
    run_round(1, mods, cands, sizes)
    wall1 = time.monotonic() - t0
    if args.determinism_sample != 0:
        sample = mods if args.determinism_sample < 0 else \
            random.Random(0).sample(mods, min(args.determinism_sample, len(mods)))
        # Reverse order: every pipeline now runs after different ones in its process,
        # which exposes state leaking between measurements (e.g. codegen options).
        run_round(2, sample, cands[::-1], sizes2)
    else:
        sample = []
    wall = time.monotonic() - t0

    nondet = []
    for mid, got in sizes2.items():
        for n, s in got.items():
            first = sizes[mid].get(n)
            if first is not None and first != s:
                m = by_hash[mid]
                nondet.append({"pipeline": n, "hash": mid, "package": m["package"], "source": m["source"],
                               "first": first, "second": s})

    stats = compare(names, mods, sizes)
    fail_count = collections.Counter(f["pipeline"] for f in failures)
    nondet_count = collections.Counter(f["pipeline"] for f in nondet)
    pipes = []
    for c in cands:
        s = stats[c.name]
        fails = fail_count[c.name] + (len(mods) if c.name in parse_errors else 0)
        pipes.append({
            "name": c.name,
            "geomean_ratio": s["geomean_ratio"], "total_ratio": s["total_ratio"],
            "improved": s["improved"], "regressed": s["regressed"], "equal": s["equal"],
            "failures": fails,
            "validated": bool(fails == 0 and nondet_count[c.name] == 0 and c.name not in parse_errors
                              and s["measured"] == len(mods) and len(sample) > 0),
            "codegen": c.codegen,
            "measured": s["measured"], "n_improved": s["n_improved"], "n_regressed": s["n_regressed"],
            "n_equal": s["n_equal"], "text_bytes": s["text_bytes"],
            "nondeterministic": nondet_count[c.name],
            **({"parse_error": parse_errors[c.name]} if c.name in parse_errors else {}),
        })
    # Best first (oz stays first, as in the candidate set), so the tables read top-down.
    pipes = [pipes[0]] + sorted(pipes[1:], key=lambda p: p["geomean_ratio"] or 9.0)

    valid = [p["name"] for p in pipes[1:] if p["validated"] and (p["geomean_ratio"] or 9) < 1]
    best = valid[0] if valid else "oz"
    ranked = [p["name"] for p in pipes[1:]]
    pools = {f"all {len(names)} candidates": names,
             "without machine outliner": [n for n in names if not n.endswith("+mo")],
             f"oz or {best} (verify mode, k=1)": sorted({"oz", best}),
             # What -Oz-llm=verify gets with the best-fixed back end once the candidate set
             # is ranked by this report: oz plus the 4 best-ranked candidates.
             "oz + top 4 (verify mode, default k=4)": ["oz", *ranked[:4]]}

    per_pkg = {}
    for pkg in sorted({m["package"] for m in mods}):
        pm = [m for m in mods if m["package"] == pkg]
        per_pkg[pkg] = {"modules": len(pm),
                        "oz_text": sum(sizes[m["hash"]].get("oz", {}).get("text", 0) for m in pm),
                        "pipelines": compare(names, pm, sizes),
                        "oracle": oracle(names, pm, sizes)}

    per_mod_s = sorted(secs.values())
    rep = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "modules": len(mods),
        "command": shlex.join(["python", "bench/fixed_pipelines.py", *(sys.argv[1:] if argv is None else argv)]),
        "llvm": _core.LLVM_VERSION,
        "candidates_hash": pipelines.set_hash(),
        "best_validated": best,
        "pipelines": pipes,
        "oracle": {label: oracle(pool, mods, sizes) for label, pool in pools.items()},
        "per_package": per_pkg,
        "determinism": {"modules_rechecked": len(sample), "nondeterministic": len(nondet),
                        "method": "round 2 in fresh spawned workers, candidates in reverse order"},
        "failures": failures,
        "nondeterministic": nondet,
        "timing": {
            "workers": args.workers, "wall_s": round(wall, 1), "round1_wall_s": round(wall1, 1),
            "measurements": n_meas,
            "modules_per_s": round(len(mods) / wall1, 3),
            "s_per_module": round(sum(per_mod_s) / len(per_mod_s), 3) if per_mod_s else 0,
            "median_s_per_module": round(per_mod_s[len(per_mod_s) // 2], 3) if per_mod_s else 0,
            "max_s_per_module": round(per_mod_s[-1], 3) if per_mod_s else 0,
            "s_per_measurement": round(sum(per_mod_s) / max(n_meas, 1), 4),
        },
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fixed_pipelines.json").write_text(json.dumps(rep, indent=1) + "\n")
    (out / "fixed_pipelines.md").write_text(markdown(rep))
    with open(out / "fixed_pipelines_sizes.json", "w") as f:
        f.write("{\n")
        rows = [f" {json.dumps(m['hash'])}: " + json.dumps({"package": m["package"], "source": m["source"],
                                                           "text": {n: s["text"] for n, s in sizes[m["hash"]].items()},
                                                           "data": {n: s["data"] for n, s in sizes[m["hash"]].items()}})
                for m in mods]
        f.write(",\n".join(rows) + "\n}\n")
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
