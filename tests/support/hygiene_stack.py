"""The secret-hygiene stack: the provisioned app called the way AWS calls it, every answer, escaping exception,
notification, S3 metadata document and table item collected into a :class:`~tests.support.hygiene.Hygiene`.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus

import pytest
from chalice.test import Client

import app as credport_app
from chalicelib.aws import AwsServices
from chalicelib.config import get_settings, reset_settings
from tests.conftest import ACCOUNT_ID, EVENTS_DIR, REGION
from tests.support.gateway import api_gateway, gateway_event
from tests.support.hygiene import Hygiene
from tests.support.iam import existing_role

__all__ = ["ANONYMOUS", "ROLE_IDENTITY", "S3_QUEUE", "Stack", "open_stack", "watch_secret_pems"]

ROLE_IDENTITY = {
    "userArn": "arn:aws:sts::123456789012:assumed-role/app-role/session-1",
    "accountId": "123456789012",
    "caller": "AROAEXAMPLEID:session-1",
    "user": "AROAEXAMPLEID:session-1",
    "accessKey": "ASIAEXAMPLEKEY000001",
    "sourceIp": "203.0.113.7",
}
ANONYMOUS = {"sourceIp": "203.0.113.7"}
S3_QUEUE = "credport-dev-s3-events"
PRIVATE_PEM = re.compile(r"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)


class Stack:
    """The provisioned app, called the way AWS calls it; every answer and every escaping exception collected."""

    def __init__(self, aws: AwsServices, hygiene: Hygiene, client: Client) -> None:
        self.services, self.hygiene, self.client = aws, hygiene, client
        self.settings = get_settings()
        self.bucket = self.settings.resources.transfer_bucket
        self.taps = {name: self._tap(arn) for name, arn in self._topics().items()}

    def _topics(self) -> dict[str, str]:
        r = self.settings.resources
        return {"notify": r.notify_topic_arn, "key-events": r.key_events_topic_arn}

    def _tap(self, topic_arn: str) -> str:
        url = self.services.factory.client("sqs").create_queue(QueueName=f"tap-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        self.services.sns.subscribe(topic_arn, protocol="sqs", endpoint=self.services.sqs.arn_of(url))
        return url

    def http(
        self,
        flow: str,
        path: str,
        *,
        method: str = "GET",
        identity: Mapping[str, Any] = ANONYMOUS,
        body: Any = None,
        raw: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        resource: str | None = None,
        path_parameters: Mapping[str, str] | None = None,
        allow: Iterable[str] = (),
    ) -> tuple[int, dict[str, Any]]:
        """One API Gateway proxy event through the app; the answer is collected (``allow``: secrets it may carry)."""
        self.hygiene.flows.add(flow)
        event = gateway_event(
            path, identity, method=method, query=query, headers={"Content-Type": "application/json", **(headers or {})}
        )
        if resource is not None:
            event["resource"] = event["requestContext"]["resourcePath"] = resource
            event["pathParameters"] = dict(path_parameters or {})
        event["body"] = raw if raw is not None else (None if body is None else json.dumps(body))
        response = api_gateway(event)  # POST /auto-id goes to the auto_id function, as API Gateway sends it
        self.hygiene.collect(f"{flow}: {method} {path} -> {response['statusCode']}", response, allow=allow)
        return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}

    def invoke(self, flow: str, function: str, payload: Any, *, allow: Iterable[str] = ()) -> Any:
        """One Lambda invocation of an event handler; an exception it lets out is collected, then re-raised."""
        self.hygiene.flows.add(flow)
        try:
            result = self.client.lambda_.invoke(function, payload).payload
        except Exception as exc:
            self.hygiene.exception(f"{flow}: {function}", exc)
            raise
        self.hygiene.collect(f"{flow}: {function} result", result, allow=allow)
        return result

    def authorize(self, flow: str, header: str, route: str = "GET/session") -> Any:
        """The bearer authorizer, as API Gateway invokes it; its answer (a policy) must not carry the token."""
        self.hygiene.flows.add(flow)
        event = {
            "type": "TOKEN",
            "authorizationToken": header,
            "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:abc123/api/{route}",
        }
        try:
            result = credport_app.bearer(event, None)
        except Exception as exc:
            self.hygiene.exception(f"{flow}: authorizer", exc)
            return None
        self.hygiene.collect(f"{flow}: authorizer answer", result)
        return result

    def s3_event(self, flow: str, key: str, *, expect: type[BaseException] | None = None) -> None:
        """The S3 notification for ``key`` (as S3 sends it through SQS) to the app's SQS handler."""
        document = json.loads((EVENTS_DIR / "s3_object_created.json").read_text())
        record = document["Records"][0]
        head = self.services.s3.head(self.bucket, key)
        record["s3"]["bucket"] = {"name": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"}
        record["s3"]["object"].update(
            key=quote_plus(key), eTag=head.etag if head else "0", versionId=head.version_id if head else None
        )
        event = self.client.events.generate_sqs_event(message_bodies=[json.dumps(document)], queue_name=S3_QUEUE)
        if expect is None:
            self.invoke(flow, "s3_object_events", event)
        else:
            with pytest.raises(expect):
                self.invoke(flow, "s3_object_events", event)

    def put(self, key: str, body: bytes) -> None:
        self.services.s3.put(self.bucket, key, body)

    def sweep(self) -> None:
        """Everything a flow left where operators and clients look: notifications, S3 metadata, table items."""
        for name, url in self.taps.items():
            for _ in range(3):
                for message in self.services.sqs.receive(url, max_messages=10):
                    self.hygiene.collect(f"sns message on {name}", message.body)
                    self.services.sqs.delete(url, message.receipt_handle)
        buckets = {self.bucket, self.settings.resources.public_bucket}
        for bucket in buckets:
            for key in self.services.s3.list_keys(bucket, ""):
                if key.endswith(".json") or key.startswith("outbox/"):  # metadata, and what clients download
                    self.hygiene.collect(f"s3://{bucket}/{key}", self.services.s3.get(bucket, key).body.decode())
        table = self.services.factory.client("dynamodb")
        for page in table.get_paginator("scan").paginate(TableName=self.settings.resources.state_table):
            for item in page["Items"]:
                self.hygiene.collect("state table item", item)


@contextlib.contextmanager
def open_stack(aws: AwsServices, hygiene: Hygiene, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """After ``provisioned``: credport logging at DEBUG, its caller's role in IAM, a fresh container, and chalice's
    test client for the event handlers."""
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    existing_role("app-role", "AROAEXAMPLEID")  # ROLE_IDENTITY's role: credport reads it (iam:GetRole)

    def reset() -> None:  # a fresh container: the app builds its capabilities again, from the settings of then
        reset_settings()
        credport_app.services.use(None)

    reset()
    with Client(credport_app.app, stage_name="dev") as client:
        yield Stack(aws, hygiene, client)
    reset()


def watch_secret_pems(stack: Stack, hygiene: Hygiene) -> None:
    """The private keys credport keeps in Secrets Manager (import key, auto-id server keys, envelope signers)."""
    client = stack.services.factory.client("secretsmanager")
    for page in client.get_paginator("list_secrets").paginate():
        for entry in page["SecretList"]:
            try:
                value = stack.services.secrets.get_value(entry["ARN"]).value
            except Exception:  # noqa: S112 (a secret with no value yet)
                continue
            text = value if isinstance(value, str) else value.decode("latin-1")
            for match in PRIVATE_PEM.finditer(text.replace("\\n", "\n")):
                hygiene.watch_pem(f"private key in {entry['Name']}", match.group(0))
