"""Autonomous identification: a workload with no AWS credentials proves it holds its entropy file.

Protocol version 2 (see ``protocol``): an RSA-OAEP-256/A256GCM JWE to the server key, an HMAC proof over
16 snippets of the client's current entropy generation, freshness and a single-use nonce; the answer is a
dir/A256GCM JWE under the client's one-time response key.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.autoid.clients import ClientPolicy, ClientRecord, ClientRegistry, Enrollment, InvalidPolicy
from chalicelib.autoid.protocol import (
    AutoIdRequest,
    MalformedRequest,
    Want,
    build_request,
    check_freshness,
    compute_proof,
    parse_request,
    verify_proof,
)
from chalicelib.autoid.scope import ServingScope
from chalicelib.autoid.server_keys import KeyRotation, ServerKeys
from chalicelib.autoid.service import MAX_BODY_BYTES, AutoIdService, RotationReport
from chalicelib.aws import AwsServices, get_aws
from chalicelib.config import Settings, get_settings
from chalicelib.events import bus, key_event
from chalicelib.observability import logger

__all__ = [
    "KEYS_OBJECT",
    "MAX_BODY_BYTES",
    "AutoIdRequest",
    "AutoIdService",
    "ClientPolicy",
    "ClientRecord",
    "ClientRegistry",
    "Enrollment",
    "InvalidPolicy",
    "KeyRotation",
    "MalformedRequest",
    "RotationReport",
    "ServerKeys",
    "ServingScope",
    "Want",
    "build_autoid_service",
    "build_request",
    "check_freshness",
    "compute_proof",
    "get_autoid_service",
    "identify_request",
    "parse_request",
    "reset_autoid_service",
    "rotate",
    "server_key_documents",
    "verify_proof",
]

KEYS_OBJECT = "autoid/keys.json"
_ROTATION_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def build_autoid_service(
    settings: Settings, aws: AwsServices, *, clock: Callable[[], float] = time.time
) -> AutoIdService:
    """The service wired to the deployment's resources (tests inject ``clock`` to move time)."""
    # Only the auto-id session key: nothing built here can read the main session key (or start another session).
    from chalicelib.sessions.issuing import AutoIdSessions

    r = settings.resources
    scope = ServingScope(settings.prefix, settings.autoid_serving_prefixes)
    return AutoIdService(
        server_keys=ServerKeys(
            aws.secrets, r.autoid_key_secret_arn, grace_period=settings.autoid_grace_period, clock=clock
        ),
        registry=ClientRegistry(
            aws.table(r.state_table),
            aws.s3,
            bucket=r.transfer_bucket,
            kms_key_id=r.data_key_arn,
            grace_period=settings.autoid_grace_period,
            scope=scope,
            clock=clock,
        ),
        nonces=aws.table(r.state_table),
        secrets=aws.secrets,
        sts=aws.sts,
        start_session=AutoIdSessions(settings, aws.secrets, clock=clock).start,
        scope=scope,
        credentials_ttl=settings.autoid_credentials_ttl,
        clock=clock,
    )


@functools.lru_cache(maxsize=1)
def get_autoid_service() -> AutoIdService:
    return build_autoid_service(get_settings(), get_aws())


def reset_autoid_service() -> None:
    get_autoid_service.cache_clear()


def identify_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /auto-id``."""
    return get_autoid_service().identify(body)


def server_key_documents() -> dict[str, Any]:
    """``GET /auto-id/keys``: the JWKS requests may be sealed to (``current_kid`` is the one to use)."""
    return get_autoid_service().server_keys.public_documents()


def rotate(rotation_id: object = None, *, client_ids: tuple[str, ...] | None = None) -> RotationReport:
    """The schedule (its event id makes a retried delivery a no-op) and ``credport-admin autoid rotate-keys``:
    a new server key and entropy generation, the JWKS republished, and a key event for every container. Raises
    when a client could not be rotated, so the schedule is retried (and the operator told)."""
    service = get_autoid_service()
    report = service.rotate(_rotation_id(rotation_id), client_ids=client_ids)
    settings, aws = get_settings(), get_aws()
    aws.s3.put(
        settings.resources.public_bucket,
        KEYS_OBJECT,
        json.dumps(service.server_keys.public_documents(), indent=2).encode(),
        content_type="application/json",
        cache_control="public, max-age=300",
    )
    aws.sns.publish(
        settings.resources.key_events_topic_arn,
        key_event(
            "autoid-keys-rotated",
            rotation_id=report.rotation_id,
            current_kid=report.server_key.current_kid,
            clients_rotated=len(report.clients_rotated),
        ),
    )
    if report.clients_failed:
        # After publishing the new server key: the schedule is retried with the same id, which rotates only them.
        raise RuntimeError(f"auto-id rotation {report.rotation_id} failed for {len(report.clients_failed)} client(s)")
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


def _on_keys_rotated(_event: Mapping[str, Any]) -> None:
    if get_autoid_service.cache_info().currsize:
        get_autoid_service().server_keys.invalidate()
    logger.info("auto-id key rotation seen; cached server keys dropped")


bus.subscribe("autoid-keys-rotated", _on_keys_rotated)
