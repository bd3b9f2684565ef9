"""``bench.bench_autoid_client`` cannot rot: its quick run (inside ``make test``) skips the stack, so one round of its
measurement runs here, on the shared local stack. Both sides' outputs are checked by the benchmark itself (the
credential_process document, the assumed role); no figure is checked: targets live in the benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_autoid_client import TARGET, measure
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def test_one_round_times_both_processes_and_leaves_the_bundle_as_enrolled(stack: RunningStack, tmp_path: Path) -> None:
    figure = measure(stack, tmp_path, rounds=1, warmup=0)

    # Wall time from spawn to exit: a Python process alone takes tens of milliseconds (a clock that missed the
    # child processes would give about a millisecond). A floor for what is measured, not a performance target.
    assert figure.value > 0.05
    assert figure.baseline_value is not None
    assert figure.baseline_value > 0.05
    assert figure.ratio == pytest.approx(figure.value / figure.baseline_value)
    assert figure.rounds == 1
    assert figure.met == (figure.ratio <= TARGET)
    assert json.loads((tmp_path / "workload-home" / "bundle.json").read_text())["gen"] == 1
