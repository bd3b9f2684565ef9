"""Secret transfer: encrypted files in, Secrets Manager secrets out, and each registered client's secret sent."""

from __future__ import annotations

from chalicelib.transfer.fetch import LinkRefused
from chalicelib.transfer.importer import INBOX, Importer, ImportRefused, Receipt
from chalicelib.transfer.requests import ImportFailed, TransferRequests
from chalicelib.transfer.sending import CLIENTS, Sender, SendReport, UnknownClient

__all__ = [
    "CLIENTS",
    "INBOX",
    "ImportFailed",
    "ImportRefused",
    "Importer",
    "LinkRefused",
    "Receipt",
    "SendReport",
    "Sender",
    "TransferRequests",
    "UnknownClient",
]
