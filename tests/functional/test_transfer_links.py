"""A sent secret's presigned link lives exactly as long as it says, and can read nothing but sealed outbox files.

A presigned URL stops working when the credentials that signed it expire, even before its X-Amz-Expires (S3 User
Guide, "Sharing objects with presigned URLs"), and Lambda states no expiry for a function's credentials. So each
link is signed by a session of the deployment's link-signer role made for it (chalicelib/transfer/links.py). With
the embedded AWS enforcing IAM (local.iam: presigned links checked by signature, expiry and session), the links are
fetched for real.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.sts.models import sts_backends

from chalicelib import transfer
from chalicelib.aws import AwsServices
from chalicelib.config import ROLE_CHAINING_MAX_SECONDS, get_settings, reset_settings
from chalicelib.transfer.links import SESSION_SLACK_SECONDS
from local.iam import enforce
from local.provision import Provisioned
from tests.conftest import ACCOUNT_ID, app_services, install_services

PUBLIC_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)


@pytest.fixture
def ttl(request: pytest.FixtureRequest) -> int:
    return int(getattr(request, "param", 1800))


@pytest.fixture
def sender(provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch, ttl: int) -> transfer.Sender:
    monkeypatch.setenv("CREDPORT_TRANSFER_LINK_TTL", str(ttl))
    reset_settings()
    return install_services().sender


def register(aws: AwsServices, client_id: str) -> tuple[transfer.SendReport, dict[str, Any]]:
    """A client registers its key; the first send's report and its notification."""
    sqs = aws.factory.client("sqs")
    url = sqs.create_queue(QueueName=f"notify-{client_id}")["QueueUrl"]
    aws.sns.subscribe(get_settings().resources.notify_topic_arn, protocol="sqs", endpoint=aws.sqs.arn_of(url))
    bucket, key = get_settings().resources.transfer_bucket, f"clients/{client_id}/public.pem"
    aws.s3.put(bucket, key, PUBLIC_PEM)
    report = app_services().sender.on_client_object(key, "etag-1")
    assert report is not None
    (message,) = aws.sqs.receive(url, max_messages=10)
    return report, json.loads(json.loads(message.body)["Message"])


def signed(url: str) -> tuple[str, int, int]:
    """The link's signing access key, when it was signed, and its X-Amz-Expires."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    return query["X-Amz-Credential"].split("/")[0], at, int(query["X-Amz-Expires"])


def session_of(access_key: str) -> Any:
    (session,) = [s for s in sts_backends[ACCOUNT_ID]["aws"].assumed_roles if s.access_key_id == access_key]
    return session


@pytest.mark.parametrize("ttl", [1800, 120, 3600], indirect=True)
def test_each_link_is_signed_by_a_session_of_the_link_signer_made_for_it(
    sender: transfer.Sender, aws: AwsServices, ttl: int
) -> None:
    report, note = register(aws, "client-one")
    key, at, expires = signed(note["link"])
    session = session_of(key)
    assert session.role_arn == get_settings().resources.link_signer_role_arn
    assert session.session_name == "credport-transfer-link"
    ends = session.expiration.replace(tzinfo=dt.UTC).timestamp()
    if ttl + SESSION_SLACK_SECONDS <= ROLE_CHAINING_MAX_SECONDS:
        assert expires == ttl  # the link's own expiry: the configured lifetime ...
    else:  # ... but role chaining's hour also bounds the session: the link ends a moment before it, never after
        assert ttl - 5 <= expires <= ttl
    assert note["link_expires_at"] == report.link_expires_at == at + expires  # ... advertised as it is
    assert at + expires <= ends  # the session outlives the link ...
    assert ends <= at + min(ROLE_CHAINING_MAX_SECONDS, max(ttl + SESSION_SLACK_SECONDS, 900)) + 5  # ... not by much


def test_the_link_works_until_its_session_ends_and_reads_nothing_but_its_file(
    sender: transfer.Sender, aws: AwsServices
) -> None:
    _, note = register(aws, "client-two")
    with enforce.enforcing():
        fetched = requests.get(note["link"], timeout=5)
        assert fetched.status_code == 200
        assert fetched.content.count(b".") == 4  # the sealed compact JWE, nothing else
        elsewhere = note["link"].replace("/outbox/", "/inbox/")
        assert requests.get(elsewhere, timeout=5).status_code == 403  # its signature covers its path
        session = session_of(signed(note["link"])[0])
        session.expiration = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
        dead = requests.get(note["link"], timeout=5)
    assert dead.status_code == 400
    assert b"<Code>ExpiredToken</Code>" in dead.content
