"""The model: a tiny random network's forward pass, ONNX export with metadata,
the runtime's refusal of mismatched or corrupt models, and the policy's onnx
back end falling back to -Oz (or failing under CLANG_LLM_STRICT)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from clang_llm import features, ir, pipelines, policy, ranker  # noqa: E402
from clang_llm.train import model  # noqa: E402

SAMPLE = (Path(__file__).with_name("data") / "sample.ll").read_text()
K = len(pipelines.candidates())


def tiny(use_tokens=True, use_features=True, vocab=300):
    torch.manual_seed(0)
    cfg = model.NetConfig(vocab=vocab, features=len(features.NAMES), outputs=K, use_tokens=use_tokens,
                          use_features=use_features, dim=16, layers=1, heads=2, ff=32, hidden=16, dropout=0.0)
    f = np.ones(len(features.NAMES), dtype=np.float32)
    return model.build_net(cfg, f * 0.5, f * 2.0).eval()


def test_forward_shape_oz_fixed_and_padding_ignored():
    net = tiny()
    tok = torch.randint(3, 300, (2, 3, 10))
    mask = torch.ones(2, 3)
    feats = torch.randn(2, len(features.NAMES))
    out = net(tok, mask, feats)
    assert out.shape == (2, K) and torch.all(out[:, 0] == 0)
    # Padding tokens and padding chunks change nothing.
    tok2 = torch.cat([tok, torch.zeros(2, 3, 5, dtype=torch.int64)], dim=2)
    tok2 = torch.cat([tok2, torch.randint(3, 300, (2, 1, 15))], dim=1)
    mask2 = torch.cat([mask, torch.zeros(2, 1)], dim=1)
    assert torch.allclose(net(tok2, mask2, feats), out, atol=1e-5)
    # ... and the input does matter.
    assert not torch.allclose(net(torch.randint(3, 300, (2, 3, 10)), mask, feats), out)


def test_scoring_and_verify_selection():
    text = np.array([[100.0, 90, 110], [50, 60, np.nan], [0, 0, 0]])
    order = np.array([[1, 0, 2], [2, 1, 0], [0, 1, 2]])
    top1 = model.choose_sizes(text, order)
    assert list(top1) == [90, 50, 0]                 # a failed candidate costs a fallback to -Oz
    assert list(model.choose_sizes(text, np.array([[2, 1, 0]] * 3), k=2)) == [90, 50, 0]
    s = model.score(text, top1)
    assert s["modules_with_code"] == 2 and s["improved"] == pytest.approx(1 / 3)
    assert s["geomean_ratio"] == pytest.approx(0.9 ** 0.5)
    assert s["total_reduction"] == pytest.approx(10 / 150)



def test_fixed_ranking_uses_training_modules_with_code_and_every_candidate():
    text = np.array([[100.0, 90, 99], [100, 110, 99], [0, 0, 0], [100, np.nan, 50], [100, 50, 200]])
    lab = model.Labels(["a", "b", "c", "d", "e"], ["p"] * 5, ["train"] * 4 + ["test"], ["oz", "x", "y"], text)
    order, score, used = model.fixed_ranking(lab)
    assert used == 2                                  # no code in c, x failed on d, e is a test module
    assert order == [2, 1, 0] and score["y"] < score["x"] < score["oz"] == 1.0
    order, score, used = model.fixed_ranking(lab, ["oz", "y"])
    assert used == 3 and order == [2, 0] and set(score) == {"oz", "y"}

def test_coverage_order_picks_what_wins_where_the_others_lose():
    """b is the best single candidate and c nearly the same pipeline; d is worse
    alone but wins exactly where b loses, so verify mode should measure b, d."""
    text = np.array([[100.0, 90, 91, 100, 120], [100, 90, 91, 100, 120], [100, 110, 110, 85, 100],
                     [100, 100, 100, 100, 100], [0, 0, 0, 0, 0]])
    lab = model.Labels(list("vwxyz"), ["p"] * 5, ["train"] * 5, ["oz", "b", "c", "d", "e"], text)
    order, after, used = model.coverage_order(lab)
    assert used == 4 and [lab.candidates[j] for j in order[:2]] == ["b", "d"]
    assert after[0] == pytest.approx((91 / 101) ** 0.5)  # targets() are log((t + 1) / (oz + 1)) and after == sorted(after, reverse=True)
    assert [lab.candidates[j] for j in model.coverage_order(lab, ["c", "e"])[0]] == ["c", "e"]
    text[2, 3] = np.nan  # a failed evaluation counts as -Oz: d no longer helps
    assert [lab.candidates[j] for j in model.coverage_order(lab)[0][:1]] == ["b"]
    assert model.coverage_order(lab)[1][1] == pytest.approx(after[0])


@pytest.fixture(scope="module")
def _exported_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    tok = ir.train_tokenizer([ir.normalise(SAMPLE)] * 3, vocab_size=300, min_frequency=1)
    (out / "tokenizer.json").write_text(tok.to_str())
    digest = ir.tokenizer_hash((out / "tokenizer.json").read_text())
    net = tiny(vocab=tok.get_vocab_size())
    model.export(net, out / "model.onnx", digest, {"variant": "test"})
    return net, out, tok


@pytest.fixture
def exported(_exported_once, tmp_path):
    """A fresh copy per test: some tests damage it."""
    net, out, tok = _exported_once
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copyfile(out / name, tmp_path / name)
    return net, tmp_path / "model.onnx", tok


def test_export_carries_metadata_and_matches_torch(exported):
    net, path, tok = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["clang_llm.candidate_set"] == pipelines.set_hash()
    assert json.loads(meta["clang_llm.candidates"]) == [c.name for c in pipelines.candidates()]
    assert meta["clang_llm.tokenizer"] == ir.tokenizer_hash((path.parent / "tokenizer.json").read_text())
    assert meta["clang_llm.llvm"] == "22.1" and meta["clang_llm.inputs"] == "tokens,features"
    assert meta["clang_llm.norm"] == ranker.norm_signature() and meta["clang_llm.features"] == ranker.feature_signature()
    r = ranker.Ranker(str(path))
    ranked, predicted = r.rank(SAMPLE)
    assert sorted(c.name for c in ranked) == sorted(pipelines.usable_names())
    assert set(predicted) == set(pipelines.usable_names())
    assert predicted["oz"] == 1.0
    assert [predicted[c.name] for c in ranked] == sorted(predicted[c.name] for c in ranked)
    enc = ir.encode(SAMPLE, tok)
    with torch.no_grad():
        want = net(torch.as_tensor(ir.pad(enc.chunks))[None], torch.ones(1, len(enc.chunks)),
                   torch.as_tensor(features.vector(SAMPLE, enc.covered))[None])[0].numpy() / model.SCALE
    assert np.allclose(r.predict(SAMPLE), want, atol=1e-4)
    assert r.session.get_session_options().intra_op_num_threads == 1


def test_feature_only_model_needs_no_tokenizer(tmp_path):
    path = tmp_path / "model.onnx"
    model.export(tiny(use_tokens=False), path, "", {})
    r = ranker.Ranker(str(path))
    assert r.tokenizer is None and r.inputs == ["features"]
    assert len(r.rank(SAMPLE)[0]) == len(pipelines.usable_names())



def test_gradient_boosting_exports_as_one_ranker_model(tmp_path):
    """The LightGBM variant ships as one multi-target tree ensemble that gives
    the boosters' own predictions, -Oz's column 0, through the usual Ranker."""
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    rng = np.random.default_rng(0)
    x = rng.random((300, len(features.NAMES)), dtype=np.float32)
    # Each booster's target follows one feature (any: the candidates may outnumber the features).
    boosters = {j: lgb.train({"objective": "huber", "alpha": 0.02, "num_leaves": 7, "verbosity": -1, "seed": j},
                             lgb.Dataset(x, 0.05 * x[:, j % x.shape[1]] - 0.02 * j), num_boost_round=20)
                for j in (1, K - 1)}
    path = tmp_path / "model.onnx"
    model.export_lgbm(boosters, K, x.shape[1], path, {"variant": "lgbm"})
    r = ranker.Ranker(str(path))
    assert r.inputs == ["features"] and r.meta["variant"] == "lgbm"
    for row in x[:5]:
        got = r.session.run(["log_ratio"], {"features": row})[0]
        want = np.zeros(K)
        for j, b in boosters.items():
            want[j] = b.predict(row[None, :])[0]
        assert got.shape == (K,) and np.allclose(got, want, atol=1e-5)
    ranked, predicted = r.rank(SAMPLE)
    assert len(ranked) == len(pipelines.usable_names()) == len(predicted) and predicted["oz"] == 1.0

def _rewrite_meta(path: Path, key: str, value: str) -> None:
    m = onnx.load(str(path))
    for p in m.metadata_props:
        if p.key == key:
            p.value = value
            break
    else:
        m.metadata_props.add(key=key, value=value)
    onnx.save(m, str(path))


@pytest.mark.parametrize("key, value, why", [
    ("clang_llm.candidate_set", "0000000000000000", "candidate_set"),
    ("clang_llm.norm", "0/chunk=1", "norm"),
    ("clang_llm.features", "0/1", "features"),
    ("clang_llm.llvm", "21.1", "llvm"),
    ("clang_llm.candidates", '["oz"]', "ranks candidates"),
])
def test_mismatched_model_is_refused(exported, key, value, why):
    _net, path, _tok = exported
    _rewrite_meta(path, key, value)
    with pytest.raises(ranker.ModelError, match=why):
        ranker.Ranker(str(path))


def test_tokenizer_mismatch_is_refused(exported):
    _net, path, _tok = exported
    other = ir.train_tokenizer([ir.normalise(SAMPLE)], vocab_size=200, min_frequency=1)
    (path.parent / "tokenizer.json").write_text(other.to_str())
    with pytest.raises(ranker.ModelError, match="tokenizer"):
        ranker.Ranker(str(path))


def test_corrupt_or_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ranker.ModelError, match="cannot load model"):
        ranker.Ranker(str(bad))
    with pytest.raises(ranker.ModelError, match="cannot load model"):
        ranker.Ranker(str(tmp_path / "missing.onnx"))


class IRModule:
    route = "test"
    name = source_filename = "sample.c"

    def content_hash(self):
        return "0123456789abcdef"

    def ir_text(self):
        return SAMPLE

    def check(self, passes):
        return None

    def trial(self, passes):
        return None


def test_policy_onnx_back_end_ranks_and_logs(exported, monkeypatch, tmp_path):
    _net, path, _tok = exported
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    monkeypatch.setenv("CLANG_LLM_MODEL", str(path))
    monkeypatch.setenv("CLANG_LLM_LOG", str(log))
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    d = policy.plugin_entry(IRModule())
    entry = json.loads(log.read_text())
    assert entry["backend"] == "onnx" and entry["fallback"] is None
    ranked, predicted = ranker.Ranker(str(path)).rank(SAMPLE)
    assert entry["pipeline"] == d.name == ranked[0].name and all(c.validated for c in ranked)
    # The log keeps the top of the ranking, not all ~100 predictions.
    assert entry["predicted"] == {c.name: predicted[c.name] for c in ranked[:policy.LOG_PREDICTIONS]}
    assert "onnx" not in policy.MODULE_INDEPENDENT and policy.preset_decision() is None


def test_policy_onnx_verify_measures_the_models_verify_order(tmp_path, monkeypatch):
    """A model with a residual pool hands verify mode its residual cover, which
    here differs from the k best predictions."""
    net = tiny(use_tokens=False)
    feats = torch.as_tensor(features.vector(SAMPLE, 0.0))[None]
    with torch.no_grad():
        pred = net(torch.zeros(1, 1, 1, dtype=torch.int64), torch.ones(1, 1), feats)[0].numpy() / model.SCALE
    # Only validated candidates are ever measured.
    by_pred = [int(j) for j in np.argsort(pred, kind="stable") if j != 0 and pipelines.candidates()[j].validated]
    # Every pooled module saw the two best-predicted candidates do nothing and
    # the worst-predicted one save 30%.
    pool = np.zeros((4, K), dtype=np.float32)
    pool[:, by_pred[0]] = pool[:, by_pred[1]] = 1.0
    pool[:, by_pred[-1]] = -0.3 - pred[by_pred[-1]]
    path = tmp_path / "model.onnx"
    model.export(net, path, "", {}, pool)
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    monkeypatch.setenv("CLANG_LLM_MODEL", str(path))
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    monkeypatch.setenv("CLANG_LLM_VERIFY_K", "1")
    m = IRModule()
    measured = []
    m.measure = lambda passes, codegen=0: measured.append(passes) or {"image": 12, "ram": 0, "text": 10, "data": 0}
    policy.plugin_entry(m)
    assert measured == [pipelines.oz_pipeline(), pipelines.candidates()[by_pred[-1]].passes]


def test_policy_falls_back_on_a_corrupt_model(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    monkeypatch.setenv("CLANG_LLM_MODEL", str(bad))
    d = policy.plugin_entry(IRModule())
    assert d.name == "oz" and d.passes == pipelines.oz_pipeline() and "cannot load model" in d.fallback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clang-llm: warning: using clang's -Oz pipeline for 'sample.c'")
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    with pytest.raises(policy.PolicyError, match="cannot load model"):
        policy.plugin_entry(IRModule())


def test_listwise_loss_rewards_the_right_order():
    y = torch.tensor([[0.0, -0.4, 0.3]])
    known = torch.ones(1, 3)
    w = torch.ones(1)
    right = model.listwise_loss(torch.tensor([[0.0, -0.5, 0.5]]), y, known, w)
    wrong = model.listwise_loss(torch.tensor([[0.0, 0.5, -0.5]]), y, known, w)
    assert right < wrong
    # An unknown (failed) candidate is left out of both distributions.
    masked = model.listwise_loss(torch.tensor([[0.0, -0.5, -9.0]]), y, torch.tensor([[1.0, 1.0, 0.0]]), w)
    assert masked < right


def test_targets_are_log_ratios_to_oz():
    text = np.array([[100.0, 90.0, np.nan], [0.0, 0.0, 3.0]])
    y = model.targets(text)
    assert y[0, 0] == 0 and y[0, 1] == pytest.approx(np.log(91 / 101)) and np.isnan(y[0, 2])
    assert y[1, 1] == 0 and y[1, 2] == pytest.approx(np.log(4.0))


def _label_table(path: Path, modules: dict[str, str], rng) -> None:
    """A label table for the shipped candidate set: modules {hash: split}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {k: [] for k in ("module", "package", "split", "candidate", "text", "data", "ir_instructions", "error")}
    for h, split in modules.items():
        for c in pipelines.candidates():
            for k, v in (("module", h), ("package", f"pkg-{split}-{h[-1]}"), ("split", split), ("candidate", c.name),
                         ("text", int(rng.integers(80, 120))), ("data", 0), ("ir_instructions", 10), ("error", "")):
                cols[k].append(v)
    pq.write_table(pa.table(cols).replace_schema_metadata({"candidate_set": pipelines.set_hash()}), path)


