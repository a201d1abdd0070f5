"""Evaluate (module, pipeline) -> object sizes, in crash-isolated workers.

    jobs = [Job(h, f"{h}.bc", passes) for h in hashes for passes in pipelines]
    with Store(path) as store:
        results = run(jobs, store, workers=8, timeout=60)          # local processes
        results = run(jobs, store, backend="ray", address="auto")  # a Ray cluster
    results[(h, pipeline_key(passes))].text

Measuring runs in-process through ``clang_llm._core`` (the pipeline on a copy of
the module, then clang -Oz's code generator into memory), but never in the
calling process: some pipelines abort the process inside LLVM ("LLVM ERROR: LICM
requires MemorySSA") and some may never end. Each evaluation runs in a worker
process that the parent can lose: a worker that dies costs the evaluation it was
running, recorded as a failure with its exit status and the first error lines of
its stderr; one that overruns the per-evaluation timeout is killed and recorded
as "timeout after N s". The rest of its batch moves to a fresh worker.

Jobs already in the store are not evaluated again, and every result is written
to the store as it arrives, so an interrupted run loses only what was in flight.

Workers are fresh interpreters (``python -c``, like multiprocessing's "spawn"),
never forks of the caller, which may hold Ray's or LLVM's threads. They talk to
the parent over a socket pair with multiprocessing's Connection, and get one
batch at a time: the jobs of one module, which the worker parses once (and keeps,
with the previous one, for the next batch).

Under Ray each task evaluates one batch with the same machinery, in a child of
the Ray worker, so an LLVM abort kills that child, not the Ray worker; the driver
writes the store. Modules travel through Ray's object store, so the cluster's
nodes need clang-llm installed but not the driver's files.

Test hook (the only one): if CLANG_LLM_EVAL_TEST_HANG is set in a worker's
environment, an evaluation whose pipeline text equals it sleeps instead of
running, to exercise the timeout path deterministically.
"""

from __future__ import annotations

import collections
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
import dataclasses
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from .. import sizes
from . import data_root
from .store import Result, Store, StoreError, pipeline_key

HANG_ENV = "CLANG_LLM_EVAL_TEST_HANG"

# Parsed modules a worker keeps: a module's jobs may be split over consecutive batches.
MODULE_CACHE = 2
# A worker that cannot import the extension within this time is a broken set-up, not a result.
STARTUP_TIMEOUT = 120.0
# Most failure lines quoted from a dead worker's stderr.
REASON_LINES = 3
# Ray tasks carry at most this many evaluations: what an interrupted run loses.
RAY_BATCH = 32

BACKENDS = ("local", "ray")

# In a dead worker's stderr: lines that name a cause (LLVM's fatal errors and
# assertions, a Python exception), and the stack dump LLVM prints after them.
_CAUSE = re.compile(r"LLVM ERROR|Assertion|error:|^\w*(Error|Exception)\b")
_STACK_DUMP = re.compile(r"^(#\d+ |\d+\.\s|Stack dump|PLEASE submit|Traceback|File \")")


@dataclass(frozen=True)
class Job:
    """Evaluate the module in ``module_path`` (bitcode or IR, content hash
    ``module_hash``) under ``passes`` with the given code generator knob."""

    module_hash: str  # variant_hash(): the flag set rides on it
    module_path: str | Path
    passes: str
    codegen: int = 0  # pipelines.KNOBS bits

    @property
    def key(self) -> str:
        return pipeline_key(self.passes, self.codegen)


def variant_hash(module_hash: str, flag_set: str = "default") -> str:
    """The store's name for a module measured under a flag set (clang_llm.sizes
    .FLAG_SETS): the captured module itself for "default", else the hash with
    the flag set appended, so both live in one store without colliding."""
    if flag_set not in sizes.FLAG_SETS:
        raise ValueError(f"unknown flag set {flag_set!r}")
    return module_hash if flag_set == "default" else f"{module_hash}/{flag_set}"


def flag_set_of(module_hash: str) -> str:
    return module_hash.partition("/")[2] or "default"


