"""The policy: the one entry point the plugin calls for every module.

``plugin_entry(module)`` receives the plugin's handle on an LLVM module (see
cpp/plugin.cpp: source_filename, content_hash(), ir_text(), bitcode(),
check(passes), trial(passes), measure(passes, codegen)) and returns a
Decision. Back ends rank candidate pipelines; this module turns a ranking into one
decision (top-1, or in verify mode the measured smallest of the top-k and clang's
-Oz), applies the fallback rules and writes the decision log.

Configuration (environment, so the same settings reach opt and clang):
  CLANG_LLM_POLICY     oz | fixed | best-fixed (default) | onnx | /path/to/policy.py
  CLANG_LLM_MODEL      the model for `onnx` (default: clang_llm/data/model.onnx, with
                       tokenizer.json beside it)
  CLANG_LLM_PIPELINE   the pipeline for `fixed`: a pass pipeline or a candidate's name
                       (or CLANG_LLM_PIPELINE_FILE, a file holding either)
  CLANG_LLM_CODEGEN    `fixed` with a raw pipeline: code generator knob bits
                       (pipelines.KNOBS; 1 = machine outliner). CLANG_LLM_MACHINE_OUTLINER=1
                       is the older spelling of CLANG_LLM_CODEGEN=1
  CLANG_LLM_MODE       "verify" to measure the top-k (the driver sets it for -Oz-llm=verify)
  CLANG_LLM_VERIFY_K   how many ranked candidates verify mode measures (default 4)
  CLANG_LLM_LOG        append one JSON line per module to this file
  CLANG_LLM_POLICY_TIMEOUT  seconds the `onnx` or a .py back end may take to rank one
                       module before clang's -Oz pipeline is used instead (default 10;
                       0: no limit). Those back ends run in a forked child process, so
                       a crash or hang in them costs a fallback, not the build
  CLANG_LLM_POLICY_ISOLATE  0: run them in the compiler process instead (no time limit;
                       a crash takes the compiler with it): for debugging a policy
  CLANG_LLM_STRICT     1: any fallback is an error (tests use it)
  CLANG_LLM_CAPTURE    an absolute directory: save every module as it reaches the
                       policy (unoptimised) as <content_hash>.bc + .json (data engine)
  CLANG_LLM_CAPTURE_PKG  a package label written into each capture's .json
"""

from __future__ import annotations

import os
import sys
import time

from . import pipelines
from . import sizes as sizes_mod

DEFAULT_BACKEND = "best-fixed"
DEFAULT_VERIFY_K = 4
LOG_PREDICTIONS = 5


class PolicyError(Exception):
    """The learned part cannot give a decision; the caller falls back to -Oz."""


class Decision:
    """What the plugin runs. The plugin reads .passes and .codegen (knob bits)."""

    __slots__ = ("passes", "codegen", "name", "fallback", "measured", "predicted", "note")

    def __init__(self, passes: str, codegen: int = 0, name: str = "custom",
                 fallback: str | None = None, measured: dict | None = None):
        self.passes = passes
        self.codegen = int(codegen)
        self.name = name
        self.fallback = fallback
        self.measured = measured or {}
        # {candidate: predicted text / -Oz text}, from a back end that predicts
        # sizes: the top LOG_PREDICTIONS of its ranking and the candidates chosen
        # or measured.
        self.predicted: dict | None = None
        # What the back end says about its ranking (the model: a module outside its
        # training range), for the decision log.
        self.note: str | None = None

    @property
    def machine_outliner(self) -> bool:
        return bool(self.codegen & pipelines.MACHINE_OUTLINER)


def verify_mode() -> bool:
    return os.environ.get("CLANG_LLM_MODE", "") == "verify"


def strict() -> bool:
    return os.environ.get("CLANG_LLM_STRICT", "") not in ("", "0")


# --- back ends: each returns candidates, best first ---------------------------

def _oz(_module) -> list[pipelines.Candidate]:
    return [pipelines.by_name("oz")]


