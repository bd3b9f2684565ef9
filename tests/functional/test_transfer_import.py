"""Importing encrypted files dropped into the transfer bucket's inbox/, against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from chalicelib import transfer
from chalicelib.aws import AwsServices, AwsUnavailable
from chalicelib.config import get_settings
from chalicelib.envelope import generate_recipient_key, public_key_from_pem, seal
from chalicelib.events import parse_notification
from chalicelib.services import Services
from local.provision import Provisioned


@pytest.fixture
def importer(services: Services) -> transfer.Importer:
    return services.importer


def import_keys() -> Any:
    """The import keys of the app's composition root (the one the ``services`` fixture installed)."""
    import app

    return app.services().import_keys


def bucket() -> str:
    return get_settings().resources.transfer_bucket


def sealed(document: dict[str, Any]) -> bytes:
    recipient = public_key_from_pem(import_keys().current().public_pem())
    return seal(recipient, json.dumps(document).encode()).encode()


def drop(aws: AwsServices, name: str, body: bytes) -> str:
    key = f"inbox/{name}"
    aws.s3.put(bucket(), key, body)
    return key


def keys_under(aws: AwsServices, prefix: str) -> list[str]:
    return sorted(aws.s3.list_keys(bucket(), prefix))


def test_a_dropped_file_becomes_a_secret_with_a_receipt(importer: transfer.Importer, aws: AwsServices) -> None:
    key = drop(aws, "db.jwe", sealed({"secret_name": "credport-dev/imported/db", "value": "s3cr3t-value"}))
    receipt = importer.import_object(key)
    assert receipt is not None
    stored = aws.secrets.get_value("credport-dev/imported/db")
    assert (stored.value, stored.version_id) == ("s3cr3t-value", receipt.version_id)
    assert keys_under(aws, "inbox/") == []
    assert keys_under(aws, "processed/") == ["processed/db.jwe", "processed/db.jwe.receipt.json"]
    document = json.loads(aws.s3.get(bucket(), "processed/db.jwe.receipt.json").body)
    assert document["secret_arn"] == stored.arn
    assert "s3cr3t-value" not in json.dumps(document)  # a receipt never holds the value


def test_the_same_file_delivered_twice_imports_once(importer: transfer.Importer, aws: AwsServices) -> None:
    body = sealed({"secret_name": "credport-dev/imported/api", "value": "v1"})
    key = drop(aws, "api.jwe", body)
    aws.s3.copy(bucket(), key, "spare.jwe")
    first = importer.import_object(key)
    assert importer.import_object(key) is None  # the redelivery finds the file handled
    aws.s3.copy(bucket(), "spare.jwe", key)  # even if the same object shows up again: same version
    again = importer.import_object(key)
    assert first is not None
    assert again is not None
    assert again.version_id == first.version_id
    assert len(aws.secrets.describe("credport-dev/imported/api").versions) == 1


def test_the_same_file_dropped_again_adds_no_version(importer: transfer.Importer, aws: AwsServices) -> None:
    body = sealed({"secret_name": "credport-dev/imported/again", "value": "v"})
    for name in ("first.jwe", "second.jwe"):
        key = drop(aws, name, body)
        assert importer.import_object(key) is not None
    assert len(aws.secrets.describe("credport-dev/imported/again").versions) == 1
    other = sealed({"secret_name": "credport-dev/imported/again", "value": "v"})  # same value, another file
    key = drop(aws, "third.jwe", other)
    assert importer.import_object(key) is not None
    assert len(aws.secrets.describe("credport-dev/imported/again").versions) == 2


def test_an_existing_secret_gets_a_new_version_and_keeps_the_old(importer: transfer.Importer, aws: AwsServices) -> None:
    aws.secrets.create("credport-dev/imported/rotating", "old")
    key = drop(aws, "r.jwe", sealed({"secret_name": "credport-dev/imported/rotating", "value": "new"}))
    assert importer.import_object(key) is not None
    assert aws.secrets.get_value("credport-dev/imported/rotating").value == "new"
    assert aws.secrets.get_value("credport-dev/imported/rotating", stage="AWSPREVIOUS").value == "old"


