"""The app's flows against moto, IAM enforced as AWS enforces it, each function as its own role holding exactly its
own policy file (.chalice/config.json: policy-dev-<function>.json), as chalice deploys them.

Enforcement is local.iam.enforce (moto's own request authorisation, deciding with local.iam.policy.authorize): every
request is authorised against the resources AWS uses (the KMS key behind an alias, the secret's real ARN, the table,
topic, queue, bucket or object), with its Condition blocks evaluated on a context read from the embedded AWS's state
(the key's actual tags and aliases, the request's tags, s3:prefix, dynamodb:LeadingKeys, ...), and with the resources'
policies (bucket, queue and KMS key policies, role trust policies). KMS tags and aliases take effect for authorisation
only 300 s after they are set, as "it might take up to five minutes" on AWS: no flow may depend on a tag it just set.

Each invocation signs with its function's role session (the app's composition root built with a
local.execution.FunctionCredentials, as the local stack does): routes as the API handler, POST /auto-id as auto_id,
the bearer authorizer as bearer, each event handler as itself. A missing permission fails a flow (AccessDenied becomes
our 500); an excess one is a (function, Sid, action) of a policy that no request of that function in any flow was
allowed by (condition included), and that NOT_EXERCISED does not list with its reason. Every request a function
made is one the catalog says that very function makes (tests.permissions.entries_for).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from chalice.local import LocalGatewayAuthorizer
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from joserfc.util import urlsafe_b64decode
from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication

import app as credport_app
from chalicelib import internal_secrets
from chalicelib.autoid import ClientPolicy, Want, build_request
from chalicelib.aws import running_as
from chalicelib.config import get_settings, reset_settings
from chalicelib.envelope import decrypt_direct, public_key_from_pem, seal
from chalicelib.services import Services
from chalicelib.tokens.envelope_keys import ENVELOPE_JOURNAL_KEY
from chalicelib.tokens.kms_keys import KMS_JOURNAL_KEY
from local.execution import FunctionCredentials, Keys, lambda_session
from local.iam import enforce
from local.iam.policy import Decision, Request, evaluate_policy
from local.provision import Provisioned, app_functions
from local.rotation import RotationDriver
from tests.conftest import ACCOUNT_ID, REGION
from tests.permissions import entries_for
from tests.permissions.check import policy_of
from tests.permissions.model import deployment
from tests.support import api_gateway, gateway_event
from tests.support.s3_notifications import versioned_notifications

FUNCTIONS = tuple(sorted(app_functions(credport_app.app).values()))
POLICIES = {function: policy_of(deployment("dev"), function) for function in FUNCTIONS}
ROLES = {function: deployment("dev").role_name(function) for function in FUNCTIONS}  # credport-dev-<function>
# Roles no signing key's key policy names (keys made by an operator by hand, or before credport's key policies named
# the functions' roles): only the tag-scoped IAM grant (UseTokenSigningKeys) lets them use the keys, once the tags
# count. One replaces each function that uses the keys, with that function's policy.
REPLACED = {"api_handler": "credport-dev-other-signer", "rotate_signing_keys": "credport-dev-other-rotator"}
# role ARN -> the function whose policy it holds
APP_ROLES = {
    **{f"arn:aws:iam::{ACCOUNT_ID}:role/{role}": function for function, role in ROLES.items()},
    **{f"arn:aws:iam::{ACCOUNT_ID}:role/{role}": function for function, role in REPLACED.items()},
}
_sessions: dict[str, Keys] = {}  # function -> the session its requests sign with (the stack fixture makes them)
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
# (Sid, action) grants no flow here can use, each with the reason, for every function whose policy holds it; then
# (function, Sid, action) grants one function holds and no flow of that function uses. The test asserts both exact.
PLATFORM = "used by the Lambda service for the function (runtime logs, the SQS event source mapping), not by our code"
ASYNC_FAILURES = "used by the Lambda service to record a failed asynchronous invocation (OnFailure destination)"
VIA_SERVICE = "used by S3 / Secrets Manager on the function's behalf (kms:ViaService); moto never calls KMS so"
RESUMED_REVOKE = "a scheduled rotation resuming an operator's interrupted `token revoke-current` (the only caller)"
AFTER_GRACE = "the autoid rotation purging generations past their grace period (needs a clock: see test_autoid)"
NONCE_RELEASE = "only when an auto-id request fails with a 503 after its nonce was recorded (test_faults.py)"
RESUMED_RUN = "the API handler finishing a signing-key run a crash interrupted (ensure_keys resumes it); none here"
FIRST_SEND = "a send to a client whose secret does not exist yet: its registration (s3_object_events) makes it first"
SEND_LATER = ("api_handler", "rotate_transfer_secrets")
REREGISTER = "a client registering again (a new public key) while its secret exists; the flow registers it once"
S3 = "s3_object_events"
_GRANTS_NOT_EXERCISED: dict[tuple[str, str], str] = {
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
    ("AutoIdEntropy", "s3:DeleteObjectVersion"): AFTER_GRACE,
    ("AutoIdListEntropy", "s3:ListBucketVersions"): AFTER_GRACE,  # the purge lists an object's versions first
    ("InspectClientFiles", "s3:GetObject"): (
        "a clients/ event without a version id (an unversioned bucket): the transfer bucket is versioned, so each "
        "event is read by its version id (s3:GetObjectVersion)"
    ),
}
NOT_EXERCISED: dict[tuple[str, str, str], str] = {
    **{
        (function, statement["Sid"], action): reason
        for function, policy in POLICIES.items()
        for statement in policy["Statement"]
        for action in statement["Action"]
        if (reason := _GRANTS_NOT_EXERCISED.get((statement["Sid"], action)))
    },
    ("auto_id", "AutoIdNonces", "dynamodb:DeleteItem"): NONCE_RELEASE,
    ("api_handler", "UseTokenSigningKeys", "kms:DescribeKey"): (
        "a signing-key run of the API handler's own (a fresh deployment's first token, or one a crash interrupted: "
        "ensure_keys); its key ring reads the keys with GetPublicKey by alias, and the schedule made them here"
    ),
    **{("api_handler", sid, f"kms:{a}"): RESUMED_RUN for sid, a in (("PointTokenSigningAliases", "UpdateAlias"),)},
    **{("api_handler", "UseTokenSigningKeys", f"kms:{a}"): RESUMED_RUN for a in ("ScheduleKeyDeletion", "UpdateAlias")},
    ("api_handler", "UseEnvelopeSigningKeys", "secretsmanager:DeleteSecret"): RESUMED_RUN,
    **{(f, "TransferClientSecrets", "secretsmanager:CreateSecret"): FIRST_SEND for f in SEND_LATER},
    **{
        (S3, "TransferClientSecrets", f"secretsmanager:{a}"): REREGISTER
        for a in ("PutSecretValue", "UpdateSecretVersionStage")
    },
    (S3, "TransferImportKey", "secretsmanager:PutSecretValue"): (
        "the import key's bootstrap: whichever function needs it first writes it (here GET /transfer/import-key)"
    ),
}

Seen = list[tuple[Request, Decision]]
_seen: Seen = []  # every decision taken while enforcing (the `seen` fixture empties it)


@pytest.fixture
def seen() -> Iterator[Seen]:
    _elapsed[0] = 0.0
    _seen.clear()
    yield _seen
    _seen.clear()


def _role_session(role: str, function: str) -> Keys:
    """``role`` (template.yaml's part of the function's role, or a replacement) holding exactly ``function``'s
    policy, and a session of it as Lambda makes one for the function."""
    iam = boto3.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        arn = iam.get_role(RoleName=role)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="credport", PolicyDocument=json.dumps(POLICIES[function]))
    return lambda_session(ACCOUNT_ID, REGION, arn, function)


def _sign_as(sessions: dict[str, Keys]) -> None:
    _sessions.clear()
    _sessions.update(sessions)
    credentials = FunctionCredentials(sessions)
    # Every container from now on signs as these roles (the capabilities built so far are dropped with their clients).
    credport_app.services.build_with(lambda: Services.from_environment(credentials=credentials))


@pytest.fixture
def stack(provisioned: Provisioned, seen: Seen, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """Each function runs with the credentials of its own role, whose only policy is its policy file (as Lambda
    gives them); chalice's test gateway runs the bearer authorizer as the bearer function."""
    enforce.install()  # from here on, KMS tag and alias changes are timed (the provisioned ones count as settled)
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    # The caller of the IAM-authorised routes is a session of an existing role "ci" (the app reads it with GetRole).
    caller_role = iam.create_role(RoleName="ci", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["RoleId"]
    for field in ("caller", "user"):
        monkeypatch.setitem(CALLER, field, f"{caller_role}:run-1")
    _sign_as({function: _role_session(role, function) for function, role in ROLES.items()})
    for name, value in _sessions["api_handler"].environment().items():  # a client the test makes itself
        monkeypatch.setenv(name, value)
    stock = LocalGatewayAuthorizer.authorize

    def as_authorizer(self: Any, raw_path: str, lambda_event: Any, lambda_context: Any) -> Any:
        cold()
        with running_as("bearer"):  # the one custom authorizer: a function of its own, with its own role
            answer = stock(self, raw_path, lambda_event, lambda_context)
        cold()  # the route then runs in the API handler's container
        return answer

    monkeypatch.setattr(LocalGatewayAuthorizer, "authorize", as_authorizer)
    reset_settings()
    with Client(credport_app.app, stage_name="dev") as client:
        yield client
    credport_app.services.build_with(Services.from_environment)  # as the app builds it: botocore's credentials
    _sessions.clear()


def _observe(request: Request, decision: Decision) -> None:
    _seen.append((request, decision))


def cold() -> None:
    """A cold container: nothing cached from another function's invocation (each function runs in its own on AWS,
    so what one loaded never spares another a request its own role must be allowed)."""
    credport_app.services.use(Services(get_settings(), credport_app.services().aws))  # the same clients


def enforced() -> AbstractContextManager[None]:
    """One invocation, in a cold container, IAM enforced."""
    cold()
    return enforce.enforcing(
        tag_authorization_delay_seconds=TAG_DELAY, observer=_observe, clock=lambda: time.time() + _elapsed[0]
    )


def ok(response: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])  # type: ignore[no-any-return]


