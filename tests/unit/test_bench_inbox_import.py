"""The inbox-import benchmark's own logic, without a stack: its percentiles and targets, its sampling budget, and
the checks that make a broken import fail the run instead of becoming a figure (the stack-backed samples:
tests/e2e/test_bench_inbox_import.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError

import bench.bench_inbox_import as inbox_bench
from bench.bench_inbox_import import (
    MIN_SAMPLES,
    P50_TARGET,
    P99_TARGET,
    QUICK_NOTE,
    VALUE_BYTES,
    ImportFailed,
    Inbox,
    Sample,
    figures,
    measure,
    run,
)
from chalicelib.envelope import generate_recipient_key, open_envelope


def test_p50_and_p99_of_the_time_to_readable_against_their_targets() -> None:
    samples = [Sample(readable=n / 100, ended=n / 50) for n in range(1, 101)]  # 10 ms ... 1 s

    p50, p99 = figures(samples)

    assert p50.value == pytest.approx(0.505)
    assert p99.value == pytest.approx(0.9901)
    assert (p50.unit, p99.unit) == ("s", "s")
    assert (p50.target, p99.target) == (f"<= {P50_TARGET:g} s", f"<= {P99_TARGET:g} s")
    assert p50.met
    assert p99.met
    assert "n=100" in p50.note
    assert "p50 1010 ms" in p50.note  # when the import ended (file moved)


def test_a_slow_tail_misses_the_p99_target_only() -> None:
    samples = [Sample(readable=0.1, ended=0.2)] * 97 + [Sample(readable=P99_TARGET * 2, ended=P99_TARGET * 2)] * 3

    p50, p99 = figures(samples)

    assert p50.met
    assert not p99.met
    assert p99.value > P99_TARGET


def test_the_quick_run_starts_no_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_stack(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the quick run started a stack")

    monkeypatch.setattr(inbox_bench, "launch", no_stack)

    quick = run(quick=True)

    assert len(quick) == 2
    assert all(f.met and f.note == QUICK_NOTE and f.value > 0 for f in quick)


class _CountingInbox:
    def __init__(self, stack: Any) -> None:
        self.imports = 0

    def import_one(self) -> Sample:
        self.imports += 1
        return Sample(readable=float(self.imports), ended=float(self.imports))


def test_warm_up_imports_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_bench, "Inbox", _CountingInbox)

    samples = measure(object(), 5, warmup=2, spacing=0)  # type: ignore[arg-type]

    assert [s.readable for s in samples] == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_a_spent_budget_still_takes_the_minimum_of_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_bench, "Inbox", _CountingInbox)

    samples = measure(object(), 100, budget=0, warmup=0, spacing=0)  # type: ignore[arg-type]

    assert len(samples) == MIN_SAMPLES


# A sender's side with the embedded AWS replaced: what the benchmark does with what it reads back.


class _NotFound(Exception):
    pass


class _Secrets:
    class exceptions:
        ResourceNotFoundException = _NotFound

    def __init__(self, answer: str | None) -> None:
        self.answer = answer

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        if self.answer is None:
            raise _NotFound(SecretId)
        return {"SecretString": self.answer}


class _Bucket:
    def __init__(self, quarantined: dict[str, str] | None = None) -> None:
        self.put: dict[str, bytes] = {}
        self.quarantined = quarantined

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.put[Key] = Body

    def head_object(self, Bucket: str, Key: str) -> None:
        raise ClientError({"Error": {"Code": "404"}}, "HeadObject")

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if self.quarantined is None or not Key.startswith("quarantine/"):
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(json.dumps(self.quarantined).encode())}


def _inbox(secrets: _Secrets, bucket: _Bucket) -> Inbox:
    key = secrets.key if isinstance(secrets, _SealedValueEcho) else generate_recipient_key(2048)
    inbox = Inbox.__new__(Inbox)
    inbox._recipient, inbox._s3, inbox._secrets = key, bucket, secrets
    inbox._bucket, inbox._name_prefix = "transfer", "credport-dev/imported/"
    return inbox


class _SealedValueEcho(_Secrets):
    """Secrets Manager after a healthy import: the value sealed in the file just dropped."""

    def __init__(self, bucket: _Bucket) -> None:
        super().__init__(None)
        self.bucket, self.key = bucket, generate_recipient_key(2048)

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        (body,) = self.bucket.put.values()
        return {"SecretString": json.loads(open_envelope(body.decode(), {self.key.kid: self.key}).plaintext)["value"]}


def test_each_drop_is_a_sealed_64_kib_secret_under_a_fresh_importable_name() -> None:
    bucket = _Bucket()
    secrets = _SealedValueEcho(bucket)
    inbox = _inbox(secrets, bucket)
    documents = []
    for _ in range(2):
        sample = inbox.import_one()
        (body,) = [bucket.put.pop(k) for k in list(bucket.put)]
        documents.append(json.loads(open_envelope(body.decode(), {secrets.key.kid: secrets.key}).plaintext))
        assert 0 < sample.readable <= sample.ended

    for document in documents:
        assert len(document["value"].encode()) == VALUE_BYTES
        assert document["value"].isprintable()
        assert document["secret_name"].startswith("credport-dev/imported/bench-")
    assert documents[0]["secret_name"] != documents[1]["secret_name"]


def test_another_value_read_back_fails_the_run_without_showing_either() -> None:
    inbox = _inbox(_Secrets("not-what-was-sealed"), _Bucket())

    with pytest.raises(ImportFailed, match="another value than the one sealed") as failed:
        inbox.import_one()

    assert "not-what-was-sealed" not in str(failed.value)
    assert len(str(failed.value)) < 200  # the name and the file, never the 64 KiB value


def test_an_import_that_never_lands_fails_the_run_with_the_quarantine_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_bench, "SAMPLE_TIMEOUT", 0.05)
    inbox = _inbox(_Secrets(None), _Bucket(quarantined={"reason": "name_outside_prefix"}))

    with pytest.raises(ImportFailed, match=r"was not imported .*\(quarantined: name_outside_prefix\)"):
        inbox.import_one()


class _StoppedStack:
    def __init__(self, returncode: int) -> None:
        self.started_in = 6.0
        self.process = type("Process", (), {"returncode": returncode})()


@pytest.mark.parametrize(
    ("failures", "returncode", "said"),
    [(0, 0, None), (1, 0, "handler failed 1 time(s)"), (0, -9, "the stack exited -9")],
)
def test_a_handler_failure_or_an_unclean_stop_misses_both_targets_whatever_the_times(
    monkeypatch: pytest.MonkeyPatch, failures: int, returncode: int, said: str | None
) -> None:
    @contextmanager
    def stack() -> Iterator[_StoppedStack]:
        yield _StoppedStack(returncode)

    monkeypatch.setattr(inbox_bench, "temporary_stack", stack)
    monkeypatch.setattr(inbox_bench, "measure", lambda *a, **k: [Sample(readable=0.1, ended=0.2)] * 40)
    monkeypatch.setattr(inbox_bench, "failed_deliveries", lambda stack: failures)

    measured = run(quick=False)

    assert [f.value for f in measured] == [pytest.approx(0.1)] * 2
    assert all(f.met == (said is None) for f in measured)
    assert all(said is None or said in f.note for f in measured)
