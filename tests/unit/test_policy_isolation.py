"""Back ends that are not clang-llm's own presets (a user's .py file, the onnx
model) run in a forked child: a crash, hang or bad answer there costs a
fallback to -Oz with a one-line reason (an error under CLANG_LLM_STRICT), never
the compiler process."""

import json
import os
import time

import pytest

from clang_llm import pipelines, policy


class Module:
    """The plugin handle's surface that the policy uses."""

    route = "test"
    name = source_filename = "fake.c"

    def __init__(self):
        self.trials = []

    def content_hash(self):
        return "0123456789abcdef"

    def check(self, passes):
        return None

    def trial(self, passes):
        self.trials.append(passes)
        return None

    def ir_text(self):
        return "define void @f() {\n  ret void\n}\n"


def use_policy(monkeypatch, tmp_path, body: str):
    f = tmp_path / "mine.py"
    f.write_text(body)
    monkeypatch.setenv("CLANG_LLM_POLICY", str(f))
    return f


def fallback_of(capsys, module=None):
    d = policy.plugin_entry(module or Module())
    assert (d.name, d.passes) == ("oz", pipelines.oz_pipeline()), d.name
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("clang-llm: warning: using clang's -Oz pipeline"), err
    return d.fallback


@pytest.mark.parametrize("body, why", [
    ("import ctypes\ndef choose(m):\n    ctypes.string_at(0)\n", "crashed (SIGSEGV)"),
    ("import os, signal\ndef choose(m):\n    os.kill(os.getpid(), signal.SIGABRT)\n", "crashed (SIGABRT)"),
    ("import ctypes\nctypes.string_at(0)\n", "crashed (SIGSEGV)"),  # while loading the file
    ("import os\ndef choose(m):\n    os._exit(0)\n", "exited with status 0 without a ranking"),
    ("def choose(m):\n    raise KeyError('x')\n", "KeyError: 'x'"),
    ("def choose(m):\n    return [object()]\n", "must return a pipeline or candidate name"),
    ("def choose(m):\n    return 7\n", "TypeError: 'int' object is not iterable"),
])
def test_a_failing_user_policy_costs_a_fallback(monkeypatch, tmp_path, capsys, body, why):
    use_policy(monkeypatch, tmp_path, body)
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("CLANG_LLM_LOG", str(log))
    assert why in fallback_of(capsys)
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    with pytest.raises(policy.PolicyError, match=why.replace("(", r"\(").replace(")", r"\)")):
        policy.plugin_entry(Module())
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 2 and all(why in e["fallback"] for e in entries)


def test_a_hanging_policy_is_stopped_at_the_time_limit(monkeypatch, tmp_path, capsys):
    use_policy(monkeypatch, tmp_path, "import time\ndef choose(m):\n    time.sleep(30)\n    return 'oz'\n")
    monkeypatch.setenv("CLANG_LLM_POLICY_TIMEOUT", "0.5")
    start = time.monotonic()
    why = fallback_of(capsys)
    assert time.monotonic() - start < 5
    assert why == f"policy {os.environ['CLANG_LLM_POLICY']} gave no ranking within 0.5 s (CLANG_LLM_POLICY_TIMEOUT)"


def test_the_time_limit_must_be_a_number(monkeypatch, tmp_path, capsys):
    use_policy(monkeypatch, tmp_path, "def choose(m):\n    return 'oz'\n")
    for bad in ("soon", "nan"):
        monkeypatch.setenv("CLANG_LLM_POLICY_TIMEOUT", bad)
        assert "CLANG_LLM_POLICY_TIMEOUT must be a number of seconds" in fallback_of(capsys)
    monkeypatch.setenv("CLANG_LLM_POLICY_TIMEOUT", "0")  # no limit
    assert policy.plugin_entry(Module()).name == "oz"


def test_the_policy_runs_in_a_child_and_its_ranking_comes_back(monkeypatch, tmp_path):
    seen = tmp_path / "pid"
    name = next(c.name for c in pipelines.candidates()[1:] if c.validated)
    use_policy(monkeypatch, tmp_path,
               f"import os\ndef choose(m):\n    open({str(seen)!r}, 'w').write(str(os.getpid()))\n"
               f"    os.environ['CLANG_LLM_LEAK'] = '1'\n    return [{name!r}, 'function(instcombine)']\n")
    d = policy.plugin_entry(Module())
    assert d.name == name and d.fallback is None
    assert int(seen.read_text()) != os.getpid() and "CLANG_LLM_LEAK" not in os.environ
    # A pipeline not in the set comes back as passes and is trial-run here,
    # whatever the child claims about it.
    use_policy(monkeypatch, tmp_path, "def choose(m):\n    return 'function(instcombine)'\n")
    m = Module()
    d = policy.plugin_entry(m)
    assert (d.name, d.passes, m.trials) == ("custom", "function(instcombine)", ["function(instcombine)"])


