"""Autonomous identification: a workload with no AWS credentials proves it holds its entropy file.

Protocol version 2 (see ``protocol``): an RSA-OAEP-256/A256GCM JWE to the server key, an HMAC proof over
16 snippets of the client's current entropy generation, freshness and a single-use nonce; the answer is a
dir/A256GCM JWE under the client's one-time response key.
"""

from __future__ import annotations

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
from chalicelib.autoid.scheduled import KEYS_OBJECT, ScheduledRotation, key_rotation_seen
from chalicelib.autoid.scope import ServingScope
from chalicelib.autoid.service import MAX_BODY_BYTES, AutoIdService, RotationReport

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
    "MalformedRequest",
    "RotationReport",
    "ScheduledRotation",
    "ServingScope",
    "Want",
    "build_request",
    "check_freshness",
    "compute_proof",
    "key_rotation_seen",
    "parse_request",
    "verify_proof",
]
