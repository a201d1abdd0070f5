"""clang-llm explain: what the learned policy would do with a file, and why.

    clang-llm explain FILE.c [clang flags...] [--measure] [--top N] [--json]

For every source file among the arguments: compile it to the module the plugin
would see (clang-22 -Oz -Xclang -disable-llvm-passes -emit-llvm -c, with the
given flags), rank the candidate pipelines with the policy's model
(clang_llm.ranker, CLANG_LLM_MODEL to use another), and print the chosen
pipeline, its predicted .text relative to -Oz and the next alternatives. With
--measure, also run -Oz and each shown candidate on the module (in process,
clang_llm._core, clang -Oz's code generator) and print the measured sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from . import _paths

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
        "candidates": [{"name": c.name, "predicted_ratio": predicted[c.name]} for c in shown],
        # What -Oz-llm=verify measures besides -Oz (CLANG_LLM_VERIFY_K of them).
        "verify_order": [c.name for c in verify[: max(top, 4)]],
    }
    if ranker.last_outside:
        report["outside_training_range"] = ranker.last_outside
    if "oz" not in {c.name for c in shown}:
        report["oz_rank"] = 1 + [c.name for c in ranked].index("oz")
    if measure:
        from . import pipelines

        oz = mod.measure(pipelines.oz_pipeline(), False)["text"]
        report["oz_text"] = oz
        for entry, cand in zip(report["candidates"], shown):
            try:
                text = mod.measure(cand.passes, cand.codegen)["text"]
            except Exception as e:  # one failing candidate is itself worth showing
                entry["error"] = " ".join(str(e).split())
                continue
            entry["text"] = text
            entry["predicted_text"] = round(oz * entry["predicted_ratio"])
    return report


def _print(rep: dict) -> None:
    print(f"{rep['file']}: module {rep['module_hash']}, {rep['ir_instructions']} IR instructions")
    oz = rep.get("oz_text")
    if oz is not None:
        print(f"  -Oz .text: {oz} bytes (measured)")
    for n, c in enumerate(rep["candidates"]):
        mark = "chosen" if n == 0 else f"alt {n}"
        line = f"  {mark:7} {c['name']:34} predicted {c['predicted_ratio'] - 1:+.2%} vs -Oz"
        if "text" in c:
            line += f"   measured {c['text']} bytes ({(c['text'] / oz - 1) if oz else 0:+.2%})"
        elif "error" in c:
            line += f"   measure failed: {c['error']}"
        print(line)
    if "oz_rank" in rep:
        print(f"  (-Oz itself ranks {rep['oz_rank']})")
    if "outside_training_range" in rep:
        print(f"  outside the model's training range ({rep['outside_training_range']}): "
              "top-1 keeps the preferred candidate")
    print(f"  verify mode measures -Oz and, in this order: {', '.join(rep['verify_order'])}")


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
        except (RuntimeError, OSError, _paths.NotFound) as e:
            print(f"clang-llm explain: error: {e}", file=sys.stderr)
            status = 1
            continue
        reports.append(rep)
        if not opts["json"]:
            _print(rep)
    if opts["json"]:
        print(json.dumps(reports, indent=1))
    return status
