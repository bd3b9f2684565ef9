"""Signing-key rotation against moto, with a controllable clock: bootstrap, rotations, crashes, races, revocation.

The JWKS a verifier trusts is always read back from the public bucket (``oidc/.well-known/jwks.json``), as
published at the moment of the check. Tokens are signed through a KMS client that refuses disabled and
deleted keys the way AWS does: moto signs with any key whatever its state.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64decode

from chalicelib.aws import AwsConflict, AwsServices, AwsUnavailable, KeyService
from chalicelib.aws.clients import ClientFactory
from chalicelib.aws.kms import KeyInfo
from chalicelib.config import Settings, get_settings, reset_settings
from chalicelib.principal import Principal
from chalicelib.tokens.algorithms import algorithm, public_jwk
from chalicelib.tokens.envelope_keys import secret_namespace
from chalicelib.tokens.exceptions import KeysNotReady, RotationRefused, TokenRejected
from chalicelib.tokens.issuer import IssuedToken, TokenIssuer
from chalicelib.tokens.keyring import ROLES, KeyRing, KeyStore, NoSigningKey
from chalicelib.tokens.kms_keys import KmsKeyStore
from chalicelib.tokens.rotation import JOURNAL_KEY, OIDC_PREFIX, PLANS, KeyRotation
from chalicelib.tokens.service import key_store
from chalicelib.tokens.verify import TokenVerifier
from local.provision import Provisioned
from tests.functional.conftest import Configure
from tests.functional.test_tokens import call, decode, key_thumbprint, request_token
from tests.support import Clock

SIGNERS = ("kms", "envelope")
START = 1_700_000_000.0
LEEWAY = 30  # TokenVerifier's default
PRINCIPAL = Principal(
    kind="role",
    subject="arn:aws:iam::123456789012:role/app",
    account_id="123456789012",
    caller_arn="arn:aws:sts::123456789012:assumed-role/app/s1",
    unique_id="AROAEXAMPLEROLEID",
    session_name="s1",
    organization_id=None,
)


class Crash(Exception):
    """The injected fault."""


def crash_once(step: str, before: Callable[[], None] | None = None) -> Callable[[str], None]:
    """A ``fail_at`` that raises at ``step`` the first time (or, with ``before``, runs it there instead)."""
    fired: list[str] = []

    def fail_at(name: str) -> None:
        if name == step and not fired:
            fired.append(name)
            if before is None:
                raise Crash(name)
            before()

    return fail_at


class AwsLikeSigning:
    """A KMS client whose Sign refuses a disabled or pending-deletion key with AWS's error codes."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def sign(self, **kwargs: Any) -> Any:
        state = self._client.describe_key(KeyId=kwargs["KeyId"])["KeyMetadata"]["KeyState"]
        code = {"Disabled": "DisabledException", "PendingDeletion": "KMSInvalidStateException"}.get(state)
        if code:
            self.refused.append(code)
            raise ClientError({"Error": {"Code": code, "Message": state}}, "Sign")
        return self._client.sign(**kwargs)


