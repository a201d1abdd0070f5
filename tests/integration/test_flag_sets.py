"""The user's unwind-table flags pick the default of their flag set
(candidates.tsv's best_fixed / best_fixed_no_unwind), on every route: the native
launcher, the Python driver and the plugin asking the policy."""

import pytest

from clang_llm import pipelines
from conftest import BIN, clean_env, run

pytestmark = pytest.mark.integration

SRC = r"""
#include <stdio.h>
#include <string.h>
static int table[32];
int score(const char *s) {
    int n = 0;
    for (size_t i = 0; i < strlen(s); i++) { table[i & 31] += s[i]; n += table[(i * 7) & 31]; }
    return n;
}
int main(int argc, char **argv) { printf("%d\n", score(argc > 1 ? argv[1] : "clang-llm")); return 0; }
"""

FLAG_SETS = {"default": [], "no-unwind": ["-fno-asynchronous-unwind-tables"]}


@pytest.mark.parametrize("flag_set", list(FLAG_SETS))
@pytest.mark.parametrize("route", ["launcher", "driver", "plugin"])
def test_the_flag_sets_default_is_what_gets_compiled(tmp_path, flag_set, route):
    src = tmp_path / "t.c"
    src.write_text(SRC)
    flags = FLAG_SETS[flag_set]
    want = pipelines.best_fixed(flag_set)
    run([BIN / "clang-llm", "-Oz-llm", *flags, "-c", src, "-o", tmp_path / "want.o"],
        env=clean_env(CLANG_LLM_STRICT=1, CLANG_LLM_POLICY="fixed", CLANG_LLM_PIPELINE=want.name))
    # The driver decides without the plugin starting Python unless asked to log;
    # with a decision log the plugin asks the policy, which reads the module's flag.
    env = clean_env(CLANG_LLM_STRICT=1)
    if route == "plugin":
        env["CLANG_LLM_LOG"] = str(tmp_path / "log.jsonl")
    prog = BIN / ("clang-llm" if route == "launcher" else "clang-llm-py")
    run([prog, "-Oz-llm", *flags, "-c", src, "-o", tmp_path / "got.o"], env=env)
    assert (tmp_path / "got.o").read_bytes() == (tmp_path / "want.o").read_bytes()
    if route == "plugin":
        assert f'"pipeline": "{want.name}"' in (tmp_path / "log.jsonl").read_text()
