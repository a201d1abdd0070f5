"""The native launcher (cpp/launcher.cpp) against the Python driver it stands in front of.

driver.py is the specification. With CLANG_LLM_DRY_RUN=1 both print the command
they would run; for every argument list here the two must print the same, and the
calls a build makes all the time must take the native route.
"""

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clang_llm import driver
from conftest import BIN, clean_env

pytestmark = pytest.mark.integration


def dry(prog: str, args: list[str], cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / prog), *args], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(CLANG_LLM_DRY_RUN=1, **env))


def same(args: list[str], cwd, cxx: bool = False, **env) -> str:
    """Assert native and Python agree; return the route the launcher took."""
    prog = "clang-llm++" if cxx else "clang-llm"
    native, python = dry(prog, args, cwd, **env), dry(prog + "-py", args, cwd, **env)
    assert (native.returncode, native.stdout) == (python.returncode, python.stdout), args
    return "native" if "route native" in native.stderr else "python"


@pytest.fixture(scope="module")
def cwd(tmp_path_factory):
    d = tmp_path_factory.mktemp("launcher")
    (d / "a.c").write_text("int f(int x) { return x + 1; }\n")
    (d / "rsp").write_text("-Oz-llm -c a.c\n")
    return d


@pytest.mark.parametrize("args", [
    ["-Oz-llm", "-c", "a.c", "-o", "a.o"],                      # every compile of a build
    ["-Oz-llm", "a.c", "-o", "conftest"],                         # configure's probes
    ["-Oz-llm", "-E", "a.c"],                                     # preprocessing
    ["-Oz-llm", "a.o", "-o", "prog"],                             # linking
    ["-O2", "-c", "a.c"],                                         # pass-through
    ["--version"],
    ["-Oz-llm", "-O1", "-c", "a.c"],                              # a later -O wins
    ["-o", "-Oz-llm", "-c", "a.c"],                               # -Oz-llm as a value
    ["-Oz-llm", "-x", "assembler", "-c", "a.c"],
    ["-Oz-llm", "-flto", "-fno-lto", "-c", "a.c"],
])
def test_build_calls_take_the_native_route(args, cwd):
    assert same(args, cwd) == "native"


@pytest.mark.parametrize("args,env", [
    (["-Oz-llm=verify", "-c", "a.c"], {}),
    (["-Oz-llm=bogus", "-c", "a.c"], {}),
    (["-Oz-llm", "-emit-llvm", "-c", "a.c"], {}),
    (["-Oz-llm", "-flto", "-c", "a.c"], {}),
    (["-Oz-llm", "-fsanitize=address", "-c", "a.c"], {}),
    (["@rsp"], {}),
    (["-Oz-llm", "-c", "a.c"], {"CLANG_LLM_POLICY": "oz"}),
    (["-Oz-llm", "-c", "a.c"], {"CLANG_LLM_LOG": "/dev/null"}),
    (["-Oz-llm", "-c", "a.c"], {"CLANG_LLM_MODE": "verify"}),
    (["-Oz-llm", "-c", "a.c"], {"CLANG_LLM_CLANG": "clang-22"}),
    (["explain", "a.c"], {"CLANG_LLM_CLANG": "/nonexistent/clang"}),
])
def test_everything_else_goes_to_python(args, env, cwd):
    assert same(args, cwd, **env) == "python"


def test_cxx_launcher(cwd):
    (cwd / "b.cpp").write_text("int g() { return 2; }\n")
    assert same(["-Oz-llm", "-c", "b.cpp"], cwd, cxx=True) == "native"
    assert "clang++-22" in dry("clang-llm++", ["-Oz-llm", "-c", "b.cpp"], cwd).stdout


# Every entry of the Python driver's tables, so the C++ copies cannot drift.
@pytest.mark.parametrize("opt", sorted(driver.SEPARATE_VALUE))
def test_separate_value_options(opt, cwd):
    same([opt, "-Oz-llm", "-c", "a.c"], cwd)
    same([opt, "x", "-Oz-llm", "-c", "a.c"], cwd)


@pytest.mark.parametrize("ext", sorted(driver.SOURCE_EXT | driver.ASM_EXT | {"o", "a", "so", ""}))
def test_input_kinds(ext, cwd):
    name = f"f.{ext}" if ext else "f"
    same(["-Oz-llm", "-c", name], cwd)
    same(["-Oz-llm", "-c", f"dir.{ext}/f"], cwd)


@pytest.mark.parametrize("name", sorted(driver.NEEDS_CLANG_MIDDLE_END))
def test_options_needing_clangs_middle_end(name, cwd):
    assert same(["-Oz-llm", f"{name}=x", "-c", "a.c"], cwd) == "python"
    assert same(["-Oz-llm", name, f"-fno-{name[2:]}", "-c", "a.c"], cwd) == "native"


TOKENS = ["-Oz-llm", "-Oz-llm=verify", "-O2", "-Oz", "-O", "-c", "-E", "-M", "-fsyntax-only", "-o", "out.o",
          "a.c", "b.s", "c.S", "lib.a", "-", "--", "-x", "c", "assembler", "none", "-xc", "-I", "inc",
          "-flto", "-fno-lto", "-flto=thin", "-emit-llvm", "-Xclang", "-mllvm", "-MF", "-D", "X=1",
          "-fsanitize=address", "-fno-sanitize=address", "-Oz-llm=x", "-ofoo", "-objc", "-g", "-Wall"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=9))
def test_any_argument_list(tmp_path_factory, args):
    d = tmp_path_factory.getbasetemp()
    same(args, d)
