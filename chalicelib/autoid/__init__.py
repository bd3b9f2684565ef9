"""Autonomous identification (in progress): protocol version 2's request rules and proof."""

from __future__ import annotations

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

__all__ = [
    "AutoIdRequest",
    "MalformedRequest",
    "Want",
    "build_request",
    "check_freshness",
    "compute_proof",
    "parse_request",
    "verify_proof",
]
