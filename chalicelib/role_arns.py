"""Who a same-account caller is in IAM: a role session's ``sub`` (the role's real ARN, path included) and the
principal's IAM tags, read once per principal with ``iam:GetRole`` / ``iam:GetUser``.

An assumed-role ARN (``arn:aws:sts::A:assumed-role/R/S``) never carries the role's path, so for a role
``/team/R`` the parsed ``arn:aws:iam::A:role/R`` is not its ARN. ``iam:GetRole`` knows it, but only for
credport's own account (it takes a bare name and reads the caller's account), so:

- a role of credport's account gets its real ARN as ``sub``, and GetRole's ``RoleId`` must be the caller's
  ``AROA…`` (a role deleted and re-created under the same name is another principal, never vouched for with the
  new one's ARN);
- a role of another account keeps ``arn:aws:iam::A:role/R``: its path cannot be read with credport's role.
  ``aws_principal_id`` (the role's unique id) is what identifies such a role exactly (README, "Token service").

Tags (the token's ``principal_tags``, as STS GetWebIdentityToken puts them): the same GetRole answer carries the
role's ``Tags``, so a role costs no extra call. An IAM user of credport's account is read with ``iam:GetUser``, not
``iam:ListUserTags``: both are authorised on the user's ARN (``arn:aws:iam::A:user/PATH/NAME``, so one statement
on ``arn:aws:iam::*:user/*`` scopes either to users, and, taking a bare name, either reads credport's own account
only), but GetUser also answers the user's ``UserId``, which must be the caller's ``AIDA…`` exactly as a role's
``RoleId`` must (a user deleted and re-created under the same name never lends its tags to the other), and it is
one page where ListUserTags is paginated. Principals of other accounts and federated users get ``tags`` None
(unknown): IAM is per account, credport cannot read them. A same-account principal without tags gets ``{}``.

Each answer is cached per container, keyed by the principal's name and unique id: a warm container makes no IAM
call per token. The cache is bounded (least recently used first out) and entries expire after an hour
(:data:`CACHE_SECONDS`): a deleted role stops being vouched for, and a tag changed in IAM reaches tokens, within
the hour (the "bounded lifetime" of AWS's own principal-tag cache). A role's path never changes (IAM has no API to
move a role); a user's can (UpdateUser), but a user's ``sub`` is its caller ARN as API Gateway verified it, never
the cached one.

When a lookup fails (throttled, down, denied, or IAM not yet showing a principal just created: IAM is eventually
consistent), no token is issued: 503 with Retry-After, for a role (its ``sub`` is unknown) and for a user alike.
A guessed ``sub`` would be worse than a retry, since a relying party compares it exactly; and a user's token
without the tags it has would read like a principal that has none, which a relying party deciding on a tag's
absence would take at its word: a token states what IAM says of its principal, or is not issued. Nothing is
cached, so the next request asks again.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from chalicelib.aws import AwsServices, Iam
from chalicelib.config import Settings
from chalicelib.errors import CredportError, ServiceUnavailable
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.principal import Principal

__all__ = [
    "CACHE_SECONDS",
    "MAX_CACHED_ROLES",
    "RoleArns",
    "RoleNotConfirmed",
    "UserNotConfirmed",
    "role_arns_for",
]

CACHE_SECONDS = 3600.0
MAX_CACHED_ROLES = 1024
_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::([0-9]{12}):role(/(?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})", re.ASCII)
_USER_ARN = re.compile(r"arn:(aws[a-z-]*):iam::([0-9]{12}):user/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})", re.ASCII)


class RoleNotConfirmed(ServiceUnavailable):
    """The caller's role could not be read right now: no token rather than one with a guessed ``sub``."""

    default_message = "The caller's role could not be confirmed; retry later."


class UserNotConfirmed(RoleNotConfirmed):
    """The caller's IAM user could not be read right now: no token rather than one missing the user's tags. A
    :class:`RoleNotConfirmed` (same code, status and Retry-After) with its own message."""

    default_message = "The caller's IAM user could not be confirmed; retry later."


