"""Sessions: bearer-token verifications per second through the authorizer, against joserfc alone.

The authorizer is the real one (``chalicelib.api.authorizer_response`` over ``SessionService.authorize``: bearer
parsing, route, header policy, the
key lookup by kid in the cached key store, HS256 verification, claims, the policy document), warm, on moto
provisioned from template.yaml; the baseline is joserfc's HS256 ``jwt.decode`` plus claims validation with
the same key and token.
"""

from __future__ import annotations

from chalice.app import AuthRequest
from joserfc import jwt
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from bench.aws import moto_stack
from bench.harness import Figure, per_op_seconds
from chalicelib.api import authorizer_response

TARGET = 0.7
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/session"


def run(quick: bool = False) -> list[Figure]:
    number, repeat = (20, 1) if quick else (3000, 7)
    with moto_stack() as services:
        service = services.sessions
        token = service.start("arn:aws:iam::123456789012:user/bench")["token"]
        request = AuthRequest("TOKEN", f"Bearer {token}", METHOD_ARN)
        authorizer_response(request, service.authorize)  # warm: the key store has loaded the keys
        authorizer = per_op_seconds(
            lambda: authorizer_response(request, service.authorize), number=number, repeat=repeat
        )
        key = OctKey.import_key(service.keys.current().secret)
        issuer = service.settings.issuer
        registry = JWTClaimsRegistry(iss={"essential": True, "value": issuer}, exp={"essential": True})

        def joserfc_alone() -> None:
            claims = jwt.decode(token, key, algorithms=["HS256"]).claims
            registry.validate(claims)

        baseline = per_op_seconds(joserfc_alone, number=number, repeat=repeat)
    ratio = baseline / authorizer  # throughput ratio: ours / joserfc's
    return [
        Figure(
            name="session-token verifications/s through the authorizer",
            value=1 / authorizer,
            unit="ops/s",
            baseline="joserfc HS256 decode + claims validate",
            baseline_value=1 / baseline,
            ratio=ratio,
            target=f">= {TARGET}x",
            met=ratio >= TARGET,
        )
    ]
