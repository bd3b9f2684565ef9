"""IAM condition keys: the allow-list of keys the embedded IAM evaluates, and the request context they are read from.

Condition KEYS are an explicit allow-list (:data:`KNOWN_KEYS`, :data:`KNOWN_PREFIXES` and the web identity keys of
an OIDC provider): any other key raises :class:`UnsupportedCondition`, it never evaluates as a match or a miss. Key
names are case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["KNOWN_KEYS", "KNOWN_PREFIXES", "UnsupportedCondition", "normalize_context", "require_known_key"]


class UnsupportedCondition(Exception):
    """A condition operator or key (or another policy element) this evaluator does not know: refused loudly."""


# Global keys credport's policies (or the AWS examples its tests use) need, and service keys of the services it calls.
KNOWN_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:TagKeys",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalType",
        "aws:userid",
        "aws:username",
        "aws:SecureTransport",
        "aws:SourceArn",
        "aws:SourceAccount",
        "aws:SourceIp",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:ViaAWSService",
        "aws:CalledVia",
        "kms:ResourceAliases",
        "kms:RequestAlias",
        "kms:ViaService",
        "kms:CallerAccount",
        "kms:KeySpec",
        "kms:KeyUsage",
        "s3:prefix",
        "s3:delimiter",
        "s3:max-keys",
        "s3:x-amz-server-side-encryption",
        "dynamodb:LeadingKeys",
        "dynamodb:Attributes",
        "sts:ExternalId",
        "sts:RoleSessionName",
        "sts:SourceIdentity",
        "sts:DurationSeconds",
        "secretsmanager:Name",
        "secretsmanager:SecretId",
    )
)
KNOWN_PREFIXES = (
    "aws:resourcetag/",
    "aws:requesttag/",
    "aws:principaltag/",
    "kms:encryptioncontext:",
    "s3:existingobjecttag/",
    "secretsmanager:resourcetag/",
)
# Web identity keys: "<provider host[/path]>:aud|sub|azp|amr", e.g. token.actions.githubusercontent.com:sub,
# accounts.google.com:aud, oidc.eks.<region>.amazonaws.com/id/<id>:sub (IAM User Guide, "Available keys for
# AWS web identity federation").
# A local issuer carries its port (127.0.0.1:8000:aud): IAM keys a provider by its URL without the scheme.
_WEB_IDENTITY_KEY = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]{1,5})?(/[a-z0-9._~/-]+)?:(aud|oaud|sub|azp|amr)")


def require_known_key(key: str) -> str:
    """The key, lowercased; raises for any key outside the allow-list."""
    lowered = key.lower()
    if lowered in KNOWN_KEYS or _WEB_IDENTITY_KEY.fullmatch(lowered):
        return lowered
    if any(lowered.startswith(p) and len(lowered) > len(p) for p in KNOWN_PREFIXES):
        return lowered
    raise UnsupportedCondition(f"condition key {key!r} is not supported by the embedded IAM")


def normalize_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Keys lowercased (key names are case-insensitive); None means absent."""
    return {k.lower(): v for k, v in context.items() if v is not None}