def test_a_64_kib_secret_round_trips(importer: transfer.Importer, aws: AwsServices) -> None:
    value = "x" * (64 * 1024)
    key = drop(aws, "big.jwe", sealed({"secret_name": "credport-dev/imported/big", "value": value}))
    assert importer.import_object(key) is not None
    assert aws.secrets.get_value("credport-dev/imported/big").value == value


def test_a_file_sealed_by_another_jose_library_imports(importer: transfer.Importer, aws: AwsServices) -> None:
    jwk = import_keys().current().public_jwk()
    public = jwcrypto_jwk.JWK.from_json(json.dumps(jwk))
    token = jwcrypto_jwe.JWE(
        json.dumps({"secret_name": "credport-dev/imported/jwcrypto", "value": "interop"}).encode(),
        json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": jwk["kid"]}),
    )
    token.add_recipient(public)
    key = drop(aws, "interop.jwe", token.serialize(compact=True).encode())
    assert importer.import_object(key) is not None
    assert aws.secrets.get_value("credport-dev/imported/jwcrypto").value == "interop"


def _bad_files() -> dict[str, tuple[Any, str]]:
    stranger = generate_recipient_key(2048)
    return {
        "not-jwe": (b"this is not a JWE", "not_jwe"),
        "wrong-key": (
            lambda: seal(stranger, b'{"secret_name": "credport-dev/imported/x", "value": "v"}').encode(),
            "unknown_key",
        ),
        "tampered": (
            lambda: _tamper(sealed({"secret_name": "credport-dev/imported/x", "value": "v"})),
            "decryption_failed",
        ),
        "bad-json": (lambda: _seal_raw(b"{not json"), "bad_json"),
        "not-an-object": (lambda: _seal_raw(b'["credport-dev/imported/x"]'), "bad_json"),
        "missing-value": (lambda: sealed({"secret_name": "credport-dev/imported/x"}), "bad_payload"),
        "empty-value": (lambda: sealed({"secret_name": "credport-dev/imported/x", "value": ""}), "bad_value_size"),
        "outside-prefix": (
            lambda: sealed({"secret_name": "credport-dev/session-key", "value": "v"}),
            "name_outside_prefix",
        ),
        "dot-dot": (
            lambda: sealed({"secret_name": "credport-dev/imported/../admin", "value": "v"}),
            "name_outside_prefix",
        ),
        "too-large": (b"e" * (300 * 1024), "too_large"),
    }


def _seal_raw(plaintext: bytes) -> bytes:
    recipient = public_key_from_pem(import_keys().current().public_pem())
    return seal(recipient, plaintext).encode()


def _tamper(body: bytes) -> bytes:
    parts = body.decode().split(".")
    parts[3] = ("A" if parts[3][0] != "A" else "B") + parts[3][1:]
    return ".".join(parts).encode()


@pytest.mark.parametrize("case", sorted(_bad_files()))
def test_bad_files_are_quarantined_with_their_reason(importer: transfer.Importer, aws: AwsServices, case: str) -> None:
    body, reason = _bad_files()[case]
    before = aws.secrets.describe(get_settings().resources.session_key_secret_arn).versions
    key = drop(aws, f"{case}.jwe", body() if callable(body) else body)
    assert importer.import_object(key) is None
    assert keys_under(aws, "inbox/") == []
    assert keys_under(aws, "quarantine/") == [f"quarantine/{case}.jwe", f"quarantine/{case}.jwe.error.json"]
    error = json.loads(aws.s3.get(bucket(), f"quarantine/{case}.jwe.error.json").body)
    assert (error["reason"], error["source"]) == (reason, key)
    assert aws.secrets.describe(get_settings().resources.session_key_secret_arn).versions == before
    names = {s["Name"] for s in aws.factory.client("secretsmanager").list_secrets()["SecretList"]}
    assert not {n for n in names if n.startswith("credport-dev/imported/")}


