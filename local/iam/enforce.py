"""moto's IAM enforcement, decided as AWS decides: conditions, resource policies, KMS key policies, real resources.

When moto enforces IAM (``INITIAL_NO_AUTH_ACTION_COUNT``, :func:`moto.core.authorization.enable_iam_authentication`,
or :func:`enforcing`), moto 5.2.5 checks SigV4 and then only the Action and Resource of identity policies, against
``*`` for most services. :func:`install` replaces ``ActionAuthenticatorMixin._authenticate_and_authorize_action`` (one
idempotent class patch: it holds for ``moto.mock_aws`` in-process and for the local stack's ``ThreadedMotoServer``
in the same process). moto still parses the request, finds the caller's access key and checks the signature (its own
``IAMRequest``/``S3IAMRequest``); then every (action, resource) AWS authorises is decided by
:func:`local.iam.policy.authorize` over the caller's identity policies and the resource's policy (S3 bucket policy,
SQS queue policy, Secrets Manager resource policy, KMS key policy with KMS semantics, the role's trust policy for
sts:AssumeRole), with the condition context of :mod:`local.iam.context`.

AWS behaviours that depend on permissions, emulated here: tags on CreateKey/CreateSecret need kms:TagResource /
secretsmanager:TagResource (KMS API Reference, CreateKey; Secrets Manager API Reference, CreateSecret, "Required
permissions"); CopyObject needs s3:GetObject on the source (S3 API Reference, CopyObject); GetObject/HeadObject of a
missing key answers 403 AccessDenied unless the caller may s3:ListBucket the bucket (S3 API Reference, GetObject,
"Permissions"; evaluated without s3:prefix, which a GetObject request does not carry); CreateKey with a Policy is
refused (MalformedPolicyDocumentException) unless that policy lets the caller PutKeyPolicy later (KMS API Reference,
CreateKey, BypassPolicyLockoutSafetyCheck). KMS tags and aliases count for authorisation only
``tag_authorization_delay_seconds`` after they were set (see :class:`local.iam.context.TagClock`).

What moto's signature check leaves out of authentication (request time, expired sessions, S3 payload hashes, presigned
links authorised as their signer, SigV2, refusals of what is not emulated) is in :mod:`local.iam.authenticate`; any
other request without an Authorization header is anonymous: only a resource policy can allow it. Not emulated:
permission boundaries, session policies, SCPs, grants.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.credentials import Credentials
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication
from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError
from werkzeug.exceptions import HTTPException

from .authenticate import (
    check_freshness,
    check_signing_fields,
    is_public_operation,
    presigned_request,
    refuse_signature_version_2,
    refuse_unsupported,
)
from .context import Call, TagClock, call_of, identity_documents, principal_of, request_context, resources
from .policy import Decision, Principal, Request, authorize
from .presigned import is_presigned

__all__ = ["Observer", "configured", "enforcing", "install", "installed", "register_root", "uninstall"]

Observer = Callable[[Request, Decision], None]
_UNSIGNED = frozenset({"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})  # STS authenticates these by their token
_TIMED = ("create_key", "tag_resource", "create_alias", "update_alias")  # KmsBackend methods that set tags or aliases
_SESSION_EXTRAS = (("sts:TagSession", "Tags"), ("sts:SetSourceIdentity", "SourceIdentity"))
_LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


@dataclass
class _Config:
    clock: TagClock = field(default_factory=TagClock)
    loopback_is_secure: bool = True
    observers: list[Observer] = field(default_factory=list)
    roots: dict[str, tuple[str, str]] = field(default_factory=dict)  # access key id -> (secret, account)


_lock = threading.RLock()
_config = _Config()
_originals: dict[str, Any] = {}


@dataclass(frozen=True)
class _RootKey:
    """An access key registered as an account's root user: no identity policy, allowed what no resource policy
    denies (and, for KMS keys, what the key policy allows the account)."""

    access_key_id: str
    secret: str
    account_id: str
    partition: str

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def create_credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.secret)

    def collect_policies(self) -> list[Any]:
        return []


def register_root(access_key_id: str, secret_access_key: str, account_id: str) -> None:
    """Make ``access_key_id`` the root user of ``account_id`` (the local stack's provisioning credentials)."""
    with _lock:
        _config.roots[access_key_id] = (secret_access_key, account_id)


# ---- the patch ----------------------------------------------------------------------------------------------


def install() -> None:
    """Patch moto once per process (idempotent): its enforcement decides through :func:`_decide`, moto's own
    condition-blind bucket-policy check stands aside while enforcing, and KMS tag and alias changes are timed for
    ``tag_authorization_delay_seconds``."""
    from moto.iam import access_control
    from moto.kms.models import KmsBackend
    from moto.s3.models import FakeBucket

    with _lock:
        if _originals:
            return
        _originals.update(
            authorize=ActionAuthenticatorMixin._authenticate_and_authorize_action,
            create_access_key=access_control.create_access_key,
            get_permission=FakeBucket.get_permission,
            **{name: getattr(KmsBackend, name) for name in _TIMED},
        )
        ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize  # type: ignore[method-assign]
        access_control.create_access_key = _create_access_key
        FakeBucket.get_permission = _bucket_permission  # type: ignore[method-assign,assignment]
        for name in _TIMED:
            setattr(KmsBackend, name, _timed(name, _originals[name]))


def uninstall() -> None:
    from moto.iam import access_control
    from moto.kms.models import KmsBackend
    from moto.s3.models import FakeBucket

    with _lock:
        if not _originals:
            return
        ActionAuthenticatorMixin._authenticate_and_authorize_action = _originals.pop("authorize")  # type: ignore[method-assign]
        access_control.create_access_key = _originals.pop("create_access_key")
        FakeBucket.get_permission = _originals.pop("get_permission")  # type: ignore[method-assign]
        for name in list(_originals):
            setattr(KmsBackend, name, _originals.pop(name))


def installed() -> bool:
    return bool(_originals)


@contextmanager
def configured(
    *,
    tag_authorization_delay_seconds: float | None = None,
    clock: Callable[[], float] | None = None,
    observer: Observer | None = None,
    loopback_is_secure: bool | None = None,
) -> Iterator[None]:
    """The enforcement's options for the block, restored after it (:func:`install` included): the KMS tag and alias
    delay, the clock it runs on (seconds; a test's fake clock), an ``observer`` of every decision, and whether plain
    http to a loopback address counts as secure transport (see :mod:`local.iam.context`)."""
    install()
    with _lock:
        saved = (_config.clock.delay, _config.clock.now, _config.loopback_is_secure)
        if tag_authorization_delay_seconds is not None:
            _config.clock.delay = tag_authorization_delay_seconds
        if clock is not None:
            _config.clock.now = clock
        if loopback_is_secure is not None:
            _config.loopback_is_secure = loopback_is_secure
        if observer is not None:
            _config.observers.append(observer)
    try:
        yield
    finally:
        with _lock:
            _config.clock.delay, _config.clock.now, _config.loopback_is_secure = saved
            if observer is not None:
                _config.observers.remove(observer)


@contextmanager
def enforcing(
    *,
    tag_authorization_delay_seconds: float | None = None,
    clock: Callable[[], float] | None = None,
    observer: Observer | None = None,
    loopback_is_secure: bool | None = None,
) -> Iterator[None]:
    """IAM enforced, AWS's way, for the block: :func:`configured` with these options, and moto's own
    ``enable_iam_authentication``."""
    options = configured(
        tag_authorization_delay_seconds=tag_authorization_delay_seconds,
        clock=clock,
        observer=observer,
        loopback_is_secure=loopback_is_secure,
    )
    with options, enable_iam_authentication():
        yield


def _timed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Record when tags and aliases are set (``name`` is one of KmsBackend's methods)."""

    def wrapper(backend: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(backend, *args, **kwargs)
        where, record = (backend.account_id, backend.region_name), _config.clock.record
        if name == "create_key":
            for tag in kwargs.get("tags", args[4] if len(args) > 4 else None) or []:
                record(*where, result.id, "tag", tag["TagKey"])
        elif name == "tag_resource":
            key_id = backend.get_key_id(kwargs.get("arn", args[0] if args else ""))
            for tag_key in kwargs.get("tags", args[1] if len(args) > 1 else {}):
                record(*where, key_id, "tag", tag_key)
        else:  # create_alias / update_alias (target_key_id, alias_name)
            record(*where, "alias", result.alias_name, result.target_key_id)
        return result

    return wrapper


def _enforcing() -> bool:
    return bool(ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT)


def _bucket_permission(bucket: Any, action: str, resource: str) -> Any:
    """moto's own second look at a bucket policy (object requests, DeleteObjects) ignores Conditions, so a
    conditional Deny (TLS-only) denies everything. While enforcing, the policy was already decided with its
    conditions; outside enforcement moto's check stays as it is."""
    from moto.iam.access_control import PermissionResult

    if _enforcing():
        return PermissionResult.NEUTRAL
    return _originals["get_permission"](bucket, action, resource)


def _create_access_key(account_id: str, partition: str, access_key_id: str, headers: dict[str, str]) -> Any:
    root = _config.roots.get(access_key_id)
    if root is not None:
        return _RootKey(access_key_id, root[0], root[1], partition)
    return _originals["create_access_key"](account_id, partition, access_key_id, headers)


def _authenticate_and_authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    """moto's ``_authenticate_and_authorize_action``, deciding with :func:`local.iam.policy.authorize`."""
    if not _enforcing():
        ActionAuthenticatorMixin.request_count += 1
        return
    if is_public_operation(self):
        return
    action = self._get_action()
    authorization = self.headers.get("Authorization") or ""
    query = self.uri.partition("?")[2]
    refuse_unsupported(self, query)
    if "Credential=" not in authorization and self.service_name == "s3" and is_presigned(query):
        _decide(
            self, presigned_request(self, iam_request_cls, action, query, _create_access_key), action, "s3", resource
        )
        return
    refuse_signature_version_2(self, query, authorization)
    if "Credential=" not in authorization:
        if not (self.service_name == "sts" and action in _UNSIGNED):
            _decide(self, None, action, self.service_name, resource)
        return
    check_signing_fields(self, authorization)  # moto's parser indexes both unchecked
    path = self.raw_path + (f"?{q}" if (q := self.uri.partition("?")[2]) else "")
    iam_request = iam_request_cls(
        account_id=self.current_account,
        method=self.method,
        path=path,
        data=self.data,
        body=self.raw_body,
        headers=self.headers,
        action=action,
    )
    iam_request.check_signature()
    check_freshness(self, authorization)
    if f"{iam_request._service}:{action}" != "sts:GetCallerIdentity":  # always allowed, even under an explicit Deny
        _decide(self, iam_request, action, iam_request._service, resource)


# ---- the decision -------------------------------------------------------------------------------------------


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


def _decide(response: Any, iam_request: Any, action: str, scope: str, resource: str) -> None:
    principal, keys = principal_of(iam_request._access_key) if iam_request else (None, {})
    identity = identity_documents(iam_request._access_key) if iam_request else []
    call = call_of(response, action, scope)
    targets = resources(call, resource)

    def check(act: str, target: str) -> None:
        context = request_context(call, target, keys, _config.clock, loopback_is_secure=_config.loopback_is_secure)
        request = Request(act, target, principal, context)
        policy, key_mode, owner = _resource_policy(call, act, target)
        decision = authorize(request, identity, policy, resource_account=owner, key_policy=key_mode)
        for observer in list(_config.observers):
            observer(request, decision)
        if decision is not Decision.ALLOW:
            raise _denied(response, iam_request, principal, act, target)

    for act, target in [(call.iam_action, t) for t in targets] + _implied(call, targets):
        check(act, target)
    if call.iam_action == "s3:GetObject" and targets and _missing_object(call, targets):
        check("s3:ListBucket", targets[0].split("/", 1)[0])  # 403 instead of NoSuchKey without s3:ListBucket
    if call.iam_action == "kms:CreateKey" and "Policy" in call.params:
        _lockout_check(call, principal, keys, identity)


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


def _lockout_check(call: Call, principal: Principal | None, keys: Mapping[str, Any], identity: list[Any]) -> None:
    """CreateKey refuses a key policy that would not let the caller PutKeyPolicy (KMS API Reference, CreateKey)."""
    if call.params.get("BypassPolicyLockoutSafetyCheck"):
        return
    try:
        policy = json.loads(call.params["Policy"])
    except (TypeError, ValueError):
        raise JsonRESTError("MalformedPolicyDocumentException", "The key policy is not valid JSON.") from None
    target = call.arn("kms", "key/*")  # the key does not exist yet; key policies name "*"
    context = request_context(call, "*", keys, _config.clock, loopback_is_secure=_config.loopback_is_secure)
    request = Request("kms:PutKeyPolicy", target, principal, context)
    if authorize(request, identity, policy, key_policy=True) is not Decision.ALLOW:
        raise JsonRESTError("MalformedPolicyDocumentException", _LOCKOUT)
