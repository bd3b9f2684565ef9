"""AWS Organizations adapter: the parent of one account or organizational unit.

Organizations answers only in the organization's management account (or a delegated administrator's), so this
client signs with a session of the operator's lookup role there (:mod:`chalicelib.org_paths`), never with a
function's own credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["Organizations", "Parent"]

_MAX_PAGES = 5  # one parent per child: more pages than this is not an answer worth waiting for


@dataclass(frozen=True)
class Parent:
    id: str  # r-… (a root) or ou-…-… (an organizational unit)
    type: str  # "ROOT" or "ORGANIZATIONAL_UNIT"


class Organizations:
    def __init__(self, client: Any) -> None:
        self._client = client

    def parent(self, child_id: str) -> Parent:
        """``organizations:ListParents`` of an account id or OU id: "In the current release, a child can have only a
        single parent", and List* operations "can occasionally return an empty set of results even when there are
        more results available" (Organizations API Reference, ListParents), so pages are read until one names it.
        No parent (a root was asked), more than one, or no answer within a few pages is a :class:`ValueError`,
        never a guess."""
        found: list[Parent] = []
        args: dict[str, Any] = {"ChildId": child_id}
        with aws_call("organizations", "ListParents"):
            for _ in range(_MAX_PAGES):
                page = self._client.list_parents(**args)
                found += [Parent(id=str(p["Id"]), type=str(p["Type"])) for p in page.get("Parents", ())]
                if not page.get("NextToken"):
                    break
                args["NextToken"] = page["NextToken"]
            else:
                raise ValueError("no last page")
        if len(found) != 1:
            raise ValueError(f"{len(found)} parents")
        return found[0]
