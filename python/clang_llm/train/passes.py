"""The new pass manager's pipeline grammar, and the search space drawn from it.

A pipeline text such as ``function<eager-inv>(sroa<modify-cfg>,early-cse<>),globaldce``
parses into a tree of Nodes. Every list in the tree has a *level* (module, cgscc,
function, loop): a pass may only stand in a list of its own level, and the
levels come from where the pass stands in clang's -Oz pipeline, which is also
where the vocabulary comes from. Keeping to that grammar is what makes almost
every generated pipeline parse; the PassBuilder (``LoadedModule.check``) is
still the judge.

Search individuals are an edit list applied to a base pipeline, so that a
winner can be minimised by dropping edits (``search.minimise``) and printed as
a short, readable diff against -Oz (``describe``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from .. import pipelines

MODULE, CGSCC, FUNCTION, LOOP, LOOP_MSSA = "module", "cgscc", "function", "loop", "loop-mssa"

# Adaptors: the level of their children. loop-mssa lists are a level of their
# own: every pass in one must preserve MemorySSA (LLVM aborts otherwise: "Loop
# pass manager using MemorySSA contains a pass that does not preserve
# MemorySSA"), and licm only runs inside one ("LICM requires MemorySSA"), so the
# two loop vocabularies must not mix.
ADAPTORS = {"function": FUNCTION, "cgscc": CGSCC, "devirt": CGSCC, "loop": LOOP, "loop-mssa": LOOP_MSSA}

# Passes that exist for bookkeeping or other languages and never change C code
# size; mutating them wastes evaluations.
INERT = frozenset({
    "annotation2metadata", "annotation-remarks", "cg-profile", "coro-early", "coro-cleanup",
    "coro-elide", "coro-split", "coro-annotation-elide", "declare-to-assign", "ee-instrument",
    "memprof-remove-attributes", "openmp-opt", "transform-warning", "alloc-token", "require",
    "invalidate", "forceattrs", "inject-tli-mappings", "recompute-globalsaa",
})

# Passes that C semantics need, whatever the pipeline is for: ee-instrument
# lowers -finstrument-functions (gcc's eeprof-1.c fails without it), and
# always-inline is what clang runs even at -O0: `extern inline` always_inline
# (gnu_inline) definitions are emitted available_externally and, where no
# out-of-line copy exists, only inlining resolves calls to them. No edit may
# remove or move them, and random pipelines start with them.
REQUIRED_PREFIX = "function(ee-instrument<>)"
REQUIRED = frozenset({"ee-instrument", "always-inline"})

# Passes that stay where -Oz puts them: an edit never inserts them and random
# pipelines never draw them. lower-constant-intrinsics settles
# __builtin_constant_p for good, so run before inlining it answers "not a
# constant" where inlining would have made the argument one (gcc's bcp-1.c
# aborts); code generation lowers what is left anyway.
NOT_INSERTED = frozenset({"lower-constant-intrinsics"})

# Module-level passes worth trying at the end of a pipeline (after -Oz's own),
# beyond those -Oz already runs: merging shrinks code that the per-function
# pipeline cannot. (iroutliner was one until it was found to miscompile: see
# pipelines.UNSAFE_PASSES.)
EXTRA_MODULE_PASSES = ("mergefunc", "globaldce", "constmerge", "deadargelim",
                       "globalopt", "ipsccp", "function-attrs", "partial-inliner",
                       "function(simplifycfg<sink-common-insts;hoist-common-insts;switch-to-lookup;switch-range-to-icmp>)",
                       "function(instcombine<max-iterations=1;no-verify-fixpoint>)",
                       "function(gvn<>,instcombine<max-iterations=1;no-verify-fixpoint>,simplifycfg)",
                       "function(dse,adce)", "function(mldst-motion<no-split-footer-bb>)",
                       "function(sink,simplifycfg)", "function(reassociate,early-cse<memssa>)")

# simplifycfg's boolean options: the search may flip any of them.
SIMPLIFYCFG_FLAGS = ("forward-switch-cond", "switch-range-to-icmp", "switch-to-arithmetic",
                     "switch-to-lookup", "keep-loops", "hoist-common-insts",
                     "hoist-loads-stores-with-cond-faulting", "sink-common-insts",
                     "speculate-blocks", "simplify-cond-branch", "speculate-unpredictables")


@dataclass(frozen=True)
class Node:
    name: str
    params: str | None = None          # text between <>, None when absent
    children: tuple["Node", ...] | None = None

    def text(self) -> str:
        out = self.name
        if self.params is not None:
            out += f"<{self.params}>"
        if self.children is not None:
            out += "(" + ",".join(c.text() for c in self.children) + ")"
        return out

    @property
    def is_adaptor(self) -> bool:
        return self.children is not None


def parse(text: str) -> tuple[Node, ...]:
    """The top-level list of a pipeline text; ValueError on unbalanced brackets."""
    pos = 0

    def parse_list(stop: str) -> list[Node]:
        nonlocal pos
        out = []
        while pos < len(text) and text[pos] != stop:
            out.append(parse_node())
            if pos < len(text) and text[pos] == ",":
                pos += 1
        return out

    def parse_node() -> Node:
        nonlocal pos
        start = pos
        while pos < len(text) and text[pos] not in "<(,)":
            pos += 1
        name = text[start:pos].strip()
        if not name:
            raise ValueError(f"empty pass name at offset {start} in pipeline")
        params = None
        if pos < len(text) and text[pos] == "<":
            depth, pstart = 0, pos + 1
            while pos < len(text):
                depth += {"<": 1, ">": -1}.get(text[pos], 0)
                pos += 1
                if depth == 0:
                    break
            if depth:
                raise ValueError(f"unbalanced '<' after {name!r}")
            params = text[pstart:pos - 1]
        children = None
        if pos < len(text) and text[pos] == "(":
            pos += 1
            children = tuple(parse_list(")"))
            if pos >= len(text) or text[pos] != ")":
                raise ValueError(f"unbalanced '(' after {name!r}")
            pos += 1
        return Node(name, params, children)

    nodes = parse_list("\0")
    if pos != len(text):
        raise ValueError(f"unexpected {text[pos]!r} at offset {pos}")
    return tuple(nodes)


def unparse(nodes: Sequence[Node]) -> str:
    return ",".join(n.text() for n in nodes)


# --- positions in the tree -----------------------------------------------------

Path = tuple[int, ...]  # indices from the top-level list down to a list


def lists(nodes: Sequence[Node], level: str = MODULE, path: Path = ()) -> Iterator[tuple[Path, str, tuple[Node, ...]]]:
    """Every pass list in the tree: (path to the list, its level, its nodes)."""
    nodes = tuple(nodes)
    yield path, level, nodes
    for i, n in enumerate(nodes):
        if n.is_adaptor:
            child_level = ADAPTORS.get(n.name, level)
            yield from lists(n.children, child_level, path + (i,))


def get_list(nodes: Sequence[Node], path: Path) -> tuple[Node, ...]:
    cur = tuple(nodes)
    for i in path:
        cur = cur[i].children
    return cur


def replace_list(nodes: Sequence[Node], path: Path, new: Sequence[Node]) -> tuple[Node, ...]:
    if not path:
        return tuple(new)
    i, rest = path[0], path[1:]
    nodes = list(nodes)
    n = nodes[i]
    nodes[i] = Node(n.name, n.params, replace_list(n.children, rest, new))
    return tuple(nodes)


# --- vocabulary ---------------------------------------------------------------

@dataclass(frozen=True)
class Vocabulary:
    by_level: dict[str, tuple[Node, ...]]     # leaf passes (with params) seen at each level
    variants: dict[str, tuple[str | None, ...]]  # pass name -> parameter texts seen


@cache
def vocabulary() -> Vocabulary:
    """The passes (and parameter variants) clang's -Oz pipeline uses, per level
    (by_level: what edits insert and random pipelines draw, so not NOT_INSERTED)."""
    by_level: dict[str, dict[str, Node]] = {}
    variants: dict[str, dict[str | None, None]] = {}
    for _, level, nodes in lists(parse(pipelines.oz_pipeline())):
        for n in nodes:
            if n.is_adaptor or n.name in INERT:
                continue
            variants.setdefault(n.name, {})[n.params] = None
            if n.name in NOT_INSERTED:
                continue
            by_level.setdefault(level, {})[n.text()] = n
    return Vocabulary({k: tuple(v.values()) for k, v in by_level.items()},
                      {k: tuple(v) for k, v in variants.items()})


def flip_simplifycfg_flag(params: str, flag: str) -> str:
    opts = params.split(";") if params else []
    for i, o in enumerate(opts):
        if o == flag:
            opts[i] = "no-" + flag
            return ";".join(opts)
        if o == "no-" + flag:
            opts[i] = flag
            return ";".join(opts)
    return ";".join([*opts, flag])


# --- edits --------------------------------------------------------------------
# An edit is a plain tuple so individuals hash, compare and serialise (json) simply:
#   ("del", path, i)            remove the leaf at list[path][i]
#   ("ins", path, i, text)      insert a leaf before list[path][i]
#   ("swap", path, i)           swap list[path][i] and list[path][i+1]
#   ("dup", path, i)            repeat list[path][i] right after itself
#   ("param", path, i, params)  give list[path][i] other parameters
#   ("append", text)            append a module-level element at the end
# An edit that no longer fits (a dropped earlier edit moved things) is skipped.

Edit = tuple


def apply_edit(nodes: tuple[Node, ...], edit: Edit) -> tuple[Node, ...] | None:
    kind = edit[0]
    if kind == "append":
        return nodes + parse(edit[1])
    path, i = tuple(edit[1]), edit[2]
    try:
        lst = list(get_list(nodes, path))
    except (IndexError, TypeError):
        return None
    if kind == "ins":
        if i > len(lst):
            return None
        lst.insert(i, parse(edit[3])[0])
    else:
        if i >= len(lst) or lst[i].is_adaptor or lst[i].name in REQUIRED:
            return None
        if kind == "del":
            del lst[i]
            if not lst:  # an empty adaptor list is legal but pointless; keep one pass
                return None
        elif kind == "dup":
            lst.insert(i + 1, lst[i])
        elif kind == "swap":
            if i + 1 >= len(lst) or lst[i + 1].is_adaptor or lst[i + 1].name in REQUIRED:
                return None
            lst[i], lst[i + 1] = lst[i + 1], lst[i]
        elif kind == "param":
            lst[i] = Node(lst[i].name, edit[3], None)
        else:
            raise ValueError(f"unknown edit {kind!r}")
    return replace_list(nodes, path, lst)


@dataclass(frozen=True)
class Individual:
    """A pipeline as base + edits, with the codegen knob."""
    base: str                     # "oz" or a base pipeline text
    edits: tuple[Edit, ...] = ()
    machine_outliner: bool = False

    def nodes(self) -> tuple[Node, ...]:
        nodes = base_nodes(self.base)
        for e in self.edits:
            nodes = apply_edit(nodes, e) or nodes
        return nodes

    def passes(self) -> str:
        return unparse(self.nodes())

    def describe(self) -> str:
        """A short human-readable name: base plus a summary of the edits."""
        head = "oz" if self.base == "oz" else _shipped_name(self.base) or (
            "rand:" + hashlib.sha256(self.base.encode()).hexdigest()[:6])
        parts = [head] + [_describe_edit(e) for e in self.edits]
        if self.machine_outliner:
            parts.append("mo")
        return "+".join(parts)


def without(nodes: Sequence[Node], names: set[str]) -> tuple[Node, ...]:
    """The pipeline with every pass of these names removed (adaptors keep their
    other passes): how a pipeline drops a pass that became unsafe."""
    out = []
    for n in nodes:
        if n.name in names and not n.is_adaptor:
            continue
        out.append(Node(n.name, n.params, without(n.children, names)) if n.is_adaptor else n)
    return tuple(out)


def _shipped_name(base: str) -> str | None:
    """A base that is a shipped candidate's pipeline reads as that candidate
    (search --from-set), without the +mo: the outliner is shown separately."""
    for c in pipelines.candidates():
        if c.passes == base:
            return c.name.removesuffix("+mo")
    return None


def _describe_edit(e: Edit) -> str:
    kind = e[0]
    if kind == "append":
        first = parse(e[1])[0]
        if first.name == "function" and first.children:
            return f"fn({first.children[0].name})"
        return first.name
    return f"{kind}@{'.'.join(map(str, e[1]))}:{e[2]}"


@cache
def base_nodes(base: str) -> tuple[Node, ...]:
    return parse(pipelines.oz_pipeline() if base == "oz" else with_required(base))


def with_required(text: str) -> str:
    """The pipeline with the REQUIRED passes added where missing: ee-instrument
    first, always-inline after the first element (once SSA promotion ran, as in
    -Oz). Random bases drawn before REQUIRED existed come back repaired."""
    nodes = list(parse(text))
    names = {n.name for _, _, lst in lists(nodes) for n in lst}
    if "always-inline" not in names:
        nodes.insert(min(1, len(nodes)), Node("always-inline"))
    if "ee-instrument" not in names:
        nodes.insert(0, parse(REQUIRED_PREFIX)[0])
    return unparse(nodes)


# --- generators ------------------------------------------------------------------

def mutable_positions(nodes: tuple[Node, ...]) -> list[tuple[Path, str, int]]:
    """(list path, level, index) of every leaf worth mutating."""
    out = []
    for path, level, lst in lists(nodes):
        for i, n in enumerate(lst):
            if not n.is_adaptor and n.name not in INERT and n.name not in REQUIRED:
                out.append((path, level, i))
    return out


def random_edit(nodes: tuple[Node, ...], rng: random.Random) -> Edit:
    voc = vocabulary()
    r = rng.random()
    if r < 0.12:
        return ("append", rng.choice(EXTRA_MODULE_PASSES))
    positions = mutable_positions(nodes)
    path, level, i = rng.choice(positions)
    node = get_list(nodes, path)[i]
    if r < 0.32:
        return ("del", list(path), i)
    if r < 0.55:
        choices = voc.by_level.get(level)
        if choices:
            return ("ins", list(path), i + rng.randint(0, 1), rng.choice(choices).text())
        return ("dup", list(path), i)
    if r < 0.67:
        return ("swap", list(path), i)
    if r < 0.75:
        return ("dup", list(path), i)
    # parameter change
    if node.name == "simplifycfg":
        return ("param", list(path), i, flip_simplifycfg_flag(node.params or "", rng.choice(SIMPLIFYCFG_FLAGS)))
    seen = [p for p in voc.variants.get(node.name, ()) if p != node.params]
    if node.name == "instcombine":
        seen.append(f"max-iterations={rng.choice([1, 2, 4])};no-verify-fixpoint")
    if seen:
        return ("param", list(path), i, rng.choice(seen))
    return ("del", list(path), i)


def random_edits(nodes: tuple[Node, ...], rng: random.Random, max_edits: int) -> tuple[tuple[Node, ...], list[Edit]]:
    """1 to max_edits random edits applied in turn (one that does not apply is
    skipped): (the edited nodes, the edits that applied)."""
    edits: list[Edit] = []
    for _ in range(rng.randint(1, max_edits)):
        e = random_edit(nodes, rng)
        new = apply_edit(nodes, e)
        if new is not None:
            nodes, edits = new, edits + [_jsonable(e)]
    return nodes, edits


def mutate(ind: Individual, rng: random.Random, max_edits: int = 3) -> Individual:
    _, edits = random_edits(ind.nodes(), rng, max_edits)
    mo = (not ind.machine_outliner) if rng.random() < 0.1 else ind.machine_outliner
    return Individual(ind.base, tuple(ind.edits) + tuple(edits), mo)


def _jsonable(e: Edit) -> Edit:
    return tuple(tuple(x) if isinstance(x, list) else x for x in e)


def random_pipeline(rng: random.Random, length: int | None = None) -> str:
    """A pipeline built from -Oz's vocabulary with the right nesting: module
    passes, function(...) groups (with loop-mssa(...)/loop(...) groups inside,
    each from its own vocabulary), and cgscc(inline,...) groups.

    It starts with the REQUIRED passes and promotion to SSA (without it almost
    nothing else fires), always inlines once, and ends with -Oz's instcombine
    and simplifycfg: C code and its test suites count on inlining and folding
    under optimisation (gcc's link_failure tests and __builtin_constant_p
    tests fail without them), so a random list without them wins on size by
    dropping work that the correctness gate then rejects."""
    voc = vocabulary()
    fn, mod = voc.by_level.get(FUNCTION, ()), voc.by_level.get(MODULE, ())
    loop_groups = [(name, voc.by_level.get(level, ())) for name, level in (("loop-mssa", LOOP_MSSA), ("loop", LOOP))]
    length = length or rng.randint(3, 9)

    def fn_body(n: int) -> list[str]:
        return [rng.choice(fn).text() for _ in range(n)]

    def inline_group() -> str:
        return f"cgscc(devirt<4>(inline,function({','.join(fn_body(3))})))"

    out = ["function(ee-instrument<>,sroa<modify-cfg>,early-cse<>,mem2reg)", "always-inline"]
    for _ in range(length):
        r = rng.random()
        if r < 0.55:
            body = fn_body(rng.randint(2, 8))
            if rng.random() < 0.3:
                name, lp = rng.choice(loop_groups)
                if lp:
                    loop = [rng.choice(lp).text() for _ in range(rng.randint(1, 3))]
                    body.insert(rng.randrange(len(body) + 1), f"{name}({','.join(loop)})")
            out.append(f"function({','.join(body)})")
        elif r < 0.7:
            out.append(inline_group())
        elif mod:
            out.append(rng.choice(mod).text())
    if not any(o.startswith("cgscc(") for o in out):
        out.insert(rng.randint(2, len(out)), inline_group())
    if rng.random() < 0.5:
        out.append(rng.choice(EXTRA_MODULE_PASSES))
    out.append(f"function({oz_pass('instcombine')},{oz_pass('simplifycfg')})")
    return ",".join(out)


@cache
def oz_pass(name: str) -> str:
    """The first function-level occurrence of pass `name` in -Oz, with its parameters."""
    for node in vocabulary().by_level.get(FUNCTION, ()):
        if node.name == name:
            return node.text()
    raise ValueError(f"-Oz runs no function pass {name!r}")