def test_feature_table_holds_the_runtime_vectors_and_feature_models_train_from_it(tmp_path):
    """The committed feature table stands in for the corpus: its rows are what
    the runtime computes for a feature-only model, a later write keeps rows the
    corpus no longer has, and `train` of the feature-only variants needs no
    bitcode at all."""
    rng = np.random.default_rng(0)
    mods = tmp_path / "modules"
    mods.mkdir()
    splits = {f"m{i:02d}": ("train" if i < 12 else "validation") for i in range(16)}
    for i, h in enumerate(splits):
        (mods / f"{h}.bc").write_text(SAMPLE.replace("ret i32", f"; {i}\n  ret i32"))
    (mods / "m00.bc").write_text((Path(__file__).with_name("data") / "sample_g.ll").read_text())
    labels_path = tmp_path / "labels.parquet"
    _label_table(labels_path, splits, rng)
    table = tmp_path / "features.parquet"
    n, missing = model.write_feature_table(sorted(splits), mods, table, quiet=True)
    assert n == 16 and missing == []
    got = model.read_feature_table(table)
    for h in splits:
        text = model.module_ir(mods / f"{h}.bc")
        assert np.array_equal(got[h], features.vector(text, 0.0))
    # The Ranker feeds a feature-only model the same vector.
    path = tmp_path / "model.onnx"
    model.export(tiny(use_tokens=False), path, "", {})
    assert np.array_equal(ranker.Ranker(str(path)).feeds(model.module_ir(mods / "m03.bc"))["features"], got["m03"])

    # A module whose bitcode is gone keeps its row; one never seen is reported.
    (mods / "m05.bc").unlink()
    n, missing = model.write_feature_table(sorted(splits) + ["zz"], mods, table, quiet=True, old=got)
    assert n == 16 and missing == ["zz"] and np.array_equal(model.read_feature_table(table)["m05"], got["m05"])

    from clang_llm.train import cli

    work = tmp_path / "work"
    argv = ["train", "--labels", str(labels_path), "--modules", str(tmp_path / "none"), "--features", str(table),
            "--variants", "best-fixed", "mlp", "--epochs", "1", "--work", str(work), "--report",
            str(tmp_path / "report"), "--quiet"]
    assert cli.main(argv) == 0
    report = json.loads((work / "ablation.json").read_text())
    assert report["modules"]["train"] == 12 and report["left_out_without_features"] == 0
    shipped = ranker.Ranker(str(work / "model.onnx"))
    assert shipped.inputs == ["features"] and shipped.has_residuals
    # The residual pool: the 12 training modules (of 10 packages: m00-m09 each its
    # own, m10/m11 share m0/m1's last digit), each predicted out of its fold.
    ranked, _, verify = shipped.rank(SAMPLE, verify=True)
    pred, pool = shipped.predict(SAMPLE, residuals=True)
    assert pool.shape == (12, K) and not pool[:, 0].any()
    usable = [j for j, c in enumerate(shipped.candidates) if c.validated]
    assert [c.name for c in verify] == [shipped.candidates[j].name for j in ranker.verify_order(pred, pool, usable)]
    assert sorted(c.name for c in verify) == sorted(c.name for c in pipelines.candidates()
                                                    if c.name != "oz" and c.validated)
    assert [c.name for c in ranked] == [c.name for c in ranked if c.validated] and len(ranked) == len(usable)
    assert "k8" in report["variants"]["mlp"]["val_verify"] and "train_out_of_fold" in report["variants"]["mlp"]

    # An ablation-only run: validation scores without the fold refits, and
    # nothing to ship (no residual cover), so the shipped file stays as it was.
    before = (work / "model.onnx").read_bytes()
    assert cli.main([a for a in argv if a != "best-fixed"] + ["--no-out-of-fold"]) == 0
    quick = json.loads((work / "ablation.json").read_text())
    assert quick["variants"]["mlp"]["out_of_fold"] is False and "val_verify" not in quick["variants"]["mlp"]
    assert "shipped" not in quick and (work / "model.onnx").read_bytes() == before

    # --ship exports the variant asked for, not the rule's pick, and says so.
    i = argv.index("mlp")
    both = argv[:i] + ["lgbm", "mlp"] + argv[i + 1:]
    with pytest.raises(SystemExit, match="--ship lgbm: no such shippable variant"):
        cli.main(argv + ["--ship", "lgbm"])
    assert cli.main(both) == 0
    rule = json.loads((work / "ablation.json").read_text())["ship_choice"]
    other_pick = "mlp" if rule == "lgbm" else "lgbm"
    assert cli.main(both + ["--ship", other_pick]) == 0
    forced = json.loads((work / "ablation.json").read_text())
    assert forced["shipped"] == other_pick and forced["ship_choice"] == rule
    assert ranker.Ranker(str(work / "model.onnx")).meta["variant"] == other_pick
    assert "by --ship" in (tmp_path / "report.md").read_text()

    # Without the table and the bitcode: refused, or left out when asked.
    other = tmp_path / "partial.parquet"
    model.write_feature_table(sorted(splits)[:14], mods, other, quiet=True, old=got)
    argv[argv.index(str(table))] = str(other)
    with pytest.raises(SystemExit, match="2 of 16 labelled modules have no features"):
        cli.main(argv)
    assert cli.main(argv + ["--allow-missing"]) == 0
    assert json.loads((work / "ablation.json").read_text())["left_out_without_features"] == 2


