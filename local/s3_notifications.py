"""S3 event notifications as AWS sends them for a versioned bucket: with the object's ``versionId``.

moto leaves ``versionId`` out of every notification; S3 puts the new version's id in each ObjectCreated record of a
versioned bucket (S3 User Guide, "Event message structure": ``versionId``, "object version if bucket is
versioning-enabled, otherwise null"). credport's handlers read exactly the version an event names (a private key
replaced before its event is handled is still found), so the local stack and the tests must send what S3 sends.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.s3 import notifications

__all__ = ["install", "installed", "uninstall"]

_lock = threading.Lock()
_original: Any = None


def _with_version(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, list[dict[str, Any]]]:
    event: dict[str, list[dict[str, Any]]] = _original(event_name, bucket, key, notification_id)
    if bucket.is_versioned and getattr(key, "_version_id", None):
        for record in event["Records"]:
            record["s3"]["object"]["versionId"] = key.version_id
    return event


def install() -> None:
    """Make moto's S3 notifications carry ``versionId`` as S3's do (idempotent; moto's module is process-wide)."""
    global _original  # noqa: PLW0603
    with _lock:
        if _original is None:
            _original = notifications._get_s3_event
            notifications._get_s3_event = _with_version


def uninstall() -> None:
    """Give moto its own notifications back (a test that must see moto's stock behaviour)."""
    global _original  # noqa: PLW0603
    with _lock:
        if _original is not None:
            notifications._get_s3_event = _original
            _original = None


def installed() -> bool:
    return _original is not None