class Results(dict):
    """{(module_hash, pipeline key): Result} for every job given to run(), with
    counts of where they came from."""

    reused: int = 0        # found in the store
    evaluated: int = 0     # measured (or failed) in this run
    failed: int = 0        # of those evaluated, how many failed
    not_stored: int = 0    # failures that say nothing about the pipeline (unreadable module, lost Ray task)
    wall_seconds: float = 0.0


@dataclass
class _Batch:
    module_hash: str
    path: str
    items: list[tuple[str, str, int]]  # (key, passes, codegen knob bits)


OnResult = Callable[[str, str, Result, bool], None]  # (module_hash, key, result, store it?)


# --- worker process ------------------------------------------------------------

_WORKER_BOOT = "import sys; from clang_llm.train.evaluate import _worker_main; _worker_main(int(sys.argv[1]))"


def _stderr_pos() -> int | None:
    try:
        return os.lseek(2, 0, os.SEEK_CUR)
    except OSError:
        return None


def _exit_with_parent() -> None:
    """A worker whose parent died (killed driver, cancelled Ray task) must not
    live on in a hung evaluation. measure() releases the GIL, so this runs."""
    parent = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _worker_main(fd: int) -> None:
    conn = Connection(fd)
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    from clang_llm import _core

    hang = os.environ.get(HANG_ENV)
    modules: collections.OrderedDict[str, object] = collections.OrderedDict()
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        module_hash, path, items = msg
        module = modules.pop(module_hash, None)
        if module is None:
            try:
                with open(path, "rb") as f:
                    module = _core.LoadedModule(f.read(), str(path))
                if flag_set_of(module_hash) == "no-unwind":
                    module.drop_unwind_tables()
            except Exception as e:  # unreadable file or bitcode: nothing to do with the pipelines
                conn.send(("load_error", f"cannot load module {path}: {type(e).__name__}: {e}"))
                continue
        modules[module_hash] = module
        while len(modules) > MODULE_CACHE:
            modules.popitem(last=False)
        for key, passes, codegen in items:
            if hang is not None and passes == hang:
                while True:
                    time.sleep(3600)
            t0 = time.perf_counter()
            try:
                s = module.measure(passes, codegen)
                r = Result.measured(s, time.perf_counter() - t0)
            except Exception as e:  # a pipeline that does not parse or fails in LLVM
                r = Result.failure(f"{type(e).__name__}: {e}", time.perf_counter() - t0)
            conn.send(("result", key, dataclasses.astuple(r), _stderr_pos()))


# --- parent side: a pool that survives its workers ---------------------------------

class _Worker:
    def __init__(self, proc: subprocess.Popen, conn: Connection, err_path: str, timeout: float):
        self.proc = proc
        self.timeout = timeout
        self.conn = conn
        self.err_path = err_path
        self.ready = False
        self.batch: _Batch | None = None
        self.done = 0                       # items of the batch answered
        self.since = time.monotonic()       # start of the current evaluation (or of start-up)
        self.err_pos = 0                    # stderr offset after the last answered evaluation

    @property
    def deadline(self) -> float:
        return self.since + (self.timeout if self.ready else STARTUP_TIMEOUT)


class WorkerError(RuntimeError):
    """Workers cannot run at all here (the extension does not import, the
    interpreter cannot start): every result would be the same failure."""