def _flag_set(module) -> str:
    """The module's flag set (clang_llm.sizes.FLAG_SETS): whether the user's
    flags left unwind tables on changes which candidate is smallest. A module
    handle without the attribute (a test double, the preset's None) counts as
    clang's defaults."""
    return sizes_mod.flag_set(getattr(module, "unwind_tables", True))


def _best_fixed(module) -> "Ranking":
    flags = _flag_set(module)
    best = pipelines.best_fixed(flags)
    out = Ranking([best, *(c for c in pipelines.candidates() if c != best and c.validated)])
    # Verify mode measures several candidates, so it wants ones that win where
    # the others lose (candidates.tsv's verify_order), not the next-best singles.
    # Only then: the driver asks this back end for its preset on every compile.
    if verify_mode():
        out.verify = pipelines.verify_order(flags)
    return out


def _fixed(_module) -> list[pipelines.Candidate]:
    text = os.environ.get("CLANG_LLM_PIPELINE")
    if text is None:
        path = os.environ.get("CLANG_LLM_PIPELINE_FILE")
        if not path:
            raise PolicyError("the fixed back end needs CLANG_LLM_PIPELINE or CLANG_LLM_PIPELINE_FILE")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise PolicyError(f"cannot read pipeline file {path}: {e}") from e
    text = text.strip()
    if not text:
        raise PolicyError("the fixed pipeline is empty")
    # A candidate's name also selects its code generator knobs (e.g. "s05+mo");
    # a raw pipeline has no name to carry them, so they come from the
    # environment (the validation gate compiles raw pipelines this way).
    knobs = os.environ.get("CLANG_LLM_CODEGEN", "")
    if not knobs:
        knobs = "0" if os.environ.get("CLANG_LLM_MACHINE_OUTLINER", "") in ("", "0") else "1"
    try:
        codegen = pipelines.knob_bits(knobs)
    except ValueError as e:
        raise PolicyError(f"CLANG_LLM_CODEGEN: {e}") from None
    known = _by_name_or_none(text) or pipelines.find(text, codegen)
    return [known or pipelines.Candidate("fixed", text, codegen)]


def _by_name_or_none(text: str) -> pipelines.Candidate | None:
    try:
        return pipelines.by_name(text)
    except KeyError:
        return None


def _from_file(path: str):
    """A user policy: a Python file defining choose(module) -> str | list[str] of
    pipelines or candidate names, best first. The file is loaded when the back end
    runs, so that loading it is isolated with the rest (it may crash or hang too)."""

    def backend(module):
        import importlib.util

        spec = importlib.util.spec_from_file_location("clang_llm_user_policy", path)
        if spec is None or spec.loader is None:
            raise PolicyError(f"cannot load policy file {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = mod.choose(module)
        items = [out] if isinstance(out, str) else list(out)
        if not all(isinstance(p, str) for p in items):
            raise PolicyError(f"choose() in {path} must return a pipeline or candidate name or a list of "
                              f"them, not {type(out).__name__} of {', '.join(sorted({type(p).__name__ for p in items}))}")
        return [_by_name_or_none(p) or pipelines.find(p, False) or pipelines.Candidate("custom", p)
                for p in items]

    return backend


class Ranking(list):
    """Candidates best first, with what the back end predicted for each, and the
    order verify mode should measure them in where that is not the ranking."""

    predicted: dict | None = None
    verify: list | None = None
    note: str | None = None


def _onnx(module) -> Ranking:
    """The learned model (clang_llm.ranker): every candidate ranked by its
    predicted image size (clang_llm.sizes) relative to -Oz; in verify mode also
    the model's verify order (ranker.verify_order). A missing, corrupt or
    mismatched model is a PolicyError (the usual fallback to -Oz, or an error
    under CLANG_LLM_STRICT)."""
    from . import ranker

    if _flag_set(module) != "default":
        # The model learned from modules with unwind tables (clang's default);
        # without them another candidate is smallest (no FDE per outlined
        # function), a flag set it has not seen: its default and verify order.
        out = _best_fixed(module)
        out.note = "no unwind tables: the model learned with them; this flag set's default and verify order"
        return out

    try:
        model = ranker.get()
        got = model.rank(module.ir_text(), verify=verify_mode())
    except ranker.ModelError as e:
        raise PolicyError(str(e)) from None
    # The model ranks every candidate it was trained on; one that is no longer
    # validated (excluded after a miscompile was found) must never be chosen.
    out = Ranking(c for c in got[0] if c.validated)
    out.predicted = got[1]
    if model.last_outside:
        out.note = f"outside the model's training range ({model.last_outside}): top-1 keeps the preferred candidate"
    if len(got) > 2:
        out.verify = [c for c in got[2] if c.validated]
    return out


BACKENDS = {"oz": _oz, "best-fixed": _best_fixed, "fixed": _fixed, "onnx": _onnx}


def backend_name() -> str:
    return os.environ.get("CLANG_LLM_POLICY", "") or DEFAULT_BACKEND


def _backend(name: str):
    if name in BACKENDS:
        return BACKENDS[name]
    if name.endswith(".py"):
        return _from_file(name)
    raise PolicyError(f"unknown policy back end {name!r} (expected one of {', '.join(BACKENDS)} or a .py file)")


# --- running a back end where it cannot take the compiler down ---------------

TIMEOUT_VAR = "CLANG_LLM_POLICY_TIMEOUT"
ISOLATE_VAR = "CLANG_LLM_POLICY_ISOLATE"
DEFAULT_TIMEOUT = 10.0
# Signals whose handlers in a compiler process (LLVM's) print a crash report,
# write reproducers or delete the compiler's output files. A child shares those
# files, so it must die of these signals plainly, not through those handlers.
_CHILD_DEFAULT_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGTRAP", "SIGSYS", "SIGQUIT",
                          "SIGXCPU", "SIGXFSZ", "SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGPIPE",
                          "SIGALRM")


