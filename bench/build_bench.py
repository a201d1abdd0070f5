#!/usr/bin/env python3
"""Whole-package build benchmark: clang-22 -Oz against clang-llm -Oz-llm and -Oz-llm=verify.

    python bench/build_bench.py                          # xz-utils, 3 repetitions
    python bench/build_bench.py --package zlib --reps 5
    python bench/build_bench.py --out /tmp/report        # writes /tmp/report.md and .json

One real Debian source package (clang_llm.train.debsrc) is configured and built in a
fresh tree for every configuration and repetition, the configurations rotating
order from one repetition to the next so that drift in the machine's speed (cache
warmth, thermal state, other load) does not land on one configuration. It reports:

  * whole-build wall time (configure + build) and the ratio to clang-22 -Oz
    (target for -Oz-llm: <= 1.10x), with configure and make also shown apart,
    because configure's probes are tiny compiles where per-call overhead dominates;
  * .text bytes per object and in total for each configuration against -Oz
    (measured with _core.object_sizes, the size function verify mode uses);
  * pass-through overhead: `clang-llm -c f.c -O2` against `clang-22 -c f.c -O2`
    on a small file, alternating calls (target: <= 30 ms added per call), and the
    same for a single -Oz-llm compile against -Oz.

Each configuration's test suite runs once (first repetition) to confirm that the
measured build is a working one; test time is not part of the build time. CPU time
(user + system of every build process) is reported beside wall time: on a shared
machine it is the steadier of the two. The decision log is off unless asked for
(--log-decisions), since writing it is not free and users do not pay for it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Where the clang-llm under test is installed: this venv's bin, or (--install wheel,
# the default) a scratch venv holding a wheel built from this checkout.
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "python"))  # run from a checkout without activating the venv

from clang_llm.train import debsrc  # noqa: E402


@dataclass(frozen=True)
class Config:
    name: str
    cc: str
    cflags: str
    uses_plugin: bool
    env: tuple[tuple[str, str], ...] = ()  # CLANG_LLM_* settings of this configuration

    @property
    def label(self) -> str:
        return " ".join([*(f"{k}={v}" for k, v in self.env), self.cc, self.cflags])

    @property
    def needs_model(self) -> bool:
        return ("CLANG_LLM_POLICY", "onnx") in self.env


CONFIGS = {
    "oz": Config("oz", "clang-22", "-Oz", False),
    "llm": Config("llm", "clang-llm", "-Oz-llm", True),
    "verify": Config("verify", "clang-llm", "-Oz-llm=verify", True),
    # The learned policy (not the default): what its Python + onnxruntime start
    # costs per compiler process, and what its verify order buys.
    "onnx": Config("onnx", "clang-llm", "-Oz-llm", True, (("CLANG_LLM_POLICY", "onnx"),)),
    "verify-onnx": Config("verify-onnx", "clang-llm", "-Oz-llm=verify", True, (("CLANG_LLM_POLICY", "onnx"),)),
}
DEFAULT_CONFIGS = ("oz", "llm", "verify")
BASELINE = "oz"
TIMES = ("wall_s", "configure_s", "build_s", "cpu_s", "configure_cpu_s", "build_cpu_s")

# Small but not trivial: a few functions, a loop, a switch, a struct, libc calls,
# so the compile exercises the front end and code generator a little.
SMALL_C = r"""
#include <stdio.h>
#include <string.h>

struct point { int x, y; };

static int manhattan(struct point a, struct point b) {
    int dx = a.x - b.x, dy = a.y - b.y;
    return (dx < 0 ? -dx : dx) + (dy < 0 ? -dy : dy);
}

int classify(const char *s) {
    switch (s[0]) {
    case 'a': return 1;
    case 'b': return 2;
    case 'c': return (int)strlen(s);
    default: return -1;
    }
}

