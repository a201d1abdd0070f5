import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # the venv's bin: clang-llm lives next to python
ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra) -> dict:
    """The environment a user's build would have: no clang-llm settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLANG_LLM_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env=None, check=True, **kw):
    r = subprocess.run([str(c) for c in cmd], env=env or clean_env(), capture_output=True, **kw)
    if check and r.returncode != 0:
        err = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else r.stderr
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{err[-3000:]}")
    return r


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (run scripts/setup.sh)")
    return path


@pytest.fixture(scope="session")
def clang():
    return _tool("clang-22")


@pytest.fixture(scope="session")
def lld():
    return _tool("ld.lld-22")


@pytest.fixture(scope="session")
def opt():
    return _tool("opt-22")


@pytest.fixture(scope="session")
def plugin():
    from clang_llm import _paths

    return _paths.plugin_path()


@pytest.fixture(scope="session")
def lua_sources(tmp_path_factory):
    """Real translation units: Lua 5.4's interpreter and library, from Debian's
    source package (cached between runs by clang_llm.train.debsrc)."""
    from clang_llm.train import debsrc

    try:
        debsrc.fetch("lua5.4")
    except debsrc.FetchError as e:  # no mirror reachable: this tier cannot run here
        pytest.skip(f"cannot fetch Debian source package lua5.4: {e}")
    tree = debsrc.extract("lua5.4", tmp_path_factory.mktemp("lua") / "src")
    files = sorted((tree / "src").glob("*.c"))
    assert len(files) >= 20, files
    return files


@pytest.fixture(autouse=True)
def no_clang_llm_settings_in_unit_tests(request, monkeypatch):
    """Unit tests see the defaults, whatever the developer's shell has set. (Here
    rather than in tests/unit/conftest.py: a second conftest module would shadow
    this one for `from conftest import ...` when unit and integration files run
    in one pytest call.)"""
    if "unit" in request.node.path.parts:
        for var in [v for v in os.environ if v.startswith("CLANG_LLM_")]:
            monkeypatch.delenv(var)