def _timeout() -> float | None:
    text = os.environ.get(TIMEOUT_VAR, "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise PolicyError(f"{TIMEOUT_VAR} must be a number of seconds, not {text!r}") from None
    if seconds != seconds:
        raise PolicyError(f"{TIMEOUT_VAR} must be a number of seconds, not {text!r}")
    return seconds if seconds > 0 else None


def _rank(name: str, module):
    """The back end's ranking. The built-in module-independent back ends are this
    package's own code and run here; every other one (the model: onnxruntime and
    a tokenizer are native code; a user's file: anything) runs in a forked child."""
    backend = _backend(name)
    if name in MODULE_INDEPENDENT or os.environ.get(ISOLATE_VAR, "") == "0":
        return backend(module)
    return _rank_in_child(name, backend, module)


def _encode_candidate(c: pipelines.Candidate):
    known = _by_name_or_none(c.name)
    return c.name if known == c else {"name": c.name, "passes": c.passes, "codegen": c.codegen}


def _decode_candidate(x) -> pipelines.Candidate:
    if isinstance(x, str):
        return pipelines.by_name(x)
    # Never validated, whatever the child said: the parent trial-runs it first.
    return pipelines.Candidate(str(x["name"]), str(x["passes"]), int(x["codegen"]))


def _encode_ranking(ranked) -> dict:
    verify = getattr(ranked, "verify", None)
    return {"ranked": [_encode_candidate(c) for c in ranked],
            "predicted": getattr(ranked, "predicted", None),
            "verify": None if verify is None else [_encode_candidate(c) for c in verify],
            "note": getattr(ranked, "note", None)}


def _decode_ranking(got: dict) -> "Ranking":
    out = Ranking(_decode_candidate(x) for x in got["ranked"])
    if got.get("predicted") is not None:
        out.predicted = {str(k): float(v) for k, v in got["predicted"].items()}
    if got.get("verify") is not None:
        out.verify = [_decode_candidate(x) for x in got["verify"]]
    out.note = got.get("note")
    return out


def _quiet_child(write_fd: int) -> None:
    """Make this forked child die quietly and alone: no LLVM crash report or
    reproducer, no core file, no cleanup of the parent's output files on a crash
    or an LLVM fatal error, and no life beyond the compiler's."""
    # _signal, not signal: the latter imports enum, several ms per compile.
    import _signal

    for name in _CHILD_DEFAULT_SIGNALS:
        sig = getattr(_signal, name, None)
        if sig is not None:
            try:
                _signal.signal(sig, _signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError):
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return  # a Python without ctypes: the policy still runs, less quietly
    try:
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no core through a core_pattern pipe either
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL: a hung child dies with its compiler
    except AttributeError:
        pass
    # LLVM's fatal error handler in clang runs the interrupt handlers (deleting
    # the output files the parent still writes) and exits; in the child, report
    # the error to the parent and leave at once instead.
    try:
        reset, install = libc.LLVMResetFatalErrorHandler, libc.LLVMInstallFatalErrorHandler
    except AttributeError:
        return  # no LLVM in this process (unit tests with a fake module)

    def fatal(reason):
        msg = (reason or b"").decode("utf-8", "replace")
        _child_reply(write_fd, {"error": "LLVM ERROR: " + " ".join(msg.split())})
        os._exit(3)

    global _fatal_handler
    _fatal_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(fatal)
    reset()
    install(_fatal_handler)


_fatal_handler = None


def _child_reply(fd: int, payload: dict) -> None:
    # marshal, not json: both ends are this module, marshal is built in, and
    # importing json (with re) would cost each compile several ms on both sides.
    import marshal

    data = marshal.dumps(payload)
    data = len(data).to_bytes(8, "little") + data
    while data:
        data = data[os.write(fd, data):]


def _rank_in_child(name: str, backend, module) -> "Ranking":
    """backend(module) in a forked child; its ranking comes back over a pipe as
    plain data (candidate names, or passes for ones not in the set). The
    measuring and trial runs that turn a ranking into a decision stay in this
    process: they are clang-llm's own, and the child's answer is only a ranking."""
    timeout = _timeout()
    _reap_finished()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _quiet_child(write_fd)
            try:
                ranked = backend(module)
                _check_finite(getattr(ranked, "predicted", None))
                payload = {"ranking": _encode_ranking(ranked)}
            except PolicyError as e:
                payload = {"error": str(e)}
            except BaseException as e:  # noqa: BLE001 - the user's code may raise anything
                payload = {"error": f"{type(e).__name__}: {e}"}
            try:
                _child_reply(write_fd, payload)
            except (TypeError, ValueError) as e:  # not plain data
                _child_reply(write_fd, {"error": f"unusable ranking: {e}"})
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(0)
    os.close(write_fd)
    try:
        data, status = _await_child(pid, read_fd, timeout)
    finally:
        os.close(read_fd)
    if status is None:
        raise PolicyError(f"policy {name} gave no ranking within {timeout:g} s ({TIMEOUT_VAR})")
    if not data:
        if os.WIFSIGNALED(status):
            import signal

            sig = os.WTERMSIG(status)
            try:
                signame = signal.Signals(sig).name
            except ValueError:
                signame = f"signal {sig}"
            raise PolicyError(f"policy {name} crashed ({signame})")
        raise PolicyError(f"policy {name} exited with status {os.waitstatus_to_exitcode(status)} "
                          "without a ranking")
    import marshal

    try:
        got = marshal.loads(data)
        if "error" in got:
            raise PolicyError(" ".join(str(got["error"]).split()))
        ranked = _decode_ranking(got["ranking"])
    except (ValueError, KeyError, TypeError, AttributeError, EOFError) as e:
        raise PolicyError(f"policy {name} gave an unreadable ranking: {type(e).__name__}: {e}") from None
    return ranked


# Children that answered but had not yet exited: waiting for a large process to
# tear down its address space would put that on the compile's critical path.
_unreaped: list[int] = []


def _reap_finished() -> None:
    for pid in list(_unreaped):
        if _reap(pid, os.WNOHANG)[0]:
            _unreaped.remove(pid)


def _await_child(pid: int, fd: int, timeout: float | None) -> tuple[bytes, int | None]:
    """The child's reply (b"" for none or a partial one) and its wait status (0
    if it answered and is still exiting); status None: it ran past the time
    limit and was killed."""
    import select

    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data, eof = b"", False
    while not _complete(data) and not eof:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            os.kill(pid, 9)  # SIGKILL
            _reap(pid, 0)
            return data, None
        # Short waits: a grandchild (a trial run) may hold the pipe open after
        # the child died, so the child's exit is checked between them.
        if poller.poll(100 if left is None else max(1, min(100, int(left * 1000)))):
            chunk = os.read(fd, 65536)
            data, eof = data + chunk, not chunk
            continue
        done, status = _reap(pid, os.WNOHANG)
        if done:
            while poller.poll(0):  # what it wrote before it died
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
            return _payload(data), status
    if _complete(data):
        # A full reply: the child is in os._exit; reap it later if not yet gone.
        if not _reap(pid, os.WNOHANG)[0]:
            _unreaped.append(pid)
        return _payload(data), 0
    return _payload(data), _reap(pid, 0)[1]


def _complete(data: bytes) -> bool:
    return len(data) >= 8 and len(data) - 8 >= int.from_bytes(data[:8], "little")


def _payload(data: bytes) -> bytes:
    """The reply without its length prefix; b"" for none or a partial one."""
    return data[8:8 + int.from_bytes(data[:8], "little")] if _complete(data) else b""


def _reap(pid: int, flags: int) -> tuple[int, int]:
    try:
        return os.waitpid(pid, flags)
    except ChildProcessError:
        # SIGCHLD ignored (inherited from the build tool): the kernel reaped it,
        # and its status is lost; only the reply tells how it went.
        return pid, 0


def _check_finite(predicted: dict | None) -> None:
    """A prediction that is NaN or infinite means the model is broken for this
    module; ranking by it would be arbitrary, so it is a failure, not a choice."""
    import math

    if not predicted:
        return
    bad = [k for k, v in predicted.items() if not math.isfinite(v)]
    if bad:
        raise PolicyError(f"the model predicted non-finite sizes for {len(bad)} candidates "
                          f"(e.g. {bad[0]}: {predicted[bad[0]]})")


# --- turning a ranking into a decision ---------------------------------------

def _usable(module, cand: pipelines.Candidate) -> str | None:
    """None if cand may run on this module, else why not."""
    if cand.name == "oz":
        return None
    unsafe = pipelines.unsafe_passes(cand.passes)
    if unsafe:
        # The evidence stays in UNSAFE_PASSES: a build log gets one short line.
        why = pipelines.UNSAFE_PASSES[unsafe[0]].split(":", 1)[0]
        return f"pipeline contains {unsafe[0]}, which {why} (clang_llm.pipelines.UNSAFE_PASSES)"
    err = module.check(cand.passes)
    if err:
        return f"pipeline does not parse: {err}"
    if not cand.validated:
        # Not in the validated set: run it once in a forked child first, so an
        # LLVM abort or broken IR costs a fallback instead of the build.
        return module.trial(cand.passes)
    return None


def _decide_top1(module, ranked) -> Decision:
    cand = ranked[0]
    why = _usable(module, cand)
    if why:
        raise PolicyError(f"{cand.name}: {why}")
    return Decision(cand.passes, cand.codegen, cand.name)


# The measured sizes a decision log entry keeps per candidate (clang_llm.sizes).
LOG_SIZES = ("image", "ram", "text", "imports", "import_slots")


def _decide_verify(module, ranked, k: int) -> Decision:
    """Measure the top-k and clang's -Oz on copies; keep the smallest image
    (clang_llm.sizes: the bytes the module adds to the linked program).

    -Oz is always measured and wins ties, and a candidate that needs more RAM
    than -Oz is never taken, so no module comes out larger than under -Oz in
    image bytes or in RAM (the measurement is the same code generator clang
    then runs, on the module as the user's flags made it).
    """
    oz = pipelines.by_name("oz")
    trying = [oz] + [c for c in (getattr(ranked, "verify", None) or ranked) if c.name != "oz"][:k]
    measured, tried = {}, []
    for cand in trying:
        why = _usable(module, cand)
        if why:
            measured[cand.name] = {"error": why}
            continue
        try:
            sizes = module.measure(cand.passes, cand.codegen)
        except Exception as e:  # one failing candidate costs only itself
            measured[cand.name] = {"error": str(e)}
            continue
        measured[cand.name] = {k: sizes[k] for k in LOG_SIZES if k in sizes}
        tried.append((cand, sizes))
    if not tried or tried[0][0] is not oz:
        raise PolicyError("could not measure clang's -Oz pipeline")
    best = tried[sizes_mod.smallest([(c.name, s) for c, s in tried])][0]
    return Decision(best.passes, best.codegen, best.name, measured=measured)


def decide(module) -> Decision:
    name = backend_name()
    ranked = _rank(name, module)
    if not ranked:
        raise PolicyError(f"back end {name} returned no pipeline")
    if verify_mode():
        try:
            k = int(os.environ.get("CLANG_LLM_VERIFY_K", DEFAULT_VERIFY_K))
        except ValueError:
            raise PolicyError("CLANG_LLM_VERIFY_K must be an integer") from None
        decision = _decide_verify(module, ranked, max(k, 1))
    else:
        decision = _decide_top1(module, ranked)
    predicted = getattr(ranked, "predicted", None)
    _check_finite(predicted)
    if predicted:
        # The log line per module stays short: the top of the ranking, and
        # whatever was chosen or measured, not all ~100 candidates.
        keep = [c.name for c in ranked[:LOG_PREDICTIONS]] + [decision.name, *decision.measured]
        decision.predicted = {n: predicted[n] for n in dict.fromkeys(keep) if n in predicted}
    decision.note = getattr(ranked, "note", None)
    return decision


# Back ends whose decision cannot depend on the module.
MODULE_INDEPENDENT = {"oz", "best-fixed", "fixed"}
PRESET_VAR = "CLANG_LLM_PRESET_DECISION"
PRESET_NO_UNWIND_VAR = "CLANG_LLM_PRESET_DECISION_NO_UNWIND"


class _Flags:
    """A stand-in module that only says whether it has unwind tables."""

    def __init__(self, unwind_tables: bool):
        self.unwind_tables = unwind_tables


def preset_decision(unwind_tables: bool = True) -> str | None:
    """The decision, encoded for the plugin, when it cannot depend on the module
    (only on its flag set: unwind_tables).

    The driver already runs Python; deciding there spares every compiler process
    an embedded interpreter (the largest per-compile cost). Only safe, silent
    cases qualify: top-1 mode, no decision log, a module-independent back end, a
    validated candidate. Everything else (and any error) returns None, so the
    plugin asks plugin_entry() and the usual fallback and logging rules apply.
    """
    if (verify_mode() or os.environ.get("CLANG_LLM_LOG")
            or os.environ.get(CAPTURE_VAR) or backend_name() not in MODULE_INDEPENDENT):
        return None
    try:
        cand = _backend(backend_name())(_Flags(unwind_tables))[0]
    except Exception:
        return None
    if not cand.validated:
        return None
    return f"{cand.codegen}:{cand.passes}"


def preset_env() -> dict[str, str]:
    """The preset decisions as the plugin reads them: PRESET_VAR for a module
    with unwind tables (clang's default), PRESET_NO_UNWIND_VAR for one without
    (-fno-asynchronous-unwind-tables) where that differs; {} when there is no
    preset. The plugin picks by the module's uwtable flag."""
    first = preset_decision(True)
    if not first:
        return {}
    out = {PRESET_VAR: first}
    bare = preset_decision(False)
    if bare and bare != first:
        out[PRESET_NO_UNWIND_VAR] = bare
    return out


def _log(module, decision: Decision, seconds: float) -> None:
    path = os.environ.get("CLANG_LLM_LOG")
    if not path:
        return
    entry = {
        "time": time.time(),
        "source": module.source_filename,
        "module": module.name,
        "hash": module.content_hash(),
        "route": module.route,
        "backend": backend_name(),
        "mode": os.environ.get("CLANG_LLM_MODE", "") or "top1",
        "pipeline": decision.name,
        "codegen": decision.codegen,
        "fallback": decision.fallback,
        "policy_ms": round(seconds * 1000, 3),
    }
    if decision.name in ("custom", "fixed"):
        entry["passes"] = decision.passes
    if decision.measured:
        entry["measured"] = decision.measured
    if decision.predicted:
        entry["predicted"] = decision.predicted
    if decision.note:
        entry["note"] = decision.note
    import fcntl
    import json

    # One write per line under an exclusive lock: make -j appends concurrently.
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        # Strict JSON (no NaN or Infinity): other tools read these lines.
        f.write(json.dumps(entry, allow_nan=False) + "\n")


# --- capture mode (the data engine's corpus builds) ---------------------------

CAPTURE_VAR = "CLANG_LLM_CAPTURE"
CAPTURE_PKG_VAR = "CLANG_LLM_CAPTURE_PKG"
_capture_warned = False


def _own_cmdline() -> list[str]:
    # clang runs cc1 in-process, so this is the compile command that produced the module.
    with open("/proc/self/cmdline", "rb") as f:
        raw = f.read()
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]]