int main(int argc, char **argv) {
    struct point p[8];
    int total = 0;
    for (int i = 0; i < 8; i++) { p[i].x = i * argc; p[i].y = 7 - i; }
    for (int i = 1; i < 8; i++) total += manhattan(p[i - 1], p[i]);
    printf("%d %d\n", total, argc > 1 ? classify(argv[1]) : 0);
    return 0;
}
"""


# --- helpers ------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "mean": statistics.fmean(xs),
        "median": statistics.median(xs),
        "min": xs[0],
        "max": xs[-1],
        "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
    }


def ratio(a: float, b: float) -> float | None:
    """a / b, or None where the baseline took no measurable time (no configure step)."""
    return a / b if b > 0.005 else None


def fmt_ratio(r: float | None, digits: int = 2) -> str:
    return "-" if r is None else f"{r:.{digits}f}x"


def base_env() -> dict[str, str]:
    """What the builds see: clang-llm on PATH; the caller's CLANG_LLM_* settings
    (a policy back end to benchmark, say) pass through on purpose."""
    return {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip() if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict:
    from clang_llm.train import cpu_model

    cpu = cpu_model()
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "clang": tool_version(["clang-22", "--version"]),
        "commit": git + ("+dirty" if dirty else ""),
        "policy_backend": os.environ.get("CLANG_LLM_POLICY", "") or "default",
    }


def install_wheel(where: Path, deps: bool = False) -> Path:
    """Build a wheel of this checkout and install it (without dependencies unless
    asked: the default back end needs none, the onnx one numpy and onnxruntime)
    into a fresh venv; returns that venv's bin.

    This is what `pip install .` gives a user: byte-compiled modules and pip's
    script wrappers. The development venv's editable install is slower to start
    (an import hook redirects clang_llm into the source tree), which would be
    measured as clang-llm's overhead though no user pays it."""
    dist = where / "dist"
    log(f"building a wheel of {REPO} ...")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
                   check=True)
    wheels = sorted(dist.glob("clang_llm-*.whl"))
    if not wheels:
        raise SystemExit(f"no wheel appeared in {dist}")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *([] if deps else ["--no-deps"]),
                    str(wheels[-1])], check=True)
    return venv / "bin"


# --- whole-package builds -------------------------------------------------------------

def one_build(package: str, cfg: Config, rep: int, work: Path, jobs: int, run_tests: bool,
              keep: bool, log_decisions: bool) -> dict:
    tree = debsrc.prepare(package, work / f"rep{rep}-{cfg.name}")
    env = {**base_env(), **dict(cfg.env)}
    decisions = work / f"rep{rep}-{cfg.name}.jsonl"
    if cfg.uses_plugin and log_decisions:
        env["CLANG_LLM_LOG"] = str(decisions)
    res = debsrc.build(package, tree, cfg.cc, cfg.cflags, env=env, jobs=jobs)
    row = {
        "config": cfg.name, "rep": rep,
        "configure_s": res.configure_s, "build_s": res.build_s, "wall_s": res.wall_s,
        "configure_cpu_s": res.configure_cpu_s, "build_cpu_s": res.build_cpu_s, "cpu_s": res.cpu_s,
        "text": debsrc.text_sizes(res.objects, tree),
    }
    if cfg.uses_plugin and decisions.exists():
        entries = [json.loads(line) for line in decisions.read_text().splitlines()]
        row["modules"] = len(entries)
        row["pipelines"] = dict(Counter(e["pipeline"] for e in entries).most_common())
        row["fallbacks"] = sum(1 for e in entries if e["fallback"])
        row["policy_s"] = sum(e["policy_ms"] for e in entries) / 1000
    if run_tests:
        t = debsrc.run_tests(package, tree, env=env, jobs=jobs)
        row["tests_ok"], row["tests_s"] = t.ok, t.seconds
        if not t.ok:
            log(f"  TESTS FAILED for {cfg.name}: see {t.log}\n{t.tail}")
            keep = True
    if not keep:
        shutil.rmtree(tree, ignore_errors=True)
    return row


