"""Enrolled auto-id clients: a record in the state table, entropy generations in the transfer bucket.

The record holds the client's policy (secrets by exact name or ``prefix*``; IAM roles by exact ARN or
``prefix*``), its status, its current entropy generation and the older generations still accepted with the
time their grace ends. Every write is conditional on the record's ``revision``, so a revocation can never be
undone by a rotation racing it. Entropy objects (1 MiB from the CSPRNG each) are written SSE-KMS under the
data key before the record names them, and deleted only after the record stopped naming them: a crash at
any point leaves a record whose generations all exist. Enrolment refuses a policy that could reach a secret
or role auto-id never serves (:mod:`chalicelib.autoid.scope`); a record's policy is read back as stored, and
serving applies the same scope again.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib import base64url
from chalicelib.autoid.exceptions import InvalidPolicy
from chalicelib.autoid.protocol import ENTROPY_BYTES, MAX_ROLE_ARN, ROLE_HEAD, ROLE_SEGMENT
from chalicelib.autoid.scope import ServingScope
from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsConflict
from chalicelib.aws.s3 import ObjectStore
from chalicelib.config import audience_matches
from chalicelib.errors import BadRequest, Conflict, CredportError, NotFound

__all__ = [
    "CLIENT_ID",
    "ENTROPY_PREFIX",
    "ClientPolicy",
    "ClientRecord",
    "ClientRegistry",
    "Enrollment",
    "InvalidPolicy",
]

CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ENTROPY_PREFIX = "autoid/"
_PARTITION = "autoid-clients"
_SECRET_PATTERN = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}\*?")
# Exact ARN or ``prefix*`` only (matching is by prefix, see ``audience_matches``): an account wildcard or an
# empty role name would be accepted here and then never match any role, so both are refused.
_ROLE_PATTERN = re.compile(
    rf"{ROLE_HEAD}(?:{ROLE_SEGMENT})*(?:(?!\.{{1,2}}$)[\w+=,.@-]{{1,64}}|[\w+=,.@-]{{0,64}}\*)", re.ASCII
)
ACTIVE, REVOKED = "active", "revoked"


@dataclass(frozen=True)
class ClientPolicy:
    secrets: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.secrets:
            if not _SECRET_PATTERN.fullmatch(pattern) or pattern == "*":
                raise InvalidPolicy(f"{pattern!r} is not a secret name or 'prefix*' (a bare '*' is refused).")
        for pattern in self.roles:
            if len(pattern) > MAX_ROLE_ARN or not _ROLE_PATTERN.fullmatch(pattern):
                raise InvalidPolicy(f"{pattern!r} is not an IAM role ARN or 'arn:...:role/prefix*'.")
        if not self.secrets and not self.roles:
            raise InvalidPolicy("A client must be allowed at least one secret or role.")

    def allows_secret(self, name: str) -> bool:
        return any(audience_matches(pattern, name) for pattern in self.secrets)

    def allows_role(self, arn: str) -> bool:
        return any(audience_matches(pattern, arn) for pattern in self.roles)

    def document(self) -> dict[str, list[str]]:
        return {"secrets": list(self.secrets), "roles": list(self.roles)}


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    status: str
    policy: ClientPolicy
    generation: int
    # Older generations still accepted, with the unix time their grace ends.
    previous: Mapping[int, int]
    # Each generation's object id: a fresh random name per write, so two racing rotations never overwrite
    # the bytes a client may already hold (only the run whose record write wins is ever named).
    objects: Mapping[int, str]
    revision: int
    created_at: int
    rotated_at: int
    last_rotation_id: str = ""
    revoked_at: int | None = None

    def accepts_generation(self, generation: int, now: float) -> bool:
        if generation == self.generation:
            return True
        valid_until = self.previous.get(generation)
        return valid_until is not None and now <= valid_until

    def generations(self) -> tuple[int, ...]:
        return (self.generation, *sorted(self.previous, reverse=True))

    def object_key(self, generation: int) -> str:
        return f"{ENTROPY_PREFIX}{self.client_id}/{self.objects[generation]}"

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": _PARTITION,
            "sk": self.client_id,
            "status": self.status,
            "policy": self.policy.document(),
            "generation": self.generation,
            "previous": {str(g): until for g, until in self.previous.items()},
            "objects": {str(g): name for g, name in self.objects.items()},
            "revision": self.revision,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "last_rotation_id": self.last_rotation_id,
        }
        if self.revoked_at is not None:
            item["revoked_at"] = self.revoked_at
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ClientRecord:
        policy = item["policy"]
        return cls(
            client_id=item["sk"],
            status=item["status"],
            policy=ClientPolicy(tuple(policy.get("secrets", [])), tuple(policy.get("roles", []))),
            generation=int(item["generation"]),
            previous={int(g): int(until) for g, until in item.get("previous", {}).items()},
            objects={int(g): str(name) for g, name in item.get("objects", {}).items()},
            revision=int(item["revision"]),
            created_at=int(item["created_at"]),
            rotated_at=int(item["rotated_at"]),
            last_rotation_id=str(item.get("last_rotation_id", "")),
            revoked_at=int(item["revoked_at"]) if item.get("revoked_at") is not None else None,
        )

    def public_view(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "status": self.status,
            "policy": self.policy.document(),
            "generation": self.generation,
            "previous_generations": {str(g): until for g, until in sorted(self.previous.items())},
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True)
class Enrollment:
    record: ClientRecord
    entropy: bytes = field(repr=False)

    def entropy_b64(self) -> str:
        return base64url.text(self.entropy)


class ClientRegistry:
    def __init__(
        self,
        table: ItemTable,
        s3: ObjectStore,
        *,
        bucket: str,
        kms_key_id: str,
        grace_period: int,
        scope: ServingScope,
        clock: Callable[[], float] = time.time,
        cache_bytes: int = 16 * ENTROPY_BYTES,
    ) -> None:
        self._table = table
        self._scope = scope
        self._s3 = s3
        self._bucket = bucket
        self._kms_key_id = kms_key_id
        self._grace = grace_period
        self._clock = clock
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_limit = max(1, cache_bytes // ENTROPY_BYTES)
        self._lock = threading.Lock()

    # Reading ------------------------------------------------------------------------------------

    def get(self, client_id: str) -> ClientRecord | None:
        item = self._table.get({"pk": _PARTITION, "sk": client_id})
        return ClientRecord.from_item(item) if item else None

    def require(self, client_id: str) -> ClientRecord:
        record = self.get(client_id)
        if record is None:
            raise NotFound(f"No auto-id client {client_id!r} is enrolled.")
        return record

    def all(self) -> Iterator[ClientRecord]:
        for item in self._table.query("pk", _PARTITION):
            yield ClientRecord.from_item(item)

    def entropy(self, record: ClientRecord, generation: int) -> bytes:
        """A generation's bytes; objects never change, so containers keep recent ones in memory."""
        key = record.object_key(generation)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self._s3.get(self._bucket, key, max_bytes=ENTROPY_BYTES).body
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)
        return data

    # Changing -----------------------------------------------------------------------------------

    def enroll(self, client_id: str, policy: ClientPolicy) -> Enrollment:
        if not CLIENT_ID.fullmatch(client_id):
            raise BadRequest("A client id is 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit.")
        # Before anything is read or written: a policy reaching beyond what auto-id serves is never stored.
        problems = self._scope.policy_problems(policy.secrets, policy.roles)
        if problems:
            raise InvalidPolicy(f"This policy is refused: {'; '.join(problems)}.")
        existing = self.get(client_id)
        if existing is not None:
            raise Conflict(f"Auto-id client {client_id!r} already exists ({existing.status}).")
        name, entropy = self._write_generation(client_id, 1)
        now = int(self._clock())
        record = ClientRecord(client_id, ACTIVE, policy, 1, {}, {1: name}, 1, now, now)
        try:
            self._table.put(record.item(), if_absent="sk")
        except AwsConflict:
            self._s3.purge(self._bucket, record.object_key(1))
            raise Conflict(f"Auto-id client {client_id!r} already exists.") from None
        # A crashed earlier attempt may have left its generation object behind; the next rotation would too.
        with contextlib.suppress(CredportError):
            self._delete_unused(record)
        return Enrollment(record, entropy)

    def rotate(self, client_id: str, rotation_id: str, *, end_grace: bool = False) -> ClientRecord:
        """A new generation; the one it replaces stays accepted for the grace period (none with
        ``end_grace``). Running the same ``rotation_id`` again only finishes that run's purge."""
        record = self.require(client_id)
        if record.status != ACTIVE or (record.last_rotation_id == rotation_id and not end_grace):
            self._delete_unused(record)  # what a run that crashed after its record write did not purge yet
            return record
        now = int(self._clock())
        new_generation = record.generation + 1
        name, _ = self._write_generation(client_id, new_generation)
        previous = {} if end_grace else {record.generation: now + self._grace, **self._live(record.previous, now)}
        updated = replace(
            record,
            generation=new_generation,
            previous=previous,
            objects={new_generation: name, **{g: record.objects[g] for g in previous}},
            revision=record.revision + 1,
            rotated_at=now,
            last_rotation_id=rotation_id,
        )
        self._save(record, updated)
        self._delete_unused(updated)
        return updated

    def end_grace(self, client_id: str) -> ClientRecord:
        """Refuse every generation but the current one, now (an old bundle leaked, say)."""
        record = self.require(client_id)
        updated = replace(
            record,
            previous={},
            objects={record.generation: record.objects[record.generation]},
            revision=record.revision + 1,
        )
        self._save(record, updated)
        self._delete_unused(updated)
        return updated

    def revoke(self, client_id: str) -> ClientRecord:
        """Effective at once: the service reads the record on every request. The entropy is deleted too."""
        record = self.require(client_id)
        if record.status == REVOKED:
            self._delete_unused(record)  # finish the purge of a revocation that crashed after its record write
            return record
        updated = replace(
            record, status=REVOKED, previous={}, objects={}, revision=record.revision + 1, revoked_at=int(self._clock())
        )
        self._save(record, updated)
        self._delete_unused(updated)
        return updated

    # Internals ----------------------------------------------------------------------------------

    def _write_generation(self, client_id: str, generation: int) -> tuple[str, bytes]:
        entropy = os.urandom(ENTROPY_BYTES)
        name = f"gen-{generation}-{secrets.token_hex(8)}.bin"
        self._s3.put(self._bucket, f"{ENTROPY_PREFIX}{client_id}/{name}", entropy, kms_key_id=self._kms_key_id)
        return name, entropy

    def _save(self, old: ClientRecord, new: ClientRecord) -> None:
        try:
            self._table.put(new.item(), if_equals=("revision", old.revision))
        except AwsConflict:
            raise Conflict(f"Auto-id client {old.client_id!r} changed meanwhile; run the command again.") from None

    def _live(self, previous: Mapping[int, int], now: int) -> dict[int, int]:
        return {g: until for g, until in previous.items() if now <= until}

    def _delete_unused(self, record: ClientRecord) -> None:
        """Generations the record no longer names (including any a crashed run left behind)."""
        named = {record.object_key(g) for g in record.objects}
        for key in list(self._s3.list_keys(self._bucket, f"{ENTROPY_PREFIX}{record.client_id}/")):
            if key not in named:
                self._s3.purge(self._bucket, key)
        with self._lock:
            for key in [k for k in self._cache if k.startswith(f"{ENTROPY_PREFIX}{record.client_id}/")]:
                if key not in named:
                    del self._cache[key]
