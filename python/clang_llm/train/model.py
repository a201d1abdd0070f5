"""The policy model: data set, training, ablations and ONNX export.

    clang-llm-data train [--labels FILE] [--modules DIR] [--install]

One command does everything, resumably, under WORK (default DATA/model):

1. reads the label table (clang_llm.train.labels: the image size, clang_llm.sizes,
   of every module under every candidate, refused if made for another candidate
   set) and turns it into targets y[m, c] = log((size_c + 1) / (size_oz + 1)): the
   model predicts, for every candidate, the module's image bytes relative to -Oz,
   so the policy can rank candidates and say how many bytes it expects to save;
2. trains the BPE tokenizer on the TRAINING split's normalised function texts
   (clang_llm.ir.chunk_texts: exactly what the model will encode) ->
   WORK/tokenizer.json;
3. encodes every module once (clang_llm.ir.encode, clang_llm.features.vector,
   from the module's bitcode through clang_llm._core) -> WORK/encoded.pkl,
   keyed by module hash and the encoding signatures, reused by later runs;
4. the ablations, each trained on the training split and scored on the
   validation split with the same measure (see score()):
     best-fixed     the single candidate with the best geomean on training
     lgbm           features -> LightGBM, one regressor per candidate
     mlp            features -> a small MLP (exports to ONNX)
     transformer    token chunks -> transformer encoder -> pooled -> head
     transformer+features   both
   The torch models train for --epochs with AdamW, seeded, a checkpoint per epoch
   (WORK/<variant>/last.pt; an interrupted run resumes from it), and keep the
   epoch with the best validation geomean (early stopping; the test split stays
   untouched for bench/model_eval.py);
5. exports the best torch variant (lgbm is reported, not shipped) to
   WORK/model.onnx with the metadata clang_llm.ranker checks, and the report to
   WORK/ablation.json (+ bench/results/model_ablation.{json,md}); with --install
   also copies model.onnx and tokenizer.json into clang_llm/data/.

The transformer: token embedding + learned positions, LAYERS pre-norm encoder
layers (written out with plain matmuls, so the legacy ONNX exporter gives a
small clean graph), mean over each chunk's tokens, attention pooling over the
module's chunks, concatenated with the standardised features (transformer+features)
and an MLP head with one output per candidate. The feature statistics live in the
model as buffers, so the ONNX graph takes raw clang_llm.features vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import REPO, committed_dir, data_root

VARIANTS = ("best-fixed", "lgbm", "mlp", "transformer", "transformer+features")


# --- labels -> targets -------------------------------------------------------------

@dataclass
class Labels:
    modules: list[str]           # module hashes
    package: list[str]
    split: list[str]
    candidates: list[str]        # in clang_llm.pipelines.candidates() order; "oz" first
    # [M, K] float64 image bytes (clang_llm.sizes.OBJECTIVE; .text in tables made
    # before the image metric), NaN where the evaluation failed or was not made
    size: "np.ndarray"           # noqa: F821
    source: str = ""             # where the table came from (for reports)
    # [M, K] bool: the table has the evaluation (failed or not); None: all made.
    # A candidate added to an extended table lacks rows where no bitcode was at hand.
    measured: "np.ndarray | None" = None  # noqa: F821
    # [M, K] RAM bytes (data + bss), None in tables made before the image metric.
    ram: "np.ndarray | None" = None  # noqa: F821
    # [M, K] .text bytes, a diagnostic beside the image (None where size is .text).
    text: "np.ndarray | None" = None  # noqa: F821

    def verify_size(self) -> "np.ndarray":  # noqa: F821
        """size as verify mode can get it: a candidate that needs more RAM than
        -Oz on a module is never taken there (clang_llm.sizes.acceptable), so it
        counts as -Oz."""
        import numpy as np

        if self.ram is None:
            return self.size
        grows = np.nan_to_num(self.ram, nan=0.0) > self.ram[:, :1]
        return np.where(grows, self.size[:, :1], self.size)

    def ram_growth(self, rows: list[int]) -> "np.ndarray":  # noqa: F821
        """[K] how many of rows each candidate gives more RAM than -Oz."""
        import numpy as np

        if self.ram is None:
            return np.zeros(len(self.candidates), dtype=int)
        r = self.ram[rows]
        return (np.nan_to_num(r, nan=0.0) > r[:, :1]).sum(axis=0)

    def rows(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == split]

    def scored(self, split: str, columns: list[int] | None = None) -> list[int]:
        """rows(split) whose every candidate (or every one of columns) was
        evaluated: what scores and orders are computed on, since a module that
        was never measured under a candidate must not count as if the candidate
        failed there (a failure counts as -Oz; an unmeasured one is unknown)."""
        rows = self.rows(split)
        if self.measured is None:
            return rows
        if columns is None:
            # A candidate that failed the gate is never chosen nor measured by
            # verify mode: a table need not have measured it.
            from .. import pipelines

            columns = pipelines.usable_indices()
        m = self.measured[:, columns]
        return [i for i in rows if m[i].all()]

    def subset(self, keep: list[int]) -> "Labels":
        return Labels([self.modules[i] for i in keep], [self.package[i] for i in keep],
                      [self.split[i] for i in keep], self.candidates, self.size[keep], self.source,
                      None if self.measured is None else self.measured[keep],
                      None if self.ram is None else self.ram[keep], None if self.text is None else self.text[keep])

    def with_split(self, split: list[str]) -> "Labels":
        return Labels(self.modules, self.package, split, self.candidates, self.size, self.source, self.measured,
                      self.ram, self.text)


def load_labels(path: Path | None, flags: str = "default") -> Labels:
    """The label table's rows of one flag set (clang_llm.sizes.FLAG_SETS) as
    [module, candidate] matrices of the objective and RAM."""
    import numpy as np

    from .. import pipelines, sizes
    from . import labels

    table = labels.read(path)
    cols = table.to_pydict()
    if "flags" in cols:
        keep_rows = [i for i, f in enumerate(cols["flags"]) if f == flags]
        cols = {k: [v[i] for i in keep_rows] for k, v in cols.items()}
    elif flags != "default":
        raise ValueError(f"the label table has no {flags!r} rows (made before flag sets)")
    objective = sizes.OBJECTIVE if sizes.OBJECTIVE in cols else "text"
    names = [c.name for c in pipelines.candidates()]
    col = {n: j for j, n in enumerate(names)}
    index: dict[str, int] = {}
    package, split = [], []
    for h, p, s in zip(cols["module"], cols["package"], cols["split"]):
        if h not in index:
            index[h] = len(index)
            package.append(p)
            split.append(s)
    text = np.full((len(index), len(names)), np.nan)
    ram = np.full(text.shape, np.nan) if sizes.RAM in cols else None
    code = np.full(text.shape, np.nan) if objective != "text" else None
    measured = np.zeros(text.shape, dtype=bool)
    for i, (h, c, t, err) in enumerate(zip(cols["module"], cols["candidate"], cols[objective], cols["error"])):
        if c in col:
            measured[index[h], col[c]] = True
            if not err and t is not None:
                text[index[h], col[c]] = t
                if ram is not None:
                    ram[index[h], col[c]] = cols[sizes.RAM][i]
                if code is not None:
                    code[index[h], col[c]] = cols["text"][i]
    keep = ~np.isnan(text[:, 0])  # a module without an -Oz size has nothing to compare with
    mods = [h for h, k in zip(index, keep) if k]
    return Labels(mods, [p for p, k in zip(package, keep) if k], [s for s, k in zip(split, keep) if k],
                  names, text[keep], str(path or committed_dir() / "labels.parquet"),
                  None if measured[keep].all() else measured[keep], None if ram is None else ram[keep],
                  None if code is None else code[keep])


def targets(text):
    """y = log((text_c + 1) / (text_oz + 1)), NaN where text_c is unknown."""
    import numpy as np

    return np.log((text + 1.0) / (text[:, :1] + 1.0))


def fixed_ranking(lab: Labels, only: list[str] | None = None) -> tuple[list[int], dict[str, float], int]:
    """Candidates by their geomean image ratio (clang_llm.sizes) to -Oz over the training modules
    that have code and every considered candidate measured, best first: the
    default back end's pipeline (`clang-llm-data best-fixed`) and the baseline
    every report compares with, computed here only. only: candidate names to
    consider (default all). Returns (indices best first, {name: ratio}, modules)."""
    import numpy as np

    considered = [j for j, n in enumerate(lab.candidates) if only is None or n in only]
    t = lab.size[lab.rows("train")]
    use = (t[:, 0] > 0) & ~np.isnan(t[:, considered]).any(axis=1)
    ratio = np.exp(targets(t[use])[:, considered].mean(axis=0)) if use.any() else np.ones(len(considered))
    score = {lab.candidates[j]: float(r) for j, r in zip(considered, ratio)}
    order = sorted(considered, key=lambda j: (score[lab.candidates[j]], lab.candidates[j]))
    return order, score, int(use.sum())


def coverage_order(lab: Labels, only: list[str] | None = None) -> tuple[list[int], list[float], int]:
    """The order verify mode should measure candidates in when nothing is known
    about the module: greedily, each next candidate is the one that most lowers
    the training geomean of the smallest image among -Oz (always measured) and
    the candidates before it. Ranking by each candidate's own geomean instead
    measures near-copies of one pipeline, which rarely win where it loses. A
    failed evaluation counts as -Oz (the policy falls back). only: candidate
    names to consider (default all). Returns (indices, -Oz left out; geomean
    ratio after each; training modules used)."""
    import numpy as np

    from .. import ranker

    considered = [j for j, n in enumerate(lab.candidates) if j != 0 and (only is None or n in only)]
    t = lab.verify_size()[lab.scored("train", considered)]
    t = t[t[:, 0] > 0]
    gain = np.minimum(np.nan_to_num(targets(t), nan=0.0), 0.0)
    order, after = ranker.greedy_cover(gain, considered)
    return order, after, len(t)


# --- scoring -------------------------------------------------------------------------

def choose_sizes(text, order, k: int = 1):
    """Per module, the size (image bytes) that a policy gets: top-1 of `order` (candidate indices,
    best first, per module), or with k > 1 verify mode: the smallest of -Oz and the
    first k measured. A failed candidate counts as -Oz (the policy falls back)."""
    import numpy as np

    oz = text[:, 0]
    out = np.empty(len(text))
    for i in range(len(text)):
        sizes = [text[i, j] for j in order[i][:k]]
        sizes = [s if not math.isnan(s) else oz[i] for s in sizes]
        out[i] = min(sizes + [oz[i]]) if k > 1 else sizes[0]
    return out


def score(text, chosen) -> dict:
    """How a choice compares with -Oz on the same modules: geomean of per-module
    ratios (modules with code only), total reduction, share of modules that
    got smaller / larger."""
    import numpy as np

    oz = text[:, 0]
    code = oz > 0
    ratios = (chosen[code] + 0.0) / oz[code]
    return {
        "modules": int(len(oz)),
        "modules_with_code": int(code.sum()),
        "geomean_ratio": float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-9))))) if code.any() else 1.0,
        "total_oz": int(oz.sum()),
        "total_chosen": int(chosen.sum()),
        "total_reduction": float(1.0 - chosen.sum() / oz.sum()) if oz.sum() else 0.0,
        "improved": float((chosen < oz).mean()),
        "regressed": float((chosen > oz).mean()),
    }


# Margins (log ratio) by which another candidate must be predicted smaller than
# the best fixed one to be chosen instead (ranker: clang_llm.prefer).
PREFER_MARGINS = (0.0, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05)


def choose_margin(text, oof, oof_default) -> tuple[float, dict]:
    """The margin whose top-1 is smallest out of fold (each held-out package
    ranked by a model and a best fixed pipeline of the other packages); ties go
    to the smaller margin. Returns it and its out-of-fold score."""
    from .. import ranker

    scored = [(score(text, choose_sizes(text, order_from_predictions(ranker.lowered(oof, oof_default, m)))), m)
              for m in PREFER_MARGINS]
    best, m = min(scored, key=lambda s: (round(s[0]["geomean_ratio"], 7), s[1]))
    return m, best


def top1_as_run(entry: dict) -> float:
    """A variant's validation top-1 as the runtime ranks: with its preference
    for the best fixed pipeline where it has one."""
    return entry.get("val_prefer", entry["val"])["geomean_ratio"]


def ship_choice(entries: dict[str, dict]) -> str:
    """Which trained variant ships: the best validation top-1 as it would run
    (top1_as_run); between equals, most often variants whose margin keeps the
    default on every module, the better verify mode at its default k=4 (the
    residual cover, the only thing the model then changes); then VARIANTS order.
    Scores are compared as reported, to 6 decimals."""
    return min(entries, key=lambda v: (round(top1_as_run(entries[v]), 6),
                                       round(entries[v]["val_verify"]["k4"]["geomean_ratio"], 6),
                                       VARIANTS.index(v)))


def order_from_predictions(pred):
    import numpy as np

    # Stable sort: ties keep candidate order, so -Oz (index 0) wins a tie.
    return usable_first(np.argsort(pred, axis=1, kind="stable"))


def usable_first(order):
    """Orders (candidate indices per module) with candidates that are not
    validated (excluded after the labels were made) moved last, where no top-k
    reaches them: the policy never chooses or measures them either."""
    import numpy as np

    from .. import pipelines

    bad = set(range(len(pipelines.candidates()))) - set(pipelines.usable_indices())
    if not bad:
        return order
    return np.array([[j for j in row if j not in bad] + [j for j in row if j in bad] for row in order])


# --- encoding ------------------------------------------------------------------------

def module_ir(path: Path) -> str:
    from .. import _core

    return _core.LoadedModule(path.read_bytes(), path.name).ir_text()


def _module_path(modules_dir: Path | None, h: str) -> Path:
    if modules_dir is not None:
        return modules_dir / f"{h}.bc"
    from . import corpus

    return corpus.layout().modules / f"{h}.bc"


def rows_with_bitcode(lab: Labels, split: str, modules_dir: Path | None) -> tuple[list[int], list[int]]:
    """(rows of the split whose module's bitcode is at hand, rows whose is not):
    the benchmarks that run the ranker on real modules leave the second out
    (their package built differently on this machine) and say how many."""
    rows = lab.rows(split)
    have = [_module_path(modules_dir, lab.modules[i]).is_file() for i in rows]
    return [i for i, h in zip(rows, have) if h], [i for i, h in zip(rows, have) if not h]


def train_tokenizer(lab: Labels, modules_dir: Path | None, out: Path, vocab: int, quiet: bool):
    from tqdm import tqdm

    from .. import ir

    rows = lab.rows("train")

    def texts():
        for i in tqdm(rows, desc="tokenizer", disable=quiet, file=sys.stderr):
            yield from ir.chunk_texts(module_ir(_module_path(modules_dir, lab.modules[i])))

    tok = ir.train_tokenizer(texts(), vocab_size=vocab)
    out.write_text(tok.to_str(pretty=False), encoding="utf-8")
    return tok


def encode_all(lab: Labels, modules_dir: Path | None, tokenizer, tok_hash: str, cache: Path, quiet: bool) -> dict:
    """{hash: (chunks, features)} for every labelled module, cached in `cache`."""
    from tqdm import tqdm

    from .. import features, ir, ranker

    sig = f"{ranker.norm_signature()}|{ranker.feature_signature()}|{tok_hash}"
    done: dict = {}
    if cache.exists():
        with cache.open("rb") as f:
            saved = pickle.load(f)
        if saved.get("signature") == sig:
            done = saved["modules"]
    todo = [h for h in lab.modules if h not in done]
    for n, h in enumerate(tqdm(todo, desc="encode", disable=quiet, file=sys.stderr)):
        text = module_ir(_module_path(modules_dir, h))
        enc = ir.encode(text, tokenizer)
        done[h] = (enc.chunks, features.vector(text, enc.covered))
        if (n + 1) % 500 == 0 or n + 1 == len(todo):
            _dump(cache, {"signature": sig, "modules": done})
    return done


# --- the committed feature table --------------------------------------------------------

FEATURE_TABLE = committed_dir() / "features.parquet"
# Variants that read nothing of a module but its feature vector: they train from
# the committed feature table, without the corpus.
TOKEN_FREE = ("best-fixed", "lgbm", "mlp")


def runtime_features(text: str):
    """A module's feature vector as a model without token input gets it at run
    time (clang_llm.ranker does not tokenise for such a model: covered = 0)."""
    from .. import features

    return features.vector(text, 0.0)


def write_feature_table(hashes: list[str], modules_dir: Path | None, out: Path, quiet: bool,
                        old: dict | None = None) -> tuple[int, list[str]]:
    """The token-free feature vector of every module in `hashes` whose bitcode is
    at hand (or that `old`, a table read before, already holds) as parquet: one row
    per module, one float32 column per clang_llm.features name. Returns (rows,
    hashes left out because neither had them)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from .. import features, ir, ranker

    rows, missing = {}, []
    for h in tqdm(hashes, desc="features", disable=quiet, file=sys.stderr):
        path = _module_path(modules_dir, h)
        if path.is_file():
            rows[h] = runtime_features(module_ir(path))
        elif old and h in old:
            rows[h] = old[h]
        else:
            missing.append(h)
    order = sorted(rows)
    mat = np.stack([rows[h] for h in order]) if order else np.zeros((0, len(features.NAMES)), np.float32)
    cols = {"module": pa.array(order, pa.string())}
    cols.update({name: pa.array(mat[:, j], pa.float32()) for j, name in enumerate(features.NAMES)})
    meta = {"features": ranker.feature_signature(), "llvm": ir.LLVM_VERSION,
            "command": "clang-llm-data " + " ".join(sys.argv[1:]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols).replace_schema_metadata(meta), out, compression="zstd")
    return len(order), missing


def read_feature_table(path: Path | None = None) -> dict:
    """{module hash: float32 [F]} from a feature table, refusing one computed by
    another feature version or LLVM (its vectors would not be what the runtime
    computes); {} when there is no table."""
    import numpy as np
    import pyarrow.parquet as pq

    from .. import features, ir, ranker

    path = Path(path or FEATURE_TABLE)
    if not path.is_file():
        return {}
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    want = {"features": ranker.feature_signature(), "llvm": ir.LLVM_VERSION}
    for key, value in want.items():
        if meta.get(key) != value:
            raise ValueError(f"feature table {path} was computed for {key} {meta.get(key, '(none)')!r}, this "
                             f"clang-llm has {value!r}: rebuild it with `clang-llm-data features`")
    cols = table.to_pydict()
    mat = np.stack([np.asarray(cols[n], dtype=np.float32) for n in features.NAMES], axis=1)
    return dict(zip(cols["module"], mat))


def token_free_features(lab: Labels, modules_dir: Path | None, table: Path | None, quiet: bool):
    """[M, F] runtime feature vectors of the labelled modules: from the feature
    table, else from the module's bitcode; None for a module that has neither."""
    from tqdm import tqdm

    known = read_feature_table(table)
    out = []
    for h in tqdm(lab.modules, desc="features", disable=quiet, file=sys.stderr):
        if h not in known:
            path = _module_path(modules_dir, h)
            known[h] = runtime_features(module_ir(path)) if path.is_file() else None
        out.append(known[h])
    return out


def _dump(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


# --- the network -----------------------------------------------------------------------

def _torch():
    import torch
    from torch import nn

    return torch, nn


@dataclass
class NetConfig:
    vocab: int
    features: int
    outputs: int
    use_tokens: bool = True
    use_features: bool = True
    # Sized for the runtime budget: 8 chunks of 128 tokens take ~2.4 ms on one
    # core in onnxruntime at dim 48 (~4 ms at 64).
    dim: int = 48
    layers: int = 2
    heads: int = 2
    ff: int = 96
    hidden: int = 128
    dropout: float = 0.1
    max_len: int = 128


def build_net(cfg: NetConfig, feat_mean=None, feat_std=None):
    torch, nn = _torch()
    F = torch.nn.functional

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1 = nn.LayerNorm(cfg.dim)
            self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
            self.proj = nn.Linear(cfg.dim, cfg.dim)
            self.n2 = nn.LayerNorm(cfg.dim)
            self.ff1 = nn.Linear(cfg.dim, cfg.ff)
            self.ff2 = nn.Linear(cfg.ff, cfg.dim)
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x, bias):  # x [N, L, D]; bias [N, 1, 1, L]: 0 or -1e4 at padding
            n, length = x.shape[0], x.shape[1]
            d, h = cfg.dim, cfg.heads
            q, k, v = self.qkv(self.n1(x)).reshape(n, length, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
            att = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // h)) + bias, dim=-1)
            y = (self.drop(att) @ v).transpose(1, 2).reshape(n, length, d)
            x = x + self.drop(self.proj(y))
            return x + self.drop(self.ff2(F.gelu(self.ff1(self.n2(x)))))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = cfg
            head_in = 0
            if cfg.use_tokens:
                self.emb = nn.Embedding(cfg.vocab, cfg.dim, padding_idx=0)
                self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.dim) * 0.02)
                self.layers = nn.ModuleList(Layer() for _ in range(cfg.layers))
                self.norm = nn.LayerNorm(cfg.dim)
                self.pool = nn.Linear(cfg.dim, 1)
                head_in += cfg.dim
            if cfg.use_features:
                self.register_buffer("mean", torch.as_tensor(feat_mean, dtype=torch.float32))
                self.register_buffer("std", torch.as_tensor(feat_std, dtype=torch.float32))
                self.fin = nn.Sequential(nn.Linear(cfg.features, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout))
                head_in += cfg.hidden
            self.head = nn.Sequential(nn.Linear(head_in, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                      nn.Linear(cfg.hidden, cfg.outputs - 1))

        def forward(self, tokens, chunk_mask, feats):
            """tokens [B, C, L] int64 (0 = padding), chunk_mask [B, C] (1 = real
            chunk), feats [B, F] -> [B, K] predicted log ratios, -Oz's fixed at 0."""
            parts = []
            if cfg.use_tokens:
                b, c, length = tokens.shape
                t = tokens.reshape(b * c, length)
                keep = (t != 0).float()                                  # [N, L]
                x = self.emb(t) + self.pos[:length]
                bias = ((1.0 - keep) * -1e4)[:, None, None, :]
                for layer in self.layers:
                    x = layer(x, bias)
                x = self.norm(x)
                chunk = (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1.0)
                chunk = chunk.reshape(b, c, -1)
                w = self.pool(chunk).squeeze(-1) + (1.0 - chunk_mask) * -1e4  # [B, C]
                parts.append((torch.softmax(w, dim=1)[..., None] * chunk).sum(1))
            if cfg.use_features:
                parts.append(self.fin((feats - self.mean) / self.std))
            rest = self.head(torch.cat(parts, dim=1))
            return torch.cat([torch.zeros_like(rest[:, :1]), rest], dim=1)

    return Net()


class _OneModule:
    """The export wrapper: one module per call, as the runtime feeds it."""

    @staticmethod
    def wrap(net):
        torch, nn = _torch()

        class Wrapped(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, *inputs):
                cfg = self.net.cfg
                it = iter(inputs)
                tokens = next(it) if cfg.use_tokens else None
                feats = next(it) if cfg.use_features else None
                if tokens is None:
                    tokens_b = torch.zeros(1, 1, 1, dtype=torch.int64)
                    mask = torch.ones(1, 1)
                else:
                    tokens_b = tokens[None]
                    mask = torch.ones(1, tokens.shape[0])
                f = feats[None] if feats is not None else torch.zeros(1, cfg.features)
                return self.net(tokens_b, mask, f)[0] / SCALE

        return Wrapped()


# The network predicts y * SCALE: the log ratios are a few hundredths, and unit-sized
# targets train better; the export divides SCALE out again.
SCALE = 20.0


# --- training ---------------------------------------------------------------------------

@dataclass
class TrainConfig:
    epochs: int = 10
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    rank_weight: float = 1.0


# Temperature of the listwise loss, in scaled units: 0.2 / SCALE = 1% of the size.
RANK_TEMPERATURE = 0.2


def listwise_loss(pred, y, known, weight):
    """Cross-entropy between softmax(-y / T) and softmax(-pred / T) over the known
    candidates: the regression alone spends its effort on sizes, and the policy
    only needs the order, and mostly its top (a 1% difference is a lot here)."""
    torch, _ = _torch()
    neg = (1.0 - known) * 1e4
    target = torch.softmax(-y / RANK_TEMPERATURE - neg, dim=1)
    logp = torch.log_softmax(-pred / RANK_TEMPERATURE - neg, dim=1)
    per_module = -(target * logp).sum(1)
    return (per_module * weight).sum() / weight.sum().clamp(min=1)


def pack(enc: list[list[list[int]]]):
    """All modules' chunks as one PAD-filled int32 array [M, MAX_CHUNKS, CHUNK_TOKENS],
    with chunk counts [M] and longest chunk lengths [M]."""
    import numpy as np

    from .. import ir

    tokens = np.zeros((len(enc), ir.MAX_CHUNKS, ir.CHUNK_TOKENS), dtype=np.int32)
    for i, chunks in enumerate(enc):
        for j, ch in enumerate(chunks):
            tokens[i, j, : len(ch)] = ch
    return tokens, np.array([len(c) for c in enc]), np.array([max(map(len, c)) for c in enc])


def _batches(rows: list[int], data: dict, y, batch: int, rng: random.Random | None):
    """Batches of similar chunk counts (less padding); shuffled when rng is given."""
    import numpy as np

    torch, _ = _torch()
    tokens, n_chunks, longest = data["tokens"], data["n_chunks"], data["longest"]
    order = sorted(rows, key=lambda i: (n_chunks[i], longest[i]))
    groups = [order[s: s + batch] for s in range(0, len(order), batch)]
    if rng is not None:
        rng.shuffle(groups)
    for g in groups:
        c, length = int(n_chunks[g].max()), int(longest[g].max())
        tok = torch.as_tensor(tokens[g, :c, :length].astype(np.int64))
        cm = torch.as_tensor((np.arange(c)[None, :] < n_chunks[g][:, None]).astype(np.float32))
        yield g, tok, cm, torch.as_tensor(data["feats"][g]), torch.as_tensor(y[g]), torch.as_tensor(data["mask"][g])


def _predict(net, rows, data):
    import numpy as np

    torch, _ = _torch()
    net.eval()
    y = data["y"]
    out = np.zeros((len(y), y.shape[1]), dtype=np.float64)
    with torch.no_grad():
        for g, tok, cm, f, _y, _m in _batches(rows, data, y, 64, None):
            out[g] = net(tok, cm, f).numpy() / SCALE
    return out


def fit(variant: str, data: dict, lab: Labels, vocab: int, cfg: TrainConfig, work: Path, quiet: bool,
        tag: str = ""):
    """Train one torch variant; returns (net with the best validation weights, history).
    tag names the checkpoint folder of a run on other training rows (a CV fold)."""
    import numpy as np
    from tqdm import tqdm

    torch, _ = _torch()
    feats, y = data["feats"], data["y"]
    train, val = lab.rows("train"), lab.scored("validation")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    np.random.seed(cfg.seed)
    fmean = feats[train].mean(0)
    fstd = feats[train].std(0) + 1e-3
    net_cfg = NetConfig(vocab=vocab, features=feats.shape[1], outputs=y.shape[1],
                        use_tokens=variant.startswith("transformer"), use_features=variant != "transformer")
    net = build_net(net_cfg, fmean, fstd)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1)
    out_dir = work / (variant + tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The targets and features too: a table for another candidate set, or
    # features prepared otherwise, must not resume this one's checkpoint.
    targets = hashlib.sha256(np.ascontiguousarray(data["y"]).tobytes()
                             + np.ascontiguousarray(data["feats"]).tobytes()).hexdigest()[:16]
    ident = hashlib.sha256(json.dumps([variant, net_cfg.__dict__, cfg.__dict__, lab.modules, lab.split,
                                       data["signature"], targets], sort_keys=True,
                                      default=str).encode()).hexdigest()[:16]
    start, best, history = 0, (math.inf, None, -1), []
    last = out_dir / "last.pt"
    if last.exists():
        ck = torch.load(last, weights_only=False)
        if ck.get("ident") == ident:
            net.load_state_dict(ck["net"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            rng.setstate(ck["rng"])
            torch.set_rng_state(ck["torch_rng"])
            start, best, history = ck["epoch"], ck["best"], ck["history"]
            if not quiet:
                print(f"{variant}: resuming after epoch {start}", file=sys.stderr)
    # Per-module weight: modules without code teach nothing about ranking.
    w_all = np.where(lab.size[:, 0] > 0, 1.0, 0.1).astype(np.float32)
    yt = np.nan_to_num(y * SCALE).astype(np.float32)
    for epoch in range(start, cfg.epochs):
        net.train()
        total, n = 0.0, 0
        bar = tqdm(total=len(train), desc=f"{variant} epoch {epoch + 1}/{cfg.epochs}", disable=quiet,
                   file=sys.stderr, leave=False)
        for g, tok, cm, f, yb, m in _batches(train, data, yt, cfg.batch, rng):
            wb = torch.as_tensor(w_all[g])[:, None] * m
            pred = net(tok, cm, f)
            loss = (torch.nn.functional.smooth_l1_loss(pred, yb, reduction="none") * wb).sum() / wb.sum().clamp(min=1)
            loss = loss + cfg.rank_weight * listwise_loss(pred, yb, m, torch.as_tensor(w_all[g]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(g)
            n += len(g)
            bar.update(len(g))
        bar.close()
        pv = _predict(net, val, data)[val]
        val_score = score(lab.size[val], choose_sizes(lab.size[val], order_from_predictions(pv)))
        history.append({"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_geomean": val_score["geomean_ratio"],
                        "val_total_reduction": val_score["total_reduction"]})
        if not quiet:
            print(f"{variant} epoch {epoch + 1}: loss {total / max(n, 1):.4f}  val geomean "
                  f"{val_score['geomean_ratio']:.5f}  total {val_score['total_reduction']:+.4%}", file=sys.stderr)
        if val_score["geomean_ratio"] < best[0]:
            best = (val_score["geomean_ratio"], {k: v.clone() for k, v in net.state_dict().items()}, epoch + 1)
        torch.save({"ident": ident, "net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "best": best,
                    "history": history}, out_dir / "last.tmp")
        (out_dir / "last.tmp").replace(last)
    if best[1] is not None:
        net.load_state_dict(best[1])
    net.eval()
    return net, {"history": history, "best_epoch": best[2], "config": net_cfg.__dict__,
                 "parameters": sum(p.numel() for p in net.parameters())}


# Residual pool: how many training modules' errors a model carries for verify
# mode (ranker.verify_order), and the package folds they are predicted in.
RESIDUAL_POOL = 512
RESIDUAL_FOLDS = 4


def package_folds(lab: Labels, folds: int, seed: int) -> list[Labels]:
    """The label table once per fold, with the fold's training packages moved out
    of "train" (to "held-out"): a model fitted on one predicts its held-out
    modules as it would predict a package it never saw."""
    pkgs = sorted({lab.package[i] for i in lab.rows("train")})
    random.Random(seed).shuffle(pkgs)
    fold_of = {p: n % folds for n, p in enumerate(pkgs)}
    out = []
    for f in range(folds):
        split = ["held-out" if s == "train" and fold_of[p] == f else s for s, p in zip(lab.split, lab.package)]
        out.append(lab.with_split(split))
    return out


def residual_pool(fit_predict, data: dict, lab: Labels, seed: int, quiet: bool):
    """[S, K] measured minus out-of-fold predicted log ratios of S training
    modules (fit_predict(fold labels, fold index) -> predictions for every
    module); a failed evaluation counts as -Oz (0), as the policy falls back.
    Modules without code are left out: their ratios are all 1."""
    import numpy as np

    y = np.nan_to_num(data["y"], nan=0.0)
    oof = np.zeros_like(y)
    held_out = np.zeros(len(y), dtype=bool)
    for f, flab in enumerate(package_folds(lab, RESIDUAL_FOLDS, seed)):
        held = np.array(flab.rows("held-out"), dtype=np.int64)
        if not len(held) or not flab.rows("train"):
            continue  # fewer training packages than folds
        if not quiet:
            print(f"residuals: fold {f + 1}/{RESIDUAL_FOLDS} ({len(held)} held-out modules)", file=sys.stderr)
        oof[held] = fit_predict(flab, f)[held]
        held_out[held] = True
    complete = np.ones(len(y), dtype=bool) if lab.measured is None else lab.measured.all(axis=1)
    rows = np.flatnonzero(held_out & complete & (lab.size[:, 0] > 0))
    pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(RESIDUAL_POOL, len(rows)), replace=False))
    pool = (y[pick] - oof[pick]).astype(np.float32)
    pool[:, 0] = 0.0
    return pool, oof


def static_where_outside(orders, outside, static_row):
    """orders (per module) with static_row for the modules outside the model's
    training range, where the runtime measures the static order instead of the
    model's (ranker.Ranker.rank); a list of lists for choose_sizes."""
    return [list(static_row) if o else list(row) for row, o in zip(orders, outside)]


def verify_orders(pred, pool):
    """Per module, the order verify mode measures candidates in (ranker.verify_order
    over the validated candidates, as the policy builds it), for choose_sizes(..., k):
    -Oz, which verify mode measures besides them, last."""
    import numpy as np

    from .. import pipelines, ranker

    usable = pipelines.usable_indices()
    return np.array([ranker.verify_order(p, pool, usable) + [0] for p in pred])


# The cap on the shipped model, and the trees the policy-time target
# allows. The policy runs the ensemble once per module, with the caches full of
# the module's text, so inference is bound by fetching the trees' nodes:
# ~0.18 ms per 1,000 trees of 15 leaves on the AMD EPYC machine kind (8,100
# trees: 1.44 ms median, the policy 3.1 ms against the 2 ms target; 2,700: 0.49
# ms; 1,620: 0.31 ms), far more than a warm loop over one vector suggests (0.52
# ms for the 8,100); the features take 1.4-1.75 ms between runs on the same
# machine, which leaves ~0.3 ms. With the 55 validated candidates 30 rounds at
# 0.3 did as well as 150 at 0.06 where the model acts (its margin keeps the
# default at top-1; validation verify k=2/4/8 0.97464/0.97102/0.96809 against
# 0.97542/0.97064/0.96811, 50 rounds 0.97431/0.97083/0.96821), and the budget
# keeps a grown set's boosters inside the same time. A tree costs ~0.95 KB in
# the exported file, so the 20 MB cap no longer binds.
MAX_MODEL_BYTES = 20_000_000
LGBM_ROUNDS, LGBM_LEARNING_RATE = 30, 0.3
LGBM_TREE_BUDGET = 54 * 30


def lgbm_params(seed: int) -> dict:
    """The shipped boosters' LightGBM parameters (bench/top1_limits.py varies
    only the objective around them)."""
    return {"objective": "huber", "alpha": 0.02, "learning_rate": LGBM_LEARNING_RATE, "num_leaves": 15,
            "min_data_in_leaf": 10, "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8,
            "seed": seed, "deterministic": True, "num_threads": 1, "verbosity": -1}


def fit_lgbm(data: dict, lab: Labels, seed: int):
    """One LightGBM regressor per usable candidate over the features (the
    ablation's feature-only gradient boosting). Returns (predictions for every
    module, {candidate index: booster}); -Oz's column is 0 by definition and has
    none, and so are the columns of candidates no policy may choose (not
    validated, or excluded since): boosters for them would only cost inference
    time and model bytes."""
    import lightgbm as lgb
    import numpy as np

    from .. import pipelines

    feats, y = data["feats"], data["y"]
    train = lab.rows("train")
    pred = np.zeros_like(y)
    boosters = {}
    usable = set(pipelines.usable_names()) - {"oz"}
    columns = [j for j, name in enumerate(lab.candidates) if name in usable]
    rounds = min(LGBM_ROUNDS, LGBM_TREE_BUDGET // max(len(columns), 1))
    for j in columns:
        rows = [i for i in train if not np.isnan(y[i, j])]
        booster = lgb.train(lgbm_params(seed), lgb.Dataset(feats[rows], y[rows, j]), num_boost_round=rounds)
        pred[:, j] = booster.predict(feats)
        boosters[j] = booster
    return pred, boosters


# The attributes of ai.onnx.ml TreeEnsembleRegressor that list nodes or leaves.
# nodes_hitrates is left out: an optional hint onnxruntime does not need, and
# 13% of a 41-output model's bytes.
_NODE_ATTRS = ("nodes_featureids", "nodes_values", "nodes_modes", "nodes_nodeids", "nodes_treeids",
               "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true")
_TARGET_ATTRS = ("target_ids", "target_nodeids", "target_treeids", "target_weights")


def _add_residuals(model, pool) -> None:
    """The residual pool as a constant graph output ``residuals`` [S, K]."""
    import numpy as np
    from onnx import helper, numpy_helper

    pool = np.ascontiguousarray(pool, dtype=np.float32)
    model.graph.initializer.append(numpy_helper.from_array(pool, "residual_pool"))
    model.graph.node.append(helper.make_node("Identity", ["residual_pool"], ["residuals"]))
    model.graph.output.append(helper.make_tensor_value_info("residuals", 1, list(pool.shape)))


def export_lgbm(boosters: dict, n_outputs: int, n_features: int, path: Path, extra: dict, pool=None) -> None:
    """The per-candidate boosters as ONE multi-target TreeEnsembleRegressor
    (onnxmltools converts each booster; their trees are renumbered and pointed at
    their candidate's output), behind the same interface as the torch models:
    features float32 [F] -> log_ratio float32 [K]."""
    import onnx
    from onnx import TensorProto, helper
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from .. import pipelines, ranker

    merged: dict[str, list] = {a: [] for a in _NODE_ATTRS + _TARGET_ATTRS}
    base = [0.0] * n_outputs
    trees = 0
    for j, booster in sorted(boosters.items()):
        m = convert_lightgbm(booster, initial_types=[("features", FloatTensorType([None, n_features]))],
                             target_opset=15)
        (node,) = [n for n in m.graph.node if n.op_type == "TreeEnsembleRegressor"]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("aggregate_function", b"SUM") != b"SUM" or attrs.get("post_transform", b"NONE") != b"NONE":
            raise ValueError(f"unexpected tree ensemble for candidate {j}: {attrs.get('aggregate_function')}")
        ids = sorted(set(attrs["nodes_treeids"]))
        renumber = {t: trees + i for i, t in enumerate(ids)}
        trees += len(ids)
        count = len(attrs["nodes_treeids"])
        for a in _NODE_ATTRS:
            values = list(attrs.get(a, []))
            if a == "nodes_treeids":
                values = [renumber[t] for t in values]
            elif not values and a == "nodes_missing_value_tracks_true":
                values = [0] * count
            merged[a] += values
        merged["target_treeids"] += [renumber[t] for t in attrs["target_treeids"]]
        merged["target_nodeids"] += list(attrs["target_nodeids"])
        merged["target_weights"] += list(attrs["target_weights"])
        merged["target_ids"] += [j] * len(attrs["target_ids"])
        base[j] = float(attrs["base_values"][0]) if attrs.get("base_values") else 0.0
    nodes = [
        helper.make_node("Reshape", ["features", "row_shape"], ["row"]),
        helper.make_node("TreeEnsembleRegressor", ["row"], ["scores"], domain="ai.onnx.ml", n_targets=n_outputs,
                         aggregate_function="SUM", post_transform="NONE", base_values=base,
                         **{a: v for a, v in merged.items()
                            if v and (a != "nodes_missing_value_tracks_true" or any(v))}),
        helper.make_node("Reshape", ["scores", "out_shape"], ["log_ratio"]),
    ]
    graph = helper.make_graph(
        nodes, "clang_llm_lgbm",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [n_features])],
        [helper.make_tensor_value_info("log_ratio", TensorProto.FLOAT, [n_outputs])],
        initializer=[helper.make_tensor("row_shape", TensorProto.INT64, [2], [1, n_features]),
                     helper.make_tensor("out_shape", TensorProto.INT64, [1], [n_outputs])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)],
                              producer_name="clang-llm")
    if pool is not None:
        _add_residuals(model, pool)
    meta = ranker.metadata([c.name for c in pipelines.candidates()], pipelines.set_hash(), "features", "", extra)
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export(net, path: Path, tokenizer_hash: str, extra: dict, pool=None) -> None:
    import onnx

    from .. import pipelines, ranker

    torch, _ = _torch()
    cfg = net.cfg
    wrapped = _OneModule.wrap(net).eval()
    args, names, dyn = [], [], {}
    if cfg.use_tokens:
        args.append(torch.ones(3, 16, dtype=torch.int64))
        names.append("tokens")
        dyn["tokens"] = {0: "chunks", 1: "length"}
    if cfg.use_features:
        args.append(torch.zeros(cfg.features))
        names.append("features")
    tmp = path.with_suffix(".tmp.onnx")
    import warnings

    with warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript needed) warns that it is deprecated
        # and about traced shapes; the graph is checked against torch in the tests.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, tuple(args), str(tmp), input_names=names, output_names=["log_ratio"],
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    model = onnx.load(str(tmp))
    tmp.unlink()
    if pool is not None:
        _add_residuals(model, pool)
    meta = ranker.metadata([c.name for c in pipelines.candidates()], pipelines.set_hash(), ",".join(names),
                           tokenizer_hash, extra)
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


