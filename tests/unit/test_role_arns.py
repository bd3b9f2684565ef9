"""The role-ARN resolver on its own: which principals it reads (same-account roles with GetRole, same-account users
with GetUser), its cache (bounded, expiring), its refusals."""

from __future__ import annotations

from typing import cast

import pytest

from chalicelib.aws import AwsNotFound, AwsRejected, AwsUnavailable, Iam
from chalicelib.aws.iam import RoleInfo, UserInfo
from chalicelib.errors import CredportError
from chalicelib.identity import RequestIdentity
from chalicelib.principal import Principal, principal_of
from chalicelib.role_arns import RoleArns, RoleNotConfirmed
from tests.support import Clock

ACCOUNT = "123456789012"


class FakeIam:
    """GetRole over a dict of name -> (path, role id), GetUser over ``users`` (name -> (path, user id, tags));
    ``failure`` raised instead when set."""

    def __init__(
        self, roles: dict[str, tuple[str, str]], users: dict[str, tuple[str, str, dict[str, str]]] | None = None
    ) -> None:
        self.roles = roles
        self.users = users or {}
        self.calls: list[str] = []
        self.failure: CredportError | None = None

    def get_user(self, name: str) -> UserInfo:
        self.calls.append(f"user:{name}")
        if self.failure is not None:
            raise self.failure
        if name not in self.users:
            raise AwsNotFound("iam", "GetUser", "NoSuchEntity")
        path, user_id, tags = self.users[name]
        return UserInfo(arn=f"arn:aws:iam::{ACCOUNT}:user{path}{name}", user_id=user_id, tags=tags)

    def get_role(self, name: str) -> RoleInfo:
        self.calls.append(name)
        if self.failure is not None:
            raise self.failure
        if name not in self.roles:
            raise AwsNotFound("iam", "GetRole", "NoSuchEntity")
        path, role_id = self.roles[name]
        return RoleInfo(arn=f"arn:aws:iam::{ACCOUNT}:role{path}{name}", role_id=role_id)


def session(role: str, role_id: str, *, account: str = ACCOUNT) -> Principal:
    identity = RequestIdentity(
        user_arn=f"arn:aws:sts::{account}:assumed-role/{role}/s1",
        account_id=account,
        caller=f"{role_id}:s1",
        user=f"{role_id}:s1",
        access_key="ASIAEXAMPLE",
        source_ip="203.0.113.7",
    )
    return principal_of(identity)


def resolver(iam: FakeIam, clock: Clock | None = None, **kwargs: int) -> RoleArns:
    return RoleArns(lambda: cast(Iam, iam), ACCOUNT, clock=clock or Clock(0), **kwargs)


def test_a_role_with_a_path_gets_its_real_arn_once() -> None:
    iam = FakeIam({"reader": ("/team/a/", "AROAREADER")})
    roles = resolver(iam)
    for _ in range(3):
        assert roles.resolve(session("reader", "AROAREADER")).subject == f"arn:aws:iam::{ACCOUNT}:role/team/a/reader"
    assert iam.calls == ["reader"]  # cached after the first


def test_federated_users_and_other_accounts_are_never_looked_up() -> None:
    iam = FakeIam({})
    roles = resolver(iam)
    other = session("reader", "AROAOTHER", account="210987654321")
    assert roles.resolve(other) == other  # its path is unknowable with credport's role: sub stays role/NAME
    other_user = principal_of(
        RequestIdentity("arn:aws:iam::210987654321:user/bob", "210987654321", "AIDABOB", "AIDABOB", "AKIA", "ip")
    )
    federated = principal_of(
        RequestIdentity(f"arn:aws:sts::{ACCOUNT}:federated-user/carol", ACCOUNT, f"{ACCOUNT}:carol", "-", "ASIA", "ip")
    )
    for principal in (other_user, federated):
        assert roles.resolve(principal) == principal
        assert principal.tags is None  # IAM is per account: credport cannot read them
    assert iam.calls == []


def test_a_user_of_the_account_keeps_its_arn_and_gets_its_tags_once() -> None:
    iam = FakeIam({}, {"alice": ("/ops/", "AIDAALICE", {"team": "platform"})})
    roles = resolver(iam)
    user = principal_of(
        RequestIdentity(f"arn:aws:iam::{ACCOUNT}:user/ops/alice", ACCOUNT, "AIDAALICE", "AIDAALICE", "AKIA", "ip")
    )
    for _ in range(2):
        resolved = roles.resolve(user)
        assert (resolved.subject, resolved.tags) == (user.subject, {"team": "platform"})
    assert iam.calls == ["user:alice"]


@pytest.mark.parametrize(
    "failure",
    [
        AwsUnavailable("iam", "GetRole", "Throttling", retry_after=2),
        AwsRejected("iam", "GetRole", "AccessDenied"),
        AwsNotFound("iam", "GetRole", "NoSuchEntity"),  # IAM is eventually consistent: a role just created
    ],
    ids=["throttled", "denied", "not-yet-visible"],
)
def test_a_failed_lookup_is_a_retryable_503_and_is_not_cached(failure: CredportError) -> None:
    iam = FakeIam({"reader": ("/", "AROAREADER")})
    iam.failure = failure
    roles = resolver(iam)
    with pytest.raises(RoleNotConfirmed) as refused:
        roles.resolve(session("reader", "AROAREADER"))
    assert refused.value.status == 503
    assert refused.value.headers["Retry-After"] == str(getattr(failure, "retry_after", 5))
    iam.failure = None
    assert roles.resolve(session("reader", "AROAREADER")).subject == f"arn:aws:iam::{ACCOUNT}:role/reader"


def test_a_role_re_created_under_the_same_name_is_not_vouched_for() -> None:
    """GetRole answers for today's role of that name; an older session of a deleted one gets no token."""
    iam = FakeIam({"reader": ("/new/", "AROANEWREADER")})
    with pytest.raises(RoleNotConfirmed):
        resolver(iam).resolve(session("reader", "AROAOLDREADER"))


def test_the_cache_is_bounded_least_recently_used_first_out() -> None:
    iam = FakeIam({name: ("/", f"AROA{name.upper()}") for name in ("a", "b", "c")})
    roles = resolver(iam, max_entries=2)
    for name in ("a", "b", "a", "c"):  # c evicts b, the least recently used
        roles.resolve(session(name, f"AROA{name.upper()}"))
    roles.resolve(session("a", "AROAA"))
    roles.resolve(session("b", "AROAB"))
    assert iam.calls == ["a", "b", "c", "b"]


def test_entries_expire() -> None:
    iam = FakeIam({"reader": ("/", "AROAREADER")})
    clock = Clock(1000)
    roles = resolver(iam, clock, ttl=60)
    roles.resolve(session("reader", "AROAREADER"))
    clock.advance(59)
    roles.resolve(session("reader", "AROAREADER"))
    clock.advance(1)
    roles.resolve(session("reader", "AROAREADER"))
    assert iam.calls == ["reader", "reader"]
