"""Argument rewriting over the drop-in checklist (design.md). Pure: no clang runs."""

import os

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clang_llm import driver
from clang_llm.driver import UsageError, rewrite

PLUGIN = "/opt/plugin/clang_llm_plugin.llvm22.so"
PLUGIN_FLAGS = ["-Xclang", "-disable-llvm-passes", f"-fpass-plugin={PLUGIN}"]


def rw(*args, plugin=PLUGIN, strict=False):
    return rewrite(list(args), plugin, strict=strict)


# --- without -Oz-llm everything passes through untouched ----------------------

PASS_THROUGH = [
    ["--version"], ["-v"], ["-###", "-c", "f.c"], ["-dumpversion"], ["-print-search-dirs"],
    ["-print-prog-name=ld"], ["-O2", "-c", "f.c", "-o", "f.o"], ["-E", "f.c"], ["-M", "f.c"],
    ["-x", "c", "-", "-o", "-"], ["-c", "f.c", "-o", "/dev/null"], ["f.o", "g.o", "-o", "prog", "-lm"],
    ["-Oz", "-flto", "-c", "f.c"], ["@missing.rsp"],
]


@pytest.mark.parametrize("args", PASS_THROUGH)
def test_pass_through_is_untouched(args):
    plan = rw(*args)
    assert plan.args == args and not plan.env and not plan.notes and not plan.used_plugin


# --- the basic rewrite --------------------------------------------------------

def test_compile_gets_plugin():
    from clang_llm import policy

    plan = rw("-Oz-llm", "-c", "f.c", "-o", "f.o")
    assert plan.args == ["-Oz", "-c", "f.c", "-o", "f.o", *PLUGIN_FLAGS]
    # The default back end cannot depend on the module, so the driver decides:
    # one decision per flag set, the plugin picks by the module's uwtable flag.
    assert plan.used_plugin and plan.env == policy.preset_env()
    assert plan.env[policy.PRESET_VAR] == policy.preset_decision(True)
    assert plan.env.get(policy.PRESET_NO_UNWIND_VAR, plan.env[policy.PRESET_VAR]) == policy.preset_decision(False)


def test_verify_sets_mode():
    plan = rw("-c", "f.c", "-Oz-llm=verify")
    assert plan.args == ["-c", "f.c", "-Oz", *PLUGIN_FLAGS]
    assert plan.env == {"CLANG_LLM_MODE": "verify"}


def test_unknown_mode_is_an_error():
    with pytest.raises(UsageError, match="unknown value 'fast'"):
        rw("-Oz-llm=fast", "-c", "f.c")


@pytest.mark.parametrize("args", [
    ["-S", "f.c"], ["f.c", "-o", "prog"], ["f.c", "g.c", "-c"], ["-x", "c", "-", "-c", "-o", "-"],
    ["-c", "f.i"], ["-c", "f.bc"], ["-c", "f.ll"], ["-c", "f.cpp"], ["-xc", "-c", "stdin_like"],
    ["-c", "conftest.c", "-o", "/dev/null"], ["-MD", "-MF", "f.d", "-c", "f.c"], ["-c", "f.c", "b.s"],
])
def test_codegen_inputs_use_plugin(args):
    plan = rw("-Oz-llm", *args)
    assert plan.used_plugin and plan.args[:1] == ["-Oz"] and plan.args[-3:] == PLUGIN_FLAGS


@pytest.mark.parametrize("args", [
    ["-E", "f.c"], ["-M", "f.c"], ["-MM", "f.c"], ["-fsyntax-only", "f.c"],
    ["f.o", "-o", "prog"], ["-c", "f.s"], ["-c", "f.S"], ["-x", "assembler-with-cpp", "-c", "f.x"],
    ["--version"], ["-print-search-dirs"],
])
def test_no_codegen_means_plain_oz(args):
    plan = rw("-Oz-llm", *args)
    assert plan.args == ["-Oz", *args] and not plan.used_plugin and not plan.notes


# --- the last -O flag wins ------------------------------------------------------

@pytest.mark.parametrize("later", ["-O0", "-O1", "-O2", "-O3", "-Os", "-Oz", "-Og", "-Ofast", "-O"])
def test_later_o_flag_wins(later):
    plan = rw("-Oz-llm", "-c", "f.c", later)
    assert plan.args == ["-c", "f.c", later] and not plan.used_plugin


def test_later_oz_llm_wins_and_duplicates_collapse():
    plan = rw("-O2", "-Oz-llm", "-c", "f.c", "-Oz-llm=verify")
    assert plan.args == ["-O2", "-c", "f.c", "-Oz", *PLUGIN_FLAGS]
    assert plan.env == {"CLANG_LLM_MODE": "verify"}


def test_values_of_options_are_not_flags_or_inputs():
    # "-Oz-llm" as the value of -o is a file name, and -Xclang's value is clang's business.
    plan = rw("-c", "f.c", "-o", "-Oz-llm")
    assert plan.args == ["-c", "f.c", "-o", "-Oz-llm"] and not plan.used_plugin
    plan = rw("-Oz-llm", "-Xclang", "-O0", "-c", "f.c")
    assert plan.used_plugin and plan.args[:3] == ["-Oz", "-Xclang", "-O0"]


# --- things the plugin cannot stand in for ----------------------------------------