# --- the command ---------------------------------------------------------------------------

def prepare(args) -> tuple[Labels, dict, int, str]:
    import numpy as np

    from .. import ir

    lab = load_labels(args.labels)
    if not lab.rows("train") or not lab.rows("validation"):
        raise SystemExit("clang-llm-data train: the label table needs train and validation modules")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if all(v in TOKEN_FREE for v in args.variants):
        return prepare_token_free(lab, args)
    # A token model reads the bitcode itself; a labelled module whose package built
    # differently in this corpus has none, and the tokenizer would die on it.
    have = [_module_path(args.modules, h).is_file() for h in lab.modules]
    left_out = have.count(False)
    if left_out and not args.allow_missing:
        raise SystemExit(f"clang-llm-data train: {left_out} of {len(lab.modules)} labelled modules have no bitcode "
                         "in the corpus: build the corpus, or pass --allow-missing to leave them out")
    if left_out:
        print(f"clang-llm-data train: leaving out {left_out} labelled modules without bitcode", file=sys.stderr)
        lab = lab.subset([i for i, h in enumerate(have) if h])
    tok_path = work / "tokenizer.json"
    if tok_path.exists() and not args.retrain_tokenizer:
        tok, tok_hash = ir.load_tokenizer(str(tok_path))
    else:
        tok = train_tokenizer(lab, args.modules, tok_path, args.vocab, args.quiet)
        tok, tok_hash = ir.load_tokenizer(str(tok_path))
    encoded = encode_all(lab, args.modules, tok, tok_hash, work / "encoded.pkl", args.quiet)
    y = targets(lab.size)
    enc = [encoded[h][0] for h in lab.modules]
    tokens, n_chunks, longest = pack(enc)
    data = {
        "enc": enc,
        "tokens": tokens,
        "n_chunks": n_chunks,
        "longest": longest,
        "feats": np.stack([encoded[h][1] for h in lab.modules]).astype(np.float32),
        "y": y,
        "mask": (~np.isnan(y)).astype(np.float32),
        "signature": tok_hash,
        "left_out": left_out,
    }
    return lab, data, tok.get_vocab_size(), tok_hash


