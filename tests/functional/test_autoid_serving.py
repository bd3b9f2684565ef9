"""Auto-id serves only names under its serving prefixes: deny by structure, proven against every secret credport's
own flows create, in both signer modes.

The internal secrets are not listed here: every flow that creates secrets runs on moto (the provisioned template,
every rotation the template schedules, signing-key rotation and revocation, a transfer client's registration and
send, the import key and an import, auto-id rotation), then every secret in the account is listed. Each one
outside the serving prefixes is internal: it must belong to a kind of ``chalicelib/internal_secrets.py`` (so a
new kind made by code but not registered fails here), be refused 403 to a client enrolled with the broadest
policy enrolment allows, and be refused by enrolment, named exactly or reached by any ``prefix*``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import boto3
import pytest
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.autoid import AutoIdService, ClientPolicy, Enrollment, InvalidPolicy, Want, build_request
from chalicelib.aws import AwsServices
from chalicelib.aws.secrets import SecretVersion
from chalicelib.config import get_settings
from chalicelib.envelope import decrypt_direct, public_key_from_pem, seal
from chalicelib.internal_secrets import KINDS, TOKEN_SIGNING, internal_kind
from local.provision import Provisioned
from local.rotation import RotationDriver
from tests.conftest import ACCOUNT_ID, REGION, app_services
from tests.functional.conftest import Configure
from tests.functional.test_autoid import post, sealed_request

PREFIX = "credport-dev"
SERVED = f"{PREFIX}/autoid/app-token"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"}],
    }
)


@pytest.fixture
def service(configure: Configure) -> AutoIdService:
    return app_services().autoid


class Refusals:
    """Why the service refused each credential (its log line), read by the tests: a 403 must come from the scope."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def reasons(self) -> list[str]:
        return [
            str(vars(record)["reason"])
            for record in self._caplog.records
            if record.name == "credport" and record.getMessage() == "auto-id credential refused"
        ]


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> Refusals:
    caplog.set_level(logging.INFO)
    return Refusals(caplog)


def ask(client: Client, service: AutoIdService, enrollment: Enrollment, want: Want) -> tuple[int, dict[str, Any]]:
    """One auto-id request through the app (``post``: the one place that knows which function serves it)."""
    document, response_key = build_request(enrollment.record.client_id, 1, enrollment.entropy, want)
    response = post(client, {"jwe": sealed_request(service, document)})
    body = json.loads(response.body)
    if response.status_code == 200:
        body = json.loads(decrypt_direct(body["jwe"], response_key, max_bytes=4 * 1024 * 1024))
    return response.status_code, body


def assert_forbidden(answer: tuple[int, dict[str, Any]], refusals: Refusals, reason: str, case: object) -> None:
    status, body = answer
    assert (status, body.get("error")) == (403, "forbidden"), (case, body)
    assert refusals.reasons[-1] == reason, case


def legacy_client(
    service: AutoIdService, client_id: str, secrets: tuple[str, ...], roles: tuple[str, ...] = ()
) -> Enrollment:
    """A client whose stored policy is wider than enrolment now allows: enrolled narrow, then its record rewritten
    as a record enrolled before the serving prefixes existed (or edited by hand) would be."""
    enrollment = service.registry.enroll(client_id, ClientPolicy(secrets=(SERVED,)))
    wide = replace(enrollment.record, policy=ClientPolicy(secrets=secrets, roles=roles))
    boto3.resource("dynamodb").Table(get_settings().resources.state_table).put_item(Item=wide.item())
    return replace(enrollment, record=wide)


def broadest_policy() -> ClientPolicy:
    """The widest policy enrolment accepts: every serving prefix, '*'."""
    return ClientPolicy(secrets=tuple(f"{p}*" for p in get_settings().autoid_serving_prefixes))


def assert_enrolment_refused(service: AutoIdService, secrets: tuple[str, ...], case: object) -> None:
    with pytest.raises(InvalidPolicy) as refused:  # by the policy's syntax ('*') or by the scope
        service.registry.enroll("refused-client", ClientPolicy(secrets=secrets))
    assert (refused.value.status, refused.value.code) == (400, "invalid_policy"), case


