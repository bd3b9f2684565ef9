"""Import encrypted files dropped into ``inbox/`` of the transfer bucket into Secrets Manager.

Each file is a compact JWE sealed to the import key, holding ``{"secret_name", "value"[, "description"]}``.
The secret is created, or gets a new version, under a ClientRequestToken derived from the file's content
(its SHA-256), so a duplicate event, or the same file dropped again, imports it once. Then a receipt (ARN
and version id, never the value) goes to ``processed/`` with the file. A file that can never import goes
to ``quarantine/`` beside a ``.error.json`` with the reason, and the secret is left as it was. Transient
AWS errors propagate: the message is retried and finally dead-lettered, with the file still in ``inbox/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.errors import AwsNotFound, AwsRejected
from chalicelib.aws.s3 import ObjectStore
from chalicelib.aws.secrets import SecretStore
from chalicelib.envelope import MAX_ENVELOPE_BYTES, EnvelopeError, open_envelope
from chalicelib.errors import PayloadTooLarge
from chalicelib.keys.recipient import RecipientKeyStore
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.transfer.exceptions import ImportRefused
from chalicelib.transfer.fates import IMPORTED, QUARANTINED, TOO_LARGE, ObjectFates, object_version, settle_unreadable
from chalicelib.untrusted import NOT_TEXT, TOO_LONG, TextKind, UntrustedInput, check_text, loads

__all__ = ["INBOX", "PROCESSED", "QUARANTINE", "ImportRefused", "Importer", "Receipt", "quarantine"]

INBOX, PROCESSED, QUARANTINE = "inbox/", "processed/", "quarantine/"
MAX_VALUE_BYTES = 64 * 1024  # Secrets Manager's limit for a secret value
MAX_COPY_BYTES = 5 * 1024**3  # CopyObject copies at most 5 GiB in one request (S3 API Reference, CopyObject)
MAX_DESCRIPTION_CHARS = 2048  # Secrets Manager's limit for a description
_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")


@dataclass(frozen=True)
class Receipt:
    secret_arn: str
    secret_name: str
    version_id: str
    source: str
    imported_at: int

    def document(self) -> dict[str, Any]:
        return {
            "secret_arn": self.secret_arn,
            "secret_name": self.secret_name,
            "version_id": self.version_id,
            "source": self.source,
            "imported_at": self.imported_at,
        }


class Importer:
    def __init__(
        self,
        s3: ObjectStore,
        secrets: SecretStore,
        keys: RecipientKeyStore,
        *,
        bucket: str,
        name_prefix: str,
        kms_key_id: str | None = None,
        fates: ObjectFates | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``fates`` records what became of each file; without it (benchmarks), an unreadable file is an error
        unless S3 answered 404."""
        self._s3, self._secrets, self._keys, self._fates = s3, secrets, keys, fates
        self._bucket, self._prefix, self._kms_key_id, self._clock = bucket, name_prefix, kms_key_id, clock

    def import_object(self, key: str, version: str | None = None, size: int | None = None) -> Receipt | None:
        """Import one inbox file; None when it was quarantined, or handled by an earlier delivery. ``version``
        is the event's :func:`~chalicelib.transfer.fates.object_version`: once the file has been moved, it is
        how a redelivered event is recognised as done (see :mod:`chalicelib.transfer.fates`). ``size`` is the
        event's: a file larger than an envelope can be is quarantined unread, never retried or dead-lettered."""
        rest = key[len(INBOX) :] if key.startswith(INBOX) else key
        if size is not None and size > MAX_ENVELOPE_BYTES:
            self._quarantine(key, rest, TOO_LARGE, (version,), size=size)
            metrics.add_metric(name="TransferFilesTooLarge", unit=MetricUnit.Count, value=1)
            return None
        try:
            stored = self._s3.get(self._bucket, key, max_bytes=MAX_ENVELOPE_BYTES)
        except (AwsNotFound, AwsRejected) as error:
            settle_unreadable(self._fates, key, version, error)
            return None
        except PayloadTooLarge:  # a newer, larger version than the event's
            self._quarantine(key, rest, TOO_LARGE, (version,))
            metrics.add_metric(name="TransferFilesTooLarge", unit=MetricUnit.Count, value=1)
            return None
        # The event's version and the one read (a newer upload of the same key) are both settled by this run.
        handled = (version, object_version(stored.info.version_id, stored.info.etag))
        try:
            receipt = self.import_bytes(stored.body, source=key)
        except ImportRefused as refused:
            self._quarantine(key, rest, refused.reason, handled)
            return None
        self._s3.put(
            self._bucket,
            f"{PROCESSED}{rest}.receipt.json",
            json.dumps(receipt.document()).encode(),
            content_type="application/json",
            kms_key_id=self._kms_key_id,
        )
        if self._fates is not None:
            self._fates.record(key, handled, IMPORTED)  # before the move: see chalicelib.transfer.fates
        self._s3.move(self._bucket, key, f"{PROCESSED}{rest}", kms_key_id=self._kms_key_id)
        return receipt

    def import_bytes(self, body: bytes, *, source: str) -> Receipt:
        """Import a file's bytes; its SHA-256 makes the ClientRequestToken (the same file imports once)."""
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, "sha256:" + hashlib.sha256(body).hexdigest()))
        return self.import_envelope(body.decode("ascii", errors="replace"), token=token, source=source)

    def import_envelope(self, envelope: str, *, token: str, source: str) -> Receipt:
        """Decrypt, validate and store; :class:`ImportRefused` for anything that can never import."""
        try:
            opened = open_envelope(envelope, self._keys.opening())
        except EnvelopeError as error:
            raise ImportRefused(error.reason) from None
        name, value, description = self._payload(opened.plaintext)
        arn, version_id = self._secrets.create_or_add_version(
            name,
            value,
            client_request_token=token,
            description=description,
            kms_key_id=self._kms_key_id,
            tags={"credport:imported": "true"},
        )
        metrics.add_metric(name="SecretsImported", unit=MetricUnit.Count, value=1)
        logger.info("secret imported", extra={"secret_name": name, "version_id": version_id, "source": source})
        return Receipt(
            secret_arn=arn, secret_name=name, version_id=version_id, source=source, imported_at=int(self._clock())
        )

    def _payload(self, plaintext: bytes) -> tuple[str, str, str | None]:
        """The document's fields, each checked before any reaches AWS or a log. The strict loader refuses a
        document holding text no AWS call can send (``unencodable_text``, a lone surrogate anywhere in it);
        a description must be plain text (``forbidden_character``: control, bidi or non-characters)."""
        try:
            document = loads(plaintext)
        except UntrustedInput as refused:
            raise ImportRefused(refused.reason) from None
        if not isinstance(document, dict):
            raise ImportRefused("bad_json")
        name, value, description = document.get("secret_name"), document.get("value"), document.get("description")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or not isinstance(value, str):
            raise ImportRefused("bad_payload")
        if description is not None:
            try:
                check_text(description, TextKind.FREE_TEXT, max_chars=MAX_DESCRIPTION_CHARS)
            except UntrustedInput as refused:
                raise ImportRefused(
                    "bad_payload" if refused.reason in (NOT_TEXT, TOO_LONG) else refused.reason
                ) from None
        try:
            check_text(value, TextKind.VALUE, max_bytes=MAX_VALUE_BYTES)
        except UntrustedInput as refused:
            raise ImportRefused("bad_value_size" if refused.reason == TOO_LONG else refused.reason) from None
        if not value:
            raise ImportRefused("bad_value_size")
        if not name.startswith(self._prefix) or ".." in name:
            raise ImportRefused("name_outside_prefix")
        return name, value, description

    def _quarantine(
        self, key: str, rest: str, reason: str, handled: tuple[str | None, ...], *, size: int | None = None
    ) -> None:
        if self._fates is not None:
            self._fates.record(key, handled, QUARANTINED)
        quarantine(
            self._s3,
            self._bucket,
            key,
            f"{QUARANTINE}{rest}",
            reason,
            now=self._clock(),
            kms_key_id=self._kms_key_id,
            size=size,
        )
        metrics.add_metric(name="TransferFilesQuarantined", unit=MetricUnit.Count, value=1)
        logger.warning("inbox file quarantined", extra={"source": key, "reason": reason})


def quarantine(
    s3: ObjectStore,
    bucket: str,
    key: str,
    destination: str,
    reason: str,
    *,
    now: float,
    kms_key_id: str | None,
    size: int | None = None,
) -> None:
    """Set a file aside that can never be processed: move it to ``destination`` beside a ``.error.json``
    holding the reason (written first, so a crash in between leaves the reason, never a silent move).

    A file S3 cannot copy in one request (over 5 GiB, the CopyObject limit) is not copied: it only leaves
    ``inbox/`` (its noncurrent version expires with the bucket's lifecycle), and the record says so. A copy
    that must fail would otherwise retry until dead-lettered."""
    error: dict[str, object] = {"reason": reason, "source": key, "quarantined_at": int(now)}
    if size is not None:
        error["size"] = size
    if size is not None and size > MAX_COPY_BYTES:
        error["content"] = "not_copied"
    s3.put(
        bucket,
        f"{destination}.error.json",
        json.dumps(error).encode(),
        content_type="application/json",
        kms_key_id=kms_key_id,
    )
    if size is not None and size > MAX_COPY_BYTES:
        s3.delete(bucket, key)
    else:
        s3.move(bucket, key, destination, kms_key_id=kms_key_id)
