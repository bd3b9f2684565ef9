"""Secret transfer: encrypted files in, Secrets Manager secrets out (the sending side arrives next)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from chalicelib.aws import get_aws
from chalicelib.aws.s3 import ObjectStore
from chalicelib.config import get_settings
from chalicelib.errors import BadRequest
from chalicelib.events import S3ObjectEvent, router
from chalicelib.transfer.fates import ObjectFates, object_version
from chalicelib.transfer.fetch import LinkRefused, fetch_presigned
from chalicelib.transfer.import_keys import ImportKeys
from chalicelib.transfer.importer import INBOX, Importer, ImportRefused, Receipt
from chalicelib.transfer.links import LinkSigner
from chalicelib.transfer.sending import CLIENT_KEY, CLIENTS, Sender, SendReport, UnknownClient

__all__ = [
    "ImportFailed",
    "ImportKeys",
    "ImportRefused",
    "Importer",
    "LinkRefused",
    "Receipt",
    "SendReport",
    "Sender",
    "UnknownClient",
    "get_import_keys",
    "get_importer",
    "get_sender",
    "import_key_documents",
    "import_request",
    "rotate_on_schedule",
    "send_request",
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
        fates=ObjectFates(aws.table(settings.resources.state_table)),
    )


@functools.lru_cache(maxsize=1)
def get_sender() -> Sender:
    settings, aws = get_settings(), get_aws()
    r = settings.resources
    return Sender(
        aws.s3,
        aws.secrets,
        aws.table(r.state_table),
        aws.sns,
        bucket=r.transfer_bucket,
        prefix=settings.prefix,
        notify_topic=r.notify_topic_arn,
        key_events_topic=r.key_events_topic_arn,
        links=LinkSigner(
            aws.sts,
            r.link_signer_role_arn,
            lambda c: ObjectStore(aws.factory.client_as("s3", c.access_key_id, c.secret_access_key, c.session_token)),
        ),
        link_ttl=settings.transfer_link_ttl,
        kms_key_id=r.data_key_arn,
        fates=ObjectFates(aws.table(r.state_table)),
    )


def send_request(client_id: str) -> dict[str, Any]:
    """``POST /transfer/clients/{client_id}/send``: re-send, or rotate, a client's secret now."""
    if not CLIENT_KEY.fullmatch(f"{CLIENTS}{client_id}/public.pem"):
        # No client can be registered under this id. Never ask DynamoDB: it refuses a key over 2048 bytes with
        # an error that would be a 500 (moto, and so the local stack, does not).
        raise UnknownClient()
    return Sender.describe(get_sender().send(client_id))


def rotate_on_schedule() -> int:
    """The optional schedule: rotate every client's secret when CREDPORT_TRANSFER_ROTATION_DAYS is set."""
    if get_settings().transfer_rotation_days == 0:
        return 0
    return len(get_sender().rotate_all())


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
    get_importer().import_object(event.key, object_version(event.version_id, event.etag), size=event.size)


def _on_client_object(event: S3ObjectEvent) -> None:
    version = object_version(event.version_id, event.etag)
    get_sender().on_client_object(
        event.key, event.version_id or event.etag, version=version, size=event.size, version_id=event.version_id
    )


router.register(INBOX, _on_inbox_object)
router.register(CLIENTS, _on_client_object)