class WorkerPool:
    """``workers`` evaluation processes with a per-evaluation ``timeout``.

    run() may be called many times; workers (and the modules they hold) carry
    over. Close it (or use ``with``) to end the workers.
    """

    def __init__(self, workers: int, timeout: float):
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.size = workers
        self.timeout = float(timeout)
        self._tmp = tempfile.TemporaryDirectory(prefix="clang-llm-eval-")
        self._workers: list[_Worker] = []
        self._spawned = 0
        # Deaths of idle workers cost no result; many of them mean the machine
        # is killing our processes, and going on would spin.
        self._idle_deaths = 0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:
            if w.batch is not None:  # interrupted mid-batch: its result would be thrown away anyway
                w.proc.kill()
                continue
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self._workers:
            try:
                w.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.conn.close()
        self._workers = []
        self._tmp.cleanup()

    # --- workers --------------------------------------------------------------

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        err_path = os.path.join(self._tmp.name, f"worker{self._spawned}.stderr")
        self._spawned += 1
        try:
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _WORKER_BOOT, str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        finally:
            theirs.close()
        return _Worker(proc, Connection(ours.detach()), err_path, self.timeout)

    def _stderr_reason(self, w: _Worker) -> str:
        """The lines that say why a worker died, from what it wrote since its
        last answered evaluation; LLVM prints the cause first, then a stack dump."""
        try:
            with open(w.err_path, "rb") as f:
                f.seek(w.err_pos)
                text = f.read(1 << 16).decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        causes = [ln for ln in lines if _CAUSE.search(ln)]
        picked = causes or [ln for ln in lines if not _STACK_DUMP.match(ln)] or lines
        return " | ".join(ln[:300] for ln in picked[:REASON_LINES])

    def _exit_reason(self, w: _Worker) -> str:
        code = w.proc.returncode
        if code is not None and code < 0:
            try:
                why = f"worker killed by {signal.Signals(-code).name}"
            except ValueError:
                why = f"worker killed by signal {-code}"
        else:
            why = f"worker exited with status {code}"
        detail = self._stderr_reason(w)
        return f"{why}: {detail}" if detail else why

    def _reap(self, w: _Worker, kill: bool) -> None:
        if kill:
            w.proc.kill()
        try:
            w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its socket but lives on: not ours to wait for
            w.proc.kill()
            w.proc.wait()
        w.conn.close()

    def _replace(self, w: _Worker, why: str, queue: collections.deque, on_result: OnResult) -> None:
        """w is gone; charge its current evaluation with `why`, requeue the rest."""
        if not w.ready:
            raise WorkerError(f"an evaluation worker failed to start ({why})")
        if w.batch is not None:
            b = w.batch
            key = b.items[w.done][0]
            on_result(b.module_hash, key, Result.failure(why, time.monotonic() - w.since), True)
            rest = b.items[w.done + 1:]
            if rest:
                queue.appendleft(_Batch(b.module_hash, b.path, rest))
        else:
            self._idle_deaths += 1
            if self._idle_deaths > 4 * self.size + 10:
                raise WorkerError(f"idle evaluation workers keep dying ({why})")
        self._workers[self._workers.index(w)] = self._spawn()

    # --- the loop ---------------------------------------------------------------

    def run(self, batches: Iterable[_Batch], on_result: OnResult) -> None:
        """Evaluates the batches, calling on_result once per item, in the
        parent, as results arrive."""
        queue = collections.deque(b for b in batches if b.items)
        if not queue:
            return
        while len(self._workers) < min(self.size, len(queue)):
            self._workers.append(self._spawn())
        try:
            self._loop(queue, on_result)
        except BaseException:
            # Interrupted (Ctrl-C, a failing callback): workers in the middle of
            # a batch would answer the next run() with stale results.
            for w in [w for w in self._workers if w.batch is not None or not w.ready]:
                self._reap(w, kill=True)
                self._workers.remove(w)
            raise

    def _loop(self, queue: collections.deque, on_result: OnResult) -> None:
        while queue or any(w.batch is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.batch is None and queue:
                    self._assign(w, queue.popleft(), queue)
            # Idle workers are not watched: one that died idle shows when it gets a batch.
            watched = [w for w in self._workers if w.batch is not None or not w.ready]
            by_conn = {w.conn: w for w in watched}
            left = min(w.deadline for w in watched) - time.monotonic()
            for conn in wait(list(by_conn), timeout=max(0.0, left)):
                self._drain(by_conn[conn], queue, on_result)
            now = time.monotonic()
            for w in list(self._workers):
                if (w.batch is not None or not w.ready) and now > w.deadline and w.proc.poll() is None:
                    self._reap(w, kill=True)
                    why = f"timeout after {self.timeout:g} s" if w.ready else \
                        f"no sign of life after {STARTUP_TIMEOUT:g} s"
                    self._replace(w, why, queue, on_result)

    def _assign(self, w: _Worker, b: _Batch, queue: collections.deque) -> None:
        w.batch, w.done, w.since = b, 0, time.monotonic()
        try:
            w.conn.send((b.module_hash, b.path, b.items))
        except OSError:
            # It died while idle: the batch has not started, so nothing is charged.
            w.batch = None
            queue.appendleft(b)
            self._reap(w, kill=True)
            self._replace(w, self._exit_reason(w), queue, lambda *a: None)

    def _drain(self, w: _Worker, queue: collections.deque, on_result: OnResult) -> None:
        while True:
            try:
                if not w.conn.poll():
                    return
                msg = w.conn.recv()
            except (EOFError, OSError):  # the worker is gone
                self._reap(w, kill=False)
                self._replace(w, self._exit_reason(w), queue, on_result)
                return
            self._handle(w, msg, on_result)

    def _handle(self, w: _Worker, msg: tuple, on_result: OnResult) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready, w.since = True, time.monotonic()
            return
        b = w.batch
        if b is None:
            raise RuntimeError(f"evaluation worker sent {kind!r} with no batch assigned")
        if kind == "result":
            key, fields, pos = msg[1:]
            if key != b.items[w.done][0]:
                raise RuntimeError(f"evaluation worker answered {key}, expected {b.items[w.done][0]}")
            on_result(b.module_hash, key, Result(*fields), True)
            w.done += 1
            w.since = time.monotonic()
            if pos is not None:
                w.err_pos = pos
            if w.done == len(b.items):
                w.batch = None
        elif kind == "load_error":
            for key, _, _ in b.items:
                on_result(b.module_hash, key, Result.failure(msg[1]), False)
            w.batch = None
        else:
            raise RuntimeError(f"unknown message from an evaluation worker: {kind!r}")


# --- batching ------------------------------------------------------------------

def _batches(by_module: dict[str, tuple[str, list]], parallel: int, max_size: int) -> list[_Batch]:
    """A module's jobs in as few batches as keep every worker busy to the end:
    with many modules that is one per module (parsed once), with few modules
    their jobs are split so that all workers share them."""
    total = sum(len(items) for _, items in by_module.values())
    size = max(1, min(max_size, math.ceil(total / (4 * parallel))))
    out = []
    for h, (path, items) in by_module.items():
        n = math.ceil(len(items) / size)
        step = math.ceil(len(items) / n)
        out.extend(_Batch(h, path, items[i:i + step]) for i in range(0, len(items), step))
    return out


# --- the public entry point ----------------------------------------------------

def run(jobs: Iterable[Job], store: Store, *, backend: str = "local", workers: int | None = None,
        timeout: float = 60.0, address: str | None = None, progress: bool = True,
        desc: str = "evaluate", retry_failed: bool = False) -> Results:
    """Evaluates every job not yet in ``store`` and returns all jobs' results.

    Duplicate jobs are evaluated once. Each result is stored as it arrives.
    Stored failures are returned as they are unless ``retry_failed``. Failures
    that say nothing about the pipeline (an unreadable module file, a Ray task
    lost with its node) are returned but not stored, so a rerun tries again.

    backend "local": ``workers`` processes on this machine (default: all cores).
    backend "ray": tasks on the Ray cluster at ``address`` (None: a local Ray
    instance with ``workers`` CPUs, unless Ray is already initialised).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    _check_llvm(store)
    t0 = time.monotonic()

    results = Results()
    todo: dict[tuple[str, str], Job] = {}
    stored_by_module: dict[str, dict[str, Result]] = {}
    for job in jobs:
        ident = (job.module_hash, job.key)
        if ident in results or ident in todo:
            continue
        stored = stored_by_module.get(job.module_hash)
        if stored is None:
            stored = stored_by_module[job.module_hash] = store.get_many(job.module_hash)
        hit = stored.get(ident[1])
        if hit is not None and (hit.ok or not retry_failed):
            results[ident] = hit
        else:
            todo[ident] = job
    results.reused = len(results)
    stored_by_module.clear()

    missing = sorted({str(j.module_path) for j in todo.values() if not os.path.isfile(j.module_path)})
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(f"module file(s) not found: {', '.join(missing[:3])}{more}")

    store.add_pipelines({(j.passes, j.codegen) for j in todo.values()})
    by_module: dict[str, tuple[str, list]] = {}
    for (h, key), j in todo.items():
        by_module.setdefault(h, (str(j.module_path), []))[1].append((key, j.passes, j.codegen))

    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit="eval", dynamic_ncols=True, smoothing=0.05,
               disable=None if progress else True)

    def on_result(module_hash: str, key: str, result: Result, persist: bool) -> None:
        if persist:
            store.put(module_hash, key, result)
        else:
            results.not_stored += 1
        results[(module_hash, key)] = result
        results.evaluated += 1
        if not result.ok:
            results.failed += 1
            bar.set_postfix(failed=results.failed, refresh=False)
        bar.update(1)

    try:
        if todo and backend == "local":
            batches = _batches(by_module, workers, max_size=len(todo))
            with WorkerPool(min(workers, len(batches)), timeout) as pool:
                pool.run(batches, on_result)
        elif todo:
            _run_ray(by_module, workers, timeout, address, on_result)
    finally:
        bar.close()
    results.wall_seconds = time.monotonic() - t0
    return results


def _check_llvm(store: Store) -> None:
    """Sizes from another LLVM are other numbers: one store, one LLVM."""
    from clang_llm import _core

    have = store.meta("llvm")
    if have is None:
        store.set_meta("llvm", _core.LLVM_VERSION)
    elif have != _core.LLVM_VERSION:
        raise StoreError(f"{store.path} holds results of LLVM {have}; this is LLVM {_core.LLVM_VERSION}")


# --- Ray -------------------------------------------------------------------------

_ray_pool: WorkerPool | None = None


def _ray_evaluate(module_hash: str, module: bytes, items: list, timeout: float) -> list[tuple]:
    """One Ray task: a batch of one module, evaluated in a child of this Ray
    worker. The child (and the modules it holds) is kept for the worker's next task."""
    global _ray_pool
    if _ray_pool is None or _ray_pool.timeout != timeout:
        if _ray_pool is not None:
            _ray_pool.close()
        _ray_pool = WorkerPool(1, timeout)
    fd, path = tempfile.mkstemp(suffix=".bc", prefix=f"{module_hash}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(module)
        out: list[tuple] = []
        _ray_pool.run([_Batch(module_hash, path, items)],
                      lambda _h, key, r, persist: out.append(
                          (key, dataclasses.astuple(r), persist)))
        return out
    finally:
        os.unlink(path)


def _run_ray(by_module: dict[str, tuple[str, list]], workers: int, timeout: float,
             address: str | None, on_result: OnResult) -> None:
    import ray

    started = False
    if not ray.is_initialized():
        opts = {"include_dashboard": False, "logging_level": "WARNING"}
        if address is None:
            ray.init(num_cpus=workers, **opts)
        else:
            ray.init(address=address, **opts)
        started = True
    pending: dict = {}
    try:
        task = ray.remote(num_cpus=1)(_ray_evaluate)
        parallel = max(1, int(ray.cluster_resources().get("CPU", workers)))
        batches = collections.deque(_batches(by_module, parallel, RAY_BATCH))
        left = collections.Counter(b.module_hash for b in batches)
        refs: dict[str, object] = {}
        # Bounded submission: modules go to the object store only shortly before
        # their tasks run, and Ctrl-C has little to cancel.
        while batches or pending:
            while batches and len(pending) < 2 * parallel:
                b = batches.popleft()
                if b.module_hash not in refs:
                    with open(b.path, "rb") as f:
                        refs[b.module_hash] = ray.put(f.read())
                pending[task.remote(b.module_hash, refs[b.module_hash], b.items, timeout)] = b
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                b = pending.pop(ref)
                left[b.module_hash] -= 1
                if not left[b.module_hash]:
                    del refs[b.module_hash]
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:
                    # A task's own exception is wrapped; its cause is the message worth keeping.
                    cause = getattr(e, "cause", None) or e
                    text = (str(cause).strip().splitlines() or [""])[-1][:300]
                    why = f"ray task failed: {type(cause).__name__}: {text}"
                    for key, _, _ in b.items:
                        on_result(b.module_hash, key, Result.failure(why), False)
                    continue
                for key, fields, persist in out:
                    on_result(b.module_hash, key, Result(*fields), persist)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


# --- command line ------------------------------------------------------------------

def find_modules(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(content hash, file) for every .bc under the given folders or files.
    Files named <16 hex digits>.bc are taken to be named by their hash (as the
    corpus stores them); others are parsed to compute it."""
    found: dict[str, Path] = {}
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.rglob("*.bc"))
        elif p.is_file():
            files = [p]
        else:
            raise FileNotFoundError(f"no such module file or folder: {p}")
        for f in files:
            h = f.stem if _is_hash(f.stem) else _content_hash(f)
            found.setdefault(h, f)
    return sorted(found.items())


def _is_hash(s: str) -> bool:
    return len(s) == 16 and all(c in "0123456789abcdef" for c in s)


def _content_hash(f: Path) -> str:
    from clang_llm import _core

    try:
        return _core.LoadedModule(f.read_bytes(), str(f)).content_hash()
    except ValueError as e:
        raise ValueError(f"{f}: {e}") from e


def _pipelines_from_args(args) -> list[tuple[str, str, int]]:
    """(name, passes, codegen knob bits) to evaluate."""
    from clang_llm import pipelines

    out = []
    if args.candidates or not args.pipeline_file:
        out += [(c.name, c.passes, c.codegen) for c in pipelines.candidates()]
    for f in args.pipeline_file:
        text = Path(f).read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"pipeline file {f} is empty")
        # As for CLANG_LLM_PIPELINE_FILE: a candidate's name brings its codegen knobs.
        try:
            c = pipelines.by_name(text)
            out.append((c.name, c.passes, c.codegen))
        except KeyError:
            out.append((Path(f).name, text, 0))
    unique = {}
    for name, passes, mo in out:
        unique.setdefault(pipeline_key(passes, mo), (name, passes, mo))
    return list(unique.values())


def _cmd_evaluate(args) -> int:
    mods = find_modules(args.modules)
    if not mods:
        print("clang-llm-data evaluate: no .bc modules found", file=sys.stderr)
        return 2
    pipes = _pipelines_from_args(args)
    jobs = [Job(h, f, passes, mo) for h, f in mods for _, passes, mo in pipes]
    store_path = args.store or data_root() / "store.sqlite"
    with Store(store_path) as store:
        res = run(jobs, store, backend=args.backend, workers=args.workers, timeout=args.timeout,
                  address=args.address, progress=not args.no_progress, retry_failed=args.retry_failed)
    print(f"{len(mods)} modules x {len(pipes)} pipelines: {res.evaluated} evaluated "
          f"({res.failed} failed), {res.reused} already in {store_path}; {res.wall_seconds:.1f} s")
    width = max(len(n) for n, _, _ in pipes)
    for name, passes, mo in pipes:
        key = pipeline_key(passes, mo)
        rs = [res[(h, key)] for h, _ in mods]
        ok = [r for r in rs if r.ok]
        print(f"  {name:{width}}  {key}  ok {len(ok):6}  failed {len(rs) - len(ok):5}  "
              f".text {sum(r.text for r in ok):12}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="measure modules under pipelines into the result store",
        description="Evaluate every module under every pipeline (default: the candidate set) "
                    "in crash-isolated workers; results already in the store are reused.")
    p.add_argument("--modules", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help=".bc files, or folders searched for them (files named <hash>.bc are trusted)")
    p.add_argument("--candidates", action="store_true",
                   help="the candidate pipelines (the default unless --pipeline-file is given)")
    p.add_argument("--pipeline-file", nargs="+", action="extend", default=[], metavar="F",
                   help="a file holding one pass pipeline or a candidate's name")
    p.add_argument("--store", type=Path, help="the result store (default: DATA/store.sqlite)")
    p.add_argument("--backend", choices=BACKENDS, default="local")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per evaluation (default 60)")
    p.add_argument("--retry-failed", action="store_true", help="evaluate stored failures again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)
