"""LLVM IR as the model sees it: normalisation, chunking and tokenisation.

Training (clang_llm.train.model) and the runtime policy (the ``onnx`` back end)
both turn a module's textual IR into model input through ``encode()`` here, so
the two can never disagree about what a token is.

Normalisation (NORM_VERSION; bump it whenever the output can change, the model's
metadata records it and the runtime refuses a model made for another version):

- the module header is dropped (ModuleID, source_filename, datalayout, triple):
  it names files and machines, not code;
- comments, debug records (``#dbg_value(...)``, ``llvm.dbg.*`` calls) and every
  metadata attachment (``!tbaa``, ``!dbg``, ``!llvm.loop`` ...) are dropped;
  attribute-group references (``#0``) too: the attributes that matter for size
  (noinline, alwaysinline, optnone, cold, noreturn) are counted by
  clang_llm.features instead;
- ``noundef``, ``dso_local`` and ``align N`` are dropped (they do not change the
  code a pipeline can produce at -Oz, and they are a fifth of the tokens);
- string constants keep their type (hence length) and lose their contents;
- local values and block labels are renumbered %0, %1, ... in order of first
  appearance in the function; module-level symbols are renumbered @0, @1, ... in
  order of first appearance in the module, except intrinsics (``@llvm.memcpy``,
  type suffixes dropped) and declared external functions (``@memcpy``,
  ``@printf``), whose names mean the same thing in every module; named struct
  types become %T0, %T1, ...;
- the definitions ``%N = `` are dropped: after renumbering they are implied by
  the order of the lines (two tokens saved on most lines);
- indentation goes, and a run of identical lines becomes one line with
  `` (xN)`` (the allocas and lifetime markers of unoptimised code).

The tokenizer (BPE, trained on the training split's chunk texts) splits on
whitespace, drops commas and splits brackets off; the model never sees text
that did not pass through normalise_function().

Chunking (the stated, bounded scheme for modules of any size):

- each defined function is one unit; functions are taken largest first (by the
  size of their printed text, which needs no scan of their bodies; ties in
  module order);
- a function's normalised text is tokenised and cut into windows of at most
  CHUNK_TOKENS tokens; a function contributes at most WINDOWS_PER_FUNCTION
  windows, and the module at most MAX_CHUNKS windows in all;
- before normalising, a function's text is cut at FUNCTION_CHAR_BUDGET characters
  (on a line boundary), enough for its windows, so normalisation and tokenisation
  cost at most MAX_CHUNKS cut functions however large the module is (finding the
  functions, like the features, is a linear scan of the text in C-speed string
  and regular-expression searches);
- whatever is not encoded (small functions past the cap, the tails of long
  functions, globals) is still represented by clang_llm.features, which counts
  the whole module, including ``coverage``: the share of the module's
  instructions that the encoded windows hold.

A module without function definitions is one chunk holding the EMPTY token.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

NORM_VERSION = "2"
# The IR dialect the patterns below are written for (LLVM 22.1's printer).
LLVM_VERSION = "22.1"

CHUNK_TOKENS = 128
WINDOWS_PER_FUNCTION = 2
MAX_CHUNKS = 8
FUNCTION_CHAR_BUDGET = 4000

PAD, UNK, EMPTY = "[PAD]", "[UNK]", "[EMPTY]"
SPECIAL_TOKENS = (PAD, UNK, EMPTY)  # ids 0, 1, 2: the model relies on PAD being 0
PAD_ID, UNK_ID, EMPTY_ID = 0, 1, 2


# --- splitting a module ---------------------------------------------------------

@dataclass(frozen=True)
class Function:
    module: str = field(repr=False)  # the whole module's text (not copied)
    start: int
    end: int

    @property
    def text(self) -> str:
        """The define line through the closing brace, as printed by LLVM."""
        return self.module[self.start: self.end]

    @property
    def size(self) -> int:
        """Characters of printed text: what select() ranks by (no scan needed)."""
        return self.end - self.start

    @property
    def instructions(self) -> int:
        """Instruction lines (see instruction_lines), counted in place."""
        return self.module.count("\n  ", self.start, self.end) - self.module.count("\n    ", self.start, self.end)


def functions(ir: str) -> list[Function]:
    """The module's function definitions, in module order.

    LLVM prints every definition as a ``define`` line at column 0 through a line
    holding only ``}``; nothing else in textual IR starts that way. Only offsets
    are kept: a module of megabytes is scanned, never copied.
    """
    out: list[Function] = []
    pos = 0 if ir.startswith("define ") else ir.find("\ndefine ") + 1
    if pos == 0 and not ir.startswith("define "):
        return out
    while True:
        end = ir.find("\n}\n", pos)
        end = len(ir) if end < 0 else end + 3
        out.append(Function(ir, pos, end))
        nxt = ir.find("\ndefine ", end - 1)
        if nxt < 0:
            return out
        pos = nxt + 1


def instruction_lines(fn_text: str) -> int:
    """Instructions in a function's text: the lines indented by two spaces (switch
    cases and debug records are indented by four)."""
    return fn_text.count("\n  ") - fn_text.count("\n    ")


def select(fns: list[Function]) -> list[Function]:
    """The functions the chunks come from: largest first, at most MAX_CHUNKS."""
    order = sorted(range(len(fns)), key=lambda i: (-fns[i].size, i))
    return [fns[i] for i in order[:MAX_CHUNKS]]


# --- normalisation --------------------------------------------------------------

# Patterns begin with a literal where possible ("\n", ", align", " #"): Python's re
# then searches for it instead of trying the pattern at every position.
_DEBUG_LINE = re.compile(r"\n[ \t]*(?:#dbg_\w+\(|(?:tail )?call void @llvm\.dbg\.\w+\()[^\n]*")
_COMMENT = re.compile(r'[ \t]*;[^"\n]*')
_METADATA = re.compile(r",? !(?:[A-Za-z_][\w.]*) !(?:\d+|\{[^}\n]*\})")
_ATTR_REF = re.compile(r" #\d+\b")
_ALIGN = re.compile(r", align \d+")
_STRING = re.compile(r'c"[^"]*"')
# Named struct types are module-wide (renumbered by Names), not locals.
_LOCAL = re.compile(r'%(?!(?:struct|union|class)\.|"(?:struct|union|class)\.)(?:[-\w.$]+|"[^"]*")|\n([-\w.$]+):')
_GLOBAL = re.compile(r'@(?:[-\w.$]+|"[^"]*")')
_INTRINSIC_SUFFIX = re.compile(r"(@llvm\.[a-z_]+(?:\.[a-z_]+)*?)(?:\.(?:p\d+|[iv]\d+\w*|f\d+|s_\w+|nxv\w+|bf16))+\b")
_DECLARE_NAME = re.compile(r'\ndeclare [^@\n]*(@(?:[-\w.$]+|"[^"]*"))')
_TYPE_NAME = re.compile(r'%(?:struct|union|class)\.[-\w.$]+|%"(?:struct|union|class)\.[^"]*"')
_DEFINITION = re.compile(r"\n%\d+ = ")
MAX_REPEAT = 99


class Names:
    """Module-wide renumbering of symbols: one instance per module, so the same
    global gets the same number in every chunk of that module."""

    def __init__(self, external: set[str]):
        self.external = external
        self.table: dict[str, str] = {}
        self.types: dict[str, str] = {}

    def symbol(self, m: re.Match) -> str:
        name = m.group(0)
        if name.startswith("@llvm.") or name in self.external:
            return name
        new = self.table.get(name)
        if new is None:
            new = self.table[name] = f"@{len(self.table)}"
        return new

    def type_name(self, m: re.Match) -> str:
        name = m.group(0)
        new = self.types.get(name)
        if new is None:
            new = self.types[name] = f"%T{len(self.types)}"
        return new


def external_functions(ir: str) -> set[str]:
    """Names of the functions the module declares but does not define."""
    return set(_DECLARE_NAME.findall(ir))


def _cut(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    end = text.rfind("\n", 0, budget)
    return text[: end + 1 if end > 0 else budget]


def normalise_function(text: str, names: Names) -> str:
    """One function's normalised text (see the module docstring)."""
    text = "\n" + text
    if "dbg" in text:
        text = _DEBUG_LINE.sub("", text)
    text = _COMMENT.sub("", text)
    if "!" in text:
        text = _METADATA.sub("", text)
    text = _ATTR_REF.sub("", _ALIGN.sub("", text)).replace(" noundef", "").replace(" dso_local", "")
    text = _STRING.sub('c"s"', text)
    text = _INTRINSIC_SUFFIX.sub(r"\1", text)
    text = _GLOBAL.sub(names.symbol, text)
    local: dict[str, str] = {}

    def rename(m: re.Match) -> str:
        label = m.group(1)
        key = "%" + label if label is not None else m.group(0)
        new = local.get(key)
        if new is None:
            new = local[key] = f"%{len(local)}"
        return "\n" + new[1:] + ":" if label is not None else new

    text = _LOCAL.sub(rename, text)
    text = _TYPE_NAME.sub(names.type_name, text)
    # Every value is now numbered in order of definition, so "%N = " says nothing
    # the order does not; dropping it saves two tokens on most lines.
    text = _DEFINITION.sub("\n", text.replace("\n  ", "\n"))
    return _squeeze(text)


