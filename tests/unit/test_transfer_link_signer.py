"""LinkSigner at the edges of a second: the advertised expiry is the signed link's own and never outlives its session.

The clock is read, then botocore stamps X-Amz-Date a moment later, possibly in the next second; STS ends the session
``duration`` seconds after AssumeRole, which ran a moment before the clock was read. These fakes put each of those
moments where a loaded machine can put them.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.aws.errors import AwsUnavailable
from chalicelib.aws.sts import TemporaryCredentials
from chalicelib.config import ROLE_CHAINING_MAX_SECONDS
from chalicelib.transfer.links import MIN_SESSION_SECONDS, SESSION_SLACK_SECONDS, LinkSigner

T0 = 1_800_000_000


class FakeSts:
    def __init__(self, assumed_at: float, shortened_by: int = 0) -> None:
        self.assumed_at, self.shortened_by, self.durations = assumed_at, shortened_by, list[int]()

    def assume_role(self, role_arn: str, session_name: str, *, duration_seconds: int, **_: Any) -> TemporaryCredentials:
        self.durations.append(duration_seconds)
        ends = self.assumed_at + duration_seconds - self.shortened_by
        return TemporaryCredentials(
            access_key_id="ASIAFAKE",
            expiration=dt.datetime.fromtimestamp(ends, dt.UTC),
            assumed_role_arn=role_arn,
            secret_access_key="s",
            session_token="t",
        )


class FakeStore:
    """Stamps X-Amz-Date at ``signs_at``, as botocore does a moment after the signer read its clock."""

    def __init__(self, signs_at: float) -> None:
        self.signs_at = signs_at

    def presign_get(self, bucket: str, key: str, *, expires_in: int) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.signs_at))
        return f"https://{bucket}.s3.amazonaws.com/{key}?X-Amz-Date={stamp}&X-Amz-Expires={expires_in}"


def link(
    lifetime: int, *, assumed_at: float, read_at: float, signs_at: float, shortened_by: int = 0
) -> tuple[int, int, int, int, int]:
    sts = FakeSts(assumed_at, shortened_by)
    signer = LinkSigner(sts, "arn:aws:iam::1:role/signer", lambda _: FakeStore(signs_at), clock=lambda: read_at)  # type: ignore[arg-type, return-value]
    made = signer.link("b", "outbox/k", lifetime=lifetime)
    query = {k: v[0] for k, v in parse_qs(urlsplit(made.url).query).items()}
    signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    session_ends = int(sts.assumed_at + sts.durations[0] - shortened_by)
    return made.expires_at, signed_at, int(query["X-Amz-Expires"]), session_ends, sts.durations[0]


EDGES = [  # (assumed, clock read, X-Amz-Date): same second, read and signed across a boundary, all three across
    (T0 + 0.1, T0 + 0.2, T0 + 0.3),
    (T0 + 0.9, T0 + 0.999, T0 + 1.001),
    (T0 + 0.999, T0 + 1.2, T0 + 2.01),
    (T0 + 0.25, T0 + 0.8, T0 + 2.1),  # a pause of more than a second between reading the clock and signing
]


@pytest.mark.parametrize(("assumed", "read", "signs"), EDGES)
@pytest.mark.parametrize("lifetime", [60, 120, 899, 900, 1800, 3540, 3541, 3599, 3600])
def test_the_advertised_expiry_is_the_links_own_and_never_after_its_session(
    lifetime: int, assumed: float, read: float, signs: float
) -> None:
    expires_at, signed_at, expires_in, session_ends, duration = link(
        lifetime, assumed_at=assumed, read_at=read, signs_at=signs
    )
    assert expires_at == signed_at + expires_in  # exactly what the link says
    assert expires_at <= session_ends  # and the session still signs for it when it ends
    assert duration == min(ROLE_CHAINING_MAX_SECONDS, max(MIN_SESSION_SECONDS, lifetime + SESSION_SLACK_SECONDS))
    if lifetime + SESSION_SLACK_SECONDS <= ROLE_CHAINING_MAX_SECONDS:
        assert expires_in == lifetime  # the slack absorbs the seconds between AssumeRole and signing
    else:  # role chaining's hour bounds the session: the link may end a moment early, never late
        assert lifetime - 4 <= expires_in <= lifetime


def test_a_session_shorter_than_asked_bounds_the_link() -> None:
    expires_at, signed_at, expires_in, session_ends, _ = link(
        1800, assumed_at=T0, read_at=T0 + 0.5, signs_at=T0 + 1.5, shortened_by=1500
    )
    assert expires_in < 1800
    assert signed_at + expires_in == expires_at <= session_ends


@pytest.mark.parametrize("signs", [T0 + 1.5, T0 + 2.5, T0 + 4.0])
def test_a_short_session_and_a_slow_signature_never_give_a_link_past_the_session(signs: float) -> None:
    expires_at, signed_at, expires_in, session_ends, _ = link(
        1800, assumed_at=T0, read_at=T0 + 0.5, signs_at=signs, shortened_by=1500
    )
    assert signed_at + expires_in == expires_at <= session_ends


class UnsignedStore(FakeStore):
    def presign_get(self, bucket: str, key: str, *, expires_in: int) -> str:
        return super().presign_get(bucket, key, expires_in=expires_in).replace("X-Amz-Date", "Expires")


def test_a_link_without_its_signing_time_is_a_plain_error_not_a_retry() -> None:
    signer = LinkSigner(FakeSts(T0), "arn:aws:iam::1:role/signer", lambda _: UnsignedStore(T0), clock=lambda: T0)  # type: ignore[arg-type, return-value]
    with pytest.raises(RuntimeError, match="without one SigV4 X-Amz-Date"):
        signer.link("b", "outbox/k", lifetime=600)


@pytest.mark.parametrize("lifetime", [0, -1])
def test_a_lifetime_that_is_not_positive_is_refused_before_any_session(lifetime: int) -> None:
    sts = FakeSts(T0)
    signer = LinkSigner(sts, "arn:aws:iam::1:role/signer", lambda _: FakeStore(T0), clock=lambda: T0)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="positive number of seconds"):
        signer.link("b", "outbox/k", lifetime=lifetime)
    assert sts.durations == []


def test_a_session_already_over_signs_nothing() -> None:
    with pytest.raises(AwsUnavailable) as refused:
        link(1800, assumed_at=T0, read_at=T0 + 0.5, signs_at=T0 + 0.6, shortened_by=1860)
    assert refused.value.aws_code == "SessionTooShort"