# Enrolment ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        ClientPolicy(secrets=(f"{PREFIX}/*",)),
        ClientPolicy(secrets=(f"{PREFIX}/auto*",)),
        ClientPolicy(secrets=(f"{PREFIX}/autoid/app-*", f"{PREFIX}/token-signing/current")),
        ClientPolicy(roles=(f"{ROLE}{PREFIX}-*",)),
        ClientPolicy(roles=(f"{ROLE}{PREFIX}-auto_id",)),
    ],
    ids=["prefix-star", "auto-star", "one-bad-of-two", "own-roles", "auto-id-role"],
)
def test_enrolment_refuses_a_policy_reaching_beyond_the_serving_prefixes(
    service: AutoIdService, aws: AwsServices, policy: ClientPolicy
) -> None:
    with pytest.raises(InvalidPolicy) as refused:
        service.registry.enroll("wide-client", policy)
    assert (refused.value.status, refused.value.code) == (400, "invalid_policy")
    if policy.secrets:
        assert f"{PREFIX}/autoid/, {PREFIX}/imported/" in refused.value.message  # it names the serving prefixes
    # Refused before anything was written: no record, no entropy.
    assert service.registry.get("wide-client") is None
    assert not list(aws.s3.list_keys(get_settings().resources.transfer_bucket, "autoid/wide-client/"))


def test_enrolment_accepts_the_broadest_policy_and_auto_id_roles(service: AutoIdService) -> None:
    wide = ClientPolicy(secrets=broadest_policy().secrets, roles=(f"{ROLE}{PREFIX}-autoid-*",))
    assert service.registry.enroll("broad-client", wide).record.policy == wide


# Serving ---------------------------------------------------------------------------------------------------


def test_a_record_enrolled_before_the_rules_is_still_refused_outside_the_prefixes(
    service: AutoIdService, aws: AwsServices, refusals: Refusals, client: Client
) -> None:
    aws.secrets.create(SERVED, "served-value")
    aws.secrets.create(f"{PREFIX}/billing/api-key", "not-served")
    legacy = legacy_client(service, "legacy-1", (f"{PREFIX}/*", "credport*"))
    status, body = ask(client, service, legacy, Want(secret_id=SERVED))
    assert (status, body["secret"]["value"]) == (200, "served-value")
    existing = ask(client, service, legacy, Want(secret_id=f"{PREFIX}/billing/api-key"))
    missing = ask(client, service, legacy, Want(secret_id=f"{PREFIX}/billing/no-such-secret"))
    assert_forbidden(existing, refusals, "outside_serving_prefixes", "existing")
    assert_forbidden(missing, refusals, "outside_serving_prefixes", "missing")
    assert existing == missing  # the same answer whether or not it exists
    service.server_keys.current_kid()  # the server key secret holds a value
    for name in ("session-key", "autoid-session-key", "transfer-import-key", "autoid-server-key"):
        assert_forbidden(
            ask(client, service, legacy, Want(secret_id=f"{PREFIX}/{name}")), refusals, "internal_secret", name
        )


