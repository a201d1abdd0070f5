"""clang-llm / clang-llm++: a transparent wrapper around clang-22.

Without -Oz-llm the arguments reach clang-22 untouched (the process is replaced by
clang through exec, so exit codes, signals, stdin and stdout are clang's own).
With -Oz-llm as the winning optimisation level, it becomes

    -Oz -Xclang -disable-llvm-passes -fpass-plugin=<plugin>

so clang's -Oz front end and code generator stay, and the plugin's policy picks
the middle-end pipeline per module. -Oz-llm=verify also asks the plugin to
measure the policy's top-k against clang's -Oz and keep the smallest.

Cases where the plugin cannot stand in for clang's middle end (LTO, sanitizers,
profile instrumentation, another pass plugin) compile with plain -Oz and say so
in one line on stderr; CLANG_LLM_STRICT=1 makes that an error.

This module must stay cheap to import: no onnxruntime, numpy or torch here.
"""

from __future__ import annotations

import os
import sys

from . import _paths
from .clang_options import SEPARATE_VALUE  # one table for the driver and explain

FLAG = "-Oz-llm"
MODES = {"": None, "verify": "verify"}
RECURSION_GUARD = "CLANG_LLM_DRIVER_ACTIVE"

SOURCE_EXT = frozenset("c i cc cp cxx cpp CPP c++ C ii m mi mm M mii bc ll h hh hpp hxx H".split())
ASM_EXT = frozenset("s S sx".split())

# Options (as "-name" or "-name=...") that need clang's own middle end; "-fno-..."
# switches them back off.
NEEDS_CLANG_MIDDLE_END = {
    "-flto": "LTO builds run the middle end at link time",
    "-fsanitize": "sanitizer instrumentation is part of clang's pipeline",
    "-fprofile-generate": "profile instrumentation is part of clang's pipeline",
    "-fprofile-instr-generate": "profile instrumentation is part of clang's pipeline",
    "-fcs-profile-generate": "profile instrumentation is part of clang's pipeline",
    "-fprofile-use": "profile-guided optimisation needs clang's pipeline",
    "-fprofile-instr-use": "profile-guided optimisation needs clang's pipeline",
    "-fprofile-sample-use": "profile-guided optimisation needs clang's pipeline",
    "-fauto-profile": "profile-guided optimisation needs clang's pipeline",
    "-fmemory-profile": "memory profiling is part of clang's pipeline",
    "-fembed-bitcode": "embedded bitcode is produced before the middle end",
    "-fpass-plugin": "another pass plugin expects clang's own pipeline",
}


def _option_name(a: str) -> str:
    return a.split("=", 1)[0]


class UsageError(Exception):
    """A mistake in how clang-llm was called (exit status 1, like clang's)."""


class Plan:
    """What to run: clang's arguments, extra environment, notes for stderr.
    (A plain class: importing dataclasses costs more than the driver may add.)"""

    def __init__(self, args: list[str]):
        self.args = args
        self.env: dict[str, str] = {}
        self.notes: list[str] = []
        # -emit-llvm: clang writes unoptimised IR and opt-22 runs the plugin (_emit_llvm).
        self.emit_llvm = False
        self.used_plugin = False


# --- response files -----------------------------------------------------------

def _tokenize_gnu(text: str) -> list[str]:
    """Split a response file the way clang does on Linux (GNU rules)."""
    out, cur, have, i, quote = [], [], False, 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                cur.append(text[i])
            else:
                cur.append(ch)
        elif ch in "'\"":
            quote, have = ch, True
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            if text[i] != "\n":
                cur.append(text[i])
                have = True
        elif ch.isspace():
            if cur or have:
                out.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(ch)
            have = True
        i += 1
    if cur or have:
        out.append("".join(cur))
    return out


def _expand_response_files(args: list[str], depth: int = 0) -> list[str]:
    if depth > 20:
        raise UsageError("response files nest too deeply")
    out: list[str] = []
    for a in args:
        if a.startswith("@") and len(a) > 1 and os.path.isfile(a[1:]):
            with open(a[1:], encoding="utf-8", errors="surrogateescape") as f:
                out.extend(_expand_response_files(_tokenize_gnu(f.read()), depth + 1))
        else:
            out.append(a)
    return out


