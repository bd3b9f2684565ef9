"""The catalog: every AWS call of the Lambda functions (:data:`CATALOG`), and the adapter calls no Lambda function
makes, each with the reason (:data:`NOT_IN_LAMBDA`). Together they account for every ``aws_call`` in the code."""

from __future__ import annotations

from dataclasses import dataclass

from tests.permissions.catalog import autoid, platform, sessions, tokens, transfer, transfer_send
from tests.permissions.model import Entry

__all__ = ["CATALOG", "NOT_IN_LAMBDA", "NotInLambda"]

CATALOG: tuple[Entry, ...] = (
    *tokens.ENTRIES,
    *sessions.ENTRIES,
    *transfer.ENTRIES,
    *transfer_send.ENTRIES,
    *autoid.ENTRIES,
    *platform.ENTRIES,
)


@dataclass(frozen=True)
class NotInLambda:
    """An adapter call no Lambda function makes. ``absent``: what the Lambda code (chalicelib outside the adapters,
    and app.py) must not contain for that to stay true, checked by the scan: ``name:X`` (an identifier),
    ``attr:X`` (an attribute), ``call:M(K=)`` (a call of a method M with keyword K)."""

    service: str
    operation: str
    site: str
    why: str
    absent: tuple[str, ...]


_PUMP = "the local stack's stand-in for Lambda's SQS event source mapping (local/pump.py), and tests, read queues"
_QUEUES = ("name:QueueClient", "attr:sqs")
_SQS = "chalicelib.aws.sqs.QueueClient"
NOT_IN_LAMBDA: tuple[NotInLambda, ...] = (
    NotInLambda("sqs", "GetQueueUrl", f"{_SQS}.url_for", _PUMP, _QUEUES),
    NotInLambda("sqs", "GetQueueAttributes", f"{_SQS}.attributes", _PUMP, _QUEUES),
    NotInLambda("sqs", "SendMessage", f"{_SQS}.send", _PUMP, _QUEUES),
    NotInLambda("sqs", "ReceiveMessage", f"{_SQS}.receive", _PUMP, _QUEUES),
    NotInLambda("sqs", "DeleteMessage", f"{_SQS}.delete", _PUMP, _QUEUES),
    NotInLambda("sqs", "ChangeMessageVisibility", f"{_SQS}.change_visibility", _PUMP, _QUEUES),
    NotInLambda(
        "sns",
        "Subscribe",
        "chalicelib.aws.sns.Publisher.subscribe",
        "credport-admin transfer register --email subscribes the client's address, with the operator's credentials",
        ("call:subscribe(protocol=)",),
    ),
    NotInLambda(
        "kms",
        "Encrypt",
        "chalicelib.aws.kms.KeyService.encrypt",
        "no caller: the data key is used only through S3 and Secrets Manager",
        # Its context is keyword-only, so every call names it; a bare `.encrypt` is also cryptography's AESGCM
        # (chalicelib/envelope.py seal_direct), which calls no AWS.
        ("call:encrypt(context=)",),
    ),
    NotInLambda(
        "kms",
        "Decrypt",
        "chalicelib.aws.kms.KeyService.decrypt",
        "no caller: the data key is used only through S3 and Secrets Manager",
        ("attr:decrypt",),
    ),
    NotInLambda("s3", "HeadObject", "chalicelib.aws.s3.ObjectStore.head", "no caller", ("attr:head",)),
)
