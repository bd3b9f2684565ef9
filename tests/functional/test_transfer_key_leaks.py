"""Private keys and uninspectable files in the transfer bucket, through the S3-event path Lambda runs.

Each file is uploaded to moto, whose own S3 -> SQS notification is handed to ``s3_object_events`` as Lambda's event
source mapping does (a batch of one). Under ``clients/``, whatever the key's name, case or encoding, a private key
leaves no version anywhere and no copy, raises the alarm, and logs no key material; a file too large to inspect (or
not provably public) is purged with a content-free record; nothing ends in the dead-letter queue. In ``inbox/``, a
file too large to import is quarantined unread.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import OKPKey

import app as credport_app
from chalicelib.aws import AwsServices
from chalicelib.aws.errors import AwsRejected
from chalicelib.config import get_settings
from chalicelib.envelope import MAX_ENVELOPE_BYTES, public_key_from_pem
from chalicelib.observability import logger
from chalicelib.services import Services
from chalicelib.transfer.fates import ObjectFates
from chalicelib.transfer.key_material import INSPECTION_LIMIT
from tests.conftest import app_services
from tests.support.s3_notifications import queued_notifications, unversioned_notifications, versioned_notifications

QUEUE = "credport-dev-s3-events"
E, F = serialization.Encoding, serialization.PrivateFormat
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
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
def client(services: Services) -> Iterator[Client]:
    with Client(credport_app.app, stage_name="dev") as test_client:
        yield test_client


@pytest.fixture
def alarms(client: Client, aws: AwsServices) -> Any:
    url = aws.factory.client("sqs").create_queue(QueueName="alarms")["QueueUrl"]
    aws.sns.subscribe(get_settings().resources.key_events_topic_arn, protocol="sqs", endpoint=aws.sqs.arn_of(url))

    def read() -> list[dict[str, Any]]:
        return [json.loads(json.loads(m.body)["Message"]) for m in aws.sqs.receive(url, max_messages=10)]

    return read


@pytest.fixture
def reads(client: Client) -> Iterator[list[str]]:
    """The keys the app's own S3 client reads (GetObject), in order."""
    seen: list[str] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        seen.append(params["Key"])

    s3 = app_services().aws.factory.client("s3")
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
    return queued_notifications(QUEUE)


def upload_and_deliver(client: Client, aws: AwsServices, key: str, *bodies: bytes) -> None:
    """Each body as a new version of ``key``, then every notification to the function, in order."""
    for body in bodies:
        aws.s3.put(bucket(), key, body)
    for message in notifications():
        client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([message], queue_name=QUEUE))


def versions(aws: AwsServices, key: str) -> list[dict[str, Any]]:
    listed = aws.factory.client("s3").list_object_versions(Bucket=bucket(), Prefix=key)
    return [v for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []) if v["Key"] == key]


def everything(aws: AwsServices) -> list[str]:
    return sorted(aws.s3.list_keys(bucket(), ""))


def _no_key_material(lines: list[str], body: bytes) -> None:
    text = "\n".join(lines)
    assert lines
    assert "BEGIN" not in text.upper()
    for chunk in (body[i : i + 24] for i in range(0, len(body) - 24, 24)):
        assert chunk.decode("latin-1") not in text


# --- 1. a private key anywhere under clients/ ----------------------------------------------------------------------


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_a_private_key_in_any_form_is_purged_copied_nowhere_and_alarmed(
    client: Client, aws: AwsServices, alarms: Any, log_lines: list[str], leak: str
) -> None:
    key = "clients/acme/public.pem"
    upload_and_deliver(client, aws, key, PUBLIC_PEM, LEAKS[leak])  # a registration, then the leak over it
    assert versions(aws, key) == []  # every version, the earlier harmless one too
    assert not [k for k in everything(aws) if k.startswith(("quarantine/", "clients/"))]  # copied nowhere
    assert "transfer-private-key-uploaded" in [a["type"] for a in alarms()]
    _no_key_material([line for line in log_lines if "private key uploaded" in line], LEAKS[leak])


