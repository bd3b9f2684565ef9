"""Sessions: bearer-token verifications per second through the authorizer, against joserfc alone.

The authorizer is the real one (``chalicelib.api.authorizer_response`` over ``SessionService.authorize``: bearer
parsing, route, header policy (decoded once per header segment), the key lookup by kid in the cached key store
and the key's standing, the HS256 signature (constant-time, the key's HMAC keyed once), every claim, the grant),
warm, on moto provisioned from template.yaml; the baseline is joserfc's HS256 ``jwt.decode`` plus claims
validation with the same key and token. Chalice's ``AuthResponse.to_dict`` (the policy document, ~1.6 us) runs
after the authorizer returns and is in neither side.
"""

from __future__ import annotations

from chalice.app import AuthRequest
from joserfc import jwt
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from bench.aws import moto_stack
from bench.harness import Figure, paired
from chalicelib.api import authorizer_response

TARGET = 0.7
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/session"


def run(quick: bool = False) -> list[Figure]:
    number, rounds = (20, 1) if quick else (1000, 21)
    with moto_stack() as services:
        service = services.sessions
        token = service.start("arn:aws:iam::123456789012:user/bench")["token"]
        request = AuthRequest("TOKEN", f"Bearer {token}", METHOD_ARN)
        authorizer_response(request, service.authorize)  # warm: the key store has loaded the keys
        key = OctKey.import_key(service.keys.current().secret)
        issuer = service.settings.issuer
        registry = JWTClaimsRegistry(iss={"essential": True, "value": issuer}, exp={"essential": True})

        def joserfc_alone() -> None:
            claims = jwt.decode(token, key, algorithms=["HS256"]).claims
            registry.validate(claims)

        measured = paired(
            lambda: authorizer_response(request, service.authorize),
            joserfc_alone,
            number=number,
            rounds=rounds,
            better="faster",
        )
    return [
        Figure(
            key="sessions.authorizer",
            name="session-token verifications/s through the authorizer",
            value=1 / measured.subject,
            unit="ops/s",
            baseline="joserfc HS256 decode + claims validate",
            baseline_value=1 / measured.baseline,
            ratio=measured.ratio,
            spread=measured.spread,
            rounds=measured.rounds,
            target=f">= {TARGET}x",
            met=measured.ratio >= TARGET,
        )
    ]
