"""The learned ranking at run time: an ONNX model that predicts, for every
candidate pipeline, log(image_c / image_oz) (clang_llm.sizes: the bytes it adds to a linked program) of a module, and ranks by it.

The policy's ``onnx`` back end, ``clang-llm explain`` and the benchmarks use
Ranker; training (clang_llm.train.model) writes models through metadata() so the
two agree on what a model must declare.

A model file describes itself in its ONNX metadata_props (all strings):

    clang_llm.format        MODEL_FORMAT
    clang_llm.candidate_set clang_llm.pipelines.set_hash() of the set it ranks
    clang_llm.candidates    JSON list of candidate names, in output order
    clang_llm.inputs        "tokens,features" or "features" (the graph's inputs)
    clang_llm.tokenizer     tokenizer hash (clang_llm.ir.tokenizer_hash), "" without tokens
    clang_llm.llvm          clang_llm.ir.LLVM_VERSION
    clang_llm.norm          clang_llm.ir.NORM_VERSION and the chunk parameters
    clang_llm.features      clang_llm.features.FEATURE_VERSION and len(NAMES)

Anything that does not match what this installation computes is refused with a
ModelError that says which field differs; the policy turns that into its usual
fallback to clang's -Oz pipeline. The graph: inputs ``tokens`` int64 [C, L]
(PAD_ID-padded chunks) and/or ``features`` float32 [F]; output ``log_ratio``
float32 [K] in the order of clang_llm.candidates.

A model may also carry its own errors: output ``residuals`` float32 [S, K], a
constant (measured minus predicted log ratios of S training modules, each
predicted by a model that did not train on its package). Verify mode measures
several candidates, and the best set is not the k best predictions (those are
near-copies that win and lose together): verify_order() picks, greedily, the
candidates that most lower the expected smallest .text when the model's
prediction is off the way it was off on real modules, jointly over candidates.
A model without the output gets its predicted ranking.

A model may name a candidate to prefer (metadata ``clang_llm.prefer``, JSON
{"candidate": name, "margin": m}): top-1 keeps that candidate (the best fixed
pipeline on the training labels) unless another is predicted smaller by more
than m in log ratio. Training picks m on out-of-fold predictions for held-out
packages, where the model's small predicted wins were as often losses.

A feature model may also record the range of its training vectors (metadata
``clang_llm.feature_range``, JSON {"min": [F], "max": [F]}). Outside it the
model extrapolates: an opcode it never saw (Lua's computed-goto interpreter has
`indirectbr`) or a module without functions gave predicted sizes of 0.16-4x -Oz,
and top-1 left the default for a larger pipeline. So for a module with any
feature outside the range the model is not consulted: top-1 keeps the preferred
candidate and verify mode measures the static order (pipelines.verify_order).
"""

from __future__ import annotations

import json
import os

from . import features, ir

MODEL_FORMAT = "1"
MODEL_ENV = "CLANG_LLM_MODEL"
PREFIX = "clang_llm."


class ModelError(Exception):
    """The model file is missing, unreadable or made for something else."""


def norm_signature() -> str:
    return (f"{ir.NORM_VERSION}/chunk={ir.CHUNK_TOKENS}/windows={ir.WINDOWS_PER_FUNCTION}"
            f"/max={ir.MAX_CHUNKS}/chars={ir.FUNCTION_CHAR_BUDGET}")


def feature_signature() -> str:
    return f"{features.FEATURE_VERSION}/{len(features.NAMES)}"


def metadata(candidate_names: list[str], candidate_set: str, inputs: str, tokenizer_hash: str,
             extra: dict | None = None) -> dict[str, str]:
    """The metadata a model file must carry (training writes it, Ranker checks it)."""
    meta = {
        "format": MODEL_FORMAT,
        "candidate_set": candidate_set,
        "candidates": json.dumps(candidate_names),
        "inputs": inputs,
        "tokenizer": tokenizer_hash if "tokens" in inputs.split(",") else "",
        "llvm": ir.LLVM_VERSION,
        "norm": norm_signature(),
        "features": feature_signature(),
    }
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return {PREFIX + k: v for k, v in meta.items()}