@pytest.mark.parametrize("key", NAMES)
def test_a_private_key_under_any_name_is_purged(client: Client, aws: AwsServices, alarms: Any, key: str) -> None:
    leak = LEAKS["PEM PKCS#8 (EC)"]
    upload_and_deliver(client, aws, key, leak, leak)  # two versions, two events
    assert versions(aws, key) == []
    assert everything(aws) == []  # no copy, no record, nothing sent
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
def test_any_unicode_name_any_form(client: Client, aws: AwsServices, name: str, leak: str) -> None:
    key = f"clients/{name}"
    upload_and_deliver(client, aws, key, LEAKS[leak])
    assert versions(aws, key) == []
    assert not [k for k in everything(aws) if k.startswith(("quarantine/", "clients/"))]


# --- 2. too large to inspect, or not provably harmless ---------------------------------------------------------------


def _record(aws: AwsServices, key: str) -> dict[str, Any]:
    return dict(json.loads(aws.s3.get(bucket(), f"quarantine/{key}.error.json").body))


def test_a_client_file_too_large_to_inspect_is_purged_unread_with_a_record(
    client: Client, aws: AwsServices, reads: list[str]
) -> None:
    key, size = "clients/acme/public.pem", INSPECTION_LIMIT + 1
    upload_and_deliver(client, aws, key, PUBLIC_PEM + b" " * (size - len(PUBLIC_PEM)))  # no error: no retry
    assert key not in reads  # the event's size said so: never read
    assert versions(aws, key) == []
    assert everything(aws) == [f"quarantine/{key}.error.json"]  # a record, no content
    record = _record(aws, key)
    assert (record["reason"], record["size"], record["content"], record["source"]) == ("too_large", size, "purged", key)


def test_a_newer_version_larger_than_its_event_says_is_purged_too(client: Client, aws: AwsServices) -> None:
    """An event naming no version (S3 sends none for an unversioned bucket) says the object was small; by the time it
    is handled a large one is current: the read of the current object is bounded."""
    key = "clients/acme/notes/big.bin"
    with unversioned_notifications():
        aws.s3.put(bucket(), key, PUBLIC_PEM)
        (small,) = notifications()
        aws.s3.put(bucket(), key, os.urandom(INSPECTION_LIMIT + 10))
        notifications()
    client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([small], queue_name=QUEUE))
    assert versions(aws, key) == []
    assert _record(aws, key)["reason"] == "too_large"


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("clients/acme/public.pem", os.urandom(4096), "not_a_public_key"),  # raw key bytes look like this
        ("clients/acme/public.pem", b"garbage", "not_a_public_key"),
        ("clients/acme/notes.txt", b"hello", "unexpected_key"),
    ],
)
def test_a_client_file_not_provably_public_is_purged_with_a_record(
    client: Client, aws: AwsServices, alarms: Any, key: str, body: bytes, reason: str
) -> None:
    upload_and_deliver(client, aws, key, body)
    assert versions(aws, key) == []
    assert everything(aws) == [f"quarantine/{key}.error.json"]
    assert (_record(aws, key)["reason"], _record(aws, key)["size"]) == (reason, len(body))
    assert alarms() == []  # not a recognised key: a record and a metric, not the leak alarm


def test_a_public_key_under_another_name_is_purged_never_copied(client: Client, aws: AwsServices) -> None:
    """Nothing under clients/ is ever copied: a public key under another name is purged, with a record only."""
    key = "clients/acme/PUBLIC.PEM"
    upload_and_deliver(client, aws, key, PUBLIC_PEM)
    assert versions(aws, key) == []
    assert everything(aws) == [f"quarantine/{key}.error.json"]
    assert _record(aws, key)["reason"] == "unexpected_key"


# --- 2b. inbox files too large to import ---------------------------------------------------------------------------


