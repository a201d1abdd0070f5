#!/usr/bin/env python3
"""Candidates for the next set: the shipped validated candidates plus each excluded
candidate with its unsafe passes (clang_llm.pipelines.UNSAFE_PASSES) removed.

    python bench/strip_unsafe.py [--out bench/out/iroutliner_free.tsv]
    python bench/fixed_pipelines.py --candidates bench/out/iroutliner_free.tsv \\
        --out-dir bench/out/iroutliner_free --determinism-sample 20

The stripped pipelines keep everything else search found for them; how much of
what the excluded candidates saved survives without the pass is what the second
command measures on the measurement set. None of them is validated: a candidate
set built from them still needs the gate, labels and a model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from clang_llm import pipelines  # noqa: E402
from clang_llm.train import passes as P  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "out" / "iroutliner_free.tsv")
    args = ap.parse_args(argv)

    rows = [c for c in pipelines.candidates() if c.validated]
    seen = {(c.passes, c.codegen) for c in rows}
    for c in pipelines.candidates():
        unsafe = pipelines.unsafe_passes(c.passes)
        if not unsafe:
            continue
        passes = P.unparse(P.without(P.parse(c.passes), set(unsafe)))
        suffix = pipelines.knob_suffix(c.codegen)
        name = c.name.removesuffix(suffix) + "-" + "-".join(unsafe) + suffix
        if (passes, c.codegen) in seen:
            print(f"{name}: same as a candidate already listed; left out", file=sys.stderr)
            continue
        seen.add((passes, c.codegen))
        rows.append(pipelines.Candidate(name, passes, c.codegen, False, f"{c.name} without {', '.join(unsafe)}"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(pipelines.write(rows, pipelines.best_fixed().name, {"command": "python bench/strip_unsafe.py"}))
    print(f"wrote {args.out}: {len(rows)} candidates ({len(rows) - sum(c.validated for c in rows)} stripped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
