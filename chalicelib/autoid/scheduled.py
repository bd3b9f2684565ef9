"""The auto-id rotation as the schedule and the operator run it: rotate, publish the JWKS, tell every container.

Its own small object, built by the composition root (:mod:`chalicelib.services`) with the S3 and SNS adapters it
publishes with: the service itself (:class:`~chalicelib.autoid.service.AutoIdService`) never needs them.
"""

from __future__ import annotations

import json
import re
import uuid

from chalicelib.autoid.service import AutoIdService, RotationReport
from chalicelib.aws.s3 import ObjectStore
from chalicelib.aws.sns import Publisher
from chalicelib.events.key_events import key_event
from chalicelib.observability import logger, rotation_failed

__all__ = ["KEYS_OBJECT", "ScheduledRotation", "key_rotation_seen"]

KEYS_OBJECT = "autoid/keys.json"
_ROTATION_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class ScheduledRotation:
    def __init__(
        self, service: AutoIdService, s3: ObjectStore, sns: Publisher, *, public_bucket: str, key_events_topic: str
    ) -> None:
        self._service = service
        self._s3 = s3
        self._sns = sns
        self._public_bucket = public_bucket
        self._key_events_topic = key_events_topic

    def rotate(self, rotation_id: object = None, *, client_ids: tuple[str, ...] | None = None) -> RotationReport:
        """:meth:`_rotate`, counting a failure (``RotationFailed``, kind ``autoid-keys``) for the alarm."""
        try:
            return self._rotate(rotation_id, client_ids=client_ids)
        except Exception:
            rotation_failed("autoid-keys")
            raise

    def _rotate(self, rotation_id: object, *, client_ids: tuple[str, ...] | None) -> RotationReport:
        """The schedule (its event id makes a retried delivery a no-op) and ``credport-admin autoid rotate-keys``:
        a new server key and entropy generation, the JWKS republished, and a key event for every container. Raises
        when a client could not be rotated, so the schedule is retried (and the operator told)."""
        service = self._service
        report = service.rotate(_rotation_id(rotation_id), client_ids=client_ids)
        self._s3.put(
            self._public_bucket,
            KEYS_OBJECT,
            json.dumps(service.server_keys.public_documents(), indent=2).encode(),
            content_type="application/json",
            cache_control="public, max-age=300",
        )
        self._sns.publish(
            self._key_events_topic,
            key_event(
                "autoid-keys-rotated",
                rotation_id=report.rotation_id,
                current_kid=report.server_key.current_kid,
                clients_rotated=len(report.clients_rotated),
            ),
        )
        if report.clients_failed:
            # After publishing the new server key: the schedule is retried with the same id, which rotates only them.
            failed = len(report.clients_failed)
            raise RuntimeError(f"auto-id rotation {report.rotation_id} failed for {failed} client(s)")
        return report


def _rotation_id(value: object) -> str:
    """The rotation id for an event id. EventBridge's are UUIDs; anything else (not text, too long for the
    secret and the table, characters they refuse) becomes a name-based UUID of its JSON, so a retried delivery
    is still the same rotation. No id at all (the operator's command) is a new rotation."""
    if value is None or value == "":
        return str(uuid.uuid4())
    if isinstance(value, str) and _ROTATION_ID.fullmatch(value):
        return value
    text = json.dumps(value, sort_keys=True, default=repr)  # ASCII: lone surrogates are escaped
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"credport:autoid-rotation:{text}"))


def key_rotation_seen(service: AutoIdService | None) -> None:
    """Every container hears an auto-id rotation (the key event :meth:`ScheduledRotation.rotate` publishes): a
    built ``service`` drops its cached server keys (None: this container has not built one)."""
    if service is not None:
        service.server_keys.invalidate()
    logger.info("auto-id key rotation seen; cached server keys dropped")
