"""Secret transfer: encrypted files in, Secrets Manager secrets out (the sending side arrives next)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from chalicelib.aws import get_aws
from chalicelib.config import get_settings
from chalicelib.errors import BadRequest
from chalicelib.events import S3ObjectEvent, router
from chalicelib.transfer.fetch import LinkRefused, fetch_presigned
from chalicelib.transfer.import_keys import ImportKeys
from chalicelib.transfer.importer import INBOX, Importer, ImportRefused, Receipt

__all__ = [
    "ImportFailed",
    "ImportKeys",
    "ImportRefused",
    "Importer",
    "LinkRefused",
    "Receipt",
    "get_import_keys",
    "get_importer",
    "import_key_documents",
    "import_request",
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


class ImportFailed(BadRequest):
    code = "import_refused"


def import_request(body: Mapping[str, Any], caller_arn: str) -> dict[str, Any]:
    """``POST /transfer/import``: ``{"jwe": ...}`` or ``{"url": <presigned link to the transfer bucket>}``."""
    if set(body) not in ({"jwe"}, {"url"}) or not all(isinstance(v, str) for v in body.values()):
        raise BadRequest('The body must be {"jwe": "<compact JWE>"} or {"url": "<presigned link>"}.')
    if "url" in body:
        settings = get_settings()
        data = fetch_presigned(body["url"], get_aws().s3, settings.resources.transfer_bucket)
        source = "link"
    else:
        data, source = body["jwe"].encode("ascii", errors="replace"), "request"
    try:
        receipt = get_importer().import_bytes(data, source=f"{source} from {caller_arn}")
    except ImportRefused as refused:
        raise ImportFailed(f"The file cannot be imported: {refused.reason}.") from None
    return receipt.document()


def _on_inbox_object(event: S3ObjectEvent) -> None:
    get_importer().import_object(event.key)


router.register(INBOX, _on_inbox_object)