def test_an_inbox_file_too_large_is_quarantined_unread(client: Client, aws: AwsServices, reads: list[str]) -> None:
    key = "inbox/huge.jwe"
    upload_and_deliver(client, aws, key, b"e" * (MAX_ENVELOPE_BYTES + 1))
    assert key not in reads
    assert sorted(aws.s3.list_keys(bucket(), "quarantine/")) == [
        "quarantine/huge.jwe",
        "quarantine/huge.jwe.error.json",
    ]
    record = _record(aws, "huge.jwe")
    assert (record["reason"], record["size"]) == ("too_large", MAX_ENVELOPE_BYTES + 1)
    assert list(aws.s3.list_keys(bucket(), "inbox/")) == []


def test_an_inbox_file_too_large_to_copy_leaves_inbox_with_a_record_only(
    client: Client, aws: AwsServices, reads: list[str]
) -> None:
    """Over 5 GiB, CopyObject must fail: the file leaves inbox/ uncopied rather than retrying into the DLQ."""
    key = "inbox/enormous.jwe"
    aws.s3.put(bucket(), key, b"e" * 100)
    (message,) = notifications()
    document = json.loads(message)
    document["Records"][0]["s3"]["object"]["size"] = 6 * 1024**3  # what S3 says of a 6 GiB upload
    client.lambda_.invoke(
        "s3_object_events", client.events.generate_sqs_event([json.dumps(document)], queue_name=QUEUE)
    )
    assert key not in reads
    assert sorted(aws.s3.list_keys(bucket(), "quarantine/")) == ["quarantine/enormous.jwe.error.json"]
    record = _record(aws, "enormous.jwe")
    assert (record["reason"], record["content"]) == ("too_large", "not_copied")
    assert list(aws.s3.list_keys(bucket(), "inbox/")) == []


# --- 3. nothing under clients/ is ever copied: a certificate can hide a private key ----------------------------------


def _der(tag: int, body: bytes) -> bytes:
    length = bytes([len(body)]) if len(body) < 128 else b"\x82" + len(body).to_bytes(2, "big")
    return bytes([tag]) + length + body


