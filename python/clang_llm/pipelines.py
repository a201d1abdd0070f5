"""The candidate pipelines, kept as versioned data (data/candidates.tsv).

This is the only place that knows what the candidates are: the policy back ends,
verify mode, the fingerprint and (later) the data engine and model all import it.

A candidate is a new-PM pass pipeline string plus the code generator knobs the
plugin can set per module. clang's own -Oz pipeline (data/oz.pipeline, printed by
``clang-22 -Oz -mllvm -print-pipeline-passes``) is always candidate "oz".

``python -m clang_llm.pipelines rebuild [--report FILE]`` regenerates
candidates.tsv from oz.pipeline with the derivations below, ranked and validated
by a measurement report (bench/fixed_pipelines.py writes one).

The file is tab-separated text rather than JSON because the plugin reads it in
every compiler process, and importing json (with re) costs more than parsing
this does. Format: "#key<TAB>value" header lines (format, llvm, best_fixed,
provenance, retired, verify_order), then a header row and one row per candidate:
name, codegen (the KNOBS bits it sets, 0-2047), validated (0/1), note, passes.
Files from before the register allocator knobs call the codegen column
machine_outliner and hold only 0 or 1, which mean the same.
"""

from __future__ import annotations

from . import _paths

FORMAT_VERSION = 1

# Passes that no pipeline clang-llm runs may contain, whatever a gate said: each
# breaks a build in LLVM 22, by miscompiling (the evidence is in the gate's
# regression tests, train/data/gate_regressions/) or by making the output depend
# on the run. Search never draws them, the gate rejects any pipeline holding
# one, and the policy refuses one even when a user names it. Each reason starts
# with what goes wrong, up to the first colon: the policy's one-line message.
UNSAFE_PASSES = {
    "iroutliner": "miscompiles in LLVM 22: the IR outliner passes a \"greater than\" compare's operands "
                  "swapped when one outlined region has a constant where another has a value (zlib's "
                  "trees.c broke under s19+mo; gate_regressions/iroutliner-cmp-swap.c); upstream LLVM has "
                  "removed the pass",
    "gvn-sink": "is not deterministic in LLVM 22: GVNSink iterates a hash set of PHIs, so one module and "
                "pipeline give different code from run to run (2 of 400 training modules under the default "
                "with it appended, 2026-12-06; fixed upstream after 22.1 by llvm-project#205952). It "
                "made the default 0.14% smaller there, but builds must be reproducible",
}


# Code generator knobs a candidate may set per module, as bits (the plugin's
# CodegenKnobs): suffix in candidate names, bit, what it does.
KNOBS = (
    ("mo", 1, "machine outliner"),
    ("ss", 2, "greedy register allocator splits live ranges for size (-split-spill-mode=size)"),
    ("ipra", 4, "interprocedural register allocation (off where a callee may be preempted)"),
    ("sl", 8, "size layout: no block placement (-disable-block-placement), tails merged from one instruction "
              "(-tail-merge-size=1)"),
    ("nlicm", 16, "no machine loop-invariant code motion (-disable-machine-licm)"),
    ("nlsr", 32, "no loop strength reduction in the code generator (-disable-lsr)"),
    ("rep", 64, "block copies and fills of more than one store as rep movs/stos (-max-store-memcpy=1, "
                "-max-store-memset=1)"),
    ("sbr", 128, "a branch on an and/or of conditions split into one branch per condition "
                 "(-x86-br-merging-base-cost=-1)"),
    ("nmcse", 256, "no machine common subexpression elimination (-disable-machine-cse)"),
    ("nms", 512, "no machine sinking (-disable-machine-sink)"),
    ("rla", 1024, "greedy register allocator assigns local live ranges in reverse (-greedy-reverse-local-assignment)"),
)
# LLVM 22's basic register allocator (-regalloc=basic) was tried as a knob and
# dropped: the gate saw it crash code generation ("Access past stack top!" on
# x87 code in 4 torture tests, segfaults on 74 of 300 csmith programs).
MACHINE_OUTLINER = 1
ALL_KNOBS = 2047


def knob_bits(text: str) -> int:
    """Knob bits written as text (candidates.tsv, CLANG_LLM_CODEGEN)."""
    if not text.isdigit() or int(text) > ALL_KNOBS:
        raise ValueError(f"{text!r} is not knob bits 0-{ALL_KNOBS}")
    return int(text)


def knob_suffix(codegen: int) -> str:
    """The name suffix for knob bits, e.g. 7 -> "+mo+ss+ipra"."""
    return "".join(f"+{name}" for name, bit, _ in KNOBS if codegen & bit)