class Rig:
    """One deployment in moto; every ``rotation()`` and ``issuer()`` is a separate container.

    ``signer`` picks where the keys live (CREDPORT_TOKEN_SIGNER): KMS keys behind aliases, or envelope keys in
    Secrets Manager with their roles in the state table. Key ids are KMS key ARNs or secret ARNs.
    """

    def __init__(self, aws: AwsServices, settings: Settings, signer: str = "kms") -> None:
        self.services, self.clock = aws, Clock(START)
        self.settings = dataclasses.replace(settings, token_signer=signer)
        self.signer = signer
        self._kids: dict[str, str] = {}
        self.kms = aws.kms
        self.table = aws.table(settings.resources.state_table)
        self.signing_client = AwsLikeSigning(aws.factory.client("kms"))
        self.signer_kms = KeyService(self.signing_client)
        sqs = aws.factory.client("sqs")
        self.queue_url = sqs.create_queue(QueueName="key-events-tap")["QueueUrl"]
        aws.sns.subscribe(
            settings.resources.key_events_topic_arn, protocol="sqs", endpoint=aws.sqs.arn_of(self.queue_url)
        )

    @property
    def period(self) -> int:
        return self.settings.signing_key_rotation_days * 86400

    def store(self, *, signing: bool = False) -> KeyStore:
        if self.signer == "kms" and signing:
            return KmsKeyStore(
                self.signer_kms,
                self.settings.prefix,
                self.settings.token_algorithms[0],
                tagged=self.services.tagging,
                caller_arn=lambda: self.services.sts.caller_identity().arn,
            )
        return key_store(self.settings, self.services)

    def rotation(self, fail_at: Callable[[str], None] | None = None) -> KeyRotation:
        keyring, aws = KeyRing(self.store(), ttl=0, clock=self.clock), self.services
        return KeyRotation(self.table, aws.s3, aws.sns, self.settings, keyring, clock=self.clock, fail_at=fail_at)

    def issuer(self, cache_ttl: float = -1) -> TokenIssuer:
        """A container's issuer; the default cache_ttl makes it look the roles up on every token."""
        keyring = KeyRing(self.store(signing=True), ttl=cache_ttl, clock=self.clock)
        return TokenIssuer(keyring, self.settings.issuer, clock=self.clock)

    def issue(self, issuer: TokenIssuer | None = None) -> IssuedToken:
        return (issuer or self.issuer()).issue(
            PRINCIPAL, audience=self.settings.token_default_audience, ttl=self.settings.token_max_ttl
        )

    def jwks(self) -> dict[str, Any]:
        stored = self.services.s3.get(self.settings.resources.public_bucket, OIDC_PREFIX + "jwks.json")
        document: dict[str, Any] = json.loads(stored.body)
        return document

    def verify(self, token: str, jwks: dict[str, Any] | None = None) -> dict[str, Any]:
        verifier = TokenVerifier(jwks if jwks is not None else self.jwks(), issuer=self.settings.issuer, now=self.clock)
        return verifier.verify(token, audience=self.settings.token_default_audience)

    def aliases(self) -> dict[str, str | None]:
        roles = self.store().roles()
        for key_id in filter(None, roles.values()):
            self.kid(key_id)  # remembered: a deleted envelope key's secret cannot be read any more
        return roles

    def describe(self, arn: str | None) -> KeyInfo:
        assert arn is not None
        return self.kms.describe(arn)

    def state(self, key_id: str | None) -> str:
        """``Enabled`` or ``PendingDeletion``, read from KMS or Secrets Manager directly."""
        assert key_id is not None
        if self.signer == "kms":
            return self.kms.describe(key_id).state
        described = self.services.factory.client("secretsmanager").describe_secret(SecretId=key_id)
        return "PendingDeletion" if described.get("DeletedDate") else "Enabled"

    def kid(self, key_id: str | None) -> str:
        """RFC 7638 thumbprint of the key, computed here from KMS's public key or the stored private PEM."""
        assert key_id is not None
        if key_id not in self._kids:
            if self.signer == "kms":
                self._kids[key_id] = str(public_jwk(self.kms.public_key(key_id).der, algorithm("RS256"))["kid"])
            else:
                client = self.services.factory.client("secretsmanager")
                pem = client.get_secret_value(SecretId=key_id)["SecretString"]
                key = RSAKey.import_key(pem) if "RS" in self.settings.token_algorithms[0] else ECKey.import_key(pem)
                self._kids[key_id] = key.thumbprint()
        return self._kids[key_id]

    def key_arns(self) -> set[str]:
        """Every signing key there is: KMS keys but moto's AWS-managed defaults, or every signing-key secret
        (those scheduled for deletion too)."""
        if self.signer == "envelope":
            client = self.services.factory.client("secretsmanager")
            listed = client.list_secrets(IncludePlannedDeletion=True, MaxResults=100)["SecretList"]
            return {s["ARN"] for s in listed if s["Name"].startswith(secret_namespace(self.settings.prefix))}
        client = self.services.factory.client("kms")
        arns = {self.kms.describe(k["KeyId"]) for k in client.list_keys(Limit=1000)["Keys"]}
        return {info.arn for info in arns if not info.description.startswith("Default master key")}

    def journal(self) -> dict[str, Any]:
        journal = self.table.get(self.store().journal_key)
        assert journal is not None
        return journal

    def events(self) -> list[dict[str, Any]]:
        """The key events published since the last call (drained from the subscribed queue)."""
        events: list[dict[str, Any]] = []
        while batch := self.services.sqs.receive(self.queue_url, max_messages=10):
            for message in batch:
                events.append(json.loads(json.loads(message.body)["Message"]))
                self.services.sqs.delete(self.queue_url, message.receipt_handle)
        return events