def default_model_path() -> str:
    """CLANG_LLM_MODEL, else the model shipped in clang_llm/data."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return override
    from . import _paths

    path = _paths.shipped_file("data", "model.onnx")
    if path is None:
        raise ModelError("no model is installed (clang_llm/data/model.onnx is missing); "
                         "train one with `clang-llm-data train --install`")
    return path


def import_onnxruntime():
    """onnxruntime, imported so that it leaves no trace: by default it writes a
    device id and an event database under ~/.cache/Microsoft (creating HOME if
    it is missing) and a .ses file in $TMPDIR on import, and prints a coloured
    warning when it cannot. A compiler must not write outside its outputs, and
    its stderr is a build log. Telemetry is read from the environment once,
    when the library loads, so it must be set before the import
    (disable_telemetry_events() afterwards does not stop the files)."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only: they become a ModelError's reason
    return ort


class Ranker:
    """One loaded model. Create it once per process (see get()); rank() per module."""

    def __init__(self, path: str):
        try:
            ort = import_onnxruntime()
        except ImportError as e:
            raise ModelError(f"onnxruntime is not installed: {e}") from None
        opts = ort.SessionOptions()
        # One thread each: `make -j` already runs one compiler per core.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"cannot load model {path}: {' '.join(str(e).split())[:300]}") from None
        self.path = path
        self.last_outside: str | None = None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.meta = {k[len(PREFIX):]: v for k, v in meta.items() if k.startswith(PREFIX)}
        self._check()
        self.inputs = self.meta["inputs"].split(",")
        graph_inputs = sorted(i.name for i in self.session.get_inputs())
        if graph_inputs != sorted(self.inputs):
            raise ModelError(f"model {path} declares inputs {self.inputs} but its graph takes {graph_inputs}")
        self.has_residuals = "residuals" in {o.name for o in self.session.get_outputs()}
        self.tokenizer = None
        if "tokens" in self.inputs:
            # encode_batch would otherwise start a thread pool of its own per
            # compiler process; make -j already fills the cores.
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            tok_path = os.path.join(os.path.dirname(os.path.abspath(path)), "tokenizer.json")
            try:
                self.tokenizer, digest = ir.load_tokenizer(tok_path)
            except Exception as e:
                raise ModelError(f"cannot load tokenizer {tok_path}: {' '.join(str(e).split())[:300]}") from None
            if digest != self.meta["tokenizer"]:
                raise ModelError(f"tokenizer {tok_path} has hash {digest}, model {path} was trained "
                                 f"with {self.meta['tokenizer']}")

    def _check(self) -> None:
        from . import pipelines

        m = self.meta
        if not m:
            raise ModelError(f"model {self.path} has no clang_llm metadata: not a clang-llm model")
        want = {
            "format": MODEL_FORMAT,
            "candidate_set": pipelines.set_hash(),
            "llvm": ir.LLVM_VERSION,
            "norm": norm_signature(),
            "features": feature_signature(),
        }
        for key, value in want.items():
            if m.get(key) != value:
                raise ModelError(f"model {self.path} was made for {key} {m.get(key, '(none)')!r}, "
                                 f"this clang-llm has {value!r}: retrain it (clang-llm-data train)")
        try:
            names = json.loads(m.get("candidates", ""))
        except ValueError:
            raise ModelError(f"model {self.path} has unreadable candidate names") from None
        shipped = [c.name for c in pipelines.candidates()]
        if names != shipped:
            raise ModelError(f"model {self.path} ranks candidates {names}, this clang-llm has {shipped}")
        self.candidates = pipelines.candidates()
        if m.get("inputs") not in ("tokens,features", "features", "tokens"):
            raise ModelError(f"model {self.path} has unknown inputs {m.get('inputs')!r}")
        self.prefer: tuple[int, float] | None = None
        if m.get("prefer"):
            try:
                p = json.loads(m["prefer"])
                self.prefer = (names.index(p["candidate"]), float(p["margin"]))
            except (ValueError, KeyError, TypeError):
                raise ModelError(f"model {self.path} has an unreadable preference {m['prefer']!r}") from None
        self.feature_range = None
        if m.get("feature_range"):
            import numpy as np

            try:
                r = json.loads(m["feature_range"])
                lo, hi = np.asarray(r["min"], dtype=np.float32), np.asarray(r["max"], dtype=np.float32)
            except (ValueError, KeyError, TypeError):
                raise ModelError(f"model {self.path} has an unreadable feature range") from None
            if lo.shape != (len(features.NAMES),) or hi.shape != lo.shape:
                raise ModelError(f"model {self.path} has a feature range of {lo.size} features, "
                                 f"expected {len(features.NAMES)}")
            self.feature_range = (lo, hi)

    def outside(self, feed: dict) -> str | None:
        """Why a module's features lie outside the model's training range (the first
        such feature), or None: inside, or no range or features to check."""
        if self.feature_range is None or "features" not in feed:
            return None
        lo, hi = self.feature_range
        v = feed["features"]
        for i in ((v < lo) | (v > hi)).nonzero()[0][:1]:
            side = "below the training minimum" if v[i] < lo[i] else "above the training maximum"
            return f"{features.NAMES[i]} {float(v[i]):.4g} {side} {float(lo[i] if v[i] < lo[i] else hi[i]):.4g}"
        return None

    def ranking_scores(self, pred, outside=False):
        """What top-1 ranks by: the predictions, with the preferred candidate's
        lowered by the model's margin (numpy [K] or [N, K]; a copy). Where outside
        (a bool, or one per module: features outside the training range) the
        preferred candidate (without one, the shipped best fixed pipeline) comes
        first whatever the predictions."""
        import numpy as np

        from . import pipelines

        if self.prefer is None and not np.any(outside):
            return pred.copy()
        index, margin = self.prefer or (self.candidates.index(pipelines.best_fixed()), 0.0)
        return preferred(pred, index, margin, outside)

    def feeds(self, text: str) -> dict:
        """The graph's inputs for a module's textual IR."""
        covered = 0.0
        feed = {}
        if self.tokenizer is not None:
            enc = ir.encode(text, self.tokenizer)
            covered = enc.covered
            feed["tokens"] = ir.pad(enc.chunks)
        if "features" in self.inputs:
            feed["features"] = features.vector(text, covered)
        return feed

    def predict(self, text: str, residuals: bool = False):
        """log(image_c / image_oz) predicted for every candidate, as float32 [K];
        with residuals, also the model's residual pool ([S, K], or None)."""
        return self.predict_feed(self.feeds(text), residuals)

    def predict_feed(self, feed: dict, residuals: bool = False):
        """predict() for inputs already computed (e.g. a committed feature table's
        vectors, which are what feeds() gives)."""
        want = ["log_ratio"] + (["residuals"] if residuals and self.has_residuals else [])
        got = self.session.run(want, feed)
        out = got[0]
        if out.shape != (len(self.candidates),):
            raise ModelError(f"model {self.path} returned shape {out.shape}, expected ({len(self.candidates)},)")
        # NaN sorts anywhere and infinities tie: a ranking by them would be
        # arbitrary, not a choice, so the model has failed on this module.
        _require_finite(out, f"model {self.path} predicted", self.candidates)
        if not residuals:
            return out
        pool = got[1] if len(got) > 1 else None
        if pool is not None and (pool.ndim != 2 or pool.shape[1] != len(self.candidates)):
            raise ModelError(f"model {self.path} has residuals of shape {pool.shape}")
        if pool is not None:
            _require_finite(pool, f"model {self.path} has residuals with", self.candidates)
        return out, pool

    def rank(self, text: str, verify: bool = False):
        """(candidates best first, {name: predicted image_c / image_oz}); with
        verify, also the order verify mode should measure them in. Afterwards
        last_outside says why the module was outside the model's training range
        (so top-1 kept the preferred candidate and verify mode gets the static
        order), or is None."""
        import math

        from . import pipelines

        feed = self.feeds(text)
        pred, pool = self.predict_feed(feed, residuals=True) if verify else (self.predict_feed(feed), None)
        self.last_outside = self.outside(feed)
        scores = self.ranking_scores(pred, self.last_outside is not None)
        # Only candidates that passed the gate (and were not excluded since) are
        # ranked, measured or reported: a model need not predict the others
        # (the LightGBM variant leaves their outputs at 0, another may leave NaN).
        order = sorted(pipelines.usable_indices(), key=lambda i: (float(scores[i]), i))
        ranked = [self.candidates[i] for i in order]
        ratios = {self.candidates[i].name: round(math.exp(float(pred[i])), 5) for i in order}
        if not verify:
            return ranked, ratios
        if self.last_outside is not None:
            return ranked, ratios, pipelines.verify_order()  # the static cover, as the best-fixed back end's
        return ranked, ratios, [self.candidates[i] for i in verify_order(pred, pool, pipelines.usable_indices())]