def _write_replacing(path: str, data: bytes) -> None:
    # make -j can compile one module in two processes at once: each writes its own
    # temporary file and renames it over, so no reader ever sees a partial file.
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def capture(module, directory: str) -> str:
    """Save module's (unoptimised) bitcode as directory/<hash>.bc with a sidecar
    <hash>.json (source, working directory, compiler argv, package label, IR
    statistics). Returns the hash. The sidecar is written last, so its presence
    means the capture is complete; a module already captured is not rewritten."""
    import json

    if not os.path.isabs(directory):
        # A relative directory would scatter captures over every directory make -C visits.
        raise ValueError(f"{CAPTURE_VAR} must be an absolute path, not {directory!r}")
    digest = module.content_hash()
    side = os.path.join(directory, digest + ".json")
    if os.path.exists(side):
        return digest
    os.makedirs(directory, exist_ok=True)
    bitcode = module.bitcode()
    meta = {
        "hash": digest,
        "source": module.source_filename,
        "cwd": os.getcwd(),
        "argv": _own_cmdline(),
        "package": os.environ.get(CAPTURE_PKG_VAR, ""),
        "route": module.route,
        "triple": module.triple,
        "bytes": len(bitcode),
        "ir_instructions": int(module.instruction_count()),
        "functions": int(module.function_count()),
    }
    _write_replacing(os.path.join(directory, digest + ".bc"), bitcode)
    _write_replacing(side, (json.dumps(meta, indent=1) + "\n").encode())
    return digest


