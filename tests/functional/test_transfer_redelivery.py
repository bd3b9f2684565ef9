"""Redelivered S3 events (SQS is at-least-once) for transfer objects already moved or purged: done, not errors.

Through the real handler: moto's own S3 -> SQS notification, handed to ``s3_object_events`` as Lambda's event
source mapping does, then the very same message again. On AWS, GetObject of a missing key answers 403
AccessDenied, not 404, to a caller without ``s3:ListBucket`` on the bucket (S3 API Reference, GetObject,
"Permissions"), and credport's role has none on the transfer bucket. The embedded AWS answers 404 whatever the
caller's rights, so the ``as_aws`` fixture turns the app's 404s into AWS's 403 with a botocore hook on the app's
own S3 client (the shared IAM emulation in ``local/iam/`` is to answer this way by itself). Each scenario runs
in both worlds: the fix must hold whichever answer S3 gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.test import Client
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import app as credport_app
from chalicelib.aws import AwsRejected, AwsServices
from chalicelib.config import get_settings
from chalicelib.envelope import public_key_from_pem, seal
from chalicelib.services import Services
from tests.conftest import app_services
from tests.support.s3_notifications import queued_notifications

QUEUE = "credport-dev-s3-events"
MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})


@pytest.fixture
def client(services: Services) -> Iterator[Client]:
    with Client(credport_app.app, stage_name="dev") as test_client:
        yield test_client


def _answer_403(*, deny_all: bool) -> Callable[..., None]:
    def hook(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code")
        if code in MISSING or (deny_all and http_response.status_code < 300):
            # What S3 answers a caller without s3:ListBucket (or without s3:GetObject at all): 403, no detail.
            http_response.status_code = 403
            parsed.clear()
            parsed.update(
                Error={"Code": "AccessDenied", "Message": "Access Denied"}, ResponseMetadata={"HTTPStatusCode": 403}
            )

    return hook


def _hook_app_s3(hook: Callable[..., None]) -> Callable[[], None]:
    s3 = app_services().aws.factory.client("s3")  # the very client the app's handlers use
    for operation in ("GetObject", "HeadObject"):
        s3.meta.events.register(f"after-call.s3.{operation}", hook)

    def remove() -> None:
        for operation in ("GetObject", "HeadObject"):
            s3.meta.events.unregister(f"after-call.s3.{operation}", hook)

    return remove


@pytest.fixture(params=["404", "403 as on AWS"])
def world(request: pytest.FixtureRequest, client: Client) -> Iterator[str]:
    """How S3 answers a read of a missing key: the embedded AWS's 404, or AWS's 403 (no s3:ListBucket)."""
    remove = _hook_app_s3(_answer_403(deny_all=False)) if request.param != "404" else (lambda: None)
    yield str(request.param)
    remove()


def deliver(client: Client, body: str) -> None:
    """One SQS message to the function, as the event source mapping hands it over."""
    client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([body], queue_name=QUEUE))


def bucket() -> str:
    return get_settings().resources.transfer_bucket


def keys(aws: AwsServices, prefix: str) -> list[str]:
    return sorted(aws.s3.list_keys(bucket(), prefix))


def drop_sealed(aws: AwsServices, name: str, document: dict[str, str]) -> str:
    recipient = public_key_from_pem(app_services().import_keys.current().public_pem())
    aws.s3.put(bucket(), f"inbox/{name}", seal(recipient, json.dumps(document).encode()).encode())
    (body,) = queued_notifications(QUEUE)
    return body


def test_an_imported_inbox_file_redelivered_is_done(world: str, client: Client, aws: AwsServices) -> None:
    body = drop_sealed(aws, "db.jwe", {"secret_name": "credport-dev/imported/db", "value": "v1"})
    deliver(client, body)
    assert keys(aws, "inbox/") == []
    assert keys(aws, "processed/") == ["processed/db.jwe", "processed/db.jwe.receipt.json"]
    deliver(client, body)  # the same message again: the file is gone from inbox/, the event is done
    assert len(aws.secrets.describe("credport-dev/imported/db").versions) == 1


def test_a_quarantined_inbox_file_redelivered_is_done(world: str, client: Client, aws: AwsServices) -> None:
    body = drop_sealed(aws, "bad.jwe", {"secret_name": "credport-dev/session-key", "value": "v"})
    deliver(client, body)
    assert keys(aws, "quarantine/") == ["quarantine/bad.jwe", "quarantine/bad.jwe.error.json"]
    deliver(client, body)


PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_purged_private_key_redelivered_is_done(world: str, client: Client, aws: AwsServices) -> None:
    alarms = aws.factory.client("sqs").create_queue(QueueName="alarms")["QueueUrl"]
    aws.sns.subscribe(get_settings().resources.key_events_topic_arn, protocol="sqs", endpoint=aws.sqs.arn_of(alarms))
    pem = PRIVATE.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    aws.s3.put(bucket(), "clients/oops/public.pem", pem)
    (body,) = queued_notifications(QUEUE)
    deliver(client, body)
    listed = aws.factory.client("s3").list_object_versions(Bucket=bucket(), Prefix="clients/oops/")
    assert not listed.get("Versions")  # purged, every version
    assert not listed.get("DeleteMarkers")
    deliver(client, body)  # the redelivery finds nothing to read, and credport's record says why
    assert len(aws.sqs.receive(alarms, max_messages=10)) == 1  # and it raised no second alarm


def test_an_unreadable_object_never_handled_still_fails_loudly(client: Client, aws: AwsServices) -> None:
    """A genuine permission failure (here: every GetObject denied) is not mistaken for a redelivery."""
    body = drop_sealed(aws, "new.jwe", {"secret_name": "credport-dev/imported/new", "value": "v1"})
    remove = _hook_app_s3(_answer_403(deny_all=True))
    try:
        with pytest.raises(AwsRejected) as raised:
            deliver(client, body)
    finally:
        remove()
    assert raised.value.aws_code == "AccessDenied"  # so SQS retries it, then dead-letters it
    assert keys(aws, "inbox/") == ["inbox/new.jwe"]  # untouched, for the retry


def test_a_redelivery_of_a_version_credport_never_handled_fails_loudly(client: Client, aws: AwsServices) -> None:
    """Another version of a key credport did handle is no excuse: the record is per version."""
    body = drop_sealed(aws, "db.jwe", {"secret_name": "credport-dev/imported/db", "value": "v1"})
    deliver(client, body)
    document = json.loads(body)
    document["Records"][0]["s3"]["object"]["versionId"] = "a-version-credport-never-read"
    remove = _hook_app_s3(_answer_403(deny_all=False))
    try:
        with pytest.raises(AwsRejected):
            deliver(client, json.dumps(document))
    finally:
        remove()
