"""Settings: one frozen object built once from the environment.

Every environment variable the app reads is named in :class:`Env`; nothing else in the code base reads
``os.environ`` for configuration. Parsing collects every problem before failing, so a misconfigured
deployment reports all of its mistakes in one error.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from chalicelib.errors import ConfigError
from chalicelib.internal_secrets import reaching_kinds
from chalicelib.untrusted import encodable

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_LINK_TTL",
    "ROLE_CHAINING_MAX_SECONDS",
    "STACK_OUTPUTS",
    "TOKEN_SIGNERS",
    "Env",
    "ResourceNames",
    "Settings",
    "audience_matches",
    "autoid_rotation_days",
    "deployment_prefix",
    "get_settings",
    "is_valid_audience",
    "key_events_topic_name",
    "reset_settings",
    "s3_events_queue_name",
    "signing_key_rotation_days",
    "transfer_rotation_days",
]

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
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_AUDIENCE_RE = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces
_DAY = 86400
T = TypeVar("T")


class Env:
    """The name of every environment variable credport reads (names, not secrets: hence the noqa on S105)."""

    PREFIX = "CREDPORT_PREFIX"
    STAGE = "CREDPORT_STAGE"
    ISSUER = "CREDPORT_ISSUER"
    # Resource names, filled from template.yaml (Globals on SAM, stack outputs for `chalice deploy`).
    TRANSFER_BUCKET = "CREDPORT_TRANSFER_BUCKET"
    PUBLIC_BUCKET = "CREDPORT_PUBLIC_BUCKET"
    NOTIFY_TOPIC_ARN = "CREDPORT_NOTIFY_TOPIC_ARN"
    KEY_EVENTS_TOPIC_ARN = "CREDPORT_KEY_EVENTS_TOPIC_ARN"
    STATE_TABLE = "CREDPORT_STATE_TABLE"
    DATA_KEY_ARN = "CREDPORT_DATA_KEY_ARN"
    SESSION_KEY_SECRET_ARN = "CREDPORT_SESSION_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    IMPORT_KEY_SECRET_ARN = "CREDPORT_IMPORT_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    AUTOID_KEY_SECRET_ARN = "CREDPORT_AUTOID_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    AUTOID_SESSION_KEY_SECRET_ARN = "CREDPORT_AUTOID_SESSION_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    LINK_SIGNER_ROLE_ARN = "CREDPORT_LINK_SIGNER_ROLE_ARN"
    # Token service.
    TOKEN_AUDIENCES = "CREDPORT_TOKEN_AUDIENCES"  # noqa: S105
    TOKEN_DEFAULT_AUDIENCE = "CREDPORT_TOKEN_DEFAULT_AUDIENCE"  # noqa: S105
    TOKEN_DEFAULT_TTL = "CREDPORT_TOKEN_DEFAULT_TTL"  # noqa: S105
    TOKEN_MAX_TTL = "CREDPORT_TOKEN_MAX_TTL"  # noqa: S105
    TOKEN_MIN_TTL = "CREDPORT_TOKEN_MIN_TTL"  # noqa: S105
    TOKEN_ALGORITHM = "CREDPORT_TOKEN_ALGORITHM"  # noqa: S105
    TOKEN_SIGNER = "CREDPORT_TOKEN_SIGNER"  # noqa: S105
    TOKEN_ORGANIZATION_ID = "CREDPORT_TOKEN_ORGANIZATION_ID"  # noqa: S105
    SIGNING_KEY_ROTATION_DAYS = "CREDPORT_SIGNING_KEY_ROTATION_DAYS"
    JWKS_MAX_AGE = "CREDPORT_JWKS_MAX_AGE"
    # Sessions.
    SESSION_TOKEN_TTL = "CREDPORT_SESSION_TOKEN_TTL"  # noqa: S105
    SESSION_MAX_AGE = "CREDPORT_SESSION_MAX_AGE"
    SESSION_REFRESH_WINDOW = "CREDPORT_SESSION_REFRESH_WINDOW"
    # Autonomous identification and transfer.
    AUTOID_GRACE_PERIOD = "CREDPORT_AUTOID_GRACE_PERIOD"
    AUTOID_ROTATION_DAYS = "CREDPORT_AUTOID_ROTATION_DAYS"
    AUTOID_CREDENTIALS_TTL = "CREDPORT_AUTOID_CREDENTIALS_TTL"
    AUTOID_SERVING_PREFIXES = "CREDPORT_AUTOID_SERVING_PREFIXES"
    TRANSFER_LINK_TTL = "CREDPORT_TRANSFER_LINK_TTL"
    TRANSFER_IMPORT_PREFIX = "CREDPORT_TRANSFER_IMPORT_PREFIX"
    TRANSFER_ROTATION_DAYS = "CREDPORT_TRANSFER_ROTATION_DAYS"
    # AWS client behaviour.
    AWS_MAX_ATTEMPTS = "CREDPORT_AWS_MAX_ATTEMPTS"
    AWS_TIMEOUT = "CREDPORT_AWS_TIMEOUT"


# Env var -> the template.yaml output holding its value (the same expression as its entry in Globals).
STACK_OUTPUTS: Mapping[str, str] = {
    Env.PREFIX: "Prefix",
    Env.ISSUER: "Issuer",
    Env.TOKEN_SIGNER: "TokenSigner",
    Env.TRANSFER_BUCKET: "TransferBucketName",
    Env.PUBLIC_BUCKET: "PublicBucketName",
    Env.NOTIFY_TOPIC_ARN: "NotifyTopicArn",
    Env.KEY_EVENTS_TOPIC_ARN: "KeyEventsTopicArn",
    Env.STATE_TABLE: "StateTableName",
    Env.DATA_KEY_ARN: "DataKeyArn",
    Env.SESSION_KEY_SECRET_ARN: "SessionKeySecretArn",
    Env.IMPORT_KEY_SECRET_ARN: "ImportKeySecretArn",
    Env.AUTOID_KEY_SECRET_ARN: "AutoIdKeySecretArn",
    Env.AUTOID_SESSION_KEY_SECRET_ARN: "AutoIdSessionKeySecretArn",
    Env.LINK_SIGNER_ROLE_ARN: "LinkSignerRoleArn",
}


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
    token_default_ttl: int
    token_max_ttl: int
    token_min_ttl: int
    token_algorithm: str
    token_signer: str
    token_organization_id: str | None
    signing_key_rotation_days: int
    jwks_max_age: int
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
        reader = _Reader(environ)
        prefix = reader.get(Env.PREFIX, DEFAULT_PREFIX, _parse_prefix)
        audiences = reader.get(Env.TOKEN_AUDIENCES, "sts.amazonaws.com", _parse_audiences)
        default_ttl = reader.get(Env.TOKEN_DEFAULT_TTL, "3600", _seconds(60, 43200))
        max_ttl = reader.get(Env.TOKEN_MAX_TTL, "43200", _seconds(60, 43200))
        session_ttl = reader.get(Env.SESSION_TOKEN_TTL, "420", _seconds(60, 3600))
        session_max_age = reader.get(Env.SESSION_MAX_AGE, "7200", _seconds(300, 7 * _DAY))
        settings = cls(
            prefix=prefix,
            stage=reader.get(Env.STAGE, "dev", _parse_stage),
            issuer=reader.get(Env.ISSUER, "http://127.0.0.1:8000", _parse_issuer),
            resources=ResourceNames(
                transfer_bucket=reader.require(Env.TRANSFER_BUCKET, _parse_name),
                public_bucket=reader.require(Env.PUBLIC_BUCKET, _parse_name),
                notify_topic_arn=reader.require(Env.NOTIFY_TOPIC_ARN, _parse_arn("sns")),
                key_events_topic_arn=reader.require(Env.KEY_EVENTS_TOPIC_ARN, _parse_arn("sns")),
                state_table=reader.require(Env.STATE_TABLE, _parse_name),
                data_key_arn=reader.require(Env.DATA_KEY_ARN, _parse_arn("kms")),
                session_key_secret_arn=reader.require(Env.SESSION_KEY_SECRET_ARN, _parse_arn("secretsmanager")),
                import_key_secret_arn=reader.require(Env.IMPORT_KEY_SECRET_ARN, _parse_arn("secretsmanager")),
                autoid_key_secret_arn=reader.require(Env.AUTOID_KEY_SECRET_ARN, _parse_arn("secretsmanager")),
                autoid_session_key_secret_arn=reader.require(
                    Env.AUTOID_SESSION_KEY_SECRET_ARN, _parse_arn("secretsmanager")
                ),
                link_signer_role_arn=reader.require(Env.LINK_SIGNER_ROLE_ARN, _parse_role_arn),
            ),
            token_audiences=audiences,
            token_default_audience=reader.get(Env.TOKEN_DEFAULT_AUDIENCE, audiences[0], _parse_audience),
            token_default_ttl=default_ttl,
            token_max_ttl=max_ttl,
            token_min_ttl=reader.get(Env.TOKEN_MIN_TTL, "60", _seconds(60, 43200)),
            token_algorithm=reader.get(Env.TOKEN_ALGORITHM, "RS256", _parse_algorithm),
            token_signer=reader.get(Env.TOKEN_SIGNER, "kms", _parse_signer),
            token_organization_id=reader.get(Env.TOKEN_ORGANIZATION_ID, "-", _parse_organization) or None,
            signing_key_rotation_days=reader.get(Env.SIGNING_KEY_ROTATION_DAYS, "90", _integer(1, 365)),
            jwks_max_age=reader.get(Env.JWKS_MAX_AGE, "3600", _seconds(60, _DAY)),
            session_token_ttl=session_ttl,
            session_max_age=session_max_age,
            session_refresh_window=reader.get(Env.SESSION_REFRESH_WINDOW, "300", _seconds(0, 3600)),
            autoid_grace_period=reader.get(Env.AUTOID_GRACE_PERIOD, str(7 * _DAY), _seconds(3600, 90 * _DAY)),
            autoid_rotation_days=reader.get(Env.AUTOID_ROTATION_DAYS, "1", _integer(1, 365)),
            autoid_credentials_ttl=reader.get(
                Env.AUTOID_CREDENTIALS_TTL, "3600", _because(_seconds(900, ROLE_CHAINING_MAX_SECONDS), _CHAINED)
            ),
            autoid_serving_prefixes=reader.get(
                Env.AUTOID_SERVING_PREFIXES,
                f"{prefix or DEFAULT_PREFIX}/autoid/,{prefix or DEFAULT_PREFIX}/imported/",
                _parse_serving_prefixes,
            ),
            transfer_link_ttl=reader.get(
                Env.TRANSFER_LINK_TTL, "1800", _because(_seconds(60, MAX_LINK_TTL), _LINK_LIFETIME)
            ),
            # Under the deployment's own prefix by default: two deployments in one account never collide.
            transfer_import_prefix=reader.get(
                Env.TRANSFER_IMPORT_PREFIX, f"{prefix or DEFAULT_PREFIX}/imported/", _parse_secret_prefix
            ),
            transfer_rotation_days=reader.get(Env.TRANSFER_ROTATION_DAYS, "0", _integer(0, 365)),
            aws_max_attempts=reader.get(Env.AWS_MAX_ATTEMPTS, "3", _integer(1, 10)),
            aws_timeout=reader.get(Env.AWS_TIMEOUT, "5", _positive_float(0.1, 60)),
        )
        _check_relations(settings, reader)
        if reader.problems:
            raise ConfigError(reader.problems)
        return settings


def _check_relations(s: Settings, reader: _Reader) -> None:
    """Rules between settings, reported under the variable a fix belongs to."""
    if s.token_default_ttl > s.token_max_ttl and not reader.failed(Env.TOKEN_DEFAULT_TTL, Env.TOKEN_MAX_TTL):
        reader.problem(Env.TOKEN_DEFAULT_TTL, f"must not exceed {Env.TOKEN_MAX_TTL} ({s.token_max_ttl})")
    if not reader.failed(Env.TOKEN_DEFAULT_AUDIENCE, Env.TOKEN_AUDIENCES) and not any(
        audience_matches(p, s.token_default_audience) for p in s.token_audiences
    ):
        reader.problem(Env.TOKEN_DEFAULT_AUDIENCE, f"must be allowed by {Env.TOKEN_AUDIENCES}")
    if s.token_min_ttl > s.token_default_ttl and not reader.failed(Env.TOKEN_MIN_TTL, Env.TOKEN_DEFAULT_TTL):
        reader.problem(Env.TOKEN_MIN_TTL, f"must not exceed {Env.TOKEN_DEFAULT_TTL} ({s.token_default_ttl})")
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


def is_valid_audience(value: str) -> bool:
    """Printable ASCII without spaces: what an audience may contain (configured or requested)."""
    return bool(_AUDIENCE_RE.fullmatch(value))


def audience_matches(pattern: str, audience: str) -> bool:
    """An allow-list entry matches exactly, or as a prefix when it ends in a single ``*``."""
    if pattern.endswith("*"):
        return audience.startswith(pattern[:-1]) and len(audience) > len(pattern) - 1
    return audience == pattern


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []
        self._failed: set[str] = set()

    def problem(self, name: str, message: str) -> None:
        self._failed.add(name)
        self.problems.append(f"{name}: {message}")

    def _text(self, name: str, raw: str) -> bool:
        """Environment bytes that are not UTF-8 reach Python as lone surrogates (``surrogateescape``); no parser
        below may see them (a name or ARN holding one would fail inside botocore at its first use)."""
        if encodable(raw):
            return True
        self.problem(name, "is not valid UTF-8 text")
        return False

    def failed(self, *names: str) -> bool:
        return any(n in self._failed for n in names)

    def get(self, name: str, default: str, parse: Callable[[str], T]) -> T:
        raw = self._environ.get(name, "").strip() or default
        if not self._text(name, raw):
            return parse(default)
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, str(exc))
            # Defaults are valid by construction; using one lets the relation checks still run.
            return parse(default)

    def require(self, name: str, parse: Callable[[str], str]) -> str:
        raw = self._environ.get(name, "").strip()
        if not raw:
            self.problem(name, "is required (set by template.yaml; see README 'Configuration')")
            return ""
        if not self._text(name, raw):
            return ""
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, str(exc))
            return ""


def _show(raw: str) -> str:
    # Configuration values are not secrets, but keep error lines bounded.
    return repr(raw if len(raw) <= 80 else raw[:77] + "...")


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,9}", raw):
            raise ValueError(f"must be a whole number from {low} to {high}, got {_show(raw)}")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _seconds(low: int, high: int) -> Callable[[str], int]:
    parse_int = _integer(low, high)

    def parse(raw: str) -> int:
        try:
            return parse_int(raw)
        except ValueError as exc:
            raise ValueError(f"{exc} (seconds)") from None

    return parse


def _because(parse: Callable[[str], T], reason: str) -> Callable[[str], T]:
    """The same parser, its refusal followed by why the bound is what it is (an AWS limit, not a taste)."""

    def parse_with_reason(raw: str) -> T:
        try:
            return parse(raw)
        except ValueError as exc:
            raise ValueError(f"{exc}: {reason}") from None

    return parse_with_reason


def _positive_float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {low} to {high}, got {_show(raw)}") from None
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {_show(raw)}")
        return value

    return parse


def _parse_prefix(raw: str) -> str:
    if not _PREFIX_RE.fullmatch(raw):
        raise ValueError(f"must be 3-32 characters of a-z, 0-9 and '-', starting with a letter, got {_show(raw)}")
    return raw


def _parse_stage(raw: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", raw):
        raise ValueError(f"must be a short lower-case word, got {_show(raw)}")
    return raw


def _parse_issuer(raw: str) -> str:
    parts = urlsplit(raw)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(f"must be an https URL (http only for localhost), got {_show(raw)}")
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"must be a plain URL with a host and no query, fragment or credentials, got {_show(raw)}")
    if raw.endswith("/"):
        raise ValueError(f"must not end with '/' (the issuer is compared exactly), got {_show(raw)}")
    return raw


def _parse_secret_prefix(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,128}", raw):
        raise ValueError(f"must be a Secrets Manager name prefix, got {_show(raw)}")
    return raw


def _parse_serving_prefixes(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError("must list at least one secret name prefix")
    for item in items:
        # A prefix, not a pattern: it must end with '/', so 'app' can never also reach 'application/...'.
        if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,256}/", item):
            raise ValueError(f"each must be a Secrets Manager name prefix ending with '/', got {_show(item)}")
    return items


def _parse_algorithm(raw: str) -> str:
    if raw not in ("RS256", "ES256"):
        raise ValueError(f"must be RS256 or ES256, got {_show(raw)}")
    return raw


# Where token signing keys live: "kms" (private keys never leave KMS; one KMS Sign per token) or "envelope"
# (private keys in Secrets Manager under the data key, signing in memory; for rates beyond KMS quotas).
TOKEN_SIGNERS = ("kms", "envelope")


def _parse_signer(raw: str) -> str:
    if raw not in TOKEN_SIGNERS:
        raise ValueError(f"must be one of {', '.join(TOKEN_SIGNERS)}, got {_show(raw)}")
    return raw


def _parse_organization(raw: str) -> str:
    if raw == "-":
        return ""
    if not re.fullmatch(r"o-[a-z0-9]{10,32}", raw):
        raise ValueError(f"must be an AWS Organizations id (o-…), got {_show(raw)}")
    return raw


def _parse_audience(raw: str) -> str:
    if not _AUDIENCE_RE.fullmatch(raw) or raw.count("*") > (1 if raw.endswith("*") else 0):
        raise ValueError(f"must be printable ASCII without spaces ('*' only as a final wildcard), got {_show(raw)}")
    return raw


def _parse_audiences(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError("must list at least one audience")
    for item in items:
        _parse_audience(item)
        if item == "*":
            raise ValueError("a bare '*' would allow every audience; list them, or use 'prefix*'")
    return items


def _parse_name(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{3,255}", raw):
        raise ValueError(f"must be a resource name, got {_show(raw)}")
    return raw


def _parse_arn(service: str) -> Callable[[str], str]:
    pattern = re.compile(rf"arn:aws[a-z-]*:{service}:[a-z0-9-]+:[0-9]{{12}}:\S+")

    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise ValueError(f"must be an {service.upper()} ARN, got {_show(raw)}")
        return raw

    return parse


def _parse_role_arn(raw: str) -> str:
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,576}", raw):
        raise ValueError(f"must be an IAM role ARN, got {_show(raw)}")
    return raw


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use (never at import time)."""
    return Settings.from_env(os.environ)