def test_isolation_can_be_turned_off_for_debugging(monkeypatch, tmp_path):
    use_policy(monkeypatch, tmp_path, "import os\ndef choose(m):\n    os.environ['CLANG_LLM_LEAK'] = '1'\n"
                                      "    return 'oz'\n")
    monkeypatch.setenv("CLANG_LLM_POLICY_ISOLATE", "0")
    monkeypatch.delenv("CLANG_LLM_LEAK", raising=False)
    assert policy.plugin_entry(Module()).name == "oz" and os.environ.pop("CLANG_LLM_LEAK") == "1"


def test_presets_are_not_isolated(monkeypatch):
    """The built-in module-independent back ends are clang-llm's own code: they
    pay no fork (the driver usually decides them without the plugin's Python)."""
    def no_fork():
        raise AssertionError("forked")

    monkeypatch.setattr(os, "fork", no_fork)
    assert policy.plugin_entry(Module()).name == pipelines.best_fixed().name
    monkeypatch.setenv("CLANG_LLM_POLICY", "oz")
    assert policy.plugin_entry(Module()).name == "oz"


def test_the_onnx_ranking_round_trips_through_the_child(monkeypatch):
    """What the model's ranking carries (order, predictions, verify order, its
    note) survives the pipe, and the decision log keeps only the top few
    predictions and those of the candidates chosen or measured."""
    from clang_llm import ranker

    usable = [c for c in pipelines.candidates() if c.validated]

    class Model:
        last_outside = "op_indirectbr 0.6931 above the training maximum 0"

        def rank(self, text, verify=False):
            assert text.startswith("define void @f()")
            ratios = {c.name: 1 + i / 1000 for i, c in enumerate(usable)}
            return (usable, ratios, list(reversed(usable))) if verify else (usable, ratios)

    monkeypatch.setattr(ranker, "get", lambda: Model())
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    got = policy._rank("onnx", Module())
    assert list(got) == usable and got.predicted == {c.name: 1 + i / 1000 for i, c in enumerate(usable)}
    assert got.note.startswith("outside the model's training range (op_indirectbr")
    d = policy.decide(Module())
    assert d.name == usable[0].name
    assert list(d.predicted) == [c.name for c in usable[:policy.LOG_PREDICTIONS]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_prediction_is_a_policy_failure(monkeypatch, tmp_path, capsys, bad):
    from clang_llm import ranker

    usable = [c for c in pipelines.candidates() if c.validated]

    class Model:
        last_outside = None

        def rank(self, text, verify=False):
            return usable, {c.name: (bad if c is usable[3] else 1.0) for c in usable}

    monkeypatch.setattr(ranker, "get", lambda: Model())
    monkeypatch.setenv("CLANG_LLM_POLICY", "onnx")
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("CLANG_LLM_LOG", str(log))
    for isolate in ("1", "0"):
        monkeypatch.setenv("CLANG_LLM_POLICY_ISOLATE", isolate)
        assert f"non-finite sizes for 1 candidates (e.g. {usable[3].name}: {bad})" in fallback_of(capsys)
    monkeypatch.setenv("CLANG_LLM_STRICT", "1")
    with pytest.raises(policy.PolicyError, match="non-finite"):
        policy.plugin_entry(Module())
    # Strict JSON: Python's json.loads would accept a bare NaN, so parse strictly.
    for line in log.read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in the decision log"))


def test_a_crash_is_seen_at_once_though_a_grandchild_holds_the_pipe(monkeypatch, tmp_path, capsys):
    use_policy(monkeypatch, tmp_path, "import ctypes, os, time\ndef choose(m):\n"
                                      "    if os.fork() == 0:\n        time.sleep(5)\n        os._exit(0)\n"
                                      "    ctypes.string_at(0)\n")
    start = time.monotonic()
    assert "crashed (SIGSEGV)" in fallback_of(capsys)
    assert time.monotonic() - start < 3


def test_a_large_ranking_comes_back_whole(monkeypatch, tmp_path):
    """More than a pipe's buffer (64 KiB): the parent reads while the child writes."""
    use_policy(monkeypatch, tmp_path, "def choose(m):\n"
                                      "    return ['function(instcombine' + ',instcombine' * 100 + ')'] * 300\n")
    got = policy._rank(os.environ["CLANG_LLM_POLICY"], Module())
    assert len(got) == 300 and all(len(c.passes) > 1200 and not c.validated for c in got)