def test_a_transient_failure_propagates_and_keeps_the_file(
    importer: transfer.Importer, aws: AwsServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = drop(aws, "later.jwe", sealed({"secret_name": "credport-dev/imported/later", "value": "v"}))

    def unavailable(*_args: Any, **_kwargs: Any) -> None:
        raise AwsUnavailable("secretsmanager", "CreateSecret", "ThrottlingException")

    # Only this patch is undone (monkeypatch.undo() would also undo the fixtures' environment, the region included).
    with monkeypatch.context() as patch:
        patch.setattr(aws.secrets.__class__, "create", unavailable)
        with pytest.raises(AwsUnavailable):
            importer.import_object(key)
    assert keys_under(aws, "inbox/") == [key]  # retried by SQS, and dead-lettered in the end, never lost
    assert keys_under(aws, "quarantine/") == []
    assert importer.import_object(key) is not None


def test_inbox_notifications_route_to_the_importer(
    importer: transfer.Importer, aws: AwsServices, provisioned: Provisioned, services: Services
) -> None:
    drop(aws, "routed.jwe", sealed({"secret_name": "credport-dev/imported/routed", "value": "v"}))
    url = provisioned.attributes["S3EventsQueue"]["QueueUrl"]
    events = [e for m in aws.sqs.receive(url, max_messages=10) for e in parse_notification(m.body)]
    assert services.s3_routes.dispatch(events) == 1
    assert aws.secrets.get_value("credport-dev/imported/routed").value == "v"


def test_the_import_key_documents(importer: transfer.Importer) -> None:
    documents = import_keys().public_documents()
    (jwk,) = documents["keys"]
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (documents["current_kid"], "RSA-OAEP-256", "enc")
    assert not {"d", "p", "q"} & set(jwk)
    assert public_key_from_pem(documents["pem"].encode()).kid == jwk["kid"]
    assert import_keys().current().public.as_dict(private=False)["n"] == jwk["n"]


def import_call(body: Any, identity: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    import app as credport_app
    from tests.support import gateway_event

    caller = identity or {
        "userArn": "arn:aws:iam::123456789012:user/sender",
        "accountId": "123456789012",
        "caller": "AIDAEXAMPLE",
        "user": "AIDAEXAMPLE",
        "sourceIp": "203.0.113.7",
    }
    event = gateway_event("/transfer/import", caller, method="POST", headers={"Content-Type": "application/json"})
    event["body"] = json.dumps(body)
    response = credport_app.app(event, None)
    return response["statusCode"], json.loads(response["body"])


def test_post_import_with_a_jwe(importer: transfer.Importer, aws: AwsServices) -> None:
    envelope = sealed({"secret_name": "credport-dev/imported/posted", "value": "via API"}).decode()
    status, body = import_call({"jwe": envelope})
    assert status == 200, body
    assert body["secret_name"] == "credport-dev/imported/posted"
    assert "via API" not in json.dumps(body)
    assert aws.secrets.get_value("credport-dev/imported/posted").value == "via API"
    assert import_call({"jwe": envelope})[1]["version_id"] == body["version_id"]  # the same file imports once


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "bad_request"),
        ({"jwe": "x", "url": "y"}, "bad_request"),
        ({"jwe": 42}, "bad_request"),
        ({"jwe": "not an envelope"}, "import_refused"),
        ({"url": "https://evil.example.com/credport-dev-transfer-123456789012/x.jwe"}, "link_refused"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "link_refused"),
        ({"url": "file:///etc/passwd"}, "link_refused"),
        ({"url": "https://user:pw@credport-dev-transfer-123456789012.s3.amazonaws.com/x"}, "link_refused"),
    ],
)
def test_post_import_refusals(importer: transfer.Importer, body: dict[str, Any], code: str) -> None:
    status, answer = import_call(body)
    assert (status, answer["error"]) == (400, code)


def test_post_import_needs_an_iam_identity(importer: transfer.Importer) -> None:
    status, answer = import_call({"jwe": "x"}, identity={"sourceIp": "203.0.113.7"})
    assert (status, answer["error"]) == (403, "forbidden")
