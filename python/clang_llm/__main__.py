"""python -m clang_llm --plugin-path | --version | --fingerprint"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from . import LLVM_MAJOR, __version__, _paths

# Every CLANG_LLM_* variable clang-llm, its launcher or its plugin reads, and what
# it does to the code a compile produces. The fingerprint (ccache's compiler
# check) must change with everything that changes the output, so a variable
# missing here is a test failure (tests/unit/test_fingerprint.py checks this
# table against the policy's docstring, the README's configuration table and
# the variable names in the sources). Kinds:
#   "value"   its text decides the output
#   "file"    it names a file whose contents decide the output
#   "policy"  a back-end name, or a .py policy file (its contents)
#   "model"   a model file (its contents) and the tokenizer.json beside it
#   "clang"   the clang the driver runs
#   None      no effect on what a successful compile writes (logs, strictness,
#             isolation of a failing back end, side outputs, internals)
SETTINGS: dict[str, str | None] = {
    "CLANG_LLM_POLICY": "policy",
    "CLANG_LLM_MODEL": "model",
    "CLANG_LLM_PIPELINE": "value",
    "CLANG_LLM_PIPELINE_FILE": "file",
    "CLANG_LLM_CODEGEN": "value",
    "CLANG_LLM_MACHINE_OUTLINER": "value",
    "CLANG_LLM_MODE": "value",
    "CLANG_LLM_VERIFY_K": "value",
    # A back end that runs past the limit gives -Oz's code instead of its own.
    "CLANG_LLM_POLICY_TIMEOUT": "value",
    # The plugin hands this decision to the compile instead of asking the policy;
    # the driver sets it, but one left in a user's environment reaches the plugin.
    "CLANG_LLM_PRESET_DECISION": "value",
    "CLANG_LLM_PRESET_DECISION_NO_UNWIND": "value",  # the same, for modules without unwind tables
    # The interpreter the plugin embeds: its numpy/onnxruntime run the model.
    "CLANG_LLM_PYTHON": "value",
    # Prints the command instead of compiling.
    "CLANG_LLM_DRY_RUN": "value",
    "CLANG_LLM_CLANG": "clang",
    "CLANG_LLM_CLANGXX": "clang",
    "CLANG_LLM_POLICY_ISOLATE": None,   # where a back end runs, not what it decides
    "CLANG_LLM_STRICT": None,           # a fallback fails instead of compiling -Oz
    "CLANG_LLM_LOG": None,              # side output
    "CLANG_LLM_CAPTURE": None,          # side output (a ccache hit skips it)
    "CLANG_LLM_CAPTURE_PKG": None,
    "CLANG_LLM_DRIVER_ACTIVE": None,    # the driver's recursion guard
    "CLANG_LLM_SRC_CACHE": None,        # debsrc's source cache (tests, benchmarks)
}


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        return f"<unreadable: {e.strerror}>"


def _stat(path: str) -> str:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        return f"{real} {st.st_size} {st.st_mtime_ns}"
    except OSError as e:
        return f"{path} <{e.strerror}>"


def _setting(name: str, kind: str) -> str:
    value = os.environ.get(name)
    if value is None:
        return f"{name} <unset>"
    out = f"{name}={value!r}"
    if kind == "file" or (kind == "policy" and value.endswith(".py")):
        out += " " + _file_digest(value)
    elif kind == "model" and value:
        tokenizer = os.path.join(os.path.dirname(os.path.abspath(value)), "tokenizer.json")
        out += f" {_file_digest(value)} tokenizer {_file_digest(tokenizer)}"
    return out


def _package_files() -> list[tuple[str, str]]:
    """(name, path) of the package's code and data: its modules, the plugin and
    extension, the candidates, the model and tokenizer. Every directory on the
    package's path, so an editable install (plugin in the build tree, sources in
    the checkout) is covered as a wheel is; train/ is not used when compiling."""
    import clang_llm

    found: dict[str, str] = {}
    for base in getattr(clang_llm, "__path__", ()):
        for sub in ("", "data"):
            d = os.path.join(base, sub)
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and (sub or n.endswith((".py", ".so"))):
                    found.setdefault(f"{sub}/{n}" if sub else n, p)
    return sorted(found.items())


def _tools() -> list[str]:
    """The programs a compile runs: clang (C and C++, as the driver finds them),
    opt for -emit-llvm, and the LLVM libraries they load, which Debian updates
    in place."""
    out = []
    for cxx in (False, True):
        try:
            out.append(_stat(_paths.find_clang(cxx)))
        except _paths.NotFound as e:
            out.append(f"<{e}>")
    try:
        opt = _paths.find_tool("opt")
        out.append(_stat(opt))
        lib = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(opt))), "lib")
        for n in sorted(os.listdir(lib)):
            if n.startswith(("libLLVM", "libclang-cpp")) and ".so" in n:
                out.append(_stat(os.path.join(lib, n)))
    except (_paths.NotFound, OSError) as e:
        out.append(f"<{e}>")
    # The native launcher decides which route a compile takes.
    bindir = os.path.dirname(sys.executable)
    for n in ("clang-llm", "clang-llm++"):
        p = os.path.join(bindir, n)
        if os.path.isfile(p):
            out.append(f"{n} {_file_digest(p)}")
    return out


def _runtime_versions() -> list[str]:
    """The libraries the learned back ends compute with."""
    from importlib import metadata

    out = []
    for dist in ("onnxruntime", "numpy", "tokenizers"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist} <none>")
    return out


def fingerprint() -> str:
    """Changes whenever the code clang-llm would produce may change: its
    settings (SETTINGS, with the contents of the files they name), the plugin,
    the launcher, the policy code and data (candidates, model, tokenizer), and
    clang-22 / opt-22 themselves. Meant for ccache: compiler_check =
    string:<this>, computed in the environment the build will run in."""
    h = hashlib.sha256()
    lines = [f"clang-llm {__version__} llvm {LLVM_MAJOR}"]
    lines += [_setting(name, kind) for name, kind in sorted(SETTINGS.items()) if kind]
    lines += [f"{name} {_file_digest(path)}" for name, path in _package_files()]
    lines += _tools()
    policy = os.environ.get("CLANG_LLM_POLICY", "")
    if policy == "onnx" or policy.endswith(".py"):
        lines += _runtime_versions()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()[:32]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clang_llm", description=__doc__)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--plugin-path", action="store_true", help="print the pass plugin's path")
    g.add_argument("--version", action="store_true", help="print clang-llm's and LLVM's versions")
    g.add_argument("--fingerprint", action="store_true",
                   help="print a hash of everything that decides the generated code, including the "
                        "CLANG_LLM_* settings in the environment (for ccache's compiler_check)")
    args = ap.parse_args(argv)
    try:
        if args.plugin_path:
            print(_paths.plugin_path())
        elif args.version:
            from . import _core

            print(f"clang-llm {__version__} (LLVM {_core.LLVM_VERSION}, plugin {_paths.PLUGIN_NAME})")
        else:
            print(fingerprint())
    except _paths.NotFound as e:
        print(f"clang-llm: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
