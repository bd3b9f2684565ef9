"""STS as AWS runs it, for the embedded AWS: AssumeRole and AssumeRoleWithWebIdentity check what AWS checks.

moto 5.2.5 mints role credentials for any RoleArn, whoever asks, for any duration, and for any web identity
token (``not.a.jwt`` included). :func:`install` wraps moto's own ``TokenResponse.assume_role`` and
``assume_role_with_web_identity`` (one idempotent class patch, so it holds for ``moto.mock_aws`` in-process and
for the local stack's ``ThreadedMotoServer`` alike). Sources: STS API Reference, AssumeRole and
AssumeRoleWithWebIdentity ("Errors"); IAM User Guide, "Role chaining", "Create a role for OpenID Connect
federation", "Available keys for AWS OIDC federation".

AssumeRole: the DurationSeconds range (900..43200); the caller's credentials (:mod:`local.iam.sts_callers`); the
role exists and its trust policy allows the caller for ``sts:AssumeRole`` (plus ``sts:TagSession`` when session
tags are passed, ``sts:SetSourceIdentity`` with a SourceIdentity) — AWS does not tell a missing role from an
untrusting one; a role session (role chaining, web identity sessions included) gets at most one hour; no session
outlives the role's MaxSessionDuration. Identity permissions (when the trust policy only names the account) are
moto's IAM enforcement's business and apply only when it is on.

AssumeRoleWithWebIdentity: the token as STS checks it (:mod:`local.iam.web_identity`), then the role's trust
policy for ``{"Federated": <provider arn>}`` and ``sts:AssumeRoleWithWebIdentity`` with the provider's
``<url>:aud``/``:sub``/``:amr`` keys, then MaxSessionDuration. The answer carries SubjectFromWebIdentityToken,
Provider (the token's ``iss``, as the API Reference documents) and Audience.

A trust policy the embedded IAM cannot evaluate (an unknown condition key or operator, see
:mod:`local.iam.conditions`) is answered at once with a 400 ``EmbeddedIamUnsupported`` (no AWS code: AWS would
evaluate it), never guessed as a match or a miss. A RoleArn names a role only with its path, as IAM writes it.
"""

from __future__ import annotations

import calendar
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sts.responses import TokenResponse

from local.iam.jwks import JwksResolver, LoopbackJwksResolver
from local.iam.policy import Decision, Principal, Request, UnsupportedCondition, evaluate_policy
from local.iam.sts_callers import Caller, CallerRefused, find_caller
from local.iam.web_identity import OidcProvider, WebIdentity, WebIdentityRefused, verify_web_identity

__all__ = ["StsRefused", "install", "installed", "uninstall", "use_jwks_resolver"]

CHAINED_MAX_SECONDS = 3600
_ARN = re.compile(r"^arn:(aws[a-z-]*):[a-z0-9-]+:[a-z0-9-]*:(\d{12}):.+$")
_STATUS = {"AccessDenied": 403, "InvalidClientTokenId": 403, "ExpiredToken": 403}


class StsRefused(Exception):
    """An STS error answer: ``code`` and ``message`` as AWS sends them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class _State:
    resolver: JwksResolver
    original: dict[str, Callable[..., Any]]


_lock = threading.Lock()
_state: _State | None = None


def install(resolver: JwksResolver | None = None) -> None:
    """Make moto's STS check roles, trust and tokens (idempotent; ``resolver`` replaces the JWKS resolver)."""
    global _state  # noqa: PLW0603 (one patch per process: moto's response classes are process-wide)
    with _lock:
        if _state is None:
            _state = _State(
                resolver or LoopbackJwksResolver(),
                {
                    "assume_role": TokenResponse.assume_role,
                    "assume_role_with_web_identity": TokenResponse.assume_role_with_web_identity,
                },
            )
            TokenResponse.assume_role = _answering(_assume_role)  # type: ignore[method-assign,assignment]
            TokenResponse.assume_role_with_web_identity = _answering(_assume_role_with_web_identity)  # type: ignore[method-assign,assignment]
        elif resolver is not None:
            _state.resolver = resolver


def uninstall() -> None:
    """Give moto its own STS back (tests that must see moto's stock behaviour)."""
    global _state  # noqa: PLW0603
    with _lock:
        if _state is not None:
            original = _state.original
            TokenResponse.assume_role = original["assume_role"]  # type: ignore[method-assign]
            TokenResponse.assume_role_with_web_identity = original["assume_role_with_web_identity"]  # type: ignore[method-assign]
            _state = None


def installed() -> bool:
    return _state is not None


