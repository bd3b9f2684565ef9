"""Presigned transfer links that live exactly as long as they say.

A presigned URL stops working when the credentials that signed it expire, even before its X-Amz-Expires (S3 User
Guide, "Sharing objects with presigned URLs"), and Lambda hands a function its role credentials with no stated
expiry. So a link is not signed with the function's credentials: each is signed with a fresh session of the
deployment's link-signer role (template.yaml ``LinkSignerRole``: it may only read ``outbox/``), assumed for at least
the link's lifetime. The link's X-Amz-Expires and its advertised ``expires_at`` are the same moment, never after the
session's end. The session is assumed with the function's own role credentials (role chaining), which AWS caps at an
hour: hence CREDPORT_TRANSFER_LINK_TTL <= 3600.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chalicelib.aws.errors import AwsUnavailable
from chalicelib.aws.s3 import ObjectStore, PresignedLink
from chalicelib.aws.sts import Sts, TemporaryCredentials

__all__ = ["MIN_SESSION_SECONDS", "LinkSigner"]

MIN_SESSION_SECONDS = 900  # STS's shortest DurationSeconds
SESSION_NAME = "credport-transfer-link"


class LinkSigner:
    def __init__(
        self,
        sts: Sts,
        role_arn: str,
        store_as: Callable[[TemporaryCredentials], ObjectStore],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sts, self._role_arn, self._store_as, self._clock = sts, role_arn, store_as, clock

    def link(self, bucket: str, key: str, *, lifetime: int) -> PresignedLink:
        """A GET link to ``bucket/key`` that works for ``lifetime`` seconds and not a moment longer."""
        session = self._sts.assume_role(
            self._role_arn, SESSION_NAME, duration_seconds=max(MIN_SESSION_SECONDS, lifetime)
        )
        # The session's client is made first (tens of milliseconds): the clock is read just before botocore stamps
        # X-Amz-Date, so both fall in the same second and the advertised expiry is the link's own.
        store = self._store_as(session)
        issued = int(self._clock())  # <= the X-Amz-Date botocore stamps a moment later
        expires_at = min(issued + lifetime, int(session.expiration.timestamp()))
        if expires_at <= issued:  # a session shorter than asked: never sign a link that is already dead
            raise AwsUnavailable("sts", "AssumeRole", "SessionTooShort", retry_after=5)
        url = store.presign_get(bucket, key, expires_in=expires_at - issued)
        return PresignedLink(url, expires_at)