def _squeeze(text: str) -> str:
    """Strip lines and drop empty ones; a run of identical lines (the allocas and
    lifetime markers of unoptimised code, once definitions are dropped) becomes
    the line once with " (xN)" appended."""
    out: list[str] = []
    prev, run = None, 0
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line == prev:
            run += 1
            continue
        if run > 1:
            out[-1] += f" (x{min(run, MAX_REPEAT)})"
        out.append(line)
        prev, run = line, 1
    if run > 1:
        out[-1] += f" (x{min(run, MAX_REPEAT)})"
    return "\n".join(out)


def normalise(ir: str) -> str:
    """The whole module's function definitions, normalised, in module order
    (for inspection and tests; encode() normalises only what it encodes)."""
    names = Names(external_functions(ir))
    return "\n".join(normalise_function(f.text, names) for f in functions(ir))


def chunk_texts(ir: str) -> list[str]:
    """The normalised texts of the functions encode() draws its windows from,
    each cut at FUNCTION_CHAR_BUDGET first, in the order of select()."""
    names = Names(external_functions(ir))
    return [normalise_function(_cut(f.text, FUNCTION_CHAR_BUDGET), names) for f in select(functions(ir))]


# --- tokenizer ------------------------------------------------------------------

def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    # Whitespace-separated words; commas (operand separators, no meaning of their
    # own) go, and brackets are split off ("@3(ptr" -> "@3", "(", "ptr"), so BPE
    # learns operands and opcodes rather than their accidental neighbours. '%',
    # '@' and '.' stay inside words: "%12", "@llvm.memcpy", "%T3" are units.
    return pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(",", behavior="removed"),
        pre_tokenizers.Split(Regex(r"[()\[\]{}<>*=]"), behavior="isolated"),
    ])


