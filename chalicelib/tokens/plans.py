"""Mint plans: what a warm container decided for a caller's request, kept for the next identical one.

Everything a token request decides but its time and ``jti`` is a function of the caller's verified identity and the
query it sent: the request's parameters, the principal (its role's real ARN and IAM tags, read through the role
cache), the organization check, the policy rule and the defaults it narrows, and the claims. A workload asks for the
same token over and over, so a container keeps that decision, keyed by exactly those inputs, and the next identical
request only stamps and signs. Only allowed requests are kept (a refusal is decided, logged and counted each time);
a plan lives :data:`PLAN_SECONDS` at most, so a change of the role's tags, of the caller account's OU path or of
anything else read through a cache with its own lifetime is seen within that much of the cache's own expiry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.audit import PreparedFields
from chalicelib.identity import RequestIdentity
from chalicelib.tokens.claims import ClaimsTemplate

__all__ = ["MAX_PLANS", "PLAN_SECONDS", "MintPlan", "MintPlans", "plan_key"]

PLAN_SECONDS = 60.0
MAX_PLANS = 1024

PlanKey = tuple[str, str, str, str | None, tuple[tuple[str, tuple[str, ...]], ...]]


@dataclass(frozen=True)
class MintPlan:
    """An allowed request, decided: the claims but time and jti, the algorithm, and the audit line's fields but the
    token's own (``jti``, ``kid``)."""

    claims: ClaimsTemplate
    algorithm: str
    audit: PreparedFields


def plan_key(identity: RequestIdentity, query: Mapping[str, Any] | None) -> PlanKey:
    """What a plan depends on: the caller as API Gateway verified it (the ARN, the account, the unique id with its
    session, and the organization: every field of the identity a decision reads) and every query parameter with all
    its values, in the order sent."""
    if not query:
        items: tuple[tuple[str, tuple[str, ...]], ...] = ()
    else:
        getlist = getattr(query, "getlist", None)
        items = tuple((name, tuple(getlist(name)) if getlist else (query[name],)) for name in query)
    return (identity.user_arn, identity.account_id, identity.caller, identity.principal_org_id, items)


class MintPlans:
    """A bounded, expiring map of plans, least recently used dropped first; safe across threads."""

    def __init__(
        self,
        *,
        ttl: float = PLAN_SECONDS,
        max_entries: int = MAX_PLANS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._max, self._clock = ttl, max_entries, clock
        self._plans: OrderedDict[PlanKey, tuple[MintPlan, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: PlanKey) -> MintPlan | None:
        with self._lock:
            entry = self._plans.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._plans[key]
                return None
            self._plans.move_to_end(key)
            return entry[0]

    def put(self, key: PlanKey, plan: MintPlan) -> None:
        with self._lock:
            self._plans[key] = (plan, self._clock() + self._ttl)
            self._plans.move_to_end(key)
            while len(self._plans) > self._max:
                self._plans.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def __len__(self) -> int:
        return len(self._plans)