def test_feature_table_of_another_feature_version_is_refused(tmp_path):
    import pyarrow.parquet as pq

    mods = tmp_path / "m"
    mods.mkdir()
    (mods / "a.bc").write_text(SAMPLE)
    table = tmp_path / "f.parquet"
    model.write_feature_table(["a"], mods, table, quiet=True)
    t = pq.read_table(table)
    meta = dict(t.schema.metadata)
    meta[b"features"] = b"0/1"
    pq.write_table(t.replace_schema_metadata(meta), table)
    with pytest.raises(ValueError, match="computed for features '0/1'"):
        model.read_feature_table(table)
    assert model.read_feature_table(tmp_path / "absent.parquet") == {}


def test_verify_order_covers_what_the_predictions_get_wrong():
    """Candidates 1 and 2 are predicted best but win and lose together in the
    pool; 3 is predicted worse and wins where they lose: measure 1, then 3."""
    pred = np.array([0.0, -0.05, -0.049, -0.01])
    pool = np.array([[0, 0.0, 0.0, 0.0], [0, 0.1, 0.1, -0.05], [0, 0.0, 0.0, 0.02], [0, 0.1, 0.1, 0.0]])
    assert ranker.verify_order(pred, pool) == [1, 3, 2]
    assert ranker.verify_order(pred, None) == [1, 2, 3]          # no pool: by prediction
    # Only the candidates it may measure: the cover is rebuilt around an excluded one.
    assert 1 not in ranker.verify_order(pred, pool, [2, 3]) and sorted(ranker.verify_order(pred, pool, [2, 3])) == [2, 3]
    assert ranker.verify_order(pred, None, [0, 3, 1]) == [1, 3]
    order, after = ranker.greedy_cover(np.minimum(pred + pool, 0.0), [1, 2, 3])
    assert order == [1, 3, 2] and after[1] < after[0] and after[2] == after[1]


