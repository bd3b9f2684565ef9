"""Turn botocore failures into credport errors, the same way for every adapter.

Transient failures (throttling, 5xx, timeouts, connection errors) become :class:`ServiceUnavailable`
(503 + Retry-After) so callers may retry; a missing resource becomes :class:`AwsNotFound`; a failed
condition :class:`AwsConflict`; everything else :class:`AwsRejected`, an opaque 500 because it means our
own bug or misconfiguration. AWS's own error text is never copied into our messages: it can echo input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from chalicelib.errors import Conflict, DependencyError, NotFound, ServiceUnavailable

__all__ = ["AwsConflict", "AwsNotFound", "AwsRejected", "AwsUnavailable", "aws_call", "translate"]

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "RequestThrottled",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",  # KMS reports request-rate throttling with this code
        "SlowDown",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "TransactionInProgressException",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServiceError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "RequestTimeout",
        "RequestTimeoutException",
        "IDPCommunicationError",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchVersion",
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "NoSuchEntity",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFoundError",
        "404",
    }
)
CONFLICT_CODES = frozenset(
    {
        "ConditionalCheckFailedException",
        "ResourceExistsException",
        "AlreadyExistsException",
        "EntityAlreadyExists",
        "TransactionConflictException",
    }
)


class _AwsError:
    service: str
    operation: str
    aws_code: str

    def _describe(self, service: str, operation: str, aws_code: str) -> str:
        self.service, self.operation, self.aws_code = service, operation, aws_code
        return f"{service} {operation} failed ({aws_code})."


class AwsNotFound(_AwsError, NotFound):
    def __init__(self, service: str, operation: str, aws_code: str) -> None:
        NotFound.__init__(self, self._describe(service, operation, aws_code))


class AwsConflict(_AwsError, Conflict):
    def __init__(self, service: str, operation: str, aws_code: str) -> None:
        Conflict.__init__(self, self._describe(service, operation, aws_code))


class AwsUnavailable(_AwsError, ServiceUnavailable):
    def __init__(self, service: str, operation: str, aws_code: str, retry_after: int = 1) -> None:
        ServiceUnavailable.__init__(self, retry_after=retry_after)
        self._describe(service, operation, aws_code)


class AwsRejected(_AwsError, DependencyError):
    def __init__(self, service: str, operation: str, aws_code: str) -> None:
        DependencyError.__init__(self)
        self._describe(service, operation, aws_code)


def translate(exc: BaseException, service: str, operation: str) -> Exception:
    """The credport error for a botocore exception (the caller raises it ``from`` the original)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES or status == 429:
            _count_throttled(service, operation)
            return AwsUnavailable(service, operation, code, retry_after=2)
        if code in TRANSIENT_CODES or status >= 500:
            return AwsUnavailable(service, operation, code)
        if code in NOT_FOUND_CODES:
            return AwsNotFound(service, operation, code)
        if code in CONFLICT_CODES or (status == 412 and code == "PreconditionFailed"):
            return AwsConflict(service, operation, code)
        return AwsRejected(service, operation, code)
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ConnectionError)):
        return AwsUnavailable(service, operation, type(exc).__name__)
    if isinstance(exc, BotoCoreError):
        return AwsRejected(service, operation, type(exc).__name__)
    return exc if isinstance(exc, Exception) else RuntimeError(type(exc).__name__)


def _count_throttled(service: str, operation: str) -> None:
    """``AwsThrottled`` per AWS service and operation: a call AWS refused for its request rate, after botocore's own
    retries. KMS publishes no count of throttled requests (AWS/KMS has none; AWS/Usage counts calls, not refusals:
    KMS Developer Guide, "Monitoring with Amazon CloudWatch"), so this is how the ``kms-sign-throttled`` alarm
    (template.yaml) sees KMS Sign at its request quota. Both values are literals of the adapters' ``aws_call``:
    bounded. Imported here because chalicelib.observability imports this package (the AWS clients): a module-level
    import would be circular."""
    from chalicelib.observability import count_once

    count_once("AwsThrottled", aws_service=service, operation=operation)


@contextlib.contextmanager
def aws_call(service: str, operation: str) -> Iterator[None]:
    """Run one AWS call; botocore failures leave as credport errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, service, operation) from exc
