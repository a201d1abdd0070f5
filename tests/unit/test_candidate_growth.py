"""Growing the candidate set without redoing everything: `validate admit` takes
in pipelines that passed the whole gate elsewhere, `labels --extend` measures
only the new candidates (where bitcode is at hand), and what reads the table
(load_labels, scores, verify orders, residual pools) treats a module not
measured under a candidate as unknown, never as a failure or a win."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from clang_llm import pipelines  # noqa: E402
from clang_llm.train import labels, model, validate  # noqa: E402
from clang_llm.train.store import pipeline_key  # noqa: E402

COLS = labels.COLUMNS


def _table(modules: dict[str, str], cands, set_hash: str):
    cols = {k: [] for k in COLS}
    for n, (h, split) in enumerate(modules.items()):
        for j, c in enumerate(cands):
            size = 100 - j % 7 + n
            row = {"module": h, "package": f"pkg{n % 3}", "split": split, "flags": "default", "candidate": c.name,
                   "image": size + 40, "ram": 0, "text": size, "unwind": 40, "data": 0, "ir_instructions": 10,
                   "error": ""}
            for k in COLS:
                cols[k].append(row[k])
    meta = {"candidate_set": set_hash, "candidates": json.dumps([c.name for c in cands]), "command": "test"}
    return pa.table(cols).replace_schema_metadata(meta)


def _fake_build(calls):
    def build(mods, store, args, cands=None, flag_sets=None):
        assert flag_sets == ["default"]
        calls.append(([m["hash"] for m in mods], [c.name for c in cands]))
        return _table({m["hash"]: m["split"] for m in mods}, cands, "")
    return build


def test_extend_measures_only_new_candidates_where_bitcode_is(monkeypatch):
    cands = pipelines.candidates()
    older = cands[:-2]
    old = _table({"a": "train", "b": "train", "c": "test"}, older, pipelines.set_hash(older))
    calls = []
    monkeypatch.setattr(labels, "build", _fake_build(calls))
    table, measured, absent = labels.extend(old, None, SimpleNamespace(), {"a": "/x/a.bc", "c": "/x/c.bc"})
    assert (measured, absent) == (4, 2)
    assert calls == [(["a", "c"], [c.name for c in cands[-2:]])]
    assert table.num_rows == 3 * len(older) + 2 * 2
    meta = table.schema.metadata
    assert meta[b"candidate_set"].decode() == pipelines.set_hash()
    assert json.loads(meta[b"extended"])[0]["pairs_measured"] == 4

    # Once b's bitcode is there, a second run fills in b alone.
    calls.clear()
    again, measured, absent = labels.extend(table, None, SimpleNamespace(), {"b": "/x/b.bc"})
    assert (measured, absent) == (2, 0) and calls == [(["b"], [c.name for c in cands[-2:]])]
    assert len(json.loads(again.schema.metadata[b"extended"])) == 2

    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "labels.parquet"
    pq.write_table(table, path)
    lab = model.load_labels(path)
    b = lab.modules.index("b")
    assert not lab.measured[b, -1] and lab.measured[b, :-2].all() and np.isnan(lab.size[b, -1])
    assert lab.scored("train") == [lab.modules.index("a")]
    assert lab.scored("train", list(range(len(older)))) == lab.rows("train")


def test_extend_refuses_a_table_for_other_pipelines(monkeypatch):
    cands = pipelines.candidates()
    monkeypatch.setattr(labels, "build", _fake_build([]))
    renamed = [cands[0], cands[1]._replace(passes=cands[1].passes + ",instcombine")]
    with pytest.raises(ValueError, match="changed"):
        labels.extend(_table({"a": "train"}, renamed, pipelines.set_hash(renamed)), None, SimpleNamespace(), {})
    gone = [*cands[:3], pipelines.Candidate("s99", "instcombine")]
    with pytest.raises(ValueError, match="no longer has"):
        labels.extend(_table({"a": "train"}, gone, pipelines.set_hash(gone)), None, SimpleNamespace(), {})


def test_unmeasured_modules_do_not_steer_orders_or_residuals():
    """d wins big on module y, but d was never measured on w and x: the cover
    must judge d on y alone, not count w and x as d's failures (-Oz)."""
    text = np.array([[100.0, 90, np.nan], [100, 90, np.nan], [100, 100, 80], [100, 95, 95]])
    measured = ~np.isnan(text)
    lab = model.Labels(list("wxyz"), ["p"] * 4, ["train"] * 4, ["oz", "b", "d"], text, measured=measured)
    order, after, used = model.coverage_order(lab)
    assert used == 2 and [lab.candidates[j] for j in order] == ["d", "b"]
    assert model.coverage_order(lab, ["b"])[2] == 4
    # A failure (row present, no size) still counts as -Oz and stays in.
    measured[0, 2] = True
    assert model.coverage_order(model.Labels(lab.modules, lab.package, lab.split, lab.candidates, text,
                                             measured=measured))[2] == 3
    order, score, used = model.fixed_ranking(lab)
    assert used == 2


