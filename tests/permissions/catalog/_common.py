"""Building blocks of the catalog: the app's functions, ARN templates, and the requests AWS adds to a call.

Sources for the mappings between API operations and what AWS authorises (each named where it is used):
- Secrets Manager User Guide, "Secret encryption and decryption in AWS Secrets Manager": with a customer managed
  key, Secrets Manager calls KMS GenerateDataKey (CreateSecret, PutSecretValue) and Decrypt (GetSecretValue, and to
  check a new version) on the caller's behalf, with ``kms:ViaService`` ``secretsmanager.<region>.amazonaws.com`` and
  the encryption context ``SecretARN``; the caller needs both permissions on the key.
- S3 User Guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)": uploading needs ``kms:GenerateDataKey``,
  reading ``kms:Decrypt``, copying both; with an S3 Bucket Key (template.yaml enables it) the encryption context is
  the bucket ARN. ``kms:ViaService`` is ``s3.<region>.amazonaws.com``.
- DynamoDB: every item request carries ``dynamodb:LeadingKeys``, its partition key value(s) (DynamoDB Developer Guide,
  "Using IAM policy conditions for fine-grained access control").
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.permissions.model import Access, Key, Value

__all__ = [
    "API",
    "AUTO_ID",
    "BEARER",
    "DATA_KEY",
    "KEY_EVENTS",
    "KEY_EVENTS_FUNCTIONS",
    "NOTIFY",
    "ROTATE_AUTOID",
    "ROTATE_SESSION",
    "ROTATE_SIGNING",
    "ROTATE_TRANSFER",
    "S3_EVENTS",
    "SIGNING_ALIAS",
    "SIGNING_KEY",
    "SIGNING_KEY_TAGS",
    "TABLE",
    "TRANSFER_BUCKET",
    "functions",
    "item",
    "maybe_missing",
    "missing",
    "obj",
    "resource_tags",
    "secret",
    "secret_read",
    "secret_write",
    "signing",
    "through_s3",
    "through_secrets_manager",
]

# The app's functions, by the names chalice gives them (app.py; local.provision.app_functions reads them).
API = "api_handler"  # every route chalice serves
AUTO_ID = "auto_id"  # POST /auto-id, unauthenticated: API Gateway's proxy integration of template.yaml's RestAPI
BEARER = "bearer"  # the session-token authorizer
ROTATE_SIGNING = "rotate_signing_keys"
ROTATE_TRANSFER = "rotate_transfer_secrets"
ROTATE_AUTOID = "rotate_autoid_keys"
ROTATE_SESSION = "rotate_session_key"  # Secrets Manager's rotation function of the session key
S3_EVENTS = "s3_object_events"  # the SQS queue S3 notifies
KEY_EVENTS_FUNCTIONS = "key_events"  # the key-events topic


def functions(*names: str) -> frozenset[str]:
    return frozenset(names)


TABLE = "arn:aws:dynamodb:{region}:{account}:table/{state_table}"
TRANSFER_BUCKET = "arn:aws:s3:::{transfer_bucket}"
DATA_KEY = "arn:aws:kms:{region}:{account}:key/<data-key-id>"
SIGNING_KEY = "arn:aws:kms:{region}:{account}:key/<signing-key-id>"
SIGNING_ALIAS = "arn:aws:kms:{region}:{account}:alias/{prefix}/signing/<slot>"
KEY_EVENTS = "arn:aws:sns:{region}:{account}:{key_events_topic}"
NOTIFY = "arn:aws:sns:{region}:{account}:{notify_topic}"
# A token-signing key's tags, as KmsKeyStore.create writes them (the catalog test compares them with the code's).
SIGNING_KEY_TAGS: Mapping[str, str] = {
    "credport:prefix": "{prefix}",
    "credport:purpose": "token-signing",
    "credport:label": "<label>",
}


def secret(name: str) -> str:
    """A secret's ARN: its name, then ``-`` and six random characters (Secrets Manager User Guide, "Secret ARN")."""
    return "arn:aws:secretsmanager:{region}:{account}:secret:" + name + "-<suffix>"


