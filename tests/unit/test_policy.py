"""The policy's decision rules and the candidate data, with a fake module handle."""

import json

import pytest

from clang_llm import pipelines, policy


class FakeModule:
    """Stands in for the plugin's handle: sizes per pipeline name are given."""

    route = "test"
    name = source_filename = "fake.c"

    def __init__(self, sizes=None, broken=(), trial_fails=()):
        self.sizes, self.broken, self.trial_fails = sizes or {}, set(broken), set(trial_fails)
        self.measured, self.trials = [], []

    def content_hash(self):
        return "0123456789abcdef"

    def check(self, passes):
        return "unknown pass" if "no-such-pass" in passes else None

    def trial(self, passes):
        self.trials.append(passes)
        return "LLVM ERROR: boom" if passes in self.trial_fails else None

    def measure(self, passes, codegen=0):
        cand = pipelines.find(passes, codegen)
        name = cand.name if cand else passes
        self.measured.append(name)
        if name in self.broken:
            raise RuntimeError(f"{name} failed")
        size = self.sizes.get(name, 100)
        # A number is the image (and .text); a dict gives the fields it names.
        out = {"image": size, "ram": 0, "text": size, "data": 0, "ir_instructions": 1}
        return {**out, **size} if isinstance(size, dict) else out


# --- the candidate data ----------------------------------------------------------

def test_candidates_start_with_clangs_oz():
    cands = pipelines.candidates()
    assert cands[0].name == "oz" and cands[0].passes == pipelines.oz_pipeline() and cands[0].validated
    assert len({c.name for c in cands}) == len(cands)
    assert len({(c.passes, c.codegen) for c in cands}) == len(cands)
    assert pipelines.best_fixed() in cands


def test_tsv_round_trip():
    cands = list(pipelines.candidates())
    text = pipelines.write(cands, pipelines.best_fixed().name, {"k": "v"})
    meta, back = pipelines.parse(text)
    assert list(back) == cands and meta["best_fixed"] == pipelines.best_fixed().name


@pytest.mark.parametrize("text, msg", [
    ("#format\t9\nname\tmachine_outliner\tvalidated\tnote\tpasses\n", "format"),
    ("#format\t1\noz\t0\t1\tonly four\n", "fields"),
    ("#format\t1\noz\t2048\t1\tnote\tpasses\n", "knob bits 0-2047"),
    ("#format\t1\noz\tmo\t1\tnote\tpasses\n", "knob bits 0-2047"),
    ("#format\t1\noz\t1\t2\tnote\tpasses\n", "0 or 1"),
])
def test_tsv_rejects_bad_files(text, msg):
    with pytest.raises(ValueError, match=msg):
        pipelines.parse(text)


def test_codegen_column_holds_knob_bits_and_reads_older_files():
    # Files from before the register allocator knobs name the column
    # machine_outliner and hold 0/1: the same bits, the same set hash.
    old = "#format\t1\nname\tmachine_outliner\tvalidated\tnote\tpasses\noz\t0\t1\t\tp\nx+mo\t1\t1\t\tq\n"
    _, rows = pipelines.parse(old)
    assert [(c.codegen, c.machine_outliner) for c in rows] == [(0, False), (1, True)]
    new = pipelines.write([*rows, pipelines.Candidate("y+mo+ss+ipra", "q", 7)], "oz", {})
    assert "\nname\tcodegen\tvalidated\tnote\tpasses\n" in new
    _, back = pipelines.parse(new)
    assert back[2].codegen == 7 and back[2].machine_outliner
    assert pipelines.set_hash(back[:2]) == pipelines.set_hash(rows)
    assert pipelines.knob_suffix(7) == "+mo+ss+ipra" and pipelines.knob_suffix(6) == "+ss+ipra"
    assert pipelines.knob_suffix(0) == ""
    assert pipelines.knob_suffix(59) == "+mo+ss+sl+nlicm+nlsr"
    assert pipelines.knob_suffix(507) == "+mo+ss+sl+nlicm+nlsr+rep+sbr+nmcse"
    assert pipelines.knob_suffix(1536) == "+nms+rla"
    # True (the outliner, as older callers pass it) is bit 1.
    assert pipelines.Candidate("z", "q", True).codegen == 1


