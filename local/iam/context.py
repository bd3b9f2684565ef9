"""The condition context AWS evaluates for one request, from the embedded AWS's state: the request's keys and the
principal's (who the caller is, and its identity policies).

What the request is (:class:`Call`, :mod:`local.iam.call`) and the resources it is authorised against
(:func:`resources`, :mod:`local.iam.resources`) are re-exported here. :func:`request_context` gives the keys AWS sets
for a request against one of those resources: the principal's global keys (:func:`principal_of`),
aws:CurrentTime/EpochTime, aws:SecureTransport, aws:RequestTag/* and aws:TagKeys from the request's tags,
aws:ResourceTag/* from the resource's actual tags, and the service keys of "Actions, resources, and condition keys"
(kms:ResourceAliases, kms:RequestAlias, s3:prefix, dynamodb:LeadingKeys, ...). A key it cannot supply is absent, as
in AWS (kms:ViaService is never set: every request here is a direct call).

aws:SecureTransport is true for https, and for plain http to a loopback address: the local stack serves the embedded
AWS over loopback http as the stand-in for AWS's endpoints, which are TLS-only for every SDK call; a plain-http request
from anywhere else is insecure (and the template's TlsOnly bucket policies deny it).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from .call import Call, call_of
from .policy import Principal
from .resources import resources

__all__ = [
    "Call",
    "TagClock",
    "call_of",
    "identity_documents",
    "is_secure",
    "principal_of",
    "request_context",
    "resources",
]


def is_secure(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "https":
        return True
    host = (parsed.hostname or "").lower()
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- context ------------------------------------------------------------------------------------------------


@dataclass
class TagClock:
    """When KMS tags and aliases were set, and how long until they affect authorisation (KMS Developer Guide, ABAC:
    "It might take up to five minutes for tag and alias changes to affect KMS key authorization"). A tag or alias with
    no recorded time predates :func:`local.iam.enforce.install` and counts as settled. A removal takes effect at once
    (the strict side of AWS's eventual consistency)."""

    delay: float = 0.0
    now: Callable[[], float] = field(default=lambda: datetime.now(UTC).timestamp())
    set_at: dict[tuple[str, ...], float] = field(default_factory=dict)

    def record(self, *key: str) -> None:
        self.set_at[key] = self.now()

    def settled(self, *key: str) -> bool:
        when = self.set_at.get(key)
        return when is None or self.now() - when >= self.delay


def _tags(raw: Any, key_name: str = "Key", value_name: str = "Value") -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {t[key_name]: t[value_name] for t in raw or []}


def _request_tags(call: Call) -> dict[str, str] | None:
    p = call.params
    if call.service == "kms" and call.action in ("CreateKey", "TagResource"):
        return _tags(p.get("Tags"), "TagKey", "TagValue")
    if call.service in ("secretsmanager", "sns", "dynamodb", "sts") and "Tags" in p:
        return _tags(p["Tags"])
    if call.service == "sqs" and call.action in ("CreateQueue", "TagQueue"):
        return _tags(p.get("tags") or p.get("Tags"))
    return None


def _table_name(resource: str) -> str:
    return resource.split(":table/", 1)[-1].split("/", 1)[0]


def _resource_tags(call: Call, resource: str, clock: TagClock) -> dict[str, str]:
    if resource == "*":
        return {}
    if call.service == "kms" and ":key/" in resource:
        from moto.kms.models import kms_backends

        backend, key_id = kms_backends[call.account][call.region], resource.rsplit("/", 1)[1]
        tags = backend.tagger.get_tag_dict_for_resource(key_id)
        return {k: v for k, v in tags.items() if clock.settled(call.account, call.region, key_id, "tag", k)}
    if call.service == "secretsmanager":
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[call.account][call.region].secrets.get(resource)
        return _tags(secret.tags) if secret is not None else {}
    if call.service == "dynamodb":
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[call.account][call.region].tables.get(_table_name(resource))
        return _tags(table.tags) if table is not None else {}
    if call.service == "sqs":
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[call.account][call.region].queues.get(resource.rsplit(":", 1)[1])
        return _tags(queue.tags) if queue is not None else {}
    return {}


def _kms_keys(call: Call, resource: str, clock: TagClock) -> dict[str, Any]:
    """kms:RequestAlias, kms:EncryptionContext:*, kms:KeySpec/KeyUsage and kms:ResourceAliases (KMS Developer Guide,
    "AWS KMS condition keys"); aliases set less than the delay ago are not yet part of kms:ResourceAliases."""
    from moto.kms.models import kms_backends

    p, context = call.params, dict[str, Any]()
    key_id = str(p.get("KeyId", ""))
    if key_id.startswith("alias/") or ":alias/" in key_id:
        context["kms:RequestAlias"] = kms_backends[call.account][call.region].get_alias_name(key_id)
    for name, value in (p.get("EncryptionContext") or {}).items():
        context[f"kms:EncryptionContext:{name}"] = value
    if call.action == "CreateKey":
        context["kms:KeySpec"] = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        context["kms:KeyUsage"] = p.get("KeyUsage") or "ENCRYPT_DECRYPT"
    elif ":key/" in resource and (key := kms_backends[call.account][call.region].keys.get(resource.rsplit("/", 1)[1])):
        context["kms:KeySpec"], context["kms:KeyUsage"] = key.key_spec, key.key_usage
        aliases = [a for a in key.aliases if clock.settled(call.account, call.region, "alias", a, key.id)]
        context["kms:ResourceAliases"] = sorted(aliases)
    return context


def _attribute(value: Mapping[str, Any]) -> str:
    (kind, raw), *_ = value.items()
    return base64.b64encode(raw).decode() if kind == "B" and isinstance(raw, bytes) else str(raw)


def _leading_keys(call: Call, resource: str) -> list[str] | None:
    """dynamodb:LeadingKeys: the partition key values the request reads or writes (DynamoDB Developer Guide,
    "Using IAM policy conditions for fine-grained access control")."""
    from moto.dynamodb.models import dynamodb_backends

    name = _table_name(resource)
    table = dynamodb_backends[call.account][call.region].tables.get(name)
    if table is None:
        return None
    p, hash_key = call.params, table.hash_key_attr
    batch = p["RequestItems"].get(name) if isinstance(p.get("RequestItems"), Mapping) else None
    items = [p.get("Key"), p.get("Item")]
    if isinstance(batch, list):  # BatchWriteItem
        items += [r.get("PutRequest", {}).get("Item") for r in batch]
        items += [r.get("DeleteRequest", {}).get("Key") for r in batch]
    elif isinstance(batch, Mapping):  # BatchGetItem
        items += list(batch.get("Keys", []))
    values = [_attribute(item[hash_key]) for item in items if isinstance(item, Mapping) and hash_key in item]
    names = p.get("ExpressionAttributeNames") or {}
    for left, placeholder in re.findall(r"([#\w.]+)\s*=\s*(:\w+)", p.get("KeyConditionExpression") or ""):
        if names.get(left, left) == hash_key:
            values.append(_attribute(p["ExpressionAttributeValues"][placeholder]))
    return values or None


def request_context(
    call: Call, resource: str, principal_keys: Mapping[str, Any], clock: TagClock, *, loopback_is_secure: bool = True
) -> dict[str, Any]:
    """The condition keys AWS sets for ``call`` against ``resource`` (keys it cannot supply are absent)."""
    now = datetime.fromtimestamp(clock.now(), UTC)
    secure = is_secure(call.url) if loopback_is_secure else urlparse(call.url).scheme == "https"
    context: dict[str, Any] = {
        **principal_keys,
        "aws:CurrentTime": now,
        "aws:EpochTime": int(now.timestamp()),
        "aws:SecureTransport": secure,
        "aws:ViaAWSService": False,
        "aws:SourceIp": call.remote_addr,
    }
    if (requested := _request_tags(call)) is not None:
        context["aws:TagKeys"] = sorted(requested)
        context.update({f"aws:RequestTag/{k}": v for k, v in requested.items()})
    for k, v in _resource_tags(call, resource, clock).items():
        context[f"aws:ResourceTag/{k}"] = v
        if call.service == "secretsmanager":
            context[f"secretsmanager:ResourceTag/{k}"] = v
    p = call.params
    if call.service == "kms":
        context.update(_kms_keys(call, resource, clock))
        context["kms:CallerAccount"] = principal_keys.get("aws:PrincipalAccount")
    elif call.service == "s3" and call.action in ("ListBucket", "ListBucketVersions"):
        context.update({f"s3:{k}": p[k] for k in ("prefix", "delimiter", "max-keys") if k in p})
    elif call.service == "s3" and "x-amz-server-side-encryption" in {k.lower() for k in call.headers}:
        header = next(v for k, v in call.headers.items() if k.lower() == "x-amz-server-side-encryption")
        context["s3:x-amz-server-side-encryption"] = header
    elif call.service == "dynamodb" and resource != "*":
        context["dynamodb:LeadingKeys"] = _leading_keys(call, resource)
    elif call.service == "secretsmanager":
        context["secretsmanager:Name"] = p.get("Name") if call.action == "CreateSecret" else None
        context["secretsmanager:SecretId"] = p.get("SecretId")
    elif call.service == "sts":
        for key in ("RoleSessionName", "ExternalId", "DurationSeconds", "SourceIdentity"):
            context[f"sts:{key}"] = p.get(key)
    return {k: v for k, v in context.items() if v is not None}


# ---- the principal ------------------------------------------------------------------------------------------


def _organization(account: str) -> str | None:
    from moto.organizations.models import organizations_backends

    master, partition = organizations_backends.master_accounts.get(account, (account, "aws"))
    if master not in organizations_backends:
        return None
    org = organizations_backends[master][partition].org
    return None if org is None else str(org.id)


def principal_of(access_key: Any) -> tuple[Principal, dict[str, Any]]:
    """The principal behind moto's access key object (an IAM user's key, a role session's, or a registered root
    key), and the global keys AWS sets for it (IAM User Guide, "AWS global condition context keys": aws:PrincipalArn,
    aws:PrincipalAccount, aws:PrincipalType, aws:userid, aws:username, aws:PrincipalTag/*, aws:PrincipalOrgID)."""
    from moto.iam.access_control import AssumedRoleAccessKey, IAMUserAccessKey
    from moto.iam.exceptions import NotFoundException
    from moto.sts.models import sts_backends

    account, partition = access_key.account_id, access_key.partition
    keys: dict[str, Any] = {"aws:PrincipalAccount": account, "aws:PrincipalOrgID": _organization(account)}
    tags: dict[str, str] = {}
    if isinstance(access_key, IAMUserAccessKey):
        user = access_key.backend.get_user(access_key._owner_user_name)
        principal = Principal(arn=user.arn, account=account)
        keys.update({"aws:PrincipalType": "User", "aws:userid": user.id, "aws:username": user.name})
        tags = _tags(access_key.backend.list_user_tags(user.name))
    elif isinstance(access_key, AssumedRoleAccessKey):
        session = next(
            s for s in sts_backends[account][partition].assumed_roles if s.access_key_id == access_key._access_key_id
        )
        try:
            role = access_key.backend.get_role_by_arn(session.role_arn)
        except NotFoundException:  # the role was deleted since
            role = None
        role_arn = role.arn if role is not None else session.role_arn
        principal = Principal(arn=role_arn, account=account, session_arn=access_key.arn)
        keys.update({"aws:PrincipalType": "AssumedRole"})
        if role is not None:
            keys["aws:userid"] = f"{role.id}:{session.session_name}"
            tags = _tags(role.tags)
    else:  # a registered root key (local.iam.enforce.register_root)
        principal = Principal(arn=access_key.arn, account=account)
        keys.update({"aws:PrincipalType": "Account", "aws:userid": account})
    keys["aws:PrincipalArn"] = principal.arn
    keys.update({f"aws:PrincipalTag/{k}": v for k, v in tags.items()})
    return principal, {k: v for k, v in keys.items() if v is not None}


def identity_documents(access_key: Any) -> list[str]:
    """The caller's identity policy documents (inline and attached; a user's groups' too), as moto collects them."""
    from moto.iam.models import Policy

    documents = []
    for policy in access_key.collect_policies():
        if isinstance(policy, Policy):
            documents.append(next(v.document for v in policy.versions if v.is_default))
        elif isinstance(policy, str):
            documents.append(policy)
        else:
            documents.append(policy["policy_document"])
    return documents
