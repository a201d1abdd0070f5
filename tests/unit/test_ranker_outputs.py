"""A model whose outputs are not finite has failed on that module: the ranker
refuses the ranking (ModelError, so the policy falls back with a reason)
instead of sorting NaN into an arbitrary choice."""

import numpy as np
import pytest

from clang_llm import features, pipelines, ranker

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

IR = "define i32 @f(i32 %x) {\n  %y = add i32 %x, 1\n  ret i32 %y\n}\n"


def constant_model(path, log_ratio, residuals=None):
    """A features model that predicts log_ratio whatever the module (times 0
    plus the features' sum, so the input is used)."""
    from onnx import TensorProto, helper

    k = len(pipelines.candidates())
    nodes = [
        helper.make_node("ReduceSum", ["features"], ["s"], keepdims=1),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["pred", "z"], ["log_ratio"]),
    ]
    inits = [helper.make_tensor("pred", TensorProto.FLOAT, [k], list(map(float, log_ratio))),
             helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])]
    outputs = [helper.make_tensor_value_info("log_ratio", TensorProto.FLOAT, [k])]
    if residuals is not None:
        inits.append(helper.make_tensor("pool", TensorProto.FLOAT, list(residuals.shape),
                                        residuals.ravel().tolist()))
        nodes.append(helper.make_node("Identity", ["pool"], ["residuals"]))
        outputs.append(helper.make_tensor_value_info("residuals", TensorProto.FLOAT, list(residuals.shape)))
    graph = helper.make_graph(nodes, "constant",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [len(features.NAMES)])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ranker.metadata([c.name for c in pipelines.candidates()], pipelines.set_hash(), "features", "")
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return str(path)


def test_finite_outputs_rank(tmp_path):
    k = len(pipelines.candidates())
    pred = np.linspace(0.1, -0.1, k)
    ranked, ratios = ranker.Ranker(constant_model(tmp_path / "m.onnx", pred)).rank(IR)
    assert ranked[0] == [c for c in pipelines.candidates() if c.validated][-1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_outputs_are_a_model_error(tmp_path, bad):
    usable = pipelines.usable_indices()
    pred = np.zeros(len(pipelines.candidates()))
    pred[usable[5]] = bad
    r = ranker.Ranker(constant_model(tmp_path / "m.onnx", pred))
    with pytest.raises(ranker.ModelError, match=f"predicted non-finite values for 1 candidates "
                                                f"\\(e.g. {pipelines.candidates()[usable[5]].name.replace('+', '.')}"):
        r.rank(IR)


def test_an_excluded_candidates_output_may_be_anything(tmp_path):
    """A model need not predict candidates no policy may use; a NaN there must
    neither fail the ranking nor disturb the order of the others."""
    excluded = [i for i, c in enumerate(pipelines.candidates()) if not c.validated]
    k = len(pipelines.candidates())
    pred = np.linspace(0.1, -0.1, k)
    pred[excluded] = np.nan
    ranked, ratios = ranker.Ranker(constant_model(tmp_path / "m.onnx", pred)).rank(IR)
    want = sorted(pipelines.usable_indices(), key=lambda i: pred[i])
    assert [c.name for c in ranked] == [pipelines.candidates()[i].name for i in want]


def test_non_finite_residuals_are_a_model_error(tmp_path):
    k = len(pipelines.candidates())
    pool = np.zeros((4, k), dtype=np.float32)
    pool[2, pipelines.usable_indices()[1]] = np.nan
    r = ranker.Ranker(constant_model(tmp_path / "m.onnx", np.zeros(k), pool))
    r.rank(IR)  # top-1 does not read the residuals
    with pytest.raises(ranker.ModelError, match="has residuals with non-finite values"):
        r.rank(IR, verify=True)
