"""SNS adapter: JSON messages with string attributes (used by subscription filter policies)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["Publisher"]


class Publisher:
    def __init__(self, client: Any) -> None:
        self._client = client

    def publish(
        self,
        topic_arn: str,
        message: Mapping[str, Any],
        *,
        subject: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        args: dict[str, Any] = {
            "TopicArn": topic_arn,
            "Message": json.dumps(message, sort_keys=True, separators=(",", ":")),
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value} for name, value in (attributes or {}).items()
            },
        }
        if subject:
            args["Subject"] = subject[:100]
        with aws_call("sns", "Publish"):
            response = self._client.publish(**args)
        return str(response["MessageId"])

    def subscribe(
        self,
        topic_arn: str,
        *,
        protocol: str,
        endpoint: str,
        filter_policy: Mapping[str, Any] | None = None,
        raw_delivery: bool = False,
    ) -> str:
        attributes: dict[str, str] = {}
        if filter_policy:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        if raw_delivery:
            attributes["RawMessageDelivery"] = "true"
        with aws_call("sns", "Subscribe"):
            response = self._client.subscribe(
                TopicArn=topic_arn,
                Protocol=protocol,
                Endpoint=endpoint,
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )
        return str(response["SubscriptionArn"])
