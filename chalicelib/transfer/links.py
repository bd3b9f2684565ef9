"""Presigned transfer links that live exactly as long as they say.

A presigned URL stops working when the credentials that signed it expire, even before its X-Amz-Expires (S3 User
Guide, "Sharing objects with presigned URLs"), and Lambda hands a function its role credentials with no stated
expiry. So a link is not signed with the function's credentials: each is signed with a fresh session of the
deployment's link-signer role (template.yaml ``LinkSignerRole``: it may only read ``outbox/``), assumed for a
minute more than the link's lifetime. The link's X-Amz-Date plus X-Amz-Expires and its advertised ``expires_at`` are
the same moment, never after the session's end. The session is assumed with the function's own role credentials (role
chaining), which AWS caps at an hour: hence CREDPORT_TRANSFER_LINK_TTL <= 3600, and a link of more than 3540 s ends as
many seconds early as AssumeRole took, and one more (its advertised expiry says so).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from chalicelib.aws.errors import AwsUnavailable
from chalicelib.aws.s3 import ObjectStore, PresignedLink
from chalicelib.aws.sts import Sts, TemporaryCredentials
from chalicelib.config import ROLE_CHAINING_MAX_SECONDS

__all__ = ["MIN_SESSION_SECONDS", "SESSION_SLACK_SECONDS", "LinkSigner"]

MIN_SESSION_SECONDS = 900  # STS's shortest DurationSeconds
# The session is asked for this much longer than the link, so the seconds between AssumeRole and signing never clip
# the link (up to role chaining's one-hour cap, where only the session's own end can bound it).
SESSION_SLACK_SECONDS = 60
SESSION_NAME = "credport-transfer-link"
_SIGNING_ATTEMPTS = 3


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
        if lifetime <= 0:
            raise ValueError(f"a link's lifetime is a positive number of seconds, not {lifetime}")
        duration = min(ROLE_CHAINING_MAX_SECONDS, max(MIN_SESSION_SECONDS, lifetime + SESSION_SLACK_SECONDS))
        session = self._sts.assume_role(self._role_arn, SESSION_NAME, duration_seconds=duration)
        store = self._store_as(session)
        session_ends = int(session.expiration.timestamp())
        # botocore stamps X-Amz-Date a moment after the clock is read, usually in the same second: one second is kept
        # in hand, and the signed link is checked against its session anyway (a pause can last longer than that).
        # Signing is local and cheap: a link that would outlive its session is signed again, shorter.
        expires_in = min(lifetime, session_ends - int(self._clock()) - 1)
        for _ in range(_SIGNING_ATTEMPTS):
            if expires_in <= 0:  # a session shorter than asked: never sign a link that is already dead
                break
            url = store.presign_get(bucket, key, expires_in=expires_in)
            signed_at = _signed_at(url)
            if signed_at + expires_in <= session_ends:
                return PresignedLink(url, signed_at + expires_in)
            expires_in = session_ends - signed_at - 1
        raise AwsUnavailable("sts", "AssumeRole", "SessionTooShort", retry_after=5)


def _signed_at(url: str) -> int:
    """The moment botocore signed ``url`` (its X-Amz-Date), so the advertised expiry is exactly the link's own."""
    stamps = parse_qs(urlsplit(url).query).get("X-Amz-Date", [])
    try:
        (stamp,) = stamps
        return calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:  # the S3 client is configured for SigV4 (chalicelib.aws.clients): never a link without one
        raise RuntimeError("a presigned link without one SigV4 X-Amz-Date") from None
