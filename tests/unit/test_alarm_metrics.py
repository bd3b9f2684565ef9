"""The app's counts that template.yaml's alarms watch: each written as its own EMF document, with exactly the
dimensions the alarm names, and none of them leaking onto the invocation's other metrics."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.api import authorizer_response
from chalicelib.autoid.scheduled import ScheduledRotation
from chalicelib.aws.errors import AwsRejected, AwsUnavailable, translate
from chalicelib.observability import ROTATION_KINDS, metrics, rotation_failed
from chalicelib.sessions.exceptions import BearerRefused


@pytest.fixture(autouse=True)
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """As deployed: the tests' default (POWERTOOLS_METRICS_DISABLED=true) writes no metric at all."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def emf_documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def counted(text: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, dimensions) of every EMF document written."""
    found = []
    for document in emf_documents(text):
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Credport"
        (dimensions,) = directive["Dimensions"]  # one dimension set: the alarm names exactly these
        for metric in directive["Metrics"]:
            assert document[metric["Name"]] == [1.0]
            found.append((metric["Name"], {name: document[name] for name in dimensions}))
    return found


def throttled(code: str = "ThrottlingException", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Sign")


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 400), ("LimitExceededException", 400), ("X", 429)]
)
def test_a_throttled_call_counts_aws_throttled_by_service_and_operation(
    code: str, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    before = dict(metrics.metric_set)
    assert isinstance(translate(throttled(code, status), "kms", "Sign"), AwsUnavailable)
    assert counted(capsys.readouterr().out) == [
        ("AwsThrottled", {"service": "credport", "aws_service": "kms", "operation": "Sign"})
    ]
    assert metrics.metric_set == before  # its own metric set: no dimension leaks onto TokensIssued & co.


def test_other_failures_count_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(translate(throttled("AccessDeniedException", 400), "kms", "Sign"), AwsRejected)
    assert isinstance(translate(throttled("KMSInternalException", 500), "kms", "Sign"), AwsUnavailable)
    assert counted(capsys.readouterr().out) == []


def test_rotation_failures_count_by_kind_and_refuse_unknown_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ROTATION_KINDS:
        rotation_failed(kind)
    assert counted(capsys.readouterr().out) == [
        ("RotationFailed", {"service": "credport", "kind": kind}) for kind in ROTATION_KINDS
    ]
    with pytest.raises(ValueError, match="unknown rotation kind"):
        rotation_failed("everything")  # an unbounded dimension would make a metric per value


def test_a_failed_autoid_rotation_counts_and_still_raises(capsys: pytest.CaptureFixture[str]) -> None:
    def rotate(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("registry unreachable")

    scheduled = ScheduledRotation(
        SimpleNamespace(rotate=rotate),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        public_bucket="b",
        key_events_topic="t",
    )
    with pytest.raises(RuntimeError, match="registry unreachable"):
        scheduled.rotate("event-id")
    assert counted(capsys.readouterr().out) == [("RotationFailed", {"service": "credport", "kind": "autoid-keys"})]


def test_the_authorizer_counts_failures_not_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    request = SimpleNamespace(method_arn="arn:aws:execute-api:us-east-1:1:a/api/GET/session", token="Bearer x")

    def refuse(_arn: str, _token: str | None) -> Any:
        raise BearerRefused()

    def fail(_arn: str, _token: str | None) -> Any:
        raise ConnectionError("secrets manager unreachable")

    with pytest.raises(Exception, match="Unauthorized"):
        authorizer_response(request, refuse)  # type: ignore[arg-type]
    assert counted(capsys.readouterr().out) == []  # a 401 is the authorizer working
    with pytest.raises(ConnectionError):
        authorizer_response(request, fail)  # type: ignore[arg-type]
    assert counted(capsys.readouterr().out) == [("AuthorizerFailures", {"service": "credport"})]
