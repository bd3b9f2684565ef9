"""Private keys and uninspectable files in the transfer bucket, through the S3-event path Lambda runs.

Each file is uploaded to moto, whose own S3 -> SQS notification is handed to ``s3_object_events`` as Lambda's event
source mapping does (a batch of one). Under ``clients/``, whatever the key's name, case or encoding, a private key
leaves no version anywhere and no copy, raises the alarm, and logs no key material; a file too large to inspect (or
not provably public) is purged with a content-free record; nothing ends in the dead-letter queue. In ``inbox/``, a
file too large to import is quarantined unread.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import OKPKey

import app as credport_app
from chalicelib import transfer
from chalicelib.aws import AwsServices, get_aws
from chalicelib.config import get_settings
from chalicelib.envelope import MAX_ENVELOPE_BYTES
from chalicelib.observability import logger
from chalicelib.transfer.key_material import INSPECTION_LIMIT
from local.provision import Provisioned

QUEUE = "credport-dev-s3-events"
E, F = serialization.Encoding, serialization.PrivateFormat
NONE, PASSWORD = serialization.NoEncryption(), serialization.BestAvailableEncryption(b"pw")
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()
PUBLIC_PEM = RSA.public_key().public_bytes(E.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
_OPENSSH = ED.private_bytes(E.PEM, F.OpenSSH, NONE)
# One of each family, in forms the old check (a PEM marker, then a public-key loader) let through to a quarantine copy.
LEAKS = {
    "PEM PKCS#8 (EC)": EC.private_bytes(E.PEM, F.PKCS8, NONE),
    "DER PKCS#1 (RSA)": RSA.private_bytes(E.DER, F.TraditionalOpenSSL, NONE),
    "DER encrypted PKCS#8": EC.private_bytes(E.DER, F.PKCS8, PASSWORD),
    "DER SEC1": EC.private_bytes(E.DER, F.TraditionalOpenSSL, NONE),
    "JWK (Ed25519)": json.dumps(
        OKPKey.import_key(ED.private_bytes(E.PEM, F.PKCS8, NONE)).as_dict(private=True)
    ).encode(),
    "PKCS#12 with a password": pkcs12.serialize_key_and_certificates(b"c", RSA, None, None, PASSWORD),
    "raw openssh-key-v1": base64.b64decode(b"".join(_OPENSSH.splitlines()[1:-1])),
    "base64 DER": base64.b64encode(RSA.private_bytes(E.DER, F.PKCS8, NONE)),
    "PEM in UTF-16": RSA.private_bytes(E.PEM, F.PKCS8, NONE).decode().encode("utf-16"),
    "lowercase armour, CRLF": RSA.private_bytes(E.PEM, F.PKCS8, NONE).lower().replace(b"\n", b"\r\n"),
    "20 KiB of comments, then the key": b"# notes\n" * 2560 + RSA.private_bytes(E.PEM, F.PKCS8, NONE),
}
NAMES = ("clients/acme/public.pem", "clients/acme/PUBLIC.PEM", "clients/Acme/id_rsa", "clients/acme/k/ключ.json")


@pytest.fixture
def client(provisioned: Provisioned) -> Iterator[Client]:
    caches = (transfer.get_import_keys, transfer.get_importer, transfer.get_sender)
    for cache in caches:
        cache.cache_clear()
    with Client(credport_app.app, stage_name="dev") as test_client:
        yield test_client
    for cache in caches:
        cache.cache_clear()


@pytest.fixture
def alarms(client: Client, services: AwsServices) -> Any:
    url = services.factory.client("sqs").create_queue(QueueName="alarms")["QueueUrl"]
    services.sns.subscribe(
        get_settings().resources.key_events_topic_arn, protocol="sqs", endpoint=services.sqs.arn_of(url)
    )

    def read() -> list[dict[str, Any]]:
        return [json.loads(json.loads(m.body)["Message"]) for m in services.sqs.receive(url, max_messages=10)]

    return read


@pytest.fixture
def reads(client: Client) -> Iterator[list[str]]:
    """The keys the app's own S3 client reads (GetObject), in order."""
    seen: list[str] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        seen.append(params["Key"])

    s3 = get_aws().factory.client("s3")
    s3.meta.events.register("provide-client-params.s3.GetObject", hook)
    yield seen
    s3.meta.events.unregister("provide-client-params.s3.GetObject", hook)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logger.registered_formatter.format(record) + repr(vars(record)))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler = _Lines()
    logging.getLogger("credport").addHandler(handler)
    yield handler.lines
    logging.getLogger("credport").removeHandler(handler)


