"""The one base64url encoder (chalicelib/base64url.py): exactly the standard library's urlsafe alphabet without
padding, the form RFC 7515 section 2 and joserfc write, and decodable by joserfc's strict decoder."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from chalicelib import base64url


@given(st.binary(max_size=600))
def test_encode_is_urlsafe_base64_without_padding(data: bytes) -> None:
    encoded = base64url.encode(data)
    assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=") == urlsafe_b64encode(data)
    assert base64url.text(data) == encoded.decode("ascii")
    assert urlsafe_b64decode(encoded) == data


def test_both_characters_that_differ_from_base64_are_replaced() -> None:
    assert base64.b64encode(b"\xfb\xff") == b"+/8="
    assert base64url.encode(b"\xfb\xff") == b"-_8"
