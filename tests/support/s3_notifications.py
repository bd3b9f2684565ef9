"""S3 notifications with ``versionId`` as S3 sends them (local.s3_notifications, installed for every test by the
``moto`` fixture and by the local stack); kept as a context manager for tests that state they rely on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from local import s3_notifications

__all__ = ["queued_notifications", "unversioned_notifications", "versioned_notifications"]


@contextmanager
def versioned_notifications() -> Iterator[None]:
    s3_notifications.install()
    yield


@contextmanager
def unversioned_notifications() -> Iterator[None]:
    """Notifications without ``versionId``, as S3 sends them for a bucket that is not versioned."""
    s3_notifications.uninstall()
    try:
        yield
    finally:
        s3_notifications.install()


def queued_notifications(queue: str = "credport-dev-s3-events") -> list[str]:
    """The S3 notifications waiting in ``queue`` (moto delivers them as S3 does), taken off it."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if "Records" in json.loads(message["Body"]):  # not the s3:TestEvent
                bodies.append(message["Body"])
    return bodies
