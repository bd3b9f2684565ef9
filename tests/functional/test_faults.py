"""AWS faults on every API route: each AWS call a route makes fails in turn (throttled, a 5xx, a read timeout), and
the route must answer 503 ``service_unavailable`` with Retry-After, change nothing, and serve the very same request
once the fault is gone.

:class:`FaultInjector` is a ``before-call`` hook on the app's own botocore clients (those ``get_aws()`` creates; the
tests' clients are never faulted). A throttling or 5xx answer is an AWS error body in the service's wire protocol,
parsed by botocore; a timeout is botocore's ``ReadTimeoutError``. Retries are off (``CREDPORT_AWS_MAX_ATTEMPTS=1``),
so one injected failure is one failed call. Each route first runs once on a cold container (every cache dropped)
while the injector records its calls; that list is asserted, so a new dependency shows up here, and then every call
in it fails with every kind of fault. Event handlers and multi-step operations: ``test_kill_rerun.py``.
"""

from __future__ import annotations

import functools
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.parsers import create_parser
from joserfc.jwk import RSAKey
from urllib3 import HTTPResponse

import app as credport_app
from chalicelib import autoid, sessions, tokens, transfer
from chalicelib.autoid import ClientPolicy, Want, build_request, server_keys
from chalicelib.aws import AwsNotFound, AwsServices, AwsUnavailable, get_aws, reset_aws
from chalicelib.aws.secrets import CURRENT, PENDING, PREVIOUS
from chalicelib.config import get_settings, reset_settings
from chalicelib.envelope import RecipientKey, generate_recipient_key, private_key_from_pem, public_key_from_pem, seal
from chalicelib.transfer import import_keys
from local.provision import Provisioned
from tests.functional.test_transfer_send import PUBLIC_PEM
from tests.support import api_gateway, existing_role, gateway_event

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

    def __init__(self, services: AwsServices, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch) -> None:
        self.services, self.faults, self.patch = services, faults, monkeypatch
        self.settings = get_settings()
        r = self.settings.resources
        self.bucket, self.public_bucket = r.transfer_bucket, r.public_bucket
        self.topics = {"notify": r.notify_topic_arn, "key-events": r.key_events_topic_arn}
        self._queues: dict[str, str] = {}
        self._seen: dict[str, list[dict[str, Any]]] = {name: [] for name in self.topics}
        for name, topic in self.topics.items():
            url = services.factory.client("sqs").create_queue(QueueName=f"faults-{name}-tap")["QueueUrl"]
            services.sns.subscribe(topic, protocol="sqs", endpoint=services.sqs.arn_of(url))
            self._queues[name] = url

    @staticmethod
    def cold() -> None:
        """A fresh container: every capability is rebuilt on next use, so a request makes all its AWS calls."""
        tokens.reset_token_service()
        sessions.reset_session_service()
        autoid.reset_autoid_service()
        for cached in (transfer.get_import_keys, transfer.get_importer, transfer.get_sender):
            cached.cache_clear()

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


