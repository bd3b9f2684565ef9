"""moto's IAM enforcement, decided as AWS decides: conditions, resource policies, KMS key policies, real resources.

When moto enforces IAM (``INITIAL_NO_AUTH_ACTION_COUNT``, :func:`moto.core.authorization.enable_iam_authentication`,
or :func:`enforcing`), moto 5.2.5 checks SigV4 and then only the Action and Resource of identity policies, against
``*`` for most services. :func:`install` replaces ``ActionAuthenticatorMixin._authenticate_and_authorize_action`` (one
idempotent class patch: it holds for ``moto.mock_aws`` in-process and for the local stack's ``ThreadedMotoServer``
in the same process). moto still parses the request, finds the caller's access key and checks the signature (its own
``IAMRequest``/``S3IAMRequest``); then every (action, resource) AWS authorises is decided by
:func:`local.iam.policy.authorize` over the caller's identity policies and the resource's policy (S3 bucket policy,
SQS queue policy, Secrets Manager resource policy, KMS key policy with KMS semantics, the role's trust policy for
sts:AssumeRole), with the condition context of :mod:`local.iam.context` (the decision is :mod:`local.iam.decision`;
this module is the patch that routes moto to it, and its options).

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

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.credentials import Credentials
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication

from .authenticate import (
    check_freshness,
    check_signing_fields,
    is_public_operation,
    presigned_request,
    refuse_signature_version_2,
    refuse_unsupported,
)
from .decision import Observer, Options, decide
from .presigned import is_presigned

__all__ = ["Observer", "configured", "enforcing", "install", "installed", "register_root", "uninstall"]

_UNSIGNED = frozenset({"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})  # STS authenticates these by their token
_TIMED = ("create_key", "tag_resource", "create_alias", "update_alias")  # KmsBackend methods that set tags or aliases


@dataclass
class _Config(Options):
    """The decision's options, and the registered root keys (which only the patch's access-key lookup reads)."""

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
    """Patch moto once per process (idempotent): its enforcement decides through :func:`local.iam.decision.decide`,
    moto's own condition-blind bucket-policy check stands aside while enforcing, and KMS tag and alias changes are
    timed for ``tag_authorization_delay_seconds``."""
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
        presigned = presigned_request(self, iam_request_cls, action, query, _create_access_key)
        decide(_config, self, presigned, action, "s3", resource)
        return
    refuse_signature_version_2(self, query, authorization)
    if "Credential=" not in authorization:
        if not (self.service_name == "sts" and action in _UNSIGNED):
            decide(_config, self, None, action, self.service_name, resource)
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
        decide(_config, self, iam_request, action, iam_request._service, resource)