def _capture_quietly(module, directory: str) -> None:
    """capture() that never costs the build: one warning line per process on
    stderr (stdout may be the object file), and the decision goes on as usual."""
    global _capture_warned
    try:
        capture(module, directory)
    except Exception as e:
        if not _capture_warned:
            _capture_warned = True
            print(f"clang-llm: warning: cannot capture '{module.source_filename}': "
                  f"{' '.join(f'{type(e).__name__}: {e}'.split())}", file=sys.stderr)


def plugin_entry(module) -> Decision:
    """Called by the plugin once per module. Never raises, except in strict mode."""
    capture_dir = os.environ.get(CAPTURE_VAR)
    if capture_dir:
        _capture_quietly(module, capture_dir)
    start = time.perf_counter()
    try:
        decision = decide(module)
    except Exception as e:
        reason = f"{type(e).__name__}: {e}" if not isinstance(e, PolicyError) else str(e)
        reason = " ".join(reason.split())
        if strict():
            _log(module, Decision(pipelines.oz_pipeline(), name="oz", fallback=reason),
                 time.perf_counter() - start)
            raise
        print(f"clang-llm: warning: using clang's -Oz pipeline for '{module.source_filename}': {reason}",
              file=sys.stderr)
        decision = Decision(pipelines.oz_pipeline(), name="oz", fallback=reason)
    _log(module, decision, time.perf_counter() - start)
    return decision
