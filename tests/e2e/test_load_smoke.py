"""``make load`` cannot rot: a few seconds of the load run (its own stack, one round of rotations) must end
with no error, no rejected valid token, and traffic of every kind. No latency or throughput is checked here:
figures belong to the load run itself, never to timed tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.load import OPERATIONS, LoadOptions, format_table, run

pytestmark = pytest.mark.e2e


def test_a_short_load_run_through_one_rotation_round_has_no_errors_and_no_rejections(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    summary = run(LoadOptions(duration=5, workers=3, rotate_every=10, out=out))

    assert json.loads(out.read_text())["totals"] == summary["totals"]
    assert summary["totals"]["errors"] == 0, summary["error_samples"]
    assert summary["totals"]["rejected_valid_tokens"] == 0, summary["error_samples"]
    for op in OPERATIONS:
        assert summary["operations"][op]["count"] > 0, op
    # One round: each key rotated once, while the workers ran, and the workers went on past it.
    assert summary["totals"]["rotations_failed"] == 0, summary["rotations"]
    assert sorted(r["rotation"] for r in summary["rotations"]) == ["autoid_keys", "session_key", "signing_keys"]
    assert summary["observed"]["autoid_generation"]["max_at_end"] >= 2  # a bundle took the new generation
    assert summary["passed"]
    assert "PASSED" in format_table(summary)
