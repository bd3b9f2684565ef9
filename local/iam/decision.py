"""How one request is decided, as AWS decides: every (action, resource) pair AWS authorises for it (the request's own,
and those it implies: tags at creation, session tags, a copy's source, s3:ListBucket for a missing object) by
:func:`local.iam.policy.authorize` over the caller's identity policies and the resource's policy (S3 bucket policy,
SQS queue policy, Secrets Manager resource policy, KMS key policy with KMS semantics, the role's trust policy for
sts:AssumeRole), with the condition context of :mod:`local.iam.context`; a refusal is the service's own AccessDenied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError
from werkzeug.exceptions import HTTPException

from .context import Call, TagClock, call_of, identity_documents, principal_of, request_context, resources
from .policy import Decision, Principal, Request, authorize

__all__ = ["Observer", "Options", "decide"]

Observer = Callable[[Request, Decision], None]
_SESSION_EXTRAS = (("sts:TagSession", "Tags"), ("sts:SetSourceIdentity", "SourceIdentity"))
_LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


@dataclass
class Options:
    """How requests are decided: the clock of KMS tags and aliases, whether plain http to a loopback address counts as
    secure transport, and who observes every decision."""

    clock: TagClock = field(default_factory=TagClock)
    loopback_is_secure: bool = True
    observers: list[Observer] = field(default_factory=list)


class _AccessDeniedException(JsonRESTError):
    code = 403  # what the JSON-protocol services (KMS, Secrets Manager, DynamoDB, ...) answer

    def __init__(self, message: str) -> None:
        super().__init__("AccessDeniedException", message)


class _QueryAccessDenied(AccessDeniedError):
    """IAM's AccessDenied for query-protocol services (STS, SNS, SQS, IAM), naming the resource as AWS does."""

    def __init__(self, message: str) -> None:
        _RESTError.__init__(self, "AccessDenied", message)


def _denied(response: Any, iam_request: Any, principal: Principal | None, action: str, resource: str) -> Exception:
    """The service's own AccessDenied error (S3's XML error, JSON services' AccessDeniedException, else moto's)."""
    from moto.iam.access_control import S3IAMRequest

    if isinstance(iam_request, S3IAMRequest):
        try:
            iam_request._raise_access_denied()
        except HTTPException as error:  # moto raises the S3 error it builds
            return error
    who = (principal.session_arn or principal.arn) if principal else "anonymous"
    if response.headers.get("X-Amz-Target"):
        return _AccessDeniedException(f"User: {who} is not authorized to perform: {action} on resource: {resource}")
    if resource == "*":
        return AccessDeniedError(user_arn=who, action=action)
    return _QueryAccessDenied(f"User: {who} is not authorized to perform: {action} on resource: {resource}")


def decide(options: Options, response: Any, iam_request: Any, action: str, scope: str, resource: str) -> None:
    """Authorise every (action, resource) AWS authorises for this request, or raise the service's AccessDenied."""
    principal, keys = principal_of(iam_request._access_key) if iam_request else (None, {})
    identity = identity_documents(iam_request._access_key) if iam_request else []
    call = call_of(response, action, scope)
    targets = resources(call, resource)

    def check(act: str, target: str) -> None:
        context = request_context(call, target, keys, options.clock, loopback_is_secure=options.loopback_is_secure)
        request = Request(act, target, principal, context)
        policy, key_mode, owner = _resource_policy(call, act, target)
        decision = authorize(request, identity, policy, resource_account=owner, key_policy=key_mode)
        for observer in list(options.observers):
            observer(request, decision)
        if decision is not Decision.ALLOW:
            raise _denied(response, iam_request, principal, act, target)

    for act, target in [(call.iam_action, t) for t in targets] + _implied(call, targets):
        check(act, target)
    if call.iam_action == "s3:GetObject" and targets and _missing_object(call, targets):
        check("s3:ListBucket", targets[0].split("/", 1)[0])  # 403 instead of NoSuchKey without s3:ListBucket
    if call.iam_action == "kms:CreateKey" and "Policy" in call.params:
        _lockout_check(options, call, principal, keys, identity)


