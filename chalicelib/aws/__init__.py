"""AWS adapters: small classes that take a boto3 client, translate its errors and return plain values.

:class:`AwsServices` hands out one adapter per service, each built on first use from a shared
:class:`ClientFactory`; the process's instance belongs to the composition root (:mod:`chalicelib.services`).
"""

from __future__ import annotations

import functools

from chalicelib.aws.clients import ClientFactory, ClientOptions, running_as, running_function
from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected, AwsUnavailable, aws_call, translate
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


class AwsServices:
    """The adapters of one process, each created lazily on first access."""

    def __init__(self, factory: ClientFactory) -> None:
        self.factory = factory

    @functools.cached_property
    def s3(self) -> ObjectStore:
        return ObjectStore(self.factory.client("s3"))

    @functools.cached_property
    def secrets(self) -> SecretStore:
        return SecretStore(self.factory.client("secretsmanager"))

    @functools.cached_property
    def kms(self) -> KeyService:
        return KeyService(self.factory.client("kms"))

    @functools.cached_property
    def sns(self) -> Publisher:
        return Publisher(self.factory.client("sns"))

    @functools.cached_property
    def sqs(self) -> QueueClient:
        return QueueClient(self.factory.client("sqs"))

    @functools.cached_property
    def sts(self) -> Sts:
        return Sts(self.factory.client("sts"))

    @functools.cached_property
    def iam(self) -> Iam:
        return Iam(self.factory.client("iam"))

    @functools.cached_property
    def tagging(self) -> TaggedResources:
        return TaggedResources(self.factory.client("resourcegroupstaggingapi"))

    def table(self, name: str) -> ItemTable:
        return ItemTable(self.factory.client("dynamodb"), name)