def test_shipped_model_fits_the_size_cap_and_matches_the_set():
    """The issue caps the shipped model at 20 MB; a grown candidate set grows the
    tree ensemble with it (fit_lgbm's tree budget keeps it under)."""
    path = Path(pipelines.__file__).with_name("data") / "model.onnx"
    assert path.stat().st_size <= model.MAX_MODEL_BYTES
    r = ranker.Ranker(str(path))
    assert r.meta["candidate_set"] == pipelines.set_hash()


def test_preference_keeps_the_default_unless_another_wins_by_the_margin(tmp_path):
    path = tmp_path / "model.onnx"
    model.export(tiny(use_tokens=False), path, "", {})
    r = ranker.Ranker(str(path))
    ranked, predicted = r.rank(SAMPLE)
    pred = {c.name: float(v) for c, v in zip(pipelines.candidates(), r.predict(SAMPLE))}
    first = ranked[0].name
    second = next(c.name for c in ranked if pred[c.name] > pred[first])
    gap = pred[second] - pred[first]
    for margin, top in ((gap * 1.5, second), (gap * 0.5, first)):
        _rewrite_meta(path, "clang_llm.prefer", json.dumps({"candidate": second, "margin": margin}))
        r = ranker.Ranker(str(path))
        ranked, again = r.rank(SAMPLE)
        assert ranked[0].name == top and again == predicted  # reported predictions stay the model's
    _rewrite_meta(path, "clang_llm.prefer", json.dumps({"candidate": "no-such", "margin": 0.1}))
    with pytest.raises(ranker.ModelError, match="preference"):
        ranker.Ranker(str(path))