@contextmanager
def use_jwks_resolver(resolver: JwksResolver) -> Iterator[None]:
    """Within the block, issuers' keys come from ``resolver`` (installs the patch if needed)."""
    install()
    assert _state is not None
    previous, _state.resolver = _state.resolver, resolver
    try:
        yield
    finally:
        _state.resolver = previous


def _answering(check: Callable[[TokenResponse], Any]) -> Callable[[TokenResponse], Any]:
    """Run ``check``; a refusal becomes STS's XML error with AWS's HTTP status (403 for the authorization
    errors moto's STS model does not describe, 400 otherwise)."""

    def method(self: TokenResponse) -> Any:
        try:
            return check(self)
        except (StsRefused, CallerRefused, WebIdentityRefused) as refused:
            status = _STATUS.get(refused.code, 400)
            return _error_body(refused.code, refused.message), {"status": status, "Content-Type": "text/xml"}
        except UnsupportedCondition as unsupported:
            # Not an AWS answer: the embedded IAM cannot evaluate this trust policy, and says so at once (a 400,
            # which SDKs do not retry) instead of guessing a match or a miss.
            message = f"The embedded IAM cannot evaluate this role's trust policy: {unsupported}"
            return _error_body("EmbeddedIamUnsupported", message), {"status": 400, "Content-Type": "text/xml"}

    method.__name__ = check.__name__.lstrip("_")
    return method


def _error_body(code: str, message: str) -> str:
    root = ET.Element("ErrorResponse", xmlns="https://sts.amazonaws.com/doc/2011-06-15/")
    error = ET.SubElement(root, "Error")
    ET.SubElement(error, "Type").text = "Sender"
    ET.SubElement(error, "Code").text = code
    ET.SubElement(error, "Message").text = message
    ET.SubElement(root, "RequestId").text = "-"  # moto fills in the request id
    return ET.tostring(root, encoding="unicode")


# AssumeRole -----------------------------------------------------------------------------------------------------


def _assume_role(self: TokenResponse) -> Any:
    role_arn = str(self._get_param("RoleArn") or "")
    duration = _duration(self)
    partition, account = _arn_account(role_arn)
    caller = find_caller(
        self.get_access_key(), _session_token(self), account=self.current_account, partition=self.partition
    )
    denied = StsRefused(
        "AccessDenied", f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    )
    role = _role(role_arn, partition, account)
    if role is None:
        raise denied  # as AWS: a missing role and a role that does not trust the caller look the same
    context = {**caller.condition_context(), **_request_context(self)}
    principal = Principal(
        arn=caller.principal_arn, account=caller.account, session_arn=caller.arn if caller.is_role_session else None
    )
    for action in _actions(self, "sts:AssumeRole"):
        if _decide(role, action, principal, context) is not Decision.ALLOW:
            raise denied
    _check_duration(role, duration, caller)
    return _state_original("assume_role")(self)


def _actions(self: TokenResponse, action: str) -> list[str]:
    """Session tags need sts:TagSession and a source identity sts:SetSourceIdentity in the trust policy too
    (IAM User Guide, "Passing session tags in AWS STS", "Monitor and control actions taken with assumed roles")."""
    actions = [action]
    if self._get_param("Tags") or self._get_param("TransitiveTagKeys"):
        actions.append("sts:TagSession")
    if self._get_param("SourceIdentity"):
        actions.append("sts:SetSourceIdentity")
    return actions


def _request_context(self: TokenResponse) -> dict[str, Any]:
    context: dict[str, Any] = {"sts:RoleSessionName": self._get_param("RoleSessionName"), **_time_context()}
    for param, key in (("ExternalId", "sts:ExternalId"), ("SourceIdentity", "sts:SourceIdentity")):
        value = self._get_param(param)
        if value is not None:
            context[key] = value
    tags = self._get_param("Tags") or []
    if tags:
        context["aws:TagKeys"] = [t["Key"] for t in tags]
        context.update({f"aws:RequestTag/{t['Key']}": t["Value"] for t in tags})
    return context


