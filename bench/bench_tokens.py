"""Token service: GET /token through the whole handler with the envelope signer, next to joserfc alone.

The app runs in-process against moto (``mock_aws``), with template.yaml provisioned the way the local stack
does it. Each request is an API Gateway REST proxy event carrying an IAM identity, passed to
``app.app(event, context)``: Chalice routing, the middleware, the view, the token service, signing, logging,
metrics and the JSON response all run. The baseline is joserfc's ``jwt.encode`` alone, with the same algorithm,
the same private key, header and claims. Warm containers are also checked for AWS calls: with the envelope
signer there must be none at all, with the kms signer exactly one KMS Sign per token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from bench.aws import moto_stack
from bench.harness import Figure, paired

TARGET_RATIO = 0.6
ACCOUNT_ID = "123456789012"
IDENTITY = {
    "userArn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/bench-workload/bench-session",
    "accountId": ACCOUNT_ID,
    "caller": "AROABENCHEXAMPLE:bench-session",
    "user": "AROABENCHEXAMPLE:bench-session",
    "accessKey": "ASIABENCHEXAMPLE0001",
    "sourceIp": "203.0.113.7",
    "principalOrgId": None,
}
CONTEXT = SimpleNamespace(aws_request_id="bench-invocation", function_name="credport-dev", memory_limit_in_mb=512)


@dataclass
class CallCounter:
    """Every AWS API call a container's clients make, by ``service:Operation``."""

    calls: list[str]
    clients_before: tuple[str, ...]
    created_since: tuple[str, ...] = ()

    def record(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.service_name}:{model.name}")

    def of(self, service: str) -> int:
        return sum(1 for call in self.calls if call.startswith(f"{service}:"))


@contextlib.contextmanager
def counting_aws_calls() -> Iterator[CallCounter]:
    """Hooks every client the warm container has; a client created meanwhile (a call to another service) is
    reported in ``created_since``, so no call goes uncounted."""
    import app

    factory = app.services().aws.factory
    counter = CallCounter(calls=[], clients_before=factory.created)
    hooked = [(factory.client(name), name) for name in counter.clients_before]
    for client, name in hooked:
        client.meta.events.register(f"before-call.{name}", counter.record)
    try:
        yield counter
    finally:
        for client, name in hooked:
            client.meta.events.unregister(f"before-call.{name}", counter.record)
        counter.created_since = tuple(n for n in factory.created if n not in counter.clients_before)


@contextlib.contextmanager
def deployment(signer: str, alg: str) -> Iterator[None]:
    """A fresh moto account with template.yaml provisioned and the app configured as Lambda would be (EMF
    metrics on, as deployed); everything is restored afterwards."""
    from chalicelib.config import Env

    environment = {
        Env.TOKEN_SIGNER: signer,
        Env.TOKEN_ALGORITHMS: alg,
        Env.TOKEN_AUDIENCES: "sts.amazonaws.com,https://rp*",
        "POWERTOOLS_METRICS_DISABLED": "false",
    }
    with moto_stack(**environment):
        from tests.support import existing_role

        # IDENTITY's role exists, with the id the identity carries: credport reads a caller's role once per
        # container (iam:GetRole), so the warm requests measured below make no IAM call.
        existing_role("bench-workload", "AROABENCHEXAMPLE")
        with _logs_to_the_void():
            yield


@contextlib.contextmanager
def _logs_to_the_void() -> Iterator[None]:
    """The app logs at INFO as deployed (each line is formatted and written: its cost is measured), to
    /dev/null rather than over the table."""
    from chalicelib.observability import logger

    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    with open(os.devnull, "w") as sink:
        streams = [h.setStream(sink) for h in handlers]
        try:
            yield
        finally:
            for handler, stream in zip(handlers, streams, strict=True):
                if stream is not None:
                    handler.setStream(stream)


def token_request(audiences: int = 1) -> Callable[[], str]:
    """One GET /token through the app, as Lambda invokes it behind IAMAuthorizer; returns the JSON body. With
    several ``audiences``, ``aud`` repeats (the token's ``aud`` is then an array)."""
    import app
    from tests.support import gateway_event

    # Several audiences are relying parties' (sts.amazonaws.com is only ever a token's only audience).
    query = (
        [("aud", "sts.amazonaws.com")]
        if audiences == 1
        else [("aud", f"https://rp{i}.example.com") for i in range(audiences)]
    )
    event = gateway_event("/token", IDENTITY, query=query)
    handler = app.app

    def request() -> str:
        response = handler(event, CONTEXT)
        assert response["statusCode"] == 200, response["body"]
        return str(response["body"])  # the JSON answer, as API Gateway passes it on

    return request


