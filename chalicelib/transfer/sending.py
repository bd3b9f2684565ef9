"""Secret transfer, sending side: register a client's public key, then send it a secret.

A client registers by uploading ``clients/<client_id>/public.pem`` (RSA >= 2048, SubjectPublicKeyInfo or
PKCS#1). Every object under ``clients/``, whatever its name, is first judged by its structure
(:mod:`chalicelib.transfer.key_material`), exactly the version its S3 event names (never the latest: a later
upload, delete or copy over it cannot hide it). Nothing under ``clients/`` is ever copied; only a valid public key at
exactly ``clients/<client_id>/public.pem`` is kept:

- a private key, in any form, is purged at once (every version: the bucket is versioned), copied nowhere, and
  an alarm goes out (the ``transfer-private-key-uploaded`` key event, metric ``TransferPrivateKeysPurged``);
- a file larger than :data:`~chalicelib.transfer.key_material.INSPECTION_LIMIT` is never read (the S3 event's
  size says so, and the read is bounded for a newer, larger version). Uninspected, it may hold a private key, so
  it cannot be proven harmless: every version is purged too, and only a record stays, ``quarantine/<key>.error.json``
  with the reason (``too_large``) and size, no content (metric ``TransferFilesTooLarge``). Never dead-lettered:
  a retry could never read it either. The same holds for inspected files that are not provably public
  (``not_a_public_key``, ``unexpected_key``): a raw key can look like random bytes. Any other file is purged the
  same way, whatever it looks like: a file under another name (``unexpected_key``: a certificate can carry a private
  key in an extension no check knows), a public key of the wrong kind or size (its reason);
- every purge records each version it removes as purged (ObjectFates) before removing it, so the events of the
  other versions settle instead of failing on a version that is gone.

A good key is recorded and starts the send pipeline: a new version of the client's secret, sealed to the client's key
as ``outbox/<client_id>/<version_id>.jwe``, a presigned link, and a notification (never the secret) with
the client id as a message attribute, so each client's email subscription filters to its own mail.
Every step repeats harmlessly under the same ClientRequestToken, so a redelivered event sends once.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected
from chalicelib.aws.s3 import ListedVersion, ObjectStore
from chalicelib.aws.secrets import CURRENT, PENDING, SecretStore
from chalicelib.aws.sns import Publisher
from chalicelib.envelope import EnvelopeError, PrivateKeyMaterial, public_key_from_pem, seal
from chalicelib.errors import PayloadTooLarge
from chalicelib.events import key_event
from chalicelib.internal_secrets import TRANSFER_CLIENT
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.transfer import key_material
from chalicelib.transfer.exceptions import UnknownClient
from chalicelib.transfer.fates import PURGED, TOO_LARGE, ObjectFates, object_version, settle_unreadable
from chalicelib.transfer.importer import QUARANTINE
from chalicelib.transfer.key_material import INSPECTION_LIMIT
from chalicelib.transfer.links import LinkSigner

__all__ = ["CLIENTS", "CLIENT_KEY", "OUTBOX", "SendReport", "Sender", "UnknownClient"]

CLIENTS, OUTBOX = "clients/", "outbox/"
CLIENT_INDEX = "transfer-clients"  # one item per registered client, so a schedule can list them
CLIENT_KEY = re.compile(r"clients/([a-z0-9][a-z0-9-]{0,62})/public\.pem")
DESCRIPTION = "credport transfer secret"


@dataclass(frozen=True)
class SendReport:
    client_id: str
    secret_name: str
    version_id: str
    object_key: str
    link_expires_at: int
    kid: str


class Sender:
    def __init__(
        self,
        s3: ObjectStore,
        secrets_store: SecretStore,
        table: ItemTable,
        publisher: Publisher,
        *,
        bucket: str,
        prefix: str,
        notify_topic: str,
        key_events_topic: str,
        links: LinkSigner,
        link_ttl: int,
        kms_key_id: str | None = None,
        fates: ObjectFates | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3, self._secrets, self._table, self._sns, self._fates = s3, secrets_store, table, publisher, fates
        self._bucket, self._prefix, self._notify, self._alarms = bucket, prefix, notify_topic, key_events_topic
        self._links, self._link_ttl, self._kms_key_id, self._clock = links, link_ttl, kms_key_id, clock

    def secret_name(self, client_id: str) -> str:
        # A kind registered with every other secret credport owns (auto-id never serves one).
        return TRANSFER_CLIENT.member(self._prefix, client_id)

    def on_client_object(
        self,
        key: str,
        etag: str,
        *,
        version: str | None = None,
        size: int | None = None,
        version_id: str | None = None,
    ) -> SendReport | None:
        """An object under clients/: a registration (then a first send), or something to purge. ``etag`` (the
        event's version id, else its ETag) makes the send's token; ``version`` (the event's
        :func:`~chalicelib.transfer.fates.object_version`) recognises a redelivery once the object is gone;
        ``size`` is the event's, so a file too large to inspect is never read at all.

        ``version_id`` is the S3 version the event names (a versioned bucket's events always name one): exactly
        that version is read and judged, never the latest, so a later upload over it (a public key over a
        private one, a delete, a copy) can neither hide it nor be registered in its place; and a registration
        is made from the very bytes read. Without one (an unversioned bucket) the latest is read."""
        if size is not None and size > INSPECTION_LIMIT:
            self._purge_unproven(key, TOO_LARGE, (version,), size, version=version_id)
            return None
        try:
            stored = self._s3.get(self._bucket, key, max_bytes=INSPECTION_LIMIT, version_id=version_id)
        except (AwsNotFound, AwsRejected) as error:
            # Purged by an earlier delivery, or by another event's purge of every version (each recorded first).
            settle_unreadable(self._fates, key, version, error)
            return None
        except PayloadTooLarge:  # larger than the event said (a newer upload, unversioned): never read, never proven
            self._purge_unproven(key, TOO_LARGE, (version,), size, version=version_id)
            return None
        handled = (version, object_version(stored.info.version_id, stored.info.etag))
        # By structure, whatever the key's name: a private key anywhere is purged with the alarm.
        verdict = key_material.classify(stored.body)
        if verdict == key_material.PRIVATE:
            self._purge_private_key(key, handled, len(stored.body))
            return None
        # Nothing under clients/ is ever copied: only a valid public key at exactly clients/<id>/public.pem is
        # kept (registered); anything else (another name, a certificate, a weak key, ...) is purged, with a
        # content-free record. A structure no check knows can hide a private key; a copy would keep it.
        match = CLIENT_KEY.fullmatch(key)
        if match is None or verdict != key_material.PUBLIC:
            reason = "unexpected_key" if match is None else "not_a_public_key"
            self._purge_unproven(key, reason, handled, len(stored.body), version=stored.info.version_id)
            return None
        try:
            recipient = public_key_from_pem(stored.body)
        except PrivateKeyMaterial:  # never with a PUBLIC verdict; should the two checks ever disagree, purge
            self._purge_private_key(key, handled, len(stored.body))
            return None
        except EnvelopeError as error:  # a public key of the wrong kind or size: purged too, never copied
            self._purge_unproven(key, error.reason, handled, len(stored.body), version=stored.info.version_id)
            return None
        client_id = match.group(1)
        self._table.put(
            {
                "pk": f"transfer-client#{client_id}",
                "sk": "profile",
                "kid": recipient.kid,
                "public_pem": recipient.public_pem().decode("ascii"),
                "registered_at": int(self._clock()),
            }
        )
        self._table.put({"pk": CLIENT_INDEX, "sk": client_id})
        logger.info("transfer client registered", extra={"client_id": client_id, "kid": recipient.kid})
        return self.send(client_id, request_token=str(uuid.uuid5(uuid.NAMESPACE_URL, f"register:{key}#{etag}")))

    def send(self, client_id: str, *, request_token: str | None = None) -> SendReport:
        """A new version of the client's secret, sealed to its key, put in force, then announced.

        The version starts as AWSPENDING and becomes AWSCURRENT only once its sealed copy is in the outbox; it
        loses AWSPENDING once announced. A send that fails part-way (a 503) so changes no value in force before
        its copy exists, and the next send, whatever its token, finishes that same version instead of making
        another one."""
        profile = self._table.get({"pk": f"transfer-client#{client_id}", "sk": "profile"})
        if profile is None:
            raise UnknownClient()
        recipient = public_key_from_pem(str(profile["public_pem"]).encode("ascii"))
        name = self.secret_name(client_id)
        arn, version_id, stages, in_force = self._version_to_send(name, request_token)
        stored_value = self._secrets.get_value(arn, version_id=version_id).value  # the value of *that* version
        document = {
            "client_id": client_id,
            "secret_name": name,
            "version_id": version_id,
            "value": stored_value,
            "iat": int(self._clock()),
        }
        object_key = f"{OUTBOX}{client_id}/{version_id}.jwe"
        self._s3.put(
            self._bucket,
            object_key,
            seal(recipient, json.dumps(document).encode()).encode(),
            content_type="application/jose",
            kms_key_id=self._kms_key_id,
        )
        if PENDING in stages and CURRENT not in stages:  # never an older version back over a newer one
            self._secrets.move_stage(arn, CURRENT, to_version=version_id, from_version=in_force)
        # Signed by a session made for the link's lifetime: never advertised past the moment it dies (links.py).
        link = self._links.link(self._bucket, object_key, lifetime=self._link_ttl)
        link_url, expires_at = link.url, link.expires_at
        self._sns.publish(
            self._notify,
            {
                "type": "secret-available",
                "client_id": client_id,
                "secret_name": name,
                "version_id": version_id,
                "link": link_url,
                "link_expires_at": expires_at,
                "kid": recipient.kid,
            },
            subject=f"credport: a new secret for {client_id}",
            attributes={"client_id": client_id},
        )
        if PENDING in stages:  # announced: this send is finished
            self._secrets.remove_stage(arn, PENDING, from_version=version_id)
        metrics.add_metric(name="TransferSecretsSent", unit=MetricUnit.Count, value=1)
        logger.info("transfer secret sent", extra={"client_id": client_id, "version_id": version_id})
        return SendReport(client_id, name, version_id, object_key, expires_at, recipient.kid)

    def _version_to_send(self, name: str, request_token: str | None) -> tuple[str, str, tuple[str, ...], str | None]:
        """``(arn, version_id, its stages, the version in force)``: the version an unfinished send left (labelled
        AWSPENDING), or the token's version, else a new AWSPENDING one. A brand new secret's first version is in
        force at once: there is no value to protect yet."""
        token = request_token or str(uuid.uuid4())
        value = secrets.token_urlsafe(32)
        try:
            info = self._secrets.describe(name)
        except AwsNotFound:
            with contextlib.suppress(AwsConflict):  # else created meanwhile by a concurrent send: go on below
                arn, version_id = self._secrets.create(
                    name, value, client_request_token=token, kms_key_id=self._kms_key_id, description=DESCRIPTION
                )
                return arn, version_id, (CURRENT,), version_id
            info = self._secrets.describe(name)
        token = request_token or info.version_in_stage(PENDING) or token
        if token not in info.versions:
            with contextlib.suppress(AwsConflict):  # a concurrent attempt with this token made it: send that one
                self._secrets.put_value(info.arn, value, client_request_token=token, stages=(PENDING,))
        return info.arn, token, info.versions.get(token, (PENDING,)), info.version_in_stage(CURRENT)

    def rotate_all(self) -> list[SendReport]:
        """Send every registered client a new version. The token is per client and per day, so a retried
        run rotates nobody twice; one client's failure does not stop the others (it is raised at the end)."""
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        reports, failures = [], []
        for item in self._table.query("pk", CLIENT_INDEX):
            client_id = str(item["sk"])
            token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"scheduled:{client_id}:{day}"))
            try:
                reports.append(self.send(client_id, request_token=token))
            except Exception as error:
                failures.append(client_id)
                logger.error(
                    "scheduled transfer rotation failed",
                    extra={"client_id": client_id, "error_type": type(error).__name__},
                )
        if failures:
            raise RuntimeError(f"rotation failed for {len(failures)} client(s)")
        return reports

    def _purge_private_key(self, key: str, handled: tuple[str | None, ...], size: int) -> None:
        """A private key: the alarm, then every version purged; no copy and no marker (its name alone is logged).

        The alarm goes out first: a failure before the purge is retried with the key still there, so the alarm
        may repeat but is never lost (after the purge, a redelivery finds the fate recorded here). Every version
        goes, a later good public key too; a client registered from such a version (its event handled first)
        stays registered: that public key was judged on its own bytes and is harmless, and the alarm names the
        key for an operator to decide (README, "Secret transfer")."""
        self._alarm(key)
        removed = self._purge(key, handled)
        logger.error(
            "private key uploaded to the transfer bucket: purged",
            extra={"key": key, "size": size, "versions_removed": removed},
        )
        metrics.add_metric(name="TransferPrivateKeysPurged", unit=MetricUnit.Count, value=1)

    def _purge_unproven(
        self,
        key: str,
        reason: str,
        handled: tuple[str | None, ...],
        size: int | None,
        *,
        version: str | None = None,
    ) -> None:
        """A file that is not a client's public key at its one name, or cannot be proven harmless (too large to
        inspect, not provably public): it may hold a private key in a form no check knows, so no readable copy
        is kept. Every version is purged; what stays is a record of it in quarantine/, with the reason, size and
        version and no content (written first: a crash in between leaves the record, never a silent purge)."""
        record = {
            "reason": reason,
            "source": key,
            "size": size,
            "version_id": version,
            "content": "purged",
            "quarantined_at": int(self._clock()),
        }
        self._s3.put(
            self._bucket,
            f"{QUARANTINE}{key}.error.json",
            json.dumps(record).encode(),
            content_type="application/json",
            kms_key_id=self._kms_key_id,
        )
        removed = self._purge(key, handled, judged=version or "")
        logger.warning(
            "client file purged unproven",
            extra={"key": key, "reason": reason, "size": size, "versions_removed": removed},
        )
        metrics.add_metric(
            name="TransferFilesTooLarge" if reason == TOO_LARGE else "TransferClientFilesPurged",
            unit=MetricUnit.Count,
            value=1,
        )

    def _purge(self, key: str, handled: tuple[str | None, ...], *, judged: str | None = None) -> int:
        """Every version of ``key`` deleted, each one's fate recorded as purged first: the event of any of them
        (queued behind this one, or redelivered) then finds its version gone and settles, never dead-letters.

        ``judged``: the version this event inspected, when it was not a private key. The others go unjudged by
        their own events (gone by then), so each is inspected here first and a private key among them still
        raises the alarm."""
        if self._fates is not None:
            self._fates.record(key, handled, PURGED)

        def before_delete(found: list[ListedVersion]) -> None:
            if self._fates is not None:  # each version not recorded just above
                others = [object_version(v.version_id, None) for v in found]
                self._fates.record(key, [v for v in others if v not in handled], PURGED)
            if judged is not None:
                self._alarm_if_private(key, [v for v in found if v.version_id != judged])

        return self._s3.purge(self._bucket, key, before_delete=before_delete)

    def _alarm_if_private(self, key: str, others: list[ListedVersion]) -> None:
        """The alarm, if one of ``others`` (versions about to be purged, unjudged) holds a private key."""
        for other in others:
            if other.delete_marker or other.size > INSPECTION_LIMIT:
                continue  # nothing to read; too large to inspect (no key is that large)
            try:
                stored = self._s3.get(self._bucket, key, max_bytes=INSPECTION_LIMIT, version_id=other.version_id)
            except (AwsNotFound, AwsRejected, PayloadTooLarge):
                continue  # gone meanwhile (another event's purge, which judged it), or larger than listed
            if key_material.classify(stored.body) == key_material.PRIVATE:
                self._alarm(key)
                logger.error("private key found in an earlier version: purged", extra={"key": key})
                metrics.add_metric(name="TransferPrivateKeysPurged", unit=MetricUnit.Count, value=1)
                return

    def _alarm(self, key: str) -> None:
        self._sns.publish(
            self._alarms,
            key_event("transfer-private-key-uploaded", key=key),
            attributes={"type": "transfer-private-key-uploaded"},
        )

    @staticmethod
    def describe(report: SendReport) -> dict[str, Any]:
        return {
            "client_id": report.client_id,
            "secret_name": report.secret_name,
            "version_id": report.version_id,
            "object_key": report.object_key,
            "link_expires_at": report.link_expires_at,
            "kid": report.kid,
        }
