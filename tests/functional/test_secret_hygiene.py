"""Secret hygiene: one canary secret value pushed through every flow, with credport logging at DEBUG.

The canary (and every other secret a flow handles: key material, entropy, response keys, issued tokens, AWS
credentials) must never show up, raw or base64/base64url-encoded (padded or not, alone or embedded at any of the
three byte alignments inside a longer encoded value), in:

- any log record (formatted as Lambda ships it, and its raw attributes), or anything written to stdout/stderr;
- any exception text a handler lets out (what Lambda logs), including chained causes;
- any error response, and any response that is not meant to carry it (receipts, refusals, authorizer output);
- any notification (SNS), operator-visible S3 metadata (receipts, quarantine reasons, public documents) or state
  table item.

And no log line is a whole event or response: none carries their keys (``requestContext``, ``Records``, ...)
and none is longer than ``MAX_LOG_LINE``. ``test_the_checker_catches_leaks`` proves the capture works at DEBUG.
The checker is :mod:`tests.support.hygiene`; the stack the flows go through, :mod:`tests.support.hygiene_stack`.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.autoid import ClientPolicy, Want, build_request
from chalicelib.aws import AwsServices, AwsUnavailable
from chalicelib.aws.secrets import CURRENT
from chalicelib.config import reset_settings
from chalicelib.envelope import decrypt_direct, public_key_from_pem, seal
from chalicelib.observability import logger
from chalicelib.sessions.keys import decode_key
from local.provision import Provisioned
from local.rotation import RotationDriver
from tests.conftest import ACCOUNT_ID, EVENTS_DIR, REGION, app_services, install_services
from tests.support.hygiene import CANARY, Hygiene, capturing, encodings
from tests.support.hygiene_stack import ANONYMOUS, ROLE_IDENTITY, S3_QUEUE, Stack, open_stack, watch_secret_pems

CLIENT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def hygiene() -> Iterator[Hygiene]:
    with capturing() as captured:
        yield captured


@pytest.fixture
def stack(
    provisioned: Provisioned, aws: AwsServices, hygiene: Hygiene, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    with open_stack(aws, hygiene, monkeypatch) as opened:
        yield opened


def sealed_import(document: Mapping[str, Any] | bytes) -> str:
    recipient = public_key_from_pem(app_services().import_keys.current().public_pem())
    plaintext = document if isinstance(document, bytes) else json.dumps(document).encode()
    return seal(recipient, plaintext)


# --- the checker itself ----------------------------------------------------------------------------------------


def test_the_encodings_find_the_canary_inside_any_encoded_value() -> None:
    forms = encodings(CANARY.encode())
    for prefix_length in range(7):
        for suffix_length in range(4):
            value = secrets.token_bytes(prefix_length) + CANARY.encode() + secrets.token_bytes(suffix_length)
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(value).decode().rstrip("=")
                assert any(form in encoded for form in forms), (prefix_length, suffix_length)


def test_the_checker_catches_leaks(hygiene: Hygiene, capfd: pytest.CaptureFixture[str]) -> None:
    """Proof the capture sees DEBUG records, extras, stdout, exceptions and responses: each leak is reported."""
    hygiene.watch("entropy", secrets.token_bytes(4096))
    entropy_label_secret = next(iter(hygiene.windows))
    logger.debug("a debug line", extra={"detail": base64.urlsafe_b64encode(b"xy" + CANARY.encode()).decode()})
    logger.info("an info line %s", "prefix " + CANARY)
    logger.warning("a chunk of entropy", extra={"chunk": "..." + entropy_label_secret + "..."})
    print(base64.b64encode(b"{" + CANARY.encode() + b"}").decode())
    try:
        raise RuntimeError("wrapped") from ValueError(f"bad value {CANARY}")
    except RuntimeError as exc:
        hygiene.exception("a handler", exc)
    hygiene.collect("a response", {"error": "bad_request", "message": CANARY.upper().lower()})
    logger.info("a whole event", extra={"event": {"requestContext": {}}})
    out, _ = capfd.readouterr()
    hygiene.collect("stdout", out)
    leaks = hygiene.leaks()
    assert sum("a debug line" in leak for leak in leaks) == 2  # the formatted line and the record
    assert any("an info line" in leak for leak in leaks)
    assert any("['entropy']" in leak for leak in leaks)
    assert any(leak.endswith("in stdout") for leak in leaks)
    assert any("exception from a handler" in leak for leak in leaks)
    assert any("in a response" in leak for leak in leaks)
    assert any("requestContext" in problem for problem in hygiene.whole_events_logged())


# --- the flows -------------------------------------------------------------------------------------------------


def test_transfer_import_through_the_inbox(
    stack: Stack, hygiene: Hygiene, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    flow = "transfer import (inbox)"
    stack.put(
        "inbox/good.jwe", sealed_import({"secret_name": "credport-dev/imported/canary", "value": CANARY}).encode()
    )
    stack.s3_event(flow, "inbox/good.jwe")
    assert stack.services.secrets.get_value("credport-dev/imported/canary").value == CANARY  # it did go through

    bad = {
        "outside.jwe": sealed_import({"secret_name": "credport-dev/session-key", "value": CANARY}).encode(),
        "bad-json.jwe": sealed_import(
            b'{"secret_name": "credport-dev/imported/x", "value": "' + CANARY.encode()
        ).encode(),
        "not-an-object.jwe": sealed_import(json.dumps([CANARY]).encode()).encode(),
        "too-big-value.jwe": sealed_import(
            {"secret_name": "credport-dev/imported/x", "value": CANARY * (70 * 1024 // len(CANARY))}
        ).encode(),
        "bad-name.jwe": sealed_import({"secret_name": f"credport-dev/imported/{CANARY} x", "value": CANARY}).encode(),
        "not-jwe.jwe": f"not an envelope: {CANARY}".encode(),
        "fake-jwe.jwe": f"{base64.urlsafe_b64encode(CANARY.encode()).decode()}.a.b.c.d".encode(),
        "too-large.jwe": (CANARY * (300 * 1024 // len(CANARY))).encode(),
    }
    for name, body in bad.items():
        stack.put(f"inbox/{name}", body)
        stack.s3_event(flow, f"inbox/{name}")
    quarantined = set(stack.services.s3.list_keys(stack.bucket, "quarantine/"))
    assert {f"quarantine/{name}.error.json" for name in bad} <= quarantined

    # A transient failure: the exception leaves the handler (SQS retries); its text must not carry the value.
    stack.put(
        "inbox/later.jwe", sealed_import({"secret_name": "credport-dev/imported/later", "value": CANARY}).encode()
    )

    def unavailable(*_args: Any, **_kwargs: Any) -> None:
        raise AwsUnavailable("secretsmanager", "CreateSecret", "ThrottlingException")

    monkeypatch.setattr(type(stack.services.secrets), "create", unavailable)
    stack.s3_event(flow, "inbox/later.jwe", expect=AwsUnavailable)
    monkeypatch.undo()

    watch_secret_pems(stack, hygiene)
    stack.sweep()
    hygiene.assert_clean(capfd)


def test_transfer_import_through_the_api(stack: Stack, hygiene: Hygiene, capfd: pytest.CaptureFixture[str]) -> None:
    flow = "transfer import (POST /transfer/import)"

    def post(body: Any = None, *, raw: str | None = None, identity: Mapping[str, Any] = ROLE_IDENTITY) -> Any:
        return stack.http(flow, "/transfer/import", method="POST", identity=identity, body=body, raw=raw)

    status, receipt = post({"jwe": sealed_import({"secret_name": "credport-dev/imported/api", "value": CANARY})})
    assert status == 200, receipt
    assert stack.services.secrets.get_value("credport-dev/imported/api").value == CANARY
    refusals = [
        post({"jwe": f"not an envelope {CANARY}"}),
        post({"jwe": sealed_import({"secret_name": "credport-dev/session-key", "value": CANARY})}),
        post({"jwe": sealed_import(b'{"value": "' + CANARY.encode())}),
        post({"jwe": CANARY, "url": CANARY}),
        post({"jwe": [CANARY]}),
        post({"url": f"https://evil.example.com/{CANARY}"}),
        post({"url": f"https://{CANARY}:{CANARY}@{stack.bucket}.s3.amazonaws.com/x"}),
        post(raw='{"jwe": "' + CANARY),
        post(raw=json.dumps({"jwe": CANARY * 8000})),  # over the body limit
        post({"jwe": CANARY}, identity=ANONYMOUS),
    ]
    assert [status for status, _ in refusals] == [400] * 8 + [413, 403]
    watch_secret_pems(stack, hygiene)
    stack.sweep()
    hygiene.assert_clean(capfd)


def test_transfer_send(
    stack: Stack, hygiene: Hygiene, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    flow = "transfer send"
    from chalicelib.transfer import sending

    monkeypatch.setattr(sending, "secrets", SimpleNamespace(token_urlsafe=lambda _n: CANARY))
    public = CLIENT_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stack.put("clients/client-one/public.pem", public)
    stack.s3_event(flow, "clients/client-one/public.pem")  # registration, then a first send
    status, report = stack.http(
        flow,
        "/transfer/clients/client-one/send",
        method="POST",
        identity=ROLE_IDENTITY,
        resource="/transfer/clients/{client_id}/send",
        path_parameters={"client_id": "client-one"},
    )
    assert status == 200, report
    assert stack.services.secrets.get_value(report["secret_name"]).value == CANARY
    status, _ = stack.http(
        flow,
        f"/transfer/clients/{CANARY}/send",
        method="POST",
        identity=ROLE_IDENTITY,
        resource="/transfer/clients/{client_id}/send",
        path_parameters={"client_id": CANARY},
    )
    assert status == 404
    # The optional schedule.
    monkeypatch.setenv("CREDPORT_TRANSFER_ROTATION_DAYS", "1")
    reset_settings()
    install_services()  # a container that reads the changed settings
    assert stack.invoke(flow, "rotate_transfer_secrets", scheduled_event(stack.client)) == {"rotated": 1}

    # A private key uploaded by mistake: purged, alarm raised, and its material nowhere.
    private = CLIENT_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    hygiene.watch_pem("uploaded private key", private)
    stack.put("clients/client-two/public.pem", private)
    stack.s3_event(flow, "clients/client-two/public.pem")
    assert stack.services.s3.head(stack.bucket, "clients/client-two/public.pem") is None
    # A bad file carrying the canary: quarantined, with a reason that does not quote it.
    stack.put("clients/client-three/public.pem", f"-----BEGIN PUBLIC KEY-----\n{CANARY}\n".encode())
    stack.s3_event(flow, "clients/client-three/public.pem")

    watch_secret_pems(stack, hygiene)
    stack.sweep()
    hygiene.assert_clean(capfd)


def scheduled_event(client: Client) -> dict[str, Any]:
    return dict(
        client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule"]
        )
    )


def test_sessions(stack: Stack, hygiene: Hygiene, capfd: pytest.CaptureFixture[str]) -> None:
    flow = "sessions"
    arn = stack.settings.resources.session_key_secret_arn

    def watch_keys() -> None:
        hygiene.watch("session key (current)", decode_key(stack.services.secrets.get_value(arn, stage=CURRENT).value))

    status, started = stack.http(flow, "/session", method="POST", identity=ROLE_IDENTITY, allow={"session token"})
    assert status == 200, started
    first = started["token"]
    hygiene.watch_token("session token", first)
    watch_keys()

    assert stack.authorize(flow, f"Bearer {first}") is not None
    bearer = {"Authorization": f"Bearer {first}"}
    status, shown = stack.http(flow, "/session", headers=bearer)
    assert status == 200, shown
    assert stack.authorize(flow, f"Bearer {first}", route="POST/session/refresh") is not None
    status, refreshed = stack.http(flow, "/session/refresh", method="POST", headers=bearer, allow={"session token"})
    assert status == 200, refreshed
    hygiene.watch_token("session token", refreshed["token"])

    # Refused tokens: the canary as a token, in a token's claims, under a bad signature.
    forged = ".".join(
        [
            first.split(".")[0],
            base64.urlsafe_b64encode(json.dumps({"sub": CANARY}).encode()).decode().rstrip("="),
            first.split(".")[2],
        ]
    )
    for token in (CANARY, forged, f"{first}{CANARY}"):
        assert stack.authorize(flow, f"Bearer {token}") is None
        status, refused = stack.http(flow, "/session", headers={"Authorization": f"Bearer {token}"})
        assert status == 401, refused

    # A rotation through the four steps of the rotation function, announced on the key-events topic.
    name = stack.services.secrets.describe(arn).name
    RotationDriver(ACCOUNT_ID, REGION).rotate(
        name, lambda event, _context: stack.invoke(flow, "rotate_session_key", event)
    )
    watch_keys()
    message = json.dumps({"type": "session-key-rotated", "version_id": "x", "note": CANARY})
    stack.invoke(flow, "key_events", stack.client.events.generate_sns_event(message=message))
    status, again = stack.http(
        flow,
        "/session/refresh",
        method="POST",
        headers={"Authorization": f"Bearer {refreshed['token']}"},
        allow={"session token"},
    )
    assert status == 200, again
    hygiene.watch_token("session token", again["token"])

    stack.sweep()
    hygiene.assert_clean(capfd)


@pytest.mark.parametrize("signer", ["kms", "envelope"])
def test_token_issuance(
    stack: Stack, hygiene: Hygiene, signer: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    flow = f"token issuance ({signer})"
    monkeypatch.setenv("CREDPORT_TOKEN_SIGNER", signer)
    try:
        reset_settings()
        install_services()
        status, issued = stack.http(flow, "/token", identity=ROLE_IDENTITY, allow={"issued token"})
        assert status == 200, issued
        hygiene.watch_token("issued token", issued["token"])
        status, second = stack.http(
            flow, "/token", identity=ROLE_IDENTITY, query={"ttl": "900"}, allow={"issued token 2"}
        )
        assert status == 200, second
        hygiene.watch_token("issued token 2", second["token"])
        # Malformed (400), or well-formed but outside the allow-list: the token policy's refusal (403).
        for query, refusal in (
            ({"aud": CANARY}, (403, "audience_not_allowed")),
            ({"ttl": CANARY}, (400, "invalid_ttl")),
            ({"aud": f"sts.amazonaws.com{CANARY}"}, (403, "audience_not_allowed")),
            ({"aud": f"{CANARY} x"}, (400, "invalid_audience")),
        ):
            status, refused = stack.http(flow, "/token", identity=ROLE_IDENTITY, query=query)
            assert (status, refused["error"]) == refusal, refused
        status, _ = stack.http(flow, "/token", identity={**ROLE_IDENTITY, "userArn": f"arn:aws:iam::1:root{CANARY}"})
        assert status == 403
        for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
            assert stack.http(flow, path)[0] == 200
        watch_secret_pems(stack, hygiene)
    finally:
        monkeypatch.delenv("CREDPORT_TOKEN_SIGNER")
        reset_settings()
        install_services()
    stack.sweep()
    hygiene.assert_clean(capfd)


def test_autoid(stack: Stack, hygiene: Hygiene, capfd: pytest.CaptureFixture[str]) -> None:
    flow = "auto-id"
    service = app_services().autoid
    stack.services.secrets.create("credport-dev/autoid/canary", CANARY)
    # As on AWS, the role must trust credport's account (README: its trust policy must trust the app's role).
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}],
        }
    )
    role_arn = boto3.client("iam").create_role(RoleName="credport-dev-autoid-reader", AssumeRolePolicyDocument=trust)[
        "Role"
    ]["Arn"]
    policy = ClientPolicy(
        secrets=("credport-dev/autoid/*",), roles=("arn:aws:iam::123456789012:role/credport-dev-autoid-*",)
    )
    entropy = service.registry.enroll("worker-1", policy).entropy
    hygiene.watch("entropy generation 1", entropy)
    documents = service.server_keys.public_documents()
    jwk = next(k for k in documents["keys"] if k["kid"] == documents["current_kid"])
    from joserfc.jwk import RSAKey

    server = public_key_from_pem(RSAKey.import_key(jwk).as_pem(private=False))
    keys: list[bytes] = []

    def request(
        want: Want, *, client_id: str = "worker-1", gen: int = 1, data: bytes = entropy, now: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        document, response_key = build_request(client_id, gen, data, want, now=now)
        hygiene.watch(f"response key of request {len(keys)}", response_key)
        keys.append(response_key)
        return document, response_key

    def post(document: Any = None, *, raw: str | None = None, plaintext: bytes | None = None) -> tuple[int, Any]:
        if plaintext is not None or document is not None:
            body = {"jwe": seal(server, plaintext if plaintext is not None else json.dumps(document).encode())}
            return stack.http(flow, "/auto-id", method="POST", body=body)
        return stack.http(flow, "/auto-id", method="POST", raw=raw)

    def answer(status_body: tuple[int, Any], response_key: bytes) -> dict[str, Any]:
        status, body = status_body
        assert status == 200, body
        opened: dict[str, Any] = json.loads(decrypt_direct(body["jwe"], response_key, max_bytes=4 * 1024 * 1024))
        hygiene.watch_token("auto-id session token", opened["session"]["token"])
        return opened

    document, response_key = request(Want(secret_id="credport-dev/autoid/canary"))
    assert answer(post(document), response_key)["secret"]["value"] == CANARY  # it did go through, sealed
    assert post(document)[0] == 401  # replayed
    document, response_key = request(Want(role_arn=role_arn))
    credentials = answer(post(document), response_key)["credentials"]
    hygiene.watch("role secret access key", credentials["SecretAccessKey"])
    hygiene.watch("role session token", credentials["SessionToken"])

    refused = [
        post(request(Want(secret_id="credport-dev/autoid/canary"), now=time.time() - 600)[0]),  # stale
        post(request(Want(secret_id="credport-dev/autoid/canary"), data=secrets.token_bytes(len(entropy)))[0]),
        post(request(Want(secret_id="credport-dev/autoid/canary"), client_id="nobody")[0]),
        post(request(Want(secret_id="credport-dev/other/canary"))[0]),  # outside the policy
        post(request(Want(secret_id="credport-dev/autoid/missing"))[0]),
        post({**request(Want(secret_id="credport-dev/autoid/canary"))[0], "extra": CANARY}),
        post(plaintext=b'{"v": 2, "client_id": "' + CANARY.encode()),
        post({"v": 2, "client_id": "worker-1", "rk": CANARY}),
        post(raw=json.dumps({"jwe": CANARY})),
        post(raw=json.dumps({"jwe": "a.b.c.d.e", "note": CANARY})),
        post(raw='{"jwe": "' + CANARY),
        post(raw=json.dumps({"jwe": CANARY * 500})),  # over the body limit
        stack.http(
            flow, "/auto-id", method="POST", raw=json.dumps({"jwe": CANARY}), headers={"Content-Type": "text/" + CANARY}
        ),
    ]
    assert [status for status, _ in refused] == [401, 401, 401, 403, 404, 400, 400, 400, 400, 400, 400, 413, 415]

    # The schedule rotates; a client on the old generation gets the new entropy (sealed) in its answer.
    stack.invoke(flow, "rotate_autoid_keys", scheduled_event(stack.client))
    record = service.registry.require("worker-1")
    hygiene.watch("entropy generation 2", service.registry.entropy(record, record.generation))
    document, response_key = request(Want(secret_id="credport-dev/autoid/canary"))
    opened = answer(post(document), response_key)
    assert opened["entropy"]["gen"] == 2
    assert "server_keys" in opened

    watch_secret_pems(stack, hygiene)
    stack.sweep()
    hygiene.assert_clean(capfd)


def test_event_handlers_given_the_canary(stack: Stack, hygiene: Hygiene, capfd: pytest.CaptureFixture[str]) -> None:
    """Junk carrying the canary into the event handlers: their errors name no input."""
    flow = "event handlers (junk)"
    from chalicelib import events

    for body in (CANARY, json.dumps({"Records": [{"eventSource": CANARY}]}), json.dumps({"Records": CANARY})):
        event = stack.client.events.generate_sqs_event(message_bodies=[body], queue_name=S3_QUEUE)
        with pytest.raises(events.MalformedNotification):
            stack.invoke(flow, "s3_object_events", event)
    for message in (CANARY, json.dumps([CANARY]), json.dumps({"kind": CANARY})):
        with pytest.raises(events.MalformedKeyEvent):
            stack.invoke(flow, "key_events", stack.client.events.generate_sns_event(message=message))
    for message in (json.dumps({"type": "autoid-keys-rotated", "secret": CANARY}),):
        stack.invoke(flow, "key_events", stack.client.events.generate_sns_event(message=message))
    hygiene.assert_clean(capfd)


def test_no_log_line_is_a_whole_event_or_response(
    stack: Stack, hygiene: Hygiene, capfd: pytest.CaptureFixture[str]
) -> None:
    """Every entry point once (routes, each event source, schedules, the authorizer), refused and served."""
    flow = "entry points"
    for path in ("/health", "/whoami", "/auto-id/keys", "/transfer/import-key", "/.well-known/jwks.json"):
        stack.http(flow, path, identity=ROLE_IDENTITY)
    stack.http(flow, "/whoami")  # refused: no identity
    stack.http(flow, "/auto-id", method="POST", raw="{}")
    stack.http(flow, "/transfer/import", method="POST", identity=ROLE_IDENTITY, raw="[]")
    _, started = stack.http(flow, "/session", method="POST", identity=ROLE_IDENTITY, allow={"session token"})
    hygiene.watch_token("session token", started["token"])
    stack.authorize(flow, f"Bearer {started['token']}")
    stack.authorize(flow, "Bearer nope")
    stack.put("inbox/x.jwe", b"junk")
    stack.s3_event(flow, "inbox/x.jwe")
    body = (EVENTS_DIR / "s3_test_event.json").read_text()
    stack.invoke(flow, "s3_object_events", stack.client.events.generate_sqs_event([body], queue_name=S3_QUEUE))
    message = json.loads((EVENTS_DIR / "sns_key_event.json").read_text())["Records"][0]["Sns"]["Message"]
    stack.invoke(flow, "key_events", stack.client.events.generate_sns_event(message=message))
    stack.invoke(flow, "rotate_transfer_secrets", scheduled_event(stack.client))
    stack.invoke(flow, "rotate_autoid_keys", scheduled_event(stack.client))
    assert len(hygiene.records) >= 8
    assert not hygiene.whole_events_logged(), "\n".join(hygiene.whole_events_logged())
    hygiene.assert_clean(capfd)
