"""Installed as users install it: from a wheel into a fresh venv, and behind ccache."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import BIN, ROOT, clean_env, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # Reuses build/<wheel tag> from the editable install, so this is an incremental build.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", ROOT], timeout=900)
    (whl,) = (tmp / "dist").glob("clang_llm-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", whl], timeout=600)
    return venv


def test_wheel_carries_no_training_tables(wheel_venv):
    # pyproject's wheel.exclude: the data engine's tables stay in the checkout.
    (pkg,) = wheel_venv.glob("lib/python3*/site-packages/clang_llm")
    assert (pkg / "data" / "candidates.tsv").is_file()
    assert not (pkg / "train" / "data").exists()


def test_wheel_plugin_works_with_no_environment(wheel_venv, tmp_path):
    plugin = run([wheel_venv / "bin" / "python", "-m", "clang_llm", "--plugin-path"]).stdout.decode().strip()
    assert plugin.startswith(str(wheel_venv)), plugin
    src = tmp_path / "f.c"
    src.write_text("int g(int *p, int n) { int s = 0; for (int i = 0; i < n; i++) s += p[i]; return s; }\n")
    log = tmp_path / "log.jsonl"
    env = {"PATH": "/usr/bin:/bin", "CLANG_LLM_STRICT": "1", "CLANG_LLM_LOG": str(log)}
    r = run(["clang-22", "-Oz", "-Xclang", "-disable-llvm-passes", f"-fpass-plugin={plugin}", "-c", src,
             "-o", tmp_path / "f.o"], env=env)
    assert r.stderr == b""
    r = run(["opt-22", f"-load-pass-plugin={plugin}", "-passes=llm-oz", "-disable-output", tmp_path / "f.o"],
            env=env, check=False)  # an object is not IR: opt must refuse it without our help
    assert r.returncode != 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["route"] for e in entries] == ["clang"] and entries[0]["fallback"] is None
    # The console script from the wheel drives the same plugin.
    run([wheel_venv / "bin" / "clang-llm", "-Oz-llm", "-c", src, "-o", tmp_path / "g.o"], env=env)
    assert len(log.read_text().splitlines()) == 2


@pytest.mark.skipif(not shutil.which("ccache"), reason="ccache is not installed (scripts/setup.sh installs it)")
def test_ccache_in_front(tmp_path):
    src = tmp_path / "f.c"
    src.write_text("int h(int x) { return x * x + 7; }\n")
    fp = run([BIN / "python", "-m", "clang_llm", "--fingerprint"]).stdout.decode().strip()
    env = clean_env(CCACHE_DIR=tmp_path / "cache", CCACHE_COMPILERCHECK=f"string:{fp}", CLANG_LLM_STRICT=1,
                    CLANG_LLM_LOG=tmp_path / "log.jsonl")
    for i in range(2):
        run(["ccache", BIN / "clang-llm", "-Oz-llm", "-c", src, "-o", tmp_path / f"f{i}.o"], env=env)
    assert (tmp_path / "f0.o").read_bytes() == (tmp_path / "f1.o").read_bytes()
    stats = subprocess.run(["ccache", "--print-stats"], env=env, capture_output=True, text=True).stdout
    hits = sum(int(line.split()[-1]) for line in stats.splitlines()
               if line.split()[0] in ("direct_cache_hit", "preprocessed_cache_hit"))
    assert hits == 1, stats
    # Only the miss reached the compiler (and so the plugin).
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
