#!/usr/bin/env python3
"""Linked programs of the held-out test packages: clang-22 -Oz against clang-llm.

    python bench/program_sizes.py                        # every test-split package: oz, llm, verify
    python bench/program_sizes.py --packages xz-utils lua5.4 --configs oz,llm,onnx --tests
    python bench/program_sizes.py --work /var/tmp/ps     # resumable: finished builds are kept as JSON

The label table measures modules; what a user ships is linked programs. Each test
package (split.json's "test": never seen by search, selection or training) is
built from its corpus manifest entry once per configuration, the -Oz baseline in
the same run, and every linked ELF file the build leaves (executables and shared
objects; not objects, archives or build-system probes) is measured with the
project's one size function (_core.object_sizes: the executable sections, here
.init, .plt, .text, .fini) and compared, file by file, with the same file under
-Oz. With --tests the package's own tests (where this script knows how to run
them) run in every configuration's tree, so a failure that -Oz shares is told
apart from one clang-llm causes.

It is a size benchmark, not a timing one: build times are recorded, but the
machine may be busy (build_bench.py times builds). Each finished
(package, configuration) build is saved under WORK/results, so a rerun with the
same --work skips it. Writes OUT.json, OUT.md and OUT.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import statistics
import struct
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(HERE))

from build_bench import BASELINE, CONFIGS, log, machine_info  # noqa: E402
from clang_llm import debsrc  # noqa: E402
from clang_llm.train import corpus  # noqa: E402

DEFAULT_CONFIGS = ("oz", "llm", "verify")

# Test commands for packages whose corpus recipe does not run tests; debsrc's own
# recipes (xz-utils, lua5.4) bring theirs. Only suites that need no network and
# finish in minutes on 2 cores.
TEST_COMMANDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "libtasn1-6": (("make", "-k", "check", "-j{jobs}"),),
    "pcre3": (("make", "-k", "check", "-j{jobs}"),),
    "libxslt": (("make", "-k", "check", "-j{jobs}"),),
    "indent": (("make", "-k", "check", "-j{jobs}"),),
}

ET_EXEC, ET_DYN, PT_INTERP = 2, 3, 3


def elf_kind(path: Path) -> str | None:
    """"executable" or "shared object" for a linked little-endian ELF64 file, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            e_type, = struct.unpack_from("<H", head, 16)
            if e_type == ET_EXEC:
                return "executable"
            if e_type != ET_DYN:
                return None
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    # A position-independent executable is ET_DYN too; its program interpreter tells it apart.
    interp = any(struct.unpack_from("<I", table, i * phentsize)[0] == PT_INTERP for i in range(phnum))
    return "executable" if interp else "shared object"


def is_probe(rel: str) -> bool:
    """A build-system probe, not a program of the package: anything linked under
    CMakeFiles (CMake's compiler identification and ABI checks, try-compiles; the
    targets' own objects live there, but no linked program does) or in debsrc's
    probe directories, and autoconf's conftest."""
    parts = Path(rel).parts
    return "CMakeFiles" in parts or bool(debsrc.PROBE_DIRS & set(parts)) or parts[-1].startswith("conftest")


def linked_programs(tree: Path) -> dict[str, dict]:
    """Relative path -> {"kind", "text"} for every linked ELF file under tree.

    Symbolic links (libfoo.so -> libfoo.so.1.2) are left out and hard links
    (git's builtins are links to git) counted once, under the first path in
    walk order, so each file counts once; so are build-system probes (is_probe)."""
    from clang_llm import _core

    out = {}
    seen = set()
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in ("CMakeFiles", ".git") and d not in debsrc.PROBE_DIRS)
        for name in sorted(files):
            p = Path(root) / name
            if p.is_symlink() or name.endswith((".o", ".a")) or is_probe(str(p.relative_to(tree))):
                continue
            kind = elf_kind(p)
            st = p.stat()
            if kind is None or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            out[str(p.relative_to(tree))] = {"kind": kind, "text": int(_core.object_sizes(p.read_bytes())["text"])}
    return out


def package_tests(package: str, entry) -> debsrc.Recipe | None:
    if package in debsrc.RECIPES and debsrc.RECIPES[package].test:
        r = debsrc.RECIPES[package]
        return debsrc.Recipe(package, entry.system, (), (), r.test, files=r.files)
    if package in TEST_COMMANDS:
        return debsrc.Recipe(package, entry.system, (), (), TEST_COMMANDS[package])
    return None