def _require_finite(values, what: str, candidates) -> None:
    """ModelError unless values ([K], or [S, K] over the candidates) are finite
    for every candidate a policy may use (a model need not predict the others)."""
    import numpy as np

    v = np.asarray(values).reshape(-1, len(candidates))
    bad = [j for j in np.nonzero(~np.isfinite(v).all(axis=0))[0] if candidates[j].validated]
    if bad:
        first = float(v[~np.isfinite(v[:, bad[0]]), bad[0]][0])
        raise ModelError(f"{what} non-finite values for {len(bad)} candidates "
                         f"(e.g. {candidates[bad[0]].name}: {first})")


def outside_range(feats, rng):
    """bool [N]: the rows of feats [N, F] with a feature outside rng = (min [F],
    max [F]); all False where rng is None. Training scores with this what the
    runtime decides per module."""
    import numpy as np

    if rng is None:
        return np.zeros(len(feats), dtype=bool)
    return ((feats < rng[0]) | (feats > rng[1])).any(axis=1)


def preferred(pred, index, margin: float, outside=False):
    """What top-1 ranks by under a preference for candidate index: pred lowered
    by margin there, and by infinity where outside (a bool, or one per module of
    [N, K]: features outside the training range), so the preferred candidate
    comes first. Ranker.ranking_scores and training's validation scores use it."""
    import numpy as np

    return lowered(pred, index, np.where(outside, np.inf, margin))


