"""An AWS Organization in the embedded AWS (``python -m local up --organization``), for the template's OrganizationId.

The stack's account is the management account; one more account is created in the organization (a member, as
Organizations ``CreateAccount`` makes one) and one stands outside it. Each of the two gets a root key registered with
the embedded IAM (:func:`local.iam.enforce.register_root`), so a caller can create that account's own principals, as
that account's administrator would. The embedded AWS picks the account of a request by the ``x-moto-account-id``
header (moto's own mechanism): :func:`account_client` sets it. The organization id is what
``aws:PrincipalOrgID`` holds for principals of both the management and the member account
(:func:`local.iam.sts_callers.organization_of`), in the API's resource policy and in IAM alike.

:func:`create_callers` makes the two callers a reader acts as: in the member account and in the outsider, an IAM user
holding the caller-side policy the README shows (:func:`caller_policy`), written as the AWS profiles
``credport-local-member`` and ``credport-local-outsider`` beside the developer's. The embedded AWS and the local
gateway both tell an IAM user's account from its access key alone, so a profile needs no ``x-moto-account-id``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from local.apidef import api_arn
from local.execution import root_keys
from local.iam import enforce

__all__ = [
    "CALLER_ROUTES",
    "CALLER_USER",
    "OUTSIDER_ACCOUNT",
    "PROFILES",
    "AccountAdmin",
    "LocalOrganization",
    "account_client",
    "caller_policy",
    "create_callers",
    "create_organization",
]

OUTSIDER_ACCOUNT = "210987654321"  # an account of no organization (any id not created by the organization)
PROFILES = {"member": "credport-local-member", "outsider": "credport-local-outsider"}
CALLER_USER = "credport-caller"
# The IAM routes a workload calls (README, "Calling from another account of the organization"): its token, who it
# is, a session (the bearer routes that follow need no IAM permission).
CALLER_ROUTES = ("GET/token", "GET/whoami", "POST/session")


@dataclass(frozen=True)
class AccountAdmin:
    """An account's root key in the embedded AWS (local only: never an account of AWS)."""

    account_id: str
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class LocalOrganization:
    id: str
    management_account: str
    member: AccountAdmin
    outsider: AccountAdmin
    callers: dict[str, str] = field(default_factory=dict)  # AWS profile -> the IAM user it signs as

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def create_organization(client: Callable[[str], Any], *, management_account: str) -> LocalOrganization:
    """The organization (all features), its member account and the outsider, with ``client`` of the management
    account's root user."""
    organizations = client("organizations")
    org_id = str(organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"])
    status = organizations.create_account(Email="member@example.com", AccountName="credport-member")
    member = str(status["CreateAccountStatus"]["AccountId"])
    return LocalOrganization(org_id, management_account, _admin(member), _admin(OUTSIDER_ACCOUNT))


def _admin(account_id: str) -> AccountAdmin:
    keys = root_keys()
    enforce.register_root(keys.access_key_id, keys.secret_access_key, account_id)
    return AccountAdmin(account_id, keys.access_key_id, keys.secret_access_key)


def account_client(admin: AccountAdmin | dict[str, str], service: str, *, endpoint: str, region: str) -> Any:
    """A boto3 client of the embedded AWS acting in ``admin``'s account, as its root user."""
    import boto3.session

    admin = admin if isinstance(admin, AccountAdmin) else AccountAdmin(**admin)
    client = boto3.session.Session(
        aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key, region_name=region
    ).client(service, endpoint_url=endpoint)
    account = admin.account_id

    def select_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    client.meta.events.register(f"before-sign.{client.meta.service_model.service_id.hyphenize()}.*", select_account)
    return client


def caller_policy(region: str, account_id: str) -> dict[str, Any]:
    """The caller-side identity policy: ``execute-api:Invoke`` on the routes of :data:`CALLER_ROUTES` of credport's
    API (``account_id``: credport's account, not the caller's)."""
    resources = [api_arn(region, account_id, f"*/{route}") for route in CALLER_ROUTES]
    statement = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": resources}
    return {"Version": "2012-10-17", "Statement": [statement]}


def create_callers(
    organization: LocalOrganization,
    *,
    endpoint: str,
    region: str,
    config_file: Path,
    credentials_file: Path,
) -> LocalOrganization:
    """An IAM user with :func:`caller_policy` in the member account and in the outsider, made by each account's own
    administrator and appended as an AWS profile (:data:`PROFILES`) to the developer's files (0600 already);
    returns the organization with its callers."""
    policy = json.dumps(caller_policy(region, organization.management_account))
    callers: dict[str, str] = {}
    for who, admin in (("member", organization.member), ("outsider", organization.outsider)):
        iam = account_client(admin, "iam", endpoint=endpoint, region=region)
        arn = str(iam.create_user(UserName=CALLER_USER)["User"]["Arn"])
        iam.put_user_policy(UserName=CALLER_USER, PolicyName="invoke-credport", PolicyDocument=policy)
        key = iam.create_access_key(UserName=CALLER_USER)["AccessKey"]
        profile = PROFILES[who]
        with credentials_file.open("a") as handle:
            handle.write(
                f"\n[{profile}]\naws_access_key_id = {key['AccessKeyId']}\n"
                f"aws_secret_access_key = {key['SecretAccessKey']}\n"
            )
        with config_file.open("a") as handle:
            handle.write(f"\n[profile {profile}]\nregion = {region}\nendpoint_url = {endpoint}\n")
        callers[profile] = arn
    return replace(organization, callers=callers)
