"""The label table: the size of every corpus module under every shipped candidate.

    clang-llm-data labels --splits train validation test [--sample 1000 400 400] [--out FILE]

One row per (module, flag set, candidate): module hash, package, split, flag
set (clang_llm.sizes.FLAG_SETS: "default", the module as captured, unwind tables
on; "no-unwind", as -fno-asynchronous-unwind-tables gives it), candidate name,
the image bytes (the objective), RAM, .text, unwind and data bytes, IR
instructions after the pipeline, and the error text when the evaluation failed. Written as parquet (columnar, compressed: small enough
to commit for a few thousand modules). The candidate set is
clang_llm.pipelines.candidates(), so the table and the runtime agree on what a
candidate is; the candidate-set hash is stored in the file's metadata and the
model's training refuses a table made for another set.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from . import committed_dir, data_root
from .search import add_eval_options


COLUMNS = ("module", "package", "split", "flags", "candidate", "image", "ram", "text", "unwind", "data",
           "ir_instructions", "error")


def build(modules: list[dict], store, args, cands=None, flag_sets=None) -> "pyarrow.Table":  # noqa: F821
    """The rows of modules x flag sets x cands (default: every shipped candidate,
    both flag sets)."""
    import pyarrow as pa

    from .. import pipelines, sizes
    from . import evaluate
    from .store import pipeline_key

    cands = pipelines.candidates() if cands is None else cands
    flag_sets = list(sizes.FLAG_SETS) if flag_sets is None else flag_sets
    jobs = [evaluate.Job(evaluate.variant_hash(m["hash"], f), str(m["path"]), c.passes, c.codegen)
            for m in modules for f in flag_sets for c in cands]
    res = evaluate.run(jobs, store, backend=args.backend, workers=args.workers, timeout=args.timeout,
                       address=args.address, progress=not args.quiet, desc="labels")
    cols: dict[str, list] = {k: [] for k in COLUMNS}
    for m in modules:
        for f in flag_sets:
            for c in cands:
                r = res[(evaluate.variant_hash(m["hash"], f), pipeline_key(c.passes, c.codegen))]
                for k, v in (("module", m["hash"]), ("package", m.get("package", "")),
                             ("split", m.get("split", "")), ("flags", f), ("candidate", c.name),
                             ("image", r.image), ("ram", r.ram), ("text", r.text), ("unwind", r.unwind),
                             ("data", r.data), ("ir_instructions", r.ir_instructions), ("error", r.error)):
                    cols[k].append(v)
    return _stamped(pa.table(cols), flag_sets=json.dumps(flag_sets))


def _stamped(table, **extra):
    from .. import pipelines

    meta = {"candidate_set": pipelines.set_hash(),
            "candidates": json.dumps([c.name for c in pipelines.candidates()]),
            "command": "clang-llm-data " + " ".join(sys.argv[1:]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
    return table.replace_schema_metadata({k: str(v) for k, v in meta.items()})


def extend(old, store, args, bitcode: dict[str, str]):
    """The label table `old` brought up to the shipped candidate set when that
    set only appended candidates since `old` was made: every (module, candidate)
    pair the table lacks is measured where the module's bitcode is at hand
    (bitcode: hash -> .bc path). A pair without bitcode stays absent, which
    load_labels reads as not measured (training masks it, scores leave the
    module out), so a partly rebuilt corpus yields a usable table now and a
    later run on more bitcode fills it in; the metadata keeps each run's counts.
    Refuses when a candidate `old` was made for is gone or changed its pipeline:
    its rows would describe another pipeline under the same name.
    Returns (table, pairs measured now, pairs still absent)."""
    import pyarrow as pa

    from .. import pipelines

    meta = old.schema.metadata or {}
    old_names = json.loads(meta.get(b"candidates", b"[]"))
    current = pipelines.candidates()
    by_name = {c.name: c for c in current}
    dropped = [n for n in old_names if n not in by_name]
    if dropped:
        raise ValueError(f"the label table measures candidates the set no longer has ({', '.join(dropped)}): "
                         "relabel with `clang-llm-data labels`")
    # The hash covers the rows' names and order as well as their pipelines.
    if pipelines.set_hash(current[:len(old_names)]) != meta.get(b"candidate_set", b"").decode():
        raise ValueError("the candidates the label table was made for changed (names, order or pipelines): "
                         "relabel with `clang-llm-data labels`")
    cols = old.to_pydict()
    if "flags" not in cols:
        raise ValueError("the label table was made before the image metric (no flag sets, no image bytes): "
                         "relabel with `clang-llm-data labels`")
    seen: dict[tuple[str, str], dict] = {}
    have: dict[tuple[str, str], set[str]] = {}
    for h, p, s, f, c in zip(cols["module"], cols["package"], cols["split"], cols["flags"], cols["candidate"]):
        seen.setdefault((h, f), {"hash": h, "package": p, "split": s})
        have.setdefault((h, f), set()).add(c)
    groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    absent = 0
    for (h, f), m in seen.items():
        lacking = tuple(c.name for c in current if c.name not in have[(h, f)])
        if lacking and h in bitcode:
            groups.setdefault((f, lacking), []).append({**m, "path": bitcode[h]})
        elif lacking:
            absent += len(lacking)
    parts = [old.replace_schema_metadata(None)]
    schema = parts[0].schema
    measured, per_split = 0, {}
    for (flags, lacking), mods in groups.items():
        parts.append(build(mods, store, args, [by_name[n] for n in lacking], [flags]).replace_schema_metadata(None)
                     .cast(schema))
        measured += len(lacking) * len(mods)
        for m in mods:
            per_split[m["split"]] = per_split.get(m["split"], 0) + len(lacking)
    history = json.loads(meta.get(b"extended", b"[]"))
    if measured or len(current) > len(old_names):
        history.append({"added": [c.name for c in current[len(old_names):]], "pairs_measured": measured,
                        "pairs_absent": absent, "measured_per_split": per_split,
                        "date": time.strftime("%Y-%m-%d")})
    return _stamped(pa.concat_tables(parts), extended=json.dumps(history),
                    base_command=meta.get(b"base_command", meta.get(b"command", b"")).decode()), measured, absent


def read(path: Path | None = None):
    """The label table, refusing one made for another candidate set."""
    import pyarrow.parquet as pq

    from .. import pipelines

    table = pq.read_table(path or committed_dir() / "labels.parquet")
    made_for = (table.schema.metadata or {}).get(b"candidate_set", b"").decode()
    if made_for != pipelines.set_hash():
        raise ValueError(f"label table was made for candidate set {made_for or '?'}, "
                         f"the package ships {pipelines.set_hash()}: rebuild it with `clang-llm-data labels`")
    return table


def _cmd_labels(args) -> int:
    import pyarrow.parquet as pq

    from . import corpus
    from .store import Store

    if args.extend:
        return _cmd_extend(args)
    modules = []
    for i, split in enumerate(args.splits):
        mods = sorted((m for m in corpus.modules(split) if m.get("ir_instructions", 1) <= args.max_instructions),
                      key=lambda m: m["hash"])
        n = args.sample[min(i, len(args.sample) - 1)] if args.sample else 0
        if n and n < len(mods):
            mods = random.Random(f"{args.seed}:{split}").sample(mods, n)
        modules += mods
    if not modules:
        print("clang-llm-data labels: no modules; build the corpus first", file=sys.stderr)
        return 2
    cands = None
    if args.candidates:
        from .. import pipelines

        cands = [c for c in pipelines.candidates() if c.name == "oz" or c.name in args.candidates
                 or (args.candidates == ["validated"] and c.validated)]
    with Store(args.store or data_root() / "results.sqlite") as store:
        table = build(modules, store, args, cands, args.flag_sets)
    out = args.out or committed_dir() / "labels.parquet"
    pq.write_table(table, out, compression="zstd")
    failed = sum(1 for e in table.column("error").to_pylist() if e)
    print(f"wrote {out}: {table.num_rows} rows ({len(modules)} modules), {failed} failed evaluations")
    return 0


def _cmd_extend(args) -> int:
    import pyarrow.parquet as pq

    from . import corpus
    from .store import Store

    src = args.extend if isinstance(args.extend, Path) else committed_dir() / "labels.parquet"
    old = pq.read_table(src)
    bitcode = {m["hash"]: m["path"] for m in corpus.modules(include_tests=True, include_empty=True)
               if Path(m["path"]).is_file()}
    try:
        with Store(args.store or data_root() / "results.sqlite") as store:
            table, measured, absent = extend(old, store, args, bitcode)
    except ValueError as e:
        print(f"clang-llm-data labels: error: {e}", file=sys.stderr)
        return 2
    out = args.out or src
    pq.write_table(table, out, compression="zstd")
    print(f"wrote {out}: {table.num_rows} rows; {measured} evaluations added, {absent} (module, candidate) pairs "
          "still absent (no bitcode in this corpus: run again after building more)")
    return 0


def add_table_options(p, modules: bool = True) -> None:
    """Where a command reads labels (and the modules they were measured on); the
    trainer and the benchmarks that score models share these."""
    p.add_argument("--labels", type=Path, help="label table (default: the committed labels.parquet)")
    if modules:
        p.add_argument("--modules", type=Path, help="folder of <hash>.bc modules (default: the corpus's)")


def add_evaluation_options(p, out: Path) -> None:
    """What the benchmarks that score a model on one split take."""
    add_table_options(p)
    p.add_argument("--model", help="model.onnx (default: the shipped one)")
    p.add_argument("--split", default="test", help="(default: %(default)s: packages no training saw)")
    p.add_argument("--out", type=Path, default=out, help="report path without suffix (default: %(default)s)")


def register(sub) -> None:
    from .. import sizes

    p = sub.add_parser("labels", help="the size of every module under every candidate, as parquet")
    p.add_argument("--flag-sets", nargs="+", choices=list(sizes.FLAG_SETS), default=list(sizes.FLAG_SETS),
                   help="measure the modules as captured (default) and/or without unwind tables")
    p.add_argument("--candidates", nargs="+", metavar="NAME",
                   help="only these candidates (and -Oz); 'validated': every validated one (default: all)")
    p.add_argument("--splits", nargs="+", default=["train", "validation", "test"])
    p.add_argument("--max-instructions", type=int, default=10**9)
    p.add_argument("--sample", type=int, nargs="+", metavar="N",
                   help="a seeded sample of N modules per split (one N per split, or one for all; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    p.add_argument("--extend", nargs="?", type=Path, const=True, metavar="TABLE",
                   help="measure the (module, candidate) pairs a table (default: the committed one) lacks, e.g. "
                        "after candidates were appended, where this corpus has the bitcode; rerun after building "
                        "more; the options that pick modules do not apply")
    add_eval_options(p)
    p.set_defaults(func=_cmd_labels)
