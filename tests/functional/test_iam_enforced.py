"""The app's flows against moto with IAM enforced, as a role holding exactly .chalice/policy-dev.json.

A missing permission fails a flow (moto's AccessDenied becomes our 500); an excess one is an action of the policy that
no flow used. What moto checks, measured with moto 5.2 (see moto/iam/access_control.py and core/authorization.py):
- SigV4 and the action, for every service. Resources only for S3 (bucket, bucket/key), SQS (queue ARN), STS (role
  ARN) and IAM: the other services authorise every request against "*", which no scoped statement matches. So the
  `scoped` patch below gives KMS, Secrets Manager, DynamoDB and SNS requests their resource ARNs, as AWS would
  (KMS: the key ARN, even when addressed by alias; alias operations: the alias ARN and the target key ARN).
- Condition blocks are NOT evaluated for identity policies (moto passes no request context: every condition holds).
  The tag conditions on kms:CreateKey / secretsmanager:CreateSecret, kms:ViaService and s3:prefix stay untested here.
- Trust policies of assumed roles are evaluated. Resource policies (bucket, queue, key policies) are listed as not
  supported in moto's own TODO (access_control.py) and were not measured here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import boto3
import pytest
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.kms.models import kms_backends

import app as credport_app
from chalicelib import autoid, sessions, tokens, transfer
from chalicelib.autoid import ClientPolicy, Want, build_request
from chalicelib.aws import reset_aws
from chalicelib.config import get_settings, reset_settings
from chalicelib.envelope import decrypt_direct, public_key_from_pem, seal
from chalicelib.tokens.envelope_keys import ENVELOPE_JOURNAL_KEY
from chalicelib.tokens.kms_keys import KMS_JOURNAL_KEY
from local.provision import Provisioned
from local.rotation import RotationDriver
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT
from tests.support import gateway_event

POLICY = json.loads((REPO_ROOT / ".chalice" / "policy-dev.json").read_text())
ROLE = "credport-dev-app"
CALLER = {
    "userArn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ci/run-1",
    "accountId": ACCOUNT_ID,
    "caller": "AROAEXAMPLEID:run-1",
    "user": "AROAEXAMPLEID:run-1",
    "accessKey": "ASIAEXAMPLE",
    "sourceIp": "203.0.113.7",
}
# (Sid, action) pairs no flow here can use, each with the reason. The test asserts this list is exact.
PLATFORM = "used by the Lambda service for the function (runtime logs, the SQS event source mapping), not by our code"
VIA_SERVICE = "used by S3 / Secrets Manager on the function's behalf (kms:ViaService); moto never calls KMS so"
TAG_ON_CREATE = "AWS authorises the Tags of CreateKey/CreateSecret as TagResource; moto checks only the Create action"
RESUMED_REVOKE = "a scheduled rotation resuming an operator's interrupted `token revoke-current` (the only caller)"
AFTER_GRACE = "the autoid rotation purging generations past their grace period (needs a clock: see test_autoid)"
NONCE_RELEASE = "only when an auto-id request fails with a 503 after its nonce was recorded (test_faults.py)"
NOT_EXERCISED: dict[tuple[str, str], str] = {
    **{("Logs", f"logs:{a}"): PLATFORM for a in ("CreateLogGroup", "CreateLogStream", "PutLogEvents")},
    **{("ReadS3Events", f"sqs:{a}"): PLATFORM for a in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")},
    **{
        (sid, f"kms:{a}"): VIA_SERVICE
        for sid in ("DataKeyThroughS3", "DataKeyThroughSecretsManager")
        for a in ("Decrypt", "GenerateDataKey")
    },
    ("CreateTokenSigningKeys", "kms:TagResource"): TAG_ON_CREATE,
    ("CreateEnvelopeSigningKeys", "secretsmanager:TagResource"): TAG_ON_CREATE,
    ("ImportedSecrets", "secretsmanager:TagResource"): TAG_ON_CREATE,
    ("UseTokenSigningKeys", "kms:DisableKey"): RESUMED_REVOKE,
    ("UseTokenSigningKeys", "kms:DeleteAlias"): RESUMED_REVOKE,
    ("PointTokenSigningAliases", "kms:DeleteAlias"): RESUMED_REVOKE,
    ("AutoIdEntropy", "s3:DeleteObject"): AFTER_GRACE,
    ("AutoIdEntropy", "s3:DeleteObjectVersion"): AFTER_GRACE,
    ("AutoIdReleaseNonces", "dynamodb:DeleteItem"): NONCE_RELEASE,
}

Seen = list[tuple[str, tuple[str, ...]]]


def _params(response: Any) -> dict[str, Any]:
    """The request's parameters: a JSON body (KMS, Secrets Manager, DynamoDB) or a query (SNS)."""
    raw = response.body
    if isinstance(raw, dict):
        return raw
    try:
        return dict(json.loads(raw))
    except (TypeError, ValueError):
        return {k: v[0] for k, v in response.querystring.items()}


