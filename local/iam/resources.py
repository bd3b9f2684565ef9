"""What AWS authorises one request against: the resource ARNs, from the embedded AWS's state.

moto authorises most requests against ``*``; :func:`resources` gives the ARNs AWS uses (IAM User Guide / each
service's "Actions, resources, and condition keys" page): the KMS key ARN even when the key is addressed by alias (alias
operations: the alias ARN and every key the alias points at before and after), the secret's real ARN (its random
suffix included; CreateSecret: ``secret:NAME-??????``), the DynamoDB table (``/index/I`` for an index), the SNS topic,
the SQS queue, the role of sts:AssumeRole.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

from .call import Call

__all__ = ["resources"]


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
