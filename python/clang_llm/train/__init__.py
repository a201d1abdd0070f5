"""The data engine: corpus, in-process evaluation, pipeline search, candidate
selection, validation and labels (``clang-llm-data ...``).

Nothing here is imported by the compiler-side code (driver, policy, plugin): it
needs numpy, pyarrow, tqdm and optionally Ray (``pip install clang-llm[data]``).

    corpus.py     capture builds of Debian source packages -> deduplicated modules, split
    store.py      on-disk results keyed by (module hash, pipeline key); resumable
    evaluate.py   (module, pipeline) -> sizes in crash-isolated workers; local pool or Ray
    passes.py     the pipeline grammar (parse/print) and the pass vocabulary search draws from
    search.py     per-module search: random pipelines, mutations of -Oz, additions; minimisation
    select.py     greedy candidate-set selection with cross-validated reports
    validate.py   the correctness gate (determinism, gcc torture tests, csmith)
    labels.py     the label table: .text of every module under every candidate
    model.py      the policy model: tokenizer, encoding, ablations, training, ONNX export

Large, rebuildable things (modules, the result store, search logs) live under
``data_root()``; the small derived artifacts that are committed (manifest,
split, statistics, label table, reports) live in ``clang_llm/train/data/``.
"""

from __future__ import annotations

import os
from pathlib import Path


# The source checkout (reports default to its bench/results).
REPO = Path(__file__).resolve().parents[3]


def data_root() -> Path:
    """Where rebuildable data goes (CLANG_LLM_DATA, default ~/.cache/clang-llm/data)."""
    root = os.environ.get("CLANG_LLM_DATA") or Path.home() / ".cache" / "clang-llm" / "data"
    return Path(root)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace path whole: readers, an interrupted run and other writers (other
    processes or threads) never see half a file."""
    import threading

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def committed_dir() -> Path:
    """The source tree's folder of committed data-engine artifacts."""
    return Path(__file__).with_name("data")


def cpu_model() -> str:
    """The CPU's model name, for the machine line of every report."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
