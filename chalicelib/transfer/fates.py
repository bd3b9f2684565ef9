"""What credport did with each object version an S3 event names: imported, quarantined or purged.

SQS delivers at least once, so an event can come back after its object was moved out of ``inbox/`` or
``clients/``, or purged. Reading a missing key is ambiguous on AWS: GetObject and HeadObject answer 404 only to a
caller allowed ``s3:ListBucket`` on the bucket, and 403 AccessDenied to anyone else (S3 API Reference,
GetObject, "Permissions"). credport's role has no such grant on the transfer bucket (an unconditional one would
let it list every prefix; one limited by ``s3:prefix`` does not count, since a GetObject request carries no
prefix), so a 403 means "gone" or "denied", and only credport's own record can tell which.

So each handler records the fate of the version it handled (and a purge, of every version it removes), in the
state table, *before* it moves or purges the object (a crash in between leaves the object in place, and the next
delivery handles it again). An event whose object cannot be read is done when its version has a fate; a 403
without one is raised, so a genuine permission failure still fails loudly (retried, then dead-lettered). A 404 (the
latest object's NoSuchKey, or NoSuchVersion for the event's own version) is unambiguous: it is gone, there is
nothing to do (the behaviour before fates were recorded). DynamoDB, not S3, holds the
record because a missing S3 receipt would read 403 just the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsNotFound, AwsRejected
from chalicelib.observability import MetricUnit, logger, metrics

__all__ = [
    "IMPORTED",
    "PURGED",
    "QUARANTINED",
    "RETENTION_SECONDS",
    "TOO_LARGE",
    "ObjectFates",
    "object_version",
    "settle_unreadable",
]

IMPORTED, QUARANTINED, PURGED = "imported", "quarantined", "purged"
TOO_LARGE = "too_large"  # the reason recorded for a file refused unread: larger than its handler inspects
# Longer than an event can wait: 4 days in the queue, then 14 in the dead-letter queue before a redrive
# (template.yaml), and as long as S3 keeps a noncurrent version (ExpireOldVersions: 30 days).
RETENTION_SECONDS = 30 * 86400
# How S3 says "missing or not yours" to a caller without s3:ListBucket: GetObject's code, and HeadObject's bare
# status (a HEAD response has no body to carry a code).
_AMBIGUOUS_CODES = frozenset({"AccessDenied", "403"})


def object_version(version_id: str | None, etag: str | None) -> str | None:
    """The id of one version of an object, as an event and a read both know it: the version id on a versioned
    bucket (the transfer bucket is), else the ETag."""
    if version_id:
        return f"v:{version_id}"
    return f"etag:{etag}" if etag else None


class ObjectFates:
    def __init__(self, table: ItemTable, *, clock: Callable[[], float] = time.time) -> None:
        self._table, self._clock = table, clock

    def record(self, key: str, versions: Iterable[str | None], fate: str) -> None:
        """Remember what happened to these versions of ``key`` (each an :func:`object_version`)."""
        now = int(self._clock())
        for version in dict.fromkeys(v for v in versions if v):
            self._table.put(
                {
                    "pk": f"transfer-object#{key}",
                    "sk": version,
                    "fate": fate,
                    "at": now,
                    "expires_at": now + RETENTION_SECONDS,
                }
            )

    def fate(self, key: str, version: str | None) -> str | None:
        if not version:
            return None
        item = self._table.get({"pk": f"transfer-object#{key}", "sk": version})
        return str(item["fate"]) if item else None


def settle_unreadable(
    fates: ObjectFates | None, key: str, version: str | None, error: AwsNotFound | AwsRejected
) -> str:
    """An event's object (or its very version, read by version id) could not be read: why the event is done, or
    ``error`` raised again. A 404 (NoSuchKey, NoSuchVersion) is unambiguous; a 403 settles only on a fate
    recorded by credport (each purge records one for every version it removes, before removing it)."""
    if isinstance(error, AwsNotFound):
        logger.info("s3 object already gone", extra={"key": key})
        return "gone"
    fate = fates.fate(key, version) if fates is not None and error.aws_code in _AMBIGUOUS_CODES else None
    if fate is None:
        # Missing or denied, and credport never handled this version: a permission problem until shown
        # otherwise. Raised, so the message is retried and finally dead-lettered (and the alarm sees it).
        metrics.add_metric(name="S3ObjectsUnreadable", unit=MetricUnit.Count, value=1)
        logger.error("s3 object unreadable and not handled before", extra={"key": key, "code": error.aws_code})
        raise error
    logger.info("s3 object already handled", extra={"key": key, "fate": fate})
    return fate
