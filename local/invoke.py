"""API Gateway's ``execute-api:Invoke`` check, once the SigV4 signature of an ``AWS_IAM`` route verified (and, when
the API has a resource policy, for callers without IAM credentials, who are anonymous to it).

The caller needs ``execute-api:Invoke`` on the method ARN from its identity-based policies (same account) or from
the API's resource policy; an explicit Deny in either refuses; across accounts both must allow (API Gateway
Developer Guide, "How API Gateway resource policies affect authorization workflow", table B; the evaluation is
:mod:`local.iam.policy`'s). A refusal is API Gateway's ``ACCESS_DENIED`` answer (``AccessDeniedException``).

Refusal texts as API Gateway writes them today, as reported from real APIs (the reason names the policy type;
the resource's account is masked but for its last four digits): "User: <caller> is not authorized to perform:
execute-api:Invoke on resource: <method arn> because no identity-based policy allows the execute-api:Invoke
action", "... with an explicit deny in an identity-based policy", "... with an explicit deny in a resource-based
policy", "... because no resource-based policy allows the execute-api:Invoke action".
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moto.core.utils import utcnow

from local.apidef import masked_method_arn, method_arn
from local.iam.policy import Decision, Principal, Request, UnsupportedCondition, authorize, evaluate_policy
from local.iam.principals import identity_policies
from local.iam.sts_callers import find_caller
from local.sigv4 import Principal as Signer

__all__ = ["ACTION", "InvokeDenied", "InvokeUnevaluable", "Route", "check_anonymous_invoke", "check_invoke"]

ACTION = "execute-api:Invoke"
_IDENTITY_DENY = "with an explicit deny in an identity-based policy"
_RESOURCE_DENY = "with an explicit deny in a resource-based policy"
_NO_IDENTITY_ALLOW = f"because no identity-based policy allows the {ACTION} action"
_NO_RESOURCE_ALLOW = f"because no resource-based policy allows the {ACTION} action"


class InvokeDenied(Exception):
    """The caller may not invoke the method: API Gateway's 403 ``AccessDeniedException``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvokeUnevaluable(Exception):
    """A policy the embedded IAM cannot evaluate (an unsupported condition key, say): never an allow."""


@dataclass(frozen=True)
class Route:
    """Where the request goes: the API's region and account, the method and the request path."""

    region: str
    account_id: str
    method: str
    path: str

    @property
    def arn(self) -> str:
        return method_arn(self.region, self.account_id, self.method, self.path)


def check_invoke(
    signer: Signer, route: Route, *, source_ip: str, resource_policy: Mapping[str, Any] | None = None
) -> None:
    """Raise :class:`InvokeDenied` unless AWS would let ``signer`` invoke ``route``."""
    caller = find_caller(signer.access_key, signer.session_token, account=signer.account_id, partition="aws")
    principal = Principal(
        caller.principal_arn, caller.account, session_arn=caller.arn if caller.is_role_session else None
    )
    request = Request(ACTION, route.arn, principal, {**caller.condition_context(), **_request_context(source_ip)})
    policies = identity_policies(
        caller.principal_arn, caller.account, session_access_key=signer.access_key if caller.is_role_session else None
    )
    try:
        decision = policies.authorize(request, resource_policy, resource_account=route.account_id)
        if decision is Decision.ALLOW:
            return
        if resource_policy is not None and evaluate_policy(resource_policy, request) is Decision.DENY:
            reason = _RESOURCE_DENY
        elif decision is Decision.DENY:
            reason = _IDENTITY_DENY
        else:  # across accounts, say which side did not allow (identity first, as IAM evaluates it)
            own_account = policies.authorize(request, resource_account=caller.account)
            cross = caller.account != route.account_id
            reason = _NO_RESOURCE_ALLOW if cross and own_account is Decision.ALLOW else _NO_IDENTITY_ALLOW
    except (UnsupportedCondition, ValueError) as error:
        raise InvokeUnevaluable(str(error)) from None
    message = f"User: {caller.arn} is not authorized to perform: {ACTION} on resource: {masked_method_arn(route.arn)}"
    raise InvokeDenied(f"{message} {reason}")


def check_anonymous_invoke(
    route: Route, *, source_ip: str, resource_policy: Mapping[str, Any], deny_only: bool = False
) -> None:
    """The resource policy alone, for a caller without IAM credentials: its explicit Deny refuses, and unless
    ``deny_only`` (an authorizer decides the rest) only its Allow lets the caller in."""
    request = Request(ACTION, route.arn, None, _request_context(source_ip))
    try:
        explicit = evaluate_policy(resource_policy, request) is Decision.DENY
        if not explicit and (deny_only or authorize(request, [], resource_policy) is Decision.ALLOW):
            return
    except (UnsupportedCondition, ValueError) as error:
        raise InvokeUnevaluable(str(error)) from None
    message = f"User: anonymous is not authorized to perform: {ACTION} on resource: {masked_method_arn(route.arn)}"
    raise InvokeDenied(f"{message} {_RESOURCE_DENY if explicit else _NO_RESOURCE_ALLOW}")


def _request_context(source_ip: str) -> dict[str, Any]:
    now = utcnow()  # naive UTC, and frozen where a test freezes moto's clock
    return {
        "aws:SourceIp": source_ip,
        "aws:SecureTransport": True,  # API Gateway serves only HTTPS; the local gateway stands in for it
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": calendar.timegm(now.timetuple()),
    }
