"""base64url without padding (RFC 7515 section 2, RFC 4648 section 5), as credport writes it.

Decoding stays with its callers: what they accept differs (joserfc's strict decoder for tokens, an explicit
alphabet check for auto-id fields), and each says so. Encoding is one C call and two byte methods, what
``base64.urlsafe_b64encode(data).rstrip(b"=")`` (joserfc's helper) computes without its Python frames: tokens,
sessions and auto-id answers encode on every request.
"""

from __future__ import annotations

import binascii

__all__ = ["encode", "text"]

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def text(data: bytes) -> str:
    return encode(data).decode("ascii")
