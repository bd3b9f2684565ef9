"""KMS adapter: asymmetric signing keys behind aliases, and symmetric data keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.aws.errors import AwsNotFound, AwsRejected, aws_call

__all__ = ["UNUSABLE_KEY_CODES", "KeyInfo", "KeyService", "PublicKeyInfo"]

# What KMS answers a request to use a key that exists but cannot be used: a Disabled key (DisabledException), one
# PendingDeletion or PendingImport (KMSInvalidStateException), a symmetric key asked for a public key
# (UnsupportedOperationException). KMS Developer Guide, "Key states of AWS KMS keys"; API Reference, GetPublicKey.
UNUSABLE_KEY_CODES = frozenset({"DisabledException", "KMSInvalidStateException", "UnsupportedOperationException"})


@dataclass(frozen=True)
class KeyInfo:
    arn: str
    key_id: str
    state: str
    key_spec: str
    usage: str
    created_at: datetime | None
    description: str = ""


@dataclass(frozen=True)
class PublicKeyInfo:
    arn: str
    der: bytes
    key_spec: str
    signing_algorithms: tuple[str, ...]
    usage: str = ""


class KeyService:
    def __init__(self, client: Any) -> None:
        self._client = client

    def sign(self, key_id: str, message: bytes, algorithm: str, *, digest: bool = False) -> bytes:
        """Sign inside KMS (the private key never leaves it): the raw message, which KMS hashes (at most 4096 bytes),
        or with ``digest`` the message's hash itself (KMS API Reference, Sign: ``MessageType``)."""
        message_type = "DIGEST" if digest else "RAW"
        with aws_call("kms", "Sign"):
            response = self._client.sign(
                KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=algorithm
            )
        return bytes(response["Signature"])

    def public_key(self, key_id: str) -> PublicKeyInfo:
        with aws_call("kms", "GetPublicKey"):
            response = self._client.get_public_key(KeyId=key_id)
        return PublicKeyInfo(
            arn=response["KeyId"],
            der=bytes(response["PublicKey"]),
            key_spec=response.get("KeySpec") or response.get("CustomerMasterKeySpec", ""),
            signing_algorithms=tuple(response.get("SigningAlgorithms", ())),
            usage=response.get("KeyUsage", ""),
        )

    def usable_public_key(self, key_id: str) -> PublicKeyInfo | None:
        """The public key of the key ``key_id`` names (an alias is resolved by KMS, and ``arn`` is then the key's),
        or None when there is no such key or alias, or when the key cannot be used (:data:`UNUSABLE_KEY_CODES`): one
        call, where DescribeKey and then GetPublicKey took two. Any other refusal (AccessDenied) is raised."""
        try:
            return self.public_key(key_id)
        except AwsNotFound:
            return None
        except AwsRejected as refused:
            if refused.aws_code in UNUSABLE_KEY_CODES:
                return None
            raise

    def create_key(
        self,
        *,
        description: str,
        key_spec: str,
        usage: str,
        tags: Mapping[str, str] | None = None,
        policy: str | None = None,
    ) -> KeyInfo:
        """A new key. ``policy`` is its key policy (AWS's default key policy when None); KMS refuses a policy that
        would not let the caller change it later (the lockout safety check, never bypassed here)."""
        args: dict[str, Any] = {
            "Description": description,
            "KeySpec": key_spec,
            "KeyUsage": usage,
            "Tags": [{"TagKey": k, "TagValue": v} for k, v in (tags or {}).items()],
        }
        if policy is not None:
            args["Policy"] = policy
        with aws_call("kms", "CreateKey"):
            response = self._client.create_key(**args)
        return _key_info(response["KeyMetadata"])

    def describe(self, key_id: str) -> KeyInfo:
        with aws_call("kms", "DescribeKey"):
            response = self._client.describe_key(KeyId=key_id)
        return _key_info(response["KeyMetadata"])

    def key_policy(self, key_id: str) -> dict[str, Any]:
        """The key's policy document (KMS keeps one, named "default")."""
        with aws_call("kms", "GetKeyPolicy"):
            response = self._client.get_key_policy(KeyId=_bare_id(key_id), PolicyName="default")
        document: dict[str, Any] = json.loads(response["Policy"])
        return document

    def alias_target(self, alias: str) -> KeyInfo | None:
        """The key an alias points at, or None when the alias does not exist."""
        try:
            return self.describe(alias)
        except AwsNotFound:
            return None

    def set_alias(self, alias: str, key_id: str) -> None:
        """Point ``alias`` at ``key_id``, creating the alias if needed."""
        try:
            with aws_call("kms", "UpdateAlias"):
                self._client.update_alias(AliasName=alias, TargetKeyId=key_id)
        except AwsNotFound:
            with aws_call("kms", "CreateAlias"):
                self._client.create_alias(AliasName=alias, TargetKeyId=key_id)

    def delete_alias(self, alias: str) -> None:
        try:
            with aws_call("kms", "DeleteAlias"):
                self._client.delete_alias(AliasName=alias)
        except AwsNotFound:
            pass

    def disable(self, key_id: str) -> None:
        with aws_call("kms", "DisableKey"):
            self._client.disable_key(KeyId=_bare_id(key_id))

    def schedule_deletion(self, key_id: str, *, days: int = 7) -> None:
        with aws_call("kms", "ScheduleKeyDeletion"):
            self._client.schedule_key_deletion(KeyId=_bare_id(key_id), PendingWindowInDays=days)

    def encrypt(self, key_id: str, plaintext: bytes, *, context: Mapping[str, str]) -> bytes:
        with aws_call("kms", "Encrypt"):
            response = self._client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=dict(context))
        return bytes(response["CiphertextBlob"])

    def decrypt(self, ciphertext: bytes, *, key_id: str, context: Mapping[str, str]) -> bytes:
        # KeyId pins the key: a ciphertext made under any other key is refused by KMS.
        with aws_call("kms", "Decrypt"):
            response = self._client.decrypt(CiphertextBlob=ciphertext, KeyId=key_id, EncryptionContext=dict(context))
        return bytes(response["Plaintext"])


def _bare_id(key: str) -> str:
    """A key id from an id or key ARN. AWS takes either; moto's DisableKey and ScheduleKeyDeletion fail on
    ARNs, and the bare id is valid everywhere."""
    return key.rsplit("key/", 1)[1] if key.startswith("arn:") and ":key/" in key else key


def _key_info(meta: Mapping[str, Any]) -> KeyInfo:
    return KeyInfo(
        arn=meta["Arn"],
        key_id=meta["KeyId"],
        state=meta.get("KeyState", ""),
        key_spec=meta.get("KeySpec") or meta.get("CustomerMasterKeySpec", ""),
        usage=meta.get("KeyUsage", ""),
        created_at=meta.get("CreationDate"),
        description=str(meta.get("Description", "")),
    )
