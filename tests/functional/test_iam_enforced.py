"""The app's flows against moto, IAM enforced as AWS enforces it, as a role holding exactly .chalice/policy-dev.json.

Enforcement is local.iam.enforce (moto's own request authorisation, deciding with local.iam.policy.authorize): every
request is authorised against the resources AWS uses (the KMS key behind an alias, the secret's real ARN, the table,
topic, queue, bucket or object), with its Condition blocks evaluated on a context read from the embedded AWS's state
(the key's actual tags and aliases, the request's tags, s3:prefix, dynamodb:LeadingKeys, ...), and with the resources'
policies (bucket, queue and KMS key policies, role trust policies). KMS tags and aliases take effect for authorisation
only 300 s after they are set, as "it might take up to five minutes" on AWS: no flow may depend on a tag it just set.

A missing permission fails a flow (AccessDenied becomes our 500); an excess one is a (Sid, action) of the policy that
no request of any flow was allowed by (condition included), and that NOT_EXERCISED does not list with its reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication

import app as credport_app
from chalicelib import autoid, sessions, tokens, transfer
from chalicelib.autoid import ClientPolicy, Want, build_request
from chalicelib.aws import reset_aws
from chalicelib.config import get_settings, reset_settings
from chalicelib.envelope import decrypt_direct, public_key_from_pem, seal
from chalicelib.tokens.envelope_keys import ENVELOPE_JOURNAL_KEY
from chalicelib.tokens.kms_keys import KMS_JOURNAL_KEY
from local.iam import enforce
from local.iam.policy import Decision, Request, evaluate_policy
from local.provision import Provisioned
from local.rotation import RotationDriver
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT
from tests.permissions import entry_for
from tests.support import gateway_event

POLICY = json.loads((REPO_ROOT / ".chalice" / "policy-dev.json").read_text())
ROLE = "credport-dev-app"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}"
# A role no signing key's key policy names (keys made by an operator by hand, or before credport's key policies named
# the functions' roles): only the tag-scoped IAM grant (UseTokenSigningKeys) lets it use them, once the tags count.
REPLACED_ROLE = "credport-dev-other-signer"
APP_ROLES = (ROLE_ARN, f"arn:aws:iam::{ACCOUNT_ID}:role/{REPLACED_ROLE}")
TAG_DELAY = 300  # seconds: KMS Developer Guide, ABAC for AWS KMS ("up to five minutes")
_elapsed = [0.0]  # seconds the enforcement's clock is ahead of real time (the tags' delay runs on it)
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
ASYNC_FAILURES = "used by the Lambda service to record a failed asynchronous invocation (OnFailure destination)"
VIA_SERVICE = "used by S3 / Secrets Manager on the function's behalf (kms:ViaService); moto never calls KMS so"
RESUMED_REVOKE = "a scheduled rotation resuming an operator's interrupted `token revoke-current` (the only caller)"
AFTER_GRACE = "the autoid rotation purging generations past their grace period (needs a clock: see test_autoid)"
NONCE_RELEASE = "only when an auto-id request fails with a 503 after its nonce was recorded (test_faults.py)"
NOT_EXERCISED: dict[tuple[str, str], str] = {
    **{("Logs", f"logs:{a}"): PLATFORM for a in ("CreateLogGroup", "CreateLogStream", "PutLogEvents")},
    **{("ReadS3Events", f"sqs:{a}"): PLATFORM for a in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")},
    ("AsyncFailureRecords", "sqs:SendMessage"): ASYNC_FAILURES,
    **{
        (sid, f"kms:{a}"): VIA_SERVICE
        for sid in ("DataKeyThroughS3", "DataKeyThroughSecretsManager")
        for a in ("Decrypt", "GenerateDataKey")
    },
    ("UseTokenSigningKeys", "kms:DisableKey"): RESUMED_REVOKE,
    ("UseTokenSigningKeys", "kms:GetKeyPolicy"): (
        "recovering a key whose creation a crash left unjournaled (tests/functional/test_signing_key_recovery.py) "
        "with a role the key's policy does not name; no flow here crashes"
    ),
    ("UseTokenSigningKeys", "kms:CreateAlias"): (
        "a role the key policy does not name creating an alias on an existing key: aliases exist from the first "
        "bootstrap on (made by the key's creator, through its key policy) unless an operator deleted one"
    ),
    ("UseTokenSigningKeys", "kms:DeleteAlias"): RESUMED_REVOKE,
    ("PointTokenSigningAliases", "kms:DeleteAlias"): RESUMED_REVOKE,
    ("AutoIdEntropy", "s3:DeleteObject"): AFTER_GRACE,
    ("AutoIdEntropy", "s3:DeleteObjectVersion"): AFTER_GRACE,
    ("AutoIdListEntropy", "s3:ListBucketVersions"): AFTER_GRACE,  # the purge lists an object's versions first
    ("AutoIdReleaseNonces", "dynamodb:DeleteItem"): NONCE_RELEASE,
}

Seen = list[tuple[Request, Decision]]
_seen: Seen = []  # every decision taken while enforcing (the `seen` fixture empties it)


@pytest.fixture
def seen() -> Iterator[Seen]:
    _elapsed[0] = 0.0
    _seen.clear()
    yield _seen
    _seen.clear()


@pytest.fixture
def stack(provisioned: Provisioned, seen: Seen, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The app runs with the credentials of a role whose only policy is policy-dev.json (as Lambda gives them)."""
    enforce.install()  # from here on, KMS tag and alias changes are timed (the provisioned ones count as settled)
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=ROLE, PolicyName="credport", PolicyDocument=json.dumps(POLICY))
    # The caller of the IAM-authorised routes is a session of an existing role "ci" (the app reads it with GetRole).
    caller_role = iam.create_role(RoleName="ci", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["RoleId"]
    for field in ("caller", "user"):
        monkeypatch.setitem(CALLER, field, f"{caller_role}:run-1")
    creds = boto3.client("sts").assume_role(RoleArn=ROLE_ARN, RoleSessionName="lambda")["Credentials"]
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


def _observe(request: Request, decision: Decision) -> None:
    _seen.append((request, decision))


def enforced() -> AbstractContextManager[None]:
    return enforce.enforcing(
        tag_authorization_delay_seconds=TAG_DELAY, observer=_observe, clock=lambda: time.time() + _elapsed[0]
    )


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


def flow_tokens_after_role_replacement(client: Client) -> None:
    """Keys made by the first role keep signing for its replacement once their tags count (UseTokenSigningKeys)."""
    flow_tokens(client)
    iam, trust = boto3.client("iam"), boto3.client("iam").get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    iam.create_role(RoleName=REPLACED_ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=REPLACED_ROLE, PolicyName="credport", PolicyDocument=json.dumps(POLICY))
    creds = boto3.client("sts").assume_role(RoleArn=APP_ROLES[1], RoleSessionName="lambda")["Credentials"]
    _elapsed[0] += TAG_DELAY + 1
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        env.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        env.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
        reset_aws()
        tokens.reset_token_service()
        assert call("/token")["token"]  # Sign, GetPublicKey, DescribeKey on keys the key policy does not grant it
        state = boto3.resource("dynamodb").Table(get_settings().resources.state_table)
        state.update_item(
            Key=KMS_JOURNAL_KEY, UpdateExpression="SET completed_at = :t", ExpressionAttributeValues={":t": 0}
        )
        schedule(client, "rotate_signing_keys", "run-replaced")  # moves aliases, retires the old role's first key
        assert call("/token")["token"]
    reset_aws()
    tokens.reset_token_service()


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
    "tokens-after-role-replacement": flow_tokens_after_role_replacement,
    "envelope-tokens": flow_envelope_tokens,
    "sessions": flow_sessions,
    "transfer": flow_transfer,
    "autoid": flow_autoid,
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_each_flow_succeeds_with_exactly_the_policy(name: str, stack: Client, seen: Seen) -> None:
    FLOWS[name](stack)
    assert any(d is Decision.ALLOW for _, d in seen), "no request was authorised under enforcement"


def allowed_by(request: Request) -> set[tuple[str, str]]:
    """The (Sid, action) pairs of the policy that, each on its own, allow this request (conditions evaluated)."""
    found = set()
    for statement in POLICY["Statement"]:
        for action in statement["Action"]:
            alone = {"Version": POLICY["Version"], "Statement": [{**statement, "Action": action}]}
            if evaluate_policy(alone, request) is Decision.ALLOW:
                found.add((statement["Sid"], action))
    return found


def test_every_statement_action_of_the_policy_is_used(stack: Client, seen: Seen) -> None:
    for flow in FLOWS.values():
        flow(stack)
    used: set[tuple[str, str]] = set()
    for request, decision in seen:
        if decision is Decision.ALLOW and request.principal is not None and request.principal.arn in APP_ROLES:
            used |= allowed_by(request)
    granted = {(s["Sid"], a) for s in POLICY["Statement"] for a in s["Action"]}
    unused = granted - used
    # The offline check's catalog (tests/permissions) knows every request the app made here: it cannot drift.
    made = {(r.action, r.resource) for r, _ in seen if r.principal is not None and r.principal.arn in APP_ROLES}
    assert sorted(m for m in made if entry_for(*m) is None) == [], "requests the catalog does not know"
    assert sorted(unused - set(NOT_EXERCISED)) == [], "excess: granted, never used, no documented reason"
    assert sorted(set(NOT_EXERCISED) - unused) == [], "NOT_EXERCISED lists pairs a flow does use (or not granted)"


def _old_key_bootstrap(enforcement: AbstractContextManager[None]) -> list[str]:
    """The token-signing key bootstrap before this change (KeyService.find_by_description), as the app role: every key
    of the account listed, then each described to read its description (the listing is not what fails)."""
    kms = boto3.session.Session().client("kms")  # a new session reads the role's credentials from the environment
    key_ids = [k["KeyId"] for k in kms.list_keys()["Keys"]]
    with enforcement:
        return [kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] for key_id in key_ids]


def test_old_key_bootstrap_is_denied(stack: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    data_key = boto3.client("kms").describe_key(KeyId="alias/credport-dev/data")["KeyMetadata"]  # not enforced
    assert not boto3.client("kms").list_resource_tags(KeyId=data_key["KeyId"])["Tags"]
    # The old suite's enforcement: moto's own condition-blind check, given the key ARN as its `scoped` patch did.
    enforce.uninstall()
    try:
        with monkeypatch.context() as patch:
            stock = ActionAuthenticatorMixin._authenticate_and_authorize_action

            def scoped(self: Any, iam_request_cls: type, resource: str = "*") -> None:
                if self.service_name == "kms" and "KeyId" in (params := json.loads(self.body or "{}")):
                    resource = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{params['KeyId']}"
                stock(self, iam_request_cls, resource)

            patch.setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", scoped)
            assert data_key["Description"] in _old_key_bootstrap(enable_iam_authentication())
    finally:
        enforce.install()
    with pytest.raises(ClientError) as denied:
        _old_key_bootstrap(enforced())
    assert denied.value.operation_name == "DescribeKey"
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"kms:DescribeKey on resource: {data_key['Arn']}" in denied.value.response["Error"]["Message"]
