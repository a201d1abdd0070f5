"""clang-llm explain: what the learned policy would do with a file, and why.

    clang-llm explain FILE.c [clang flags...] [--measure] [--top N] [--json]

For every source file among the arguments: compile it to the module the plugin
would see (clang-22 -Oz -Xclang -disable-llvm-passes -emit-llvm -c, with the
given flags), rank the candidate pipelines with the policy's model
(clang_llm.ranker, CLANG_LLM_MODEL to use another), and print the chosen
pipeline, its predicted size relative to -Oz, the next alternatives, why the
chosen one was chosen (the model's margin for its preferred candidate, a module
outside its training range) and what the configured back end (CLANG_LLM_POLICY;
by default the fixed best pipeline, whatever the model says) would compile. With
--measure, also run -Oz and each shown candidate on the module (in process,
clang_llm._core, clang -Oz's code generator) and print the measured size next
to the predicted one: the bytes the module adds to a linked program ("image")
where the measurement gives it, else .text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from . import _paths

# What clang-llm -Oz-llm's back ends other than the model do with every module.
_NOT_THE_MODEL = {
    "best-fixed": "the fixed best pipeline on every module",
    "oz": "clang's own -Oz pipeline on every module",
    "fixed": "the pipeline given by CLANG_LLM_PIPELINE on every module",
}

CXX_EXT = {"cc", "cp", "cxx", "cpp", "CPP", "c++", "C", "ii"}
SOURCE_EXT = {"c", "i"} | CXX_EXT


def _split(args: list[str]) -> tuple[dict, list[str], list[str]]:
    """(explain options, source files, flags for clang)."""
    from .clang_options import SEPARATE_VALUE

    opts = {"measure": False, "top": 4, "json": False}
    files, flags = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--measure":
            opts["measure"] = True
        elif a == "--json":
            opts["json"] = True
        elif a == "--top" or a.startswith("--top="):
            value = a.partition("=")[2] if "=" in a else (args[i + 1] if i + 1 < len(args) else "")
            if "=" not in a:
                i += 1
            try:
                opts["top"] = max(int(value), 0)
            except ValueError:
                raise ValueError(f"--top needs a number, not {value!r}") from None
        elif a in ("-c", "-S", "-emit-llvm") or a.startswith("-O"):
            pass  # explain decides these itself
        elif a == "-o":
            i += 1  # no output file: explain writes none
        elif a in SEPARATE_VALUE and i + 1 < len(args):
            flags += [a, args[i + 1]]
            i += 1
        elif not a.startswith("-") and a.rpartition(".")[2] in SOURCE_EXT:
            files.append(a)
        else:
            flags.append(a)
        i += 1
    return opts, files, flags


def _module(path: str, flags: list[str]) -> bytes:
    cxx = path.rpartition(".")[2] in CXX_EXT
    clang = _paths.find_clang(cxx)
    with tempfile.TemporaryDirectory(prefix="clang-llm-explain-") as tmp:
        out = os.path.join(tmp, "m.bc")
        cmd = [clang, *flags, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", path, "-o", out]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"clang failed on {path}:\n{r.stderr.rstrip()}")
        with open(out, "rb") as f:
            return f.read()


def explain(path: str, flags: list[str], ranker, top: int, measure: bool) -> dict:
    from . import _core

    mod = _core.LoadedModule(_module(path, flags), path)
    ranked, predicted, verify = ranker.rank(mod.ir_text(), verify=True)
    shown = ranked[: 1 + top]
    report = {
        "file": path,
        "module_hash": mod.content_hash(),
        "ir_instructions": mod.instruction_count(),
        "chosen": ranked[0].name,
        "why": why_chosen(ranker, ranked, predicted),
        "policy": configured_policy(),
        "candidates": [{"name": c.name, "predicted_ratio": predicted[c.name]} for c in shown],
        # What -Oz-llm=verify measures besides -Oz (CLANG_LLM_VERIFY_K of them).
        "verify_order": [c.name for c in verify[: max(top, 4)]],
    }
    report["legend"] = legend([*report["candidates"], *({"name": n} for n in report["verify_order"])])
    if ranker.last_outside:
        report["outside_training_range"] = ranker.last_outside
    if "oz" not in {c.name for c in shown}:
        report["oz_rank"] = 1 + [c.name for c in ranked].index("oz")
    if measure:
        measure_shown(report, shown, mod.measure)
    return report


def measure_shown(report: dict, shown, measure) -> None:
    """Adds -Oz's and each shown candidate's measured size to report, beside the
    prediction: the image (what a linked program grows by) where measure gives
    it, else .text."""
    from . import pipelines

    oz = measure(pipelines.oz_pipeline(), 0)
    metric = "image" if "image" in oz else "text"
    report["size_metric"] = metric
    report["oz_text"] = oz["text"]
    report[f"oz_{metric}"] = oz[metric]
    for entry, cand in zip(report["candidates"], shown):
        try:
            sizes = measure(cand.passes, cand.codegen)
        except Exception as e:  # one failing candidate is itself worth showing
            entry["error"] = " ".join(str(e).split())
            continue
        entry["text"] = sizes["text"]
        entry[metric] = sizes[metric]
        entry["predicted_text"] = round(oz["text"] * entry["predicted_ratio"])
        entry["measured_ratio"] = round(sizes[metric] / oz[metric], 5) if oz[metric] else None


def why_chosen(ranker, ranked, predicted: dict) -> str:
    """Why the model's top-1 is ranked[0], in one sentence: the preference for
    one candidate and its margin, or the training range, decide more often than
    the predictions alone."""
    import math

    from . import pipelines

    chosen = ranked[0]
    default = " (the default, best-fixed)" if chosen == pipelines.best_fixed() else ""
    if ranker.last_outside:
        return (f"the module is outside the model's training range ({ranker.last_outside}), so its "
                f"predictions are not used: top-1 keeps the preferred candidate {chosen.name}{default}")
    if ranker.prefer is None:
        return f"the smallest predicted size{default}"
    preferred = ranker.candidates[ranker.prefer[0]]
    margin = ranker.prefer[1]
    others = [c for c in ranked if c != preferred]
    log = {c.name: math.log(predicted[c.name]) for c in ranked if predicted.get(c.name, 0) > 0}
    pct = lambda x: f"{math.exp(x) - 1:.2%}"
    if chosen == preferred:
        if not others or chosen.name not in log:
            return f"the model's preferred candidate{default}"
        rival = min(others, key=lambda c: log.get(c.name, math.inf))
        lead = log[chosen.name] - log.get(rival.name, math.inf)
        if lead <= 0:
            return f"the model's preferred candidate{default}, and also its smallest prediction"
        return (f"the model's preferred candidate{default}: {rival.name} is predicted smaller by "
                f"{pct(lead)}, less than the margin of {pct(margin)} the model needs to leave it")
    gap = log.get(preferred.name, math.inf) - log.get(chosen.name, math.inf)
    return (f"predicted smaller than the model's preferred candidate {preferred.name} by {pct(gap)}, "
            f"more than its margin of {pct(margin)}")


def configured_policy() -> dict:
    """What clang-llm -Oz-llm compiles under the current CLANG_LLM_POLICY: the
    model's choice shown here only under `onnx`."""
    from . import policy

    name = policy.backend_name()
    out = {"backend": name}
    if name == "onnx":
        out["note"] = "clang-llm -Oz-llm (CLANG_LLM_POLICY=onnx) compiles the chosen candidate"
    elif name in _NOT_THE_MODEL:
        try:
            cand = policy._backend(name)(None)[0]
        except Exception as e:
            out["note"] = f"CLANG_LLM_POLICY={name} falls back to -Oz: {' '.join(str(e).split())}"
        else:
            out["pipeline"] = cand.name
            out["note"] = (f"clang-llm -Oz-llm uses the {name} back end{' (the default)' if name == policy.DEFAULT_BACKEND else ''}: "
                           f"{_NOT_THE_MODEL[name]} ({cand.name}), not the model's choice; CLANG_LLM_POLICY=onnx "
                           "compiles the chosen candidate below")
    else:
        out["note"] = f"clang-llm -Oz-llm asks {name}; the model's choice is shown for comparison"
    return out