def _implied(call: Call, targets: list[str]) -> list[tuple[str, str]]:
    """Further (action, resource) pairs AWS authorises for this request: tags passed at creation (kms:TagResource,
    secretsmanager:TagResource), session tags and source identity of AssumeRole (sts:TagSession,
    sts:SetSourceIdentity; IAM User Guide, "Passing session tags in AWS STS"), the source of a copy."""
    p = call.params
    if call.iam_action in ("kms:CreateKey", "secretsmanager:CreateSecret") and p.get("Tags"):
        return [(f"{call.service}:TagResource", t) for t in targets]
    if call.iam_action == "sts:AssumeRole":
        extra = [a for a, given in _SESSION_EXTRAS if p.get(given)]
        return [(a, t) for a in extra for t in targets]
    source = next((v for k, v in call.headers.items() if k.lower() == "x-amz-copy-source"), None)
    if call.iam_action == "s3:PutObject" and source:
        path, _, query = unquote(source).lstrip("/").partition("?")
        action = "s3:GetObjectVersion" if "versionId=" in query else "s3:GetObject"
        return [(action, f"arn:{call.partition}:s3:::{path}")]
    return []


def _missing_object(call: Call, targets: list[str]) -> bool:
    from moto.s3.models import s3_backends

    bucket_name, _, key = targets[0].split(":::", 1)[-1].partition("/")
    bucket = s3_backends[call.account][call.partition].buckets.get(bucket_name)
    return bucket is not None and bool(key) and bucket.keys.get(key) is None


def _resource_policy(call: Call, action: str, resource: str) -> tuple[str | None, bool, str | None]:
    """(the resource's policy, whether it gates like a KMS key policy, the owning account)."""
    if resource.startswith(f"arn:{call.partition}:s3:::"):
        from moto.s3.models import s3_backends

        bucket = s3_backends[call.account][call.partition].buckets.get(resource.split(":::", 1)[1].split("/", 1)[0])
        if bucket is None:
            return None, False, None
        return (bucket.policy.decode() if bucket.policy else None), False, bucket.account_id
    if action == "sts:AssumeRole":
        from moto.iam.exceptions import NotFoundException
        from moto.iam.models import iam_backends

        try:
            role = iam_backends[call.account][call.partition].get_role_by_arn(resource)
        except NotFoundException:  # STS refuses a missing role on its own
            return None, False, None
        return role.assume_role_policy_document, True, None
    service = resource.split(":")[2] if resource.count(":") >= 5 else ""
    if service == "kms" and ":key/" in resource:
        from moto.kms.models import kms_backends

        key = kms_backends[call.account][call.region].keys.get(resource.rsplit("/", 1)[1])
        return (key.policy if key else None), key is not None, None
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[call.account][call.region].queues.get(resource.rsplit(":", 1)[1])
        return (queue.policy if queue else None), False, None
    if service == "secretsmanager":
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[call.account][call.region].secrets.get(resource)
        return (getattr(secret, "policy", None) if secret else None), False, None
    return None, False, None


def _lockout_check(
    options: Options, call: Call, principal: Principal | None, keys: Mapping[str, Any], identity: list[Any]
) -> None:
    """CreateKey refuses a key policy that would not let the caller PutKeyPolicy (KMS API Reference, CreateKey)."""
    if call.params.get("BypassPolicyLockoutSafetyCheck"):
        return
    try:
        policy = json.loads(call.params["Policy"])
    except (TypeError, ValueError):
        raise JsonRESTError("MalformedPolicyDocumentException", "The key policy is not valid JSON.") from None
    target = call.arn("kms", "key/*")  # the key does not exist yet; key policies name "*"
    context = request_context(call, "*", keys, options.clock, loopback_is_secure=options.loopback_is_secure)
    request = Request("kms:PutKeyPolicy", target, principal, context)
    if authorize(request, identity, policy, key_policy=True) is not Decision.ALLOW:
        raise JsonRESTError("MalformedPolicyDocumentException", _LOCKOUT)
