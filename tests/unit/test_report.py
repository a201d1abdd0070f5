"""Published figures regenerate: docs/results.md and README.md's results block are
exactly what `python -m bench.report` renders from the committed reports in
bench/results, and every report there is published."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_report():
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_regenerating_changes_nothing():
    report = load_report()
    for path, text in report.outputs().items():
        assert path.read_text() == text, (f"{path.relative_to(REPO)} differs from what the reports say: "
                                          "run `python -m bench.report` and commit the result")


def test_every_report_is_rendered():
    report = load_report()
    rendered = {name for name, _ in report.REPORTS}
    found = {p.relative_to(report.RESULTS).as_posix() for p in report.RESULTS.rglob("*.json")}
    assert found - report.NOT_REPORTS == rendered, (
        f"reports without a renderer in bench/report.py: {sorted(found - report.NOT_REPORTS - rendered)} "
        "(add one to REPORTS, or list an input file that is not a report in NOT_REPORTS, or keep it out "
        f"of bench/results); renderers without a report: {sorted(rendered - found)}")


def test_readme_block_is_marked():
    text = (REPO / "README.md").read_text()
    report = load_report()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