def test_outside_the_training_range_top1_keeps_the_preferred_candidate(tmp_path):
    """A module whose features lie outside the training vectors' range gets the
    preferred candidate whatever the model predicts there (it extrapolates), and
    verify mode the static order; inside, the model's ranking stands."""
    path = tmp_path / "model.onnx"
    model.export(tiny(use_tokens=False), path, "", {})
    r = ranker.Ranker(str(path))
    ranked, _ = r.rank(SAMPLE)
    kept = next(c.name for c in ranked[1:] if c.name != "oz")  # not the model's first choice
    v = features.vector(SAMPLE, 0.0)
    _rewrite_meta(path, "clang_llm.prefer", json.dumps({"candidate": kept, "margin": 0.0}))
    _rewrite_meta(path, "clang_llm.feature_range", json.dumps({"min": (v - 1).tolist(), "max": (v + 1).tolist()}))
    r = ranker.Ranker(str(path))
    assert r.rank(SAMPLE)[0][0].name == ranked[0].name and r.last_outside is None
    shifted = v.copy()
    shifted[features.NAMES.index("op_load")] += 0.5  # inside on op_load, outside on op_ret like v
    lo = v - 1
    lo[features.NAMES.index("op_ret")] = v[features.NAMES.index("op_ret")] + 0.25
    _rewrite_meta(path, "clang_llm.feature_range", json.dumps({"min": lo.tolist(), "max": (v + 1).tolist()}))
    r = ranker.Ranker(str(path))
    top, _, verify = r.rank(SAMPLE, verify=True)
    assert top[0].name == kept
    assert r.last_outside.startswith("op_ret ") and "below the training minimum" in r.last_outside
    assert [c.name for c in verify] == [c.name for c in pipelines.verify_order()]  # the static cover
    assert model.static_where_outside([[3, 2], [2, 3]], [False, True], [1, 0]) == [[3, 2], [1, 0]]
    assert list(ranker.outside_range(np.stack([v, shifted]), r.feature_range)) == [True, True]
    assert list(ranker.outside_range(np.stack([v, shifted]), None)) == [False, False]
    _rewrite_meta(path, "clang_llm.feature_range", json.dumps({"min": [0.0], "max": [1.0]}))
    with pytest.raises(ranker.ModelError, match="feature range"):
        ranker.Ranker(str(path))
    # Without a preference, outside the range means the shipped best fixed pipeline.
    bare = tmp_path / "bare.onnx"
    model.export(tiny(use_tokens=False), bare, "", {"feature_range": {"min": lo.tolist(), "max": (v + 1).tolist()}})
    r = ranker.Ranker(str(bare))
    assert r.prefer is None and r.rank(SAMPLE)[0][0].name == pipelines.best_fixed().name
    pred = np.zeros(len(r.candidates), dtype=np.float32)
    other = next(j for j, c in enumerate(r.candidates) if c.validated and c != pipelines.best_fixed())
    pred[other] = -1.0
    assert int(np.argmin(r.ranking_scores(pred))) == other
    assert r.candidates[int(np.argmin(r.ranking_scores(pred, True)))] == pipelines.best_fixed()


