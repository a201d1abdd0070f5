"""The register allocator, layout, hoisting, block operation, branch, CSE and sinking knobs (pipelines.KNOBS
bits 2-1024): each changes
the code clang generates, the in-process measurement agrees with the object
clang writes, a knob leaves no trace in the next measurement, and IPRA stays off
where a callee may be preempted."""

import subprocess

import pytest

from clang_llm import _core, pipelines
from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

LUA_DEFS = ["-DLUA_COMPAT_5_3", "-DLUA_USE_LINUX"]


def unoptimised(clang, src, out, *flags):
    subprocess.run([clang, "-Oz", *flags, "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-c", str(src),
                    "-o", str(out)], check=True)
    return _core.LoadedModule(out.read_bytes(), str(out))


@pytest.fixture(scope="module")
def lua_modules(lua_sources, clang, tmp_path_factory):
    d = tmp_path_factory.mktemp("knobs")
    return [(src, unoptimised(clang, src, d / (src.stem + ".bc"), *LUA_DEFS)) for src in lua_sources[:10]]


def test_each_knob_changes_code_and_leaves_no_trace(lua_modules):
    oz = pipelines.oz_pipeline()
    first = [m.measure(oz, 0)["text"] for _, m in lua_modules]
    for bit in (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        with_knob = [m.measure(oz, bit)["text"] for _, m in lua_modules]
        assert with_knob != first, pipelines.knob_suffix(bit)
    # Every knob but the outliner and IPRA is process-wide state in LLVM:
    # after all of them, no knob must still be in force.
    for _, m in lua_modules:
        m.measure(oz, pipelines.ALL_KNOBS)
    assert [m.measure(oz, 0)["text"] for _, m in lua_modules] == first


@pytest.mark.parametrize("bits", [2, 6, 7, 11, 16, 32, 59, 64, 128, 256, 507, 512, 1024, 2043])
def test_clang_route_generates_what_was_measured(bits, lua_modules, tmp_path):
    # The plugin sets the knobs inside clang's own process: the object must be
    # the one the measurement (and so the labels) describe.
    oz = pipelines.oz_pipeline()
    env = clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=oz, CLANG_LLM_CODEGEN=str(bits))
    for src, m in lua_modules[:4]:
        obj = tmp_path / "o.o"
        run([BIN / "clang-llm", "-Oz-llm", *LUA_DEFS, "-c", src, "-o", obj], env=env)
        assert _core.object_sizes(obj.read_bytes())["text"] == m.measure(oz, bits)["text"], src.name


def test_bad_knob_bits_are_refused(lua_modules, tmp_path):
    src, m = lua_modules[0]
    with pytest.raises(ValueError, match="knobs"):
        m.measure(pipelines.oz_pipeline(), pipelines.ALL_KNOBS + 1)
    r = subprocess.run([BIN / "clang-llm", "-Oz-llm", *LUA_DEFS, "-c", str(src), "-o", str(tmp_path / "o.o")],
                       env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_POLICY="fixed",
                                     CLANG_LLM_PIPELINE=pipelines.oz_pipeline(), CLANG_LLM_CODEGEN=str(pipelines.ALL_KNOBS + 1)),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "CLANG_LLM_CODEGEN" in r.stderr


@pytest.mark.parametrize("bits,user", [(1, ["-enable-machine-outliner=never"]), (2, ["-split-spill-mode=speed"]),
                                       (8, ["-disable-block-placement=false", "-tail-merge-size=3"]),
                                       (16, ["-disable-machine-licm=false"]), (32, ["-disable-lsr=false"]),
                                       (64, ["-max-store-memcpy=0", "-max-store-memset=0"]),
                                       (128, ["-x86-br-merging-base-cost=2"]),
                                       (256, ["-disable-machine-cse=false"]), (512, ["-disable-machine-sink=false"]),
                                       (1024, ["-greedy-reverse-local-assignment=false"])])
def test_users_own_llvm_option_wins_over_a_knob(bits, user, lua_modules, tmp_path):
    # As with clang itself, an explicit -mllvm option is the user's choice: a
    # decision asking for the knob gets the user's setting (here: the knob off;
    # "speed", 3, false, 0 (the target's own limit) and 2 are LLVM's own defaults).
    oz = pipelines.oz_pipeline()
    env = clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=oz, CLANG_LLM_CODEGEN=str(bits))
    changed = 0
    for src, m in lua_modules:
        obj = tmp_path / "o.o"
        run([BIN / "clang-llm", "-Oz-llm", *LUA_DEFS, *[a for o in user for a in ("-mllvm", o)], "-c", src,
             "-o", obj], env=env)
        plain = m.measure(oz, 0)["text"]
        assert _core.object_sizes(obj.read_bytes())["text"] == plain, src.name
        changed += m.measure(oz, bits)["text"] != plain
    assert changed, "the knob changes none of these modules, so the test shows nothing"


# A caller keeps values live across calls to a small function it can see: with
# IPRA it may keep them in registers the callee does not touch.
CALLS = """
__attribute__((noinline)) int leaf(int x) { return x * 3 + 1; }
int caller(int a, int b, int c, int d) {
  int r = leaf(a);
  r += leaf(b) * c;
  r += leaf(d) * a + b;
  r ^= leaf(r + c) - d;
  return r + a + b + c + d;
}
"""


def test_ipra_only_where_no_callee_can_be_preempted(tmp_path, clang):
    src = tmp_path / "calls.c"
    src.write_text(CALLS)
    oz = pipelines.oz_pipeline()
    pie = unoptimised(clang, src, tmp_path / "pie.bc")
    assert pie.measure(oz, 4)["text"] < pie.measure(oz, 0)["text"]
    # -fPIC: leaf may be interposed at run time (and is called through the PLT),
    # so its register use says nothing about the callee that will run.
    pic = unoptimised(clang, src, tmp_path / "pic.bc", "-fPIC")
    assert pic.measure(oz, 4) == pic.measure(oz, 0)
    # A weak definition: another object's may be linked in its place.
    weak = tmp_path / "weak.c"
    weak.write_text(CALLS.replace("__attribute__((noinline))", "__attribute__((noinline, weak))"))
    w = unoptimised(clang, weak, tmp_path / "weak.bc")
    assert w.measure(oz, 4) == w.measure(oz, 0)
    # LLVM 22 aborts on x87 code under IPRA ("Access past stack top!").
    x87 = tmp_path / "x87.c"
    x87.write_text(CALLS + "long double half(long double x) { return leaf((int)x) / 2.0L; }\n")
    ld = unoptimised(clang, x87, tmp_path / "x87.bc")
    assert ld.measure(oz, 4) == ld.measure(oz, 0)
