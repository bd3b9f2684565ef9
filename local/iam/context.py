"""What AWS authorises one request against, and the condition context it evaluates, from the embedded AWS's state.

moto authorises most requests against ``*``; :func:`resources` gives the ARNs AWS uses (IAM User Guide / each
service's "Actions, resources, and condition keys" page): the KMS key ARN even when the key is addressed by alias (alias
operations: the alias ARN and every key the alias points at before and after), the secret's real ARN (its random
suffix included; CreateSecret: ``secret:NAME-??????``), the DynamoDB table (``/index/I`` for an index), the SNS topic,
the SQS queue, the role of sts:AssumeRole. :func:`request_context` gives the keys AWS sets for it: the principal's
global keys, aws:CurrentTime/EpochTime, aws:SecureTransport, aws:RequestTag/* and aws:TagKeys from the request's tags,
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
import json
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from .policy import Principal

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

# Credential-scope service name -> IAM action prefix, where they differ.
_PREFIX = {"tagging": "tag", "monitoring": "cloudwatch", "email": "ses"}


@dataclass(frozen=True)
class Call:
    """One request as moto received it: the IAM action, where it went, and its parameters."""

    service: str  # IAM action prefix ("kms", "s3", "tag", ...)
    action: str  # "Sign", "GetObject", ...
    region: str
    account: str
    partition: str
    params: Mapping[str, Any]
    url: str
    remote_addr: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.action}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


def _params(response: Any) -> dict[str, Any]:
    """moto's parsed parameters (query and botocore-parsed protocols), else the JSON body, else the query (always
    the query for S3, whose body is the object)."""
    if response.service_name != "s3":
        parsed = getattr(response, "params", None)
        if isinstance(parsed, dict) and parsed:
            return parsed
        try:
            body = json.loads(response.body) if response.body else None
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            return body
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in dict(response.querystring).items()}


def call_of(response: Any, action: str, scope_service: str) -> Call:
    environ = getattr(getattr(response, "normalized_request", None), "environ", None) or {}
    return Call(
        service=_PREFIX.get(scope_service, scope_service),
        action=action,
        region=response.region,
        account=response.current_account,
        partition=response.partition,
        params=_params(response),
        url=response.uri,
        remote_addr=environ.get("REMOTE_ADDR"),
        headers=dict(response.headers),
    )


def is_secure(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "https":
        return True
    host = (parsed.hostname or "").lower()
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- resources ----------------------------------------------------------------------------------------------


def _kms_key_arn(call: Call, key: str) -> str | None:
    from moto.kms.models import kms_backends

    backend = kms_backends[call.account][call.region]
    try:
        key_id = backend.any_id_to_key_id(key)
    except (TypeError, AttributeError):
        return None  # an alias that does not exist
    return call.arn("kms", f"key/{key_id}") if key_id in backend.keys else None


def _kms(call: Call) -> list[str]:
    from moto.kms.models import kms_backends

    backend, p = kms_backends[call.account][call.region], call.params
    if call.action in ("CreateAlias", "UpdateAlias", "DeleteAlias"):
        alias = backend.get_alias_name(p["AliasName"])
        current = backend.get_key_id_from_alias(alias)
        if current is None and call.action != "CreateAlias":
            return []  # no such alias: KMS answers NotFoundException before any authorisation
        found = [call.arn("kms", alias)]
        found += [call.arn("kms", f"key/{current}")] if current else []
        if "TargetKeyId" in p:
            target = _kms_key_arn(call, p["TargetKeyId"])
            if target is None:
                return []
            found += [target] if target not in found else []
        return found
    key = p.get("KeyId") or (_ciphertext_key(p["CiphertextBlob"]) if call.action == "Decrypt" else None)
    if key is None or call.action == "ListAliases":
        return ["*"]
    target = _kms_key_arn(call, key)
    return [target] if target else []


def _ciphertext_key(blob: str) -> str | None:
    """The key a ciphertext was made under (Decrypt without KeyId is authorised against it); moto's blob format."""
    from moto.kms.utils import _deserialize_ciphertext_blob

    try:
        return str(_deserialize_ciphertext_blob(base64.b64decode(blob)).key_id)
    except (ValueError, TypeError, UnicodeDecodeError, struct.error):
        return None


def _secrets(call: Call) -> list[str]:
    from moto.secretsmanager.models import secretsmanager_backends

    p = call.params
    if call.action == "CreateSecret":
        return [call.arn("secretsmanager", f"secret:{p['Name']}-??????")]
    secret_id = p.get("SecretId")
    if not secret_id:
        return ["*"]
    secret = secretsmanager_backends[call.account][call.region].secrets.get(secret_id)
    if secret is not None:
        return [secret.arn]
    return [secret_id if secret_id.startswith("arn:") else call.arn("secretsmanager", f"secret:{secret_id}")]


def _dynamodb(call: Call) -> list[str]:
    p = call.params
    if "TableName" in p:
        table = f"table/{p['TableName']}"
        return [call.arn("dynamodb", f"{table}/index/{p['IndexName']}" if p.get("IndexName") else table)]
    if "RequestItems" in p:
        return [call.arn("dynamodb", f"table/{name}") for name in p["RequestItems"]]
    if "TransactItems" in p:
        names = {op["TableName"] for item in p["TransactItems"] for op in item.values()}
        return [call.arn("dynamodb", f"table/{name}") for name in sorted(names)]
    return ["*"]


def _sns(call: Call) -> list[str]:
    p = call.params
    if call.action == "CreateTopic":
        return [call.arn("sns", p["Name"])]
    arn = p.get("TopicArn") or p.get("ResourceArn")
    return [arn] if arn else ["*"]


def _sqs(call: Call) -> list[str]:
    name = call.params.get("QueueName") or str(call.params.get("QueueUrl", "")).rsplit("/", 1)[-1]
    return [call.arn("sqs", name)] if name else ["*"]


def _iam(call: Call) -> list[str]:
    p = call.params
    if "RoleName" in p:
        return [f"arn:{call.partition}:iam::{call.account}:role/{p['RoleName']}"]
    if "UserName" in p:
        return [f"arn:{call.partition}:iam::{call.account}:user/{p['UserName']}"]
    return [p["PolicyArn"]] if "PolicyArn" in p else ["*"]


_RESOLVERS: dict[str, Callable[[Call], list[str]]] = {
    "kms": _kms,
    "secretsmanager": _secrets,
    "dynamodb": _dynamodb,
    "sns": _sns,
    "sqs": _sqs,
    "iam": _iam,
}


def resources(call: Call, given: str) -> list[str]:
    """The ARNs to authorise against; ``given`` is moto's own (S3, SQS queues, sts:AssumeRole, IAM roles). Empty:
    the request names something that does not exist, and the service answers NotFound without authorising."""
    if given != "*":
        return [given]
    resolver = _RESOLVERS.get(call.service)
    return resolver(call) if resolver else ["*"]


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