def call(
    path: str,
    method: str = "GET",
    body: Any = None,
    *,
    who: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    **path_parameters: str,
) -> dict[str, Any]:
    """An IAM-authorised route, with the caller's identity (``who``, else :data:`CALLER`) as API Gateway passes it."""
    event = gateway_event(
        path.format(**path_parameters),
        who or CALLER,
        method=method,
        query=query,
        headers={"Content-Type": "application/json"},
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
    """Every enabled algorithm's key set (RS256 under the legacy names, ES384 under its own: one journal each) is
    bootstrapped, signs, and is rotated by the schedule until its first key is retired."""
    get(client, "/.well-known/openid-configuration")
    assert {key["alg"] for key in get(client, "/.well-known/jwks.json")["keys"]} == {"RS256", "ES384"}
    assert call("/token")["token_type"] == "Bearer"
    assert call("/token", query={"alg": "ES384"})["token"]
    state = boto3.resource("dynamodb").Table(get_settings().resources.state_table)
    journals = [journal, {**journal, "sk": f"{journal['sk']}/es384"}]
    for run in range(3):  # the third rotation retires the first key
        for key in journals:
            state.update_item(Key=key, UpdateExpression="SET completed_at = :t", ExpressionAttributeValues={":t": 0})
        ran = schedule(client, "rotate_signing_keys", f"run-{run}")  # the last rotation is long past
        assert {alg: result["kind"] for alg, result in ran["algorithms"].items()} == {
            "RS256": "rotate",
            "ES384": "rotate",
        }
        assert call("/token")["token"]
        assert call("/token", query={"alg": "ES384"})["token"]


def flow_tokens_after_role_replacement(client: Client) -> None:
    """Keys made by the first roles keep signing for their replacements once their tags count (UseTokenSigningKeys)."""
    flow_tokens(client)
    original = dict(_sessions)
    _elapsed[0] += TAG_DELAY + 1
    try:
        # The API handler's role replaced: Sign, GetPublicKey, DescribeKey on keys whose key policy does not name it.
        _sign_as({**original, "api_handler": _role_session(REPLACED["api_handler"], "api_handler")})
        assert call("/token")["token"]
        # The rotation's role replaced: it moves aliases and retires the first key (made by the original roles); the
        # key it makes names the API handler's role, which signs with it at once.
        _sign_as(
            {**original, "rotate_signing_keys": _role_session(REPLACED["rotate_signing_keys"], "rotate_signing_keys")}
        )
        state = boto3.resource("dynamodb").Table(get_settings().resources.state_table)
        state.update_item(
            Key=KMS_JOURNAL_KEY, UpdateExpression="SET completed_at = :t", ExpressionAttributeValues={":t": 0}
        )
        schedule(client, "rotate_signing_keys", "run-replaced")
        assert call("/token")["token"]
    finally:
        _sign_as(original)


def flow_user_tokens(client: Client) -> None:
    """An IAM user of the account asks for a token: the app reads the user's tags with GetUser (ReadCallerUsers)."""
    user = boto3.client("iam").create_user(UserName="ci-user", Path="/ops/", Tags=[{"Key": "team", "Value": "ci"}])
    user_id = user["User"]["UserId"]
    who = {**CALLER, "userArn": user["User"]["Arn"], "caller": user_id, "user": user_id, "accessKey": "AKIAEXAMPLE"}
    assert call("/token", who=who)["token"]


def flow_organization_paths(client: Client) -> None:
    """A caller of the organization gets its OU path: the API handler assumes the operator's lookup role in the
    management account (LookUpOrganizationPaths), whose own policy allows organizations:ListParents."""
    organizations = boto3.client("organizations")
    org_id = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root = organizations.list_roots()["Roots"][0]["Id"]
    prefix = get_settings().prefix
    handler = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLES['api_handler']}"
    trust = {"Effect": "Allow", "Principal": {"AWS": handler}, "Action": "sts:AssumeRole"}
    iam = boto3.client("iam")
    lookup = iam.create_role(
        RoleName=f"{prefix}-org-lookup",
        Path="/operators/",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}),
    )["Role"]["Arn"]
    allowed = {"Effect": "Allow", "Action": "organizations:ListParents", "Resource": "*"}
    iam.put_role_policy(
        RoleName=f"{prefix}-org-lookup",
        PolicyName="list-parents",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allowed]}),
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN", lookup)
        reset_settings()
        token = call("/token", who={**CALLER, "principalOrgId": org_id})["token"]
        claims = json.loads(urlsafe_b64decode(token.split(".")[1].encode()))
        assert claims[f"{get_settings().issuer}/"]["ou_path"] == f"{org_id}/{root}/"
    reset_settings()
    cold()


