"""Each benchmark runs (one short round): `make bench` cannot rot unnoticed. No figure is checked here:
performance targets live in the benchmarks, never in timed tests."""

from __future__ import annotations

import importlib

import pytest

from bench.__main__ import modules
from bench.harness import Figure


@pytest.mark.parametrize("name", modules())
def test_the_benchmark_runs_and_reports_figures(name: str) -> None:
    figures = importlib.import_module(f"bench.{name}").run(quick=True)
    assert figures
    for figure in figures:
        assert isinstance(figure, Figure)
        assert figure.value > 0
        assert figure.target


def test_every_benchmark_module_is_found() -> None:
    assert "bench_autoid" in modules()