def prepare_token_free(lab: Labels, args) -> tuple[Labels, dict, int, str]:
    """The data for variants that see features only: from the committed feature
    table (so they train on a fresh checkout, without the corpus), falling back to
    the modules' bitcode. A labelled module with neither is an error, or with
    --allow-missing is left out (and the report says how many were)."""
    import numpy as np

    vecs = token_free_features(lab, args.modules, args.features, args.quiet)
    missing = [i for i, v in enumerate(vecs) if v is None]
    if missing and not args.allow_missing:
        raise SystemExit(f"clang-llm-data train: {len(missing)} of {len(lab.modules)} labelled modules have no "
                         f"features (not in {args.features or FEATURE_TABLE}, no bitcode in the corpus): build "
                         "the corpus and run `clang-llm-data features`, or pass --allow-missing")
    if missing:
        keep = [i for i, v in enumerate(vecs) if v is not None]
        print(f"clang-llm-data train: leaving out {len(missing)} labelled modules without features", file=sys.stderr)
        lab, vecs = lab.subset(keep), [vecs[i] for i in keep]
    y = targets(lab.size)
    m = len(lab.modules)
    data = {
        "enc": None,
        # The torch variants' batches carry a token input the feature-only nets ignore.
        "tokens": np.zeros((m, 1, 1), dtype=np.int32),
        "n_chunks": np.ones(m, dtype=np.int64),
        "longest": np.ones(m, dtype=np.int64),
        "feats": np.stack(vecs).astype(np.float32),
        "y": y,
        "mask": (~np.isnan(y)).astype(np.float32),
        "signature": "features-only",
        "left_out": len(missing),
    }
    return lab, data, 0, ""


