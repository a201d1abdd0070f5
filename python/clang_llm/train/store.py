"""The on-disk result store: (module hash, pipeline key) -> sizes or failure.

Every evaluation the data engine makes lands here, so any job can be stopped and
rerun without measuring anything twice. It is one SQLite file in WAL mode: the
process that runs evaluations is the only writer; label builders, notebooks and
a second reader may read it while it grows.

    with Store(path) as st:
        key = st.add_pipeline(passes, codegen=0)
        st.put(module_hash, key, Result(text=120, data=8, ir_instructions=40, error=None, seconds=0.1,
                                        image=200, ram=8, unwind=72))
        st.get(module_hash, key).size

A pipeline is named by ``pipeline_key(passes, codegen)`` everywhere in
the data engine (search logs, labels, selection); its text, often 5 KB, is kept
once in the ``pipelines`` table.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# 2: the image metric (clang_llm.sizes): image, ram and unwind bytes besides .text
# 3: image and ram count what the dynamic link adds for each imported symbol
SCHEMA_VERSION = 3


def pipeline_key(passes: str, codegen: int = 0) -> str:
    """The name of a pipeline with its code generator knob bits (pipelines.KNOBS;
    True, the outliner alone, is 1 as before the other knobs): 16 hex digits."""
    return hashlib.sha256(f"{int(codegen)}:{passes}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Result:
    """One evaluation: sizes in bytes (clang_llm.sizes: ``image`` is the
    objective, ``size``; ``ram`` must not grow), or the reason it failed.
    ``seconds`` is the time the evaluation took, failed or not."""

    text: int | None
    data: int | None
    ir_instructions: int | None
    error: str | None
    seconds: float
    image: int | None = None
    ram: int | None = None
    unwind: int | None = None

    @property
    def size(self) -> int | None:
        """The objective: the bytes the module adds to the linked program."""
        return self.image

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, error: str, seconds: float = 0.0) -> Result:
        return cls(None, None, None, error, seconds)

    @classmethod
    def measured(cls, sizes: dict, seconds: float) -> Result:
        """From a measure() dict (cpp/measure.h: Sizes)."""
        return cls(sizes["text"], sizes["data"], sizes["ir_instructions"], None, seconds,
                   sizes["image"], sizes["ram"], sizes["unwind"])


class Pipeline(NamedTuple):
    passes: str
    codegen: int  # knob bits; the table's column keeps its first name, machine_outliner


class Row(NamedTuple):
    """One stored result, flattened for label tables."""

    module_hash: str
    key: str
    text: int | None
    data: int | None
    ir_instructions: int | None
    error: str | None
    seconds: float
    image: int | None
    ram: int | None
    unwind: int | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pipelines (
    key TEXT PRIMARY KEY,
    passes TEXT NOT NULL,
    machine_outliner INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    module_hash TEXT NOT NULL,
    key TEXT NOT NULL REFERENCES pipelines(key),
    text INTEGER,
    data INTEGER,
    ir_instructions INTEGER,
    image INTEGER,
    ram INTEGER,
    unwind INTEGER,
    error TEXT,
    seconds REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (module_hash, key),
    CHECK ((error IS NULL) = (text IS NOT NULL))
) WITHOUT ROWID;
"""


class StoreError(Exception):
    """The store file is not one this code can use (other schema, unknown pipeline)."""