def bucket() -> str:
    return get_settings().resources.transfer_bucket


def notifications() -> list[str]:
    """The S3 notifications waiting in the queue (moto delivers them as S3 does), taken off it."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if "Records" in json.loads(message["Body"]):  # not the s3:TestEvent
                bodies.append(message["Body"])
    return bodies


def upload_and_deliver(client: Client, services: AwsServices, key: str, *bodies: bytes) -> None:
    """Each body as a new version of ``key``, then every notification to the function, in order."""
    for body in bodies:
        services.s3.put(bucket(), key, body)
    for message in notifications():
        client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([message], queue_name=QUEUE))


def versions(services: AwsServices, key: str) -> list[dict[str, Any]]:
    listed = services.factory.client("s3").list_object_versions(Bucket=bucket(), Prefix=key)
    return [v for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []) if v["Key"] == key]


def everything(services: AwsServices) -> list[str]:
    return sorted(services.s3.list_keys(bucket(), ""))


def _no_key_material(lines: list[str], body: bytes) -> None:
    text = "\n".join(lines)
    assert lines
    assert "BEGIN" not in text.upper()
    for chunk in (body[i : i + 24] for i in range(0, len(body) - 24, 24)):
        assert chunk.decode("latin-1") not in text


# --- 1. a private key anywhere under clients/ ----------------------------------------------------------------------


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_a_private_key_in_any_form_is_purged_copied_nowhere_and_alarmed(
    client: Client, services: AwsServices, alarms: Any, log_lines: list[str], leak: str
) -> None:
    key = "clients/acme/public.pem"
    upload_and_deliver(client, services, key, PUBLIC_PEM, LEAKS[leak])  # a registration, then the leak over it
    assert versions(services, key) == []  # every version, the earlier harmless one too
    assert not [k for k in everything(services) if k.startswith(("quarantine/", "clients/"))]  # copied nowhere
    assert "transfer-private-key-uploaded" in [a["type"] for a in alarms()]
    _no_key_material([line for line in log_lines if "private key uploaded" in line], LEAKS[leak])


@pytest.mark.parametrize("key", NAMES)
def test_a_private_key_under_any_name_is_purged(client: Client, services: AwsServices, alarms: Any, key: str) -> None:
    leak = LEAKS["PEM PKCS#8 (EC)"]
    upload_and_deliver(client, services, key, leak, leak)  # two versions, two events
    assert versions(services, key) == []
    assert everything(services) == []  # no copy, no record, nothing sent
    assert [a["type"] for a in alarms()] == ["transfer-private-key-uploaded"]  # the second event: already handled


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\\"),
        min_size=1,
        max_size=60,
    ).filter(lambda name: len(f"clients/{name}".encode()) <= 1024),
    st.sampled_from(sorted(LEAKS)),
)
def test_any_unicode_name_any_form(client: Client, services: AwsServices, name: str, leak: str) -> None:
    key = f"clients/{name}"
    upload_and_deliver(client, services, key, LEAKS[leak])
    assert versions(services, key) == []
    assert not [k for k in everything(services) if k.startswith(("quarantine/", "clients/"))]


# --- 2. too large to inspect, or not provably harmless ---------------------------------------------------------------


def _record(services: AwsServices, key: str) -> dict[str, Any]:
    return dict(json.loads(services.s3.get(bucket(), f"quarantine/{key}.error.json").body))


def test_a_client_file_too_large_to_inspect_is_purged_unread_with_a_record(
    client: Client, services: AwsServices, reads: list[str]
) -> None:
    key, size = "clients/acme/public.pem", INSPECTION_LIMIT + 1
    upload_and_deliver(client, services, key, PUBLIC_PEM + b" " * (size - len(PUBLIC_PEM)))  # no error: no retry
    assert key not in reads  # the event's size said so: never read
    assert versions(services, key) == []
    assert everything(services) == [f"quarantine/{key}.error.json"]  # a record, no content
    record = _record(services, key)
    assert (record["reason"], record["size"], record["content"], record["source"]) == ("too_large", size, "purged", key)


def test_a_newer_version_larger_than_its_event_says_is_purged_too(client: Client, services: AwsServices) -> None:
    """The event names a small version; by the time it is handled a large one is current: the read is bounded."""
    key = "clients/acme/notes/big.bin"
    services.s3.put(bucket(), key, PUBLIC_PEM)
    (small,) = notifications()
    services.s3.put(bucket(), key, os.urandom(INSPECTION_LIMIT + 10))
    notifications()
    client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([small], queue_name=QUEUE))
    assert versions(services, key) == []
    assert _record(services, key)["reason"] == "too_large"


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("clients/acme/public.pem", os.urandom(4096), "not_a_public_key"),  # raw key bytes look like this
        ("clients/acme/public.pem", b"garbage", "not_a_public_key"),
        ("clients/acme/notes.txt", b"hello", "unexpected_key"),
    ],
)
def test_a_client_file_not_provably_public_is_purged_with_a_record(
    client: Client, services: AwsServices, alarms: Any, key: str, body: bytes, reason: str
) -> None:
    upload_and_deliver(client, services, key, body)
    assert versions(services, key) == []
    assert everything(services) == [f"quarantine/{key}.error.json"]
    assert (_record(services, key)["reason"], _record(services, key)["size"]) == (reason, len(body))
    assert alarms() == []  # not a recognised key: a record and a metric, not the leak alarm


def test_a_public_key_under_another_name_is_quarantined_as_a_harmless_copy(
    client: Client, services: AwsServices
) -> None:
    key = "clients/acme/PUBLIC.PEM"
    upload_and_deliver(client, services, key, PUBLIC_PEM)
    assert services.s3.get(bucket(), f"quarantine/{key}").body == PUBLIC_PEM
    assert _record(services, key)["reason"] == "unexpected_key"


# --- 2b. inbox files too large to import ---------------------------------------------------------------------------


def test_an_inbox_file_too_large_is_quarantined_unread(client: Client, services: AwsServices, reads: list[str]) -> None:
    key = "inbox/huge.jwe"
    upload_and_deliver(client, services, key, b"e" * (MAX_ENVELOPE_BYTES + 1))
    assert key not in reads
    assert sorted(services.s3.list_keys(bucket(), "quarantine/")) == [
        "quarantine/huge.jwe",
        "quarantine/huge.jwe.error.json",
    ]
    record = _record(services, "huge.jwe")
    assert (record["reason"], record["size"]) == ("too_large", MAX_ENVELOPE_BYTES + 1)
    assert list(services.s3.list_keys(bucket(), "inbox/")) == []


def test_an_inbox_file_too_large_to_copy_leaves_inbox_with_a_record_only(
    client: Client, services: AwsServices, reads: list[str]
) -> None:
    """Over 5 GiB, CopyObject must fail: the file leaves inbox/ uncopied rather than retrying into the DLQ."""
    key = "inbox/enormous.jwe"
    services.s3.put(bucket(), key, b"e" * 100)
    (message,) = notifications()
    document = json.loads(message)
    document["Records"][0]["s3"]["object"]["size"] = 6 * 1024**3  # what S3 says of a 6 GiB upload
    client.lambda_.invoke(
        "s3_object_events", client.events.generate_sqs_event([json.dumps(document)], queue_name=QUEUE)
    )
    assert key not in reads
    assert sorted(services.s3.list_keys(bucket(), "quarantine/")) == ["quarantine/enormous.jwe.error.json"]
    record = _record(services, "enormous.jwe")
    assert (record["reason"], record["content"]) == ("too_large", "not_copied")
    assert list(services.s3.list_keys(bucket(), "inbox/")) == []
