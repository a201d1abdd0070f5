"""`python -m clang_llm --fingerprint` is ccache's compiler check (README): it must
change with everything that changes the code a compile writes.

Issue 28: CLANG_LLM_PIPELINE, CLANG_LLM_MODE=verify, CLANG_LLM_VERIFY_K and
CLANG_LLM_MODEL (path or content) left it unchanged, so ccache served objects
built with other settings.
"""

import ast
import os
import re
import stat
from pathlib import Path

import pytest

from clang_llm import __main__ as cli

ROOT = Path(__file__).resolve().parents[2]
VAR = re.compile(r"\bCLANG_LLM_[A-Z0-9_]+\b")


def _documented() -> set[str]:
    """The variables the policy's docstring and the README's tables document."""
    doc = ast.get_docstring(ast.parse((ROOT / "python/clang_llm/policy.py").read_text()))
    names = set(VAR.findall(doc))
    readme = ROOT / "README.md"
    if readme.is_file():
        for line in readme.read_text().splitlines():
            if line.startswith("|"):
                names |= set(VAR.findall(line))
    return names


def _read_by_the_sources() -> set[str]:
    """Variable names as string literals in the compile-time code (train/ is the data engine)."""
    names = set()
    for path in [*(ROOT / "python/clang_llm").glob("*.py"), *(ROOT / "cpp").glob("*.cpp"), *(ROOT / "cpp").glob("*.h")]:
        names |= set(re.findall(r"[\"'](CLANG_LLM_[A-Z0-9_]+)[\"']", path.read_text()))
    return names


def test_every_documented_or_read_variable_is_classified():
    documented = _documented()
    assert {"CLANG_LLM_POLICY", "CLANG_LLM_MODEL", "CLANG_LLM_PIPELINE", "CLANG_LLM_MODE",
            "CLANG_LLM_VERIFY_K"} <= documented, documented
    missing = (documented | _read_by_the_sources()) - set(cli.SETTINGS)
    assert not missing, f"add these to clang_llm.__main__.SETTINGS (and the fingerprint): {sorted(missing)}"


@pytest.fixture
def files(tmp_path):
    exe_a, exe_b = tmp_path / "clang-a", tmp_path / "clang-b"
    exe_a.write_text("#!/bin/sh\n")
    exe_b.write_text("#!/bin/sh\nexit 0\n")
    for exe in (exe_a, exe_b):
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "m1").mkdir()
    (tmp_path / "m2").mkdir()
    for d in ("m1", "m2"):
        (tmp_path / d / "model.onnx").write_bytes(b"model")
        (tmp_path / d / "tokenizer.json").write_text("{}")
    (tmp_path / "p.pipeline").write_text("function(instcombine)")
    (tmp_path / "mine.py").write_text("def choose(m):\n    return 'oz'\n")
    return tmp_path


# Two settings for each variable that changes the output, and for those naming a
# file, the file whose contents must count too.
def samples(t: Path) -> dict[str, tuple[str, str, Path | None]]:
    return {
        "CLANG_LLM_POLICY": (str(t / "mine.py"), "onnx", t / "mine.py"),
        "CLANG_LLM_MODEL": (str(t / "m1" / "model.onnx"), str(t / "m2" / "model.onnx"), t / "m1" / "model.onnx"),
        "CLANG_LLM_PIPELINE": ("oz", "s05", None),
        "CLANG_LLM_PIPELINE_FILE": (str(t / "p.pipeline"), str(t / "missing.pipeline"), t / "p.pipeline"),
        "CLANG_LLM_CODEGEN": ("1", "3", None),
        "CLANG_LLM_MACHINE_OUTLINER": ("0", "1", None),
        "CLANG_LLM_MODE": ("verify", "", None),
        "CLANG_LLM_VERIFY_K": ("2", "8", None),
        "CLANG_LLM_POLICY_TIMEOUT": ("0", "5", None),
        "CLANG_LLM_PRESET_DECISION": ("0:function(sroa)", "1:function(sroa)", None),
        "CLANG_LLM_PRESET_DECISION_NO_UNWIND": ("0:function(sroa)", "1:function(sroa)", None),
        "CLANG_LLM_PYTHON": ("/usr/bin/python3", "/opt/python", None),
        "CLANG_LLM_DRY_RUN": ("1", "", None),
        "CLANG_LLM_CLANG": (str(t / "clang-a"), str(t / "clang-b"), t / "clang-a"),
        "CLANG_LLM_CLANGXX": (str(t / "clang-a"), str(t / "clang-b"), t / "clang-a"),
    }


def test_every_variable_that_changes_output_changes_the_fingerprint(files, monkeypatch):
    cases = samples(files)
    output_vars = {name for name, kind in cli.SETTINGS.items() if kind}
    missing = output_vars - set(cases)
    assert not missing, f"give every output-changing variable two sample values here: {sorted(missing)}"
    base = cli.fingerprint()
    for name in sorted(output_vars):
        a, b, path = cases[name]
        monkeypatch.setenv(name, a)
        fa = cli.fingerprint()
        assert fa != base, f"setting {name} does not change the fingerprint"
        monkeypatch.setenv(name, b)
        assert cli.fingerprint() != fa, f"{name}: {a!r} and {b!r} give one fingerprint"
        if path is not None:
            monkeypatch.setenv(name, a)
            old = path.read_bytes()
            path.write_bytes(old + b"\n# changed\n")
            try:
                assert cli.fingerprint() != fa, f"{name}: the contents of {path.name} do not count"
            finally:
                path.write_bytes(old)
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        monkeypatch.delenv(name)
        assert cli.fingerprint() == base


def test_the_tokenizer_beside_a_model_counts(files, monkeypatch):
    monkeypatch.setenv("CLANG_LLM_MODEL", str(files / "m1" / "model.onnx"))
    before = cli.fingerprint()
    (files / "m1" / "tokenizer.json").write_text('{"v": 2}')
    assert cli.fingerprint() != before


def test_settings_without_effect_on_the_output_keep_the_cache_shared(files, monkeypatch):
    base = cli.fingerprint()
    for name, kind in cli.SETTINGS.items():
        if kind is None:
            monkeypatch.setenv(name, str(files / "x"))
    assert cli.fingerprint() == base


def test_the_package_files_include_the_plugin_policy_and_data():
    names = dict(cli._package_files())
    from clang_llm import _paths

    for name in (_paths.PLUGIN_NAME, "policy.py", "pipelines.py", "ranker.py", "data/candidates.tsv",
                 "data/model.onnx", "data/tokenizer.json"):
        assert name in names, sorted(names)
    # Every module of the package, not a list that a new module can slip past.
    for path in (ROOT / "python/clang_llm").glob("*.py"):
        assert path.name in names
