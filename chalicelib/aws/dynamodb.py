"""DynamoDB adapter over plain dicts (the low-level client with boto3's type (de)serializers)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["ItemTable"]


class ItemTable:
    """Items of one table as plain Python values: whole numbers come back as ``int``, other numbers as
    ``Decimal`` (never ``float``, which would lose precision), binary as ``bytes``, sets as ``set``."""

    def __init__(self, client: Any, table_name: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._client = client
        self.name = table_name
        self._serialize = TypeSerializer().serialize
        self._deserialize = TypeDeserializer().deserialize

    def put(
        self, item: Mapping[str, Any], *, if_absent: str | None = None, if_equals: tuple[str, Any] | None = None
    ) -> None:
        """Write ``item``. With ``if_absent`` naming the key attribute, an existing item raises
        :class:`~chalicelib.aws.errors.AwsConflict` instead (the basis of replay protection); with
        ``if_equals=(attribute, value)`` the write happens only while the stored item still has that value
        (optimistic locking)."""
        args: dict[str, Any] = {"TableName": self.name, "Item": self._encode(item)}
        if if_absent:
            args["ConditionExpression"] = "attribute_not_exists(#k)"
            args["ExpressionAttributeNames"] = {"#k": if_absent}
        elif if_equals:
            args["ConditionExpression"] = "#a = :v"
            args["ExpressionAttributeNames"] = {"#a": if_equals[0]}
            args["ExpressionAttributeValues"] = {":v": self._serialize(if_equals[1])}
        with aws_call("dynamodb", "PutItem"):
            self._client.put_item(**args)

    def get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        with aws_call("dynamodb", "GetItem"):
            response = self._client.get_item(TableName=self.name, Key=self._encode(key), ConsistentRead=True)
        item = response.get("Item")
        return self._decode(item) if item else None

    def delete(self, key: Mapping[str, Any]) -> None:
        with aws_call("dynamodb", "DeleteItem"):
            self._client.delete_item(TableName=self.name, Key=self._encode(key))

    def query(self, partition_attr: str, partition_value: Any) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("query")
        with aws_call("dynamodb", "Query"):
            for page in paginator.paginate(
                TableName=self.name,
                KeyConditionExpression="#p = :p",
                ExpressionAttributeNames={"#p": partition_attr},
                ExpressionAttributeValues={":p": self._serialize(partition_value)},
                ConsistentRead=True,
            ):
                for item in page.get("Items", []):
                    yield self._decode(item)

    def _encode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._serialize(v) for k, v in item.items()}

    def _decode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    from boto3.dynamodb.types import Binary

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value