def flow_envelope_tokens(client: Client) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CREDPORT_TOKEN_SIGNER", "envelope")
        reset_settings()
        cold()
        flow_tokens(client, ENVELOPE_JOURNAL_KEY)
    reset_settings()
    cold()


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
    with versioned_notifications():  # as S3 notifies for the versioned transfer bucket: each event names its version
        _flow_transfer(client)


def _flow_transfer(client: Client) -> None:
    r, s3 = get_settings().resources, boto3.client("s3")
    get(client, "/transfer/import-key")
    recipient = public_key_from_pem(credport_app.services().import_keys.current().public_pem())

    def sealed(name: str, value: str = "v1") -> str:
        return seal(recipient, json.dumps({"secret_name": f"credport-dev/imported/{name}", "value": value}).encode())

    s3.put_object(Bucket=r.transfer_bucket, Key="inbox/db.jwe", Body=sealed("db").encode())
    s3.put_object(Bucket=r.transfer_bucket, Key="inbox/db-v2.jwe", Body=sealed("db", "v2").encode())  # a new version

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    s3.put_object(Bucket=r.transfer_bucket, Key="clients/client-one/public.pem", Body=pem)
    mistake = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    s3.put_object(Bucket=r.transfer_bucket, Key="clients/oops/public.pem", Body=mistake)  # purged
    assert deliver_s3_events(client) == 4
    assert "Contents" not in s3.list_objects_v2(Bucket=r.transfer_bucket, Prefix="clients/oops/")
    assert boto3.client("secretsmanager").describe_secret(SecretId="credport-dev/imported/db")
    assert call("/transfer/import", "POST", {"jwe": sealed("api")})
    assert call("/transfer/import", "POST", {"jwe": sealed("api", "v2")})  # a new version of the same secret
    assert call("/transfer/clients/{client_id}/send", "POST", client_id="client-one")
    with pytest.MonkeyPatch.context() as env:  # the optional schedule, switched on
        env.setenv("CREDPORT_TRANSFER_ROTATION_DAYS", "1")
        reset_settings()
        assert schedule(client, "rotate_transfer_secrets") == {"rotated": 1}
    reset_settings()


