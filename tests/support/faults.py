"""The fault-injection rig: every AWS call the app makes can be recorded and made to fail.

:class:`FaultInjector` is a ``before-call`` hook on the app's own botocore clients (those its composition root creates;
the tests' clients are never faulted). A throttling or 5xx answer is an AWS error body in the service's wire protocol,
parsed by botocore; a timeout is botocore's ``ReadTimeoutError``. Retries are off (``CREDPORT_AWS_MAX_ATTEMPTS=1``),
so one injected failure is one failed call. Used by ``tests/functional/test_faults.py`` (every API route) and
``tests/functional/test_kill_rerun.py`` (event handlers and multi-step operations).
"""

from __future__ import annotations

import functools
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.parsers import create_parser
from joserfc.jwk import RSAKey
from urllib3 import HTTPResponse

from chalicelib.aws import AwsNotFound, AwsServices
from chalicelib.config import get_settings, reset_settings
from chalicelib.envelope import RecipientKey, generate_recipient_key, private_key_from_pem, public_key_from_pem
from chalicelib.keys import recipient, recipient_document
from chalicelib.services import Services
from tests.support.gateway import api_gateway, gateway_event
from tests.support.iam import existing_role

__all__ = [
    "CALLER",
    "KINDS",
    "SEND",
    "Call",
    "FaultInjector",
    "Reply",
    "Stack",
    "api",
    "aws_error",
    "calls",
    "current_key",
    "open_stack",
    "positions",
]

KINDS = ("throttling", "server_error", "timeout")
Call = tuple[str, str]
# What AWS answers a throttled or failing call with, by service ("": any other).
_ANSWERS = {
    "throttling": {"s3": (503, "SlowDown"), "dynamodb": (400, "ProvisionedThroughputExceededException"),
                   "sns": (400, "Throttling"), "sts": (400, "Throttling"), "": (400, "ThrottlingException")},
    "server_error": {"s3": (500, "InternalError"), "kms": (500, "KMSInternalException"),
                     "secretsmanager": (500, "InternalServiceError"), "dynamodb": (500, "InternalServerError"),
                     "": (500, "InternalFailure")},
}  # fmt: skip


def calls(spec: str) -> tuple[Call, ...]:
    """``"sm.GetSecretValue*2 s3.PutObject"``: those AWS calls, in order (``sm`` is Secrets Manager)."""
    found: list[Call] = []
    for word in spec.split():
        name, _, times = word.partition("*")
        service, operation = name.split(".")
        found += [("secretsmanager" if service == "sm" else service, operation)] * int(times or 1)
    return tuple(found)


def aws_error(model: Any, kind: str) -> tuple[AWSResponse, dict[str, Any]]:
    """An AWS error answer in the operation's wire protocol, as botocore parses it."""
    service, protocol = model.service_model.service_name, model.service_model.protocol
    status, code = _ANSWERS[kind].get(service) or _ANSWERS[kind][""]
    if protocol == "json":
        body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    elif protocol == "smithy-rpc-v2-cbor":  # the Resource Groups Tagging API
        body = _cbor_text_map({"__type": code, "message": "injected fault"})
    elif protocol == "query":
        body = f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code></Error></ErrorResponse>".encode()
    else:
        body = f"<Error><Code>{code}</Code><Message>injected fault</Message></Error>".encode()
    http = AWSResponse("https://fault.invalid/", status, {}, HTTPResponse(body=io.BytesIO(body), status=status))
    response = {"headers": http.headers, "status_code": status, "body": body}
    return http, create_parser(protocol).parse(response, model.output_shape)


def _cbor_text_map(fields: dict[str, str]) -> bytes:
    """A CBOR map of short text strings (RFC 8949 major types 5 and 3): enough for an error body."""

    def text(value: str) -> bytes:
        raw = value.encode()
        assert len(raw) < 256
        return (bytes([0x60 + len(raw)]) if len(raw) < 24 else bytes([0x78, len(raw)])) + raw

    assert len(fields) < 24
    return bytes([0xA0 + len(fields)]) + b"".join(text(k) + text(v) for k, v in fields.items())


@dataclass
class _Fault:
    kind: str
    service: str
    operation: str | None
    nth: int
    count: int | None
    seen: int = 0
    fired: int = 0