def reset_settings() -> None:
    """Forget the cached settings (tests, and the local stack after it provisions)."""
    get_settings.cache_clear()


def deployment_prefix(environ: Mapping[str, str] | None = None) -> str:
    """The name prefix, needed at import time by event-source decorators (queue and topic names)."""
    raw = (environ if environ is not None else os.environ).get(Env.PREFIX, "").strip() or DEFAULT_PREFIX
    return _parse_prefix(raw)


def _import_time_integer(environ: Mapping[str, str] | None, name: str, default: str, low: int, high: int) -> int:
    # Read before Settings exist (decorators run at import), with the same default and bounds Settings uses.
    raw = (environ if environ is not None else os.environ).get(name, "").strip() or default
    return _integer(low, high)(raw)


def signing_key_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """The signing-key rotation period, needed at import time by the schedule decorator."""
    return _import_time_integer(environ, Env.SIGNING_KEY_ROTATION_DAYS, "90", 1, 365)


def transfer_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """Days between scheduled rotations of every transfer client's secret (0: off), at import time."""
    return _import_time_integer(environ, Env.TRANSFER_ROTATION_DAYS, "0", 0, 365)


def autoid_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """Days between scheduled auto-id rotations (server key and entropy), needed at import time."""
    return _import_time_integer(environ, Env.AUTOID_ROTATION_DAYS, "1", 1, 365)


def s3_events_queue_name(prefix: str) -> str:
    return f"{prefix}-s3-events"


def key_events_topic_name(prefix: str) -> str:
    return f"{prefix}-key-events"