def identify(body: dict[str, Any]) -> dict[str, Any]:
    """POST /auto-id as API Gateway hands it to the auto_id function."""
    event = gateway_event("/auto-id", {"sourceIp": "203.0.113.7"}, method="POST")
    event["body"] = json.dumps(body)
    with enforced():
        return ok(api_gateway(event))


def flow_autoid(client: Client) -> None:
    secret = "credport-dev/autoid/db-password"
    boto3.client("secretsmanager").create_secret(Name=secret, SecretString="hunter2")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    role = boto3.client("iam").create_role(
        RoleName="credport-dev-autoid-reader", AssumeRolePolicyDocument=json.dumps(trust)
    )
    policy = ClientPolicy(secrets=(secret,), roles=(role["Role"]["Arn"],))
    with running_as("api_handler"):  # the operator (unenforced: any credentials the embedded AWS knows)
        entropy = credport_app.services().autoid.registry.enroll("worker-1", policy).entropy
    for want in (Want(secret_id=secret), Want(role_arn=role["Role"]["Arn"])):
        keys = get(client, "/auto-id/keys")
        jwk = next(k for k in keys["keys"] if k["kid"] == keys["current_kid"])
        document, response_key = build_request("worker-1", 1, entropy, want)
        sealed = seal(public_key_from_pem(RSAKey.import_key(jwk).as_pem(private=False)), json.dumps(document).encode())
        answer = identify({"jwe": sealed})
        session = json.loads(decrypt_direct(answer["jwe"], response_key))["session"]["token"]
    # The auto-id session at work: the bearer authorizer and the route check its client's record.
    bearer = {"Authorization": f"Bearer {session}"}
    refreshed = get(client, "/session/refresh", "POST", headers=bearer)["token"]
    assert get(client, "/session", headers={"Authorization": f"Bearer {refreshed}"})
    assert schedule(client, "rotate_autoid_keys")["clients_rotated"] == 1


