"""The README's ccache recipe with the real ccache:

    export CCACHE_COMPILERCHECK="string:$(python -m clang_llm --fingerprint)"
    CC="ccache clang-llm" CFLAGS=-Oz-llm make

After a CLANG_LLM_* setting changes and the fingerprint is recomputed, ccache
must give the object a compile without ccache gives (issue 28: it served the
object of the previous setting).
"""

import shutil
import subprocess
import sys

import pytest

from conftest import BIN, clean_env

pytestmark = pytest.mark.integration

# Chosen so that the settings below give at least four different objects
# (verify mode with k=4 finds a smaller candidate than the default; s17 and oz
# differ from both).
SOURCE = r"""
#include <stdio.h>
#include <string.h>
struct rec { char name[16]; int score; int tags[4]; };
static struct rec table[8];
static int cmp(const struct rec *a, const struct rec *b) { return a->score - b->score; }
static void sort(struct rec *r, int n) {
  for (int i = 1; i < n; i++) { struct rec k = r[i]; int j = i - 1;
    while (j >= 0 && cmp(&r[j], &k) > 0) { r[j + 1] = r[j]; j--; } r[j + 1] = k; } }
int checksum(const char *s) { int h = 0; while (*s) h = h * 31 + *s++; return h; }
int main(int argc, char **argv) {
  for (int i = 0; i < 8; i++) { snprintf(table[i].name, 16, "n%d", (i * 5) % 8); table[i].score = (i * 37 + argc) % 11;
    for (int t = 0; t < 4; t++) table[i].tags[t] = i ^ t; }
  sort(table, 8);
  int s = 0; for (int i = 0; i < 8; i++) s += checksum(table[i].name) + table[i].tags[i & 3];
  printf("%d %s\n", s, argc > 1 ? argv[1] : "");
  return 0;
}
"""


@pytest.fixture
def ccache():
    path = shutil.which("ccache")
    if not path:
        pytest.skip("ccache is not installed (scripts/setup.sh installs it)")
    return path


def _env(tmp_path, settings, **extra):
    env = clean_env(**settings, **extra)
    for k in [k for k in env if k.startswith("CCACHE_")]:
        del env[k]
    env["CCACHE_DIR"] = str(tmp_path / "ccache")
    env["CCACHE_TEMPDIR"] = str(tmp_path / "ccache-tmp")
    return env


def _fingerprint(env) -> str:
    return subprocess.run([sys.executable, "-m", "clang_llm", "--fingerprint"], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _compile(cmd, env, cwd, out) -> bytes:
    r = subprocess.run([*cmd, "-Oz-llm", "-c", "t.c", "-o", out], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return (cwd / out).read_bytes()


def _stats(ccache, env) -> str:
    return subprocess.run([ccache, "--print-stats"], env=env, capture_output=True, text=True, check=True).stdout


def test_ccache_follows_the_settings_through_the_fingerprint(ccache, tmp_path):
    (tmp_path / "t.c").write_text(SOURCE)
    pfile = tmp_path / "chosen.pipeline"
    steps = [
        ("default", {}, None),
        ("verify", {"CLANG_LLM_MODE": "verify"}, None),
        ("verify k=1", {"CLANG_LLM_MODE": "verify", "CLANG_LLM_VERIFY_K": "1"}, None),
        ("fixed oz", {"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE": "oz"}, None),
        ("fixed s17", {"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE": "s17"}, None),
        ("file oz", {"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE_FILE": str(pfile)}, "oz"),
        ("file s17", {"CLANG_LLM_POLICY": "fixed", "CLANG_LLM_PIPELINE_FILE": str(pfile)}, "s17"),
        ("default again", {}, None),
    ]
    objects = {}
    for i, (what, settings, pipeline_text) in enumerate(steps):
        if pipeline_text is not None:
            pfile.write_text(pipeline_text)
        plain_env = _env(tmp_path, settings, CLANG_LLM_STRICT=1)
        ref = _compile([str(BIN / "clang-llm")], plain_env, tmp_path, f"ref{i}.o")
        env = dict(plain_env, CCACHE_COMPILERCHECK="string:" + _fingerprint(plain_env))
        got = _compile([ccache, str(BIN / "clang-llm")], env, tmp_path, f"cached{i}.o")
        assert got == ref, f"{what}: ccache gave another setting's object"
        objects[what] = ref
    # The settings must give different objects for this test to mean anything:
    # the mode, the policy and the pipeline (named or in a file) each change it.
    for a, b in (("default", "verify"), ("default", "fixed oz"), ("fixed oz", "fixed s17"), ("file oz", "file s17")):
        assert objects[a] != objects[b], f"{a} and {b} gave the same object"
    # ccache did cache: the last step (the first one's settings again) was a hit.
    assert objects["default again"] == objects["default"]
    stats = _stats(ccache, _env(tmp_path, {}))
    hits = sum(int(line.split()[-1]) for line in stats.splitlines()
               if line.split() and line.split()[0] in ("direct_cache_hit", "preprocessed_cache_hit"))
    assert hits >= 1, stats
