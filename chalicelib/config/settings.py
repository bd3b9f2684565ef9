"""The settings themselves: a frozen :class:`Settings` (with its :class:`ResourceNames`), parsed and validated from an
environment mapping by :meth:`Settings.from_env`, and the rules between settings that no single variable can check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ConfigError
from chalicelib.internal_secrets import reaching_kinds

from .names import Env
from .parsers import (
    audience_matches,
    because,
    integer,
    parse_algorithm,
    parse_algorithms,
    parse_arn,
    parse_audience,
    parse_audiences,
    parse_claim_layout,
    parse_claims_namespace,
    parse_issuer,
    parse_name,
    parse_organization,
    parse_policy_file,
    parse_prefix,
    parse_role_arn,
    parse_secret_prefix,
    parse_serving_prefixes,
    parse_signer,
    parse_stage,
    positive_float,
    seconds,
)
from .reader import Reader

__all__ = ["DEFAULT_PREFIX", "MAX_LINK_TTL", "ROLE_CHAINING_MAX_SECONDS", "ResourceNames", "Settings"]

DEFAULT_PREFIX = "credport-dev"
# AWS caps a role session assumed with role credentials (role chaining: every AssumeRole made from a Lambda
# function) at one hour, and refuses a longer DurationSeconds (IAM User Guide, "Role chaining").
ROLE_CHAINING_MAX_SECONDS = 3600
_CHAINED = (
    "auto-id assumes roles with its own Lambda role's credentials (role chaining), which AWS caps at one hour"
    " (IAM User Guide, 'Role chaining')"
)
# A presigned link dies when the credentials that signed it expire, whatever its X-Amz-Expires (S3 User Guide,
# "Sharing objects with presigned URLs"): links are signed by a session of the link-signer role made for the link's
# lifetime (chalicelib/transfer/links.py), assumed with the function's own role credentials, which AWS caps at an hour.
MAX_LINK_TTL = ROLE_CHAINING_MAX_SECONDS
_LINK_LIFETIME = (
    "a presigned link dies when the credentials that signed it expire; credport signs each link with a session of"
    " its link-signer role made for the link's lifetime, and AWS caps such a chained session at one hour"
    " (README 'Sending a secret to a client')"
)
_DAY = 86400


@dataclass(frozen=True)
class ResourceNames:
    transfer_bucket: str
    public_bucket: str
    notify_topic_arn: str
    key_events_topic_arn: str
    state_table: str
    data_key_arn: str
    session_key_secret_arn: str
    import_key_secret_arn: str
    autoid_key_secret_arn: str
    # Signs the sessions of auto-id clients only: the unauthenticated auto-id function never holds the main one.
    autoid_session_key_secret_arn: str
    link_signer_role_arn: str  # presigned transfer links are signed by a session of this role


@dataclass(frozen=True)
class Settings:
    prefix: str
    stage: str
    issuer: str
    resources: ResourceNames
    token_audiences: tuple[str, ...]
    token_default_audience: str
    # Audiences a token may only hold alone: a relying party that accepts a token for any of its audiences (AWS STS:
    # AssumeRoleWithWebIdentity) must never receive one another audience's holder could replay to it.
    token_exclusive_audiences: tuple[str, ...]
    token_default_ttl: int
    token_max_ttl: int
    token_min_ttl: int
    # The enabled signing algorithms, each with keys (and rotation, and JWKS entries) of its own; the first is what
    # a request without ``alg`` gets.
    token_algorithms: tuple[str, ...]
    # The algorithm whose keys keep the unqualified key names of releases before per-algorithm keys
    # (CREDPORT_TOKEN_ALGORITHM, RS256 unless it was set): an upgraded deployment keeps signing with its keys.
    token_legacy_algorithm: str
    token_signer: str
    token_organization_id: str | None
    token_claims: str  # "namespaced" (the AWS identity under one claim, as GetWebIdentityToken) or "flat" (v1)
    token_claims_namespace: str  # that claim's name, a URI
    token_policy_file: str | None  # relative to the app's root; None: the default policy (the settings above)
    # A role in the organization's management (or delegated administrator) account that may call
    # organizations:ListParents: with it, tokens carry the caller account's OU path.
    organization_lookup_role_arn: str | None
    signing_key_rotation_days: int
    jwks_max_age: int
    # How long a CDN in front of the public documents may keep them (the template's CloudFront cache policy MaxTTL):
    # a relying party's copy can then be this much older than its own max-age.
    jwks_edge_max_age: int
    session_token_ttl: int
    session_max_age: int
    session_refresh_window: int
    autoid_grace_period: int
    autoid_rotation_days: int
    autoid_credentials_ttl: int
    # Auto-id serves secrets under these name prefixes only (each ends in '/', none reaches a secret of
    # chalicelib/internal_secrets.py); enrolment refuses a policy that could reach any other name.
    autoid_serving_prefixes: tuple[str, ...]
    transfer_link_ttl: int
    transfer_import_prefix: str
    transfer_rotation_days: int
    aws_max_attempts: int
    aws_timeout: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse and validate; raise :class:`ConfigError` naming every bad variable at once."""
        reader = Reader(environ)
        prefix = reader.get(Env.PREFIX, DEFAULT_PREFIX, parse_prefix)
        audiences = reader.get(Env.TOKEN_AUDIENCES, "sts.amazonaws.com", parse_audiences)
        default_ttl = reader.get(Env.TOKEN_DEFAULT_TTL, "3600", seconds(60, 43200))
        max_ttl = reader.get(Env.TOKEN_MAX_TTL, "43200", seconds(60, 43200))
        session_ttl = reader.get(Env.SESSION_TOKEN_TTL, "420", seconds(60, 3600))
        session_max_age = reader.get(Env.SESSION_MAX_AGE, "7200", seconds(300, 7 * _DAY))
        issuer = reader.get(Env.ISSUER, "http://127.0.0.1:8000", parse_issuer)
        legacy_algorithm = reader.get(Env.TOKEN_ALGORITHM, "-", lambda r: "" if r == "-" else parse_algorithm(r))
        settings = cls(
            prefix=prefix,
            stage=reader.get(Env.STAGE, "dev", parse_stage),
            issuer=issuer,
            resources=ResourceNames(
                transfer_bucket=reader.require(Env.TRANSFER_BUCKET, parse_name),
                public_bucket=reader.require(Env.PUBLIC_BUCKET, parse_name),
                notify_topic_arn=reader.require(Env.NOTIFY_TOPIC_ARN, parse_arn("sns")),
                key_events_topic_arn=reader.require(Env.KEY_EVENTS_TOPIC_ARN, parse_arn("sns")),
                state_table=reader.require(Env.STATE_TABLE, parse_name),
                data_key_arn=reader.require(Env.DATA_KEY_ARN, parse_arn("kms")),
                session_key_secret_arn=reader.require(Env.SESSION_KEY_SECRET_ARN, parse_arn("secretsmanager")),
                import_key_secret_arn=reader.require(Env.IMPORT_KEY_SECRET_ARN, parse_arn("secretsmanager")),
                autoid_key_secret_arn=reader.require(Env.AUTOID_KEY_SECRET_ARN, parse_arn("secretsmanager")),
                autoid_session_key_secret_arn=reader.require(
                    Env.AUTOID_SESSION_KEY_SECRET_ARN, parse_arn("secretsmanager")
                ),
                link_signer_role_arn=reader.require(Env.LINK_SIGNER_ROLE_ARN, parse_role_arn),
            ),
            token_audiences=audiences,
            token_default_audience=reader.get(Env.TOKEN_DEFAULT_AUDIENCE, audiences[0], parse_audience),
            token_exclusive_audiences=reader.get(
                Env.TOKEN_EXCLUSIVE_AUDIENCES,
                "sts.amazonaws.com",
                lambda raw: () if raw == "-" else parse_audiences(raw),
            ),
            token_default_ttl=default_ttl,
            token_max_ttl=max_ttl,
            token_min_ttl=reader.get(Env.TOKEN_MIN_TTL, "60", seconds(60, 43200)),
            token_algorithms=reader.get(Env.TOKEN_ALGORITHMS, legacy_algorithm or "RS256,ES384", parse_algorithms),
            token_legacy_algorithm=legacy_algorithm or "RS256",
            token_signer=reader.get(Env.TOKEN_SIGNER, "kms", parse_signer),
            token_organization_id=reader.get(Env.TOKEN_ORGANIZATION_ID, "-", parse_organization) or None,
            token_claims=reader.get(Env.TOKEN_CLAIMS, "namespaced", parse_claim_layout),
            token_claims_namespace=reader.get(Env.TOKEN_CLAIMS_NAMESPACE, "-", parse_claims_namespace) or f"{issuer}/",
            token_policy_file=reader.get(Env.TOKEN_POLICY_FILE, "", parse_policy_file) or None,
            organization_lookup_role_arn=reader.get(
                Env.ORGANIZATION_LOOKUP_ROLE_ARN, "-", lambda raw: "" if raw == "-" else parse_role_arn(raw)
            )
            or None,
            signing_key_rotation_days=reader.get(Env.SIGNING_KEY_ROTATION_DAYS, "90", integer(1, 365)),
            jwks_max_age=reader.get(Env.JWKS_MAX_AGE, "3600", seconds(60, _DAY)),
            jwks_edge_max_age=reader.get(Env.JWKS_EDGE_MAX_AGE, "0", seconds(0, _DAY)),
            session_token_ttl=session_ttl,
            session_max_age=session_max_age,
            session_refresh_window=reader.get(Env.SESSION_REFRESH_WINDOW, "300", seconds(0, 3600)),
            autoid_grace_period=reader.get(Env.AUTOID_GRACE_PERIOD, str(7 * _DAY), seconds(3600, 90 * _DAY)),
            autoid_rotation_days=reader.get(Env.AUTOID_ROTATION_DAYS, "1", integer(1, 365)),
            autoid_credentials_ttl=reader.get(
                Env.AUTOID_CREDENTIALS_TTL, "3600", because(seconds(900, ROLE_CHAINING_MAX_SECONDS), _CHAINED)
            ),
            autoid_serving_prefixes=reader.get(
                Env.AUTOID_SERVING_PREFIXES,
                f"{prefix or DEFAULT_PREFIX}/autoid/,{prefix or DEFAULT_PREFIX}/imported/",
                parse_serving_prefixes,
            ),
            transfer_link_ttl=reader.get(
                Env.TRANSFER_LINK_TTL, "1800", because(seconds(60, MAX_LINK_TTL), _LINK_LIFETIME)
            ),
            # Under the deployment's own prefix by default: two deployments in one account never collide.
            transfer_import_prefix=reader.get(
                Env.TRANSFER_IMPORT_PREFIX, f"{prefix or DEFAULT_PREFIX}/imported/", parse_secret_prefix
            ),
            transfer_rotation_days=reader.get(Env.TRANSFER_ROTATION_DAYS, "0", integer(0, 365)),
            aws_max_attempts=reader.get(Env.AWS_MAX_ATTEMPTS, "3", integer(1, 10)),
            aws_timeout=reader.get(Env.AWS_TIMEOUT, "5", positive_float(0.1, 60)),
        )
        _check_relations(settings, reader)
        if reader.problems:
            raise ConfigError(reader.problems)
        return settings