FLOWS: dict[str, Callable[[Client], None]] = {
    "tokens": flow_tokens,
    "tokens-after-role-replacement": flow_tokens_after_role_replacement,
    "envelope-tokens": flow_envelope_tokens,
    "user-tokens": flow_user_tokens,
    "organization-paths": flow_organization_paths,
    "sessions": flow_sessions,
    "transfer": flow_transfer,
    "autoid": flow_autoid,
}


@pytest.mark.parametrize("name", list(FLOWS))
def test_each_flow_succeeds_with_exactly_the_policy(name: str, stack: Client, seen: Seen) -> None:
    FLOWS[name](stack)
    assert any(d is Decision.ALLOW for _, d in seen), "no request was authorised under enforcement"


def allowed_by(function: str, request: Request) -> set[tuple[str, str, str]]:
    """The (function, Sid, action) of the function's policy that, each on its own, allow this request (conditions
    evaluated)."""
    policy, found = POLICIES[function], set()
    for statement in policy["Statement"]:
        for action in statement["Action"]:
            alone = {"Version": policy["Version"], "Statement": [{**statement, "Action": action}]}
            if evaluate_policy(alone, request) is Decision.ALLOW:
                found.add((function, statement["Sid"], action))
    return found


def test_every_statement_action_of_the_policy_is_used(stack: Client, seen: Seen) -> None:
    for flow in FLOWS.values():
        flow(stack)
    used: set[tuple[str, str, str]] = set()
    made: set[tuple[str, str, str]] = set()
    for request, decision in seen:
        function = APP_ROLES.get(request.principal.arn) if request.principal is not None else None
        if function is None:
            continue
        made.add((function, request.action, request.resource))
        if decision is Decision.ALLOW:
            used |= allowed_by(function, request)
    granted = {(f, s["Sid"], a) for f, policy in POLICIES.items() for s in policy["Statement"] for a in s["Action"]}
    unused = granted - used
    # The offline check's catalog (tests/permissions) knows every request each function made here, as that
    # function's: neither the catalog nor its attribution of calls to functions can drift from the code.
    unknown = sorted(m for m in made if not entries_for(m[1], m[2], function=m[0]))
    assert unknown == [], "requests the catalog does not know (for that function)"
    assert sorted(unused - set(NOT_EXERCISED)) == [], (
        f"excess: granted, never used, no documented reason: {sorted(unused - set(NOT_EXERCISED))}"
    )
    assert sorted(set(NOT_EXERCISED) - unused) == [], "NOT_EXERCISED lists grants a flow does use (or not granted)"


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