def build_one(package: str, entry, cfg, work: Path, jobs: int, tests: bool, keep: bool) -> dict:
    corpus.ensure_apt(entry.apt)
    tree = work / "trees" / f"{package}-{cfg.name}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    corpus.prepare_tree(entry, tree)
    decisions = work / "trees" / f"{package}-{cfg.name}.jsonl"
    decisions.unlink(missing_ok=True)
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           # the caller's shell settings must not change what a configuration means
           "CLANG_LLM_MODE": "", "CLANG_LLM_STRICT": "0", "CLANG_LLM_CAPTURE": "",
           **entry.env, **dict(cfg.env)}
    if cfg.uses_plugin:
        env["CLANG_LLM_LOG"] = str(decisions)
    row = {"package": package, "config": cfg.name, "label": cfg.label, "status": "ok", "reason": ""}
    t0 = time.monotonic()
    try:
        res = debsrc.build(entry.recipe(), tree, cfg.cc, cfg.cflags, env=env, jobs=jobs, timeout=entry.timeout)
        row.update(configure_s=round(res.configure_s, 1), build_s=round(res.build_s, 1))
    except debsrc.BuildError as e:
        # make -k went on past the failure: what did link is still measured, and
        # only files linked under both configurations are compared.
        row.update(status="partial", reason=str(e).splitlines()[0][:300])
    row["wall_s"] = round(time.monotonic() - t0, 1)
    row["programs"] = linked_programs(tree)
    row["objects"] = len(debsrc.object_files(tree))
    if decisions.exists():
        entries = [json.loads(line) for line in decisions.read_text().splitlines() if line.strip()]
        row["modules"] = len(entries)
        row["fallbacks"] = sum(1 for e in entries if e.get("fallback"))
        row["pipelines"] = dict(Counter(e["pipeline"] for e in entries).most_common())
        row["notes"] = dict(Counter(e["note"].split(" (")[0] for e in entries if e.get("note")))
    recipe = package_tests(package, entry) if tests else None
    if recipe is not None:
        for rel, text in recipe.files.items():  # a self-test script the corpus recipe does not write
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_text(text, encoding="utf-8")
        t = debsrc.run_tests(recipe, tree, env=env, jobs=jobs)
        row["tests"] = {"ok": t.ok, "returncode": t.returncode, "seconds": round(t.seconds, 1),
                        "command": [" ".join(c) for c in recipe.test]}
        if not t.ok:
            log(f"  tests FAILED ({package}, {cfg.name}): {t.log}\n{t.tail}")
            keep = True
    if not keep:
        shutil.rmtree(tree, ignore_errors=True)
        decisions.unlink(missing_ok=True)
    return row


def geomean(xs: list[float]) -> float | None:
    return math.exp(statistics.fmean(math.log(x) for x in xs)) if xs else None


def compare(rows: dict[tuple[str, str], dict], packages: list[str], configs: list[str]) -> dict:
    """Per package and pooled: each configuration's linked files against the same files under -Oz."""
    out = {"packages": {}, "overall": {}}
    pooled = {c: [] for c in configs if c != BASELINE}
    # Results saved before a probe rule was added still list such files.
    rows = {key: {**row, "programs": {k: v for k, v in row["programs"].items() if not is_probe(k)}}
            for key, row in rows.items()}
    for pkg in packages:
        base = rows.get((pkg, BASELINE))
        if base is None:
            continue
        entry = {"status": {c: rows[(pkg, c)]["status"] for c in configs if (pkg, c) in rows}, "configs": {}}
        for c in pooled:
            row = rows.get((pkg, c))
            if row is None:
                continue
            common = sorted(base["programs"].keys() & row["programs"].keys())
            pairs = [(base["programs"][k]["text"], row["programs"][k]["text"], base["programs"][k]["kind"])
                     for k in common if base["programs"][k]["text"] > 0]
            larger = [[k, base["programs"][k]["text"], row["programs"][k]["text"]] for k in common
                      if row["programs"][k]["text"] > base["programs"][k]["text"]]
            if not pairs:
                continue
            ratios = [b / a for a, b, _ in pairs]
            pooled[c] += [(pkg, a, b, kind) for a, b, kind in pairs]
            entry["configs"][c] = {
                "files": len(pairs),
                "executables": sum(1 for *_, k in pairs if k == "executable"),
                "oz_text": sum(a for a, _, _ in pairs), "text": sum(b for _, b, _ in pairs),
                "total_ratio": sum(b for _, b, _ in pairs) / sum(a for a, _, _ in pairs),
                "geomean_ratio": geomean(ratios),
                "smaller": sum(1 for r in ratios if r < 1), "larger": sum(1 for r in ratios if r > 1),
                "only_one_side": sorted(base["programs"].keys() ^ row["programs"].keys()),
                "larger_files": larger,
                "fallbacks": row.get("fallbacks"), "modules": row.get("modules"),
                "tests": row.get("tests"), "oz_tests": base.get("tests"),
            }
        out["packages"][pkg] = entry
    for c, items in pooled.items():
        if not items:
            continue
        per_pkg = [out["packages"][p]["configs"][c]["total_ratio"] for p in out["packages"]
                   if c in out["packages"][p]["configs"]]
        ratios = [b / a for _, a, b, _ in items]
        exe = [b / a for _, a, b, k in items if k == "executable"]
        out["overall"][c] = {
            "packages": len(per_pkg), "files": len(items), "executables": len(exe),
            "geomean_ratio": geomean(ratios), "geomean_ratio_executables": geomean(exe),
            "total_ratio": sum(b for _, _, b, _ in items) / sum(a for _, a, _, _ in items),
            "geomean_of_package_totals": geomean(per_pkg),
            "smaller": sum(1 for r in ratios if r < 1), "larger": sum(1 for r in ratios if r > 1),
            "packages_larger": sum(1 for r in per_pkg if r > 1),
        }
    return out


