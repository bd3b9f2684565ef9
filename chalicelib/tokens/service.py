"""The token service as the app sees it: one object per container, built on first use by the composition root
(:mod:`chalicelib.services`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.aws import AwsServices, running_function
from chalicelib.config import Settings, audience_matches, is_valid_audience
from chalicelib.identity import RequestIdentity
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.principal import principal_of
from chalicelib.role_arns import RoleArns, role_arns_for
from chalicelib.tokens.discovery import jwks_document, openid_configuration
from chalicelib.tokens.envelope_keys import EnvelopeKeyStore
from chalicelib.tokens.exceptions import InvalidAudience, InvalidTtl, RotationTooSoon
from chalicelib.tokens.issuer import IssuedToken, TokenIssuer
from chalicelib.tokens.keyring import KeyRing, KeyStore, NoSigningKey
from chalicelib.tokens.kms_keys import KmsKeyStore
from chalicelib.tokens.rotation import KeyRotation, RotationReport

__all__ = ["TokenService", "key_store"]

MAX_AUDIENCE_LENGTH = 256
_DIGITS = re.compile(r"[0-9]{1,6}")


def key_store(settings: Settings, aws: AwsServices) -> KeyStore:
    """The signing keys' home, as CREDPORT_TOKEN_SIGNER chooses."""
    if settings.token_signer == "envelope":  # noqa: S105 (a mode, not a password)
        return EnvelopeKeyStore(
            aws.secrets,
            aws.table(settings.resources.state_table),
            prefix=settings.prefix,
            algorithm_name=settings.token_algorithm,
            data_key_arn=settings.resources.data_key_arn,
        )
    return KmsKeyStore(
        aws.kms,
        settings.prefix,
        settings.token_algorithm,
        tagged=aws.tagging,
        caller_arn=_caller_arn(aws),
    )


def _caller_arn(aws: AwsServices) -> Callable[[], str]:
    """Who makes a new key (its key policy names the creator), asked once per key store and function: on AWS a
    process runs one function; where one runs several (the local stack), each signs as its own role."""
    known: dict[str | None, str] = {}

    def caller_arn() -> str:
        function = running_function.get()
        if function not in known:
            known[function] = aws.sts.caller_identity().arn
        return known[function]

    return caller_arn


class TokenService:
    """``roles`` is the deployment's role resolver, shared with sessions where the composition root builds both."""

    def __init__(self, settings: Settings, aws: AwsServices, *, roles: RoleArns | None = None) -> None:
        self.settings = settings
        self.keyring = KeyRing(key_store(settings, aws))
        self.issuer = TokenIssuer(self.keyring, settings.issuer)
        self.roles = roles or role_arns_for(settings, aws)  # a role's sub is its real ARN, path included
        self._aws = aws

    @functools.cached_property
    def rotation(self) -> KeyRotation:
        # Built on first use: its table, S3 and SNS clients are not needed to serve a token, and each client
        # costs a cold start tens of milliseconds.
        s, aws = self.settings, self._aws
        return KeyRotation(aws.table(s.resources.state_table), aws.s3, aws.sns, s, self.keyring)

    def issue(self, identity: RequestIdentity, query: Mapping[str, str] | None) -> IssuedToken:
        query = query or {}
        audience = self.audience(query.get("aud"))
        ttl = self.ttl(query.get("ttl"))
        identity.require_organization(self.settings.token_organization_id)
        principal = self.roles.resolve(principal_of(identity, identity.principal_org_id))
        try:
            issued = self.issuer.issue(principal, audience=audience, ttl=ttl)
        except NoSigningKey:
            self.rotation.ensure_keys()  # a fresh deployment: first use bootstraps the keys
            issued = self.issuer.issue(principal, audience=audience, ttl=ttl)
        metrics.add_metric(name="TokensIssued", unit=MetricUnit.Count, value=1)
        logger.info(
            "token issued",
            extra={"sub": principal.subject, "aud": audience, "jti": issued.jti, "kid": issued.kid, "ttl": ttl},
        )
        return issued

    def token_for(self, identity: RequestIdentity, query: Mapping[str, str] | None) -> dict[str, Any]:
        """``GET /token``: the answer for the caller API Gateway verified and its query parameters."""
        issued = self.issue(identity, query)
        return {"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}

    def audience(self, requested: str | None) -> str:
        if requested is None or requested == "":
            return self.settings.token_default_audience
        if len(requested) > MAX_AUDIENCE_LENGTH or not is_valid_audience(requested) or "*" in requested:
            raise InvalidAudience()
        if not any(audience_matches(pattern, requested) for pattern in self.settings.token_audiences):
            raise InvalidAudience()
        return requested

    def ttl(self, requested: str | None) -> int:
        s = self.settings
        if requested is None or requested == "":
            return s.token_default_ttl
        # ASCII digits only: str.isdigit() also accepts '²' and other scripts' digits.
        if not _DIGITS.fullmatch(requested) or not s.token_min_ttl <= int(requested) <= s.token_max_ttl:
            raise InvalidTtl(f"ttl must be a whole number of seconds from {s.token_min_ttl} to {s.token_max_ttl}.")
        return int(requested)

    def jwks(self) -> dict[str, Any]:
        if not self.keyring.published():
            self.rotation.ensure_keys()
        return jwks_document(self.keyring.published())

    def discovery(self) -> dict[str, Any]:
        algorithms = [key.alg.jose for key in self.keyring.published()] or [self.settings.token_algorithm]
        return openid_configuration(self.settings.issuer, algorithms)

    def rotate(self, *, force: bool = False) -> RotationReport:
        report = self.rotation.rotate(force=force)
        self.keyring.invalidate()
        return report

    def rotate_on_schedule(self) -> dict[str, str]:
        """The schedule's run. An operator's rotation shortly before makes this one too soon: that is nothing to do
        (the keys are fresh; the next period rotates), not a failure to retry, dead-letter and alarm on."""
        try:
            report = self.rotate()
        except RotationTooSoon as too_soon:
            logger.info("scheduled signing-key rotation skipped", extra={"reason": too_soon.message})
            return {"kind": "skipped", "reason": too_soon.message}
        return {"kind": report.kind, "rotation_id": report.rotation_id}