class Store:
    """A result store; open it with ``Store(path)`` (created if missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each put is its own transaction, so a killed run keeps
        # everything it reported; put_many groups rows explicitly.
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode syncs at checkpoints, not at every commit: a power
        # cut may lose the last results (they are recomputed), never corrupt.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        version = self.meta("schema")
        if version is None:
            self.set_meta("schema", str(SCHEMA_VERSION))
        elif version != str(SCHEMA_VERSION):
            raise StoreError(f"{self.path} has store schema {version}, this code reads {SCHEMA_VERSION}")
        self._known_keys: set[str] = set()

    # --- lifetime ---------------------------------------------------------

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- metadata ---------------------------------------------------------

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    # --- pipelines --------------------------------------------------------

    def add_pipeline(self, passes: str, codegen: int = 0) -> str:
        """Registers a pipeline (idempotent) and returns its key."""
        return self.add_pipelines([(passes, codegen)])[0]

    def add_pipelines(self, pipelines: Iterable[tuple[str, int]]) -> list[str]:
        rows = [(pipeline_key(p, cg), p, int(cg)) for p, cg in pipelines]
        new = [r for r in rows if r[0] not in self._known_keys]
        if new:
            with self._transaction():
                self._db.executemany(
                    "INSERT OR IGNORE INTO pipelines (key, passes, machine_outliner) VALUES (?, ?, ?)", new)
            self._known_keys.update(r[0] for r in new)
        return [r[0] for r in rows]

    def pipelines(self) -> dict[str, Pipeline]:
        cur = self._db.execute("SELECT key, passes, machine_outliner FROM pipelines")
        return {k: Pipeline(p, int(cg)) for k, p, cg in cur}

    def passes_of(self, key: str) -> Pipeline:
        """The pipeline stored under ``key``, as (passes, codegen)."""
        row = self._db.execute(
            "SELECT passes, machine_outliner FROM pipelines WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"no pipeline with key {key!r} in {self.path}")
        return Pipeline(row[0], int(row[1]))

    # --- results ----------------------------------------------------------

    def get(self, module_hash: str, key: str) -> Result | None:
        row = self._db.execute(
            "SELECT text, data, ir_instructions, error, seconds, image, ram, unwind FROM results "
            "WHERE module_hash = ? AND key = ?", (module_hash, key)).fetchone()
        return Result(*row) if row else None

    def get_many(self, module_hash: str) -> dict[str, Result]:
        """Every stored result of one module, by pipeline key."""
        cur = self._db.execute(
            "SELECT key, text, data, ir_instructions, error, seconds, image, ram, unwind FROM results "
            "WHERE module_hash = ?",
            (module_hash,))
        return {k: Result(*rest) for k, *rest in cur}

    def put(self, module_hash: str, key: str, result: Result) -> None:
        """Stores (or replaces) one result; its pipeline must have been added."""
        self.put_many([(module_hash, key, result)])

    def put_many(self, rows: Iterable[tuple[str, str, Result]]) -> None:
        now = time.time()
        values = []
        for h, k, r in rows:
            if (r.text is None) == (r.error is None):
                raise ValueError(f"result for ({h}, {k}) must have either sizes or an error")
            values.append((h, k, r.text, r.data, r.ir_instructions, r.image, r.ram, r.unwind, r.error,
                           float(r.seconds), now))
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO results "
                    "(module_hash, key, text, data, ir_instructions, image, ram, unwind, error, seconds, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        except sqlite3.IntegrityError as e:
            unknown = sorted({v[1] for v in values} - set(self.pipelines()))
            if unknown:
                raise StoreError(f"pipeline key(s) {', '.join(unknown)} not in the store: "
                                 "add_pipeline() them first") from e
            raise

    def created(self, module_hash: str, key: str) -> float | None:
        """When the result was stored (Unix time), or None."""
        row = self._db.execute("SELECT created FROM results WHERE module_hash = ? AND key = ?",
                               (module_hash, key)).fetchone()
        return row[0] if row else None

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM results").fetchone()[0]

    def module_hashes(self) -> list[str]:
        return [h for (h,) in self._db.execute("SELECT DISTINCT module_hash FROM results ORDER BY 1")]

    def table(self, module_hashes: Iterable[str] | None = None,
              keys: Iterable[str] | None = None) -> list[Row]:
        """All results, or those of the given modules and/or pipeline keys,
        ordered by (module_hash, key)."""
        where, args = [], []
        # A JSON array as one parameter: no limit on how many hashes a caller selects.
        if module_hashes is not None:
            where.append("module_hash IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(module_hashes)))
        if keys is not None:
            where.append("key IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(keys)))
        sql = "SELECT module_hash, key, text, data, ir_instructions, error, seconds, image, ram, unwind FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [Row(*r) for r in self._db.execute(sql + " ORDER BY module_hash, key", args)]

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
