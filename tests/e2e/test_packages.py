"""End-to-end: real Debian source packages built with CC=clang-llm CFLAGS=-Oz-llm.

Each package goes through its own build system (CMake, plain make, autotools) and
its own test suite. Strict mode turns any fallback into a build failure, and the
decision log must account for every object the build produced, so a build that
silently bypassed the plugin cannot pass.

Sources come from `apt-get source` once and are cached by clang_llm.train.debsrc
(CLANG_LLM_SRC_CACHE); without a reachable mirror and an empty cache the tests skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from clang_llm.train import debsrc
from conftest import BIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# One package per build system, plus bzip2 (cheap, and its test target compares
# compressed output byte for byte against references).
PACKAGES = ["zlib", "lua5.4", "xz-utils", "bzip2"]


@pytest.fixture(scope="session")
def debian_sources(tmp_path_factory):
    """fresh(package, name) -> a new source tree; each package is fetched and
    extracted once per cache, then copied (skips if the package cannot be fetched)."""
    base = tmp_path_factory.mktemp("debsrc")
    unavailable: dict[str, str] = {}

    def fresh(package: str, name: str) -> Path:
        if package not in unavailable:
            try:
                debsrc.fetch(package)
            except debsrc.FetchError as e:
                lines = str(e).strip().splitlines()
                unavailable[package] = " / ".join(dict.fromkeys([lines[0], lines[-1]]))
        if package in unavailable:
            pytest.skip(f"Debian source package {package} is not available here "
                        f"(no cache in {debsrc.CACHE_DIR}, apt-get source failed): {unavailable[package]}")
        return debsrc.prepare(package, base / package / name)

    return fresh


@pytest.fixture(scope="session")
def toolchain():
    missing = [t for t in ("clang-22", "make", "cmake", "dpkg-source") if not shutil.which(t)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    if not (BIN / "clang-llm").exists():
        pytest.skip(f"clang-llm is not installed in {BIN}")


@pytest.fixture
def build_env(monkeypatch):
    """A user's environment: clang-llm on PATH, none of the developer's CLANG_LLM_* settings."""
    for key in list(os.environ):
        if key.startswith("CLANG_LLM_") and key != "CLANG_LLM_SRC_CACHE":
            monkeypatch.delenv(key)
    return {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def check_tests_pass(package: str, tree: Path, env: dict):
    result = debsrc.run_tests(package, tree, env=env)
    assert result.ok, f"{package}: test suite failed (exit {result.returncode}), see {result.log}:\n{result.tail}"
    return result


def check_every_object_decided(objects: list[Path], entries: list[dict]):
    """Every object compiled from C has at least as many log entries for its source.

    Objects and log entries meet on the source's base name (the object's STT_FILE
    symbol); counting matters because libtool compiles each file twice (PIC and not).
    """
    logged = Counter(os.path.basename(e["source"]) for e in entries)
    built = Counter(name for name in map(debsrc.object_source_name, objects)
                    if name and name.endswith(".c"))
    assert built, "no object built from C found"
    missing = {src: (n, logged[src]) for src, n in built.items() if logged[src] < n}
    assert not missing, f"objects without a plugin decision (source: objects, log entries): {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_builds_and_passes_its_tests(package, debian_sources, toolchain, build_env, tmp_path):
    tree = debian_sources(package, "llm")
    log = tmp_path / "decisions.jsonl"
    env = {**build_env, "CLANG_LLM_STRICT": "1", "CLANG_LLM_LOG": str(log)}

    res = debsrc.build(package, tree, "clang-llm", "-Oz-llm", env=env)
    check_tests_pass(package, tree, env)

    entries = read_log(log)
    assert entries, f"the plugin logged nothing: was clang-llm's -Oz-llm applied? ({res.log})"
    bad = [e for e in entries if e["fallback"] or not e["pipeline"] or e["mode"] != "top1"]
    assert not bad, f"{len(bad)} modules fell back or were not decided, e.g. {bad[0]}"
    check_every_object_decided(res.objects, entries)


def test_unlogged_build_matches_logged_build(debian_sources, toolchain, build_env, tmp_path):
    """Without a decision log the driver may decide module-independent cases itself
    (policy.preset_decision) and the plugin never starts Python; with one, the
    plugin asks the policy. Both routes must produce the same objects, byte for byte."""
    package = "lua5.4"
    logged_tree = debian_sources(package, "logged")
    log = tmp_path / "decisions.jsonl"
    logged = debsrc.build(package, logged_tree, "clang-llm", "-Oz-llm",
                          env={**build_env, "CLANG_LLM_STRICT": "1", "CLANG_LLM_LOG": str(log)})
    plain_tree = debian_sources(package, "plain")
    plain = debsrc.build(package, plain_tree, "clang-llm", "-Oz-llm", env={**build_env, "CLANG_LLM_STRICT": "1"})
    check_tests_pass(package, plain_tree, build_env)

    assert read_log(log), "the logged build wrote no decisions"
    a = {str(p.relative_to(logged_tree)): p.read_bytes() for p in logged.objects}
    b = {str(p.relative_to(plain_tree)): p.read_bytes() for p in plain.objects}
    assert a.keys() == b.keys()
    differ = sorted(k for k in a if a[k] != b[k])
    assert not differ, f"objects differ between the logged and the unlogged build: {differ}"


def test_verify_mode_is_never_larger_than_oz(debian_sources, toolchain, build_env, tmp_path):
    """-Oz-llm=verify measures clang's -Oz among its candidates and keeps the
    smallest, so no object's .text may exceed clang-22 -Oz's for the same file."""
    package = "zlib"
    ref_tree = debian_sources(package, "oz")
    ref = debsrc.build(package, ref_tree, "clang-22", "-Oz", env=build_env)

    tree = debian_sources(package, "verify")
    log = tmp_path / "decisions.jsonl"
    env = {**build_env, "CLANG_LLM_STRICT": "1", "CLANG_LLM_LOG": str(log)}
    res = debsrc.build(package, tree, "clang-llm", "-Oz-llm=verify", env=env)
    check_tests_pass(package, tree, env)

    oz = debsrc.text_sizes(ref.objects, ref_tree)
    got = debsrc.text_sizes(res.objects, tree)
    assert oz.keys() == got.keys(), f"different objects: {sorted(oz.keys() ^ got.keys())}"
    larger = {k: (oz[k], got[k]) for k in oz if got[k] > oz[k]}
    assert not larger, f"objects larger under -Oz-llm=verify than clang-22 -Oz (oz, verify): {larger}"

    entries = read_log(log)
    assert entries and all(e["mode"] == "verify" and not e["fallback"] for e in entries)
    assert all("text" in e["measured"].get("oz", {}) for e in entries), "verify mode must always measure -Oz"
    check_every_object_decided(res.objects, entries)
    print(f"{package}: .text {sum(oz.values())} (clang-22 -Oz) -> {sum(got.values())} (-Oz-llm=verify) "
          f"over {len(oz)} objects")


def test_model_policy_build_passes_its_tests(debian_sources, toolchain, build_env, tmp_path):
    """The learned policy (CLANG_LLM_POLICY=onnx, the shipped model) picks per
    module among the validated candidates; the program it builds must pass its
    own test suite, and the model, not a fallback, must have decided every module."""
    package = "lua5.4"
    tree = debian_sources(package, "onnx")
    log = tmp_path / "decisions.jsonl"
    env = {**build_env, "CLANG_LLM_STRICT": "1", "CLANG_LLM_LOG": str(log), "CLANG_LLM_POLICY": "onnx"}
    res = debsrc.build(package, tree, "clang-llm", "-Oz-llm", env=env)
    check_tests_pass(package, tree, env)

    entries = read_log(log)
    assert entries and all(e["backend"] == "onnx" and not e["fallback"] for e in entries)
    assert all(e.get("predicted") for e in entries), "the model's predictions must be logged"
    check_every_object_decided(res.objects, entries)
    chosen = Counter(e["pipeline"] for e in entries)
    print(f"{package}: {len(entries)} modules decided by the model: {dict(chosen)}")
