"""clang-llm explain's account of a choice: why the top row was chosen, what the
names mean, which size was measured, and what -Oz-llm itself would compile."""

import math

import pytest

from clang_llm import explain, pipelines


class Ranker:
    def __init__(self, prefer=None, outside=None):
        self.candidates = pipelines.candidates()
        self.prefer = None if prefer is None else (self.candidates.index(prefer[0]), prefer[1])
        self.last_outside = outside


@pytest.fixture
def cands():
    default = pipelines.best_fixed()
    others = [c for c in pipelines.candidates() if c.validated and c not in (default,)]
    return default, others[1], others[2]


def test_why_the_preferred_candidate_stays_within_the_margin(cands):
    default, rival, third = cands
    ranked = [default, rival, third]
    predicted = {default.name: 0.997, rival.name: 0.994, third.name: 0.999}
    why = explain.why_chosen(Ranker(prefer=(default, 0.02)), ranked, predicted)
    assert why.startswith("the model's preferred candidate (the default, best-fixed)")
    gap = math.exp(math.log(0.997) - math.log(0.994)) - 1
    assert f"{rival.name} is predicted smaller by {gap:.2%}" in why and "margin of 2.02%" in why


def test_why_another_candidate_beat_the_margin(cands):
    default, rival, third = cands
    predicted = {default.name: 1.0, rival.name: 0.9, third.name: 0.95}
    why = explain.why_chosen(Ranker(prefer=(default, 0.02)), [rival, third, default], predicted)
    assert why.startswith(f"predicted smaller than the model's preferred candidate {default.name} by")
    assert "more than its margin of 2.02%" in why


def test_why_outside_the_training_range_and_without_a_preference(cands):
    default, rival, _ = cands
    predicted = {default.name: 1.2, rival.name: 0.5}
    why = explain.why_chosen(Ranker(prefer=(default, 0.02), outside="op_indirectbr 0.69 above the training "
                                                                     "maximum 0"), [default, rival], predicted)
    assert "outside the model's training range (op_indirectbr" in why and "predictions are not used" in why
    assert explain.why_chosen(Ranker(), [rival, default], predicted) == "the smallest predicted size"


def test_legend_names_the_suffixes_shown_and_only_those():
    got = explain.legend([{"name": "s24+mo+ss+nlicm"}, {"name": "s22-iroutliner+mo"}, {"name": "oz"}])
    knobs = {k: meaning for k, _bit, meaning in pipelines.KNOBS}
    assert {k: v for k, v in got.items() if k in knobs} == {k: knobs[k] for k in ("mo", "ss", "nlicm")}
    assert "iroutliner pass removed" in got["-iroutliner"] and "IR pass pipeline" in got["stem"]
    assert set(explain.legend([{"name": "s09"}])) == {"stem"}


@pytest.mark.parametrize("sizes, metric", [
    ({"image": 200, "ram": 0, "text": 120}, "image"),
    ({"text": 120, "data": 0}, "text"),  # before the image metric: .text, as it was
])
def test_measured_size_is_the_image_where_measured(cands, capsys, sizes, metric):
    default, rival, _ = cands

    def measure(passes, codegen):
        scale = 1.0 if passes == pipelines.oz_pipeline() else 0.9 if passes == default.passes else 1.1
        return {k: round(v * scale) for k, v in sizes.items()}

    report = {"file": "f.c", "module_hash": "0" * 16, "ir_instructions": 9, "chosen": default.name,
              "why": "because", "policy": explain.configured_policy(), "verify_order": [rival.name],
              "candidates": [{"name": default.name, "predicted_ratio": 0.95},
                             {"name": rival.name, "predicted_ratio": 0.98}]}
    report["legend"] = explain.legend(report["candidates"])
    explain.measure_shown(report, [default, rival], measure)
    assert report["size_metric"] == metric and report[f"oz_{metric}"] == sizes[metric]
    assert report["candidates"][0][metric] == round(sizes[metric] * 0.9)
    assert report["candidates"][0]["measured_ratio"] == pytest.approx(0.9, abs=0.01)
    explain._print(report)
    out = capsys.readouterr().out
    label = "image" if metric == "image" else ".text"
    assert f"-Oz {label}: {sizes[metric]} bytes (measured" in out and f"measured {label}" in out
    row = next(line for line in out.splitlines() if line.lstrip().startswith("chosen"))
    assert "-5.00%" in row and str(round(sizes[metric] * 0.9)) in row and "-10.00%" in row
    assert "why: because" in out
    knobs = default.name.split("+")[1:]
    assert all(any(line.split()[:1] == [f"+{k}"] for line in out.splitlines()) for k in knobs), out


def test_the_configured_back_end_is_named(monkeypatch):
    got = explain.configured_policy()
    assert got["backend"] == "best-fixed" and got["pipeline"] == pipelines.best_fixed().name
    assert "(the default)" in got["note"] and "not the model's choice" in got["note"]
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    assert "compiles the chosen candidate" in explain.configured_policy()["note"]
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")
    assert "falls back to -Oz" in explain.configured_policy()["note"]
