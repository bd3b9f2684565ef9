"""Structured JSON logging and EMF metrics (aws-lambda-powertools), shared by every handler.

Rule: no event, request body, response body or secret value is ever logged. Handlers log what happened
(names, ids, codes, counts), and unexpected exceptions are logged by type and stack location only,
because exception messages from parsers and SDKs can quote the data they choked on.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.aws.clients import running_function
from chalicelib.coldstart import FirstInvocation
from chalicelib.emf import EmfMetrics, MetricUnit

__all__ = [
    "API_HANDLER",
    "METRICS_NAMESPACE",
    "ROTATION_KINDS",
    "SERVICE",
    "MetricUnit",
    "count_once",
    "invocation_middleware",
    "log_unexpected",
    "logger",
    "metrics",
    "rotation_failed",
    "safe_traceback",
]

SERVICE = "credport"
API_HANDLER = "api_handler"  # chalice's name for the one function behind its routes
METRICS_NAMESPACE = "Credport"
# The rotations whose failure raises an alarm: token signing keys, the session keys (both secrets), auto-id keys.
ROTATION_KINDS = ("signing-keys", "session-key", "autoid-keys")

_INVOCATION_KEYS = ("invocation_id", "request_id")
logger = Logger(service=SERVICE)
metrics = EmfMetrics(METRICS_NAMESPACE, SERVICE)


def count_once(name: str, **dimensions: str) -> None:
    """One count of ``name`` with dimensions of its own, written at once as its own EMF document.

    ``metrics`` keeps one dimension set per flush: a dimension added there would land on every other metric of the
    invocation (``TokensIssued`` would gain ``operation``), and an alarm on the plain metric would stop seeing it.
    Callers pass only bounded values (a fixed kind, an AWS service and operation named in code), never request
    data: each distinct set is a CloudWatch metric of its own.
    """
    metrics.count_once(name, **dimensions)


def rotation_failed(kind: str) -> None:
    """A key rotation failed (``RotationFailed`` with its ``kind``, one of :data:`ROTATION_KINDS`): what the
    ``rotation-failed-<kind>`` alarms of template.yaml watch, whichever way the rotation was run."""
    if kind not in ROTATION_KINDS:
        raise ValueError(f"unknown rotation kind {kind!r}")
    count_once("RotationFailed", kind=kind)


def safe_traceback(exc: BaseException) -> list[str]:
    """Where an exception came from (file:line in function), for each frame and cause, without its text."""
    frames: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames.append(type(current).__name__)
        for frame in traceback.extract_tb(current.__traceback__):
            frames.append(f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} in {frame.name}")
        current = current.__cause__ or current.__context__
    return frames


def log_unexpected(message: str, exc: BaseException, **keys: Any) -> None:
    """Log an unexpected exception without its message (which may quote secret input)."""
    logger.error(message, extra={"error_type": type(exc).__name__, "where": safe_traceback(exc), **keys})


def invocation_middleware(
    lambda_context: Callable[[], Any], first_invocation: FirstInvocation | None = None
) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """Chalice middleware for every handler: ids on each log line (thread-safe, since the local stack
    serves requests on threads), and EMF metrics flushed at the end of each invocation. With ``first_invocation``,
    the process's first invocation runs without the cyclic garbage collector (:mod:`chalicelib.coldstart`)."""

    def middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
        if first_invocation is None:
            return around(event, get_response)
        end_of_first = None
        try:
            end_of_first = first_invocation.begin()
            return around(event, get_response)
        finally:
            if end_of_first is not None:  # a process's first invocation only
                end_of_first()

    def around(event: Any, get_response: Callable[[Any], Any]) -> Any:
        request_context = getattr(event, "context", None)
        # An HTTP request's ``context`` is API Gateway's requestContext (a dict) and chalice keeps the Lambda
        # context on the app; an event (SQS, SNS, schedule) carries the Lambda context itself, and chalice never
        # sets ``app.lambda_context`` in an event function's container (reading it there raised AttributeError).
        context = lambda_context() if isinstance(request_context, dict) else request_context
        invocation_id = getattr(context, "aws_request_id", None)
        request_id = request_context.get("requestId") if isinstance(request_context, dict) else None
        if request_id is None:  # a function behind API Gateway's proxy integration (auto_id): the raw event
            raw = getattr(event, "event", None)
            proxied = raw.get("requestContext") if isinstance(raw, dict) else None
            request_id = proxied.get("requestId") if isinstance(proxied, dict) else None
        # The formatter the logger writes with, looked up once for both calls (Powertools' Logger finds it through
        # three properties each time); its keys are per thread, so concurrent invocations keep their own ids.
        formatter = logger.registered_formatter
        formatter.thread_safe_append_keys(invocation_id=invocation_id, request_id=request_id or invocation_id)
        # The function this invocation runs as: what signs its AWS requests where one process runs several
        # functions (chalicelib.aws.clients); on AWS it changes nothing. Every route is chalice's API handler (its
        # Lambda context is set on the app only later, inside the handler); an event carries its own context.
        function = API_HANDLER if isinstance(request_context, dict) else getattr(context, "function_name", None)
        # running_as's work without its generator: this wraps every invocation.
        token = running_function.set(str(function) if function else running_function.get())
        try:
            return get_response(event)
        finally:
            try:
                if metrics.metric_set:
                    metrics.flush_metrics()
                formatter.thread_safe_remove_keys(_INVOCATION_KEYS)
            finally:
                running_function.reset(token)

    return middleware
