"""Calls the Lambda service makes with a function's execution role, not credport's code (``site`` None).

- Logs (Lambda Developer Guide, "Lambda execution role": CreateLogGroup, CreateLogStream, PutLogEvents). The
  resource: CloudWatch Logs authorises a log group as ``log-group:NAME`` only for TagResource, UntagResource and
  ListTagsForResource, and as the ``log-group:NAME:*`` form for every other action (CloudWatch Logs API Reference,
  "LogGroup": arn); the request names ``log-group:NAME:log-stream:STREAM`` (empty when creating the group).
- The SQS event source mapping polls with the function's role: sqs:ReceiveMessage, sqs:DeleteMessage and
  sqs:GetQueueAttributes on the queue (Lambda Developer Guide, "Using Lambda with Amazon SQS", execution role).
  The queue is SSE-SQS (template.yaml): no KMS permission.
- An asynchronous invocation that failed every attempt is sent to its on-failure destination with the function's
  role: sqs:SendMessage on the queue (Lambda Developer Guide, "Capturing records of Lambda asynchronous
  invocations"). Which functions have one is read from template.yaml (the catalog test compares).
"""

from __future__ import annotations

from tests.permissions.catalog._common import (
    API,
    AUTO_ID,
    BEARER,
    KEY_EVENTS_FUNCTIONS,
    ROTATE_AUTOID,
    ROTATE_SESSION,
    ROTATE_SIGNING,
    ROTATE_TRANSFER,
    S3_EVENTS,
    functions,
)
from tests.permissions.model import Access, Entry

__all__ = ["ENTRIES"]

EVERY_FUNCTION = functions(
    API,
    AUTO_ID,
    BEARER,
    ROTATE_SIGNING,
    ROTATE_TRANSFER,
    ROTATE_AUTOID,
    ROTATE_SESSION,
    S3_EVENTS,
    KEY_EVENTS_FUNCTIONS,
)
ASYNC_WITH_DESTINATION = functions(KEY_EVENTS_FUNCTIONS, ROTATE_SIGNING, ROTATE_TRANSFER, ROTATE_AUTOID)
_LOG_GROUP = "arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{function}"
_QUEUE = "arn:aws:sqs:{region}:{account}:{s3_events_queue}"

ENTRIES = (
    Entry(
        id="lambda.logs",
        service="lambda",
        operation="Logs",
        functions=EVERY_FUNCTION,
        why="the runtime writes each function's output to /aws/lambda/<function name>",
        access=(
            Access("logs:CreateLogGroup", _LOG_GROUP + ":log-stream:"),
            Access("logs:CreateLogStream", _LOG_GROUP + ":log-stream:<stream>"),
            Access("logs:PutLogEvents", _LOG_GROUP + ":log-stream:<stream>"),
        ),
    ),
    Entry(
        id="lambda.sqs-event-source",
        service="lambda",
        operation="EventSourceMapping",
        functions=functions(S3_EVENTS),
        why="the S3 events queue feeds s3_object_events (app.py @app.on_sqs_message)",
        access=tuple(
            Access(f"sqs:{action}", _QUEUE) for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
        ),
    ),
    Entry(
        id="lambda.async-failure-destination",
        service="lambda",
        operation="OnFailureDestination",
        functions=ASYNC_WITH_DESTINATION,
        why="SNS and schedule invocations that failed every attempt are recorded in the async dead-letter queue",
        access=(Access("sqs:SendMessage", "arn:aws:sqs:{region}:{account}:{async_dlq}"),),
    ),
)