def train_tokenizer(texts, vocab_size: int = 2000, min_frequency: int = 2):
    """A BPE tokenizer over normalised function texts (the TRAINING split's)."""
    from tokenizers import Tokenizer, models, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            raise RuntimeError(f"tokenizer put {s} at id {tok.token_to_id(s)}, expected {i}")
    return tok


def tokenizer_hash(tokenizer_json: str) -> str:
    """Identifies a tokenizer (model metadata): the hash of its JSON text."""
    return hashlib.sha256(tokenizer_json.encode()).hexdigest()[:16]


def load_tokenizer(path: str):
    from tokenizers import Tokenizer

    with open(path, encoding="utf-8") as f:
        text = f.read()
    tok = Tokenizer.from_str(text)
    return tok, tokenizer_hash(text)


# --- model input ----------------------------------------------------------------

@dataclass
class Encoded:
    chunks: list[list[int]]  # token ids, each 1..CHUNK_TOKENS long
    covered: float           # instruction lines the chunks hold (estimated)


def encode(ir: str, tokenizer) -> Encoded:
    """A module's chunks of token ids (the model's token input), following the
    scheme in the module docstring."""
    fns = select(functions(ir))
    names = Names(external_functions(ir)) if fns else None
    cut = [_cut(f.text, FUNCTION_CHAR_BUDGET) for f in fns]
    texts = [normalise_function(t, names) for t in cut]
    encs = tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
    chunks: list[list[int]] = []
    covered = 0.0
    for fn, raw, enc in zip(fns, cut, encs):
        ids = enc.ids
        if not ids:
            continue
        taken = 0
        for s in range(0, min(len(ids), CHUNK_TOKENS * WINDOWS_PER_FUNCTION), CHUNK_TOKENS):
            if len(chunks) < MAX_CHUNKS:
                chunks.append(ids[s: s + CHUNK_TOKENS])
                taken += len(chunks[-1])
        # The encoded share of the function: what the character cut kept, times
        # what the windows kept of that.
        covered += fn.instructions * (len(raw) / fn.size) * (taken / len(ids))
        if len(chunks) == MAX_CHUNKS:
            break
    return Encoded(chunks or [[EMPTY_ID]], covered)


def pad(chunks: list[list[int]]):
    """chunks as a [C, L] int64 array padded with PAD_ID (L: the longest chunk)."""
    import numpy as np

    width = max(len(c) for c in chunks)
    out = np.zeros((len(chunks), width), dtype=np.int64)
    for i, c in enumerate(chunks):
        out[i, : len(c)] = c
    return out
