"""A role session's ``sub``: the role's real ARN, path included, read once per role with ``iam:GetRole``.

An assumed-role ARN (``arn:aws:sts::A:assumed-role/R/S``) never carries the role's path, so for a role
``/team/R`` the parsed ``arn:aws:iam::A:role/R`` is not its ARN. ``iam:GetRole`` knows it, but only for
credport's own account (it takes a bare name and reads the caller's account), so:

- a role of credport's account gets its real ARN as ``sub``, and GetRole's ``RoleId`` must be the caller's
  ``AROA…`` (a role deleted and re-created under the same name is another principal, never vouched for with the
  new one's ARN);
- a role of another account keeps ``arn:aws:iam::A:role/R``: its path cannot be read with credport's role.
  ``aws_principal_id`` (the role's unique id) is what identifies such a role exactly (README, "Token service").

A role's path never changes (IAM has no API to move a role), so each answer is cached per container, keyed by
the role's unique id: a warm container makes no IAM call per token. The cache is bounded (least recently used
first out) and entries expire, so a deleted role stops being vouched for within the hour.

When GetRole fails (throttled, down, denied, or IAM not yet showing a role just created: IAM is eventually
consistent), no token is issued: 503 with Retry-After. A guessed ``sub`` would be worse than a retry, since a
relying party compares it exactly; and nothing is cached, so the next request asks again.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

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
    "role_arns_for",
]

CACHE_SECONDS = 3600.0
MAX_CACHED_ROLES = 1024
_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::([0-9]{12}):role(/(?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})", re.ASCII)


class RoleNotConfirmed(ServiceUnavailable):
    """The caller's role could not be read right now: no token rather than one with a guessed ``sub``."""

    default_message = "The caller's role could not be confirmed; retry later."


class RoleArns:
    def __init__(
        self,
        iam: Callable[[], Iam],
        account_id: str,
        *,
        max_entries: int = MAX_CACHED_ROLES,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # ``iam`` is called on the first same-account role only: user callers never create an IAM client.
        self._iam, self._account, self._max, self._ttl, self._clock = iam, account_id, max_entries, ttl, clock
        self._cache: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, principal: Principal) -> Principal:
        """``principal`` with ``subject`` set to its role's real ARN (same-account roles; others as they are)."""
        name = principal.role_name
        if principal.kind != "role" or name is None or principal.account_id != self._account:
            return principal
        key = (name, principal.unique_id)
        arn = self._cached(key)
        if arn is None:
            arn = self._read(name, principal)
            with self._lock:
                self._cache[key] = (arn, self._clock())
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return dataclasses.replace(principal, subject=arn)

    def _cached(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if self._clock() - entry[1] >= self._ttl:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry[0]

    def _read(self, name: str, principal: Principal) -> str:
        try:
            role = self._iam().get_role(name)
        except CredportError as error:
            raise self._unconfirmed(name, getattr(error, "aws_code", error.code), error) from None
        match = _ROLE_ARN.fullmatch(role.arn)
        if role.role_id != principal.unique_id:
            raise self._unconfirmed(name, "role_id_mismatch", None)
        if match is None or match.group(2) != self._account or match.group(4) != name or "//" in match.group(3):
            raise self._unconfirmed(name, "unexpected_arn", None)
        return role.arn

    @staticmethod
    def _unconfirmed(name: str, reason: str, error: CredportError | None) -> RoleNotConfirmed:
        metrics.add_metric(name="RoleLookupsFailed", unit=MetricUnit.Count, value=1)
        logger.warning("caller role not confirmed", extra={"role_name": name, "reason": reason})
        return RoleNotConfirmed(retry_after=getattr(error, "retry_after", 5) if error else 5)


def role_arns_for(settings: Settings, aws: AwsServices) -> RoleArns:
    """The resolver of a deployment: its account is the one its own data key lives in (template.yaml creates
    both in the stack's account), so finding it costs no call."""
    return RoleArns(lambda: aws.iam, settings.resources.data_key_arn.split(":", 5)[4])