def legend(entries) -> dict:
    """The name parts that occur among the shown candidates, with what they mean."""
    from . import pipelines

    names = [e["name"] for e in entries]
    parts = {p for n in names for p in n.split("+")[1:]}
    out = {"stem": "a name's first part (s24, e01) is its IR pass pipeline (s: random search, c/e/m: hill "
                   "climbs; `python -m clang_llm.pipelines list`), and each +suffix sets a code generator knob"}
    if any("-iroutliner" in n for n in names):
        out["-iroutliner"] = "the same pipeline with the iroutliner pass removed (it miscompiles in LLVM 22)"
    for knob, _bit, meaning in pipelines.KNOBS:
        if knob in parts:
            out[knob] = meaning
    return out


def _print(rep: dict) -> None:
    print(f"{rep['file']}: module {rep['module_hash']}, {rep['ir_instructions']} IR instructions")
    print(f"  policy: {rep['policy']['note']}")
    metric = rep.get("size_metric")
    oz = rep.get(f"oz_{metric}") if metric else None
    label = "image" if metric == "image" else ".text"
    if metric:
        what = ("bytes the module adds to a linked program: code, read-only data, unwind tables, data"
                if metric == "image" else "bytes of code")
        print(f"  -Oz {label}: {oz} bytes (measured; {what})")
    width = max(len(c["name"]) for c in rep["candidates"]) if rep["candidates"] else 9
    header = f"  {'':7} {'candidate':{width}} {'predicted vs -Oz':>16}"
    if metric:
        header += f" {'measured ' + label:>15} {'vs -Oz':>8}"
    print(header)
    for n, c in enumerate(rep["candidates"]):
        mark = "chosen" if n == 0 else f"alt {n}"
        line = f"  {mark:7} {c['name']:{width}} {c['predicted_ratio'] - 1:>+16.2%}"
        if metric and metric in c:
            line += f" {c[metric]:>15} {(c[metric] / oz - 1) if oz else 0:>+8.2%}"
        elif "error" in c:
            line += f"  measure failed: {c['error']}"
        print(line)
    print(f"  why: {rep['why']}")
    if "oz_rank" in rep:
        print(f"  (-Oz itself ranks {rep['oz_rank']})")
    print(f"  verify mode measures -Oz and, in this order: {', '.join(rep['verify_order'])}")
    legend = dict(rep["legend"])
    print(f"  names: {legend.pop('stem')}")
    for part, meaning in legend.items():
        print(f"    {part if part.startswith('-') else '+' + part:12} {meaning}")


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    try:
        opts, files, flags = _split(args)
    except ValueError as e:
        print(f"clang-llm explain: error: {e}", file=sys.stderr)
        return 2
    if not files:
        print("clang-llm explain: error: no C or C++ source file given", file=sys.stderr)
        return 2
    from . import ranker as ranker_mod

    try:
        ranker = ranker_mod.get()
    except ranker_mod.ModelError as e:
        print(f"clang-llm explain: error: {e}", file=sys.stderr)
        return 1
    status = 0
    reports = []
    for path in files:
        try:
            rep = explain(path, flags, ranker, opts["top"], opts["measure"])
        except (RuntimeError, OSError, _paths.NotFound, ranker_mod.ModelError) as e:
            print(f"clang-llm explain: error: {e}", file=sys.stderr)
            status = 1
            continue
        reports.append(rep)
        if not opts["json"]:
            _print(rep)
    if opts["json"]:
        print(json.dumps(reports, indent=1))
    return status