def missing(secret_arn: str) -> str:
    """What a request naming a secret that does not exist (yet) is authorised against: no random suffix, there is
    none to know (CreateSecret; DescribeSecret of a name before it is created)."""
    return secret_arn.removesuffix("-<suffix>")


def maybe_missing(action: str, secret_arn: str, context: Mapping[str, Value] | None = None) -> tuple[Access, ...]:
    """A request by name on a secret that may not exist yet: both forms of its resource occur."""
    return tuple(Access(action, arn, dict(context or {})) for arn in (secret_arn, missing(secret_arn)))


def obj(bucket: str, key: str) -> str:
    return "arn:aws:s3:::{" + bucket + "}/" + key


def item(action: str, *partition_keys: str) -> Access:
    return Access(f"dynamodb:{action}", TABLE, {"dynamodb:LeadingKeys": partition_keys})


def through_secrets_manager(action: str, secret_arn: str) -> Access:
    """The data key used by Secrets Manager for a secret it encrypts under it."""
    context: dict[str, Value] = {
        "kms:ViaService": "secretsmanager.{region}.amazonaws.com",
        "kms:CallerAccount": "{account}",
        "kms:ResourceAliases": ("{data_alias}",),
        "kms:EncryptionContext:SecretARN": secret_arn,
    }
    return Access(f"kms:{action}", DATA_KEY, context, key=Key.DATA)


def through_s3(action: str) -> Access:
    """The data key used by S3 for an object of the transfer bucket (SSE-KMS by default, with a Bucket Key)."""
    context: dict[str, Value] = {
        "kms:ViaService": "s3.{region}.amazonaws.com",
        "kms:CallerAccount": "{account}",
        "kms:ResourceAliases": ("{data_alias}",),
        "kms:EncryptionContext:aws:s3:arn": TRANSFER_BUCKET,
    }
    return Access(f"kms:{action}", DATA_KEY, context, key=Key.DATA)


def resource_tags(tags: Mapping[str, str]) -> dict[str, Value]:
    """The context of a request on an existing resource carrying ``tags`` (as the code writes them)."""
    return {f"aws:ResourceTag/{k}": v for k, v in tags.items()}


def secret_read(secret_arn: str, *, data_key: bool = True, tags: Mapping[str, str] | None = None) -> tuple[Access, ...]:
    read = Access("secretsmanager:GetSecretValue", secret_arn, resource_tags(tags or {}))
    return (read, through_secrets_manager("Decrypt", secret_arn)) if data_key else (read,)


def secret_write(action: str, secret_arn: str, context: Mapping[str, Value] | None = None) -> tuple[Access, ...]:
    """CreateSecret / PutSecretValue of a secret under the data key: the write, and both KMS requests (whose
    encryption context names the secret's full ARN, which Secrets Manager knows by then)."""
    resource = missing(secret_arn) if action == "CreateSecret" else secret_arn
    return (
        Access(f"secretsmanager:{action}", resource, dict(context or {})),
        through_secrets_manager("GenerateDataKey", secret_arn),
        through_secrets_manager("Decrypt", secret_arn),
    )


def signing(action: str, resource: str = SIGNING_KEY, *, by_alias: bool = False) -> Access:
    """A request on a token-signing key: its tags are in the context once they are in force (the check also
    evaluates the key as just created, tags not yet in force: see tests.permissions.check)."""
    context: dict[str, Value] = {f"aws:ResourceTag/{k}": v for k, v in SIGNING_KEY_TAGS.items()}
    context["kms:CallerAccount"] = "{account}"
    if by_alias:
        context["kms:RequestAlias"] = "alias/{prefix}/signing/<slot>"
        context["kms:ResourceAliases"] = ("alias/{prefix}/signing/<slot>",)
    return Access(f"kms:{action}", resource, context, key=Key.SIGNING)