def test_a_record_allowing_credports_roles_is_still_refused_them(
    service: AutoIdService, refusals: Refusals, client: Client
) -> None:
    iam = boto3.client("iam")
    own = iam.get_role(RoleName=f"{PREFIX}-auto_id")["Role"]["Arn"]  # the template's, auto-id's own role
    served = iam.create_role(RoleName=f"{PREFIX}-autoid-reader", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    legacy = legacy_client(service, "legacy-2", (SERVED,), (f"{ROLE}*",))
    assert_forbidden(ask(client, service, legacy, Want(role_arn=own)), refusals, "credport_role", own)
    status, body = ask(client, service, legacy, Want(role_arn=served))
    assert status == 200, body
    assert body["credentials"]["AssumedRoleArn"].endswith(f":assumed-role/{PREFIX}-autoid-reader/autoid-legacy-2")


def test_a_secret_that_resolves_outside_the_scope_is_refused(
    service: AutoIdService, refusals: Refusals, monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    """Secrets Manager reads a name ending in '-' and six characters as a partial ARN: the version it answers must
    be the very name asked for, and inside the scope, or nothing is served."""
    enrolled = service.registry.enroll("worker-1", ClientPolicy(secrets=(f"{PREFIX}/autoid/*",)))
    answers = iter(
        [
            SecretVersion("arn:x", f"{PREFIX}/session-key", "v1", ("AWSCURRENT",), None, "never-served"),
            SecretVersion("arn:x", f"{PREFIX}/autoid/other", "v1", ("AWSCURRENT",), None, "never-served"),
        ]
    )

    class Store:
        def get_value(self, _name: str) -> SecretVersion:
            return next(answers)

    monkeypatch.setattr(service, "_secrets", Store())
    for case in ("internal", "another-name"):
        status, body = ask(client, service, enrolled, Want(secret_id=f"{PREFIX}/autoid/app-AbCdEf"))
        assert (status, body["error"]) == (403, "forbidden"), case
        assert "never-served" not in json.dumps(body)
    assert refusals.reasons == ["resolved_to_another_name", "resolved_to_another_name"]


# Every internal secret the code creates, in both signer modes ------------------------------------------------


def run_every_secret_creating_flow(provisioned: Provisioned, aws: AwsServices, signer: str) -> None:
    import app

    handlers = {f.name: getattr(app, f.handler_string.rsplit(".", 1)[1]) for f in app.app.pure_lambda_functions}
    driver = RotationDriver(ACCOUNT_ID, REGION)
    assert provisioned.rotations, "template.yaml schedules rotations"
    for spec in provisioned.rotations:  # every secret rotation the template schedules, as Secrets Manager runs it
        driver.rotate(spec.secret_id, handlers[spec.function_arn.rsplit(":", 1)[1]], function_arn=spec.function_arn)
    services = app_services()
    services.sessions.start("arn:aws:iam::123456789012:role/worker")
    token_service = services.tokens
    token_service.jwks()  # a fresh deployment's first keys
    token_service.rotate(force=True)
    token_service.rotation.revoke_current()  # envelope: the revoked key's secret is scheduled for deletion
    # A transfer client registers (its secret is made and sent) and is sent a new version on demand.
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    key = "clients/client-one/public.pem"
    bucket = get_settings().resources.transfer_bucket
    aws.s3.put(
        bucket, key, pem.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    services.sender.on_client_object(key, aws.s3.head(bucket, key).etag)  # type: ignore[union-attr]
    services.transfer.send("client-one")
    # The import key (made on first use), and a secret imported with it (a served one).
    recipient = public_key_from_pem(services.import_keys.current().public_pem())
    document = {"secret_name": f"{PREFIX}/imported/partner-token", "value": "imported-value"}
    services.transfer.import_request({"jwe": seal(recipient, json.dumps(document).encode())}, f"{ROLE}operator")
    services.autoid_rotation.rotate()  # a new server key and entropy generation
    aws.secrets.create(SERVED, "served-value")  # what an operator puts under a serving prefix


def listed_secrets(aws: AwsServices) -> list[str]:
    """Every secret's name in the account, those scheduled for deletion included."""
    pages = aws.factory.client("secretsmanager").get_paginator("list_secrets")
    return [s["Name"] for page in pages.paginate(IncludePlannedDeletion=True) for s in page["SecretList"]]


@pytest.mark.parametrize("signer", ["kms", "envelope"])
def test_every_internal_secret_the_code_creates_is_refused(
    provisioned: Provisioned,
    configure: Configure,
    aws: AwsServices,
    refusals: Refusals,
    client: Client,
    signer: str,
) -> None:
    """The canary (with ``envelope``): the broadest client enrolment allows gets 403 for every internal secret
    (the token-signing private keys among them), and enrolment refuses ``<prefix>/*``."""
    configure({"CREDPORT_TOKEN_SIGNER": signer})
    run_every_secret_creating_flow(provisioned, aws, signer)
    service = app_services().autoid
    serving = get_settings().autoid_serving_prefixes
    broadest = service.registry.enroll("broadest", broadest_policy())
    for name in (SERVED, f"{PREFIX}/imported/partner-token"):  # the client does get what it may
        status, body = ask(client, service, broadest, Want(secret_id=name))
        assert status == 200, body
        assert body["secret"]["secret_id"] == name

    internal = sorted({name for name in listed_secrets(aws) if not name.startswith(serving)})
    kinds = {internal_kind(PREFIX, name) for name in internal}
    unregistered = [name for name in internal if internal_kind(PREFIX, name) is None]
    assert not unregistered, f"secrets created by code but not in chalicelib/internal_secrets.py: {unregistered}"
    expected = {k for k in KINDS if signer == "envelope" or k is not TOKEN_SIGNING}
    assert kinds == expected, "every kind was created by the flows above (else this test proves less than it says)"

    for name in internal:
        assert_forbidden(ask(client, service, broadest, Want(secret_id=name)), refusals, "internal_secret", name)
        assert_enrolment_refused(service, (name,), name)
        for cut in range(len(name) + 1):  # every 'prefix*' that reaches it
            assert_enrolment_refused(service, (name[:cut] + "*",), name[:cut])
    assert_enrolment_refused(service, (f"{PREFIX}/*",), "the canary's <prefix>/*")
    assert service.registry.get("refused-client") is None
