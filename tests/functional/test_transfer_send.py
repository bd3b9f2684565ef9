"""Secret transfer, sending side: client registration by key upload, the send pipeline, and refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from chalicelib import transfer
from chalicelib.aws import AwsServices
from chalicelib.config import get_settings
from chalicelib.envelope import open_envelope, private_key_from_pem
from chalicelib.errors import NotFound
from chalicelib.services import Services
from tests.conftest import app_services, install_services

CLIENT = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = CLIENT.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
)
PUBLIC_PEM = CLIENT.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


@pytest.fixture
def sender(services: Services) -> transfer.Sender:
    return services.sender


@pytest.fixture
def notifications(aws: AwsServices) -> Any:
    url = aws.factory.client("sqs").create_queue(QueueName="notify-reader")["QueueUrl"]
    aws.sns.subscribe(get_settings().resources.notify_topic_arn, protocol="sqs", endpoint=aws.sqs.arn_of(url))

    def read() -> list[dict[str, Any]]:
        found = []
        for _ in range(3):
            for message in aws.sqs.receive(url, max_messages=10):
                envelope = json.loads(message.body)
                found.append({"message": json.loads(envelope["Message"]), "attributes": envelope["MessageAttributes"]})
                aws.sqs.delete(url, message.receipt_handle)
        return found

    return read


def register(aws: AwsServices, sender: transfer.Sender, client_id: str, pem: bytes) -> Any:
    bucket = get_settings().resources.transfer_bucket
    key = f"clients/{client_id}/public.pem"
    aws.s3.put(bucket, key, pem)
    return sender.on_client_object(key, aws.s3.head(bucket, key).etag)  # type: ignore[union-attr]


def test_registration_sends_a_sealed_secret_and_a_link(
    sender: transfer.Sender, aws: AwsServices, notifications: Any
) -> None:
    report = register(aws, sender, "client-one", PUBLIC_PEM)
    assert report is not None
    bucket = get_settings().resources.transfer_bucket
    envelope = aws.s3.get(bucket, report.object_key).body.decode()
    opener = private_key_from_pem(PRIVATE_PEM)
    document = json.loads(open_envelope(envelope, {opener.kid: opener}).plaintext)
    secret = aws.secrets.get_value(report.secret_name)
    assert document["value"] == secret.value
    assert (document["client_id"], document["version_id"]) == ("client-one", secret.version_id)
    assert report.object_key == f"outbox/client-one/{secret.version_id}.jwe"
    (note,) = notifications()
    assert note["attributes"]["client_id"]["Value"] == "client-one"
    assert note["message"]["kid"] == opener.kid
    assert note["message"]["link"].startswith("https://")
    assert "X-Amz-Signature" in note["message"]["link"]
    assert secret.value not in json.dumps(note)  # the notification carries a link, never the secret
    key = jwcrypto_jwk.JWK.from_pem(PRIVATE_PEM)  # and an independent JOSE library opens our outbox file
    token = jwcrypto_jwe.JWE()
    token.deserialize(envelope, key=key)
    assert json.loads(token.payload)["value"] == secret.value


def test_a_redelivered_registration_sends_once(sender: transfer.Sender, aws: AwsServices) -> None:
    first = register(aws, sender, "client-two", PUBLIC_PEM)
    again = sender.on_client_object(
        "clients/client-two/public.pem",
        aws.s3.head(get_settings().resources.transfer_bucket, "clients/client-two/public.pem").etag,
    )  # type: ignore[union-attr]
    assert again.version_id == first.version_id
    assert len(aws.secrets.describe(first.secret_name).versions) == 1


def test_resend_makes_a_new_version_and_keeps_the_previous(sender: transfer.Sender, aws: AwsServices) -> None:
    first = register(aws, sender, "client-three", PUBLIC_PEM)
    second = sender.send("client-three")
    assert second.version_id != first.version_id
    assert aws.secrets.get_value(first.secret_name, stage="AWSPREVIOUS").version_id == first.version_id
    with pytest.raises(NotFound):
        sender.send("nobody")


def test_a_private_key_upload_is_purged_and_raises_the_alarm(sender: transfer.Sender, aws: AwsServices) -> None:
    url = aws.factory.client("sqs").create_queue(QueueName="alarms")["QueueUrl"]
    aws.sns.subscribe(get_settings().resources.key_events_topic_arn, protocol="sqs", endpoint=aws.sqs.arn_of(url))
    bucket = get_settings().resources.transfer_bucket
    assert register(aws, sender, "oops", PRIVATE_PEM) is None
    s3 = aws.factory.client("s3")
    listed = s3.list_object_versions(Bucket=bucket, Prefix="clients/oops/")
    assert not listed.get("Versions")  # no version left behind
    assert not listed.get("DeleteMarkers")
    everything = [k for prefix in ("", "quarantine/", "outbox/") for k in aws.s3.list_keys(bucket, prefix)]
    assert not [k for k in everything if "oops" in k]  # copied nowhere
    (alarm,) = [json.loads(json.loads(m.body)["Message"]) for m in aws.sqs.receive(url, max_messages=10)]
    assert alarm["type"] == "transfer-private-key-uploaded"
    assert "PRIVATE" not in json.dumps(alarm)


WEAK = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refusing it is the point)
WEAK_PEM = WEAK.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(("pem", "reason"), [(b"garbage", "not_a_public_key"), (WEAK_PEM, "key_too_small")])
def test_bad_keys_are_quarantined(sender: transfer.Sender, aws: AwsServices, pem: bytes, reason: str) -> None:
    assert register(aws, sender, "bad", pem) is None
    bucket = get_settings().resources.transfer_bucket
    error = json.loads(aws.s3.get(bucket, "quarantine/clients/bad/public.pem.error.json").body)
    assert error["reason"] == reason
    assert aws.s3.head(bucket, "clients/bad/public.pem") is None


def test_other_files_under_clients_are_quarantined(sender: transfer.Sender, aws: AwsServices) -> None:
    bucket = get_settings().resources.transfer_bucket
    aws.s3.put(bucket, "clients/x/notes.txt", b"hello")
    assert sender.on_client_object("clients/x/notes.txt", "etag") is None
    error = json.loads(aws.s3.get(bucket, "quarantine/clients/x/notes.txt.error.json").body)
    assert error["reason"] == "unexpected_key"


def test_the_schedule_rotates_every_client_once_a_day(
    sender: transfer.Sender, aws: AwsServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.config import reset_settings

    first = [register(aws, sender, name, PUBLIC_PEM) for name in ("sched-a", "sched-b")]
    assert app_services().transfer.rotate_on_schedule() == 0  # off unless configured
    monkeypatch.setenv("CREDPORT_TRANSFER_ROTATION_DAYS", "30")
    reset_settings()
    services = install_services()
    assert services.transfer.rotate_on_schedule() == 2
    assert services.transfer.rotate_on_schedule() == 2  # a retried run the same day rotates nobody twice
    for report in first:
        versions = aws.secrets.describe(report.secret_name).versions
        assert len(versions) == 2
        assert aws.secrets.get_value(report.secret_name, stage="AWSPREVIOUS").version_id == report.version_id