def _certificate_hiding(extension_value: bytes) -> bytes:
    """A self-signed certificate with ``extension_value`` (DER) in an extension no parser knows."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "acme")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RSA.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), extension_value), False)
        .sign(RSA, hashes.SHA256())
    )
    return certificate.public_bytes(E.PEM)


WEAK_PUBLIC_PEM = rsa.generate_private_key(65537, 1024).public_key().public_bytes(E.PEM, SPKI)  # noqa: S505
_HIDDEN = RSA.private_bytes(E.DER, F.PKCS8, NONE)
CRAFTED = {
    "base64 PKCS#8 in a UTF8String": _certificate_hiding(_der(0x0C, base64.b64encode(_HIDDEN))),
    "PKCS#8 DER and a trailing byte in an OCTET STRING": _certificate_hiding(_der(0x04, _HIDDEN + b"\x00")),
}


@pytest.mark.parametrize("crafted", sorted(CRAFTED))
@pytest.mark.parametrize("key", ["clients/acme/cert.pem", "clients/acme/public.pem"])
def test_a_certificate_hiding_a_private_key_is_purged_never_copied(
    client: Client, aws: AwsServices, key: str, crafted: str
) -> None:
    upload_and_deliver(client, aws, key, CRAFTED[crafted])
    assert versions(aws, key) == []
    assert everything(aws) == [f"quarantine/{key}.error.json"]  # a record: reason, size, version; no bytes
    record = _record(aws, key)
    assert (record["content"], record["size"]) == ("purged", len(CRAFTED[crafted]))
    assert record["version_id"]
    assert _HIDDEN[40:64].hex() not in json.dumps(record)


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("clients/acme/public.pem", WEAK_PUBLIC_PEM),
        ("clients/acme/public.pem", EC.public_key().public_bytes(E.PEM, SPKI)),
        ("clients/acme/other.pem", PUBLIC_PEM),
        ("clients/acme/public.pem.bak", PUBLIC_PEM),
    ],
)
def test_anything_but_a_good_public_key_at_its_one_name_is_purged_never_copied(
    client: Client, aws: AwsServices, key: str, body: bytes
) -> None:
    upload_and_deliver(client, aws, key, body)
    assert versions(aws, key) == []
    assert everything(aws) == [f"quarantine/{key}.error.json"]  # nothing sent, nothing copied


# --- 4. each event judges exactly the version it names ---------------------------------------------------------------


@pytest.fixture
def versioned(client: Client) -> Iterator[None]:
    """S3's notifications for the versioned transfer bucket: each names its version (moto's leave it out)."""
    with versioned_notifications():
        yield


@pytest.fixture(params=["404", "403 as on AWS"])
def world(request: pytest.FixtureRequest, client: Client) -> Iterator[str]:
    """How S3 answers a read of a version that is gone: the embedded AWS's NoSuchVersion, or AWS's 403 to a caller
    without s3:ListBucket (credport's role has none)."""
    s3 = app_services().aws.factory.client("s3")

    def hook(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Error", {}).get("Code") in {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}:
            http_response.status_code = 403
            parsed.clear()
            parsed.update(Error={"Code": "AccessDenied", "Message": "Access Denied"})
            parsed.update(ResponseMetadata={"HTTPStatusCode": 403})

    if request.param != "404":
        s3.meta.events.register("after-call.s3.GetObject", hook)
    yield str(request.param)
    s3.meta.events.unregister("after-call.s3.GetObject", hook)


def deliver(client: Client, messages: list[str]) -> None:
    for message in messages:
        client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([message], queue_name=QUEUE))


def registered(aws: AwsServices, client_id: str) -> dict[str, Any] | None:
    return aws.table(get_settings().resources.state_table).get({"pk": f"transfer-client#{client_id}", "sk": "profile"})


def _kid_of(pem: bytes) -> str:
    return public_key_from_pem(pem).kid


@pytest.mark.parametrize("order", ["as uploaded", "the public key's event first"])
def test_a_public_key_uploaded_over_a_private_one_leaves_no_private_version(
    client: Client, aws: AwsServices, alarms: Any, versioned: None, world: str, order: str
) -> None:
    key = "clients/acme/public.pem"
    aws.s3.put(bucket(), key, LEAKS["PEM PKCS#8 (EC)"])
    aws.s3.put(bucket(), key, PUBLIC_PEM)  # at once, before the first event is handled
    messages = notifications()
    assert all("versionId" in json.loads(m)["Records"][0]["s3"]["object"] for m in messages)
    deliver(client, messages if order == "as uploaded" else messages[::-1])  # no event raises: no dead letter
    assert versions(aws, key) == []  # every version: the private one, and the public one with it
    assert not [k for k in everything(aws) if k.startswith(("quarantine/", "clients/"))]  # copied nowhere
    assert "transfer-private-key-uploaded" in [a["type"] for a in alarms()]
    profile = registered(aws, "acme")
    if order == "as uploaded":
        assert profile is None  # the public version's event found it purged
    else:  # registered from the public version's own bytes (harmless): kept, the alarm tells the operator
        assert profile is not None
        assert profile["kid"] == _kid_of(PUBLIC_PEM)


def test_a_private_key_deleted_before_its_event_is_still_purged_and_alarmed(
    client: Client, aws: AwsServices, alarms: Any, versioned: None
) -> None:
    key = "clients/acme/id_rsa"
    aws.s3.put(bucket(), key, LEAKS["DER PKCS#1 (RSA)"])
    aws.factory.client("s3").delete_object(Bucket=bucket(), Key=key)  # a delete marker over it
    deliver(client, notifications())
    assert versions(aws, key) == []  # the private version under the marker, and the marker
    assert [a["type"] for a in alarms()] == ["transfer-private-key-uploaded"]


def test_a_private_key_copied_over_before_its_event_is_still_purged_and_alarmed(
    client: Client, aws: AwsServices, alarms: Any, versioned: None
) -> None:
    key = "clients/acme/public.pem"
    aws.s3.put(bucket(), "staging/public.pem", PUBLIC_PEM)  # outside every notified prefix
    aws.s3.put(bucket(), key, LEAKS["PEM PKCS#8 (EC)"])
    aws.factory.client("s3").copy_object(
        Bucket=bucket(), Key=key, CopySource={"Bucket": bucket(), "Key": "staging/public.pem"}
    )
    deliver(client, notifications())
    assert versions(aws, key) == []
    assert "transfer-private-key-uploaded" in [a["type"] for a in alarms()]
    assert registered(aws, "acme") is None


def test_a_registration_is_made_from_the_version_its_event_names(
    client: Client, aws: AwsServices, versioned: None
) -> None:
    """No time-of-check to time-of-use: a newer version cannot be registered under an older version's event."""
    key, other = "clients/acme/public.pem", rsa.generate_private_key(65537, 2048).public_key()
    aws.s3.put(bucket(), key, PUBLIC_PEM)
    first, *_ = notifications()
    aws.s3.put(bucket(), key, other.public_bytes(E.PEM, SPKI))
    notifications()  # its event is not delivered here
    deliver(client, [first])
    profile = registered(aws, "acme")
    assert profile is not None
    assert profile["kid"] == _kid_of(PUBLIC_PEM)


@pytest.mark.parametrize("order", ["as uploaded", "the later event first"])
def test_a_private_key_then_anything_over_it_never_dead_letters(
    client: Client, aws: AwsServices, alarms: Any, versioned: None, world: str, order: str
) -> None:
    """One event purges every version; the other finds its version gone, and its fate recorded: done."""
    key = "clients/acme/id_rsa"
    aws.s3.put(bucket(), key, LEAKS["PEM PKCS#8 (EC)"])
    aws.s3.put(bucket(), key, b"oops")
    messages = notifications()
    deliver(client, messages if order == "as uploaded" else messages[::-1])  # raises nothing
    assert versions(aws, key) == []
    assert not [k for k in everything(aws) if not k.startswith("quarantine/")]
    # Whichever event purged it, the private version raised the alarm (once).
    assert [a["type"] for a in alarms()] == ["transfer-private-key-uploaded"]
    deliver(client, messages)  # redelivered, both: still nothing raised
    assert versions(aws, key) == []


def test_a_version_gone_without_a_recorded_fate_still_fails_loudly(
    client: Client, aws: AwsServices, versioned: None, world: str
) -> None:
    """Someone else removed the version: a 404 says so (nothing to do); a 403 may be a denial, and credport never
    handled this version, so it is raised (retried, then dead-lettered), never settled silently."""
    key = "clients/acme/public.pem"
    aws.s3.put(bucket(), key, PUBLIC_PEM)
    (message,) = notifications()
    (version,) = versions(aws, key)
    aws.factory.client("s3").delete_object(Bucket=bucket(), Key=key, VersionId=version["VersionId"])
    if world == "404":
        deliver(client, [message])
    else:
        with pytest.raises(AwsRejected):
            deliver(client, [message])
    assert registered(aws, "acme") is None


def test_a_purge_records_every_version_it_removes_before_removing_it(
    client: Client, aws: AwsServices, versioned: None
) -> None:
    key = "clients/acme/id_rsa"
    aws.s3.put(bucket(), key, b"first")
    aws.s3.put(bucket(), key, LEAKS["DER SEC1"])
    ids = [v["VersionId"] for v in versions(aws, key)]
    *_, last = notifications()
    deliver(client, [last])
    fates = ObjectFates(aws.table(get_settings().resources.state_table))
    assert [fates.fate(key, f"v:{i}") for i in ids] == ["purged", "purged"]