def _resources(response: Any, action: str) -> list[str]:
    """The ARNs AWS authorises this request against (moto itself says "*" for these services)."""
    service, params, region = response.service_name, _params(response), response.region
    prefix = f"arn:aws:{service}:{region}:{ACCOUNT_ID}"
    if service == "secretsmanager" and (name := params.get("SecretId") or params.get("Name")):
        return [name if name.startswith("arn:") else f"{prefix}:secret:{name}-AbCdEf"]
    if service == "dynamodb" and "TableName" in params:
        return [f"{prefix}:table/{params['TableName']}"]
    if service == "sns" and "TopicArn" in params:
        return [params["TopicArn"]]
    if service == "kms":
        backend, found = kms_backends[ACCOUNT_ID][region], []
        if alias := params.get("AliasName"):
            found.append(f"{prefix}:{alias}")
            if action == "DeleteAlias" and (target := backend.get_key_id_from_alias(alias)):
                found.append(f"{prefix}:key/{target}")
        keys = [params[k] for k in ("KeyId", "TargetKeyId") if k in params]
        if any(k.startswith("alias/") and backend.get_key_id_from_alias(k) is None for k in keys):
            return []  # no such alias: AWS answers NotFoundException, there is no key to authorise against
        found += [f"{prefix}:key/{backend.any_id_to_key_id(key)}" for key in keys]
        return found or ["*"]
    return ["*"]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every request moto authorised while enforcing: (service:Action, resources)."""
    recorded: Seen = []
    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def scoped(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            return original(self, iam_request_cls, resource)
        action = self._get_action()
        found = [resource] if resource != "*" else _resources(self, action)
        if not found:
            return None
        for each in found:
            original(self, iam_request_cls, each)
        service = self.headers["Authorization"].split("Credential=")[1].split("/")[3]
        recorded.append((f"{service}:{action}", tuple(found)))
        return None

    monkeypatch.setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", scoped)
    return recorded


@pytest.fixture
def stack(provisioned: Provisioned, seen: Seen, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The app runs with the credentials of a role whose only policy is policy-dev.json (as Lambda gives them)."""
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=ROLE, PolicyName="credport", PolicyDocument=json.dumps(POLICY))
    creds = boto3.client("sts").assume_role(RoleArn=arn, RoleSessionName="lambda")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    reset_settings()
    reset_aws()
    resets = (tokens.reset_token_service, sessions.reset_session_service, autoid.reset_autoid_service)
    caches = (transfer.get_import_keys, transfer.get_importer, transfer.get_sender)
    for reset in (*resets, *(c.cache_clear for c in caches)):
        reset()
    with Client(credport_app.app, stage_name="dev") as client:
        yield client
    for reset in (*resets, *(c.cache_clear for c in caches)):
        reset()


def enforced() -> AbstractContextManager[None]:
    return enable_iam_authentication()


def ok(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])  # type: ignore[no-any-return]


def call(path: str, method: str = "GET", body: Any = None, **path_parameters: str) -> dict[str, Any]:
    """An IAM-authorised route, with the caller's identity as API Gateway passes it."""
    event = gateway_event(
        path.format(**path_parameters), CALLER, method=method, headers={"Content-Type": "application/json"}
    )
    event.update(resource=path, pathParameters=path_parameters or None, body=None if body is None else json.dumps(body))
    event["requestContext"]["resourcePath"] = path
    with enforced():
        return ok(credport_app.app(event, None))


def get(client: Client, path: str, method: str = "GET", **kwargs: Any) -> Any:
    with enforced():
        response = client.http.request(method, path, **kwargs)
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def schedule(client: Client, name: str, event_id: str = "run-1") -> Any:
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
    with enforced():
        return client.lambda_.invoke(name, {**event, "id": event_id}).payload