def test_margin_is_chosen_out_of_fold():
    # Candidate 2 (the default) is right on every module; the predictions favour
    # 3 by 0.004 on half of them: a margin above that wins. (Column 1 is a
    # candidate the shipped set no longer validates: never chosen.)
    assert [pipelines.candidates()[j].validated for j in (2, 3)] == [True, True]
    text = np.array([[100.0, np.nan, 90.0, 95.0]] * 4)
    oof = np.array([[0.0, 1.0, -0.10, -0.104]] * 2 + [[0.0, 1.0, -0.10, -0.05]] * 2)
    margin, best = model.choose_margin(text, oof, np.array([2, 2, 2, 2]))
    assert margin == 0.005 and best["geomean_ratio"] == pytest.approx(0.9)
    # Predictions that are right need no margin.
    margin, _ = model.choose_margin(text, np.array([[0.0, 1.0, -0.1, -0.05]] * 4), np.array([2, 2, 2, 2]))
    assert margin == 0.0


def test_token_variants_train_from_bitcode_and_leave_out_modules_without_it(tmp_path):
    """The transformer path end to end on a tiny corpus (tokenizer, encoding,
    an epoch, ablation report); a labelled module whose bitcode this corpus
    lacks stops it with a clear message, or is left out when asked, instead of
    the tokenizer dying on a missing file."""
    from clang_llm.train import cli

    rng = np.random.default_rng(1)
    mods = tmp_path / "modules"
    mods.mkdir()
    splits = {f"t{i:02d}": ("train" if i < 10 else "validation") for i in range(13)}
    for i, h in enumerate(splits):
        (mods / f"{h}.bc").write_text(SAMPLE.replace("ret i32", f"; {i}\n  ret i32"))
    labels_path = tmp_path / "labels.parquet"
    _label_table(labels_path, splits, rng)
    (mods / "t04.bc").unlink()
    work = tmp_path / "work"
    argv = ["train", "--labels", str(labels_path), "--modules", str(mods), "--features", str(tmp_path / "none.parquet"),
            "--variants", "transformer", "--epochs", "1", "--vocab", "300", "--no-out-of-fold", "--work", str(work),
            "--report", str(tmp_path / "report"), "--quiet"]
    with pytest.raises(SystemExit, match="1 of 13 labelled modules have no bitcode"):
        cli.main(argv)
    assert cli.main(argv + ["--allow-missing"]) == 0
    report = json.loads((work / "ablation.json").read_text())
    assert report["left_out_without_bitcode"] == 1 and report["modules"]["train"] == 9
    assert report["variants"]["transformer"]["out_of_fold"] is False and (work / "tokenizer.json").is_file()


