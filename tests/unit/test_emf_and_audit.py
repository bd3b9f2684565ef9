"""credport's own EMF writer and audit lines write exactly what Powertools' Metrics and Logger would (the same
documents and lines, key for key, in the same order), so CloudWatch, alarms and log queries see no difference."""

from __future__ import annotations

import functools
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit as PowertoolsUnit

from chalicelib.audit import AuditLine
from chalicelib.emf import MAX_VALUES, EmfMetrics, MetricUnit, metrics_disabled

NOW = 1_764_640_000.25  # 2025-12-02 01:46:40.250 UTC


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def written() -> tuple[list[str], EmfMetrics]:
    lines: list[str] = []
    return lines, EmfMetrics("Credport", "credport", clock=lambda: NOW, write=lines.append)


def test_an_invocations_counts_are_the_document_powertools_writes(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    lines, ours = written()
    theirs = Metrics(namespace="Credport", service="credport")
    theirs.clear_metrics()
    for name in ("TokensIssued", "TokensIssued", "SessionsStarted"):
        ours.add_metric(name=name, unit=MetricUnit.Count, value=1)
        theirs.add_metric(name=name, unit=PowertoolsUnit.Count, value=1)
    theirs.set_timestamp(int(NOW * 1000))
    assert ours.metric_set == theirs.metric_set  # the shape tests and callers read
    ours.flush_metrics()
    theirs.flush_metrics()
    (line,) = lines
    expected = capsys.readouterr().out.strip()
    assert json.loads(line) == json.loads(expected)
    assert list(json.loads(line)) == list(json.loads(expected))  # the same members in the same order
    assert json.loads(line)["TokensIssued"] == [1.0, 1.0]
    assert ours.metric_set == {}


def test_a_flush_without_counts_writes_nothing_and_disabled_metrics_still_empty_the_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, ours = written()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    ours.flush_metrics()
    assert lines == []
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    ours.add_metric(name="TokensIssued", unit="Count", value=1)
    ours.flush_metrics()
    assert (lines, ours.metric_set) == ([], {})  # nothing kept: a long-running local stack does not grow


@pytest.mark.parametrize(
    ("disabled", "dev", "expected"),
    [(None, None, False), ("true", None, True), ("false", "true", False), (None, "true", True), ("1", None, True)],
)
def test_the_switches_are_powertools_own(
    monkeypatch: pytest.MonkeyPatch, disabled: str | None, dev: str | None, expected: bool
) -> None:
    for name, value in (("POWERTOOLS_METRICS_DISABLED", disabled), ("POWERTOOLS_DEV", dev)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert metrics_disabled() is expected


def test_a_hundred_values_are_written_at_once(metrics_on: None) -> None:
    lines, ours = written()
    for _ in range(MAX_VALUES + 1):
        ours.add_metric(name="TokensIssued", unit="Count", value=1)
    assert len(lines) == 1
    assert json.loads(lines[0])["TokensIssued"] == [1.0] * MAX_VALUES
    assert ours.metric_set["TokensIssued"]["Value"] == [1.0]


@pytest.mark.parametrize("name", ["", "has space", 'quote"d', "x" * 256, "née"])
def test_names_json_would_escape_are_refused(name: str) -> None:
    _, ours = written()
    with pytest.raises(ValueError, match="not a metric"):
        ours.add_metric(name=name, unit="Count", value=1)
    with pytest.raises(ValueError, match="not a metric"):
        ours.count_once("Throttled", **{name or "x y": "v"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1"])
def test_values_are_finite_numbers(value: Any) -> None:
    _, ours = written()
    with pytest.raises(ValueError, match="finite number"):
        ours.add_metric(name="TokensIssued", unit="Count", value=value)


def test_count_once_is_a_document_of_its_own(metrics_on: None) -> None:
    lines, ours = written()
    ours.add_metric(name="TokensIssued", unit="Count", value=1)
    ours.count_once("AwsThrottled", aws_service="kms", operation="Sign")
    (line,) = lines
    document = json.loads(line)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service", "aws_service", "operation"]]
    assert directive["Metrics"] == [{"Name": "AwsThrottled", "Unit": "Count"}]
    assert (document["AwsThrottled"], document["operation"]) == ([1.0], "Sign")
    assert list(ours.metric_set) == ["TokensIssued"]  # the invocation's own set is untouched


# --- audit lines ---------------------------------------------------------------------------------------------


@pytest.fixture
def powertools_logger() -> Iterator[tuple[Logger, io.StringIO]]:
    """A Powertools logger whose records reach its own stream only (as in Lambda, where Powertools silences the
    root handler for it): pytest's own capture handler on the root logger is out of its way."""
    stream = io.StringIO()
    logger = Logger(service=f"audit-test-{uuid.uuid4().hex}", logger_handler=logging.StreamHandler(stream))
    handlers = logger._logger.handlers
    logger._logger.propagate = False
    logger.thread_safe_append_keys(invocation_id="inv-1", request_id="req-1")
    try:
        yield logger, stream
    finally:
        logger.thread_safe_remove_keys(["invocation_id", "request_id"])
        logger._logger.handlers, logger._logger.propagate = handlers, True


FIELDS: dict[str, Any] = {
    "sub": "arn:aws:iam::123456789012:role/app",
    "aud": ["https://a.example", "https://b.example"],
    "alg": "ES256",
    "jti": "j" * 24,
    "kid": None,  # None is left out, as Powertools leaves it out
    "ttl": 900,
    "rule": "default",
    "request_tag_keys": ["tëam"],  # not ASCII: written as is (Powertools' ensure_ascii=False)
}


def own_stream_only(logger: Logger) -> None:
    """pytest adds its capture handlers to the loggers of a running test: here only the logger's own stream stays."""
    std = logger._logger
    std.handlers = [h for h in std.handlers if type(h) is logging.StreamHandler]


def test_an_audit_line_is_the_line_powertools_writes(
    powertools_logger: tuple[Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = powertools_logger
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8")
    own_stream_only(logger)
    line = AuditLine(logger, "token issued")
    assert line._sole_handler() is not None  # the fast path: nothing but the logger's own stream reads the line
    line(**FIELDS)
    logger.info("token issued", extra=FIELDS)
    ours, theirs = (json.loads(text) for text in stream.getvalue().splitlines())
    del ours["timestamp"], theirs["timestamp"]  # two instants: the format is compared below, at one instant
    assert ours.pop("location").split(":")[0] == theirs.pop("location").split(":")[0]
    assert ours == theirs
    assert list(ours) == list(theirs)
    assert ours["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert "kid" not in ours
    assert ours["request_tag_keys"] == ["tëam"]


def test_the_timestamp_is_powertools_format(powertools_logger: tuple[Logger, io.StringIO]) -> None:
    logger, stream = powertools_logger
    own_stream_only(logger)
    for instant in (NOW, NOW + 0.5, NOW + 1.999):
        AuditLine(logger, "token issued", clock=functools.partial(float, instant))(sub="x")
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = instant, int((instant - int(instant)) * 1000)
        expected = logger.registered_formatter.formatTime(record)
        assert json.loads(stream.getvalue().splitlines()[-1])["timestamp"] == expected


def test_a_record_reader_gets_a_record(
    powertools_logger: tuple[Logger, io.StringIO], caplog: pytest.LogCaptureFixture
) -> None:
    """caplog's handler sits on the root logger: the line goes through logging, so it is captured as a record,
    and the location is still the caller's."""
    logger, stream = powertools_logger
    logger._logger.propagate = True  # to the root logger, where caplog's handler is
    line = AuditLine(logger, "token issued")
    assert line._sole_handler() is None
    caplog.set_level(logging.INFO)
    line(sub="x", ttl=60)
    record = next(r for r in caplog.records if r.getMessage() == "token issued")
    fields = vars(record)
    assert (fields["sub"], fields["ttl"], record.funcName) == ("x", 60, "test_a_record_reader_gets_a_record")
    assert json.loads(stream.getvalue())["sub"] == "x"


def test_below_its_level_nothing_is_written(powertools_logger: tuple[Logger, io.StringIO]) -> None:
    logger, stream = powertools_logger
    own_stream_only(logger)
    logger.setLevel(logging.WARNING)
    AuditLine(logger, "token issued")(sub="x")
    assert stream.getvalue() == ""


def test_a_json_message_is_refused(powertools_logger: tuple[Logger, io.StringIO]) -> None:
    with pytest.raises(ValueError, match="plain text"):
        AuditLine(powertools_logger[0], '{"a": 1}')


def test_the_format_s_own_keys_are_followed_when_they_change(powertools_logger: tuple[Logger, io.StringIO]) -> None:
    """Keys appended to the logger (its log_format) after the line was bound, and a field named like one of them
    (which takes that key's place in Powertools' line), are written as Powertools writes them."""
    logger, stream = powertools_logger
    own_stream_only(logger)
    line = AuditLine(logger, "token issued")
    line(sub="x")
    logger.append_keys(stage="prod", region=None)
    line(sub="y")
    logger.info("token issued", extra={"sub": "y"})
    line(sub="z", service="other")  # the format's own key, as a field
    logger.info("token issued", extra={"sub": "z", "service": "other"})
    first, ours, theirs, ours_collided, theirs_collided = (json.loads(t) for t in stream.getvalue().splitlines())
    assert "stage" not in first
    for a, b in ((ours, theirs), (ours_collided, theirs_collided)):
        del a["timestamp"], b["timestamp"], a["location"], b["location"]
        assert list(a.items()) == list(b.items())
    assert ours["stage"] == "prod"
    assert ours_collided["service"] == "other"


def test_prepared_fields_make_the_same_line(powertools_logger: tuple[Logger, io.StringIO]) -> None:
    logger, stream = powertools_logger
    own_stream_only(logger)
    line = AuditLine(logger, "token issued")
    shared = {k: v for k, v in FIELDS.items() if k not in ("jti", "kid")}
    prepared = line.prepare(**shared)
    line(prepared, jti="j" * 24, kid="k1")
    logger.info("token issued", extra={**shared, "jti": "j" * 24, "kid": "k1"})
    line(prepared, sub="twice")  # a prepared key given again: Powertools' line (its first place, the last value)
    logger.info("token issued", extra={**shared, "sub": "twice"})
    ours, theirs, ours_again, theirs_again = (json.loads(t) for t in stream.getvalue().splitlines())
    for a, b in ((ours, theirs), (ours_again, theirs_again)):
        del a["timestamp"], b["timestamp"], a["location"], b["location"]
        assert list(a.items()) == list(b.items())
    assert ours_again["sub"] == "twice"


TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"


def _no_message_key(logger: Logger) -> None:
    logger.remove_keys(["message"])


CONFIGURATIONS: dict[str, tuple[dict[str, Any], Any]] = {
    "message not among the keys": ({"log_record_order": ["level", "location", "timestamp"]}, None),
    "message key removed": ({}, _no_message_key),
    "xray key disabled": ({"xray_trace_id": None}, None),
    "xray key appended": ({}, lambda logger: logger.append_keys(xray_trace_id="fixed")),
    "a template in a key of the operator's": ({}, lambda logger: logger.append_keys(note="%(levelname)s")),
    "a reserved key in the context": ({}, lambda logger: logger.thread_safe_append_keys(process="%(process)d")),
    "a percent sign in a value": ({}, lambda logger: logger.append_keys(note="100%")),
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_every_format_gets_the_line_powertools_writes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Formats the fast path cannot write exactly go through Powertools: either way, the line is Powertools'
    (found by a hostile review: a missing message, a doubled or unwanted trace id, templates filled or not)."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", TRACE)
    options, configure = CONFIGURATIONS[name]
    stream = io.StringIO()
    logger = Logger(service=f"audit-test-{uuid.uuid4().hex}", logger_handler=logging.StreamHandler(stream), **options)
    own_stream_only(logger)
    logger._logger.propagate = False
    if configure is not None:
        configure(logger)
    try:
        line = AuditLine(logger, "token issued")
        line(line.prepare(sub="x", ttl=60), jti="j" * 24)
        logger.info("token issued", extra={"sub": "x", "ttl": 60, "jti": "j" * 24})
    finally:
        logger.thread_safe_remove_keys(["process"])
    ours, theirs = (json.loads(text) for text in stream.getvalue().splitlines())
    for document in (ours, theirs):
        document.pop("timestamp", None)
        document.pop("location", None)
    assert list(ours.items()) == list(theirs.items())


# --- a count carried by the audit line ----------------------------------------------------------------------


def counted_line(logger: Logger) -> tuple[AuditLine, list[str], EmfMetrics]:
    """An audit line counting TokensIssued into metrics of the logger's own service (its line's ``service``)."""
    lines: list[str] = []
    metrics = EmfMetrics("Credport", logger.service, clock=lambda: NOW, write=lines.append)
    return (
        AuditLine(logger, "token issued", clock=lambda: NOW, counted=metrics.embedded_count("TokensIssued")),
        (lines),
        metrics,
    )


def test_the_count_rides_on_the_line_as_the_document_emf_would_write(
    powertools_logger: tuple[Logger, io.StringIO], metrics_on: None
) -> None:
    logger, stream = powertools_logger
    own_stream_only(logger)
    line, documents, metrics = counted_line(logger)
    line(**FIELDS)
    logger.info("token issued", extra=FIELDS)
    ours, theirs = (json.loads(text) for text in stream.getvalue().splitlines())
    # Beside Powertools' own line, exactly the members of the document EmfMetrics writes for the count alone.
    metrics.add_metric(name="TokensIssued", unit="Count", value=1)
    metrics.flush_metrics()
    (alone,) = (json.loads(text) for text in documents)
    assert (
        (ours.pop("_aws"), ours.pop("TokensIssued"))
        == (alone["_aws"], alone["TokensIssued"])
        == (
            {"Timestamp": int(NOW * 1000), "CloudWatchMetrics": alone["_aws"]["CloudWatchMetrics"]},
            [1.0],
        )
    )
    assert ours["service"] == alone["service"] == logger.service  # the dimension: a member of the line
    del ours["timestamp"], theirs["timestamp"], ours["location"], theirs["location"]
    assert ours == theirs


@pytest.mark.parametrize(
    ("why", "setup", "on_the_line"),
    [
        ("metrics are off", lambda logger, monkeypatch: monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "1"), False),
        ("a field named like a member", None, False),
        ("another service than the metrics'", lambda logger, monkeypatch: logger.append_keys(service="other"), False),
    ],
)
def test_where_the_line_cannot_carry_the_count_it_is_a_document_of_its_own(
    powertools_logger: tuple[Logger, io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
    metrics_on: None,
    why: str,
    setup: Any,
    on_the_line: bool,
) -> None:
    logger, stream = powertools_logger
    own_stream_only(logger)
    line, _, metrics = counted_line(logger)
    if setup is not None:
        setup(logger, monkeypatch)
    fields = {**FIELDS, "TokensIssued": "no"} if why.startswith("a field") else FIELDS
    line(**fields)
    written_line = json.loads(stream.getvalue().splitlines()[-1])
    assert "_aws" not in written_line, why
    counted = metrics.metric_set.get("TokensIssued", {}).get("Value", [])
    assert counted == ([] if why == "metrics are off" else [1.0]), why  # off: nothing counted, as before


def test_a_record_reader_or_a_quiet_logger_still_gets_the_count(
    powertools_logger: tuple[Logger, io.StringIO], caplog: pytest.LogCaptureFixture, metrics_on: None
) -> None:
    logger, _ = powertools_logger
    logger._logger.propagate = True  # caplog's handler reads records: the line goes through logging
    line, _, metrics = counted_line(logger)
    caplog.set_level(logging.INFO)
    line(sub="x")
    record = next(r for r in caplog.records if r.getMessage() == "token issued")
    assert not hasattr(record, "_aws")
    logger._logger.setLevel(logging.WARNING)  # no audit line at all: the count is still kept
    line(sub="y")
    assert metrics.metric_set["TokensIssued"]["Value"] == [1.0, 1.0]


def test_a_stream_that_refuses_the_line_fails_no_request(
    powertools_logger: tuple[Logger, io.StringIO], metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line the stream cannot take (a lone surrogate API Gateway put in a request id, a closed pipe) goes
    through logging, whose handler reports it and carries on, as Powertools' own line would: the token is still
    answered, and still counted (found by a hostile review)."""
    logger, _ = powertools_logger
    own_stream_only(logger)
    refusing = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    (handler,) = logger._logger.handlers
    handler.setStream(refusing)  # type: ignore[attr-defined]
    logger.thread_safe_append_keys(request_id="\ud800")
    line, _, metrics = counted_line(logger)
    line(sub="x")  # raises nothing
    assert metrics.metric_set["TokensIssued"]["Value"] == [1.0]
    assert "UnicodeEncodeError" in capsys.readouterr().err  # logging's own report of the failure
