"""A caller account's place in AWS Organizations, for the token's ``ou_path`` claim.

STS GetWebIdentityToken puts the caller account's organizational-unit path in its tokens as
``o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/ou-ab12-22222222/``: the organization, the root, then each OU from the root
down to the one holding the account, each followed by ``/`` (IAM User Guide, "Understanding token claims"; the
format of ``aws:PrincipalOrgPaths`` and of an Organizations entity path without its last element). An account right
under the root has ``o-…/r-…/``.

Organizations answers only in the organization's management account (or a delegated administrator's), never in a
member account, so the path is read with a session of a role there, CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN, that may
call ``organizations:ListParents``: the account's parent, then each parent's parent up to the root (one call per
level; OUs nest at most five deep under a root, Organizations User Guide, "Quotas"). The organization id is not in
those answers: it is the caller's own (API Gateway's ``principalOrgId``, verified by AWS), passed in. A lookup role
of another organization does not know the account (AccountNotFoundException): no path, never another
organization's ids under the caller's.

Permissions, in two accounts. credport's API handler may ``sts:AssumeRole`` on a role named
``<prefix>-org-lookup`` at any path in any account (.chalice/policy-<stage>-api_handler.json, statement
LookUpOrganizationPaths): the setting is only known at deployment, the name pattern is what a policy file can say.
A lookup role under another name needs its own statement, added by the operator. The role itself is the operator's,
in the management account: its trust policy must trust ``arn:aws:iam::<credport account>:role/<prefix>-api_handler``
and its permissions allow ``organizations:ListParents``.

The path is informational, like AWS's own: a failed lookup (AssumeRole refused, Organizations throttled or down,
the account not in the organization, an answer of an unexpected shape) gives a token without ``ou_path``, never a
failed token: one warning log and one ``OrgPathLookupsFailed`` metric per failed lookup. Answers are cached per
container, per organization and account: an hour for a path (an account moved to another OU shows within the hour),
a minute for a failure (a broken lookup costs one attempt a minute per account, not one per token). The cache is
bounded, least recently used first out. The role session is reused until shortly before it ends (role chaining
caps it at an hour), and dropped after any failure.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from chalicelib.aws import AwsServices, Sts
from chalicelib.aws.organizations import Organizations
from chalicelib.aws.sts import TemporaryCredentials
from chalicelib.config import Settings
from chalicelib.errors import CredportError
from chalicelib.observability import MetricUnit, logger, metrics

__all__ = [
    "CACHE_SECONDS",
    "FAILURE_CACHE_SECONDS",
    "MAX_CACHED_ACCOUNTS",
    "SESSION_NAME",
    "OrgPaths",
    "org_paths_for",
]

CACHE_SECONDS = 3600.0
FAILURE_CACHE_SECONDS = 60.0
MAX_CACHED_ACCOUNTS = 1024
SESSION_NAME = "credport-org-lookup"
SESSION_SECONDS = 3600  # the most a chained session (assumed with the function's role credentials) may ask for
_SESSION_REUSE = SESSION_SECONDS - 600.0  # dropped ten minutes early: no call ever signs with an expired session
_MAX_LEVELS = 6  # five levels of OUs, then the root (Organizations User Guide, "Quotas for AWS Organizations")
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_ORGANIZATION = re.compile(r"o-[a-z0-9]{10,32}", re.ASCII)  # Organizations API Reference, the Organization type
_ROOT = re.compile(r"r-[0-9a-z]{4,32}", re.ASCII)
_OU = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}", re.ASCII)


class _NoPath(Exception):
    """A lookup that gave no path; ``reason`` is a fixed word (logged)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OrgPaths:
    """``ou_path`` of caller accounts, read with the lookup role (see the module docstring)."""

    def __init__(
        self,
        organizations_factory: Callable[[TemporaryCredentials], Organizations],
        role_arn: str,
        sts: Callable[[], Sts],
        *,
        max_entries: int = MAX_CACHED_ACCOUNTS,
        ttl: float = CACHE_SECONDS,
        failure_ttl: float = FAILURE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``sts`` and ``organizations_factory`` are called on the first lookup only: no client before a token needs one.
        self._organizations_as, self._role_arn, self._sts = organizations_factory, role_arn, sts
        self._max, self._ttl, self._failure_ttl, self._clock = max_entries, ttl, failure_ttl, clock
        # (organization id, account id) -> (the path or None after a failure, when it was read, how long it holds)
        self._cache: OrderedDict[tuple[str, str], tuple[str | None, float, float]] = OrderedDict()
        self._session: tuple[Organizations, float] | None = None  # the lookup role's client, and when it was made
        self._lock = threading.Lock()

    def ou_path(self, account_id: str, organization_id: str | None) -> str | None:
        """``o-…/r-…/ou-…/…/`` of ``account_id`` in the caller's organization ``organization_id``; None when the
        caller is in no organization (API Gateway reported none), or the path could not be read."""
        if organization_id is None or not _ORGANIZATION.fullmatch(organization_id):
            return None
        if not _ACCOUNT.fullmatch(account_id):
            return None
        key = (organization_id, account_id)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and self._clock() - entry[1] < entry[2]:
                self._cache.move_to_end(key)
                return entry[0]
        try:
            path: str | None = f"{organization_id}/{self._lookup(account_id)}"
            holds = self._ttl
        except Exception as error:  # any failure is a token without ou_path (module docstring)
            self._failed(account_id, error)
            path, holds = None, self._failure_ttl
        with self._lock:
            self._cache[key] = (path, self._clock(), holds)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return path

    def _lookup(self, account_id: str) -> str:
        """``r-…/ou-…/…/``: the account's parents, read up to the root, root first."""
        organizations = self._organizations()
        parents: list[str] = []
        child = account_id
        for _ in range(_MAX_LEVELS):
            parent = organizations.parent(child)
            if parent.type == "ROOT" and _ROOT.fullmatch(parent.id):
                return "".join(f"{p}/" for p in [parent.id, *reversed(parents)])
            if parent.type != "ORGANIZATIONAL_UNIT" or not _OU.fullmatch(parent.id) or parent.id in parents:
                raise _NoPath("unexpected_parent")
            parents.append(parent.id)
            child = parent.id
        raise _NoPath("too_deep")

    def _organizations(self) -> Organizations:
        """The Organizations client of a lookup-role session: reused while the session has ten minutes left."""
        with self._lock:
            session = self._session
        if session is not None and self._clock() - session[1] < _SESSION_REUSE:
            return session[0]
        made = self._clock()  # before the call: the session's hour starts no later than this
        credentials = self._sts().assume_role(self._role_arn, SESSION_NAME, duration_seconds=SESSION_SECONDS)
        organizations = self._organizations_as(credentials)
        with self._lock:
            self._session = (organizations, made)
        return organizations

    def _failed(self, account_id: str, error: Exception) -> None:
        with self._lock:
            self._session = None  # a refused or expired session is not tried again
        if isinstance(error, _NoPath):
            reason = error.reason
        elif isinstance(error, CredportError):
            reason = str(getattr(error, "aws_code", error.code))
        else:
            reason = type(error).__name__  # never the message: parsers and SDKs quote what they choked on
        metrics.add_metric(name="OrgPathLookupsFailed", unit=MetricUnit.Count, value=1)
        logger.warning("organization path not read", extra={"account_id": account_id, "reason": reason})


def org_paths_for(settings: Settings, aws: AwsServices) -> OrgPaths | None:
    """The lookup of a deployment, or None without CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN (tokens carry no
    ``ou_path``). Its Organizations clients sign with the lookup role's sessions, never with the function's role."""
    role_arn = settings.organization_lookup_role_arn
    if role_arn is None:
        return None

    def organizations_as(c: TemporaryCredentials) -> Organizations:
        return Organizations(
            aws.factory.client_as("organizations", c.access_key_id, c.secret_access_key, c.session_token)
        )

    return OrgPaths(organizations_as, role_arn, lambda: aws.sts)
