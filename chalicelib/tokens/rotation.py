"""Signing-key rotation: scheduled, on demand, and emergency revocation; every step idempotent.

The keys hold three roles (KMS aliases, or the envelope signer's roles item; see :class:`KeyStore`). A
rotation moves current -> previous and pending -> current, creates a new pending key and retires the old
previous one, so a key is published one rotation before it signs and stays published one rotation after.
A journal item in the state table records each run's plan and the step
it reached (with an optimistic version), so a crash anywhere leaves a working current key and the next run
finishes the job; two runs at once cannot both proceed. A failed step publishes an alarm on the key-events
topic and re-raises, so Lambda reports it too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsConflict
from chalicelib.aws.s3 import ObjectStore
from chalicelib.aws.sns import Publisher
from chalicelib.config import Settings
from chalicelib.observability import log_unexpected, logger, rotation_failed
from chalicelib.tokens.discovery import discovery_document, jwks_document
from chalicelib.tokens.exceptions import KeysNotReady, RotationRefused, RotationTooSoon
from chalicelib.tokens.keyring import ROLES, KeyRing, SigningKey
from chalicelib.tokens.kms_keys import KMS_JOURNAL_KEY

__all__ = ["JOURNAL_KEY", "OIDC_PREFIX", "KeyRotation", "RotationReport"]

JOURNAL_KEY = KMS_JOURNAL_KEY  # the kms signer's journal; each store names its own (KeyStore.journal_key)
OIDC_PREFIX = "oidc/.well-known/"

# The steps of each kind of run, in order. A step's work is idempotent: rerunning it is harmless.
PLANS = {
    "bootstrap": ("create_current", "create_pending", "move_aliases", "publish", "announce"),
    "rotate": ("create_pending", "move_aliases", "publish", "retire", "announce"),
    "revoke": ("create_pending", "move_aliases", "disable_revoked", "publish", "announce"),
}


@dataclass(frozen=True)
class RotationReport:
    algorithm: str
    kind: str
    rotation_id: str
    previous: str | None
    current: str
    pending: str
    retired: str | None


class KeyRotation:
    def __init__(
        self,
        table: ItemTable,
        s3: ObjectStore,
        sns: Publisher,
        settings: Settings,
        keyring: KeyRing,
        *,
        clock: Callable[[], float] = time.time,
        fail_at: Callable[[str], None] | None = None,
        published: Callable[[], list[SigningKey]] | None = None,
    ) -> None:
        self._table, self._s3, self._sns = table, s3, sns
        self._store = keyring.store  # the keys' home: the one the key ring reads
        self._journal_key = dict(self._store.journal_key)
        self._settings = settings
        self._keyring = keyring
        self._clock = clock
        self._fail_at = fail_at or (lambda _step: None)  # fault injection point for crash tests
        # What the public documents hold: every enabled algorithm's keys (the token service's), or this set's alone.
        self._published = published or self._fresh_keys

    # Entry points ----------------------------------------------------------------------------------

    def ensure_keys(self) -> RotationReport | None:
        """Bootstrap a fresh deployment (current and pending keys); None when keys already exist."""
        journal = self._journal()
        if journal is not None and journal["step"] != "done":
            return self._resume(journal)
        aliases = self._aliases()
        if aliases["current"] and aliases["pending"]:
            return None
        return self._resume(self._begin("bootstrap", aliases, journal))

    def rotate(self, *, force: bool = False) -> RotationReport:
        """One scheduled or on-demand rotation; resumes an unfinished run first."""
        self._check_configuration()
        journal = self._journal()
        if journal is not None and journal["step"] != "done":
            return self._resume(journal)
        aliases = self._aliases()
        if not (aliases["current"] and aliases["pending"]):
            return self._resume(self._begin("bootstrap", aliases, journal))
        minimum = self._settings.token_max_ttl + self._jwks_staleness
        if journal is not None and not force and self._clock() - float(journal["completed_at"]) < minimum:
            # Rotating again now would retire a key whose tokens may still be valid or cached as trusted.
            raise RotationTooSoon(f"The last rotation finished less than {minimum} seconds ago")
        return self._resume(self._begin("rotate", aliases, journal))

    def revoke_current(self) -> RotationReport:
        """Emergency: drop the current key (compromised) from the JWKS now; pending becomes current.

        The key revoked is the one current when this is called. Retrying a revocation that failed part-way
        finishes that revocation; it never revokes a second key.
        """
        target = self._store.roles()["current"]
        journal = self._journal()
        if journal is not None and journal["step"] != "done":
            if journal["kind"] == "revoke":
                return self._resume(journal)
            self._resume(journal)  # finish the rotation first; the compromised key may now be previous
            journal = self._journal()
        aliases = self._aliases()
        if target is None or target not in (aliases["current"], aliases["previous"]):
            raise RotationRefused("There is no published current key to revoke.")
        return self._resume(self._begin("revoke", aliases, journal, revoked=target))

    # Journal ---------------------------------------------------------------------------------------

    def _journal(self) -> dict[str, Any] | None:
        return self._table.get(self._journal_key)

    def _begin(
        self, kind: str, aliases: dict[str, str | None], previous: dict[str, Any] | None, revoked: str | None = None
    ) -> dict[str, Any]:
        journal = {
            **self._journal_key,
            "version": int(previous["version"]) + 1 if previous else 1,
            "kind": kind,
            "rotation_id": str(uuid.uuid4()),
            "step": "begun",
            "started_at": int(self._clock()),
            "completed_at": previous.get("completed_at", 0) if previous else 0,
            "from": {role: arn for role, arn in aliases.items() if arn},
            "keys": {},
            "attempts": 0,
        }
        if revoked is not None:
            journal["revoked"] = revoked
        self._write(journal, previous)
        logger.info("signing-key run begun", extra={"kind": kind, "rotation_id": journal["rotation_id"]})
        return journal

    def _write(self, journal: dict[str, Any], previous: dict[str, Any] | None) -> None:
        try:
            if previous is None:
                self._table.put(journal, if_absent="pk")
            else:
                self._table.put(journal, if_equals=("version", int(previous["version"])))
        except AwsConflict:
            raise KeysNotReady("Another signing-key run is in progress.") from None

    def _advance(self, journal: dict[str, Any], **changes: Any) -> dict[str, Any]:
        updated = {**journal, **changes, "version": int(journal["version"]) + 1}
        self._write(updated, journal)
        return updated

    # Running a plan --------------------------------------------------------------------------------

    def _resume(self, journal: dict[str, Any]) -> RotationReport:
        plan = PLANS[journal["kind"]]
        done = plan.index(journal["step"]) + 1 if journal["step"] in plan else 0
        journal = self._advance(journal, attempts=int(journal.get("attempts", 0)) + 1)
        for step in plan[done:]:
            self._ensure_still_ours(journal)
            try:
                self._fail_at(step)
                # A step that records something (a created key) returns the journal it wrote.
                journal = getattr(self, f"_step_{step}")(journal) or journal
            except Exception as error:
                self._alarm(journal, step, error)
                raise
            journal = self._advance(journal, step=step)
        journal = self._advance(journal, step="done", completed_at=int(self._clock()))
        self._keyring.invalidate()
        return self._report(journal)

    def _ensure_still_ours(self, journal: dict[str, Any]) -> None:
        """Stop a run another container has taken over (it resumed and advanced the journal) before this
        one repeats a side effect such as creating a key."""
        stored = self._journal()
        if stored is None or int(stored["version"]) != int(journal["version"]):
            raise KeysNotReady("Another signing-key run took over.")

    def _report(self, journal: dict[str, Any]) -> RotationReport:
        targets = self._targets(journal)
        return RotationReport(
            algorithm=self._store.algorithm,
            kind=journal["kind"],
            rotation_id=journal["rotation_id"],
            previous=targets["previous"],
            current=str(targets["current"]),
            pending=str(targets["pending"]),
            retired=self._retiring(journal),
        )

    def _targets(self, journal: dict[str, Any]) -> dict[str, str | None]:
        """Where each alias must point when the run is done."""
        old, new = journal["from"], journal["keys"]
        if journal["kind"] == "bootstrap":
            return {"previous": old.get("previous"), "current": new.get("current"), "pending": new.get("pending")}
        if journal["kind"] == "rotate":
            return {"previous": old["current"], "current": old["pending"], "pending": new.get("pending")}
        if journal["revoked"] == old.get("previous"):  # the compromised key had already become previous
            return {"previous": None, "current": old["current"], "pending": old["pending"]}
        return {"previous": old.get("previous"), "current": old["pending"], "pending": new.get("pending")}

    def _retiring(self, journal: dict[str, Any]) -> str | None:
        if journal["kind"] == "revoke":
            return str(journal["revoked"])
        old = journal["from"].get("previous")
        keep = set(self._targets(journal).values())
        return str(old) if journal["kind"] == "rotate" and old and old not in keep else None

    # Steps -----------------------------------------------------------------------------------------

    def _step_create_current(self, journal: dict[str, Any]) -> dict[str, Any] | None:
        return self._create(journal, "current")

    def _step_create_pending(self, journal: dict[str, Any]) -> dict[str, Any] | None:
        if journal["kind"] == "revoke" and journal["revoked"] != journal["from"]["current"]:
            return None  # the compromised key is already previous: current and pending stay, no new key
        return self._create(journal, "pending")

    def _create(self, journal: dict[str, Any], slot: str) -> dict[str, Any] | None:
        if slot in journal["keys"]:
            return None
        # The store finds a key made under this label before (a crash before the journal write) instead of
        # making a second one.
        key_id = self._store.create(f"{journal['rotation_id']}/{slot}")
        return self._advance(journal, keys={**journal["keys"], slot: key_id})

    def _step_move_aliases(self, journal: dict[str, Any]) -> None:
        # Order keeps a working current key at every instant: previous first, then current, then pending.
        targets = self._targets(journal)
        self._store.point({role: targets[role] for role in ROLES if targets[role] or journal["kind"] == "revoke"})

    def _step_disable_revoked(self, journal: dict[str, Any]) -> None:
        self._store.revoke(str(journal["revoked"]))

    def _step_retire(self, journal: dict[str, Any]) -> None:
        retired = self._retiring(journal)
        if retired:
            self._store.retire(retired)

    def _step_publish(self, journal: dict[str, Any]) -> None:
        self.publish()

    def _step_announce(self, journal: dict[str, Any]) -> None:
        keys = {k.role: k.kid for k in self._fresh_keys()}
        event_type = "signing-key-revoked" if journal["kind"] == "revoke" else "signing-key-rotated"
        self._sns.publish(
            self._settings.resources.key_events_topic_arn,
            _key_event(
                event_type,
                kind=journal["kind"],
                rotation_id=journal["rotation_id"],
                alg=self._store.algorithm,
                kids=keys,
            ),
            attributes={"type": event_type},
        )

    # Publishing ------------------------------------------------------------------------------------

    def _fresh_keys(self) -> list[SigningKey]:
        self._keyring.invalidate()
        return self._keyring.published()

    def publish(self) -> None:
        """Write the JWKS and discovery documents under ``oidc/`` (served at the issuer by CloudFront)."""
        self._keyring.invalidate()
        keys = self._published()
        bucket = self._settings.resources.public_bucket
        cache = f"public, max-age={self._settings.jwks_max_age}"
        documents = {
            "jwks.json": jwks_document(keys),
            "openid-configuration": discovery_document(self._settings),
        }
        for name, document in documents.items():
            self._s3.put(
                bucket,
                OIDC_PREFIX + name,
                json.dumps(document, indent=2).encode(),
                content_type="application/json",
                cache_control=cache,
            )

    # Safety ----------------------------------------------------------------------------------------

    def _check_configuration(self) -> None:
        period = self._settings.signing_key_rotation_days * 86400
        needed = self._settings.token_max_ttl + self._jwks_staleness
        if needed > period:
            raise RotationRefused(
                f"A token could outlive its key's publication: max ttl + JWKS max-age + edge cache ({needed} s) must"
                f" fit in one rotation period ({period} s)."
            )

    @property
    def _jwks_staleness(self) -> int:
        """How old a relying party's copy of the JWKS can be: its own cache (max-age), plus what a CDN in front of
        the public documents may keep (a copy fetched from the edge at the end of the edge's TTL lives on)."""
        return self._settings.jwks_max_age + self._settings.jwks_edge_max_age

    def _aliases(self) -> dict[str, str | None]:
        return self._store.roles()

    def _alarm(self, journal: dict[str, Any], step: str, error: Exception) -> None:
        log_unexpected("signing-key run failed", error, step=step, rotation_id=journal["rotation_id"])
        rotation_failed("signing-keys")  # before the key event: a failing SNS must not hide it
        try:
            self._sns.publish(
                self._settings.resources.key_events_topic_arn,
                _key_event(
                    "signing-key-rotation-failed",
                    kind=journal["kind"],
                    rotation_id=journal["rotation_id"],
                    alg=self._store.algorithm,
                    step=step,
                    error_type=type(error).__name__,
                ),
                attributes={"type": "signing-key-rotation-failed"},
            )
        except Exception as alarm_error:  # the alarm must not hide the original failure
            log_unexpected("signing-key alarm failed", alarm_error)


def _key_event(event_type: str, **fields: Any) -> dict[str, Any]:
    # Imported when a run announces something, not with this module: chalicelib.events also holds the S3 event
    # parsing (Powertools' data classes), which a container that only serves tokens never needs at its cold start.
    from chalicelib.events.key_events import key_event

    return key_event(event_type, **fields)
