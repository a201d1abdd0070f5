"""Integration with the real clang-22 / opt-22: the plugin, both routes, fallbacks."""

import json

import pytest

from clang_llm import _core, pipelines, sizes
from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

LUA_DEFS = ["-DLUA_COMPAT_5_3", "-DLUA_USE_LINUX"]


def text_size(obj_bytes: bytes) -> int:
    return _core.object_sizes(obj_bytes)["text"]


def llm(args, **env):
    return run([BIN / "clang-llm", *args], env=clean_env(CLANG_LLM_STRICT=1, **env))


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the oz back end is clang -Oz, byte for byte ---------------------------------

def test_oz_backend_is_byte_identical_on_real_code(lua_sources, clang, tmp_path):
    for src in lua_sources:
        ref, got = tmp_path / "ref.o", tmp_path / "got.o"
        run([clang, "-Oz", *LUA_DEFS, "-c", src, "-o", ref])
        llm(["-Oz-llm", *LUA_DEFS, "-c", src, "-o", got], CLANG_LLM_POLICY="oz")
        assert ref.read_bytes() == got.read_bytes(), src.name


def test_opt_route_matches_clang_route(lua_sources, clang, opt, plugin, tmp_path):
    """Same decisions from both routes, and the same object once clang generates code."""
    policy = tmp_path / "by_size.py"
    # A content-dependent choice, so agreement means both routes saw the same module.
    # Without the machine outliner: a codegen knob does not travel in opt's bitcode.
    names = [c.name for c in pipelines.candidates() if not c.machine_outliner and c.validated][:4]
    policy.write_text(
        f"NAMES = {names!r}\n"
        "def choose(m):\n    return NAMES[m.instruction_count() % len(NAMES)]\n")
    log_clang, log_opt = tmp_path / "clang.jsonl", tmp_path / "opt.jsonl"
    env = dict(CLANG_LLM_POLICY=policy)
    for src in lua_sources[:12]:
        o_clang = tmp_path / f"{src.stem}.clang.o"
        llm(["-Oz-llm", *LUA_DEFS, "-c", src, "-o", o_clang], CLANG_LLM_LOG=log_clang, **env)
        raw, optimised, o_opt = (tmp_path / f"{src.stem}.{s}" for s in ("raw.bc", "opt.bc", "opt.o"))
        run([clang, "-Oz", *LUA_DEFS, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", raw])
        run([opt, f"-load-pass-plugin={plugin}", "-passes=llm-oz", raw, "-o", optimised],
            env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_LOG=log_opt, **env))
        run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", "-c", optimised, "-o", o_opt])
        assert o_clang.read_bytes() == o_opt.read_bytes(), src.name
    a, b = read_log(log_clang), read_log(log_opt)
    assert [e["route"] for e in a] == ["clang"] * 12 and [e["route"] for e in b] == ["opt"] * 12
    assert [(e["source"], e["hash"], e["pipeline"]) for e in a] == [(e["source"], e["hash"], e["pipeline"]) for e in b]
    assert len({e["pipeline"] for e in a}) > 1, "the test policy should have made different choices"


# --- the shipped candidates ----------------------------------------------------------

@pytest.fixture(scope="module")
def lua_modules(lua_sources, clang, tmp_path_factory):
    out = tmp_path_factory.mktemp("bc")
    mods = []
    for src in lua_sources[::8]:
        bc = out / f"{src.stem}.bc"
        run([clang, "-Oz", *LUA_DEFS, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", bc])
        mods.append(_core.LoadedModule(bc.read_bytes(), str(bc)))
    return mods


@pytest.mark.parametrize("cand", pipelines.candidates(), ids=lambda c: c.name)
def test_every_candidate_parses_and_is_deterministic(cand, lua_modules):
    for m in lua_modules:
        assert m.check(cand.passes) is None
        first = m.measure(cand.passes, cand.codegen)
        assert m.measure(cand.passes, cand.codegen) == first


# --- measuring is what clang produces ------------------------------------------------

@pytest.mark.parametrize("name", ["oz", next(c.name for c in pipelines.candidates()[1:]
                                              if not c.machine_outliner and c.validated),
                                  next(c.name for c in pipelines.candidates() if c.machine_outliner and c.validated)])
def test_core_measure_equals_real_object(lua_sources, clang, tmp_path, name):
    cand = pipelines.by_name(name)
    for src in lua_sources[::4]:
        raw, obj = tmp_path / "raw.bc", tmp_path / "real.o"
        run([clang, "-Oz", *LUA_DEFS, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", raw])
        measured = _core.LoadedModule(raw.read_bytes(), str(raw)).measure(cand.passes, cand.codegen)
        llm(["-Oz-llm", *LUA_DEFS, "-c", src, "-o", obj], CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=name)
        assert measured["text"] == text_size(obj.read_bytes()), (src.name, name)


def test_machine_outliner_takes_effect(lua_sources, tmp_path):
    sizes = {}
    for outliner in ("0", "1"):  # clang's -Oz pipeline as raw text, without and with the outliner
        total = 0
        for src in lua_sources[:8]:
            obj = tmp_path / "o.o"
            llm(["-Oz-llm", *LUA_DEFS, "-c", src, "-o", obj], CLANG_LLM_POLICY="fixed",
                CLANG_LLM_PIPELINE=pipelines.oz_pipeline(), CLANG_LLM_MACHINE_OUTLINER=outliner)
            total += text_size(obj.read_bytes())
        sizes[outliner] = total
    assert sizes["1"] < sizes["0"]


# --- verify mode ------------------------------------------------------------------------

def test_verify_never_larger_and_log_matches_object(lua_sources, clang, tmp_path):
    # The guarantee is in the bytes a module adds to the program (image) and in
    # RAM; .text alone may grow where unwind entries or data shrink more.
    log = tmp_path / "verify.jsonl"
    for src in lua_sources:
        ref, got = tmp_path / "ref.o", tmp_path / "got.o"
        run([clang, "-Oz", *LUA_DEFS, "-c", src, "-o", ref])
        llm(["-Oz-llm=verify", *LUA_DEFS, "-c", src, "-o", got], CLANG_LLM_LOG=log)
        g, r = _core.object_sizes(got.read_bytes()), _core.object_sizes(ref.read_bytes())
        entry = read_log(log)[-1]
        assert entry["mode"] == "verify"
        oz, chosen = entry["measured"]["oz"], entry["measured"][entry["pipeline"]]
        assert chosen["image"] <= oz["image"] and chosen["ram"] <= oz["ram"], src.name
        # The objects are what was measured (less the imports code generation
        # added, which an object alone cannot tell from its source's).
        for m, obj in ((oz, r), (chosen, g)):
            m = sizes.object_view(m)
            assert (m["image"], m["ram"], m["text"]) == (obj["image"], obj["ram"], obj["text"]), src.name


# --- fallbacks: never break a build, fatal under strict mode -----------------------------

FALLBACKS = {
    "bad pipeline": dict(CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE="instcombine,no-such-pass"),
    "aborting pipeline": dict(CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE="function(licm)"),
    "unknown back end": dict(CLANG_LLM_POLICY="no-such-backend"),
    "no pipeline given": dict(CLANG_LLM_POLICY="fixed"),
}


@pytest.fixture
def raising_policy(tmp_path):
    p = tmp_path / "raising.py"
    p.write_text("def choose(m):\n    raise RuntimeError('policy exploded')\n")
    return p


@pytest.fixture
def corrupt_pipeline_file(tmp_path):
    p = tmp_path / "corrupt.pipeline"
    p.write_bytes(b"\x89\xff\x00garbage\xfe" * 20)
    return p


@pytest.mark.parametrize("case", [*FALLBACKS, "raising policy", "corrupt pipeline file"])
def test_fallback_to_oz(case, lua_sources, clang, opt, plugin, tmp_path, raising_policy, corrupt_pipeline_file):
    settings = FALLBACKS.get(case) or (
        dict(CLANG_LLM_POLICY=raising_policy) if case == "raising policy"
        else dict(CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE_FILE=corrupt_pipeline_file))
    src = lua_sources[0]
    ref, got = tmp_path / "ref.o", tmp_path / "got.o"
    run([clang, "-Oz", *LUA_DEFS, "-c", src, "-o", ref])
    log = tmp_path / "log.jsonl"
    r = run([BIN / "clang-llm", "-Oz-llm", *LUA_DEFS, "-c", src, "-o", got],
            env=clean_env(CLANG_LLM_LOG=log, **settings))
    warnings = [line for line in r.stderr.decode().splitlines() if line.startswith("clang-llm: warning:")]
    assert len(warnings) == 1 and "-Oz pipeline" in warnings[0], r.stderr
    assert got.read_bytes() == ref.read_bytes()
    assert read_log(log)[-1]["fallback"]

    strict = run([BIN / "clang-llm", "-Oz-llm", *LUA_DEFS, "-c", src, "-o", got],
                 env=clean_env(CLANG_LLM_STRICT=1, **settings), check=False)
    assert strict.returncode != 0 and b"clang-llm" in strict.stderr

    raw = tmp_path / "raw.bc"
    run([clang, "-Oz", *LUA_DEFS, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", src, "-o", raw])
    r = run([opt, f"-load-pass-plugin={plugin}", "-passes=llm-oz", raw, "-o", tmp_path / "x.bc"],
            env=clean_env(**settings))
    assert b"clang-llm: warning:" in r.stderr
    strict = run([opt, f"-load-pass-plugin={plugin}", "-passes=llm-oz", raw, "-o", tmp_path / "x.bc"],
                 env=clean_env(CLANG_LLM_STRICT=1, **settings), check=False)
    assert strict.returncode != 0


def test_plugin_needs_no_environment(clang, plugin, tmp_path):
    """No PATH to the venv, no PYTHONPATH: the plugin finds its own Python and package."""
    src = tmp_path / "f.c"
    src.write_text("int f(int x) { return x * 3 + 1; }\n")
    log = tmp_path / "log.jsonl"
    r = run([clang, "-Oz", "-Xclang", "-disable-llvm-passes", f"-fpass-plugin={plugin}", "-c", src,
             "-o", tmp_path / "f.o"],
            env={"PATH": "/usr/bin:/bin", "CLANG_LLM_STRICT": "1", "CLANG_LLM_LOG": str(log)})
    assert r.stderr == b""
    assert read_log(log)[0]["fallback"] is None
