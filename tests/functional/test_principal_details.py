"""Principal details for tokens, against the embedded AWS: IAM tags of same-account roles and users
(chalicelib/role_arns.py: GetRole / GetUser, cached) and the caller account's OU path (chalicelib/org_paths.py:
a session of the lookup role, then ListParents up to the root, cached)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import AwsServices, ClientFactory
from chalicelib.aws.organizations import Organizations
from chalicelib.aws.sts import TemporaryCredentials
from chalicelib.config import Settings
from chalicelib.identity import RequestIdentity
from chalicelib.observability import metrics
from chalicelib.org_paths import OrgPaths, org_paths_for
from chalicelib.principal import Principal, principal_of
from chalicelib.role_arns import RoleArns, RoleNotConfirmed, UserNotConfirmed
from tests.support import Clock, existing_role

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
LOOKUP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/credport-dev-org-lookup"


# --- helpers ------------------------------------------------------------------------------------------------------


def existing_user(name: str, user_id: str, *, path: str = "/", tags: dict[str, str] | None = None) -> str:
    """Create IAM user ``name`` in moto with the unique id a test's caller identity carries (``AIDA…``; moto picks a
    random one, AWS its own), and return its ARN."""
    from moto.iam.models import iam_backends

    iam = boto3.client("iam")
    extra = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}
    arn = str(iam.create_user(UserName=name, Path=path, **extra)["User"]["Arn"])
    backend = iam_backends[ACCOUNT]["global"]
    user = backend.get_user(name)
    user.id = user_id
    return arn


def role_session(role: str, role_id: str, *, account: str = ACCOUNT) -> Principal:
    arn = f"arn:aws:sts::{account}:assumed-role/{role}/s1"
    return principal_of(RequestIdentity(arn, account, f"{role_id}:s1", f"{role_id}:s1", "ASIAEXAMPLE", "203.0.113.7"))


def user(arn: str, user_id: str) -> Principal:
    account = arn.split(":")[4]
    return principal_of(RequestIdentity(arn, account, user_id, user_id, "AKIAEXAMPLE", "203.0.113.7"))


def count_calls(client: Any, operation: str) -> list[str]:
    """Every request ``client`` sends for ``service.Operation`` (botocore's before-call event): real calls only."""
    calls: list[str] = []
    client.meta.events.register(f"before-call.{operation}", lambda **_: calls.append(operation))
    return calls


def warnings(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The warnings logged since the last read: each record's message and its extra keys."""
    records = [{**r.__dict__, "message": r.getMessage()} for r in caplog.records if r.levelname == "WARNING"]
    caplog.clear()
    return records


def metric_count(name: str) -> int:
    return len(metrics.metric_set.get(name, {}).get("Value", []))


@pytest.fixture
def iam_calls(factory: ClientFactory) -> list[str]:
    calls: list[str] = []
    client = factory.client("iam")
    client.meta.events.register("before-call.iam.*", lambda model, **_: calls.append(model.name))
    return calls


def resolver(aws: AwsServices, clock: Clock, **kwargs: Any) -> RoleArns:
    return RoleArns(lambda: aws.iam, ACCOUNT, clock=clock, **kwargs)


# --- tags -------------------------------------------------------------------------------------------------------


def test_a_role_gets_its_tags_and_real_arn_from_one_get_role_then_from_the_cache(
    aws: AwsServices, iam_calls: list[str]
) -> None:
    existing_role("reader", "AROAREADER", path="/team/")
    boto3.client("iam").tag_role(
        RoleName="reader", Tags=[{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "prod"}]
    )
    roles = resolver(aws, Clock(0))
    for _ in range(3):
        resolved = roles.resolve(role_session("reader", "AROAREADER"))
        assert resolved.subject == f"arn:aws:iam::{ACCOUNT}:role/team/reader"
        assert resolved.tags == {"team": "data", "env": "prod"}
    assert iam_calls == ["GetRole"]  # tags cost no call of their own, and the cache serves the rest


def test_a_role_without_tags_gets_an_empty_mapping_not_unknown(aws: AwsServices) -> None:
    existing_role("plain", "AROAPLAIN")
    assert resolver(aws, Clock(0)).resolve(role_session("plain", "AROAPLAIN")).tags == {}


def test_each_answer_gets_a_mapping_of_its_own(aws: AwsServices) -> None:
    existing_role("reader", "AROAREADER")
    boto3.client("iam").tag_role(RoleName="reader", Tags=[{"Key": "team", "Value": "data"}])
    roles = resolver(aws, Clock(0))
    first = roles.resolve(role_session("reader", "AROAREADER"))
    cast(dict[str, str], first.tags)["team"] = "changed by a caller"
    assert roles.resolve(role_session("reader", "AROAREADER")).tags == {"team": "data"}


def test_a_user_of_the_account_gets_its_tags_once_and_keeps_its_own_arn(aws: AwsServices, iam_calls: list[str]) -> None:
    arn = existing_user("alice", "AIDAALICE", path="/ops/", tags={"team": "platform"})
    existing_user("bob", "AIDABOB")
    roles = resolver(aws, Clock(0))
    for _ in range(2):
        resolved = roles.resolve(user(arn, "AIDAALICE"))
        assert (resolved.subject, resolved.tags) == (arn, {"team": "platform"})
    assert roles.resolve(user(f"arn:aws:iam::{ACCOUNT}:user/bob", "AIDABOB")).tags == {}
    assert iam_calls == ["GetUser", "GetUser"]  # alice once, bob once


def test_other_accounts_and_federated_users_have_unknown_tags_and_cost_no_call(
    aws: AwsServices, iam_calls: list[str]
) -> None:
    roles = resolver(aws, Clock(0))
    other_role = role_session("reader", "AROAOTHER", account=OTHER_ACCOUNT)
    other_user = user(f"arn:aws:iam::{OTHER_ACCOUNT}:user/alice", "AIDAOTHER")
    federated = principal_of(
        RequestIdentity(
            f"arn:aws:sts::{ACCOUNT}:federated-user/bob", ACCOUNT, f"{ACCOUNT}:bob", f"{ACCOUNT}:bob", "ASIA", "ip"
        )
    )
    for principal in (other_role, other_user, federated):
        resolved = roles.resolve(principal)
        assert resolved == principal
        assert resolved.tags is None
    assert iam_calls == []


def test_entries_expire_after_the_ttl_and_changed_tags_show(aws: AwsServices, iam_calls: list[str]) -> None:
    existing_role("reader", "AROAREADER")
    arn = existing_user("alice", "AIDAALICE", tags={"team": "a"})
    iam = boto3.client("iam")
    iam.tag_role(RoleName="reader", Tags=[{"Key": "team", "Value": "a"}])
    clock = Clock(1000)
    roles = resolver(aws, clock, ttl=3600)
    roles.resolve(role_session("reader", "AROAREADER"))
    roles.resolve(user(arn, "AIDAALICE"))
    iam.tag_role(RoleName="reader", Tags=[{"Key": "team", "Value": "b"}])
    iam.tag_user(UserName="alice", Tags=[{"Key": "team", "Value": "b"}])
    clock.advance(3599)
    assert roles.resolve(role_session("reader", "AROAREADER")).tags == {"team": "a"}  # cached: within the hour
    assert roles.resolve(user(arn, "AIDAALICE")).tags == {"team": "a"}
    clock.advance(1)
    assert roles.resolve(role_session("reader", "AROAREADER")).tags == {"team": "b"}
    assert roles.resolve(user(arn, "AIDAALICE")).tags == {"team": "b"}
    assert iam_calls == ["GetRole", "GetUser", "GetRole", "GetUser"]


def test_the_cache_is_bounded_for_roles_and_users_together(aws: AwsServices, iam_calls: list[str]) -> None:
    existing_role("a", "AROAA")
    arn = existing_user("b", "AIDAB")
    existing_role("c", "AROAC")
    roles = resolver(aws, Clock(0), max_entries=2)
    roles.resolve(role_session("a", "AROAA"))
    roles.resolve(user(arn, "AIDAB"))
    roles.resolve(role_session("c", "AROAC"))  # a, the least recently used, leaves
    roles.resolve(user(arn, "AIDAB"))
    roles.resolve(role_session("a", "AROAA"))
    assert iam_calls == ["GetRole", "GetUser", "GetRole", "GetRole"]


def test_a_user_iam_does_not_show_is_a_retryable_503_and_nothing_is_cached(
    aws: AwsServices, iam_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """IAM is eventually consistent: a user just created may not show yet. No token without the user's tags."""
    arn = f"arn:aws:iam::{ACCOUNT}:user/carol"
    roles = resolver(aws, Clock(0))
    before = metric_count("UserLookupsFailed")
    with pytest.raises(UserNotConfirmed) as refused:
        roles.resolve(user(arn, "AIDACAROL"))
    assert isinstance(refused.value, RoleNotConfirmed)  # answered like a role that cannot be read
    assert (refused.value.status, refused.value.code, refused.value.headers["Retry-After"]) == (
        503,
        "service_unavailable",
        "5",
    )
    assert [(w["message"], w["reason"]) for w in warnings(caplog)] == [("caller user not confirmed", "NoSuchEntity")]
    assert metric_count("UserLookupsFailed") == before + 1
    existing_user("carol", "AIDACAROL", tags={"k": "v"})
    assert roles.resolve(user(arn, "AIDACAROL")).tags == {"k": "v"}  # asked again: the failure was not cached
    assert iam_calls == ["GetUser", "GetUser"]


def test_a_user_re_created_under_the_same_name_does_not_lend_its_tags(
    aws: AwsServices, caplog: pytest.LogCaptureFixture
) -> None:
    arn = existing_user("dave", "AIDANEWDAVE", tags={"team": "new"})
    with pytest.raises(UserNotConfirmed):
        resolver(aws, Clock(0)).resolve(user(arn, "AIDAOLDDAVE"))
    assert [w["reason"] for w in warnings(caplog)] == ["user_id_mismatch"]  # the unique-id check refused


def test_a_throttled_user_lookup_passes_on_iams_retry_after(aws: AwsServices, factory: ClientFactory) -> None:
    arn = existing_user("erin", "AIDAERIN")

    def throttle(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetUser")

    factory.client("iam").meta.events.register("before-call.iam.GetUser", throttle)
    with pytest.raises(UserNotConfirmed) as refused:
        resolver(aws, Clock(0)).resolve(user(arn, "AIDAERIN"))
    assert refused.value.headers["Retry-After"] == "2"


# --- OU paths ---------------------------------------------------------------------------------------------------


class Organization(SimpleNamespace):
    id: str
    root: str
    outer: str  # an OU under the root
    inner: str  # an OU under ``outer``
    member: str  # an account in ``inner``


@pytest.fixture
def organization(moto: None) -> Organization:
    """An organization whose management account is credport's (moto's default caller), with a member account two
    OUs down, and the lookup role in the management account (trusting the account, as AWS's default trust does)."""
    client = boto3.client("organizations")
    org_id = client.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root = client.list_roots()["Roots"][0]["Id"]
    outer = client.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    inner = client.create_organizational_unit(ParentId=outer, Name="prod")["OrganizationalUnit"]["Id"]
    member = client.create_account(Email="member@example.com", AccountName="member")["CreateAccountStatus"]["AccountId"]
    client.move_account(AccountId=member, SourceParentId=root, DestinationParentId=inner)
    lookup_role()
    return Organization(id=org_id, root=root, outer=outer, inner=inner, member=member)


def lookup_role() -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    boto3.client("iam").create_role(RoleName="credport-dev-org-lookup", AssumeRolePolicyDocument=json.dumps(trust))


class Counted(SimpleNamespace):
    assume_role: list[str]
    list_parents: list[str]


@pytest.fixture
def counted(factory: ClientFactory) -> Counted:
    return Counted(assume_role=count_calls(factory.client("sts"), "sts.AssumeRole"), list_parents=[])


def org_paths(
    aws: AwsServices,
    counted: Counted,
    clock: Clock,
    role_arn: str = LOOKUP_ROLE,
    *,
    before_list_parents: Callable[..., None] | None = None,
    **kwargs: Any,
) -> OrgPaths:
    """The lookup as :func:`org_paths_for` builds it, counting each session's ListParents requests."""

    def organizations_as(c: TemporaryCredentials) -> Organizations:
        client = aws.factory.client_as("organizations", c.access_key_id, c.secret_access_key, c.session_token)
        event = "before-call.organizations.ListParents"
        client.meta.events.register(event, lambda **_: counted.list_parents.append(c.access_key_id))
        if before_list_parents is not None:
            client.meta.events.register(event, before_list_parents)
        return Organizations(client)

    return OrgPaths(organizations_as, role_arn, lambda: aws.sts, clock=clock, **kwargs)


def test_the_path_runs_from_the_organization_down_to_the_accounts_ou(
    aws: AwsServices, organization: Organization, counted: Counted
) -> None:
    paths = org_paths(aws, counted, Clock(0))
    o = organization
    assert paths.ou_path(o.member, o.id) == f"{o.id}/{o.root}/{o.outer}/{o.inner}/"
    assert paths.ou_path(ACCOUNT, o.id) == f"{o.id}/{o.root}/"  # right under the root
    assert len(counted.assume_role) == 1  # one session for both
    assert len(counted.list_parents) == 3 + 1  # inner, outer, root; then the root alone
    assert len(set(counted.list_parents)) == 1  # every ListParents signed with the lookup role's session


def test_paths_are_cached_per_account_for_the_ttl(
    aws: AwsServices, organization: Organization, counted: Counted
) -> None:
    o = organization
    clock = Clock(0)
    paths = org_paths(aws, counted, clock, ttl=3600)
    assert paths.ou_path(o.member, o.id) == f"{o.id}/{o.root}/{o.outer}/{o.inner}/"
    boto3.client("organizations").move_account(AccountId=o.member, SourceParentId=o.inner, DestinationParentId=o.outer)
    clock.advance(3599)
    assert paths.ou_path(o.member, o.id) == f"{o.id}/{o.root}/{o.outer}/{o.inner}/"  # the cached answer
    assert len(counted.list_parents) == 3
    clock.advance(1)
    assert paths.ou_path(o.member, o.id) == f"{o.id}/{o.root}/{o.outer}/"  # read again: the move shows
    assert len(counted.list_parents) == 3 + 2
    assert len(counted.assume_role) == 2  # the first session was too old to reuse after an hour


def test_the_cache_is_bounded(aws: AwsServices, organization: Organization, counted: Counted) -> None:
    o = organization
    paths = org_paths(aws, counted, Clock(0), max_entries=1)
    paths.ou_path(o.member, o.id)
    paths.ou_path(ACCOUNT, o.id)  # the member leaves
    paths.ou_path(o.member, o.id)
    assert len(counted.list_parents) == 3 + 1 + 3


def test_a_caller_in_no_organization_has_no_path_and_costs_no_call(
    aws: AwsServices, organization: Organization, counted: Counted, caplog: pytest.LogCaptureFixture
) -> None:
    paths = org_paths(aws, counted, Clock(0))
    assert paths.ou_path(organization.member, None) is None
    assert paths.ou_path("not-an-account", organization.id) is None
    assert counted.assume_role == counted.list_parents == []
    assert warnings(caplog) == []


def test_an_account_outside_the_lookup_roles_organization_has_no_path(
    aws: AwsServices, organization: Organization, counted: Counted, caplog: pytest.LogCaptureFixture
) -> None:
    before = metric_count("OrgPathLookupsFailed")
    assert org_paths(aws, counted, Clock(0)).ou_path(OTHER_ACCOUNT, organization.id) is None
    assert [(w["message"], w["account_id"], w["reason"]) for w in warnings(caplog)] == [
        ("organization path not read", OTHER_ACCOUNT, "AccountNotFoundException")
    ]
    assert metric_count("OrgPathLookupsFailed") == before + 1


def test_a_lookup_role_credport_may_not_assume_gives_no_path_then_a_retry_a_minute_later(
    aws: AwsServices, organization: Organization, counted: Counted, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(0)
    missing = f"arn:aws:iam::{ACCOUNT}:role/credport-dev-org-lookup-gone"
    paths = org_paths(aws, counted, clock, role_arn=missing)
    assert paths.ou_path(organization.member, organization.id) is None
    assert [w["reason"] for w in warnings(caplog)] == ["AccessDenied"]  # STS refused the session
    assert counted.list_parents == []
    clock.advance(59)
    assert paths.ou_path(organization.member, organization.id) is None  # the failure is remembered a minute
    assert len(counted.assume_role) == 1
    assert warnings(caplog) == []  # and not logged again
    clock.advance(1)
    assert paths.ou_path(organization.member, organization.id) is None
    assert len(counted.assume_role) == 2


def test_a_throttled_organizations_gives_no_path_and_a_fresh_session_next_time(
    aws: AwsServices, organization: Organization, counted: Counted, caplog: pytest.LogCaptureFixture
) -> None:
    throttled = [True]

    def throttle(**_: Any) -> None:
        if throttled[0]:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "ListParents")

    clock = Clock(0)
    paths = org_paths(aws, counted, clock, before_list_parents=throttle)
    assert paths.ou_path(organization.member, organization.id) is None
    assert [w["reason"] for w in warnings(caplog)] == ["TooManyRequestsException"]
    throttled[0] = False
    clock.advance(60)
    o = organization
    assert paths.ou_path(o.member, o.id) == f"{o.id}/{o.root}/{o.outer}/{o.inner}/"
    assert len(counted.assume_role) == 2  # the session of the failed lookup was dropped


def test_without_the_setting_there_is_no_lookup(aws: AwsServices) -> None:
    settings = cast(Settings, SimpleNamespace(organization_lookup_role_arn=None))
    assert org_paths_for(settings, aws) is None


def test_the_deployment_lookup_signs_organizations_calls_with_the_lookup_role(
    aws: AwsServices, organization: Organization, factory: ClientFactory
) -> None:
    settings = cast(Settings, SimpleNamespace(organization_lookup_role_arn=LOOKUP_ROLE))
    paths = org_paths_for(settings, aws)
    assert paths is not None
    o = organization
    assert paths.ou_path(o.member, o.id) == f"{o.id}/{o.root}/{o.outer}/{o.inner}/"
    assert "organizations" not in factory.created  # never a client with the function's own credentials
