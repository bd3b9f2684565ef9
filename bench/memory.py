"""In-memory stand-ins for the AWS adapters, so a benchmark measures credport's own work, not moto's.

They implement only what the measured paths call, with the adapters' semantics (conditional puts raise
``AwsConflict``, missing items ``AwsNotFound``)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.errors import AwsConflict, AwsNotFound
from chalicelib.aws.secrets import CURRENT, PREVIOUS, SecretVersion
from chalicelib.aws.sts import TemporaryCredentials

__all__ = ["MemoryObjects", "MemorySecrets", "MemorySts", "MemoryTable"]


class MemorySecrets:
    def __init__(self) -> None:
        self.versions: dict[str, list[tuple[str, str | bytes, set[str]]]] = {}

    def create(self, name: str, value: str | bytes, **_: Any) -> tuple[str, str]:
        version = str(uuid.uuid4())
        self.versions[name] = [(version, value, {CURRENT})]
        return name, version

    def put_value(self, secret_id: str, value: str | bytes, *, client_request_token: str, **_: Any) -> str:
        versions = self.versions.setdefault(secret_id, [])
        for version, stored, _stages in versions:
            if version == client_request_token:
                if stored != value:
                    raise AwsConflict("secretsmanager", "PutSecretValue", "ResourceExistsException")
                return version
        for _version, _value, stages in versions:
            if CURRENT in stages:
                stages.discard(CURRENT)
                stages.add(PREVIOUS)
            else:
                stages.discard(PREVIOUS)
        versions.append((client_request_token, value, {CURRENT}))
        return client_request_token

    def create_or_add_version(
        self, name: str, value: str | bytes, *, client_request_token: str, **_: Any
    ) -> tuple[str, str]:
        if name not in self.versions:
            self.versions[name] = []
        return name, self.put_value(name, value, client_request_token=client_request_token)

    def get_value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> SecretVersion:
        for version, value, stages in self.versions.get(secret_id, []):
            if version == version_id or (version_id is None and (stage or CURRENT) in stages):
                return SecretVersion(secret_id, secret_id, version, tuple(stages), None, value)
        raise AwsNotFound("secretsmanager", "GetSecretValue", "ResourceNotFoundException")


class MemoryTable:
    def __init__(self) -> None:
        self.items: dict[tuple[Any, Any], dict[str, Any]] = {}

    def put(
        self, item: Mapping[str, Any], *, if_absent: str | None = None, if_equals: tuple[str, Any] | None = None
    ) -> None:
        key = (item["pk"], item.get("sk"))
        existing = self.items.get(key)
        if if_absent and existing is not None:
            raise AwsConflict("dynamodb", "PutItem", "ConditionalCheckFailedException")
        if if_equals and (existing is None or existing.get(if_equals[0]) != if_equals[1]):
            raise AwsConflict("dynamodb", "PutItem", "ConditionalCheckFailedException")
        self.items[key] = dict(item)

    def get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        item = self.items.get((key["pk"], key.get("sk")))
        return dict(item) if item is not None else None

    def query(self, partition_attr: str, partition_value: Any) -> Iterator[dict[str, Any]]:
        return iter([dict(v) for (pk, _), v in sorted(self.items.items()) if pk == partition_value])


@dataclass
class _Stored:
    body: bytes


@dataclass
class _Got:
    body: bytes


class MemoryObjects:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, bucket: str, key: str, body: bytes, **_: Any) -> str | None:
        self.objects[(bucket, key)] = body
        return None

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> _Got:
        try:
            return _Got(self.objects[(bucket, key)])
        except KeyError:
            raise AwsNotFound("s3", "GetObject", "NoSuchKey") from None

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        return iter(sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix)))

    def purge(self, bucket: str, key: str) -> int:
        return 1 if self.objects.pop((bucket, key), None) is not None else 0


class MemorySts:
    def assume_role(self, role_arn: str, session_name: str, **_: Any) -> TemporaryCredentials:
        expiration = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return TemporaryCredentials("ASIA" + "A" * 16, expiration, f"{role_arn}/{session_name}", "s" * 40, "t" * 300)
