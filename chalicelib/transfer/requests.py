"""Secret transfer as the app calls it: its routes, its schedule and its S3 events, plain values in and out.

Collaborators arrive as zero-argument providers (the composition root's lazily built importer, sender and S3
adapter): a request refused on its face (a client id no client can have, a body of the wrong shape, the
schedule switched off) builds none of them, so it creates no AWS client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.aws.s3 import ObjectStore
from chalicelib.errors import BadRequest
from chalicelib.events.s3_objects import S3ObjectEvent
from chalicelib.transfer.exceptions import ImportFailed, ImportRefused, UnknownClient
from chalicelib.transfer.fates import object_version
from chalicelib.transfer.fetch import fetch_presigned
from chalicelib.transfer.importer import Importer
from chalicelib.transfer.sending import CLIENT_KEY, CLIENTS, Sender

__all__ = ["ImportFailed", "TransferRequests"]


class TransferRequests:
    def __init__(
        self,
        *,
        importer: Callable[[], Importer],
        sender: Callable[[], Sender],
        link_store: Callable[[], ObjectStore],
        bucket: str,
        rotation_days: int,
    ) -> None:
        self._importer = importer
        self._sender = sender
        self._link_store = link_store  # what a presigned link to the transfer bucket is fetched through
        self._bucket = bucket
        self._rotation_days = rotation_days

    def send(self, client_id: str) -> dict[str, Any]:
        """``POST /transfer/clients/{client_id}/send``: re-send, or rotate, a client's secret now."""
        if not CLIENT_KEY.fullmatch(f"{CLIENTS}{client_id}/public.pem"):
            # No client can be registered under this id. Never ask DynamoDB: it refuses a key over 2048 bytes with
            # an error that would be a 500 (moto, and so the local stack, does not).
            raise UnknownClient()
        return Sender.describe(self._sender().send(client_id))

    def rotate_on_schedule(self) -> int:
        """The optional schedule: rotate every client's secret when CREDPORT_TRANSFER_ROTATION_DAYS is set."""
        if self._rotation_days == 0:
            return 0
        return len(self._sender().rotate_all())

    def import_request(self, body: Mapping[str, Any], caller_arn: str) -> dict[str, Any]:
        """``POST /transfer/import``: ``{"jwe": ...}`` or ``{"url": <presigned link to the transfer bucket>}``."""
        if set(body) not in ({"jwe"}, {"url"}) or not all(isinstance(v, str) for v in body.values()):
            raise BadRequest('The body must be {"jwe": "<compact JWE>"} or {"url": "<presigned link>"}.')
        if "url" in body:
            data = fetch_presigned(body["url"], self._link_store(), self._bucket)
            source = "link"
        else:
            data, source = body["jwe"].encode("ascii", errors="replace"), "request"
        try:
            receipt = self._importer().import_bytes(data, source=f"{source} from {caller_arn}")
        except ImportRefused as refused:
            raise ImportFailed(f"The file cannot be imported: {refused.reason}.") from None
        return receipt.document()

    def on_inbox_object(self, event: S3ObjectEvent) -> None:
        """An object in ``inbox/`` (the S3 route of :data:`~chalicelib.transfer.importer.INBOX`)."""
        self._importer().import_object(event.key, object_version(event.version_id, event.etag), size=event.size)

    def on_client_object(self, event: S3ObjectEvent) -> None:
        """An object under ``clients/`` (the S3 route of :data:`~chalicelib.transfer.sending.CLIENTS`)."""
        version = object_version(event.version_id, event.etag)
        self._sender().on_client_object(
            event.key, event.version_id or event.etag, version=version, size=event.size, version_id=event.version_id
        )