def _check_duration(role: Any, duration: int | None, caller: Caller | None) -> None:
    if caller is not None and caller.is_role_session and duration is not None and duration > CHAINED_MAX_SECONDS:
        raise StsRefused(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        )
    if duration is not None and duration > int(role.max_session_duration or 3600):
        raise StsRefused(
            "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )


# AssumeRoleWithWebIdentity --------------------------------------------------------------------------------------


def _assume_role_with_web_identity(self: TokenResponse) -> Any:
    role_arn = str(self._get_param("RoleArn") or "")
    duration = _duration(self)
    partition, account = _arn_account(role_arn)
    assert _state is not None
    identity = verify_web_identity(
        self._get_param("WebIdentityToken"),
        providers=_providers(account, partition),
        resolver=_state.resolver,
        now=int(time.time()),
    )
    denied = StsRefused("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
    role = _role(role_arn, partition, account)
    if role is None:
        raise denied
    context = {
        **identity.condition_context(),
        "sts:RoleSessionName": self._get_param("RoleSessionName"),
        "aws:FederatedProvider": identity.provider.arn,
        "aws:PrincipalType": "WebIdentityUser",
        **_time_context(),
    }
    principal = _federated(identity, account)
    for action in _web_identity_actions(identity):
        if _decide(role, action, principal, context) is not Decision.ALLOW:
            raise denied
    _check_duration(role, duration, None)
    session = self.backend.assume_role_with_web_identity(
        region_name=self.region,
        role_session_name=self._get_param("RoleSessionName"),
        role_arn=role_arn,
        policy=self._get_param("Policy"),
        duration=duration or 3600,
        external_id=None,
    )
    return ActionResult(_web_identity_result(session, identity))


def _web_identity_actions(identity: WebIdentity) -> list[str]:
    """Session tags and a source identity come from the token's claims here, and need the same extra actions
    (IAM User Guide, "Passing session tags using AssumeRoleWithWebIdentity")."""
    actions = ["sts:AssumeRoleWithWebIdentity"]
    if "https://aws.amazon.com/tags" in identity.claims:
        actions.append("sts:TagSession")
    if "https://aws.amazon.com/source_identity" in identity.claims:
        actions.append("sts:SetSourceIdentity")
    return actions


def _web_identity_result(session: Any, identity: WebIdentity) -> dict[str, Any]:
    return {
        "Credentials": session,
        "SubjectFromWebIdentityToken": identity.subject,
        "AssumedRoleUser": {"AssumedRoleId": session.user_id, "Arn": session.arn},
        "Provider": identity.issuer,
        "Audience": identity.audience,
    }


def _federated(identity: WebIdentity, account: str) -> Principal:
    """A web identity as a policy principal: ``{"Federated": <provider arn>}`` names it."""
    return Principal(arn=identity.provider.arn, account=account, federated=identity.provider.arn)


def _providers(account: str, partition: str) -> Mapping[str, OidcProvider]:
    from moto.iam.models import iam_backends

    iam = iam_backends[account][partition]
    return {
        p.url: OidcProvider(arn=p.arn, url=p.url, client_ids=tuple(p.client_id_list))
        for p in list(iam.open_id_providers.values())
    }


# Shared ---------------------------------------------------------------------------------------------------------


def _duration(self: TokenResponse) -> int | None:
    """DurationSeconds as the API constrains it (900..43200), or None when the request leaves it out."""
    duration: int | None = self._get_int_param("DurationSeconds")
    if duration is not None and not 900 <= duration <= 43200:
        bound = "greater than or equal to 900" if duration < 900 else "less than or equal to 43200"
        raise StsRefused(
            "ValidationError",
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            f"Member must have value {bound}",
        )
    return duration


def _session_token(self: TokenResponse) -> str | None:
    token = self.headers.get("X-Amz-Security-Token")
    if token is None:
        values = self.querystring.get("X-Amz-Security-Token")
        token = values[0] if values else None
    return None if token is None else str(token)


def _arn_account(arn: str) -> tuple[str, str]:
    """The partition and account of an ARN; STS refuses a RoleArn that is no ARN before anything else."""
    match = _ARN.match(arn)
    if match is None:
        raise StsRefused("ValidationError", "Request ARN is invalid")
    return match.group(1), match.group(2)


def _role(role_arn: str, partition: str, account: str) -> Any:
    """The IAM role with exactly this ARN (path included), or None."""
    from moto.iam.models import iam_backends

    regions = iam_backends[account]
    if partition not in regions:
        return None
    roles = regions[partition].roles.values()
    return next((role for role in list(roles) if role.arn == role_arn), None)


def _decide(role: Any, action: str, principal: Principal, context: Mapping[str, Any]) -> Decision:
    request = Request(action=action, resource=role.arn, principal=principal, context=context)
    return evaluate_policy(role.assume_role_policy_document, request)


def _time_context() -> dict[str, Any]:
    now = utcnow()  # naive UTC, and frozen where a test freezes moto's clock
    return {"aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "aws:EpochTime": calendar.timegm(now.timetuple())}


def _state_original(name: str) -> Callable[..., Any]:
    assert _state is not None
    return _state.original[name]
