"""Errors of secret transfer (stable codes are part of the API)."""

from __future__ import annotations

from chalicelib.errors import BadRequest, NotFound

__all__ = ["ImportFailed", "ImportRefused", "LinkRefused", "UnknownClient"]


class ImportRefused(Exception):
    """Raised by the importer for a file that can never import; ``reason`` is the stable code its quarantine
    receipt and log line carry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportFailed(BadRequest):
    """Raised by ``POST /transfer/import`` when the importer refuses what the caller sent (naming the reason)."""

    code = "import_refused"


class LinkRefused(BadRequest):
    """Raised when a link is not a presigned S3 link to an object under inbox/ or links/ of the transfer bucket,
    or fetching it failed; ``reason`` names the check."""

    code = "link_refused"
    default_message = "The link must be a presigned S3 link to an object under inbox/ or links/ of the transfer bucket."

    def __init__(self, reason: str = "refused", message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownClient(NotFound):
    """Raised when no transfer client is registered under the id a send names."""

    code = "unknown_client"
    default_message = "No client is registered under that id."
