"""Module features: Autophase-style counts over a whole module's textual IR.

Training (clang_llm.train.model) and the runtime policy compute them here and
nowhere else; the model's metadata records FEATURE_VERSION and the runtime
refuses a model made for another version. Bump it whenever NAMES or any count
changes meaning.

Every count is over the whole module, so the features also stand for what the
token chunks leave out (see clang_llm.ir). The work is a few regular-expression
scans of the text, linear in its size; only the back-edge scan visits matches
one by one in Python, and it visits labels and branch targets only.

vector(ir, covered) returns log1p of the counts (sizes span five orders of
magnitude; a log keeps small modules distinguishable), then a few ratios in
[0, 1], in the order of NAMES.
"""

from __future__ import annotations

import re
from collections import Counter

from . import ir as ir_mod

FEATURE_VERSION = "1"

# The LLVM 22 instruction opcodes as they are printed (cmpxchg/atomicrmw included).
OPCODES = (
    "ret", "br", "switch", "indirectbr", "invoke", "callbr", "resume", "unreachable",
    "fneg", "add", "fadd", "sub", "fsub", "mul", "fmul", "udiv", "sdiv", "fdiv", "urem", "srem", "frem",
    "shl", "lshr", "ashr", "and", "or", "xor",
    "extractelement", "insertelement", "shufflevector", "extractvalue", "insertvalue",
    "alloca", "load", "store", "fence", "cmpxchg", "atomicrmw", "getelementptr",
    "trunc", "zext", "sext", "fptrunc", "fpext", "fptoui", "fptosi", "uitofp", "sitofp",
    "ptrtoint", "inttoptr", "bitcast", "addrspacecast",
    "icmp", "fcmp", "phi", "select", "freeze", "call", "va_arg", "landingpad", "catchpad", "cleanuppad",
)

# Attributes that steer what a pipeline does with a function (inlining, outlining,
# dead-code elimination), counted over defined functions.
ATTRIBUTES = ("noinline", "alwaysinline", "optnone", "cold", "noreturn", "returns_twice", "naked")

STRUCTURE = (
    "functions", "declarations", "internal_functions", "external_functions", "blocks",
    "instructions", "max_function_instructions", "back_edges", "switch_cases",
    "calls_direct", "calls_indirect", "calls_intrinsic", "calls_internal", "internal_called_once",
    "internal_uncalled", "distinct_callees", "globals", "global_constants", "global_strings",
    "global_string_bytes", "global_arrays", "struct_types", "volatile", "inline_asm", "varargs_functions",
    "phi_operands", "lifetime_markers", "memcpy_memset",
)

RATIOS = ("coverage", "internal_share", "call_density", "memory_density")

NAMES = (tuple(f"op_{o}" for o in OPCODES) + tuple(f"attr_{a}" for a in ATTRIBUTES)
         + STRUCTURE + RATIOS)

# Patterns start with a literal ("\n", " call") where they can: Python's re then
# skips ahead by searching for it, several times faster than "^" under re.M on
# megabytes of text. counts() puts a "\n" before the text so line one matches too.
_OPCODE = re.compile(r"\n  (?:%[-\w.$]+ = |%\"[^\"\n]*\" = )?(?:tail |musttail |notail )?([a-z_]+)")
# Matched at the start of the text after "\ndefine ": linkage, name, the rest of the line.
_DEFINE = re.compile(r"([^@\n]*)@([-\w.$]+|\"[^\"\n]*\")\(([^\n]*)")
_LABEL = re.compile(r"\n([-\w.$]+):")
_TARGET = re.compile(r"label %([-\w.$]+)")
_SWITCH_CASE = re.compile(r"\n    [a-z]\w* -?\w+, label %")
# One pattern per keyword: an alternation first would leave re no literal to
# skip ahead by, and it would try every space in the module.
_CALLEE = r" [^@%\n]*?(?:@([-\w.$]+|\"[^\"\n]*\")|(%[-\w.$]+)|(asm)\b)"
_CALLS = (re.compile(r" call" + _CALLEE), re.compile(r" invoke" + _CALLEE))
_GLOBAL = re.compile(r"\n@[-\w.$]+ = ([^\n]*)")
_STRING_TYPE = re.compile(r"\[(\d+) x i8\] c\"")
_ATTR_GROUP = re.compile(r"\nattributes #(\d+) = \{([^\n]*)\}")
_ATTR_REF = re.compile(r"#(\d+)")
_STRUCT = re.compile(r"\n%[-\w.$\"]+ = type ")
_PHI = re.compile(r"= phi ([^\n]*)")


