"""S3 notifications with ``versionId`` as S3 sends them (local.s3_notifications, installed for every test by the
``moto`` fixture and by the local stack); kept as a context manager for tests that state they rely on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from local import s3_notifications

__all__ = ["unversioned_notifications", "versioned_notifications"]


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