def assert_envelope_key(rig: Rig, key_id: str, alg: str) -> None:
    """An envelope key as designed: a secret in the signing-key namespace, encrypted under the data key, tagged
    for the policy, holding one PKCS#8 private key of the algorithm's type."""
    described = rig.services.factory.client("secretsmanager").describe_secret(SecretId=key_id)
    assert described["Name"].startswith(f"{rig.settings.prefix}/token-signing/")
    assert described["KmsKeyId"] == rig.settings.resources.data_key_arn
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags == {"credport:prefix": rig.settings.prefix, "credport:purpose": "token-signing"}
    pem = rig.services.factory.client("secretsmanager").get_secret_value(SecretId=key_id)["SecretString"]
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    if alg == "RS256":
        assert isinstance(private, rsa.RSAPrivateKey)
        assert private.key_size == 2048
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert private.curve.name == "secp256r1"


def kids(jwks: dict[str, Any]) -> list[str]:
    return sorted(str(key["kid"]) for key in jwks["keys"])


def _claims(token: IssuedToken) -> dict[str, Any]:
    """The token's claims, unverified (to know when it expires)."""
    claims: dict[str, Any] = json.loads(urlsafe_b64decode(token.token.split(".")[1].encode()))
    return claims


@pytest.fixture(params=SIGNERS)
def rig(provisioned: Provisioned, aws: AwsServices, request: pytest.FixtureRequest) -> Rig:
    """A deployment with each signer: the rotation semantics are the same."""
    return Rig(aws, get_settings(), request.param)


@pytest.fixture
def kms_rig(provisioned: Provisioned, aws: AwsServices) -> Rig:
    return Rig(aws, get_settings(), "kms")


def test_bootstrap_creates_current_and_pending_once(rig: Rig) -> None:
    keys_before = rig.key_arns()
    report = rig.rotation().ensure_keys()
    assert report is not None
    assert (report.kind, report.previous) == ("bootstrap", None)
    aliases = rig.aliases()
    assert aliases == {"previous": None, "current": report.current, "pending": report.pending}
    assert report.current != report.pending
    assert rig.key_arns() - keys_before == {report.current, report.pending}
    for arn in (report.current, report.pending):
        if rig.signer == "kms":
            info = rig.describe(arn)
            assert (info.state, info.usage, info.key_spec) == ("Enabled", "SIGN_VERIFY", "RSA_2048")
        else:
            assert_envelope_key(rig, arn, "RS256")
    jwks = rig.jwks()
    assert kids(jwks) == sorted([rig.kid(report.current), rig.kid(report.pending)])
    assert all("d" not in key for key in jwks["keys"])
    assert rig.journal()["step"] == "done"

    keys_after = rig.key_arns()
    assert rig.rotation().ensure_keys() is None
    assert rig.key_arns() == keys_after
    assert rig.aliases() == aliases