def test_sink_common_insts_changes_only_the_first_simplifycfg():
    oz = pipelines.oz_pipeline()
    sink = pipelines.with_sink_common_insts(oz)
    assert len(sink) == len(oz) - 3
    first = sink.index("simplifycfg<")
    assert "no-sink-common-insts" not in sink[first:sink.index(">", first)]
    assert sink.count("no-sink-common-insts") == oz.count("no-sink-common-insts") - 1


# --- back ends -------------------------------------------------------------------

def test_default_is_best_fixed():
    d = policy.plugin_entry(FakeModule())
    assert d.name == pipelines.best_fixed().name and d.fallback is None


def test_oz_backend(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_POLICY", "oz")
    d = policy.plugin_entry(FakeModule())
    assert (d.name, d.passes, d.codegen) == ("oz", pipelines.oz_pipeline(), False)


def test_fixed_by_name_and_by_text(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")
    mo = next(c for c in pipelines.candidates() if c.machine_outliner and c.validated)
    monkeypatch.setenv("CLANG_LLM_PIPELINE", mo.name)
    d = policy.plugin_entry(FakeModule())
    assert d.name == mo.name and d.machine_outliner
    monkeypatch.setenv("CLANG_LLM_PIPELINE", "function(instcombine)")
    m = FakeModule()
    d = policy.plugin_entry(m)
    assert (d.name, d.passes) == ("fixed", "function(instcombine)")
    assert m.trials == ["function(instcombine)"]  # untrusted: trial-run first


def test_fixed_from_file(monkeypatch, tmp_path):
    f = tmp_path / "p.txt"
    name = pipelines.candidates()[-1].name
    f.write_text(f"  {name}\n")
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")
    monkeypatch.setenv("CLANG_LLM_PIPELINE_FILE", str(f))
    assert policy.plugin_entry(FakeModule()).name == name


def test_user_policy_file(monkeypatch, tmp_path):
    f = tmp_path / "mine.py"
    name = next(c.name for c in pipelines.candidates()[1:] if c.validated)
    f.write_text(f"def choose(m):\n    return [{name!r}, 'oz']\n")
    monkeypatch.setenv("CLANG_LLM_POLICY", str(f))
    assert policy.plugin_entry(FakeModule()).name == name


# --- fallbacks ----------------------------------------------------------------------

@pytest.mark.parametrize("env, why", [
    ({"CLANG_LLM_POLICY": "nope"}, "unknown policy back end"),
    ({"CLANG_LLM_POLICY": "fixed"}, "needs CLANG_LLM_PIPELINE"),
    ({"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE": "no-such-pass"}, "does not parse"),
    ({"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE": "   "}, "empty"),
    ({"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE_FILE": "/nonexistent"}, "cannot read"),
    ({"CLANG_LLM_MODE": "verify", "CLANG_LLM_VERIFY_K": "x"}, "integer"),
])
def test_fallback_and_strict(monkeypatch, capsys, tmp_path, env, why):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("CLANG_LLM_LOG", str(log))
    d = policy.plugin_entry(FakeModule())
    assert (d.name, d.passes) == ("oz", pipelines.oz_pipeline()) and why in d.fallback
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("clang-llm: warning:") and why in err[0]
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    with pytest.raises(Exception, match=why):
        policy.plugin_entry(FakeModule())
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 2 and all(why in e["fallback"] for e in entries)


def test_trial_failure_falls_back(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")
    monkeypatch.setenv("CLANG_LLM_PIPELINE", "function(licm)")
    d = policy.plugin_entry(FakeModule(trial_fails={"function(licm)"}))
    assert d.name == "oz" and "LLVM ERROR: boom" in d.fallback


# --- verify mode ----------------------------------------------------------------------

def names(k):
    return [c.name for c in pipelines.verify_order()][:k]


def test_verify_measures_the_verify_order_not_the_next_best_singles(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    monkeypatch.setenv("CLANG_LLM_VERIFY_K", "2")
    m = FakeModule(sizes={"oz": 100})
    policy.plugin_entry(m)
    order = pipelines.verify_order()
    assert sorted(m.measured) == sorted(["oz", order[0].name, order[1].name])
    assert len(order) == sum(c.validated for c in pipelines.candidates()) - 1 and pipelines.by_name("oz") not in order


def test_an_excluded_candidate_is_never_ranked_or_measured(monkeypatch):
    """Candidates marked unvalidated after they were found to miscompile (s19+mo:
    zlib; every candidate with iroutliner) stay in the file, so label tables and
    models keep their shape, but no ranking back end may choose or measure them."""
    excluded = [c for c in pipelines.candidates() if not c.validated]
    assert "s19+mo" in {c.name for c in excluded}
    assert {c.name for c in excluded} == {c.name for c in pipelines.candidates() if pipelines.unsafe_passes(c.passes)}
    assert all(c.note.startswith("EXCLUDED") for c in excluded)
    for c in excluded:
        assert c not in policy._best_fixed(None) and c not in pipelines.verify_order()
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    assert not set(excluded) & set(policy._best_fixed(None).verify)

    from clang_llm import ranker

    class Everything:
        last_outside = None

        def rank(self, text, verify=False):  # ranks the excluded one first
            order = [excluded[0], *(c for c in pipelines.candidates() if c != excluded[0])]
            return order, {}, order[1:] + order[:1]

    monkeypatch.setattr(ranker, "get", lambda: Everything())
    monkeypatch.setattr(FakeModule, "ir_text", lambda self: "", raising=False)
    got = policy._onnx(FakeModule())
    assert not set(excluded) & (set(got) | set(got.verify))
    assert len(got) == len(pipelines.candidates()) - len(excluded)
    assert got.note is None
    Everything.last_outside = "op_indirectbr 0.6931 above the training maximum 0"
    assert policy._onnx(FakeModule()).note.startswith("outside the model's training range (op_indirectbr")


def test_unsafe_passes_are_found_by_name():
    assert pipelines.unsafe_passes("function(instcombine),iroutliner") == ["iroutliner"]
    assert pipelines.unsafe_passes("cgscc(devirt<4>(inline)),iroutliner,mergefunc") == ["iroutliner"]
    assert pipelines.unsafe_passes("module(iroutliner)") == ["iroutliner"]
    assert pipelines.unsafe_passes("function(instcombine),mergefunc") == []
    assert pipelines.unsafe_passes(pipelines.oz_pipeline()) == []


def test_a_pipeline_with_an_unsafe_pass_is_refused_even_when_named(monkeypatch, capsys):
    """iroutliner miscompiles in LLVM 22: a user who asks for it gets clang's
    -Oz pipeline and the reason (an error in strict mode), never the pass."""
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")
    monkeypatch.setenv("CLANG_LLM_PIPELINE", "s01+mo")  # shipped once, excluded since
    m = FakeModule()
    d = policy.plugin_entry(m)
    assert d.name == "oz" and d.fallback and "contains iroutliner, which miscompiles in LLVM 22" in d.fallback
    assert m.trials == []  # refused before any trial run
    monkeypatch.setenv("CLANG_LLM_PIPELINE", pipelines.oz_pipeline() + ",iroutliner")
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    with pytest.raises(policy.PolicyError, match="contains iroutliner, which miscompiles in LLVM 22"):
        policy.plugin_entry(FakeModule())


def test_a_nondeterministic_pass_is_refused_with_its_own_reason(monkeypatch):
    """gvn-sink does not miscompile but makes LLVM 22's output vary from run
    to run; the one-line reason says that, not "miscompiles"."""
    monkeypatch.setenv("CLANG_LLM_POLICY", "fixed")
    monkeypatch.setenv("CLANG_LLM_PIPELINE", pipelines.oz_pipeline() + ",function(gvn-sink)")
    d = policy.plugin_entry(FakeModule())
    assert d.name == "oz" and "contains gvn-sink, which is not deterministic in LLVM 22" in d.fallback
    # Only the pass itself: gvn and a name that merely contains it are fine.
    assert pipelines.unsafe_passes("function(gvn<>,gvn-hoist)") == []
    assert not any(pipelines.unsafe_passes(c.passes) for c in pipelines.candidates() if c.validated)


def test_verify_order_header(monkeypatch):
    meta, cands = pipelines._load()
    best = pipelines.best_fixed().name
    others = [c.name for c in cands if c.name not in ("oz", best) and c.validated]

    def load(text):
        pipelines._memo.clear()
        monkeypatch.setattr(pipelines, "_data", lambda name: text if name == "candidates.tsv" else real(name))
        return pipelines.verify_order()

    real = pipelines._data
    try:
        got = load(pipelines.write(list(cands), best, {}, verify=[others[1], others[0]]))
        # The header's order first, then the other validated candidates in file order.
        rest = [c.name for c in cands if c.name not in ("oz", others[0], others[1]) and c.validated]
        assert [c.name for c in got[:3]] == [others[1], others[0], rest[0]]
        assert len(got) == sum(c.validated for c in cands) - 1
        assert load(pipelines.write(list(cands), best, {}))[0].name == best  # no order: the default first
        with pytest.raises(ValueError, match="verify_order names nope"):
            load(pipelines.write(list(cands), best, {}, verify=["nope"]))
    finally:
        monkeypatch.undo()
        pipelines._memo.clear()


def test_verify_keeps_the_smallest(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    monkeypatch.setenv("CLANG_LLM_VERIFY_K", "3")
    top = names(3)
    m = FakeModule(sizes={"oz": 100, top[0]: 99, top[1]: 90, top[2]: 95})
    d = policy.plugin_entry(m)
    assert d.name == top[1] and sorted(m.measured) == sorted(["oz", *top])
    assert d.measured[top[1]]["text"] == 90


def test_verify_compares_image_bytes_not_text(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    monkeypatch.setenv("CLANG_LLM_VERIFY_K", "2")
    a, b = names(2)
    # a saves .text but its outlined functions' unwind entries cost more.
    m = FakeModule(sizes={"oz": {"image": 1000, "text": 800}, a: {"image": 1010, "text": 760},
                          b: {"image": 990, "text": 790}})
    d = policy.plugin_entry(m)
    assert d.name == b and d.measured[a] == {"image": 1010, "ram": 0, "text": 760}


def test_verify_never_takes_more_ram(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    monkeypatch.setenv("CLANG_LLM_VERIFY_K", "2")
    a, b = names(2)
    # a's image is smallest, but it keeps a table writable: RAM a device pays for.
    m = FakeModule(sizes={"oz": {"image": 1000, "ram": 64}, a: {"image": 900, "ram": 4160},
                          b: {"image": 1001, "ram": 0}})
    assert policy.plugin_entry(m).name == "oz"
    m = FakeModule(sizes={"oz": {"image": 1000, "ram": 64}, a: {"image": 900, "ram": 4160},
                          b: {"image": 950, "ram": 64}})
    assert policy.plugin_entry(m).name == b


def test_the_default_follows_the_modules_flag_set(monkeypatch):
    cands = pipelines.candidates()
    others = [c.name for c in cands if c.validated and c.name != "oz"]
    text = pipelines.write(list(cands), others[0], {}, per_flag_set={"best_fixed_no_unwind": others[1]})
    real = pipelines._data
    monkeypatch.setattr(pipelines, "_data", lambda name: text if name == "candidates.tsv" else real(name))
    pipelines._memo.clear()
    try:
        with_tables = FakeModule()
        bare = FakeModule()
        bare.unwind_tables = False
        assert policy.plugin_entry(with_tables).name == others[0]
        assert policy.plugin_entry(bare).name == others[1]
        env = policy.preset_env()
        assert env[policy.PRESET_VAR] == f"{pipelines.by_name(others[0]).codegen}:{pipelines.by_name(others[0]).passes}"
        assert env[policy.PRESET_NO_UNWIND_VAR].endswith(pipelines.by_name(others[1]).passes)
    finally:
        monkeypatch.undo()
        pipelines._memo.clear()
    # The shipped file: where both flag sets have one default, one preset.
    assert set(policy.preset_env()) <= {policy.PRESET_VAR, policy.PRESET_NO_UNWIND_VAR}


def test_verify_ties_keep_oz(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    m = FakeModule(sizes={"oz": 100})  # everything measures 100
    assert policy.plugin_entry(m).name == "oz"


def test_verify_failing_candidate_costs_only_itself(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    monkeypatch.setenv("CLANG_LLM_VERIFY_K", "2")
    a, b = names(2)
    d = policy.plugin_entry(FakeModule(sizes={"oz": 100, a: 50, b: 80}, broken={a}))
    assert d.name == b and "error" in d.measured[a]


def test_verify_without_oz_measurement_falls_back(monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODE", "verify")
    d = policy.plugin_entry(FakeModule(sizes={}, broken={"oz"}))
    assert d.name == "oz" and "could not measure" in d.fallback


def test_log_fields(monkeypatch, tmp_path):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("CLANG_LLM_LOG", str(log))
    policy.plugin_entry(FakeModule())
    e = json.loads(log.read_text())
    assert {"source", "hash", "backend", "pipeline", "fallback", "policy_ms", "route", "mode"} <= set(e)
    assert e["hash"] == "0123456789abcdef" and e["policy_ms"] >= 0


# --- decisions the driver can make for the plugin --------------------------------------

def test_preset_for_module_independent_backends(monkeypatch):
    best = pipelines.best_fixed()
    assert policy.preset_decision() == f"{best.codegen}:{best.passes}"
    monkeypatch.setenv("CLANG_LLM_POLICY", "oz")
    assert policy.preset_decision() == "0:" + pipelines.oz_pipeline()


@pytest.mark.parametrize("env", [
    {"CLANG_LLM_MODE": "verify"},
    {"CLANG_LLM_LOG": "/tmp/x.jsonl"},
    {"CLANG_LLM_POLICY": "/some/policy.py"},
    {"CLANG_LLM_POLICY": "no-such-backend"},
    {"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE": "function(instcombine)"},  # unvalidated: needs a trial
    {"CLANG_LLM_POLICY": "fixed"},
])
def test_no_preset_when_the_plugin_must_decide(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert policy.preset_decision() is None


def test_shipped_candidates_agree_with_the_gate_report():
    """A candidate may be chosen only if the committed gate report has a full
    verdict (every suite, no test limit) that it passed, for exactly its passes
    and knobs; an excluded row must have a failing verdict or say why it was
    excluded after the gate."""
    import json

    from clang_llm.train import committed_dir, validate

    report = json.loads((committed_dir() / validate.REPORT).read_text())
    by_name = {e["name"]: e for e in report["pipelines"]}
    for c in pipelines.candidates():
        entry = by_name.get(c.name)
        assert entry is not None, f"{c.name} has no entry in {validate.REPORT}"
        assert entry["key"] == validate.pipeline_key(c.passes, c.codegen), c.name
        assert entry["full"] and set(entry["suites"]) == set(validate.SUITES), (c.name, entry["suites"])
        if c.validated:
            assert entry["ok"], (c.name, entry["reasons"])
        else:
            assert not entry["ok"] or c.note.startswith("EXCLUDED"), c.name


def test_the_model_leaves_modules_without_unwind_tables_to_their_default(monkeypatch):
    # The model learned from modules with unwind tables; without them it is not
    # asked (no model file is even read), the flag set's default is used.
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    monkeypatch.setenv("CLANG_LLM_POLICY_ISOLATE", "0")
    monkeypatch.setenv("CLANG_LLM_MODEL", "/nonexistent/model.onnx")
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    bare = FakeModule()
    bare.unwind_tables = False
    d = policy.decide(bare)
    assert d.name == pipelines.best_fixed("no-unwind").name and "no unwind tables" in d.note