def unsafe_passes(passes: str) -> list[str]:
    """The UNSAFE_PASSES a pipeline text contains (string operations only: the
    policy checks every pipeline it is asked to run)."""
    names = {part.split("<", 1)[0].strip() for part in passes.replace("(", ",").replace(")", ",").split(",")}
    return [name for name in UNSAFE_PASSES if name in names]


class Candidate:
    """A pipeline string plus the code generator knobs for it.

    validated: set only once the pipeline passed the validation gate
    (train/validate.py); the plugin trial-runs anything else in a forked child
    before trusting it. A plain class with value semantics rather than a
    namedtuple or dataclass: the driver and plugin import this module on every
    compile, and collections/functools alone cost about 2 ms there.
    """

    __slots__ = ("name", "passes", "codegen", "validated", "note")

    def __init__(self, name: str, passes: str, codegen: int = 0,
                 validated: bool = False, note: str = ""):
        self.name, self.passes, self.note = name, passes, note
        # int(): True (the outliner, as callers before the other knobs said) is 1.
        self.codegen, self.validated = int(codegen), validated

    @property
    def machine_outliner(self) -> bool:
        return bool(self.codegen & MACHINE_OUTLINER)

    def _astuple(self) -> tuple:
        return (self.name, self.passes, self.codegen, self.validated, self.note)

    def _asdict(self) -> dict:
        return dict(zip(self.__slots__, self._astuple()))

    def _replace(self, **changes) -> Candidate:
        return Candidate(**{**self._asdict(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Candidate) and self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        return (f"Candidate(name={self.name!r}, codegen={self.codegen}, "
                f"validated={self.validated}, passes={self.passes[:40]!r}...)")


_memo: dict[str, object] = {}


def _data(name: str) -> str:
    return _paths.read_shipped("data", name)


def oz_pipeline() -> str:
    if "oz" not in _memo:
        _memo["oz"] = _data("oz.pipeline").strip()
    return _memo["oz"]


COLUMNS = ("name", "codegen", "validated", "note", "passes")
_OLD_COLUMNS = ("name", "machine_outliner", "validated", "note", "passes")


def parse(text: str) -> tuple[dict, tuple[Candidate, ...]]:
    meta: dict[str, str] = {}
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("\t")
            meta[key] = value
            continue
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            raise ValueError(f"candidates.tsv line {n}: expected {len(COLUMNS)} tab-separated fields")
        if tuple(fields) in (COLUMNS, _OLD_COLUMNS):
            continue
        name, knobs, ok, note, passes = fields
        try:
            codegen = knob_bits(knobs)
        except ValueError as e:
            raise ValueError(f"candidates.tsv line {n}: codegen: {e}") from None
        if ok not in ("0", "1"):
            raise ValueError(f"candidates.tsv line {n}: validated must be 0 or 1")
        rows.append(Candidate(name, passes, codegen, ok == "1", note))
    if meta.get("format") != str(FORMAT_VERSION):
        raise ValueError(f"candidates.tsv has format {meta.get('format')}, expected {FORMAT_VERSION}")
    return meta, tuple(rows)


def _load() -> tuple[dict, tuple[Candidate, ...]]:
    if "set" in _memo:
        return _memo["set"]
    meta, cands = parse(_data("candidates.tsv"))
    if not cands or cands[0].name != "oz" or cands[0].passes != oz_pipeline():
        raise ValueError("candidates.tsv must start with clang's -Oz pipeline (data/oz.pipeline)")
    names = {c.name for c in cands}
    if meta.get("best_fixed") not in names:
        raise ValueError(f"candidates.tsv names an unknown best_fixed {meta.get('best_fixed')!r}")
    for key in (k for k in meta if k.startswith("best_fixed_") and k != "best_fixed_"):
        if meta[key] not in names:
            raise ValueError(f"candidates.tsv names an unknown {key} {meta[key]!r}")
    for key in (k for k in meta if k.startswith("verify_order")):
        unknown = [n for n in meta[key].split() if n not in names or n == "oz"]
        if unknown:
            raise ValueError(f"candidates.tsv: {key} names {' '.join(unknown)}, not a candidate other than oz")
    _memo["set"] = meta, cands
    return meta, cands


def candidates() -> tuple[Candidate, ...]:
    """All candidates; "oz" first, then in order of measured quality."""
    return _load()[1]


def by_name(name: str) -> Candidate:
    for c in candidates():
        if c.name == name:
            return c
    raise KeyError(f"no candidate pipeline named {name!r}")


def _flag_key(key: str, flag_set: str) -> str:
    """The header key of a per-flag-set default (clang_llm.sizes.FLAG_SETS):
    "best_fixed" for the default flags, "best_fixed_no_unwind" for no-unwind."""
    return key if flag_set == "default" else f"{key}_{flag_set.replace('-', '_')}"


def best_fixed(flag_set: str = "default") -> Candidate:
    """The single fixed pipeline that measured smallest (image bytes, RAM not
    larger) on the training labels of the module's flag set; the default flag
    set's where the header names none for this one."""
    meta = _load()[0]
    return by_name(meta.get(_flag_key("best_fixed", flag_set)) or meta["best_fixed"])


def usable_names() -> list[str]:
    """The candidates a policy may choose or measure, in file order: those that
    passed the gate and were not excluded since (-Oz always is). Reports score
    only these, so they describe what the policy can do."""
    return [c.name for c in candidates() if c.validated]


def usable_indices() -> list[int]:
    """usable_names() as positions in candidates(): the columns of a model's
    predictions and of a label table that a policy may choose or measure."""
    return [i for i, c in enumerate(candidates()) if c.validated]


def verify_order(flag_set: str = "default") -> list[Candidate]:
    """The order verify mode measures candidates in for a back end that knows
    nothing about the module (-Oz is measured besides): the header's
    verify_order of the flag set (chosen for coverage, see
    clang_llm.train.model.coverage_order; the default flag set's where it has
    none), then the rest; without one, best_fixed first, then file order."""
    meta = _load()[0]
    names = (meta.get(_flag_key("verify_order", flag_set)) or meta.get("verify_order", "")).split()
    first = [by_name(n) for n in names] or [best_fixed(flag_set)]
    # Verify mode keeps what it measured smallest, so it must only ever measure
    # candidates that passed the gate (and were not excluded since).
    return [c for c in first + [c for c in candidates() if c not in first and c.name != "oz"] if c.validated]


def find(passes: str, codegen: int) -> Candidate | None:
    for c in candidates():
        if c.passes == passes and c.codegen == int(codegen):
            return c
    return None


def retired_names() -> set[str]:
    """Numbered names (sNN, without +mo) that candidates of earlier sets carried
    and no shipped candidate carries now: a new candidate must not take one, or
    an old log, report or label table would silently mean another pipeline."""
    return set(_load()[0].get("retired", "").split())


def set_hash(cands=None) -> str:
    """Identifies the candidate set (model metadata, label tables): the rows'
    names, knobs and passes. Not the header: which candidate is the default
    changes nothing a model predicts (the fingerprint hashes the whole file).
    cands: another list of candidates (default the shipped set), e.g. the
    shipped rows a label table was made for, to check that it still describes
    them."""
    import hashlib

    h = hashlib.sha256()
    for c in candidates() if cands is None else cands:
        h.update(f"{c.name}\t{c.codegen}\t{c.passes}\n".encode())
    return h.hexdigest()[:16]


def _rewrite(cands, best: str | None = None, best_provenance: dict | None = None,
             verify: list[str] | None = None, flag_set: str = "default") -> Path:
    """Write candidates.tsv (the source tree's copy) with these rows; the header
    keeps the file's defaults, provenance, retired names and verify orders
    unless given anew (best and verify: those of flag_set)."""
    import json
    from pathlib import Path

    meta = dict(_load()[0])
    prov = json.loads(meta.get("provenance") or "{}")
    if best_provenance is not None:
        prov[_flag_key("best_fixed", flag_set)] = best_provenance
    if best is not None:
        meta[_flag_key("best_fixed", flag_set)] = best
    if verify is not None:
        meta[_flag_key("verify_order", flag_set)] = " ".join(verify)
    per_flag_set = {k: v for k, v in meta.items()
                    if k.startswith(("best_fixed_", "verify_order_")) and v}
    out = Path(__file__).with_name("data") / "candidates.tsv"
    out.write_text(write(list(cands), meta["best_fixed"], prov, retired_names(),
                         meta.get("verify_order", "").split(), per_flag_set))
    _memo.clear()
    return out


def set_best_fixed(name: str, provenance: dict, verify: list[str] | None = None,
                   flag_set: str = "default") -> Path:
    """Rewrite candidates.tsv with another default for a flag set and, if
    given, another verify order (else the file's stays)."""
    cands = candidates()
    for n in [name, *(verify or [])]:
        if n not in {c.name for c in cands}:
            raise KeyError(f"no candidate pipeline named {n!r}")
        if not by_name(n).validated:
            raise ValueError(f"{n} has not passed the validation gate")
    return _rewrite(cands, name, provenance, verify, flag_set)


def add_candidates(new: list[Candidate]) -> Path:
    """Rewrite candidates.tsv with new rows appended: appending keeps every
    earlier column of a label table or model where it was."""
    cands = candidates()
    names = {c.name for c in cands}
    for c in new:
        if c.name in names:
            raise ValueError(f"candidate {c.name!r} exists already")
        names.add(c.name)
    return _rewrite([*cands, *new])


# --- derivations from clang's pipeline --------------------------------------

def with_sink_common_insts(passes: str) -> str:
    """Turn on sink-common-insts in the first simplifycfg only (the early cleanup)."""
    import re

    m = re.search(r"simplifycfg<([^>]*)>", passes)
    if not m or "no-sink-common-insts" not in m.group(1):
        raise ValueError("pipeline has no early simplifycfg with no-sink-common-insts")
    params = m.group(1).replace("no-sink-common-insts", "sink-common-insts", 1)
    return passes[: m.start(1)] + params + passes[m.end(1):]


def appended(passes: str, *extra: str) -> str:
    return ",".join([passes, *extra])


def derived_candidates() -> list[Candidate]:
    oz = oz_pipeline()
    sink = with_sink_common_insts(oz)
    base = [
        Candidate("oz", oz, validated=True, note="clang-22 -Oz, exactly"),
        Candidate("oz+sink", sink, note="sink-common-insts in the first simplifycfg"),
        Candidate("oz+iroutliner", appended(oz, "iroutliner")),
        Candidate("oz+sink+iroutliner", appended(sink, "iroutliner")),
        Candidate("oz+mergefunc", appended(oz, "mergefunc")),
        Candidate("oz+sink+iroutliner+mergefunc", appended(sink, "iroutliner", "mergefunc")),
    ]
    with_mo = [
        Candidate(c.name + "+mo", c.passes, codegen=MACHINE_OUTLINER,
                  note=(c.note + "; " if c.note else "") + "machine outliner in codegen")
        for c in base
    ]
    return base + with_mo


def write(cands: list[Candidate], best: str, provenance: dict, retired: set[str] = frozenset(),
          verify: list[str] = (), per_flag_set: dict[str, str] | None = None) -> str:
    """candidates.tsv's text. per_flag_set: header keys of the other flag sets'
    defaults and verify orders (best_fixed_no_unwind, verify_order_no_unwind)."""
    import json

    lines = [f"#format\t{FORMAT_VERSION}", "#llvm\t22.1", f"#best_fixed\t{best}",
             f"#provenance\t{json.dumps(provenance, sort_keys=True)}"]
    if retired:
        lines.append(f"#retired\t{' '.join(sorted(retired))}")
    if verify:
        lines.append(f"#verify_order\t{' '.join(verify)}")
    for key, value in sorted((per_flag_set or {}).items()):
        lines.append(f"#{key}\t{value}")
    lines.append("\t".join(COLUMNS))
    for c in cands:
        if "\t" in c.note or "\n" in c.note or "\t" in c.passes:
            raise ValueError(f"candidate {c.name}: tabs and newlines cannot be stored")
        lines.append("\t".join([c.name, str(c.codegen), str(int(c.validated)), c.note, c.passes]))
    return "\n".join(lines) + "\n"


def _main(argv: list[str] | None = None) -> int:
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m clang_llm.pipelines")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the candidate set")
    rb = sub.add_parser("rebuild", help="regenerate candidates.tsv from oz.pipeline")
    rb.add_argument("--report", type=Path, help="fixed-pipeline report (JSON) to rank and validate by")
    args = ap.parse_args(argv)
    import json

    if args.cmd == "list":
        for c in candidates():
            flag = "validated" if c.validated else "unvalidated"
            knobs = knob_suffix(c.codegen).lstrip("+") or "-"
            print(f"{c.name:32} {flag:12} knobs={knobs:12} {len(c.passes)} chars")
        return 0
    cands = derived_candidates()
    best, provenance = "oz", {"note": "unranked: no report given"}
    if args.report:
        rep = json.loads(args.report.read_text())
        score = {r["name"]: r for r in rep["pipelines"]}
        ok = {n for n, r in score.items() if r.get("validated")}
        cands = [c._replace(validated=c.name in ok or c.name == "oz") for c in cands]
        rest = sorted(cands[1:], key=lambda c: score.get(c.name, {}).get("geomean_ratio", 9.0))
        cands = [cands[0], *rest]
        eligible = [c for c in rest if c.validated]
        best = eligible[0].name if eligible and score[eligible[0].name]["geomean_ratio"] < 1.0 else "oz"
        provenance = {k: rep[k] for k in ("date", "machine", "modules", "command") if k in rep}
    # The source tree's copy (also right for an editable install).
    out = Path(__file__).with_name("data") / "candidates.tsv"
    out.write_text(write(cands, best, provenance))
    print(f"wrote {out} ({len(cands)} candidates, best fixed: {best})")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
