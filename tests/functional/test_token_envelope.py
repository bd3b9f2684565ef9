"""The envelope signer (CREDPORT_TOKEN_SIGNER=envelope) against moto, through the app's handlers.

Private keys are made by the service, kept one per secret under ``<prefix>/token-signing/`` (encrypted by
Secrets Manager under the data key), and sign in memory. Relying parties must not be able to tell the
signers apart; rotation, revocation and failures behave as with KMS keys (the rotation suite in
test_token_rotation.py runs every scenario with both signers).
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from chalicelib.aws import AwsUnavailable
from chalicelib.aws.clients import ClientFactory
from chalicelib.aws.dynamodb import ItemTable
from chalicelib.config import get_settings
from chalicelib.tokens import TokenRejected, TokenVerifier
from chalicelib.tokens.envelope_keys import ROLES_KEY, EnvelopeKeyStore, InvalidSigningKey
from chalicelib.tokens.issuer import TokenIssuer
from chalicelib.tokens.keyring import KeyRing
from chalicelib.tokens.service import TokenService, key_store
from tests.conftest import app_services, install_services
from tests.functional.conftest import Configure
from tests.functional.test_token_documents import ISSUER, PRIVATE_MEMBERS, documents, issue, pyjwt_decode
from tests.functional.test_token_rotation import PRINCIPAL
from tests.functional.test_tokens import call, decode, key_thumbprint, request_token
from tests.support import Clock

# The callers' role exists with the id their identity carries: credport reads it (iam:GetRole).
pytestmark = pytest.mark.usefixtures("callers_role")

ENVELOPE = {"CREDPORT_TOKEN_SIGNER": "envelope", "CREDPORT_ISSUER": ISSUER}
# The rotation mechanics of one key set (each algorithm has its own, rotated alike: test_token_rotation.py).
ONE_KEY_SET = {**ENVELOPE, "CREDPORT_TOKEN_ALGORITHMS": "RS256"}
AUD = "sts.amazonaws.com"
PUBLIC_MEMBERS = {
    "RS256": {"kty", "n", "e", "kid", "use", "alg"},
    "ES256": {"kty", "crv", "x", "y", "kid", "use", "alg"},
}
EVENTS_QUEUE = "envelope-key-events"


def jwks() -> dict[str, Any]:
    """The JWKS this (the app's) container serves."""
    reply = call("/.well-known/jwks.json")
    assert reply.status == 200, reply.body
    return reply.body


def published_jwks(factory: ClientFactory) -> dict[str, Any]:
    """The JWKS relying parties fetch (the copy in the public bucket, served at the issuer)."""
    bucket = os.environ["CREDPORT_PUBLIC_BUCKET"]
    stored = factory.client("s3").get_object(Bucket=bucket, Key="oidc/.well-known/jwks.json")
    document: dict[str, Any] = json.loads(stored["Body"].read())
    return document


def verify(token: str, keys: dict[str, Any] | None = None) -> dict[str, Any]:
    return TokenVerifier(keys if keys is not None else jwks(), issuer=ISSUER).verify(token, audience=AUD)


def kid_of(token: str) -> str:
    return str(decode(token)[0]["kid"])


def secret_state(factory: ClientFactory, key_id: str) -> str:
    described = factory.client("secretsmanager").describe_secret(SecretId=key_id)
    return "PendingDeletion" if described.get("DeletedDate") else "Enabled"


def roles() -> dict[str, str | None]:
    return key_store(get_settings(), app_services().aws).roles()


@pytest.fixture
def key_events(factory: ClientFactory) -> list[dict[str, Any]]:
    """Every key event published, read back (by ``drain``) from a queue subscribed to the key-events topic."""
    sqs, sns = factory.client("sqs"), factory.client("sns")
    url = sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=os.environ["CREDPORT_KEY_EVENTS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn)
    return []


def drain(factory: ClientFactory, received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sqs = factory.client("sqs")
    url = sqs.get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received.append(json.loads(json.loads(message["Body"])["Message"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


# Issuing and verifying ------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_envelope_tokens_verify_through_the_published_jwks(
    configure: Configure, factory: ClientFactory, alg: str
) -> None:
    configure({**ENVELOPE, "CREDPORT_TOKEN_ALGORITHM": alg})
    token = issue(AUD)
    header, claims, signature = decode(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": key_thumbprint(factory, alg=alg, signer="envelope")}
    assert len(signature) == (256 if alg == "RS256" else 64)  # RSA-2048; ES256 as r || s, not DER

    discovery, jwks_reply = documents()
    assert discovery.body["id_token_signing_alg_values_supported"] == [alg]
    keys = jwks_reply.body
    assert len(keys["keys"]) == 2  # current and pending
    for key in keys["keys"]:
        assert set(key) == PUBLIC_MEMBERS[alg]
        assert (key["use"], key["alg"]) == ("sig", alg)
        imported = RSAKey.import_key(key) if alg == "RS256" else ECKey.import_key(key)
        assert not imported.is_private
        assert key["kid"] == imported.thumbprint()

    assert verify(token, keys) == claims
    assert pyjwt_decode(token, keys, alg=alg, audience=AUD) == claims
    assert published_jwks(factory) == keys  # what CloudFront serves at the issuer is the same document
    with pytest.raises(TokenRejected) as rejected:
        verify(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"), keys)
    assert rejected.value.check == "signature"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_relying_party_cannot_tell_the_signers_apart(configure: Configure, alg: str) -> None:
    """The same header (but for the kid), the same claims, JWKS members and discovery document."""
    seen: dict[str, tuple[Any, ...]] = {}
    for signer in ("kms", "envelope"):
        configure({"CREDPORT_TOKEN_SIGNER": signer, "CREDPORT_TOKEN_ALGORITHM": alg, "CREDPORT_ISSUER": ISSUER})
        token = issue(AUD)
        header, claims, _ = decode(token)
        discovery, jwks_reply = documents()
        assert verify(token, jwks_reply.body) == claims
        seen[signer] = (
            json.dumps(header).replace(header["kid"], "KID"),
            len(token.split(".")[0]),
            sorted(claims),
            [sorted(key) for key in jwks_reply.body["keys"]],
            discovery.body,
        )
    assert seen["kms"] == seen["envelope"]


def test_the_signer_is_chosen_by_configuration(configure: Configure) -> None:
    configure(ENVELOPE)
    assert get_settings().token_signer == "envelope"
    assert isinstance(app_services().tokens.keyring.store, EnvelopeKeyStore)
    configure({"CREDPORT_TOKEN_SIGNER": "kms"})
    assert app_services().tokens.keyring.store.signer == "kms"


# Rotation and revocation -----------------------------------------------------------------------------


def test_rotation_keeps_previous_key_tokens_verifiable(
    configure: Configure, factory: ClientFactory, key_events: list[dict[str, Any]]
) -> None:
    configure(ONE_KEY_SET)
    first = issue(AUD)
    first_roles = roles()
    service = app_services().tokens

    (report,) = service.rotate(force=True)
    assert (report.previous, report.current) == (first_roles["current"], first_roles["pending"])
    keys = jwks()
    assert len(keys["keys"]) == 3
    assert keys == published_jwks(factory)
    assert verify(first, keys)["jti"] == decode(first)[1]["jti"]  # signed by what is now the previous key
    second = issue(AUD)
    assert kid_of(second) != kid_of(first)
    assert kid_of(second) == key_thumbprint(factory, "current", signer="envelope")
    assert verify(second, keys)

    # The next rotation retires the first key: out of the JWKS, its secret scheduled for deletion.
    (report,) = service.rotate(force=True)
    assert report.retired == first_roles["current"]
    assert kid_of(first) not in {k["kid"] for k in jwks()["keys"]}
    with pytest.raises(TokenRejected) as rejected:
        verify(first)
    assert (rejected.value.check, rejected.value.reason) == ("kid", "kid")
    assert secret_state(factory, str(first_roles["current"])) == "PendingDeletion"
    assert verify(second)
    announced = [e for e in drain(factory, key_events) if e["kind"] == "rotate"]
    assert len(announced) == 2
    assert announced[-1]["kids"]["previous"] == kid_of(second)


def test_revoke_current_drops_the_key_everywhere_and_warm_containers_follow(
    configure: Configure, factory: ClientFactory, key_events: list[dict[str, Any]]
) -> None:
    configure(ENVELOPE)
    compromised = issue(AUD)
    before = roles()
    clock = Clock(1_000.0)  # another API container, warm too, that will not hear the key event
    other_warm = TokenIssuer(KeyRing(key_store(get_settings(), app_services().aws), clock=clock), ISSUER)
    assert other_warm.issue(PRINCIPAL, audience=AUD, ttl=600).kid == kid_of(compromised)

    # The operator revokes from elsewhere (credport-admin token revoke-current).
    report = TokenService(get_settings(), app_services().aws).rotation.revoke_current()
    after = roles()
    assert (report.kind, report.retired) == ("revoke", before["current"])
    assert (after["previous"], after["current"]) == (before["previous"], before["pending"])
    assert after["pending"] not in {*before.values(), None}
    assert secret_state(factory, str(before["current"])) == "PendingDeletion"
    assert key_store(get_settings(), app_services().aws).open(str(before["current"])) is None  # nobody can load it now
    (revoked,) = [e for e in drain(factory, key_events) if e["type"] == "signing-key-revoked"]
    assert kid_of(compromised) not in revoked["kids"].values()

    # Relying parties: the key is gone from the published JWKS and its tokens fail; a cold container signs
    # with the new current key.
    assert kid_of(compromised) not in {k["kid"] for k in published_jwks(factory)["keys"]}
    with pytest.raises(TokenRejected) as rejected:
        verify(compromised, published_jwks(factory))
    assert (rejected.value.check, rejected.value.reason) == ("kid", "kid")
    cold = TokenService(get_settings(), app_services().aws)
    fresh = cold.issuer.issue(PRINCIPAL, audience=AUD, ttl=600)
    assert fresh.kid == key_thumbprint(factory, "current", signer="envelope")
    assert verify(fresh.token, published_jwks(factory))
    assert cold.jwks() == published_jwks(factory)

    # The app's warm container drops the key as soon as it hears the key event...
    assert kid_of(issue(AUD)) == kid_of(compromised)
    assert app_services().key_events.deliver(json.dumps(revoked)) >= 1
    assert kid_of(issue(AUD)) == fresh.kid
    assert kid_of(compromised) not in {k["kid"] for k in jwks()["keys"]}
    # ...and one that does not hear it stops within its refresh interval: there is no per-token KMS call to
    # fail, as there is with the kms signer.
    assert other_warm.issue(PRINCIPAL, audience=AUD, ttl=600).kid == kid_of(compromised)
    clock.advance(EnvelopeKeyStore.refresh_interval + 1)
    assert other_warm.issue(PRINCIPAL, audience=AUD, ttl=600).kid == fresh.kid


@pytest.mark.parametrize("failing", ["create the pending key", "move the roles"])
def test_a_failed_rotation_step_leaves_the_current_key_in_force(
    configure: Configure,
    monkeypatch: pytest.MonkeyPatch,
    key_events: list[dict[str, Any]],
    factory: ClientFactory,
    failing: str,
) -> None:
    configure(ONE_KEY_SET)
    token = issue(AUD)
    before = roles()
    service = app_services().tokens
    put = ItemTable.put

    def unavailable(*_: Any, **__: Any) -> Any:
        raise AwsUnavailable("secretsmanager", "CreateSecret", "ServiceUnavailable")

    def roles_write_fails(table: ItemTable, item: dict[str, Any], **kwargs: Any) -> None:
        if item.get("sk") == ROLES_KEY["sk"]:
            raise AwsUnavailable("dynamodb", "PutItem", "RequestTimeout")
        put(table, item, **kwargs)

    with monkeypatch.context() as patch:
        if failing == "create the pending key":
            patch.setattr(app_services().aws.secrets, "create", unavailable)
        else:
            patch.setattr(ItemTable, "put", roles_write_fails)
        with pytest.raises(AwsUnavailable):
            service.rotate(force=True)
        assert roles() == before
        again = issue(AUD)
        assert kid_of(again) == kid_of(token)
        assert verify(again)
        assert verify(token)
        assert published_jwks(factory) == jwks()
    (alarm,) = [e for e in drain(factory, key_events) if e["type"] == "signing-key-rotation-failed"]
    assert alarm["step"] == ("create_pending" if failing == "create the pending key" else "move_aliases")

    (report,) = service.rotate()  # the next run finishes the same rotation (no force needed: none completed)
    assert report.rotation_id == alarm["rotation_id"]
    assert (report.previous, report.current) == (before["current"], before["pending"])
    assert verify(token)
    assert kid_of(issue(AUD)) == key_thumbprint(factory, "current", signer="envelope")


# The private key stays in its secret ---------------------------------------------------------------


def pem_lines(pem: str) -> set[str]:
    """16-character pieces of every base64 line (every 8 characters), so a fragment of 23 or more is caught."""
    lines = [line for line in pem.splitlines() if "-----" not in line]
    return {line[i : i + 16] for line in lines for i in range(0, len(line) - 15, 8)}


def private_markers(factory: ClientFactory, alg: str) -> set[str]:
    """Fragments that would betray a private key: its PEM lines and its private JWK members."""
    client = factory.client("secretsmanager")
    markers: set[str] = set()
    for listed in client.list_secrets(MaxResults=100)["SecretList"]:
        if not listed["Name"].startswith("credport-dev/token-signing/"):
            continue
        pem = client.get_secret_value(SecretId=listed["ARN"])["SecretString"]
        markers |= pem_lines(pem)
        private = RSAKey.import_key(pem) if alg == "RS256" else ECKey.import_key(pem)
        markers.update(str(v) for k, v in private.as_dict(private=True).items() if k in PRIVATE_MEMBERS)
    return markers


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_the_private_key_never_appears_in_logs_errors_documents_or_events(
    configure: Configure,
    factory: ClientFactory,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    key_events: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    alg: str,
) -> None:
    configure({**ENVELOPE, "CREDPORT_TOKEN_ALGORITHM": alg})
    haystack: list[str] = []
    service = app_services().tokens
    issue(AUD)
    markers = private_markers(factory, alg)
    service.rotate(force=True)
    markers |= private_markers(factory, alg)
    issue(AUD)
    haystack += [json.dumps(jwks()), json.dumps(call("/.well-known/openid-configuration").body)]
    haystack += [repr(service.keyring.keys()), repr(service.keyring.current()), str(service.keyring.published())]

    # A key secret that no longer holds a key: the error says so, and nothing of what it did hold.
    current = str(roles()["current"])
    secrets = factory.client("secretsmanager")
    pem = secrets.get_secret_value(SecretId=current)["SecretString"]
    broken = pem[: len(pem) // 2]  # half a key: real key material, but no key
    markers |= pem_lines(broken)
    secrets.put_secret_value(SecretId=current, SecretString=broken)
    with pytest.raises(InvalidSigningKey) as caught:
        key_store(get_settings(), app_services().aws).open(current)
    haystack += [str(caught.value), repr(caught.value), "".join(traceback.format_exception(caught.value))]
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    install_services()  # a cold container meets the broken secret
    reply = request_token()
    assert (reply.status, reply.body["error"]) == (500, "internal_error")
    haystack.append(json.dumps(reply.body))
    secrets.put_secret_value(SecretId=current, SecretString=pem)
    install_services()

    # A rotation step fails with an error whose message quotes the key (as a parser's might): it is logged and
    # announced by type and location only. Then the run is finished, and the current key revoked.
    def failing_point(*_: Any) -> None:
        raise RuntimeError(pem)

    with monkeypatch.context() as patch:
        patch.setattr(EnvelopeKeyStore, "point", failing_point)
        with pytest.raises(RuntimeError):
            app_services().tokens.rotate(force=True)
    app_services().tokens.rotate()
    app_services().tokens.rotation.revoke_current()

    state = factory.client("dynamodb").scan(TableName=os.environ["CREDPORT_STATE_TABLE"])["Items"]
    haystack += [json.dumps(state, default=str), json.dumps(drain(factory, key_events))]
    bucket = os.environ["CREDPORT_PUBLIC_BUCKET"]
    for item in factory.client("s3").list_objects_v2(Bucket=bucket)["Contents"]:
        haystack.append(factory.client("s3").get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode())
    captured = capsys.readouterr()
    haystack += [captured.out, captured.err, caplog.text]
    haystack += [json.dumps(record.__dict__, default=str) for record in caplog.records]

    assert len(markers) > 10
    text = "\n".join(haystack)
    assert '"signing-key run failed"' in text  # the failure was logged, and the logs are in the haystack
    assert '"signing-key-rotation-failed"' in text  # and announced
    assert sorted(marker for marker in markers if marker in text) == []