def counts(ir: str) -> dict[str, float]:
    """The raw counts (before the log), keyed by NAMES (ratios left out)."""
    c: dict[str, float] = dict.fromkeys(NAMES, 0.0)
    ir = "\n" + ir
    # Function bodies, and the text around them: globals, types, declarations and
    # attribute groups are only ever at the top level, so their patterns scan
    # that (usually a small part of the module) alone.
    pieces = ir.split("\ndefine ")
    bodies, around = [], [pieces[0]]
    for piece in pieces[1:]:
        body, _, after = piece.partition("\n}\n")
        bodies.append(body)
        around.append(after)
    top = "\n".join(around)
    ops = Counter(_OPCODE.findall(ir))
    for o in OPCODES:
        c[f"op_{o}"] = ops.get(o, 0)
    c["instructions"] = sum(ops[o] for o in OPCODES)
    c["volatile"] = ir.count(" volatile ")
    c["lifetime_markers"] = ir.count("@llvm.lifetime.")
    c["memcpy_memset"] = ir.count("call void @llvm.memcpy") + ir.count("call void @llvm.memset") \
        + ir.count("call void @llvm.memmove")
    c["struct_types"] = len(_STRUCT.findall(top))
    c["declarations"] = top.count("\ndeclare ")

    groups = {n: body for n, body in _ATTR_GROUP.findall(top)}
    defined: dict[str, bool] = {}  # name -> internal linkage
    for m in map(_DEFINE.match, bodies):
        if m is None:
            continue
        linkage, name, rest = m.groups()
        internal = "internal " in linkage or "private " in linkage
        defined[name] = internal
        c["internal_functions" if internal else "external_functions"] += 1
        if "..." in rest.split(")")[0]:
            c["varargs_functions"] += 1
        # Attributes may be inline on the define line or in a referenced group.
        attrs = " ".join([rest] + [groups.get(g, "") for g in _ATTR_REF.findall(rest)])
        words = set(attrs.replace("(", " ").split())
        for a in ATTRIBUTES:
            if a in words:
                c[f"attr_{a}"] += 1
    c["functions"] = len(defined)

    callees: Counter = Counter()
    for name, indirect, asm in (m for pattern in _CALLS for m in pattern.findall(ir)):
        if asm:
            c["inline_asm"] += 1
        elif indirect:
            c["calls_indirect"] += 1
        elif name.startswith("llvm."):
            c["calls_intrinsic"] += 1
        else:
            c["calls_direct"] += 1
            callees[name] += 1
    c["distinct_callees"] = len(callees)
    c["calls_internal"] = sum(n for f, n in callees.items() if defined.get(f))
    internal = [f for f, is_internal in defined.items() if is_internal]
    c["internal_called_once"] = sum(1 for f in internal if callees.get(f) == 1)
    c["internal_uncalled"] = sum(1 for f in internal if not callees.get(f))

    for rest in _GLOBAL.findall(top):
        c["globals"] += 1
        head = rest.split(" [", 1)[0].split(" {", 1)[0]
        if " constant " in f" {head} ":
            c["global_constants"] += 1
        m = _STRING_TYPE.search(rest)
        if m:
            c["global_strings"] += 1
            c["global_string_bytes"] += int(m.group(1))
        elif rest.find(" x ") > 0 and "[" in rest:
            c["global_arrays"] += 1

    c["switch_cases"] = len(_SWITCH_CASE.findall(ir))
    c["phi_operands"] = sum(p.count("[") for p in _PHI.findall(ir))

    # Blocks and loops: a branch to a label already seen in the same function is
    # a back edge (LLVM prints blocks in layout order, and clang lays out a loop's
    # header before its body), which approximates the number of loops. Entry
    # blocks have no label line; count one per function.
    back = labels = 0
    for body in bodies:
        if "label %" not in body:
            labels += len(_LABEL.findall(body))
            continue
        where = {m.group(1): m.start() for m in _LABEL.finditer(body)}
        labels += len(where)
        for m in _TARGET.finditer(body):
            back += where.get(m.group(1), len(body)) < m.start()
    c["blocks"] = len(bodies) + labels
    c["back_edges"] = back
    c["max_function_instructions"] = max(map(ir_mod.instruction_lines, bodies), default=0)
    return c


def vector(ir: str, covered: float):
    """The model's feature input: float32 [len(NAMES)] (see the module docstring).

    covered: the instructions the token chunks hold (clang_llm.ir.encode)."""
    import math

    import numpy as np

    c = counts(ir)
    n = max(c["instructions"], 1.0)
    c["coverage"] = min(1.0, covered / n) if c["instructions"] else 1.0
    c["internal_share"] = c["internal_functions"] / max(c["functions"], 1.0)
    c["call_density"] = min(1.0, (c["calls_direct"] + c["calls_indirect"]) / n)
    c["memory_density"] = min(1.0, (c["op_load"] + c["op_store"]) / n)
    ratios = set(RATIOS)
    return np.array([c[k] if k in ratios else math.log1p(c[k]) for k in NAMES], dtype=np.float32)