@contextlib.contextmanager
def _metrics_to_the_void() -> Iterator[None]:
    """The EMF metric line each invocation prints goes to /dev/null: written (its cost is measured), not shown. One
    redirection around the whole measurement, not one per request, whose cost would be the harness's, not the app's."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def envelope_figure(alg: str, *, number: int, rounds: int, audiences: int = 1) -> Figure:
    from joserfc import jwt
    from joserfc.jwk import ECKey, RSAKey
    from joserfc.util import urlsafe_b64decode

    import app

    with deployment("envelope", alg), _metrics_to_the_void():
        request = token_request(audiences)
        token = json.loads(str(request()))["token"]  # the first request bootstraps the keys
        services = app.services()
        key_id = services.tokens.keyring.current().key_id
        pem = services.aws.secrets.get_value(key_id).value
        key = RSAKey.import_key(pem) if alg == "RS256" else ECKey.import_key(pem)
        header_segment, claims_segment, _ = token.split(".")
        header = json.loads(urlsafe_b64decode(header_segment.encode()))
        claims = json.loads(urlsafe_b64decode(claims_segment.encode()))
        assert jwt.decode(token, key, algorithms=[alg]).claims == claims

        def encode() -> object:
            return jwt.encode(header, claims, key, algorithms=[alg])

        for _ in range(20):  # warm
            request()
            encode()
        with counting_aws_calls() as counter:
            measured = paired(request, encode, number=number, rounds=rounds, better="faster")
        aws_calls = len(counter.calls) + len(counter.created_since)

    several = f", {audiences} audiences" if audiences > 1 else ""
    return Figure(
        key=f"tokens.envelope.{alg}" + (f".aud{audiences}" if audiences > 1 else ""),
        name=f"GET /token through the app handler, envelope signer, {alg}{several}",
        value=1 / measured.subject,
        unit="ops/s",
        baseline=f"joserfc jwt.encode {alg} alone, same key",
        baseline_value=1 / measured.baseline,
        ratio=measured.ratio,
        spread=measured.spread,
        rounds=measured.rounds,
        target=f">= {TARGET_RATIO}x, no AWS call",
        met=measured.ratio >= TARGET_RATIO and aws_calls == 0,
        note=f"{aws_calls} AWS calls in {number * (rounds + 1)} warm requests",
    )


def kms_calls_per_token(signer: str, *, tokens: int) -> tuple[float, int]:
    """KMS calls per token on a warm container, and every AWS call of any service while measuring."""
    with deployment(signer, "RS256"), _metrics_to_the_void():
        request = token_request()
        for _ in range(5):
            request()
        with counting_aws_calls() as counter:
            for _ in range(tokens):
                request()
    return counter.of("kms") / tokens, len(counter.calls) + len(counter.created_since)


def run(quick: bool = False) -> list[Figure]:
    figures = [
        envelope_figure("RS256", number=5 if quick else 60, rounds=1 if quick else 21),
        envelope_figure("ES256", number=5 if quick else 300, rounds=1 if quick else 21),
        envelope_figure("ES384", number=5 if quick else 120, rounds=1 if quick else 21),
        envelope_figure("ES256", number=5 if quick else 300, rounds=1 if quick else 21, audiences=10),
    ]
    tokens = 5 if quick else 100
    kms_per_token, kms_all = kms_calls_per_token("kms", tokens=tokens)
    envelope_per_token, envelope_all = kms_calls_per_token("envelope", tokens=tokens)
    figures.append(
        Figure(
            key="tokens.kms_calls_per_token",
            name="KMS calls per token on a warm container, kms signer",
            value=kms_per_token,
            unit="calls/token",
            baseline="envelope signer",
            baseline_value=envelope_per_token,
            target="kms 1, envelope 0",
            met=kms_per_token == 1 and envelope_per_token == 0 and envelope_all == 0,
            note=f"AWS calls of any service in {tokens} tokens: kms signer {kms_all}, envelope signer {envelope_all}",
        )
    )
    return figures
