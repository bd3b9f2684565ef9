"""Resource Groups Tagging API adapter: find credport's own resources by their tags, never by scanning.

``tag:GetResources`` supports no resource-level permission (Resource ``*``), but it reads only ARNs and tags, and it
answers for exactly the resources that carry the tags asked for: the alternative, listing every key of the account and
describing each, needs ``kms:DescribeKey`` on keys credport does not own and is denied on AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["TaggedResources"]


class TaggedResources:
    def __init__(self, client: Any) -> None:
        self._client = client

    def find(self, resource_type: str, tags: Mapping[str, str]) -> list[str]:
        """ARNs of the resources of ``resource_type`` (``kms:key``) carrying every one of ``tags``, sorted."""
        paginator = self._client.get_paginator("get_resources")
        filters = [{"Key": key, "Values": [value]} for key, value in tags.items()]
        with aws_call("tag", "GetResources"):
            pages = list(paginator.paginate(TagFilters=filters, ResourceTypeFilters=[resource_type]))
        return sorted(entry["ResourceARN"] for page in pages for entry in page.get("ResourceTagMappingList", []))
