"""A sent secret's presigned link is never advertised past the moment it dies.

A presigned URL stops working when the credentials that signed it expire, even before its X-Amz-Expires (S3 User
Guide, "Sharing objects with presigned URLs"). botocore knows the expiry of credentials from STS, a container or
instance profile, or ``AWS_CREDENTIAL_EXPIRATION`` (its environment provider turns that variable into refreshable
credentials); these tests give the app's clients credentials that expire soon that way. moto accepts any
signature, so what is checked is what the link and the notification say: X-Amz-Date + X-Amz-Expires and
``link_expires_at``, against the credentials' expiry.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib import transfer
from chalicelib.aws import AwsServices, AwsUnavailable, get_aws, reset_aws
from chalicelib.config import get_settings
from local.provision import Provisioned

TTL = 1800
PUBLIC_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)


@pytest.fixture
def sender(provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> Iterator[transfer.Sender]:
    monkeypatch.setenv("CREDPORT_TRANSFER_LINK_TTL", str(TTL))
    transfer.get_sender.cache_clear()
    yield transfer.get_sender()
    transfer.get_sender.cache_clear()


def credentials_expiring_in(seconds: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """The app's next clients sign with credentials botocore knows expire then (epoch seconds, returned)."""
    expiry = int(time.time()) + seconds
    stamp = datetime.fromtimestamp(expiry, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", stamp)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "temporary-session-token")
    reset_aws()
    transfer.get_sender.cache_clear()
    return expiry


def link_dies_at(url: str) -> int:
    """When the link's own signature expires: X-Amz-Date + X-Amz-Expires."""
    query = parse_qs(urlsplit(url).query)
    signed = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    return signed + int(query["X-Amz-Expires"][0])


def notifications(services: AwsServices) -> Any:
    url = services.factory.client("sqs").create_queue(QueueName="notify-reader")["QueueUrl"]
    services.sns.subscribe(get_settings().resources.notify_topic_arn, protocol="sqs", endpoint=services.sqs.arn_of(url))
    return lambda: [json.loads(json.loads(m.body)["Message"]) for m in services.sqs.receive(url, max_messages=10)]


def register(services: AwsServices, client_id: str) -> transfer.SendReport:
    bucket, key = get_settings().resources.transfer_bucket, f"clients/{client_id}/public.pem"
    services.s3.put(bucket, key, PUBLIC_PEM)
    report = transfer.get_sender().on_client_object(key, "etag-1")
    assert report is not None
    return report


def test_a_link_is_cut_at_the_expiry_of_the_credentials_that_sign_it(
    sender: transfer.Sender, services: AwsServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    expiry = credentials_expiring_in(20 * 60, monkeypatch)  # sooner than TTL (30 min)
    read = notifications(services)
    report = register(services, "client-one")
    (note,) = read()
    assert note["link_expires_at"] == report.link_expires_at == expiry  # not now + 30 min
    assert link_dies_at(note["link"]) <= expiry  # and the link itself claims no more than its credentials


def test_a_link_lives_its_full_lifetime_when_the_credentials_outlive_it(
    sender: transfer.Sender, services: AwsServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials_expiring_in(3 * 3600, monkeypatch)
    before = int(time.time())
    report = register(services, "client-two")
    assert before + TTL <= report.link_expires_at <= int(time.time()) + TTL


def test_long_term_credentials_sign_for_the_configured_lifetime(sender: transfer.Sender, services: AwsServices) -> None:
    """moto's test keys carry no session token and no expiry, like an IAM user's."""
    read = notifications(services)
    before = int(time.time())
    report = register(services, "client-three")
    (note,) = read()
    assert before + TTL <= note["link_expires_at"] == report.link_expires_at <= link_dies_at(note["link"])


def test_credentials_at_their_very_end_sign_no_link(provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials within a minute of their end (botocore refreshes them earlier, unless it cannot): a retryable
    503 rather than a link that is dead on arrival."""
    credentials_expiring_in(30, monkeypatch)
    with pytest.raises(AwsUnavailable):
        get_aws().s3.presign_link(get_settings().resources.transfer_bucket, "outbox/x.jwe", lifetime=TTL)