def open_stack(services: AwsServices, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """After ``provisioned``: one attempt per AWS call, and every client the app creates reports to the injector.

    A cold container parses its RSA keys again; parsing (~0.3 s for RSA-4096) is memoised here and new keys are
    RSA-2048, so the sweeps stay fast. Which AWS calls happen does not change."""
    for module in (server_keys, import_keys):
        monkeypatch.setattr(module, "private_key_from_pem", _load_private)
        monkeypatch.setattr(module, "generate_recipient_key", lambda: generate_recipient_key(2048))
    monkeypatch.setenv("CREDPORT_AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CREDPORT_TRANSFER_ROTATION_DAYS", "30")
    existing_role("credport-dev-workload", "AROAFAULTS")  # CALLER's role: credport reads it (iam:GetRole)
    reset_settings()
    reset_aws()
    Stack.cold()
    faults = FaultInjector()
    factory = get_aws().factory
    create = factory._create
    monkeypatch.setattr(factory, "_create", lambda service, *creds: faults.attach(create(service, *creds)))
    return Stack(services, faults, monkeypatch)


@pytest.fixture
def stack(provisioned: Provisioned, services: AwsServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield open_stack(services, monkeypatch)
    Stack.cold()


# --- the routes ---------------------------------------------------------------------------------------------------

CALLER = {"userArn": "arn:aws:sts::123456789012:assumed-role/credport-dev-workload/faults", "sourceIp": "203.0.113.7",
          "accountId": "123456789012", "caller": "AROAFAULTS:faults", "user": "AROAFAULTS:faults"}  # fmt: skip
SECRET, ROLE = "credport-dev/autoid/faults", "arn:aws:iam::123456789012:role/credport-dev-autoid-faults"
CLIENT_SECRET, WELL_KNOWN = "credport-dev/transfer/client-one", "/.well-known/"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


Request = Callable[[], Reply]
Prepare = Callable[[Stack], Callable[[], Request]]  # set up; then make fresh requests


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


def plain(method: str, path: str, *, warm_up: str | None = None, **kwargs: Any) -> Prepare:
    """A route whose every request is the same. Its first one (or ``GET warm_up``, signed) may bootstrap keys:
    it is made during setup."""

    def prepare(_stack: Stack) -> Callable[[], Request]:
        assert (api("GET", warm_up, iam=True) if warm_up else api(method, path, **kwargs)).status == 200
        return lambda: lambda: api(method, path, **kwargs)

    return prepare


def bearer(method: str, path: str) -> Prepare:
    def prepare(stack: Stack) -> Callable[[], Request]:
        return plain(method, path, bearer=api("POST", "/session", iam=True).body["token"])(stack)

    return prepare


def importing(existing: bool) -> Prepare:
    """A new secret per request, or a new version of an existing one: the two paths of an import."""

    def prepare(stack: Stack) -> Callable[[], Request]:
        recipient = public_key_from_pem(api("GET", "/transfer/import-key").body["pem"].encode())
        made = iter(range(1000))

        def fresh() -> Request:
            name = f"credport-dev/imported/faults-{next(made)}"
            if existing:
                stack.services.secrets.create(name, "old value")
            envelope = seal(recipient, json.dumps({"secret_name": name, "value": f"value of {name}"}).encode())
            return lambda: api("POST", "/transfer/import", iam=True, body={"jwe": envelope})

        return fresh

    return prepare


def sending(stack: Stack) -> Callable[[], Request]:
    stack.services.s3.put(stack.bucket, "clients/client-one/public.pem", PUBLIC_PEM)
    assert transfer.get_sender().on_client_object("clients/client-one/public.pem", "etag-1") is not None
    return lambda: lambda: api("POST", "/transfer/clients/client-one/send", iam=True)


def current_key(documents: Mapping[str, Any]) -> RecipientKey:
    jwk = next(k for k in documents["keys"] if k["kid"] == documents["current_kid"])
    return public_key_from_pem(RSAKey.import_key(jwk).as_pem(private=False))


def identifying(want: Want) -> Prepare:
    """Auto-id requests, each with a fresh nonce (the retry re-sends the same one)."""

    def prepare(stack: Stack) -> Callable[[], Request]:
        stack.services.secrets.create(SECRET, "autoid canary")
        # As on AWS, the role must trust credport's account (README: its trust policy must trust the app's role).
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}],
            }
        )
        stack.services.factory.client("iam").create_role(
            RoleName=ROLE.rsplit("/", maxsplit=1)[-1], AssumeRolePolicyDocument=trust
        )
        policy = ClientPolicy(secrets=(SECRET,), roles=(ROLE,))
        entropy = autoid.get_autoid_service().registry.enroll("worker-1", policy).entropy
        recipient = current_key(api("GET", "/auto-id/keys").body)

        def fresh() -> Request:
            body = {"jwe": seal(recipient, json.dumps(build_request("worker-1", 1, entropy, want)[0]).encode())}
            return lambda: api("POST", "/auto-id", body=body)

        return fresh

    return prepare


KMS_KEYS, SESSION_KEYS = "kms.DescribeKey*3 kms.GetPublicKey*2", "sm.DescribeSecret sm.GetSecretValue*2"
IMPORT, AUTOID = (
    "sm.GetSecretValue*2 sm.DescribeSecret",
    "sm.GetSecretValue dynamodb.GetItem s3.GetObject dynamodb.PutItem",
)
# the profile; a pending version, sealed into the outbox; put in force, its link's session, announced, finished
SEND = (
    "dynamodb.GetItem sm.DescribeSecret sm.PutSecretValue sm.GetSecretValue s3.PutObject"
    " sm.UpdateSecretVersionStage sts.AssumeRole sns.Publish sm.UpdateSecretVersionStage"
)
# route -> (its AWS calls on a cold container, its setup and requests)
ROUTES: dict[str, tuple[str, Prepare]] = {
    "GET /token": (f"iam.GetRole {KMS_KEYS} kms.Sign", plain("GET", "/token", iam=True)),
    "GET /.well-known/openid-configuration": (
        KMS_KEYS,
        plain("GET", f"{WELL_KNOWN}openid-configuration", warm_up="/token"),
    ),
    "GET /.well-known/jwks.json": (KMS_KEYS, plain("GET", f"{WELL_KNOWN}jwks.json", warm_up="/token")),
    "POST /session": (f"iam.GetRole {SESSION_KEYS}", plain("POST", "/session", iam=True)),
    "POST /session/refresh": (SESSION_KEYS, bearer("POST", "/session/refresh")),
    "GET /session": (SESSION_KEYS, bearer("GET", "/session")),
    "GET /transfer/import-key": ("sm.GetSecretValue*2", plain("GET", "/transfer/import-key")),
    "POST /transfer/import (new secret)": (f"{IMPORT} sm.CreateSecret", importing(existing=False)),
    "POST /transfer/import (new version)": (f"{IMPORT} sm.PutSecretValue", importing(existing=True)),
    "POST /transfer/clients/{id}/send": (SEND, sending),
    "GET /auto-id/keys": ("sm.GetSecretValue", plain("GET", "/auto-id/keys")),
    "POST /auto-id (secret)": (f"{AUTOID} sm.GetSecretValue {SESSION_KEYS}", identifying(Want(secret_id=SECRET))),
    "POST /auto-id (role)": (f"{AUTOID} sts.AssumeRole {SESSION_KEYS}", identifying(Want(role_arn=ROLE))),
}