def run_builds(package: str, configs: list[Config], reps: int, work: Path, jobs: int, keep: bool,
               log_decisions: bool) -> list[dict]:
    rows = []
    total = reps * len(configs)
    for rep in range(reps):
        # Rotate, so each configuration takes each position once every len(configs) reps.
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        for cfg in order:
            log(f"build {len(rows) + 1}/{total}: {package} rep {rep + 1} {cfg.name} ({cfg.label})")
            row = one_build(package, cfg, rep, work, jobs, run_tests=(rep == 0), keep=keep,
                            log_decisions=log_decisions)
            extra = f", tests {'ok' if row['tests_ok'] else 'FAILED'}" if "tests_ok" in row else ""
            log(f"  configure {row['configure_s']:.1f} s, build {row['build_s']:.1f} s, "
                f"total {row['wall_s']:.1f} s (CPU {row['cpu_s']:.1f} s), .text {sum(row['text'].values())} B{extra}")
            rows.append(row)
    return rows


def analyse_builds(rows: list[dict], configs: list[Config]) -> dict:
    by_cfg = {c.name: [r for r in rows if r["config"] == c.name] for c in configs}
    out = {}
    base_rows = by_cfg.get(BASELINE, [])
    for name, rs in by_cfg.items():
        if not rs:
            continue
        entry = {key: summary([r[key] for r in rs]) for key in TIMES}
        if base_rows and name != BASELINE:
            # Paired by repetition: each pair ran back to back, so the ratio of a
            # pair is less exposed to slow drift than the ratio of two means.
            paired = [ratio(r["wall_s"], b["wall_s"]) for r, b in zip(rs, base_rows)]
            entry["wall_ratio"] = {
                "of_medians": ratio(entry["wall_s"]["median"], summary([b["wall_s"] for b in base_rows])["median"]),
                "paired": paired,
                "paired_median": statistics.median([x for x in paired if x is not None] or [0.0]),
            }
            entry["ratio_of_medians"] = {
                key: ratio(entry[key]["median"], summary([b[key] for b in base_rows])["median"]) for key in TIMES}
        text = rs[0]["text"]
        entry["text_total"] = sum(text.values())
        entry["objects"] = len(text)
        entry["text_deterministic"] = all(r["text"] == text for r in rs)
        for key in ("tests_ok", "tests_s"):
            if key in rs[0]:
                entry[key] = rs[0][key]
        for key in ("modules", "pipelines", "fallbacks", "policy_s"):
            if key in rs[0]:
                entry[key] = rs[0][key]
        out[name] = entry
    if BASELINE in out:
        base_text = by_cfg[BASELINE][0]["text"]
        for name, entry in out.items():
            if name == BASELINE:
                continue
            text = by_cfg[name][0]["text"]
            common = base_text.keys() & text.keys()
            entry["text_ratio"] = entry["text_total"] / out[BASELINE]["text_total"]
            entry["objects_smaller"] = sum(1 for k in common if text[k] < base_text[k])
            entry["objects_larger"] = sum(1 for k in common if text[k] > base_text[k])
            entry["objects_only_one_side"] = sorted(base_text.keys() ^ text.keys())
    return out


# --- pass-through overhead --------------------------------------------------------------