@pytest.mark.parametrize("flag", [
    "-flto", "-flto=thin", "-fsanitize=address", "-fprofile-generate", "-fprofile-instr-generate",
    "-fprofile-use=x.profdata", "-fembed-bitcode", "-fpass-plugin=other.so",
])
def test_blockers_fall_back_to_oz_with_a_note(flag):
    plan = rw("-Oz-llm", flag, "-c", "f.c")
    assert plan.args == ["-Oz", flag, "-c", "f.c"] and not plan.used_plugin
    assert len(plan.notes) == 1 and plan.notes[0].startswith("clang-llm: warning:") and flag in plan.notes[0]
    with pytest.raises(UsageError, match="strict mode"):
        rw("-Oz-llm", flag, "-c", "f.c", strict=True)


@pytest.mark.parametrize("flags", [["-flto", "-fno-lto"], ["-fsanitize=address", "-fno-sanitize=address"],
                                   ["-flto-jobs=4"]])
def test_disabled_blockers_do_not_block(flags):
    assert rw("-Oz-llm", *flags, "-c", "f.c").used_plugin


def test_missing_plugin_falls_back():
    plan = rw("-Oz-llm", "-c", "f.c", plugin=None)
    assert plan.args == ["-Oz", "-c", "f.c"] and "not installed" in plan.notes[0]


def test_emit_llvm_is_flagged_for_two_steps():
    plan = rw("-Oz-llm", "-emit-llvm", "-c", "f.c")
    assert plan.emit_llvm and plan.used_plugin


# --- response files ---------------------------------------------------------------

def test_response_file_with_flag_is_expanded(tmp_path):
    rsp = tmp_path / "args.rsp"
    rsp.write_text('-Oz-llm -c "dir with space/f.c" -DX=\'a b\' -DY=c\\ d\n')
    plan = rw(f"@{rsp}", "-o", "f.o")
    assert plan.args == ["-Oz", "-c", "dir with space/f.c", "-DX=a b", "-DY=c d", "-o", "f.o", *PLUGIN_FLAGS]


def test_nested_response_files(tmp_path):
    inner = tmp_path / "inner.rsp"
    inner.write_text("-Oz-llm=verify\n")
    outer = tmp_path / "outer.rsp"
    outer.write_text(f"-c f.c @{inner}\n")
    plan = rw(f"@{outer}")
    assert plan.args == ["-c", "f.c", "-Oz", *PLUGIN_FLAGS] and plan.env["CLANG_LLM_MODE"] == "verify"


def test_response_file_without_flag_is_left_alone(tmp_path):
    rsp = tmp_path / "args.rsp"
    rsp.write_text("-O2 -c f.c\n")
    assert rw(f"@{rsp}").args == [f"@{rsp}"]


def test_gnu_tokenizer():
    assert driver._tokenize_gnu("a 'b c' \"d \\\" e\" f\\ g\n\th ''") == ["a", "b c", 'd " e', "f g", "h", ""]


# --- properties -------------------------------------------------------------------

ordinary = st.sampled_from([
    "-c", "-S", "-g", "-Wall", "-DFOO=1", "-Iinc", "-fPIC", "-std=c11", "-pthread", "-MD",
    "f.c", "g.c", "h.o", "-o", "out.o", "-x", "c", "-lm", "-Wl,--as-needed", "-O2", "-O0", "-Os",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(ordinary, max_size=12))
def test_property_without_flag_identity(args):
    assert rw(*args).args == args


@settings(max_examples=300, deadline=None)
@given(st.lists(ordinary, max_size=12), st.integers(min_value=0, max_value=12))
def test_property_flag_is_never_passed_to_clang(args, pos):
    args = list(args)
    pos = min(pos, len(args))
    # After "-o" (and the like) "-Oz-llm" is a file name; test_values_of_options covers that.
    assume(not (pos > 0 and args[pos - 1] in driver.SEPARATE_VALUE))
    args.insert(pos, "-Oz-llm")
    plan = rw(*args)
    assert not any(a.startswith("-Oz-llm") for a in plan.args)
    # Every original argument except -Oz-llm survives, in order.
    kept = [a for a in plan.args if a not in PLUGIN_FLAGS]
    others = [a for a in args if a != "-Oz-llm"]
    if "-Oz" in kept and "-Oz" not in others:
        kept.remove("-Oz")
    assert kept == others
    # The plugin is only ever added together with -Oz winning.
    if plan.used_plugin:
        assert plan.args[driver._scan(plan.args).last_opt] == "-Oz"


def test_recursion_guard(monkeypatch, capsys):
    monkeypatch.setenv(driver.RECURSION_GUARD, "1")
    assert driver.run(["clang-llm", "-c", "f.c"], cxx=False) == 1
    assert "recursive invocation" in capsys.readouterr().err


def test_missing_clang_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv(driver.RECURSION_GUARD, raising=False)
    monkeypatch.setenv("CLANG_LLM_CLANG", "/nonexistent/clang-22")
    assert driver.run(["clang-llm", "-c", "f.c"], cxx=False) == 127
    assert "CLANG_LLM_CLANG" in capsys.readouterr().err


def test_driver_imports_stay_light():
    # The driver runs on every compiler call; heavy imports would cost each one.
    import subprocess
    import sys

    code = "import sys, clang_llm.driver; print(' '.join(sorted(sys.modules)))"
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout.split()
    for heavy in ("numpy", "onnxruntime", "torch", "tokenizers", "clang_llm._core", "subprocess"):
        assert heavy not in mods
