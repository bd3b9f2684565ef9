"""Secret transfer: encrypted files in, Secrets Manager secrets out (the sending side arrives next)."""

from __future__ import annotations

import functools
from typing import Any

from chalicelib.aws import get_aws
from chalicelib.config import get_settings
from chalicelib.events import S3ObjectEvent, router
from chalicelib.transfer.import_keys import ImportKeys
from chalicelib.transfer.importer import INBOX, Importer, ImportRefused, Receipt

__all__ = [
    "ImportKeys",
    "ImportRefused",
    "Importer",
    "Receipt",
    "get_import_keys",
    "get_importer",
    "import_key_documents",
]


@functools.lru_cache(maxsize=1)
def get_import_keys() -> ImportKeys:
    return ImportKeys(get_aws().secrets, get_settings().resources.import_key_secret_arn)


@functools.lru_cache(maxsize=1)
def get_importer() -> Importer:
    settings, aws = get_settings(), get_aws()
    return Importer(
        aws.s3,
        aws.secrets,
        get_import_keys(),
        bucket=settings.resources.transfer_bucket,
        name_prefix=settings.transfer_import_prefix,
        kms_key_id=settings.resources.data_key_arn,
    )


def import_key_documents() -> dict[str, Any]:
    return get_import_keys().public_documents()


def _on_inbox_object(event: S3ObjectEvent) -> None:
    get_importer().import_object(event.key)


router.register(INBOX, _on_inbox_object)