def _gate_entry(c, **kw):
    return {"name": c.name, "key": pipeline_key(c.passes, c.codegen), "ok": True, "full": True,
            "suites": list(validate.SUITES), "toolchain": "T", "reasons": [], **kw}


@pytest.fixture
def admit_env(tmp_path, monkeypatch):
    new = [pipelines.Candidate("snew", "instcombine,simplifycfg"), pipelines.Candidate("snew2+mo", "sroa", True)]
    cfile = tmp_path / "next.tsv"
    cfile.write_text(pipelines.write([*pipelines.candidates(), *new], pipelines.best_fixed().name, {}))
    shipped = tmp_path / "committed"
    shipped.mkdir()
    (shipped / validate.REPORT).write_text(json.dumps({"pipelines": [{"name": "oz", "key": "k"}]}))
    added = []
    monkeypatch.setattr(validate, "toolchain_id", lambda: "T")
    monkeypatch.setattr(validate, "committed_dir", lambda: shipped)
    monkeypatch.setattr(pipelines, "add_candidates", lambda cs: added.extend(cs))
    return SimpleNamespace(new=new, cfile=cfile, shipped=shipped, added=added, report=tmp_path / "gate.json")


def test_admit_takes_fully_gated_rows_and_their_entries(admit_env):
    e = admit_env
    e.report.write_text(json.dumps({"pipelines": [_gate_entry(c) for c in e.new]}))
    assert validate.admit(e.cfile, e.report) == ["snew", "snew2+mo"]
    assert [c.name for c in e.added] == ["snew", "snew2+mo"] and all(c.validated for c in e.added)
    rep = json.loads((e.shipped / validate.REPORT).read_text())
    assert [p["name"] for p in rep["pipelines"]] == ["oz", "snew", "snew2+mo"]


@pytest.mark.parametrize("change, why", [
    ({"ok": False, "reasons": ["torture: 1 failed"]}, "excluded: torture"),
    ({"full": False}, "not a full run"),
    ({"suites": ["determinism", "torture"]}, "not a full run"),
    ({"toolchain": "other"}, "another toolchain"),
    ({"key": "0000"}, "no gate entry"),
])
def test_admit_refuses_what_the_gate_did_not_pass_here(admit_env, change, why):
    e = admit_env
    e.report.write_text(json.dumps({"pipelines": [_gate_entry(e.new[0], **change), _gate_entry(e.new[1])]}))
    with pytest.raises(validate.ValidateError, match=why):
        validate.admit(e.cfile, e.report)
    assert e.added == []


def test_admit_refuses_names_taken_and_unsafe_passes(admit_env):
    e = admit_env
    shipped = pipelines.candidates()[1]
    unsafe = pipelines.Candidate("sbad", "iroutliner")
    e.cfile.write_text(pipelines.write([*pipelines.candidates(), unsafe], pipelines.best_fixed().name, {}))
    e.report.write_text(json.dumps({"pipelines": [_gate_entry(unsafe), _gate_entry(shipped)]}))
    with pytest.raises(validate.ValidateError, match="contains iroutliner"):
        validate.admit(e.cfile, e.report)
    with pytest.raises(validate.ValidateError, match="has a candidate of that name"):
        validate.admit(e.cfile, e.report, [shipped.name])
