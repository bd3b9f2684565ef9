"""Value parsers for configuration: each takes the raw text of one variable and returns its value or raises
``ValueError`` with a message that says what the value must be (and shows, bounded, what it was).

Audiences live here too: :func:`is_valid_audience` and :func:`audience_matches` apply to audiences a caller requests
the same rules the allow-list is parsed with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

__all__ = [
    "TOKEN_ALGORITHMS",
    "TOKEN_CLAIM_LAYOUTS",
    "TOKEN_SIGNERS",
    "audience_matches",
    "because",
    "integer",
    "is_valid_audience",
    "parse_algorithm",
    "parse_algorithms",
    "parse_arn",
    "parse_audience",
    "parse_audiences",
    "parse_claim_layout",
    "parse_claims_namespace",
    "parse_issuer",
    "parse_name",
    "parse_organization",
    "parse_policy_file",
    "parse_prefix",
    "parse_role_arn",
    "parse_secret_prefix",
    "parse_serving_prefixes",
    "parse_signer",
    "parse_stage",
    "positive_float",
    "seconds",
    "show",
]

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_AUDIENCE_RE = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces
T = TypeVar("T")

# Where token signing keys live: "kms" (private keys never leave KMS; one KMS Sign per token) or "envelope"
# (private keys in Secrets Manager under the data key, signing in memory; for rates beyond KMS quotas).
TOKEN_SIGNERS = ("kms", "envelope")


def is_valid_audience(value: str) -> bool:
    """Printable ASCII without spaces: what an audience may contain (configured or requested)."""
    return bool(_AUDIENCE_RE.fullmatch(value))


def audience_matches(pattern: str, audience: str) -> bool:
    """An allow-list entry matches exactly, or as a prefix when it ends in a single ``*``."""
    if pattern.endswith("*"):
        return audience.startswith(pattern[:-1]) and len(audience) > len(pattern) - 1
    return audience == pattern


def show(raw: str) -> str:
    # Configuration values are not secrets, but keep error lines bounded.
    return repr(raw if len(raw) <= 80 else raw[:77] + "...")


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,9}", raw):
            raise ValueError(f"must be a whole number from {low} to {high}, got {show(raw)}")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def seconds(low: int, high: int) -> Callable[[str], int]:
    return _explained(integer(low, high), " (seconds)")


def because(parse: Callable[[str], T], reason: str) -> Callable[[str], T]:
    """The same parser, its refusal followed by why the bound is what it is (an AWS limit, not a taste)."""
    return _explained(parse, f": {reason}")


def _explained(parse: Callable[[str], T], suffix: str) -> Callable[[str], T]:
    def parse_explained(raw: str) -> T:
        try:
            return parse(raw)
        except ValueError as exc:
            raise ValueError(f"{exc}{suffix}") from None

    return parse_explained


def positive_float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {low} to {high}, got {show(raw)}") from None
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}, got {show(raw)}")
        return value

    return parse


def _listed(raw: str, what: str, check: Callable[[str], object]) -> tuple[str, ...]:
    """A comma-separated list: its non-blank items, stripped, at least one, each passed through ``check`` (which
    raises ``ValueError`` for a bad one) in the order given."""
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ValueError(f"must list at least one {what}")
    for item in items:
        check(item)
    return items


def _matching(pattern: str | re.Pattern[str], raw: str, expected: str) -> str:
    """``raw`` when the whole of it matches ``pattern``; else the one message shape: what was expected, and what
    was found (shown safely)."""
    if not re.fullmatch(pattern, raw):
        raise ValueError(f"must be {expected}, got {show(raw)}")
    return raw


def parse_prefix(raw: str) -> str:
    return _matching(_PREFIX_RE, raw, "3-32 characters of a-z, 0-9 and '-', starting with a letter")


def parse_stage(raw: str) -> str:
    return _matching(r"[a-z][a-z0-9]{0,15}", raw, "a short lower-case word")


def parse_issuer(raw: str) -> str:
    parts = urlsplit(raw)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(f"must be an https URL (http only for localhost), got {show(raw)}")
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"must be a plain URL with a host and no query, fragment or credentials, got {show(raw)}")
    if raw.endswith("/"):
        raise ValueError(f"must not end with '/' (the issuer is compared exactly), got {show(raw)}")
    return raw


def parse_secret_prefix(raw: str) -> str:
    return _matching(r"[A-Za-z0-9/_+=.@-]{1,128}", raw, "a Secrets Manager name prefix")


def _serving_prefix(item: str) -> None:
    # A prefix, not a pattern: it must end with '/', so 'app' can never also reach 'application/...'.
    if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,256}/", item):
        raise ValueError(f"each must be a Secrets Manager name prefix ending with '/', got {show(item)}")


def parse_serving_prefixes(raw: str) -> tuple[str, ...]:
    return _listed(raw, "secret name prefix", _serving_prefix)


TOKEN_ALGORITHMS = ("RS256", "ES256", "ES384")  # chalicelib/tokens/algorithms.py holds what each one is
TOKEN_CLAIM_LAYOUTS = ("namespaced", "flat")


def parse_algorithm(raw: str) -> str:
    if raw not in TOKEN_ALGORITHMS:
        raise ValueError(f"must be one of {', '.join(TOKEN_ALGORITHMS)}, got {show(raw)}")
    return raw


def parse_algorithms(raw: str) -> tuple[str, ...]:
    algorithms = _listed(raw, "signing algorithm", parse_algorithm)
    if len(set(algorithms)) != len(algorithms):
        raise ValueError(f"must list each algorithm once, got {show(raw)}")
    return algorithms


def parse_claim_layout(raw: str) -> str:
    if raw not in TOKEN_CLAIM_LAYOUTS:
        raise ValueError(f"must be one of {', '.join(TOKEN_CLAIM_LAYOUTS)}, got {show(raw)}")
    return raw


def parse_claims_namespace(raw: str) -> str:
    """A URI naming the claim that holds the AWS identity (as AWS's ``https://sts.amazonaws.com/``): an absolute
    https URL or a URN, printable ASCII, no spaces."""
    if raw == "-":
        return ""
    pattern = r"(https://[\x21-\x7e]{1,240}|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[\x21-\x7e]{1,200})"
    return _matching(pattern, raw, "an https URL or a URN")


def parse_policy_file(raw: str) -> str:
    """Where the token policy document is, relative to the app's root: inside ``chalicelib/``, the only folder
    besides app.py that ``chalice package`` puts into the deployment package."""
    if raw == "":
        return ""
    parts = raw.split("/")
    misplaced = parts[0] != "chalicelib" or len(parts) < 2 or any(p in ("", ".", "..") for p in parts)
    if misplaced or not raw.endswith(".json"):
        raise ValueError(
            "must be a .json file under chalicelib/ (relative, no '..'): chalice packages only app.py and chalicelib/,"
            f" got {show(raw)}"
        )
    return _matching(r"[A-Za-z0-9._/-]{1,255}", raw, "a relative path")


def parse_signer(raw: str) -> str:
    if raw not in TOKEN_SIGNERS:
        raise ValueError(f"must be one of {', '.join(TOKEN_SIGNERS)}, got {show(raw)}")
    return raw


def parse_organization(raw: str) -> str:
    if raw == "-":
        return ""
    return _matching(r"o-[a-z0-9]{10,32}", raw, "an AWS Organizations id (o-…)")


def parse_audience(raw: str) -> str:
    if not _AUDIENCE_RE.fullmatch(raw) or raw.count("*") > (1 if raw.endswith("*") else 0):
        raise ValueError(f"must be printable ASCII without spaces ('*' only as a final wildcard), got {show(raw)}")
    return raw


def _listed_audience(item: str) -> None:
    parse_audience(item)
    if item == "*":
        raise ValueError("a bare '*' would allow every audience; list them, or use 'prefix*'")


def parse_audiences(raw: str) -> tuple[str, ...]:
    return _listed(raw, "audience", _listed_audience)


def parse_name(raw: str) -> str:
    return _matching(r"[A-Za-z0-9._-]{3,255}", raw, "a resource name")


def parse_arn(service: str) -> Callable[[str], str]:
    pattern = re.compile(rf"arn:aws[a-z-]*:{service}:[a-z0-9-]+:[0-9]{{12}}:\S+")

    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise ValueError(f"must be an {service.upper()} ARN, got {show(raw)}")
        return raw

    return parse


def parse_role_arn(raw: str) -> str:
    return _matching(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,576}", raw, "an IAM role ARN")