def _audiences_or_none(raw: str) -> tuple[str, ...]:
    return () if raw == "-" else parse_audiences(raw)


def _check_relations(s: Settings, reader: Reader) -> None:
    """Rules between settings, reported under the variable a fix belongs to."""
    if s.token_default_ttl > s.token_max_ttl and not reader.failed(Env.TOKEN_DEFAULT_TTL, Env.TOKEN_MAX_TTL):
        reader.problem(Env.TOKEN_DEFAULT_TTL, f"must not exceed {Env.TOKEN_MAX_TTL} ({s.token_max_ttl})")
    if not reader.failed(Env.TOKEN_DEFAULT_AUDIENCE, Env.TOKEN_AUDIENCES) and not any(
        audience_matches(p, s.token_default_audience) for p in s.token_audiences
    ):
        reader.problem(Env.TOKEN_DEFAULT_AUDIENCE, f"must be allowed by {Env.TOKEN_AUDIENCES}")
    if s.token_min_ttl > s.token_default_ttl and not reader.failed(Env.TOKEN_MIN_TTL, Env.TOKEN_DEFAULT_TTL):
        reader.problem(Env.TOKEN_MIN_TTL, f"must not exceed {Env.TOKEN_DEFAULT_TTL} ({s.token_default_ttl})")
    legacy = reader.given(Env.TOKEN_ALGORITHM) and not reader.failed(Env.TOKEN_ALGORITHM, Env.TOKEN_ALGORITHMS)
    if legacy and s.token_legacy_algorithm not in s.token_algorithms:
        reader.problem(Env.TOKEN_ALGORITHM, f"must be one of {Env.TOKEN_ALGORITHMS} (its keys stay in use)")
    lookup = s.organization_lookup_role_arn or ""
    checked = lookup and not reader.failed(Env.ORGANIZATION_LOOKUP_ROLE_ARN, Env.PREFIX)
    if checked and lookup.rsplit("/", 1)[-1] != f"{s.prefix}-org-lookup":
        reader.problem(
            Env.ORGANIZATION_LOOKUP_ROLE_ARN,
            f"must name a role {s.prefix}-org-lookup (any path, any account): the API handler's policy may assume"
            " that role only (.chalice/policy-<stage>-api_handler.json, LookUpOrganizationPaths)",
        )
    if s.session_token_ttl > s.session_max_age and not reader.failed(Env.SESSION_TOKEN_TTL, Env.SESSION_MAX_AGE):
        reader.problem(Env.SESSION_TOKEN_TTL, f"must not exceed {Env.SESSION_MAX_AGE} ({s.session_max_age})")
    if not reader.failed(Env.PREFIX):
        # Neither may reach a secret credport owns: auto-id would serve it, the importer would overwrite it.
        for name, prefixes in (
            (Env.AUTOID_SERVING_PREFIXES, s.autoid_serving_prefixes),
            (Env.TRANSFER_IMPORT_PREFIX, (s.transfer_import_prefix,)),
        ):
            reached = sorted({kind.name(s.prefix) for p in prefixes for kind in reaching_kinds(s.prefix, p)})
            if reached and not reader.failed(name):
                reader.problem(name, f"must not reach credport's own secrets ({', '.join(reached)})")
