"""bench/stability.py: the ratio of each figure across runs, its median and largest deviation, and the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.stability import main, rows


def run(*figures: tuple[str, float | None]) -> dict[str, object]:
    return {"figures": [{"key": k, "name": f"figure {k}", "ratio": r} for k, r in figures]}


def test_rows_follow_each_ratio_across_runs() -> None:
    found = rows([run(("a", 1.0), ("b", None)), run(("a", 1.1)), run(("a", 0.9), ("c", 2.0))])
    assert [(name, values) for name, values, _, _ in found] == [
        ("figure a", [1.0, 1.1, 0.9]),
        ("figure c", [None, None, 2.0]),
    ]
    (_, _, median, deviation), _ = found
    assert median == 1.0
    assert deviation == pytest.approx(0.1)


def test_the_verdict_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steady, moving = tmp_path / "1.json", tmp_path / "2.json"
    steady.write_text(json.dumps(run(("a", 1.0))))
    moving.write_text(json.dumps(run(("a", 1.3))))
    assert main([str(steady), str(steady)]) == 0
    assert main([str(steady), str(steady), str(moving)]) == 1
    assert "figure a" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main([str(steady)]) == 2  # one run says nothing about stability
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"figures": []}))
    assert main([str(empty), str(empty)]) == 2
    partial = tmp_path / "3.json"
    partial.write_text(json.dumps(run(("b", 1.0))))
    assert main([str(steady), str(steady), str(partial)]) == 0
    assert "not in every run" in capsys.readouterr().err
