"""SQS adapter: the local stack's event pump and the tests read queues through it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["QueueClient", "QueueMessage"]


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    md5_of_body: str
    attributes: Mapping[str, str]
    message_attributes: Mapping[str, Any]
    body: str = field(repr=False)

    @property
    def receive_count(self) -> int:
        return int(self.attributes.get("ApproximateReceiveCount", "1"))


class QueueClient:
    def __init__(self, client: Any) -> None:
        self._client = client

    def url_for(self, name: str) -> str:
        with aws_call("sqs", "GetQueueUrl"):
            return str(self._client.get_queue_url(QueueName=name)["QueueUrl"])

    def arn_of(self, url: str) -> str:
        return self.attributes(url, ("QueueArn",))["QueueArn"]

    def attributes(self, url: str, names: Sequence[str] = ("All",)) -> dict[str, str]:
        with aws_call("sqs", "GetQueueAttributes"):
            response = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))
        return dict(response.get("Attributes", {}))

    def send(self, url: str, body: str, *, attributes: Mapping[str, str] | None = None) -> str:
        with aws_call("sqs", "SendMessage"):
            response = self._client.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()},
            )
        return str(response["MessageId"])

    def receive(
        self, url: str, *, max_messages: int = 10, wait_seconds: int = 0, visibility_timeout: int | None = None
    ) -> list[QueueMessage]:
        args: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            args["VisibilityTimeout"] = visibility_timeout
        with aws_call("sqs", "ReceiveMessage"):
            response = self._client.receive_message(**args)
        return [
            QueueMessage(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                md5_of_body=m.get("MD5OfBody", ""),
                attributes=dict(m.get("Attributes", {})),
                message_attributes=dict(m.get("MessageAttributes", {})),
                body=m["Body"],
            )
            for m in response.get("Messages", [])
        ]

    def delete(self, url: str, receipt_handle: str) -> None:
        with aws_call("sqs", "DeleteMessage"):
            self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt_handle)

    def change_visibility(self, url: str, receipt_handle: str, seconds: int) -> None:
        with aws_call("sqs", "ChangeMessageVisibility"):
            self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