def time_call(cmd: list[str], env: dict, cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def passthrough(reps: int) -> dict:
    """Per-call cost of going through clang-llm instead of straight to clang-22.

    Calls alternate (wrapper, direct, wrapper, ...) so both sides see the same
    machine state; a few warm-up calls first fill the page cache.
    """
    env = {**os.environ, **base_env()}
    env = {k: v for k, v in env.items() if not k.startswith("CLANG_LLM_")}
    llm = shutil.which("clang-llm", path=env["PATH"])
    clang = shutil.which("clang-22", path=env["PATH"])
    if not llm or not clang:
        raise SystemExit("clang-llm or clang-22 not found on PATH")
    from clang_llm import _paths

    plugin = _paths.plugin_path()

    def short(arg: str) -> str:
        if arg in (llm, clang):
            return Path(arg).name
        return arg.replace(plugin, Path(plugin).name)

    out = {}
    with tempfile.TemporaryDirectory(prefix="clang-llm-bench-") as tmp:
        (Path(tmp) / "small.c").write_text(SMALL_C)
        src, obj = "small.c", "small.o"
        cases = {
            # Without -Oz-llm the wrapper must only cost its own start-up.
            "passthrough_O2": ([llm, "-c", src, "-O2", "-o", obj], [clang, "-c", src, "-O2", "-o", obj]),
            # With it, one module also pays the plugin's start-up and the policy.
            "plugin_Ozllm_vs_Oz": ([llm, "-c", src, "-Oz-llm", "-o", obj],
                                   [clang, "-c", src, "-Oz", "-o", obj]),
            # The plugin without the driver, so with no decision preset by the
            # driver: what the plugin's embedded interpreter and policy add.
            "plugin_embedded_policy_vs_Oz": ([clang, "-c", src, "-Oz", "-Xclang", "-disable-llvm-passes",
                                   f"-fpass-plugin={plugin}", "-o", obj],
                                  [clang, "-c", src, "-Oz", "-o", obj]),
        }
        for name, (wrapped, direct) in cases.items():
            n = reps if name == "passthrough_O2" else max(reps // 4, 10)
            log(f"per-call overhead {name}: {n} alternating pairs")
            for _ in range(3):
                time_call(wrapped, env, tmp)
                time_call(direct, env, tmp)
            w, d = [], []
            for _ in range(n):
                w.append(time_call(wrapped, env, tmp))
                d.append(time_call(direct, env, tmp))
            diffs = [(a - b) * 1000 for a, b in zip(w, d)]
            out[name] = {
                "wrapped_cmd": " ".join(map(short, wrapped)),
                "direct_cmd": " ".join(map(short, direct)),
                "wrapped_ms": {k: v * 1000 if k not in ("n",) else v for k, v in summary(w).items()},
                "direct_ms": {k: v * 1000 if k not in ("n",) else v for k, v in summary(d).items()},
                "added_ms": summary(diffs),
            }
            a = out[name]["added_ms"]
            log(f"  added: mean {a['mean']:.1f} ms, median {a['median']:.1f} ms")
    return out


# --- report -------------------------------------------------------------------------------

def markdown(report: dict) -> str:
    lines = []
    p = report["params"]
    m = report["machine"]
    lines += [f"# Build benchmark: {p['package']}", "",
              f"{report['date']} | {m['cpu']} ({m['cores']} cores) | {m['clang']} | commit {m['commit']} | "
              f"policy back end: {m['policy_backend']}", "",
              f"{p['reps']} repetitions per configuration, make -j{p['jobs']}, fresh source tree per build, "
              "configuration order rotated between repetitions; "
              + ("decision log on (CLANG_LLM_LOG), so clang-llm times include writing it."
                 if p.get("log_decisions") else "no decision log (run with --log-decisions for the pipelines chosen).")
              + (" clang-llm installed from a wheel of this checkout into a scratch venv, as `pip install .` does."
                 if p.get("install") == "wheel" else " clang-llm from the development venv (editable install)."),
              "",
              f"Command: `{p['command']}`", ""]
    b = report.get("builds")
    if b:
        lines += ["## Whole-build wall time (configure + build)", "",
                  "| configuration | median s | mean s | min s | max s | ratio vs -Oz (medians) | paired ratios "
                  "| configure s (ratio) | make s (ratio) | tests |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
        for name, e in b.items():
            w = e["wall_s"]
            ratio = e.get("wall_ratio")
            r_txt = fmt_ratio(ratio["of_medians"], 3) if ratio else "1 (baseline)"
            paired = ", ".join(fmt_ratio(x, 3) for x in ratio["paired"]) if ratio else ""
            conf = f"{e['configure_s']['median']:.1f}"
            mk = f"{e['build_s']['median']:.1f}"
            if ratio:
                conf += f" ({fmt_ratio(e['ratio_of_medians']['configure_s'])})"
                mk += f" ({fmt_ratio(e['ratio_of_medians']['build_s'])})"
            tests = ("pass" if e["tests_ok"] else "FAIL") + f" ({e['tests_s']:.0f} s)" if "tests_ok" in e else "-"
            lines.append(f"| {CONFIGS[name].label} | {w['median']:.1f} | {w['mean']:.1f} | "
                         f"{w['min']:.1f} | {w['max']:.1f} | {r_txt} | {paired} | {conf} | {mk} | {tests} |")
        lines += ["", "## CPU time of the build (user + system, all processes)", "",
                  "Less sensitive than wall time to other work on the machine.", "",
                  "| configuration | median s | min s | max s | ratio vs -Oz (medians) | configure s (ratio) "
                  "| make s (ratio) |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, e in b.items():
            c = e["cpu_s"]
            rat = e.get("ratio_of_medians")
            cells = [f"{c['median']:.1f}", f"{c['min']:.1f}", f"{c['max']:.1f}",
                     fmt_ratio(rat["cpu_s"], 3) if rat else "1 (baseline)",
                     f"{e['configure_cpu_s']['median']:.1f}" + (f" ({fmt_ratio(rat['configure_cpu_s'])})" if rat else ""),
                     f"{e['build_cpu_s']['median']:.1f}" + (f" ({fmt_ratio(rat['build_cpu_s'])})" if rat else "")]
            lines.append(f"| {CONFIGS[name].label} | " + " | ".join(cells) + " |")
        if "llm" in b and "wall_ratio" in b["llm"]:
            r = b["llm"]["wall_ratio"]["of_medians"]
            rc = b["llm"]["ratio_of_medians"]["cpu_s"]
            lines += ["", f"Target for -Oz-llm: <= 1.10x. Measured: {fmt_ratio(r, 3)} wall, {fmt_ratio(rc, 3)} CPU -> "
                      f"{'met' if r is not None and r <= 1.10 else 'NOT met'} (wall)."]
        lines += ["", "## .text size", "",
                  "| configuration | objects | total .text B | vs -Oz | objects smaller / larger | "
                  "deterministic over reps | modules decided | pipelines chosen | fallbacks | policy s |",
                  "|---|---:|---:|---:|---|---|---:|---|---:|---:|"]
        for name, e in b.items():
            vs = f"{e['text_ratio']:.4f} ({e['text_total'] - b[BASELINE]['text_total']:+d} B)" \
                if "text_ratio" in e else "baseline"
            sl = f"{e['objects_smaller']} / {e['objects_larger']}" if "objects_smaller" in e else "-"
            pipes = ", ".join(f"{k}: {v}" for k, v in e.get("pipelines", {}).items()) or "-"
            policy = f"{e['policy_s']:.1f}" if "policy_s" in e else "-"
            lines.append(f"| {CONFIGS[name].label} | {e['objects']} | {e['text_total']} | {vs} "
                         f"| {sl} | {'yes' if e['text_deterministic'] else 'NO'} | {e.get('modules', '-')} "
                         f"| {pipes} | {e.get('fallbacks', '-')} | {policy} |")
        per = report.get("text_per_object", {})
        names = [n for n in b if n in per]
        if per and BASELINE in per:
            diff = [k for k in sorted(per[BASELINE]) if any(per[n].get(k) != per[BASELINE][k] for n in names)]
            lines += ["", f"### Per object (.text bytes): {len(diff)} of {len(per[BASELINE])} objects differ "
                      "from -Oz in some configuration", "",
                      "| object | " + " | ".join(names) + " |",
                      "|---|" + "---:|" * len(names)]
            for k in diff:
                cells = []
                for n in names:
                    v = per[n].get(k)
                    base = per[BASELINE].get(k)
                    cells.append("-" if v is None else (f"{v}" if n == BASELINE or v == base else f"{v} ({v - base:+d})"))
                lines.append(f"| {k} | " + " | ".join(cells) + " |")
            lines += ["", "All objects and their sizes are in the JSON report (text_per_object)."]
    pt = report.get("passthrough")
    if pt:
        lines += ["", "## Per-call overhead of the wrapper", "",
                  "| comparison | pairs | wrapper median ms | clang-22 median ms | added mean ms | added median ms "
                  "| added min ms |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, e in pt.items():
            lines.append(f"| `{e['wrapped_cmd']}` vs `{e['direct_cmd']}` | {e['added_ms']['n']} | "
                         f"{e['wrapped_ms']['median']:.1f} | {e['direct_ms']['median']:.1f} | "
                         f"{e['added_ms']['mean']:.1f} | {e['added_ms']['median']:.1f} | {e['added_ms']['min']:.1f} |")
        if "passthrough_O2" in pt:
            a = pt["passthrough_O2"]["added_ms"]["median"]
            lines += ["", f"Target for pass-through: <= 30 ms added per call. Measured median: {a:.1f} ms -> "
                      f"{'met' if a <= 30 else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", default="xz-utils", choices=sorted(debsrc.RECIPES),
                    help="Debian source package to build (default: xz-utils)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per configuration (default 3)")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help=f"comma-separated subset of {','.join(CONFIGS)} (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=2, help="make -j (default 2)")
    ap.add_argument("--passthrough-reps", type=int, default=100,
                    help="alternating call pairs for the pass-through measurement (default 100; 0 skips it)")
    ap.add_argument("--no-builds", action="store_true", help="only measure the per-call overhead")
    ap.add_argument("--log-decisions", action="store_true",
                    help="set CLANG_LLM_LOG in the clang-llm builds and report the pipelines chosen; "
                         "off by default because writing the log costs time in every compile")
    ap.add_argument("--work", type=Path, help="where build trees go (default: a temporary directory)")
    ap.add_argument("--keep-trees", action="store_true", help="keep the build trees")
    ap.add_argument("--install", choices=("wheel", "venv"), default="wheel",
                    help="the clang-llm to measure: 'wheel' (default) builds a wheel of this checkout into a "
                         "scratch venv, as a user would install it; 'venv' uses the one beside this Python")
    ap.add_argument("--out", type=Path,
                    help="report path without extension (default bench/out/build_bench-<package>-<time>)")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        ap.error(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    configs = [CONFIGS[n] for n in names]
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or HERE / "out" / f"build_bench-{args.package}-{stamp}"
    out.parent.mkdir(parents=True, exist_ok=True)
    global BIN
    install_dir = None
    if args.install == "wheel":
        install_dir = Path(tempfile.mkdtemp(prefix="clang-llm-bench-install-"))
        BIN = install_wheel(install_dir, deps=any(c.needs_model for c in configs))

    report = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "params": {"package": args.package, "reps": args.reps, "jobs": args.jobs, "configs": names,
                   "log_decisions": args.log_decisions, "install": args.install,
                   "passthrough_reps": args.passthrough_reps,
                   "command": " ".join(["python", "bench/build_bench.py", *(argv if argv is not None else sys.argv[1:])])},
    }
    start = time.perf_counter()
    if not args.no_builds:
        try:
            debsrc.fetch(args.package)
        except debsrc.FetchError as e:
            raise SystemExit(f"cannot get the source of {args.package}: {e}")
        work = args.work or Path(tempfile.mkdtemp(prefix="clang-llm-build-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            rows = run_builds(args.package, configs, args.reps, work, args.jobs, args.keep_trees,
                              args.log_decisions)
        finally:
            if not args.keep_trees and args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        report["runs"] = [{k: v for k, v in r.items() if k != "text"} for r in rows]
        report["text_per_object"] = {c.name: next(r["text"] for r in rows if r["config"] == c.name) for c in configs}
        out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")  # raw data first
        report["builds"] = analyse_builds(rows, configs)
    if args.passthrough_reps > 0:
        report["passthrough"] = passthrough(args.passthrough_reps)
    report["bench_wall_s"] = time.perf_counter() - start

    if install_dir is not None:
        shutil.rmtree(install_dir, ignore_errors=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    log(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    print()
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