def unfinished_send(stack: Stack, before: dict[str, Any], after: dict[str, Any], where: str) -> str | None:
    """What a failed send may leave: nothing, or one new version still labelled AWSPENDING (the retry finishes that
    very version), with its outbox copy, and AWSCURRENT and its one announcement only if its last step failed."""
    old, now = before["secrets"][CLIENT_SECRET], after["secrets"][CLIENT_SECRET]
    added = set(now) - set(old)
    if not added:
        return None
    (pending,) = added
    assert PENDING in now[pending], where
    assert {v for v, stages in now.items() if CURRENT in stages} <= {pending, *(v for v in old if CURRENT in old[v])}
    assert {m["version_id"] for m in stack.messages("notify")[before["notify"] :]} <= {pending}, where
    written = {key for key, *_ in set(after["objects"][stack.bucket]) - set(before["objects"][stack.bucket])}
    assert written <= {f"outbox/client-one/{pending}.jwe"}, where
    rest = lambda snapshot: {k: v for k, v in snapshot.items() if k not in ("secrets", "objects", "notify")}  # noqa: E731
    assert rest(after) == rest(before), where
    return pending


def sent_once(stack: Stack, before: dict[str, Any], version: str, pending: str | None, where: str) -> None:
    """A send retried after a failure ends as a clean send: one new version, in force and delivered."""
    old = before["secrets"][CLIENT_SECRET]
    previous = next(v for v, stages in old.items() if CURRENT in stages)
    assert pending in (None, version), where
    assert stack.versions(CLIENT_SECRET) == {**{v: set() for v in old}, previous: {PREVIOUS}, version: {CURRENT}}
    assert f"outbox/client-one/{version}.jwe" in stack.keys("outbox/"), where
    assert {m["version_id"] for m in stack.messages("notify")[before["notify"] :]} == {version}, where


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_aws_failure_of_a_route_is_a_503_that_changes_nothing(stack: Stack, route: str) -> None:
    spec, prepare = ROUTES[route]
    expected, fresh = calls(spec), prepare(stack)
    stack.cold()
    stack.faults.reset()
    assert fresh()().status == 200
    assert stack.faults.calls == list(expected), "the route's AWS calls changed: update ROUTES and its checks"
    cases = 0
    for kind in KINDS:
        for service, operation, nth in positions(expected):
            where = f"{route}: {kind} on {service} {operation} #{nth}"
            request, before = fresh(), stack.snapshot()
            stack.cold()
            stack.faults.reset()
            stack.faults.fail(kind, service, operation, nth=nth)
            reply = request()
            assert stack.faults.fired == [((service, operation), kind)], where
            assert (reply.status, reply.body.get("error")) == (503, "service_unavailable"), where
            assert reply.headers["Retry-After"] == ("2" if kind == "throttling" else "1"), where
            assert reply.headers["Cache-Control"] == "no-store", where
            after = stack.snapshot()
            pending = unfinished_send(stack, before, after, where) if "send" in route else None
            assert pending is not None or after == before, where
            stack.cold()
            stack.faults.reset()
            retried = request()  # the very same request, once the fault is gone
            assert retried.status == 200, (where, retried)
            if "send" in route:
                sent_once(stack, before, retried.body["version_id"], pending, where)
            cases += 1
    assert cases == len(KINDS) * len(expected)


def test_a_failing_key_read_in_the_bearer_authorizer_is_never_a_401(stack: Stack) -> None:
    """API Gateway turns any authorizer error but ``Unauthorized`` into its AUTHORIZER_CONFIGURATION_ERROR gateway
    response (500 unless the API definition maps it). A fault must never be ``Unauthorized``: a client would drop
    a valid session."""
    token = api("POST", "/session", iam=True).body["token"]
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/session"
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": arn}
    stack.cold()
    stack.faults.reset()
    assert credport_app.bearer(event, None)["principalId"] == "arn:aws:iam::123456789012:role/credport-dev-workload"
    assert stack.faults.calls == list(calls(SESSION_KEYS))
    for kind in KINDS:
        for service, operation, nth in positions(calls(SESSION_KEYS)):
            stack.cold()
            stack.faults.reset()
            stack.faults.fail(kind, service, operation, nth=nth)
            with pytest.raises(AwsUnavailable) as raised:
                credport_app.bearer(event, None)
            assert str(raised.value) != "Unauthorized"
            assert stack.faults.fired == [((service, operation), kind)]
