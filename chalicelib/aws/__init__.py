"""AWS adapters: small classes that take a boto3 client, translate its errors and return plain values.

:class:`AwsServices` hands out one adapter per service, each built on first use from a shared
:class:`ClientFactory`; the process's instance belongs to the composition root (:mod:`chalicelib.services`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from chalicelib.aws.clients import ClientFactory, ClientOptions, LazyClient, running_as, running_function
from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected, AwsUnavailable, aws_call, translate
from chalicelib.lazy import lazy_attribute

if TYPE_CHECKING:
    from chalicelib.aws.dynamodb import ItemTable
    from chalicelib.aws.iam import Iam
    from chalicelib.aws.kms import KeyService
    from chalicelib.aws.s3 import ObjectStore
    from chalicelib.aws.secrets import SecretStore
    from chalicelib.aws.sns import Publisher
    from chalicelib.aws.sqs import QueueClient
    from chalicelib.aws.sts import Sts
    from chalicelib.aws.tagging import TaggedResources

__all__ = [
    "AwsConflict",
    "AwsNotFound",
    "AwsRejected",
    "AwsServices",
    "AwsUnavailable",
    "ClientFactory",
    "ClientOptions",
    "Iam",
    "ItemTable",
    "KeyService",
    "ObjectStore",
    "Publisher",
    "QueueClient",
    "SecretStore",
    "Sts",
    "TaggedResources",
    "aws_call",
    "running_as",
    "running_function",
    "translate",
]

# Each adapter's module is imported on first use (PEP 562, and in the AwsServices property that builds it): a cold
# start imports only the adapters its first request calls (a token: KMS and IAM), not all nine.
_MODULE_OF = {
    "ItemTable": "dynamodb",
    "Iam": "iam",
    "KeyService": "kms",
    "ObjectStore": "s3",
    "SecretStore": "secrets",
    "Publisher": "sns",
    "QueueClient": "sqs",
    "Sts": "sts",
    "TaggedResources": "tagging",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _MODULE_OF, name)


class AwsServices:
    """The adapters of one process, each created lazily on first access; an adapter's client is created at its first
    call (:class:`LazyClient`), so building an adapter that is never called costs nothing."""

    def __init__(self, factory: ClientFactory) -> None:
        self.factory = factory

    @functools.cached_property
    def s3(self) -> ObjectStore:
        from chalicelib.aws.s3 import ObjectStore

        return ObjectStore(self._lazy("s3"))

    @functools.cached_property
    def secrets(self) -> SecretStore:
        from chalicelib.aws.secrets import SecretStore

        return SecretStore(self._lazy("secretsmanager"))

    @functools.cached_property
    def kms(self) -> KeyService:
        from chalicelib.aws.kms import KeyService

        return KeyService(self._lazy("kms"))

    @functools.cached_property
    def sns(self) -> Publisher:
        from chalicelib.aws.sns import Publisher

        return Publisher(self._lazy("sns"))

    @functools.cached_property
    def sqs(self) -> QueueClient:
        from chalicelib.aws.sqs import QueueClient

        return QueueClient(self._lazy("sqs"))

    @functools.cached_property
    def sts(self) -> Sts:
        from chalicelib.aws.sts import Sts

        return Sts(self._lazy("sts"))

    @functools.cached_property
    def iam(self) -> Iam:
        from chalicelib.aws.iam import Iam

        return Iam(self._lazy("iam"))

    @functools.cached_property
    def tagging(self) -> TaggedResources:
        from chalicelib.aws.tagging import TaggedResources

        return TaggedResources(self._lazy("resourcegroupstaggingapi"))

    def table(self, name: str) -> ItemTable:
        from chalicelib.aws.dynamodb import ItemTable

        return ItemTable(self._lazy("dynamodb"), name)

    def _lazy(self, service: str) -> LazyClient:
        return LazyClient(self.factory, service)
