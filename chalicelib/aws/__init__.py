"""AWS adapters: small classes that take a boto3 client, translate its errors and return plain values.

:class:`AwsServices` hands out one adapter per service, each built on first use from a shared
:class:`ClientFactory`; :func:`get_aws` is the process-wide instance the handlers use.
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
    "get_aws",
    "reset_aws",
    "running_as",
    "running_function",
    "sign_with",
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


_signing: list[object] = [None]  # the credentials object sign_with gave, or None (botocore's chain: AWS)


@functools.lru_cache(maxsize=1)
def get_aws() -> AwsServices:
    """The process-wide adapters, configured from the settings on first use."""
    from chalicelib.config import get_settings

    settings = get_settings()
    options = ClientOptions(settings.aws_max_attempts, settings.aws_timeout)
    return AwsServices(ClientFactory(options, credentials=_signing[0]))


def sign_with(credentials: object) -> None:
    """Sign the app's AWS requests with this botocore credentials object from now on (None: botocore's chain).
    Only a process running several functions uses it (the local stack: each invocation signs as its function's
    role, see chalicelib.aws.clients). Never called on AWS."""
    _signing[0] = credentials
    reset_aws()


def reset_aws() -> None:
    """Drop every client (tests, after switching endpoints)."""
    get_aws.cache_clear()