def _as_function(function: str, service: str) -> Any:
    keys = _sessions[function]
    return boto3.client(
        service,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
    )


def _denied(request: Callable[[], Any]) -> str:
    with enforced(), pytest.raises(ClientError) as refused:
        request()
    return str(refused.value.response["Error"]["Code"])


def test_the_auto_id_role_reads_no_internal_secret_and_still_serves(stack: Client, seen: Seen) -> None:
    """Every kind of secret credport owns (chalicelib/internal_secrets.py: the code's own list, so a future kind is
    covered too) exists after the flows, token-signing keys with the envelope signer included; the auto_id function's
    role is refused each (but the two it works with), whatever its code would ask, and auto-id still serves."""
    flow_envelope_tokens(stack)
    flow_transfer(stack)
    flow_sessions(stack)
    prefix = get_settings().prefix
    listed = boto3.client("secretsmanager").get_paginator("list_secrets").paginate()  # the operator, unenforced
    found: dict[str, list[str]] = {}
    for page in listed:
        for entry in page["SecretList"]:
            kind = internal_secrets.internal_kind(prefix, entry["Name"])
            if kind is not None:
                found.setdefault(kind.suffix, []).append(entry["ARN"])
    works_with = {internal_secrets.AUTOID_SERVER_KEY.suffix, internal_secrets.AUTOID_SESSION_KEY.suffix}
    assert {k.suffix for k in internal_secrets.KINDS} <= set(found), "a kind no flow made: make one here"
    secrets = _as_function("auto_id", "secretsmanager")
    for suffix, arns in found.items():
        for arn in arns if suffix not in works_with else ():
            assert _denied(lambda arn=arn: secrets.get_secret_value(SecretId=arn)) == "AccessDeniedException", arn
            assert _denied(lambda arn=arn: secrets.describe_secret(SecretId=arn)) == "AccessDeniedException", arn
    # Only the rotation function writes the session keys: not the API handler, not the authorizer.
    for function in ("api_handler", "bearer", "auto_id"):
        writer = _as_function(function, "secretsmanager")
        for arn in found["session-key"] + found["autoid-session-key"]:
            put = functools.partial(writer.put_secret_value, SecretId=arn, SecretString="{}")
            assert _denied(put) == "AccessDeniedException", (function, arn)
    flow_autoid(stack)  # and the unauthenticated function still serves auto-id requests end to end
