"""The token service as the app sees it: one object per container, built on first use by the composition root
(:mod:`chalicelib.services`)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.audit import AuditLine
from chalicelib.aws import AwsServices, running_function
from chalicelib.config import Env, Settings
from chalicelib.errors import ConfigError
from chalicelib.identity import RequestIdentity
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.principal import Principal, principal_of
from chalicelib.role_arns import RoleArns, role_arns_for
from chalicelib.tokens.claims import ClaimsLayout
from chalicelib.tokens.discovery import discovery_document, jwks_document
from chalicelib.tokens.exceptions import RotationTooSoon
from chalicelib.tokens.issuer import IssuedToken, TokenIssuer
from chalicelib.tokens.keyring import KeyRing, KeyStore, NoSigningKey, SigningKey, key_set_name
from chalicelib.tokens.kms_keys import KmsKeyStore
from chalicelib.tokens.plans import MintPlan, MintPlans, plan_key
from chalicelib.tokens.policy import MintRequest, TokenPolicy
from chalicelib.tokens.policy_errors import AlgorithmNotAllowed, PolicyRefusal, TokenPolicyInvalid, TtlNotAllowed
from chalicelib.tokens.request import TokenRequest, read_token_request

if TYPE_CHECKING:  # imported where used: a container serving tokens never builds a rotation
    from chalicelib.tokens.rotation import KeyRotation, RotationReport

_SIZE_PROBE_JTI = "j" * 24  # as long as the jti a token gets (secrets.token_urlsafe(18))
APP_ROOT = Path(__file__).resolve().parents[2]  # where app.py and chalicelib/ are, in the repository and in Lambda

__all__ = ["TokenService", "key_store"]


def key_store(settings: Settings, aws: AwsServices, algorithm: str | None = None) -> KeyStore:
    """The signing keys of ``algorithm`` (default: the first enabled), where CREDPORT_TOKEN_SIGNER keeps them."""
    alg = algorithm or settings.token_algorithms[0]
    key_set = key_set_name(alg, settings.token_legacy_algorithm)
    if settings.token_signer == "envelope":  # noqa: S105 (a mode, not a password)
        from chalicelib.tokens.envelope_keys import EnvelopeKeyStore

        return EnvelopeKeyStore(
            aws.secrets,
            aws.table(settings.resources.state_table),
            prefix=settings.prefix,
            algorithm_name=alg,
            data_key_arn=settings.resources.data_key_arn,
            key_set=key_set,
        )
    return KmsKeyStore(aws.kms, settings.prefix, alg, tagged=aws.tagging, caller_arn=_caller_arn(aws), key_set=key_set)


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
    """``roles`` is the deployment's role resolver, shared with sessions where the composition root builds both;
    ``ou_paths`` answers an account's OU path where an Organizations lookup is configured."""

    def __init__(
        self,
        settings: Settings,
        aws: AwsServices,
        *,
        roles: RoleArns | None = None,
        policy: TokenPolicy | None = None,
        ou_paths: Callable[[str, str | None], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.keyrings = {alg: KeyRing(key_store(settings, aws, alg)) for alg in settings.token_algorithms}
        layout = ClaimsLayout(
            issuer=settings.issuer,
            layout=settings.token_claims,
            namespace=settings.token_claims_namespace,
            source_region=settings.resources.data_key_arn.split(":")[3],  # the stack's region: its data key's
        )
        self.issuer = TokenIssuer(self.keyrings, layout)
        self.roles = roles or role_arns_for(settings, aws)  # a role's sub is its real ARN, path included
        self._policy = policy
        self._ou_paths = ou_paths
        self._aws = aws
        # The audit trail: every token issued, who for, which audiences, jti and kid (built once, written cheaply),
        # counted as TokensIssued on the same line (an EMF document: one line per token, never a count without it).
        self._issued = AuditLine(logger, "token issued", counted=metrics.embedded_count("TokensIssued"))
        self._plans = MintPlans()

    @functools.cached_property
    def policy(self) -> TokenPolicy:
        """Read at the first token request, not at construction: a bad document must not stop key rotation."""
        return self._policy or token_policy(self.settings)

    @property
    def keyring(self) -> KeyRing:
        """The key ring of the first enabled algorithm (what a request without ``alg`` signs with)."""
        return self.keyrings[self.settings.token_algorithms[0]]

    @functools.cached_property
    def rotations(self) -> dict[str, KeyRotation]:
        # Built on first use: their table, S3 and SNS clients are not needed to serve a token, and each client
        # costs a cold start tens of milliseconds. Every rotation publishes every algorithm's keys.
        from chalicelib.tokens.rotation import KeyRotation

        s, aws = self.settings, self._aws
        table = aws.table(s.resources.state_table)
        return {
            alg: KeyRotation(table, aws.s3, aws.sns, s, keyring, published=self._published)
            for alg, keyring in self.keyrings.items()
        }

    @property
    def rotation(self) -> KeyRotation:
        """The first enabled algorithm's rotation."""
        return self.rotations[self.settings.token_algorithms[0]]

    def _published(self) -> list[SigningKey]:
        keys: list[SigningKey] = []
        for keyring in self.keyrings.values():
            keyring.invalidate()
            keys += keyring.published()
        return keys

    def invalidate(self) -> None:
        for keyring in self.keyrings.values():
            keyring.invalidate()

    def issue(self, identity: RequestIdentity, query: Mapping[str, str] | None) -> IssuedToken:
        key = plan_key(identity, query)
        plan = self._plans.get(key)
        if plan is None:
            plan, reusable = self._plan(identity, query)
            if reusable:
                self._plans.put(key, plan)
        try:
            issued = self.issuer.issue_from(plan.claims, algorithm=plan.algorithm)
        except NoSigningKey:
            self.rotations[plan.algorithm].ensure_keys()  # a fresh deployment: first use bootstraps the keys
            issued = self.issuer.issue_from(plan.claims, algorithm=plan.algorithm)
        self._issued(plan.audit, jti=issued.jti, kid=issued.kid)  # and TokensIssued, on the line or beside it
        return issued

    def _plan(self, identity: RequestIdentity, query: Mapping[str, str] | None) -> tuple[MintPlan, bool]:
        """Decide the request (every check; a refusal raises), and whether the decision may be reused: not when the
        caller's OU path, which the token should carry, could not be read this time."""
        request = read_token_request(query, self.settings)
        identity.require_organization(self.settings.token_organization_id)
        principal = self.roles.resolve(principal_of(identity, identity.principal_org_id))
        lookup_failed = False
        if self._ou_paths is not None and principal.organization_id:
            ou_path = self._ou_paths(principal.account_id, principal.organization_id)
            principal = dataclasses.replace(principal, ou_path=ou_path)
            lookup_failed = ou_path is None
        rule, request = self._allowed(principal, request)
        claims = self.issuer.layout.template(
            principal, audience=request.audience_claim, ttl=request.ttl, request_tags=request.tags
        )
        audit = self._issued.prepare(
            sub=principal.subject,
            aud=request.audience_claim,
            alg=request.algorithm,  # the key ring of that algorithm signs
            ttl=request.ttl,
            rule=rule,
            request_tag_keys=list(request.tags),
        )
        plan = MintPlan(claims=claims, algorithm=request.algorithm, audit=audit)
        # A request whose token would be too large is refused before it is kept: probed at this time (a token's times
        # are 10 digits until 2286) with a jti as long as a real one.
        claims.complete(int(time.time()), _SIZE_PROBE_JTI)
        return plan, not lookup_failed

    def _allowed(self, principal: Principal, request: TokenRequest) -> tuple[str, TokenRequest]:
        """The policy rule that allows the request, and the request with its defaults narrowed to that rule: a caller
        who names no ``alg`` gets the first enabled one the policy allows it, and no ``ttl`` the default or the
        rule's ``max_ttl``, whichever is shorter. A refusal is logged with the rule (the audit trail), which the
        caller's answer never names."""
        s = self.settings
        algorithms = [request.algorithm] if request.algorithm_given else list(s.token_algorithms)
        refusal: PolicyRefusal | None = None
        for algorithm in algorithms:
            try:
                name = self._check(principal, request, algorithm, request.ttl if request.ttl_given else s.token_min_ttl)
            except PolicyRefusal as refused:
                refusal = refusal or refused
                continue
            if not request.ttl_given:
                rule = next(r for r in self.policy.rules if r.name == name)
                request = dataclasses.replace(request, ttl=min(request.ttl, rule.max_ttl))
            return name, dataclasses.replace(request, algorithm=algorithm)
        if refusal is None:  # unreachable: the settings enable one algorithm at least
            raise RuntimeError("no signing algorithm to check the token policy with")
        self._log_refusal(principal, request, refusal)
        raise refusal

    def _check(self, principal: Principal, request: TokenRequest, algorithm: str, ttl: int) -> str:
        return self.policy.check(
            MintRequest(
                subject=principal.subject,
                account=principal.account_id,
                org_id=principal.organization_id,
                principal_tags=principal.tags,
                audiences=request.audiences,
                ttl=ttl,
                algorithm=algorithm,
                tag_keys=tuple(request.tags),
            )
        )

    @staticmethod
    def _log_refusal(principal: Principal, request: TokenRequest, refused: PolicyRefusal) -> None:
        metrics.add_metric(name="TokensRefusedByPolicy", unit=MetricUnit.Count, value=1)
        # The audit trail: who, which rule, which check. What the caller sent is not logged as sent (a refused
        # audience or tag key may be anything, a pasted secret included): audiences and tag keys by digest,
        # the reason only where it holds no caller text (a ttl, an algorithm of the registry).
        fields: dict[str, Any] = {
            "sub": principal.subject,
            "error": refused.code,
            "rule": refused.rule,
            "aud_sha256": [_digest(audience) for audience in request.audiences],
            "request_tag_keys_sha256": [_digest(key) for key in request.tags],
            "alg": request.algorithm,
            "ttl": request.ttl,
        }
        if isinstance(refused, (TtlNotAllowed, AlgorithmNotAllowed)) or refused.rule is None:
            fields["reason"] = refused.reason  # a ttl, an algorithm of the registry, or "no rule matches"
        logger.warning("token refused by policy", extra=fields)

    def token_for(self, identity: RequestIdentity, query: Mapping[str, str] | None) -> dict[str, Any]:
        """``GET /token``: the answer for the caller API Gateway verified and its query parameters."""
        issued = self.issue(identity, query)
        return {"token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}

    def jwks(self) -> dict[str, Any]:
        for alg, keyring in self.keyrings.items():
            if not keyring.published():
                self.rotations[alg].ensure_keys()
        # The key rings' own cache: a public route never makes an AWS call on a warm container.
        return jwks_document([key for keyring in self.keyrings.values() for key in keyring.published()])

    def discovery(self) -> dict[str, Any]:
        return discovery_document(self.settings)

    def rotate(self, *, force: bool = False) -> list[RotationReport]:
        """Rotate every enabled algorithm's keys. Each set has its own journal: one that fails or is refused leaves
        the others rotated, and the first failure is raised once every set had its turn."""
        reports: list[RotationReport] = []
        failure: Exception | None = None
        for rotation in self.rotations.values():
            try:
                reports.append(rotation.rotate(force=force))
            except Exception as error:  # re-raised below, after the other algorithms' runs
                failure = failure or error
        self.invalidate()
        if failure is not None:
            raise failure
        return reports

    def revoke_current(self, algorithm: str | None = None) -> list[RotationReport]:
        """Emergency: revoke the current key of ``algorithm`` (default: of every enabled algorithm)."""
        algorithms = [algorithm] if algorithm else list(self.rotations)
        reports = [self.rotations[alg].revoke_current() for alg in algorithms]
        self.invalidate()
        return reports

    def rotate_on_schedule(self) -> dict[str, Any]:
        """The schedule's run, for each algorithm. An operator's rotation shortly before makes one too soon: that is
        nothing to do (the keys are fresh; the next period rotates), not a failure to retry, dead-letter and alarm
        on. Any other failure of one algorithm's run is raised once the others had theirs."""
        results: dict[str, dict[str, str]] = {}
        failure: Exception | None = None
        for alg, rotation in self.rotations.items():
            try:
                report = rotation.rotate()
            except RotationTooSoon as too_soon:
                logger.info("scheduled signing-key rotation skipped", extra={"alg": alg, "reason": too_soon.message})
                results[alg] = {"kind": "skipped", "reason": too_soon.message}
            except Exception as error:  # re-raised below, after the other algorithms' runs
                failure = failure or error
            else:
                results[alg] = {"kind": report.kind, "rotation_id": report.rotation_id}
        self.invalidate()
        if failure is not None:
            raise failure
        return {"algorithms": results}


def _digest(text: str) -> str:
    """A caller's text as the audit log keeps it: enough to match against a known value, nothing to read back."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def token_policy(settings: Settings) -> TokenPolicy:
    """The deployment's token policy: its document (CREDPORT_TOKEN_POLICY_FILE, relative to the app's root), or
    the global allow-list of the settings as one rule. A document with problems stops the function at its first
    request with every problem listed (a ConfigError), as a bad setting does."""
    s = settings
    if s.token_policy_file is None:
        return TokenPolicy.default(s.token_audiences, s.token_max_ttl, s.token_algorithms)
    path = APP_ROOT / s.token_policy_file
    try:
        return TokenPolicy.load(path, max_ttl=s.token_max_ttl, algorithms=s.token_algorithms)
    except TokenPolicyInvalid as invalid:
        raise ConfigError(f"{Env.TOKEN_POLICY_FILE}: {s.token_policy_file}: {p}" for p in invalid.problems) from None