def _mentions_flag(args: list[str], depth: int = 0) -> bool:
    """Does -Oz-llm appear, directly or in a (nested) response file? Reads only @files."""
    for a in args:
        if a.startswith(FLAG):
            return True
        if depth < 20 and a.startswith("@") and len(a) > 1 and os.path.isfile(a[1:]):
            try:
                with open(a[1:], encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError:
                continue
            if FLAG in text or ("@" in text and _mentions_flag(_tokenize_gnu(text), depth + 1)):
                return True
    return False


# --- argument analysis ---------------------------------------------------------

def _is_opt_level(a: str) -> bool:
    return a.startswith("-O") and (a == "-O" or a[2:] in ("0", "1", "2", "3", "4", "s", "z", "g", "fast")
                                   or a == FLAG or a.startswith(FLAG + "="))


class _Scan:
    def __init__(self):
        self.last_opt = -1  # index of the winning -O flag
        self.llm_indices: list[int] = []
        self.inputs: list[tuple[str, str]] = []  # (path, kind)
        self.flags: set[str] = set()
        self.output: str | None = None
        self.blockers: list[str] = []


def _input_kind(path: str, lang: str | None) -> str:
    if lang and lang != "none":
        return "asm" if lang.startswith("assembler") else "source"
    if path == "-":
        return "other"  # stdin without -x: clang itself refuses, pass through
    ext = path.rsplit(".", 1)[-1] if "." in os.path.basename(path) else ""
    if ext in SOURCE_EXT:
        return "source"
    if ext in ASM_EXT:
        return "asm"
    return "other"  # objects, archives, libraries: link inputs


def _scan(args: list[str]) -> _Scan:
    s = _Scan()
    lang = None
    enabled: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a in SEPARATE_VALUE and i + 1 < len(args):
            if a == "-x":
                lang = args[i + 1]
            elif a == "-o":
                s.output = args[i + 1]
            i += 2
            continue
        if a == "--":
            s.inputs.extend((p, _input_kind(p, lang)) for p in args[i + 1:])
            break
        if _is_opt_level(a):
            s.last_opt = i
            if a.startswith(FLAG):
                s.llm_indices.append(i)
        elif a.startswith("-x") and len(a) > 2:
            lang = a[2:]
        elif a.startswith("-o") and len(a) > 2 and not a.startswith("-objc"):
            s.output = a[2:]
        elif a == "-" or not a.startswith("-"):
            s.inputs.append((a, _input_kind(a, lang)))
        else:
            s.flags.add(a)
            name = _option_name(a)
            if name in NEEDS_CLANG_MIDDLE_END:
                enabled[name] = f"{a}: {NEEDS_CLANG_MIDDLE_END[name]}"
            elif name.startswith("-fno-"):
                enabled.pop("-f" + name[5:], None)
        i += 1
    s.blockers = list(enabled.values())
    return s


def rewrite(args: list[str], plugin: str | None, strict: bool = False) -> Plan:
    """The pure part of the driver: clang's arguments for clang-llm's arguments.

    plugin is the plugin path, or None if it is missing (then -Oz-llm means -Oz,
    with a note).
    """
    if not _mentions_flag(args):
        return Plan(list(args))
    args = _expand_response_files(args)
    s = _scan(args)
    if not s.llm_indices:
        return Plan(list(args))  # e.g. "-Oz-llm" was only a value such as "-o -Oz-llm"

    win = args[s.last_opt]
    drop = set(s.llm_indices)
    if not win.startswith(FLAG):
        # A later -O flag wins, exactly as it would over any other -O flag.
        return Plan([a for j, a in enumerate(args) if j not in drop])

    mode_text = win[len(FLAG) + 1:] if win.startswith(FLAG + "=") else ""
    if mode_text not in MODES:
        raise UsageError(f"unknown value '{mode_text}' for {FLAG} (use {FLAG} or {FLAG}=verify)")
    out = [("-Oz" if j == s.last_opt else a) for j, a in enumerate(args) if j == s.last_opt or j not in drop]
    plan = Plan(out)
    if MODES[mode_text]:
        plan.env["CLANG_LLM_MODE"] = MODES[mode_text]

    no_codegen = bool({"-E", "-M", "-MM", "-fsyntax-only"} & s.flags)
    compiles = any(kind == "source" for _, kind in s.inputs)
    if no_codegen or not compiles:
        return plan  # nothing reaches the middle end: plain -Oz is exact
    reason = None
    if s.blockers:
        reason = s.blockers[0]
    elif plugin is None:
        reason = "the clang-llm plugin is not installed"
    if reason:
        if strict:
            raise UsageError(f"{FLAG} cannot be used here (strict mode): {reason}")
        plan.notes.append(f"clang-llm: warning: compiling with plain -Oz: {reason}")
        return plan
    plan.used_plugin = True
    plan.args += ["-Xclang", "-disable-llvm-passes", f"-fpass-plugin={plugin}"]
    if not MODES[mode_text]:
        from . import policy  # only now: pass-through calls never pay for it

        plan.env.update(policy.preset_env())
    if "-emit-llvm" in s.flags:
        plan.emit_llvm = True
    return plan


# --- running -------------------------------------------------------------------

def _strict() -> bool:
    return os.environ.get("CLANG_LLM_STRICT", "") not in ("", "0")


def _emit_llvm(clang: str, plan: Plan, env: dict[str, str]) -> int:
    """-emit-llvm with -Oz-llm: clang's pre-codegen hook never runs when no code is
    generated, so clang writes the unoptimised module and opt-22 runs the same
    plugin pass (llm-oz) on it."""
    import subprocess
    import tempfile

    s = _scan(plan.args)
    sources = [p for p, kind in s.inputs if kind == "source"]
    if len(sources) != 1 or not ({"-c", "-S"} & s.flags):
        raise UsageError(f"{FLAG} with -emit-llvm supports one source file with -c or -S")
    text = "-S" in s.flags
    out = s.output
    if out is None:
        stem = os.path.splitext(os.path.basename(sources[0]))[0] if sources[0] != "-" else "-"
        out = "-" if stem == "-" else stem + (".ll" if text else ".bc")
    plugin_arg = next(a for a in plan.args if a.startswith("-fpass-plugin="))
    with tempfile.TemporaryDirectory(prefix="clang-llm-") as tmp:
        raw = os.path.join(tmp, "raw.bc")
        first = [a for a in _without_output(plan.args) if a not in ("-S",) and a != plugin_arg]
        rc = subprocess.call([clang, *first, "-c", "-o", raw], env=env)
        if rc != 0:
            return rc
        opt = _paths.find_tool("opt")
        # clang never names values in release builds; match its output exactly.
        cmd = [opt, "--discard-value-names", f"-load-pass-plugin={plugin_arg.split('=', 1)[1]}",
               "-passes=llm-oz", raw]
        if not text:
            # Bitcode carries source_filename but no module identifier, so
            # opt's copy of clang's module is already what clang would write.
            return subprocess.call([*cmd, "-o", out], env=env)
        # Text IR starts with "; ModuleID = '<name opt read it from>'", which
        # would be the temporary file above (different on every run), where
        # clang writes the source as named on its command line ('-' for stdin).
        # opt cannot be told another identifier, so the line is rewritten.
        optimised = os.path.join(tmp, "opt.ll")
        rc = subprocess.call([*cmd, "-S", "-o", optimised], env=env)
        if rc != 0:
            return rc
        with open(optimised, "rb") as f:
            data = f.read()
        head, sep, rest = data.partition(b"\n")
        if head.startswith(b"; ModuleID = '"):
            data = b"; ModuleID = '" + os.fsencode(sources[0]) + b"'" + sep + rest
        if out == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            with open(out, "wb") as f:
                f.write(data)
        return 0


def _without_output(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif not (a.startswith("-o") and len(a) > 2 and not a.startswith("-objc")):
            out.append(a)
    return out


def run(argv: list[str], cxx: bool) -> int:
    if len(argv) > 1 and argv[1] == "explain":
        from .explain import main as explain

        return explain(argv[2:])
    prog = "clang-llm++" if cxx else "clang-llm"
    if os.environ.get(RECURSION_GUARD):
        print(f"{prog}: error: recursive invocation: the clang that clang-llm runs "
              f"({os.environ.get('CLANG_LLM_CLANGXX' if cxx else 'CLANG_LLM_CLANG', 'clang-22')}) "
              "is clang-llm itself; point CLANG_LLM_CLANG at a real clang-22", file=sys.stderr)
        return 1
    try:
        clang = _paths.find_clang(cxx)
    except _paths.NotFound as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 127
    args = argv[1:]
    try:
        plugin = None
        if _mentions_flag(args):
            try:
                plugin = _paths.plugin_path()
            except _paths.NotFound:
                plugin = None
        plan = rewrite(args, plugin, strict=_strict())
    except (UsageError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    for note in plan.notes:
        print(note, file=sys.stderr)
    if os.environ.get("CLANG_LLM_DRY_RUN"):
        _print_plan(clang, plan)
        return 0
    env = dict(os.environ)
    env.update(plan.env)
    env[RECURSION_GUARD] = "1"
    if plan.emit_llvm:
        try:
            return _emit_llvm(clang, plan, env)
        except (UsageError, _paths.NotFound) as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(clang, [clang, *plan.args], env)
    return 127  # not reached


def _print_plan(clang: str, plan: Plan) -> None:
    """CLANG_LLM_DRY_RUN=1: what would run, in the format the native launcher
    (cpp/launcher.cpp) also prints, so tests can hold the two to one behaviour."""
    lines = [f"exec {clang}", *(f"arg {a}" for a in plan.args),
             *(f"env {k}={v}" for k, v in sorted(plan.env.items()))]
    if plan.emit_llvm:
        lines.append("emit-llvm")
    print("\n".join(lines))


def main_c() -> int:
    return run(sys.argv, cxx=False)


def main_cxx() -> int:
    return run(sys.argv, cxx=True)