class FaultInjector:
    """Records every AWS call of the clients it is attached to, and fails the calls armed with :meth:`fail`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fired: list[tuple[Call, str]] = []
        self._faults: list[_Fault] = []

    def attach(self, client: Any) -> Any:
        # First, so the fault answers before anything else (moto included) sees the call.
        client.meta.events.register_first("before-call", self._before_call)
        return client

    def fail(
        self, kind: str, service: str, operation: str | None = None, *, nth: int = 1, count: int | None = 1
    ) -> None:
        """Fail the ``nth`` call to ``service`` (to ``operation``, else to any), and ``count - 1`` more after it
        (``count=None``: every one from the ``nth`` on)."""
        assert kind in KINDS, kind
        self._faults.append(_Fault(kind, service, operation, nth, count))

    def reset(self) -> None:
        self.calls.clear()
        self.fired.clear()
        self._faults.clear()

    def _before_call(self, model: Any, params: Mapping[str, Any], **_: Any) -> Any:
        call = (str(model.service_model.service_name), str(model.name))
        self.calls.append(call)
        for fault in self._faults:
            if fault.service != call[0] or fault.operation not in (None, call[1]):
                continue
            fault.seen += 1
            if fault.seen < fault.nth or (fault.count is not None and fault.fired >= fault.count):
                continue
            fault.fired += 1
            self.fired.append((call, fault.kind))
            if fault.kind == "timeout":
                raise ReadTimeoutError(endpoint_url=str(params.get("url") or "https://fault.invalid/"))
            return aws_error(model, fault.kind)
        return None


def positions(sequence: Sequence[Call]) -> list[tuple[str, str, int]]:
    """Each call as ``(service, operation, n)``: the n-th call to that operation, what ``fail(nth=n)`` hits."""
    seen: Counter[Call] = Counter()
    found = []
    for call in sequence:
        seen[call] += 1
        found.append((*call, seen[call]))
    return found


class Stack:
    """The provisioned app, its AWS clients wired to a :class:`FaultInjector`, and a fault-free view of its state."""

    def __init__(self, aws: AwsServices, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch) -> None:
        self.services, self.faults, self.patch = aws, faults, monkeypatch
        self.settings = get_settings()
        r = self.settings.resources
        self.bucket, self.public_bucket = r.transfer_bucket, r.public_bucket
        self.topics = {"notify": r.notify_topic_arn, "key-events": r.key_events_topic_arn}
        self._queues: dict[str, str] = {}
        self._seen: dict[str, list[dict[str, Any]]] = {name: [] for name in self.topics}
        for name, topic in self.topics.items():
            url = aws.factory.client("sqs").create_queue(QueueName=f"faults-{name}-tap")["QueueUrl"]
            aws.sns.subscribe(topic, protocol="sqs", endpoint=aws.sqs.arn_of(url))
            self._queues[name] = url

    @staticmethod
    def cold() -> None:
        """A fresh container: every capability is rebuilt on next use, so a request makes all its AWS calls (on the
        same clients, which report to the injector)."""
        import app

        app.services.use(Services(get_settings(), app.services().aws))

    def messages(self, topic: str) -> list[dict[str, Any]]:
        """Every message published on ``topic`` so far (``notify`` or ``key-events``)."""
        url = self._queues[topic]
        while batch := self.services.sqs.receive(url, max_messages=10):
            for message in batch:
                self._seen[topic].append(json.loads(json.loads(message.body)["Message"]))
                self.services.sqs.delete(url, message.receipt_handle)
        return list(self._seen[topic])

    def versions(self, secret_id: str) -> dict[str, set[str]]:
        """Every version of a secret (unlabelled ones too) with its stages; {} when there is no such secret."""
        try:
            arn = self.services.secrets.describe(secret_id).arn
        except AwsNotFound:
            return {}
        client = self.services.factory.client("secretsmanager")
        listed = client.list_secret_version_ids(SecretId=arn, IncludeDeprecated=True)
        return {v["VersionId"]: set(v.get("VersionStages", [])) for v in listed["Versions"]}

    def keys(self, prefix: str, bucket: str | None = None) -> list[str]:
        return sorted(self.services.s3.list_keys(bucket or self.bucket, prefix))

    def snapshot(self) -> dict[str, Any]:
        """Everything a handler can change: object versions, secret versions, table items, KMS keys and aliases,
        and how many messages each topic carried."""
        client = self.services.factory.client
        objects = {}
        for bucket in (self.bucket, self.public_bucket):
            listed = client("s3").list_object_versions(Bucket=bucket)
            entries = listed.get("Versions", []) + listed.get("DeleteMarkers", [])
            objects[bucket] = sorted((e["Key"], e["VersionId"], e.get("ETag", "delete-marker")) for e in entries)
        secrets = {s["Name"]: self.versions(s["ARN"]) for s in client("secretsmanager").list_secrets()["SecretList"]}
        table = self.settings.resources.state_table
        items = sorted(json.dumps(i, sort_keys=True) for i in client("dynamodb").scan(TableName=table)["Items"])
        kms = client("kms")
        keys = {
            k["KeyId"]: kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] for k in kms.list_keys()["Keys"]
        }
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        messages = {topic: len(self.messages(topic)) for topic in self.topics}
        return {"objects": objects, "secrets": secrets, "items": items, "keys": keys, "aliases": aliases, **messages}


@functools.lru_cache(maxsize=64)
def _load_private(pem: bytes) -> RecipientKey:
    return private_key_from_pem(pem)


def open_stack(aws: AwsServices, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """After ``provisioned``: one attempt per AWS call, and every client the app creates reports to the injector.

    A cold container parses its RSA keys again; parsing (~0.3 s for RSA-4096) is memoised here and new keys are
    RSA-2048, so the sweeps stay fast. Which AWS calls happen does not change."""
    monkeypatch.setattr(recipient, "generate_recipient_key", lambda: generate_recipient_key(2048))
    for module in (recipient, recipient_document):  # a legacy import key's PEM is parsed where it is read
        monkeypatch.setattr(module, "private_key_from_pem", _load_private)
    monkeypatch.setenv("CREDPORT_AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CREDPORT_TRANSFER_ROTATION_DAYS", "30")
    existing_role("credport-dev-workload", "AROAFAULTS")  # CALLER's role: credport reads it (iam:GetRole)
    reset_settings()
    import app

    services = Services.from_environment()  # installed as the app's (tests.conftest uninstalls it after the test)
    app.services.use(services)
    faults = FaultInjector()
    factory = services.aws.factory
    create = factory._create
    monkeypatch.setattr(factory, "_create", lambda service, *creds: faults.attach(create(service, *creds)))
    return Stack(aws, faults, monkeypatch)


# --- calling the app as API Gateway does, as the faults' caller ---------------------------------------------------

CALLER = {"userArn": "arn:aws:sts::123456789012:assumed-role/credport-dev-workload/faults", "sourceIp": "203.0.113.7",
          "accountId": "123456789012", "caller": "AROAFAULTS:faults", "user": "AROAFAULTS:faults"}  # fmt: skip


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def api(method: str, path: str, *, iam: bool = False, body: Any = None, bearer: str | None = None) -> Reply:
    """A request as Lambda gets it from API Gateway (behind IAM authorization when ``iam``)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
    resource = path.replace("/client-one/", "/{client_id}/")
    event = gateway_event(resource, CALLER if iam else {"sourceIp": "203.0.113.7"}, method=method, headers=headers)
    event.update(path=path, body=None if body is None else json.dumps(body))
    if resource != path:
        event["pathParameters"] = {"client_id": "client-one"}
    response = api_gateway(event)  # POST /auto-id goes to the auto_id function, as API Gateway sends it
    return Reply(response["statusCode"], json.loads(response["body"]), dict(response["headers"]))


def current_key(documents: Mapping[str, Any]) -> RecipientKey:
    jwk = next(k for k in documents["keys"] if k["kid"] == documents["current_kid"])
    return public_key_from_pem(RSAKey.import_key(jwk).as_pem(private=False))


# The calls of POST /transfer/clients/{id}/send on a cold container (its route, and the send a kill interrupts):
# the profile; a pending version, sealed into the outbox; put in force, its link's session, announced, finished
SEND = (
    "dynamodb.GetItem sm.DescribeSecret sm.PutSecretValue sm.GetSecretValue s3.PutObject"
    " sm.UpdateSecretVersionStage sts.AssumeRole sns.Publish sm.UpdateSecretVersionStage"
)