def test_the_variant_shipped_is_the_best_top1_as_it_runs_then_verify():
    """Shipping ranks variants by validation top-1 with their preference for
    the default (what the runtime ranks by), not by their predictions alone;
    when the preference makes them equal, verify k=4 decides."""
    def entry(alone, as_run, k4):
        return {"val": {"geomean_ratio": alone}, "val_prefer": {"geomean_ratio": as_run},
                "val_verify": {"k4": {"geomean_ratio": k4}}}

    # lgbm's predictions alone are better, but both keep the default when run:
    # the better verify cover ships.
    tied = {"lgbm": entry(0.986, 0.9865, 0.9723), "mlp": entry(0.992, 0.9865, 0.9713)}
    assert model.ship_choice(tied) == "mlp"
    # A variant that beats the default as it runs wins whatever its cover.
    ahead = {"lgbm": entry(0.986, 0.9850, 0.9750), "mlp": entry(0.992, 0.9865, 0.9700)}
    assert model.ship_choice(ahead) == "lgbm"
    # Equal in both: VARIANTS order.
    same = {"mlp": entry(0.99, 0.9865, 0.97), "lgbm": entry(0.99, 0.9865, 0.97)}
    assert model.ship_choice(same) == "lgbm"
    # Without a preference (margin 0), top-1 is the predictions' own.
    plain = {"lgbm": {"val": {"geomean_ratio": 0.984}, "val_verify": {"k4": {"geomean_ratio": 0.98}}},
             "mlp": entry(0.992, 0.9865, 0.9700)}
    assert model.ship_choice(plain) == "lgbm" and model.top1_as_run(plain["lgbm"]) == 0.984