class RoleArns:
    """Same-account roles and users, read once per principal (see the module docstring); others as they are."""

    def __init__(
        self,
        iam: Callable[[], Iam],
        account_id: str,
        *,
        max_entries: int = MAX_CACHED_ROLES,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``iam`` is called on the first same-account role or user only: other callers never create an IAM client.
        self._iam, self._account, self._max, self._ttl, self._clock = iam, account_id, max_entries, ttl, clock
        # (name, unique id) -> (ARN, tags as sorted pairs: immutable, each answer gets a dict of its own, when read)
        self._cache: OrderedDict[tuple[str, str], tuple[str, tuple[tuple[str, str], ...], float]] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, principal: Principal) -> Principal:
        """``principal`` with ``subject`` set to its role's real ARN and ``tags`` to its IAM tags (same-account
        roles; same-account users get their tags; other principals are returned as they are, tags None)."""
        if principal.account_id != self._account:
            return principal
        if principal.kind == "role" and principal.role_name is not None:
            name, read = principal.role_name, self._read_role
        elif principal.kind == "user":
            name, read = principal.caller_arn.rsplit("/", 1)[1], self._read_user
        else:
            return principal
        key = (name, principal.unique_id)
        entry = self._cached(key)
        if entry is None:
            arn, tags = read(name, principal)
            entry = (arn, tuple(sorted(tags.items())))
            with self._lock:
                self._cache[key] = (*entry, self._clock())
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        arn, pairs = entry
        subject = arn if principal.kind == "role" else principal.subject
        return dataclasses.replace(principal, subject=subject, tags=dict(pairs))

    def _cached(self, key: tuple[str, str]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if self._clock() - entry[2] >= self._ttl:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry[0], entry[1]

    def _read_role(self, name: str, principal: Principal) -> tuple[str, Mapping[str, str]]:
        try:
            role = self._iam().get_role(name)
        except CredportError as error:
            raise self._unconfirmed(name, getattr(error, "aws_code", error.code), error) from None
        match = _ROLE_ARN.fullmatch(role.arn)
        if role.role_id != principal.unique_id:
            raise self._unconfirmed(name, "role_id_mismatch", None)
        if match is None or match.group(2) != self._account or match.group(4) != name or "//" in match.group(3):
            raise self._unconfirmed(name, "unexpected_arn", None)
        return role.arn, role.tags

    def _read_user(self, name: str, principal: Principal) -> tuple[str, Mapping[str, str]]:
        try:
            user = self._iam().get_user(name)
        except CredportError as error:
            raise self._unconfirmed(name, getattr(error, "aws_code", error.code), error, kind="user") from None
        match = _USER_ARN.fullmatch(user.arn)
        if user.user_id != principal.unique_id:
            raise self._unconfirmed(name, "user_id_mismatch", None, kind="user")
        if match is None or match.group(2) != self._account or match.group(3) != name:
            raise self._unconfirmed(name, "unexpected_arn", None, kind="user")
        return user.arn, user.tags

    @staticmethod
    def _unconfirmed(name: str, reason: str, error: CredportError | None, *, kind: str = "role") -> RoleNotConfirmed:
        metrics.add_metric(
            name="RoleLookupsFailed" if kind == "role" else "UserLookupsFailed", unit=MetricUnit.Count, value=1
        )
        logger.warning(f"caller {kind} not confirmed", extra={f"{kind}_name": name, "reason": reason})
        retry_after = getattr(error, "retry_after", 5) if error else 5
        return (
            RoleNotConfirmed(retry_after=retry_after) if kind == "role" else UserNotConfirmed(retry_after=retry_after)
        )


def role_arns_for(settings: Settings, aws: AwsServices) -> RoleArns:
    """The resolver of a deployment: its account is the one its own data key lives in (template.yaml creates
    both in the stack's account), so finding it costs no call."""
    return RoleArns(lambda: aws.iam, settings.resources.data_key_arn.split(":", 5)[4])