def pct(r: float | None) -> str:
    return "-" if r is None else f"{(r - 1) * 100:+.2f}%"


def markdown(report: dict) -> str:
    cmp_, labels = report["comparison"], report["labels"]
    others = [c for c in report["params"]["configs"] if c != BASELINE]
    lines = ["# Linked programs of the test packages against clang-22 -Oz", "",
             f"{report['date']}, {report['machine']['cpu']}, {report['machine']['cores']} cores, "
             f"commit {report['machine']['commit']}. Packages: the test split of "
             "`python/clang_llm/train/data/split.json` (never used by search, candidate selection or training), "
             "each built from its corpus manifest entry once per configuration, -Oz among them, on this "
             "machine (resumable: see the command). Every linked ELF "
             "file (executables and shared objects) is measured (executable sections: .init, .plt, .text, "
             ".fini) and compared with the same file built with -Oz; ratios are configuration / -Oz.", "",
             "Configurations: " + "; ".join(f"`{c}`: `{labels[c]}`" for c in report["params"]["configs"]) + ".", "",
             "## All linked files", "",
             "| configuration | packages | files (executables) | geomean per file | geomean per executable "
             "| total | geomean of package totals | files smaller / larger | packages larger |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c in others:
        o = cmp_["overall"].get(c)
        if o:
            lines.append(f"| {c} | {o['packages']} | {o['files']} ({o['executables']}) | {pct(o['geomean_ratio'])} | "
                         f"{pct(o['geomean_ratio_executables'])} | {pct(o['total_ratio'])} | "
                         f"{pct(o['geomean_of_package_totals'])} | {o['smaller']} / {o['larger']} | "
                         f"{o['packages_larger']} |")
    lines += ["", "## Per package", "",
              "| package | -Oz build | files (executables) | -Oz bytes | "
              + " | ".join(f"{c} total | {c} geomean | {c} smaller / larger" for c in others) + " | tests |",
              "| --- | --- | ---: | ---: | " + " | ".join("---: | ---: | ---:" for _ in others) + " | --- |"]
    for pkg, e in cmp_["packages"].items():
        first = next(iter(e["configs"].values()), None)
        if first is None:
            lines.append(f"| {pkg} | {e['status'].get(BASELINE)} | no linked files | | "
                         + " | ".join(" | | " for _ in others) + " | |")
            continue
        cells = []
        for c in others:
            x = e["configs"].get(c)
            cells.append(" | | " if x is None else
                         f"{pct(x['total_ratio'])} | {pct(x['geomean_ratio'])} | {x['smaller']} / {x['larger']}")
        tests = []
        for c in report["params"]["configs"]:
            t = report["builds"].get(f"{pkg}/{c}", {}).get("tests")
            if t:
                tests.append(f"{c} {'ok' if t['ok'] else 'FAILED'}")
        lines.append(f"| {pkg} | {e['status'].get(BASELINE)} | {first['files']} ({first['executables']}) | "
                     f"{first['oz_text']:,} | " + " | ".join(cells) + f" | {', '.join(tests)} |")
    for c in others:
        larger = [f"{pkg} `{f}` {a:,} -> {b:,} B" for pkg, e in cmp_["packages"].items()
                  for f, a, b in e["configs"].get(c, {}).get("larger_files", [])]
        if larger:
            lines += ["", f"Files larger under `{c}` than under -Oz ({len(larger)}): " + "; ".join(larger[:20])
                      + ("; ..." if len(larger) > 20 else "") + "."]
    missing = [f"{pkg} ({c}): {', '.join(x['only_one_side'][:5])}" for pkg, e in cmp_["packages"].items()
               for c, x in e["configs"].items() if x["only_one_side"]]
    if missing:
        lines += ["", "Linked under one configuration only (left out of the comparison): " + "; ".join(missing) + "."]
    fallbacks = [f"{pkg} {c}: {x['fallbacks']} of {x['modules']}" for pkg, e in cmp_["packages"].items()
                 for c, x in e["configs"].items() if x.get("fallbacks")]
    for c in others:
        chosen = Counter()
        for key, b in report["builds"].items():
            if key.endswith(f"/{c}"):
                chosen.update(b.get("pipelines", {}))
        if chosen:
            top = ", ".join(f"`{name}` {n}" for name, n in chosen.most_common(6))
            more = len(chosen) - 6
            lines += ["", f"Pipelines `{c}` chose ({sum(chosen.values()):,} modules, decision log): {top}"
                      + (f" and {more} more." if more > 0 else ".")]
    lines += ["", "Modules that fell back to -Oz (decision log): "
              + ("; ".join(fallbacks) if fallbacks else "none") + "."]
    lines += ["", "![per package](" + Path(report["out"]).with_suffix(".png").name + ")", "",
              f"Command: `{report['params']['command']}` ({report['bench_wall_s'] / 60:.0f} min of builds in this "
              "invocation; builds saved by an earlier one with the same --work were reused)."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmp_ = report["comparison"]
    others = [c for c in report["params"]["configs"] if c != BASELINE]
    pkgs = [p for p, e in cmp_["packages"].items() if e["configs"]]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(pkgs) + 1.5))
    h = 0.8 / max(1, len(others))
    for i, c in enumerate(others):
        ys = [k + i * h for k in range(len(pkgs))]
        xs = [(cmp_["packages"][p]["configs"].get(c, {}).get("total_ratio", 1) - 1) * 100 for p in pkgs]
        ax.barh(ys, xs, height=h, label=report["labels"][c])
    ax.set_yticks([k + h * (len(others) - 1) / 2 for k in range(len(pkgs))], pkgs)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("linked executable bytes vs clang-22 -Oz, package total (%)")
    ax.set_title("Test packages: linked programs and shared objects")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", nargs="+", help="default: every test-split package, smallest build first")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help=f"comma-separated, {BASELINE} first; any of {','.join(CONFIGS)} (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tests", action="store_true", help="run the packages' own tests where known, every configuration")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "clang-llm-program-sizes",
                    help="build trees and saved results (resumable; default: %(default)s)")
    ap.add_argument("--keep-trees", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "program_sizes",
                    help="report path without extension (default: %(default)s)")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if not names or names[0] != BASELINE or any(n not in CONFIGS for n in names):
        ap.error(f"--configs must start with {BASELINE} and name only {', '.join(CONFIGS)}")
    split = corpus.load_split()
    manifest = corpus.load_manifest()
    if args.packages:
        packages = args.packages
        bad = [p for p in packages if p not in manifest]
        if bad:
            ap.error(f"not in the corpus manifest: {', '.join(bad)}")
    else:
        records = corpus.records()
        packages = sorted((p for p, s in split.items() if s == "test"),
                          key=lambda p: records.get(p, {}).get("configure_s", 0) + records.get(p, {}).get("build_s", 0))
    saved = args.work / "results"
    saved.mkdir(parents=True, exist_ok=True)
    rows: dict[tuple[str, str], dict] = {}
    start = time.perf_counter()
    total = len(packages) * len(names)
    for i, (pkg, name) in enumerate(((p, n) for p in packages for n in names), 1):
        path = saved / f"{pkg}--{name}{'--tests' if args.tests else ''}.json"
        if path.exists():
            rows[(pkg, name)] = json.loads(path.read_text())
            continue
        log(f"build {i}/{total}: {pkg} {name} ({CONFIGS[name].label})")
        row = build_one(pkg, manifest[pkg], CONFIGS[name], args.work, args.jobs, args.tests, args.keep_trees)
        log(f"  {row['status']} in {row['wall_s']:.0f} s: {len(row['programs'])} linked files, "
            f"{sum(p['text'] for p in row['programs'].values()):,} bytes"
            + (f", tests {'ok' if row['tests']['ok'] else 'FAILED'}" if "tests" in row else ""))
        path.write_text(json.dumps(row, indent=1) + "\n")
        rows[(pkg, name)] = row

    report = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "params": {"packages": packages, "configs": names, "jobs": args.jobs, "tests": args.tests,
                   "command": " ".join(["python", "bench/program_sizes.py",
                                        *(argv if argv is not None else sys.argv[1:])])},
        "labels": {n: CONFIGS[n].label for n in names},
        "out": str(args.out),
        "builds": {f"{p}/{n}": {k: v for k, v in r.items() if k != "programs"} for (p, n), r in rows.items()},
        "programs": {f"{p}/{n}": r["programs"] for (p, n), r in rows.items()},
        "comparison": compare(rows, packages, names),
        "bench_wall_s": time.perf_counter() - start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(markdown(report))
    log(f"wrote {args.out.with_suffix('.md')}")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
