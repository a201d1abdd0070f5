"""Population climb: one pipeline made smaller on many modules at once.

The per-module search (search.py) finds what each module wants; the default
back end and the model's top-1 need pipelines that are smaller on the modules
the build has never seen. Once the code generator knobs changed what the
middle end should leave for them, no search had looked for that: the default
was the best single among per-module winners found without the knobs. This
climbs from a shipped candidate (its knob bits kept), a few edits at a time:
each step proposes mutants (search's edit grammar), measures them on a seeded
sample of training modules, and keeps the best only if it lowers the geomean
image bytes (clang_llm.sizes: what the module adds to the linked program) by at
least --min-gain without making RAM grow (the summed data + bss must not grow)
and without a failed evaluation on any module. At the end, the
pipeline of every accepted step is measured on a second sample from other
packages, so fitting the sample's own modules shows in the report.

    clang-llm-data climb --name NAME [--start CANDIDATE] [--steps 60] [--mutants 6]
                         [--offer 'function(dse,adce,simplifycfg)' ...]

Offers are module-level elements proposed, appended to the current pipeline,
at every step beside the random mutants: random edits draw passes from -Oz's
own pipeline (and passes.EXTRA_MODULE_PASSES), so a clean-up found by a probe
is tried on purpose rather than by chance, and again after each accepted step.

Resumable: the sample (DATA/climb/NAME/sample.json) and every step
(steps.jsonl) are kept and replayed on a rerun; evaluations are in the result
store. The result is a candidates file
(DATA/climb/NAME/candidates.tsv, the pipeline of every accepted step, last
first) for the gate and `validate admit`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

from .. import pipelines
from . import data_root
from . import passes as P

# At most this many sampled modules per package: the training split is
# dominated by a few large code bases (ffmpeg alone holds a seventh of it), and a
# default must win across packages.
PER_PACKAGE = 12


def climb_dir(name: str) -> Path:
    return data_root() / "climb" / name


def log_ratio(new: list[float], cur: list[float]) -> float:
    """Mean over modules of log((new + 1) / (cur + 1)): below 0 is smaller."""
    return sum(math.log((n + 1.0) / (c + 1.0)) for n, c in zip(new, cur)) / max(len(cur), 1)


def judge(cur_text: list[float], cur_total: list[float], new_text: list[float | None],
          new_total: list[float | None], min_gain: float) -> tuple[bool, float | None, str]:
    """Whether a mutant replaces the current pipeline: no failed module, image
    geomean (cur_text, new_text) lower by at least min_gain (log ratio), RAM
    (cur_total, new_total) not larger (a pass that makes a table writable must
    not count as a win). Returns (accept, image log ratio or None, reason)."""
    if any(t is None for t in new_text) or any(t is None for t in new_total):
        return False, None, "failed on a module"
    gain = log_ratio(new_text, cur_text)
    if not gain < -min_gain:
        return False, gain, "not smaller enough"
    if log_ratio(new_total, cur_total) > 0:
        return False, gain, "RAM larger"
    return True, gain, "smaller"


def with_floor(sizes, floor):
    """(image, RAM) per module as verify mode would get them with the
    pipeline measured beside others: the smaller by image of the pipeline and
    floor (the best of the others and -Oz per module, same order), or the
    sizes as they are without a floor. A failed module stays failed."""
    if floor is None:
        return sizes
    text, total = [], []
    for t, tt, (ft, ftt) in zip(*sizes, floor):
        if t is None:
            text.append(None)
            total.append(None)
        elif ft < t:
            text.append(ft)
            total.append(ftt)
        else:
            text.append(t)
            total.append(tt)
    return text, total


def floor_of(measured: list[tuple[list, list]]):
    """Per module, the (image, RAM) of the smallest by image among
    several pipelines' measurements (a failure counts as absent; where all
    failed, nothing is a floor)."""
    out = []
    for i in range(len(measured[0][0])):
        got = [(m[0][i], m[1][i]) for m in measured if m[0][i] is not None]
        out.append(min(got) if got else (math.inf, math.inf))
    return out


def sample_modules(lab, split_rows: list[int], seed: int, per_package: int, max_oz_text: int):
    """Training modules with bitcode here, at most per_package per package, in
    two package-disjoint halves (fit, check). Returns ([(hash, path)], [(hash, path)])."""
    from . import model as M

    rng = random.Random(seed)
    by_pkg: dict[str, list[int]] = {}
    for i in split_rows:
        if 0 < lab.size[i, 0] <= max_oz_text:
            by_pkg.setdefault(lab.package[i], []).append(i)
    pkgs = sorted(by_pkg)
    rng.shuffle(pkgs)
    halves: tuple[list, list] = ([], [])
    for n, p in enumerate(pkgs):
        rows = sorted(by_pkg[p])
        rng.shuffle(rows)
        halves[n % 2].extend((lab.modules[i], str(M._module_path(None, lab.modules[i]))) for i in rows[:per_package])
    # Mixed, so that any prefix (the climb's racing quarter) spans the packages.
    for h in halves:
        rng.shuffle(h)
    return halves


def _digest(passes: str) -> str:
    return hashlib.sha256(passes.encode()).hexdigest()[:16]


def propose(nodes, rng: random.Random, n: int, seen: set[str], offers=()) -> list[tuple[list, str]]:
    """Each offer appended to nodes, then up to n distinct mutants of nodes
    (1-2 edits each, search's grammar), none holding an unsafe pass or tried
    before (seen: _digest of each, which the step log keeps, so a resumed run
    proposes what an unbroken one would): [(edits, passes)]."""
    out = []

    def take(edits, text) -> bool:
        if not edits or _digest(text) in seen or pipelines.unsafe_passes(text):
            return False
        seen.add(_digest(text))
        out.append((edits, text))
        return True

    for text in offers:
        edit = ("append", text)
        take([edit], P.unparse(P.apply_edit(nodes, edit)))
    mutants = 0
    for _ in range(n * 20):
        if mutants >= n:
            break
        cur, edits = P.random_edits(nodes, rng, 2)
        mutants += take(edits, P.unparse(cur))
    return out


def _measure(mods, passes_list: list[str], codegen: int, store, args, desc: str):
    """{passes: ([image bytes or None per module], [RAM bytes or None per module])}."""
    from . import evaluate

    jobs = [evaluate.Job(h, p, passes, codegen) for passes in passes_list for h, p in mods]
    res = evaluate.run(jobs, store, backend=args.backend, workers=args.workers, timeout=args.timeout,
                       address=args.address, progress=not args.quiet, desc=desc)
    out = {}
    for passes in passes_list:
        key = evaluate.pipeline_key(passes, codegen)
        rs = [res[(h, key)] for h, _ in mods]
        out[passes] = ([r.size if r.ok else None for r in rs],
                       [r.ram if r.ok else None for r in rs])
    return out


def climb(fit, start, *, steps: int, mutants: int, min_gain: float, seed: int, store, args, log_path: Path,
          floor=None):
    """Climb from candidate start on modules fit ([(hash, path)]), logging each
    step to log_path and replaying the steps already there (a rerun resumes;
    a larger steps continues). With floor (per fit module, with_floor), the
    objective is the verify set's: the smaller of the pipeline and the floor.
    Returns (step records, [start passes, then the passes after each accepted
    step]); finals is None if the start fails."""
    done = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    nodes = P.base_nodes(start.passes)
    for s in done:
        if s["accepted"]:
            nodes = P.parse(s["passes"])
    seen = {h for s in done for h in s["tried"]} | {_digest(P.unparse(nodes))}
    t0 = time.time()
    base_fit = with_floor(_measure(fit, [start.passes], start.codegen, store, args, "climb: start")[start.passes],
                          floor)
    cur = P.unparse(nodes)
    cur_fit = base_fit if cur == start.passes else with_floor(
        _measure(fit, [cur], start.codegen, store, args, "climb: current")[cur], floor)
    if any(t is None for t in cur_fit[0]):
        return done, None
    for step in range(len(done), steps):
        rng = random.Random(f"{seed}:{step}")
        tried = propose(nodes, rng, mutants, seen, getattr(args, "offer", None) or ())
        # Racing: most mutants of a tuned pipeline are larger, which a quarter
        # of the sample shows; only those not larger there are measured on all.
        q = max(1, len(fit) // 4)
        first = _measure(fit[:q], [m for _, m in tried], start.codegen, store, args, f"climb: step {step + 1}")
        first = {m: with_floor(v, None if floor is None else floor[:q]) for m, v in first.items()}
        alive = [(e, m) for e, m in tried
                 if None not in first[m][0] and log_ratio(first[m][0], cur_fit[0][:q]) <= 0]
        got = _measure(fit, [m for _, m in alive], start.codegen, store, args, f"climb: step {step + 1}, all")
        got = {m: with_floor(v, floor) for m, v in got.items()}
        best = None
        for edits, text in alive:
            ok, gain, _ = judge(cur_fit[0], cur_fit[1], *got[text], min_gain)
            if ok and (best is None or gain < best[1]):
                best = (edits, gain, text)
        rec = {"step": step, "start": start.name, "seed": seed, "cover": getattr(args, "cover", 0),
               "accepted": best is not None,
               "tried": [_digest(m) for _, m in tried], "seconds": round(time.time() - t0, 1)}
        if best is not None:
            edits, gain, text = best
            nodes, cur_fit = P.parse(text), got[text]
            rec.update(edits=edits, passes=text, gain=gain, fit_vs_start=log_ratio(cur_fit[0], base_fit[0]))
            if not getattr(args, "quiet", False):
                print(f"climb step {step + 1}: accepted {gain:+.5f} (vs start {rec['fit_vs_start']:+.5f})",
                      file=sys.stderr)
        line = json.dumps(rec)
        with log_path.open("a") as f:
            f.write(line + "\n")
        done.append(json.loads(line))  # as a resumed run reads it
    return done, [start.passes] + [s["passes"] for s in done if s["accepted"]]


def _cmd_climb(args) -> int:
    from . import model as M
    from .store import Store

    others = []
    if args.cover:
        # Climb one member of verify mode's first K (--start picks which; default
        # the first) against the others and -Oz, all measured beside it.
        members = pipelines.verify_order()[:args.cover]
        start = pipelines.by_name(args.start) if args.start else members[0]
        if start not in members:
            print(f"clang-llm-data climb: {start.name} is not among verify mode's first {args.cover}: "
                  f"{', '.join(c.name for c in members)}", file=sys.stderr)
            return 2
        others = [pipelines.by_name("oz")] + [c for c in members if c != start]
    else:
        start = pipelines.by_name(args.start) if args.start else pipelines.best_fixed()
    lab = M.load_labels(None)
    out = climb_dir(args.name)
    sample_path = out / "sample.json"
    if sample_path.exists():
        # The sample a run started with, whatever was built since: a resumed
        # run must judge its steps on the same modules.
        fit, check = ([tuple(m) for m in half] for half in json.loads(sample_path.read_text()))
    else:
        have, _ = M.rows_with_bitcode(lab, "train", None)
        fit, check = sample_modules(lab, have, args.seed, args.per_package, args.max_oz_text)
    if not fit or not check:
        print("clang-llm-data climb: too few training modules with bitcode here (clang-llm-data corpus build)",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if not sample_path.exists():
        sample_path.write_text(json.dumps([fit, check]))
    log_path = out / "steps.jsonl"
    if log_path.exists():
        first = json.loads(log_path.read_text().splitlines()[0])
        if first["start"] != start.name or first["seed"] != args.seed or first.get("cover", 0) != args.cover:
            print(f"clang-llm-data climb: run {args.name} started from {first['start']} with seed "
                  f"{first['seed']}; use another --name", file=sys.stderr)
            return 2
    with Store(args.store or data_root() / "results.sqlite") as store:
        floors = {}
        for name, mods in (("fit", fit), ("check", check)):
            got = [_measure(mods, [c.passes], c.codegen, store, args, f"climb: {c.name}")[c.passes] for c in others]
            floors[name] = floor_of(got) if got else None
        steps, finals = climb(fit, start, steps=args.steps, mutants=args.mutants, min_gain=args.min_gain,
                              seed=args.seed, store=store, args=args, log_path=log_path, floor=floors["fit"])
        if finals is None:
            print("clang-llm-data climb: the start fails on a sampled module", file=sys.stderr)
            return 1
        on_check = {p: with_floor(v, floors["check"])
                    for p, v in _measure(check, finals, start.codegen, store, args, "climb: check").items()}
        on_fit = {p: with_floor(v, floors["fit"])
                  for p, v in _measure(fit, finals, start.codegen, store, args, "climb: fit").items()}
    report = summarise(args, start, fit, check, steps, finals, on_fit, on_check, lab)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    cands = [pipelines.Candidate(f"{args.prefix}{n:02d}{pipelines.knob_suffix(start.codegen)}", passes,
                                 start.codegen, False,
                                 f"climb {args.name} from {start.name}: {n} accepted steps, check sample "
                                 + (f"{report['steps'][n]['check_vs_start']:+.4f} log ratio"
                                    if report['steps'][n]['check_vs_start'] is not None else "failed"))
             for n, passes in reversed(list(enumerate(finals))) if n > 0]
    if cands:
        (out / "candidates.tsv").write_text(pipelines.write(
            cands, start.name, {"command": report["command"], "date": time.strftime("%Y-%m-%d")}))
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}, indent=1))
    print(f"wrote {out / 'report.json'}" + (f" and {out / 'candidates.tsv'}" if cands else ""))
    return 0


def summarise(args, start, fit, check, steps, finals, on_fit, on_check, lab) -> dict:
    """Per accepted step: geomean .text against the start on both samples, and
    against -Oz from the label table."""
    oz = {h: lab.size[i, 0] for i, h in enumerate(lab.modules)}
    package = dict(zip(lab.modules, lab.package))

    def vs_oz(mods, sizes):
        return math.exp(log_ratio(sizes, [oz[h] for h, _ in mods]))

    base_fit, base_check = on_fit[start.passes][0], on_check[start.passes][0]
    rows = []
    for n, passes in enumerate(finals):
        f, c = on_fit[passes][0], on_check[passes][0]
        c_ok = all(t is not None for t in c)
        rows.append({"accepted_step": n, "passes": passes,
                     "fit_vs_start": log_ratio(f, base_fit), "fit_vs_oz": vs_oz(fit, f),
                     "check_vs_start": log_ratio(c, base_check) if c_ok else None,
                     "check_vs_oz": vs_oz(check, c) if c_ok else None,
                     "check_failed": sum(t is None for t in c)})
    return {"command": "clang-llm-data " + " ".join(sys.argv[1:]), "start": start.name, "codegen": start.codegen,
            "cover": args.cover,
            "fit_modules": len(fit), "check_modules": len(check),
            "fit_packages": sorted({package[h] for h, _ in fit}),
            "check_packages": sorted({package[h] for h, _ in check}),
            "steps_run": len(steps), "accepted": len(finals) - 1, "min_gain": args.min_gain,
            "mutants_per_step": args.mutants, "steps": rows}


def register(sub) -> None:
    from .search import add_eval_options

    p = sub.add_parser("climb", help="make one pipeline smaller on a sample of training modules (resumable)")
    p.add_argument("--name", default="default", help="run name (output under DATA/climb/NAME)")
    p.add_argument("--start", default=None, help="candidate to start from (default: the shipped default)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--mutants", type=int, default=6, help="mutants measured per step")
    p.add_argument("--min-gain", type=float, default=0.0003,
                   help="log ratio by which a mutant must be smaller on the fit sample")
    p.add_argument("--per-package", type=int, default=PER_PACKAGE)
    p.add_argument("--max-oz-text", type=int, default=16384,
                   help="leave out modules larger than this under -Oz (bytes; they dominate time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cover", type=int, default=0, metavar="K",
                   help="climb a member (--start) of verify mode's first K for the set: the objective is the "
                        "smallest of it, the other K-1 and -Oz per module")
    p.add_argument("--offer", action="append", metavar="ELEMENT",
                   help="a module-level pipeline element (e.g. 'function(dse,adce,simplifycfg)') proposed "
                        "appended at every step beside the random mutants; repeatable")
    p.add_argument("--prefix", default="c", help="candidate names: PREFIX + accepted steps + knob suffix")
    add_eval_options(p)
    p.set_defaults(func=_cmd_climb)