def token_free(data: dict) -> dict:
    """The data as a model without token input sees it at run time: the ranker
    does not tokenise for such a model, so the "coverage" feature (the share of
    the module the token chunks hold) is what features.vector gives for
    covered=0: 0 for a module with instructions, 1 without. Training on the
    tokenised value instead would feed the model something it never sees."""
    import numpy as np

    from .. import features

    if data["enc"] is None:
        return data  # prepared token-free already
    feats = data["feats"].copy()
    cov, inst = features.NAMES.index("coverage"), features.NAMES.index("instructions")
    feats[:, cov] = np.where(feats[:, inst] > 0, 0.0, 1.0)
    return {**data, "feats": feats}


def run(args) -> dict:
    import numpy as np

    from .. import ir, ranker

    t0 = time.time()
    lab, data, vocab, tok_hash = prepare(args)
    # Scores only on modules every candidate was measured on (all of them unless
    # the table was extended on a partly rebuilt corpus); training uses every row.
    train, val = lab.scored("train"), lab.scored("validation")
    text = lab.size
    report: dict = {
        "labels": lab.source,
        "modules": {s: len(lab.rows(s)) for s in ("train", "validation", "test")},
        "scored_modules": {s: len(lab.scored(s)) for s in ("train", "validation", "test")},
        "packages": {s: len({lab.package[i] for i in lab.rows(s)}) for s in ("train", "validation", "test")},
        "candidates": lab.candidates,
        "tokenizer": {"hash": tok_hash, "vocab": vocab},
        "chunking": {"chunk_tokens": ir.CHUNK_TOKENS, "windows_per_function": ir.WINDOWS_PER_FUNCTION,
                     "max_chunks": ir.MAX_CHUNKS, "function_char_budget": ir.FUNCTION_CHAR_BUDGET},
        "seed": args.seed,
        "variants": {},
    }
    if data["enc"] is not None:
        chunks = np.array([len(c) for c in data["enc"]])
        report["chunks_per_module"] = {"mean": float(chunks.mean()),
                                       "at_cap": float((chunks == ir.MAX_CHUNKS).mean())}
        report["left_out_without_bitcode"] = data["left_out"]
    else:
        report["inputs"] = "features only (committed feature table, else the modules' bitcode)"
        report["left_out_without_features"] = data["left_out"]
    from .. import pipelines

    # Only what the policy may choose: candidates excluded after the labels were
    # made stay in the table but are never ranked.
    usable = pipelines.usable_names()
    # best-fixed: the candidate with the best training geomean, applied everywhere.
    y = data["y"]
    ranking, _, _ = fixed_ranking(lab, usable)
    best_j = ranking[0]
    rest = [j for j in range(len(lab.candidates)) if j not in ranking]
    fixed_order = np.tile(ranking + rest, (len(text), 1))
    oracle = usable_first(np.argsort(np.nan_to_num(text, nan=math.inf), axis=1, kind="stable"))
    report["best_fixed"] = lab.candidates[best_j]
    report["oracle_val"] = score(text[val], choose_sizes(text[val], oracle[val]))
    # -Oz last: verify mode measures it besides the k.
    cover = coverage_order(lab, usable)[0]
    cover_order = np.tile(cover + [j for j in range(len(lab.candidates)) if j not in cover], (len(val), 1))
    # Out of fold like the models: each held-out package gets the best fixed
    # pipeline of the other training packages.
    oof_fixed = np.zeros(len(text), dtype=np.int64)
    for flab in package_folds(lab, RESIDUAL_FOLDS, args.seed):
        if flab.rows("held-out") and flab.rows("train"):
            oof_fixed[flab.rows("held-out")] = fixed_ranking(flab, usable)[0][0]
    report["variants"]["best-fixed"] = {
        "val": score(text[val], choose_sizes(text[val], fixed_order[val])),
        "val_verify": {f"k{k}": score(text[val], choose_sizes(text[val], cover_order, k)) for k in (2, 4, 8)},
        "train_out_of_fold": score(text[train], text[train, oof_fixed[train]])}

    shipped_j = lab.candidates.index(pipelines.best_fixed().name)
    shipped_order = np.tile([shipped_j] + [j for j in range(len(lab.candidates)) if j != shipped_j], (len(text), 1))
    report["shipped_best_fixed"] = pipelines.best_fixed().name
    report["shipped_best_fixed_val"] = score(text[val], choose_sizes(text[val], shipped_order[val]))
    preds: dict = {}
    pools: dict = {}
    margins: dict = {}
    ranges: dict = {}
    cfg = TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, rank_weight=args.rank_weight)
    nets = {}
    for variant in args.variants:
        if variant == "best-fixed":
            continue
        t = time.time()
        vdata = data if variant.startswith("transformer") else token_free(data)
        # What the runtime checks a module's features against (ranker.Ranker.outside):
        # the training vectors' range, for the variants that read features.
        if variant != "transformer":
            fit_rows = vdata["feats"][lab.rows("train")]
            ranges[variant] = (fit_rows.min(axis=0), fit_rows.max(axis=0))
        if variant == "lgbm":
            def fit_predict(flab, tag, vdata=vdata):
                return fit_lgbm(vdata, flab, args.seed)[0]

            pred, boosters = fit_lgbm(vdata, lab, args.seed)
            nets[variant] = boosters
            info: dict = {"trees": sum(b.num_trees() for b in boosters.values())}
        else:
            def fit_predict(flab, tag, variant=variant, vdata=vdata):
                fnet, _ = fit(variant, vdata, flab, vocab, cfg, args.work, args.quiet, tag=f".fold{tag}")
                return _predict(fnet, list(range(len(text))), vdata)

            net, info = fit(variant, vdata, lab, vocab, cfg, args.work, args.quiet)
            if not args.no_out_of_fold:
                nets[variant] = net
            pred = _predict(net, list(range(len(text))), vdata)
        preds[variant] = pred
        order = order_from_predictions(pred)
        entry = {"val": score(text[val], choose_sizes(text[val], order[val])),
                 "val_verify_by_prediction": {f"k{k}": score(text[val], choose_sizes(text[val], order[val], k))
                                              for k in (2, 4, 8)},
                 "val_mae_log_ratio": float(np.nanmean(np.abs(pred[val][:, 1:] - y[val][:, 1:])))}
        if args.no_out_of_fold and variant != "lgbm":
            # An ablation row only: without out-of-fold predictions there is no
            # residual cover or preference margin, so the variant cannot ship
            # (it was never put in nets).
            entry["out_of_fold"] = False
        else:
            pools[variant], oof = residual_pool(fit_predict, vdata, lab, args.seed, args.quiet)
            outside_val = ranker.outside_range(vdata["feats"][val], ranges.get(variant))
            cover = static_where_outside(verify_orders(pred[val], pools[variant]), outside_val, cover_order[0])
            margin, margin_oof = choose_margin(text[train], oof[train], oof_fixed[train])
            margins[variant] = margin
            entry.update({
                "val_verify": {f"k{k}": score(text[val], choose_sizes(text[val], cover, k)) for k in (2, 4, 8)},
                "train_out_of_fold": score(text[train], choose_sizes(text[train], order_from_predictions(oof[train]))),
                "prefer_margin": margin, "train_out_of_fold_prefer": margin_oof,
                # As the runtime ranks: the default kept outside the training range too.
                "val_prefer": score(text[val], choose_sizes(text[val], order_from_predictions(
                    ranker.preferred(pred[val], best_j, margin, outside_val))))})
        entry.update({"seconds": round(time.time() - t, 1), **info})
        report["variants"][variant] = entry
        print(f"{variant}: val geomean {entry['val']['geomean_ratio']:.5f}, total reduction "
              f"{entry['val']['total_reduction']:+.3%} ({entry['seconds']} s)", file=sys.stderr)
    if nets:
        ship = ship_choice({v: report["variants"][v] for v in nets})
        report["ship_choice"] = ship
        if args.ship:
            if args.ship not in nets:
                raise SystemExit(f"clang-llm-data train: --ship {args.ship}: no such shippable variant in this "
                                 f"run ({', '.join(nets)})")
            ship = args.ship
        report["shipped"] = ship
        fixed = report["variants"]["best-fixed"]["val"]["geomean_ratio"]
        as_run = top1_as_run(report["variants"][ship])
        report["beats_best_fixed"] = as_run < fixed
        extra = {"variant": ship, "val_geomean": round(as_run, 6), "val_best_fixed": round(fixed, 6),
                 "labels": Path(lab.source).name, "trained": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        extra["residuals"] = f"{len(pools[ship])} training modules, {RESIDUAL_FOLDS} package folds"
        # Recorded with a margin of 0 too: outside its feature range the model
        # keeps this candidate (ranker.Ranker.ranking_scores).
        extra["prefer"] = {"candidate": lab.candidates[best_j], "margin": margins[ship]}
        if ship in ranges:
            extra["feature_range"] = {"min": [float(x) for x in ranges[ship][0]],
                                      "max": [float(x) for x in ranges[ship][1]]}
        if ship == "lgbm":
            export_lgbm(nets[ship], len(lab.candidates), data["feats"].shape[1], args.work / "model.onnx", extra,
                        pools[ship])
        else:
            export(nets[ship], args.work / "model.onnx", tok_hash, extra, pools[ship])
        report["model_bytes"] = (args.work / "model.onnx").stat().st_size
        if args.install and report["model_bytes"] > MAX_MODEL_BYTES:
            print(f"clang-llm-data train: not installing the model: {report['model_bytes']} bytes is over the "
                  f"{MAX_MODEL_BYTES}-byte cap", file=sys.stderr)
        elif args.install:
            data_dir = Path(__file__).resolve().parents[1] / "data"
            shutil.copyfile(args.work / "model.onnx", data_dir / "model.onnx")
            installed = "model.onnx"
            # A feature-only model needs no tokenizer, but shipping the one it was
            # trained beside keeps the artifacts a pair (a run that trained no
            # token model has none, and leaves the shipped one).
            if (args.work / "tokenizer.json").exists() and data["enc"] is not None:
                shutil.copyfile(args.work / "tokenizer.json", data_dir / "tokenizer.json")
                installed += " and tokenizer.json"
            print(f"installed {installed} into {data_dir} ({ship})", file=sys.stderr)
    report["seconds"] = round(time.time() - t0, 1)
    report["command"] = "clang-llm-data " + " ".join(sys.argv[1:])
    (args.work / "ablation.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.report:
        write_report(report, args.report)
    return report


def write_report(report: dict, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Model ablations (validation split)", "",
        f"Labels: `{report['labels']}`; modules train/validation/test: "
        f"{report['modules']['train']}/{report['modules']['validation']}/{report['modules']['test']} "
        f"from {report['packages']['train']}/{report['packages']['validation']}/{report['packages']['test']} packages. "
        + (f"Scored on the modules measured under every candidate: "
           f"{report['scored_modules']['train']}/{report['scored_modules']['validation']}/"
           f"{report['scored_modules']['test']}. " if report.get("scored_modules", report["modules"])
           != report["modules"] else "")
        + f"Candidates: {len(report['candidates'])}. Best fixed on training: `{report['best_fixed']}`. "
        f"Command: `{report['command']}` ({report['seconds']} s).", "",
        "Ratios are image bytes (what the module adds to a linked program, flag set: unwind tables on) under the policy's choice / under -Oz; geomean over modules with code.", "",
        "Verify k: the smallest of -Oz and k measured candidates, in the variant's verify order (a model's "
        "residual cover, ranker.verify_order; best fixed: the static coverage order); \"by prediction\": the k "
        "best predicted instead. Out-of-fold: top-1 on the training modules, each predicted by a model trained "
        "without its package.", "",
        "| variant | geomean ratio | total reduction | improved | regressed | verify k=2 | k=4 | k=8 "
        "| k=4 by prediction | top-1 out-of-fold (train) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def g(v, *keys):
        for k in keys:
            v = v.get(k, {}) if isinstance(v, dict) else {}
        return f"{v:.5f}" if isinstance(v, float) else ""

    for name, v in report["variants"].items():
        s = v["val"]
        if name == "best-fixed":
            name = f"best fixed on training ({report['best_fixed']})"
        lines.append(f"| {name} | {s['geomean_ratio']:.5f} | {s['total_reduction']:+.3%} | {s['improved']:.1%} | "
                     f"{s['regressed']:.1%} | " + " | ".join(g(v, "val_verify", f"k{k}", "geomean_ratio") for k in (2, 4, 8))
                     + f" | {g(v, 'val_verify_by_prediction', 'k4', 'geomean_ratio')} | "
                     f"{g(v, 'train_out_of_fold', 'geomean_ratio')} |")
    d = report["shipped_best_fixed_val"]
    lines.append(f"| (shipped default best fixed: {report['shipped_best_fixed']}) | {d['geomean_ratio']:.5f} | "
                 f"{d['total_reduction']:+.3%} | {d['improved']:.1%} | {d['regressed']:.1%} | | | | | |")
    o = report["oracle_val"]
    lines.append(f"| oracle (best candidate per module) | {o['geomean_ratio']:.5f} | {o['total_reduction']:+.3%} | "
                 f"{o['improved']:.1%} | {o['regressed']:.1%} | | | | | |")
    pref = {n: v for n, v in report["variants"].items() if "prefer_margin" in v}
    if pref:
        lines += ["", "Preference for the best fixed pipeline (top-1 keeps it unless another candidate is "
                      "predicted smaller by more than the margin, in log ratio; the margin is chosen on the "
                      "out-of-fold predictions, then scored on validation):", "",
                  "| variant | margin | top-1 out-of-fold, without / with | validation, without / with |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {n} | {v['prefer_margin']} | {g(v, 'train_out_of_fold', 'geomean_ratio')} / "
                  f"{g(v, 'train_out_of_fold_prefer', 'geomean_ratio')} | {v['val']['geomean_ratio']:.5f} / "
                  f"{g(v, 'val_prefer', 'geomean_ratio')} |" for n, v in pref.items()]
        lines.append(f"| best fixed | | {g(report['variants']['best-fixed'], 'train_out_of_fold', 'geomean_ratio')} | "
                     f"{report['variants']['best-fixed']['val']['geomean_ratio']:.5f} |")
    epochs = {n: v["best_epoch"] for n, v in report["variants"].items() if "best_epoch" in v}
    if epochs:
        lines += ["", "The torch variants keep their best validation epoch (" +
                  ", ".join(f"{n}: {e}" for n, e in epochs.items()) + "), which flatters their validation "
                  "numbers a little; the held-out test split is scored by bench/model_eval.py."]
    no_oof = [n for n, v in report["variants"].items() if v.get("out_of_fold") is False]
    if no_oof:
        lines += ["", f"Trained with --no-out-of-fold (validation only, not shippable): {', '.join(no_oof)}; "
                      "their verify columns are empty (no residual cover), k=4 by prediction is theirs."]
    if "shipped" in report:
        entry = report["variants"][report["shipped"]]
        ship = top1_as_run(entry)
        fixed = report["variants"]["best-fixed"]["val"]["geomean_ratio"]
        why = ("the best validation top-1 as it runs (with its preference), ties broken by verify k=4"
               if report.get("ship_choice", report["shipped"]) == report["shipped"] else
               f"by --ship (the rule, best validation top-1 as it runs and then verify k=4, picks "
               f"`{report['ship_choice']}`)")
        lines += ["", f"Shipped: `{report['shipped']}` ({report.get('model_bytes', 0)} bytes), {why}: top-1 "
                      f"{ship:.5f} against best fixed {fixed:.5f} ({(fixed - ship) * 100:+.3f} points; "
                      f"beats best fixed: {report['beats_best_fixed']}); verify k=4 "
                      f"{entry['val_verify']['k4']['geomean_ratio']:.5f}."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _cmd_train(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    if args.variants == ["all"]:
        args.variants = list(VARIANTS)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        print(f"clang-llm-data train: unknown variants {sorted(unknown)} (known: {', '.join(VARIANTS)})", file=sys.stderr)
        return 2
    run(args)
    return 0


def _cmd_features(args) -> int:
    lab = load_labels(args.labels)
    out = args.out or FEATURE_TABLE
    # Rows of the table already written stay for modules this corpus lacks, so a
    # partly built corpus never shrinks the committed table.
    old = read_feature_table(out) if out.is_file() else {}
    n, missing = write_feature_table(lab.modules, args.modules, out, args.quiet, old)
    print(f"wrote {out}: {n} of {len(lab.modules)} labelled modules"
          + (f"; {len(missing)} have no bitcode here (build their packages: clang-llm-data corpus build)"
             if missing else ""))
    return 0


def register(sub) -> None:
    from . import labels

    f = sub.add_parser("features", help="the labelled modules' feature vectors as a table (committed), so "
                                        "feature-only models train without the corpus")
    labels.add_table_options(f)
    f.add_argument("--out", type=Path, help=f"(default: {FEATURE_TABLE})")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=_cmd_features)

    p = sub.add_parser("train", help="train, compare and export the policy model (resumable)")
    labels.add_table_options(p)
    p.add_argument("--features", type=Path, help="feature table for the feature-only variants "
                                                 f"(default: {FEATURE_TABLE}; modules it lacks are read from --modules)")
    p.add_argument("--allow-missing", action="store_true",
                   help="leave out labelled modules that have no features (feature-only variants) or no "
                        "bitcode (token variants) instead of failing")
    p.add_argument("--work", type=Path, default=data_root() / "model", help="checkpoints, caches, model.onnx")
    p.add_argument("--variants", nargs="+", default=["all"], help=f"any of {', '.join(VARIANTS)} (default all)")
    p.add_argument("--epochs", type=int, default=10, help="per torch variant (the best epochs came early: 1-5)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--rank-weight", type=float, default=1.0, help="weight of the listwise ranking loss")
    p.add_argument("--vocab", type=int, default=2000, help="BPE vocabulary size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--retrain-tokenizer", action="store_true", help="train the tokenizer even if WORK has one")
    p.add_argument("--no-out-of-fold", action="store_true",
                   help="torch variants: validation scores only, without the 4 package-fold refits (a fifth of the "
                        "time; such a variant has no residual cover or preference margin and is not shipped)")
    p.add_argument("--ship", choices=VARIANTS, help="export this trained variant instead of the rule's pick "
                                                    "(model.ship_choice), e.g. for the policy-time target")
    p.add_argument("--install", action="store_true", help="copy model.onnx and tokenizer.json into clang_llm/data")
    p.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "model_ablation",
                   help="write STEM.json and STEM.md (default bench/results/model_ablation)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)
