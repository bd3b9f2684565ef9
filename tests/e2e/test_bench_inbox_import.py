"""``bench.bench_inbox_import`` cannot rot: its quick run (inside ``make test``'s smoke run) starts no stack, so a few
of its samples run here, on the shared local stack, through the real S3 -> SQS -> handler path. Each sample checks
what it reads back itself (the value sealed, the file gone from ``inbox/``); no figure is checked: targets live in
the benchmark."""

from __future__ import annotations

import pytest

from bench.bench_inbox_import import figures, measure
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def test_a_few_drops_are_imported_and_each_import_ends_in_processed(stack: RunningStack) -> None:
    s3 = stack.client("s3")
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]

    def receipts() -> set[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="processed/bench-").get("Contents", [])
        return {item["Key"] for item in listed if item["Key"].endswith(".receipt.json")}

    before = receipts()
    samples = measure(stack, 3, warmup=1)

    assert len(samples) == 3
    assert all(0 < sample.readable <= sample.ended for sample in samples)
    assert len(receipts() - before) == 4  # the warm-up's import too
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="inbox/bench-").get("Contents")
    assert [figure.unit for figure in figures(samples)] == ["s", "s"]