def test_three_rotations_keep_every_unexpired_token_valid(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    issued: list[IssuedToken] = []
    for _ in range(3):
        rig.clock.advance(rig.period)
        before = rig.aliases()
        cached = rig.jwks()  # a relying party's copy, fetched just before the rotation
        issued.append(rig.issue())
        report = rig.rotation().rotate()

        after = rig.aliases()
        assert (after["previous"], after["current"]) == (before["current"], before["pending"])
        assert after["pending"] not in {*before.values(), None}
        assert report.retired == before["previous"]
        if before["previous"] is not None:
            assert rig.state(before["previous"]) == "PendingDeletion"
        assert all(rig.state(after[role]) == "Enabled" for role in ROLES)
        assert kids(rig.jwks()) == sorted(rig.kid(after[role]) for role in ROLES)

        published = kids(rig.jwks())
        for token in issued:
            if _claims(token)["exp"] >= rig.clock():
                assert rig.verify(token.token)["jti"] == token.jti
            else:
                with pytest.raises(TokenRejected) as rejected:
                    rig.verify(token.token)
                assert rejected.value.check == ("exp" if token.kid in published else "kid")
        # The new current key was already pending, so a JWKS cached before the rotation trusts its tokens.
        fresh = rig.issue()
        assert fresh.kid == rig.kid(after["current"])
        rig.verify(fresh.token, jwks=cached)
        issued.append(fresh)

        rig.clock.advance(rig.settings.token_max_ttl - 1)
        for token in issued[-2:]:
            rig.verify(token.token)
        rig.clock.advance(LEEWAY + 2)
        published = kids(rig.jwks())
        for token in issued:
            with pytest.raises(TokenRejected) as rejected:
                rig.verify(token.token)
            assert rejected.value.check == ("exp" if token.kid in published else "kid")
            if token in issued[-2:]:  # still published: rejected for expiry, not for its key
                assert rejected.value.reason == "claims: ExpiredTokenError"
                assert rejected.value.check == "exp"
    assert len({token.kid for token in issued}) == 4


@pytest.mark.parametrize("signer", SIGNERS)
def test_no_token_fails_against_the_jwks_published_when_it_is_checked(
    provisioned: Provisioned, aws: AwsServices, monkeypatch: pytest.MonkeyPatch, signer: str
) -> None:
    monkeypatch.setenv("CREDPORT_SIGNING_KEY_ROTATION_DAYS", "2")  # 6-hour points: 8 per period
    reset_settings()
    rig = Rig(aws, get_settings(), signer)
    rig.rotation().ensure_keys()
    step = 6 * 3600
    per_period = rig.period // step
    tokens: list[IssuedToken] = []
    verified = rotations = 0
    for point in range(1, 3 * per_period + 3):
        rig.clock.advance(step)
        tokens.append(rig.issue())
        if point % per_period == 0:
            rig.rotation().rotate()
            rotations += 1
            tokens.append(rig.issue())
        jwks = rig.jwks()
        for token in tokens:
            if _claims(token)["exp"] >= rig.clock():
                rig.verify(token.token, jwks=jwks)
                verified += 1
    assert rotations == 3
    assert len({token.kid for token in tokens}) == 4
    assert verified >= len(tokens) * 2


@pytest.mark.parametrize("step", PLANS["rotate"])
def test_a_crash_at_any_rotation_step_is_finished_by_the_next_run(rig: Rig, step: str) -> None:
    rig.rotation().ensure_keys()
    rig.clock.advance(rig.period)
    rig.rotation().rotate()  # so that there is a previous key to retire
    rig.clock.advance(rig.period)
    before, keys_before = rig.aliases(), rig.key_arns()
    rig.events()

    with pytest.raises(Crash):
        rig.rotation(fail_at=crash_once(step)).rotate()
    stuck = rig.journal()
    # The journal holds the last step that finished: the crash left it one short of the failed step.
    assert (stuck["kind"], stuck["step"]) == ("rotate", ("begun", *PLANS["rotate"])[PLANS["rotate"].index(step)])
    rig.verify(rig.issue().token)  # a working, published signing key at the moment of the crash
    alarms = [e for e in rig.events() if e["type"] == "signing-key-rotation-failed"]
    assert [(a["step"], a["kind"], a["rotation_id"], a["error_type"]) for a in alarms] == [
        (step, "rotate", stuck["rotation_id"], "Crash")
    ]

    report = rig.rotation().rotate()
    assert report.rotation_id == stuck["rotation_id"]
    created = rig.key_arns() - keys_before
    assert len(created) == 1
    after = rig.aliases()
    assert after == {"previous": before["current"], "current": before["pending"], "pending": created.pop()}
    assert rig.state(before["previous"]) == "PendingDeletion"
    assert rig.journal()["step"] == "done"
    assert kids(rig.jwks()) == sorted(rig.kid(after[role]) for role in ROLES)
    assert [e["rotation_id"] for e in rig.events() if e["type"] == "signing-key-rotated"] == [report.rotation_id]
    rig.verify(rig.issue().token)


@pytest.mark.parametrize("step", PLANS["bootstrap"])
def test_a_crash_at_any_bootstrap_step_is_finished_by_the_next_run(rig: Rig, step: str) -> None:
    keys_before = rig.key_arns()
    with pytest.raises(Crash):
        rig.rotation(fail_at=crash_once(step)).ensure_keys()
    stuck = rig.journal()
    alarms = [e for e in rig.events() if e["type"] == "signing-key-rotation-failed"]
    assert [(a["step"], a["kind"], a["rotation_id"]) for a in alarms] == [(step, "bootstrap", stuck["rotation_id"])]
    if PLANS["bootstrap"].index(step) <= PLANS["bootstrap"].index("move_aliases"):
        with pytest.raises(NoSigningKey):  # no half-made key ever signs
            rig.issue()
    elif step == "announce":
        rig.verify(rig.issue().token)

    report = rig.rotation().ensure_keys()
    assert report is not None
    assert report.rotation_id == stuck["rotation_id"]  # the same run, finished
    assert rig.key_arns() - keys_before == {report.current, report.pending}
    assert rig.aliases() == {"previous": None, "current": report.current, "pending": report.pending}
    assert rig.journal()["step"] == "done"
    assert kids(rig.jwks()) == sorted([rig.kid(report.current), rig.kid(report.pending)])
    rig.verify(rig.issue().token)
    assert rig.rotation().ensure_keys() is None


@pytest.mark.parametrize("kind", ["bootstrap", "rotate"])
def test_a_key_whose_creation_was_not_journaled_is_reused(
    kms_rig: Rig, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    rig = kms_rig
    if kind == "rotate":
        rig.rotation().ensure_keys()
        rig.clock.advance(rig.period)
    keys_before = rig.key_arns()
    created: list[KeyInfo] = []
    lost: list[dict[str, Any]] = []
    create_key, put = rig.kms.create_key, rig.table.put

    def recording_create_key(**kwargs: Any) -> KeyInfo:
        info = create_key(**kwargs)
        created.append(info)
        return info

    def losing_put(item: dict[str, Any], **kwargs: Any) -> None:
        if created and not lost:  # the first journal write after CreateKey returned times out
            lost.append(item)
            raise AwsUnavailable("dynamodb", "PutItem", "RequestTimeout")
        put(item, **kwargs)

    monkeypatch.setattr(rig.kms, "create_key", recording_create_key)
    monkeypatch.setattr(rig.table, "put", losing_put)
    run = rig.rotation().rotate if kind == "rotate" else rig.rotation().ensure_keys
    with pytest.raises(AwsUnavailable):
        run()
    (orphan,) = created
    assert orphan.arn not in rig.journal()["keys"].values()

    report = rig.rotation().rotate() if kind == "rotate" else rig.rotation().ensure_keys()
    assert report is not None
    assert (report.pending if kind == "rotate" else report.current) == orphan.arn
    new = rig.key_arns() - keys_before
    assert (orphan.arn in new, len(new)) == (True, 1 if kind == "rotate" else 2)
    assert len(created) == len(new)


def test_a_rotation_too_soon_after_the_last_is_refused_unless_forced(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    rig.clock.advance(rig.period)
    rig.rotation().rotate()
    minimum = rig.settings.token_max_ttl + rig.settings.jwks_max_age
    for wait in (0, minimum - 1):
        rig.clock.advance(wait)
        before = rig.aliases()
        with pytest.raises(RotationRefused) as refused:
            rig.rotation().rotate()
        assert (refused.value.status, refused.value.code) == (409, "rotation_refused")
        assert str(minimum) in refused.value.message
        assert rig.aliases() == before
    before = rig.aliases()
    forced = rig.rotation().rotate(force=True)
    assert (forced.previous, forced.current) == (before["current"], before["pending"])
    assert rig.aliases()["current"] == before["pending"]
    rig.clock.advance(minimum)
    assert rig.rotation().rotate().previous == before["pending"]


def test_a_configuration_where_tokens_outlive_their_key_is_refused(
    provisioned: Provisioned, aws: AwsServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDPORT_SIGNING_KEY_ROTATION_DAYS", "1")
    monkeypatch.setenv("CREDPORT_TOKEN_MAX_TTL", "43200")
    monkeypatch.setenv("CREDPORT_JWKS_MAX_AGE", "86400")
    reset_settings()
    rig = Rig(aws, get_settings())
    keys_before = rig.key_arns()
    with pytest.raises(RotationRefused) as refused:
        rig.rotation().rotate(force=True)
    assert (refused.value.status, refused.value.code) == (409, "rotation_refused")
    assert {"129600", "86400"} <= set(re.findall(r"\d+", refused.value.message))
    assert rig.key_arns() == keys_before
    assert rig.table.get(JOURNAL_KEY) is None


def test_a_second_container_finishes_a_stalled_run_and_the_stale_writer_loses(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    rig.clock.advance(rig.period)
    keys_before = rig.key_arns()
    container_a = rig.rotation(fail_at=crash_once("publish"))
    with pytest.raises(Crash):
        container_a.rotate()
    stale = rig.journal()
    assert stale["step"] == "move_aliases"

    report = rig.rotation().rotate()  # container B
    assert report.rotation_id == stale["rotation_id"]
    done = rig.journal()
    assert done["step"] == "done"
    assert done["version"] > stale["version"]
    assert len(rig.key_arns() - keys_before) == 1

    with pytest.raises(AwsConflict):
        rig.table.put({**stale, "step": "publish"}, if_equals=("version", stale["version"]))
    with pytest.raises(KeysNotReady):
        container_a._advance(stale, step="publish")
    assert rig.journal() == done
    # Two containers that both saw the finished run: only the first may begin the next one.
    rig.clock.advance(rig.period)
    late = rig.journal()
    rig.rotation().rotate()
    with pytest.raises(KeysNotReady):
        container_a._begin("rotate", rig.aliases(), late)


def test_a_run_overtaken_by_another_container_creates_no_key(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    rig.clock.advance(rig.period)
    keys_before = rig.key_arns()
    finished: list[str] = []
    # Container A wrote its journal and is about to call CreateKey when B resumes and finishes the run.
    container_a = rig.rotation(
        fail_at=crash_once("create_pending", lambda: finished.append(rig.rotation().rotate().pending))
    )
    with pytest.raises(KeysNotReady):
        container_a.rotate()
    assert rig.aliases()["pending"] == finished[0]
    assert rig.key_arns() - keys_before == {finished[0]}


def test_revoke_current_drops_the_key_and_a_warm_issuer_recovers(kms_rig: Rig) -> None:
    rig = kms_rig
    rig.rotation().ensure_keys()
    before = rig.aliases()
    revoked_kid = rig.kid(before["current"])
    warm = rig.issuer(cache_ttl=3600)  # a container that cached the aliases before the revocation
    token = rig.issue(warm)
    assert token.kid == revoked_kid
    rig.verify(token.token)
    rig.events()

    report = rig.rotation().revoke_current()
    after = rig.aliases()
    assert (report.kind, report.retired) == ("revoke", before["current"])
    assert (after["previous"], after["current"]) == (before["previous"], before["pending"])
    assert after["pending"] not in {*before.values(), None}
    assert revoked_kid not in kids(rig.jwks())
    assert kids(rig.jwks()) == sorted(rig.kid(after[role]) for role in ("current", "pending"))
    with pytest.raises(TokenRejected) as rejected:
        rig.verify(token.token)
    assert (rejected.value.check, rejected.value.reason) == ("kid", "kid")
    meta = rig.services.factory.client("kms").describe_key(KeyId=before["current"])["KeyMetadata"]
    assert (meta["Enabled"], meta["KeyState"]) == (False, "PendingDeletion")

    again = rig.issue(warm)
    assert rig.signing_client.refused == ["KMSInvalidStateException"]  # it did try the cached, revoked key
    assert again.kid == rig.kid(after["current"])
    rig.verify(again.token)
    revoked = [e for e in rig.events() if e["type"] == "signing-key-revoked"]
    assert [(e["kind"], e["rotation_id"]) for e in revoked] == [("revoke", report.rotation_id)]
    assert revoked[0]["kids"] == {role: rig.kid(after[role]) for role in ("current", "pending")}


def test_the_rotation_announcement_names_kids_and_carries_no_key_material(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    rig.clock.advance(rig.period)
    rig.events()
    report = rig.rotation().rotate()
    aliases = rig.aliases()
    (event,) = [e for e in rig.events() if e["type"] == "signing-key-rotated"]
    assert (event["kind"], event["rotation_id"]) == ("rotate", report.rotation_id)
    assert event["kids"] == {role: rig.kid(aliases[role]) for role in ROLES}
    text = json.dumps(event)
    assert not re.search(r'"(n|e|d|p|q|dp|dq|qi|x|y|k|keys|jwk)":', text)  # no JWK member, at any depth
    assert all(str(key["n"]) not in text for key in rig.jwks()["keys"])


def test_retrying_a_crashed_revocation_revokes_only_the_compromised_key(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    before = rig.aliases()
    with pytest.raises(Crash):
        rig.rotation(fail_at=crash_once("publish")).revoke_current()
    stuck = rig.journal()
    assert stuck["kind"] == "revoke"
    report = rig.rotation().revoke_current()  # the operator's (or Lambda's) retry
    assert rig.aliases()["current"] == before["pending"]
    assert rig.state(before["pending"]) == "Enabled"
    assert (report.rotation_id, report.retired) == (stuck["rotation_id"], before["current"])


def test_revoking_during_an_unfinished_rotation_revokes_the_key_that_was_current(rig: Rig) -> None:
    rig.rotation().ensure_keys()
    rig.clock.advance(rig.period)
    before = rig.aliases()
    compromised = rig.issue()
    with pytest.raises(Crash):
        rig.rotation(fail_at=crash_once("create_pending")).rotate()  # crashed before the aliases moved
    assert rig.aliases() == before  # the compromised key still signs
    report = rig.rotation().revoke_current()  # finishes the rotation (key -> previous), then revokes it there
    after = rig.aliases()
    assert report.retired == before["current"]
    assert after["previous"] is None  # dropped from the JWKS at once
    assert after["current"] == before["pending"]  # the finished rotation's keys stay in force
    assert rig.state(before["current"]) == "PendingDeletion"
    assert rig.kid(before["current"]) not in kids(rig.jwks())
    with pytest.raises(TokenRejected) as rejected:
        rig.verify(compromised.token)
    assert rejected.value.check == "kid"  # its key is out of the JWKS
    rig.verify(rig.issue().token)


@pytest.mark.usefixtures("callers_role")
@pytest.mark.parametrize("signer", SIGNERS)
def test_an_upgraded_deployment_keeps_signing_with_its_legacy_key_set(
    configure: Configure, monkeypatch: pytest.MonkeyPatch, factory: ClientFactory, signer: str
) -> None:
    """A deployment from before per-algorithm keys (CREDPORT_TOKEN_ALGORITHM=RS256, keys under the old names) is
    upgraded to the default algorithms: RS256 signs on with the very same current key, nothing re-bootstrapped, and
    ES384 gets a key set of its own, under its own names, beside it."""
    configure({"CREDPORT_TOKEN_ALGORITHM": "RS256", "CREDPORT_TOKEN_SIGNER": signer})
    before = request_token()
    assert before.status == 200, before.body
    legacy_kid = decode(before.body["token"])[0]["kid"]
    assert legacy_kid == key_thumbprint(factory, "current", signer=signer)  # alias/<prefix>/signing/current
    table = get_settings().resources.state_table
    journal_sk = "journal" if signer == "kms" else "envelope-journal"
    legacy_run = journal_item(factory, table, journal_sk)["rotation_id"]
    legacy_keys = {k["kid"] for k in call_jwks()["keys"]}
    assert len(legacy_keys) == 2

    monkeypatch.delenv("CREDPORT_TOKEN_ALGORITHM")
    configure()  # the release's defaults: RS256,ES384
    assert get_settings().token_algorithms == ("RS256", "ES384")
    after = request_token()
    assert after.status == 200, after.body
    assert decode(after.body["token"])[0] == {"alg": "RS256", "typ": "JWT", "kid": legacy_kid}  # the same key
    es384 = request_token(alg="ES384")
    assert es384.status == 200, es384.body
    header = decode(es384.body["token"])[0]
    assert header["alg"] == "ES384"
    assert header["kid"] == key_thumbprint(factory, "current", alg="ES384", signer=signer, key_set="es384")

    assert journal_item(factory, table, journal_sk)["rotation_id"] == legacy_run  # RS256: no second bootstrap
    assert journal_item(factory, table, f"{journal_sk}/es384")["kind"] == "bootstrap"
    if signer == "kms":
        prefix = f"alias/{get_settings().prefix}/signing/"
        aliases = {a["AliasName"] for a in factory.client("kms").list_aliases()["Aliases"]}
        assert {a for a in aliases if a.startswith(prefix)} == {
            *(prefix + role for role in ("current", "pending")),
            *(prefix + "es384/" + role for role in ("current", "pending")),
        }
    published = call_jwks()["keys"]
    assert {k["kid"] for k in published if k["alg"] == "RS256"} == legacy_keys
    assert len([k for k in published if k["alg"] == "ES384"]) == 2


def journal_item(factory: ClientFactory, table: str, sk: str) -> dict[str, Any]:
    """A key set's journal item in the state table, read directly (``signing-keys`` / ``sk``)."""
    item = factory.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "signing-keys"}, "sk": {"S": sk}})
    assert "Item" in item, sk
    return {name: next(iter(value.values())) for name, value in item["Item"].items()}


def call_jwks() -> dict[str, Any]:
    """The JWKS the app serves."""
    reply = call("/.well-known/jwks.json")
    assert reply.status == 200, reply.body
    return reply.body