def deliver_s3_events(client: Client) -> int:
    """What the event source mapping does: the queued S3 notifications to the function (admin reads the queue)."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="credport-dev-s3-events")["QueueUrl"]
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    records = [b for b in bodies if "Records" in json.loads(b)]  # s3:TestEvent carries none
    for body in records:
        with enforced():
            client.lambda_.invoke(
                "s3_object_events", client.events.generate_sqs_event([body], "credport-dev-s3-events")
            )
    return len(records)


def flow_tokens(client: Client, journal: dict[str, str] = KMS_JOURNAL_KEY) -> None:
    get(client, "/.well-known/openid-configuration")
    assert get(client, "/.well-known/jwks.json")["keys"]
    assert call("/token")["token_type"] == "Bearer"
    state = boto3.resource("dynamodb").Table(get_settings().resources.state_table)
    for run in range(3):  # the third rotation retires the first key
        state.update_item(Key=journal, UpdateExpression="SET completed_at = :t", ExpressionAttributeValues={":t": 0})
        schedule(client, "rotate_signing_keys", f"run-{run}")  # the last rotation is long past
        assert call("/token")["token"]


def flow_envelope_tokens(client: Client) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CREDPORT_TOKEN_SIGNER", "envelope")
        reset_settings()
        tokens.reset_token_service()
        flow_tokens(client, ENVELOPE_JOURNAL_KEY)
    reset_settings()
    tokens.reset_token_service()


def flow_sessions(client: Client) -> None:
    started = call("/session", method="POST")
    refreshed = get(client, "/session/refresh", "POST", headers={"Authorization": f"Bearer {started['token']}"})
    arn = get_settings().resources.session_key_secret_arn
    name = boto3.client("secretsmanager").describe_secret(SecretId=arn)["Name"]

    def rotate(event: dict[str, Any], _context: Any) -> None:
        with enforced():
            client.lambda_.invoke("rotate_session_key", event)

    RotationDriver(ACCOUNT_ID, REGION).rotate(name, rotate)
    assert get(client, "/session", headers={"Authorization": f"Bearer {refreshed['token']}"})


def flow_transfer(client: Client) -> None:
    r, s3 = get_settings().resources, boto3.client("s3")
    get(client, "/transfer/import-key")
    recipient = public_key_from_pem(transfer.get_import_keys().current().public_pem())

    def sealed(name: str, value: str = "v1") -> str:
        return seal(recipient, json.dumps({"secret_name": f"credport-dev/imported/{name}", "value": value}).encode())

    s3.put_object(Bucket=r.transfer_bucket, Key="inbox/db.jwe", Body=sealed("db").encode())

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    s3.put_object(Bucket=r.transfer_bucket, Key="clients/client-one/public.pem", Body=pem)
    mistake = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    s3.put_object(Bucket=r.transfer_bucket, Key="clients/oops/public.pem", Body=mistake)  # purged
    assert deliver_s3_events(client) == 3
    assert "Contents" not in s3.list_objects_v2(Bucket=r.transfer_bucket, Prefix="clients/oops/")
    assert boto3.client("secretsmanager").describe_secret(SecretId="credport-dev/imported/db")
    assert call("/transfer/import", "POST", {"jwe": sealed("api")})
    assert call("/transfer/import", "POST", {"jwe": sealed("api", "v2")})  # a new version of the same secret
    assert call("/transfer/clients/{client_id}/send", "POST", client_id="client-one")
    schedule(client, "rotate_transfer_secrets")


def flow_autoid(client: Client) -> None:
    secret = "credport-dev/autoid/db-password"
    boto3.client("secretsmanager").create_secret(Name=secret, SecretString="hunter2")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    role = boto3.client("iam").create_role(
        RoleName="credport-dev-autoid-reader", AssumeRolePolicyDocument=json.dumps(trust)
    )
    policy = ClientPolicy(secrets=(secret,), roles=(role["Role"]["Arn"],))
    entropy = autoid.get_autoid_service().registry.enroll("worker-1", policy).entropy  # the operator, unenforced
    for want in (Want(secret_id=secret), Want(role_arn=role["Role"]["Arn"])):
        keys = get(client, "/auto-id/keys")
        jwk = next(k for k in keys["keys"] if k["kid"] == keys["current_kid"])
        document, response_key = build_request("worker-1", 1, entropy, want)
        sealed = seal(public_key_from_pem(RSAKey.import_key(jwk).as_pem(private=False)), json.dumps(document).encode())
        answer = get(
            client, "/auto-id", "POST", headers={"Content-Type": "application/json"}, body=json.dumps({"jwe": sealed})
        )
        assert json.loads(decrypt_direct(answer["jwe"], response_key))
    assert schedule(client, "rotate_autoid_keys")["clients_rotated"] == 1


FLOWS: dict[str, Callable[[Client], None]] = {
    "tokens": flow_tokens,
    "envelope-tokens": flow_envelope_tokens,
    "sessions": flow_sessions,
    "transfer": flow_transfer,
    "autoid": flow_autoid,
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_each_flow_succeeds_with_exactly_the_policy(name: str, stack: Client, seen: Seen) -> None:
    FLOWS[name](stack)
    assert seen, "no request was authorised under enforcement"


def allowed_by(action: str, resources: tuple[str, ...]) -> set[tuple[str, str]]:
    """The (Sid, action) pairs of the policy that allow this request (what moto found, per statement)."""
    found = set()
    for statement in POLICY["Statement"]:
        matcher = IAMPolicyStatement(statement)
        if any(matcher.is_action_permitted(action, r) == PermissionResult.PERMITTED for r in resources):
            found.add((statement["Sid"], action))
    return found


def test_every_statement_action_of_the_policy_is_used(stack: Client, seen: Seen) -> None:
    for flow in FLOWS.values():
        flow(stack)
    used: set[tuple[str, str]] = set()
    for action, resources in seen:
        used |= allowed_by(action, resources)
    granted = {(s["Sid"], a) for s in POLICY["Statement"] for a in s["Action"]}
    unused = granted - used
    assert sorted(unused - set(NOT_EXERCISED)) == [], "excess: granted, never used, no documented reason"
    assert sorted(set(NOT_EXERCISED) - unused) == [], "NOT_EXERCISED lists pairs a flow does use (or not granted)"
