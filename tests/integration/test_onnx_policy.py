"""The onnx back end inside real compiles: clang-llm -Oz-llm with CLANG_LLM_POLICY=onnx.

A tiny random model exported here stands in for the shipped one (its choices are
arbitrary, which is the point: whatever it picks must be what clang compiles),
so the test does not depend on a trained artifact; the shipped model, when there
is one, gets the same check.
"""

import json
import shutil

import pytest

from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from clang_llm import _paths, features, ir, pipelines, policy, ranker  # noqa: E402
from clang_llm.train import model  # noqa: E402

SOURCE = r"""
#include <string.h>
struct item { const char *name; int weight; };
static int score(const struct item *it) { return it->weight * 3 + (int)strlen(it->name); }
int best(const struct item *items, int n) {
    int top = -1, at = -1;
    for (int i = 0; i < n; i++) {
        int s = score(&items[i]);
        switch (s & 3) { case 0: s += 1; break; case 3: s -= 2; break; default: break; }
        if (s > top) { top = s; at = i; }
    }
    return at;
}
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    tok = ir.train_tokenizer(["define i32 @0(ptr %0) {\nload i32, ptr %0\nret i32 %1\n}"] * 2,
                             vocab_size=200, min_frequency=1)
    (out / "tokenizer.json").write_text(tok.to_str())
    torch.manual_seed(1)
    cfg = model.NetConfig(vocab=tok.get_vocab_size(), features=len(features.NAMES),
                          outputs=len(pipelines.candidates()), dim=16, layers=1, heads=2, ff=32, hidden=16)
    f = [1.0] * len(features.NAMES)
    net = model.build_net(cfg, f, f).eval()
    model.export(net, out / "model.onnx", ir.tokenizer_hash((out / "tokenizer.json").read_text()), {})
    return out / "model.onnx"


def _models(tiny_model):
    yield tiny_model
    shipped = _paths.shipped_file("data", "model.onnx")
    if shipped:
        yield shipped


def _ir_text(src, tmp_path, clang) -> str:
    """The module the plugin sees, as text."""
    from clang_llm import _core

    bc = tmp_path / "module.bc"
    run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", bc])
    return _core.LoadedModule(bc.read_bytes(), "module.bc").ir_text()


def test_onnx_policy_compiles_what_it_logs(tiny_model, tmp_path, clang):
    src = tmp_path / "items.c"
    src.write_text(SOURCE)
    for n, model_path in enumerate(_models(tiny_model)):
        log = tmp_path / f"log{n}.jsonl"
        obj = tmp_path / f"items{n}.o"
        run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", obj],
            env=clean_env(CLANG_LLM_POLICY="onnx", CLANG_LLM_MODEL=model_path, CLANG_LLM_STRICT=1,
                          CLANG_LLM_LOG=log))
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(entries) == 1
        e = entries[0]
        assert e["backend"] == "onnx" and e["fallback"] is None and e["mode"] == "top1"
        # The log keeps the top of the ranking, not all ~100 predictions; the
        # ranking is the model's over the candidates the policy may choose (an
        # excluded one, such as s19+mo, is never chosen).
        ranked, predicted = ranker.Ranker(str(model_path)).rank(_ir_text(src, tmp_path, clang))
        assert all(c.validated for c in ranked) and e["pipeline"] == ranked[0].name
        top = [c.name for c in ranked[:policy.LOG_PREDICTIONS]]
        assert e["predicted"] == {k: predicted[k] for k in top}
        # What the model chose is exactly what clang compiled: the same object as
        # asking for that candidate by name.
        ref = tmp_path / f"ref{n}.o"
        run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", ref],
            env=clean_env(CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=e["pipeline"], CLANG_LLM_STRICT=1))
        assert obj.read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("home", ["missing", "read-only"])
def test_onnx_policy_writes_nothing_outside_its_output(tiny_model, tmp_path, clang, home):
    """onnxruntime's telemetry, left on, writes a device id and a database under
    ~/.cache/Microsoft (creating HOME if missing) and a .ses file in TMPDIR, and
    prints a coloured warning where it cannot: a compiler must do none of that."""
    src = tmp_path / "items.c"
    src.write_text(SOURCE)
    tmp, home_dir = tmp_path / "tmp", tmp_path / "home"
    tmp.mkdir(mode=0o555)
    if home == "read-only":
        home_dir.mkdir(mode=0o555)
    env = {k: v for k, v in clean_env(CLANG_LLM_POLICY="onnx", CLANG_LLM_MODEL=tiny_model, CLANG_LLM_STRICT=1,
                                      HOME=home_dir, TMPDIR=tmp).items()
           if not k.startswith(("XDG_", "ORT_"))}
    try:
        for mode in ("-Oz-llm", "-Oz-llm=verify"):
            r = run([BIN / "clang-llm", mode, "-c", src, "-o", tmp_path / "items.o"], env=env, cwd=tmp_path)
            assert r.stderr == b""
        r = run([BIN / "clang-llm", "explain", src], env=env, cwd=tmp_path)
        assert r.stderr == b""
        # (root ignores the modes, so check what appeared as well as the output)
        assert list(tmp.iterdir()) == []
        assert (list(home_dir.iterdir()) == []) if home == "read-only" else not home_dir.exists()
    finally:
        tmp.chmod(0o755)
        if home_dir.exists():
            home_dir.chmod(0o755)


def test_broken_model_falls_back_to_oz_in_a_real_compile(tiny_model, tmp_path, clang):
    src = tmp_path / "items.c"
    src.write_text(SOURCE)
    broken = tmp_path / "m"
    broken.mkdir()
    shutil.copyfile(tiny_model, broken / "model.onnx")
    (broken / "tokenizer.json").write_text("{}")
    r = run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", tmp_path / "a.o"],
            env=clean_env(CLANG_LLM_POLICY="onnx", CLANG_LLM_MODEL=broken / "model.onnx"))
    err = r.stderr.decode()
    assert "using clang's -Oz pipeline for" in err and "tokenizer" in err
    run([clang, "-Oz", "-c", src, "-o", tmp_path / "b.o"])
    assert (tmp_path / "a.o").read_bytes() == (tmp_path / "b.o").read_bytes()
    strict = run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", tmp_path / "c.o"], check=False,
                 env=clean_env(CLANG_LLM_POLICY="onnx", CLANG_LLM_MODEL=broken / "model.onnx", CLANG_LLM_STRICT=1))
    assert strict.returncode != 0


def test_explain_shows_choice_and_measures(tiny_model, tmp_path, clang):
    src = tmp_path / "items.c"
    src.write_text(SOURCE)
    r = run([BIN / "clang-llm", "explain", src, "-DUNUSED=1", "--measure", "--top", "2", "--json"],
            env=clean_env(CLANG_LLM_MODEL=tiny_model))
    (rep,) = json.loads(r.stdout)
    assert len(rep["candidates"]) == 3 and rep["chosen"] == rep["candidates"][0]["name"]
    assert rep["oz_text"] > 0 and all(c["text"] > 0 for c in rep["candidates"])
    if any(c["name"] == "oz" for c in rep["candidates"]):
        assert next(c for c in rep["candidates"] if c["name"] == "oz")["text"] == rep["oz_text"]
    assert len(rep["verify_order"]) == 4 and "oz" not in rep["verify_order"]
    # The measurement is the image a linked program grows by, beside the prediction.
    assert rep["size_metric"] == "image" and rep["oz_image"] > 0 and all(c["image"] > 0 for c in rep["candidates"])
    assert rep["why"] and rep["policy"]["backend"] == "best-fixed" and "stem" in rep["legend"]
    human = run([BIN / "clang-llm", "explain", src, "--measure"],
                env=clean_env(CLANG_LLM_MODEL=tiny_model)).stdout.decode()
    assert "chosen" in human and "predicted vs -Oz" in human and "measured image" in human
    assert "verify mode measures -Oz and" in human and "why: " in human and "not the model's choice" in human
    for part in {p for c in rep["candidates"] for p in c["name"].split("+")[1:]}:
        assert f"    +{part} " in human


def test_verify_mode_measures_the_models_verify_order(tmp_path, clang):
    """-Oz-llm=verify under a model with a residual pool measures -Oz and the
    first k of the model's residual cover, keeps the smallest, and the object is
    that candidate's."""
    import numpy as np

    from clang_llm import _core, ranker

    torch.manual_seed(2)
    k = len(pipelines.candidates())
    cfg = model.NetConfig(vocab=10, features=len(features.NAMES), outputs=k, use_tokens=False, hidden=16)
    net = model.build_net(cfg, [0.0] * len(features.NAMES), [1.0] * len(features.NAMES)).eval()
    pool = np.random.default_rng(0).normal(0, 0.05, (64, k)).astype(np.float32)
    pool[:, 0] = 0
    path = tmp_path / "model.onnx"
    model.export(net, path, "", {}, pool)
    src = tmp_path / "items.c"
    src.write_text(SOURCE)
    log = tmp_path / "log.jsonl"
    obj = tmp_path / "items.o"
    run([BIN / "clang-llm", "-Oz-llm=verify", "-c", src, "-o", obj],
        env=clean_env(CLANG_LLM_POLICY="onnx", CLANG_LLM_MODEL=path, CLANG_LLM_STRICT=1, CLANG_LLM_LOG=log,
                      CLANG_LLM_VERIFY_K=3))
    (e,) = [json.loads(line) for line in log.read_text().splitlines()]
    bc = tmp_path / "items.bc"
    run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", bc])
    text = _core.LoadedModule(bc.read_bytes(), "items.bc").ir_text()
    r = ranker.Ranker(str(path))
    _ranked, _pred, verify = r.rank(text, verify=True)
    verify = [c for c in verify if c.validated]  # the policy never measures an excluded candidate
    assert set(e["measured"]) == {"oz", *(c.name for c in verify[:3])}
    # The smallest image among those that need no more RAM than -Oz.
    oz = e["measured"]["oz"]
    sizes = {n: m["image"] for n, m in e["measured"].items() if "image" in m and m["ram"] <= oz["ram"]}
    assert sizes[e["pipeline"]] == min(sizes.values())
    ref = tmp_path / "ref.o"
    run([BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", ref],
        env=clean_env(CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=e["pipeline"], CLANG_LLM_STRICT=1))
    assert obj.read_bytes() == ref.read_bytes()