def lowered(pred, index, margin):
    """A copy of pred (numpy [K], or [N, K]) with candidate index (one, or one
    per module) lowered by margin: what top-1 ranks by under a preference.
    Training picks the margin with this too (model.choose_margin)."""
    import numpy as np

    out = pred.copy()
    if np.ndim(index) == 0:
        out[..., index] -= margin
    else:
        out[np.arange(len(out)), index] -= margin
    return out


def verify_order(pred, pool, considered=None) -> list[int]:
    """Candidate indices (-Oz, index 0, left out: verify mode always measures it)
    in the order verify mode should measure them: with a residual pool, the
    greedy cover of pred + each pooled residual (what the sizes may really be);
    without one, by prediction. considered: the indices it may use (default all
    but 0); a cover must be built from the candidates verify mode can measure,
    since one taken out afterwards leaves the rest chosen around a hole."""
    import numpy as np

    pred = np.asarray(pred, dtype=np.float64)
    considered = [i for i in (range(1, len(pred)) if considered is None else considered) if i != 0]
    if pool is None or not len(pool):
        allowed = set(considered)
        return [int(i) for i in np.argsort(pred, kind="stable") if i in allowed]
    gains = np.minimum(pred[None, :] + pool, 0.0)
    gains[:, 0] = 0.0
    return greedy_cover(gains, considered)[0]


def greedy_cover(gains, considered) -> tuple[list[int], list[float]]:
    """Greedy set cover over scenarios: gains [S, K] are log(text / text_oz)
    clipped at 0 (a candidate never does worse than the -Oz that verify mode
    measures beside it). Each step takes the candidate that most lowers the mean
    over scenarios of the best gain so far (ties: the lower index). Returns
    (candidate indices, geomean ratio after each step). Training's static verify
    order (clang_llm.train.model.coverage_order) is the same cover over real
    modules."""
    import numpy as np

    left = list(considered)
    best = np.zeros(gains.shape[0])
    order, after = [], []
    while left and gains.shape[0]:
        means = np.minimum(best[:, None], gains[:, left]).mean(axis=0)
        i = int(np.argmin(means))  # first minimum: the lower index among ties
        j = left.pop(i)
        best = np.minimum(best, gains[:, j])
        order.append(j)
        after.append(float(np.exp(best.mean())))
    return order, after


_cache: dict[str, Ranker | ModelError] = {}


def get(path: str | None = None) -> Ranker:
    """The process's Ranker for path (default: default_model_path()). A model that
    failed to load fails the same way again without being reloaded."""
    path = path or default_model_path()
    got = _cache.get(path)
    if got is None:
        try:
            got = Ranker(path)
        except ModelError as e:
            got = e
        _cache[path] = got
    if isinstance(got, ModelError):
        raise got
    return got
