"""What an uploaded key file holds, judged by its structure: a private key, provably public keys only, or neither.

``clients/`` of the transfer bucket is for public keys. A private key dropped there by mistake must be caught
whatever its name, size or encoding, so the check is by structure, never by file name, and it is one-sided:

- :data:`PRIVATE` when the bytes parse as, or contain, private key material in any form we know: PEM of any
  label naming PRIVATE (any case or spacing, CRLF, text around it), DER (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1,
  OpenSSL DSA), PKCS#12 (any password: its shape is enough), OpenSSH (armoured or raw ``openssh-key-v1``), PuTTY,
  JWK/JWKS with private members (``d p q dp dq qi k oth``, any ``kty``), and any of these base64- or hex-wrapped,
  UTF-16/32-encoded, inside a PEM block of another label (a bundle with certificates), or in a JSON string;
- :data:`PUBLIC` only when the file is nothing but PEM public keys or certificates that ``cryptography`` loads,
  separated by whitespace, and holds nothing private: the only files whose bytes may be kept or copied;
- :data:`UNPROVEN` for everything else. A raw 32-byte Ed25519 or X25519 private key is indistinguishable from
  random bytes, so "not recognised as private" is no proof of harmlessness: the caller treats UNPROVEN as
  possibly secret (under ``clients/`` it is purged, never copied) but raises no leak alarm for it.

Work is bounded: callers pass at most :data:`INSPECTION_LIMIT` bytes, unwrapping stops at :data:`MAX_DEPTH`, and the
ASN.1 walk at :data:`MAX_NODES` elements. Nothing here logs or raises with the bytes it was given.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

__all__ = ["INSPECTION_LIMIT", "MAX_DEPTH", "MAX_NODES", "PRIVATE", "PUBLIC", "UNPROVEN", "classify", "holds_private"]

PRIVATE: Final = "private_key"
PUBLIC: Final = "public_only"
UNPROVEN: Final = "unproven"
INSPECTION_LIMIT = 256 * 1024  # a PKCS#12 with a chain, or a JWKS of RSA-4096 keys, is a few KiB: ample
MAX_DEPTH = 4  # wrappings unwrapped (base64 in JSON in PEM ...): each level shrinks or re-encodes the data
MAX_NODES = 50_000  # ASN.1 elements visited per blob
MAX_NESTING = 32  # ASN.1 nesting: keys and PKCS#12 files nest less than 10 deep

# A PEM armour line naming a private key: any case, any spacing (line breaks too), any number of dashes (3+), any
# label words around PRIVATE (RSA, EC, DSA, ENCRYPTED, OPENSSH, ANY, PGP ... BLOCK, labels not invented yet).
_PRIVATE_ARMOUR = re.compile(rb"-{3,}\s*BEGIN\b[^-]{0,200}?PRIVATE", re.IGNORECASE)
_ANY_BLOCK = re.compile(rb"-{3,}\s*BEGIN[^-]{0,200}?-{3,}(.*?)(?:-{3,}\s*END|\Z)", re.IGNORECASE | re.DOTALL)
_PUBLIC_BLOCK = re.compile(
    rb"-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END \1-----"
)
_RAW_MARKERS = (b"openssh-key-v1\x00", b"PuTTY-User-Key-File-")
_B64 = re.compile(rb"[A-Za-z0-9+/_\-]+={0,2}")
_HEX = re.compile(rb"(?:[0-9A-Fa-f]{2})+")
_JWK_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_JWK_PUBLIC = frozenset({"kty", "n", "e", "x", "y", "crv", "kid", "alg", "use", "key_ops"})

# ASN.1: universal tags, and the OID prefixes (DER content bytes) of password-based encryption schemes.
_INTEGER, _BIT_STRING, _OCTET_STRING, _OID, _SEQUENCE = 0x02, 0x03, 0x04, 0x06, 0x30
_PKCS5 = bytes.fromhex("2a864886f70d0105")  # 1.2.840.113549.1.5: PBES1, PBES2
_PKCS12_PBE = bytes.fromhex("2a864886f70d010c01")  # 1.2.840.113549.1.12.1: pkcs-12PbeIds
_PKCS7_DATA_OR_SIGNED = (bytes.fromhex("2a864886f70d010701"), bytes.fromhex("2a864886f70d010702"))

_Node = tuple[int, bytes, list[Any] | None]  # (tag, content, children when constructed)


def classify(data: bytes) -> str:
    """:data:`PRIVATE`, :data:`PUBLIC` or :data:`UNPROVEN` (see the module docstring)."""
    if holds_private(data):
        return PRIVATE
    return PUBLIC if _public_only(data) else UNPROVEN


def holds_private(data: bytes, depth: int = 0) -> bool:
    """Whether ``data`` parses as, or contains, private key material (any encoding we can unwrap)."""
    if depth > MAX_DEPTH or not data:
        return False
    if _blob_is_private(data, depth):
        return True
    return any(holds_private(text, depth + 1) for text in _decodings(data))


def _decodings(data: bytes) -> Iterator[bytes]:
    """The bytes as UTF-8 (and Latin-1, for bytes carried as code points) when they are text in
    another encoding: UTF-8 with a BOM, UTF-16 or UTF-32 by BOM or by their pattern of zero bytes. A handful of
    readings at most, whatever the data, so nested unwrapping cannot multiply."""
    for encoding in _text_encodings(data):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        yield text.encode("utf-8", "surrogatepass")
        if not text.isascii() and max(map(ord, text)) < 0x100:
            yield text.encode("latin-1")


def _text_encodings(data: bytes) -> list[str]:
    # A UTF-16-LE BOM followed by a NUL character reads as UTF-32-LE's BOM: both are tried.
    found = [
        encoding
        for bom, encoding in (
            (codecs.BOM_UTF32_LE, "utf-32"),
            (codecs.BOM_UTF32_BE, "utf-32"),
            (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"),
            (codecs.BOM_UTF16_BE, "utf-16"),
        )
        if data.startswith(bom)
    ]
    head = data[:64]
    if found or len(head) < 8:
        return found
    # ASCII text in UTF-32 or UTF-16 without a BOM: zeros at fixed positions of every code unit.
    for encoding, width, zeros in (
        ("utf-32-le", 4, (1, 2, 3)),
        ("utf-32-be", 4, (0, 1, 2)),
        ("utf-16-le", 2, (1,)),
        ("utf-16-be", 2, (0,)),
    ):
        if len(head) % width == 0 and all(not any(head[z::width]) for z in zeros):
            return [encoding]
    return []


def _blob_is_private(blob: bytes, depth: int) -> bool:
    if _PRIVATE_ARMOUR.search(blob) or any(marker in blob for marker in _RAW_MARKERS):
        return True
    if _loads_as_private(blob) or _der_holds_private(blob):
        return True
    text = blob.strip()
    # The same material in another wrapping: each PEM block's body (whatever its label claims), JSON (JWK, JWKS,
    # or a document with a key in a string), base64 or hex of any of these.
    for match in _ANY_BLOCK.finditer(text):
        body = _b64decode(re.sub(rb"[^A-Za-z0-9+/=_\-]", b"", match.group(1)))
        if body and holds_private(body, depth + 1):
            return True
    if text[:1] in (b"{", b"[") and _json_is_private(text, depth):
        return True
    compact = re.sub(rb"\s+", b"", text)
    if len(compact) >= 16 and _HEX.fullmatch(compact) and holds_private(binascii.unhexlify(compact), depth + 1):
        return True
    if len(compact) >= 16 and _B64.fullmatch(compact):
        decoded = _b64decode(compact)
        if decoded and holds_private(decoded, depth + 1):
            return True
    return False


def _b64decode(text: bytes) -> bytes:
    padded = text.rstrip(b"=") + b"=" * (-len(text.rstrip(b"=")) % 4)
    try:
        if b"-" in padded or b"_" in padded:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _loads_as_private(blob: bytes) -> bool:
    """``cryptography``'s own loaders: a private key, or one that asks for a password (TypeError), is private.
    (OpenSSH's format needs no loader: its magic, ``openssh-key-v1``, is enough, and cryptography warns on DSA.)"""
    loaders: tuple[Callable[[bytes, None], Any], ...] = (
        serialization.load_der_private_key,
        serialization.load_pem_private_key,
        pkcs12.load_key_and_certificates,
    )
    for load in loaders:
        try:
            loaded = load(blob, None)
            if loaded is not None and (not isinstance(loaded, tuple) or loaded[0] is not None):
                return True
        except TypeError:  # encrypted: a password would open a private key
            return True
        except UnsupportedAlgorithm:  # a private key structure of a type this build lacks: still private
            return True
        except ValueError:
            continue
    return False


def _json_is_private(text: bytes, depth: int) -> bool:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return False
    stack, seen = [document], 0
    while stack and seen < MAX_NODES:
        node, seen = stack.pop(), seen + 1
        if isinstance(node, dict):
            members = {k for k in node if isinstance(k, str)}
            if members & _JWK_PRIVATE and (members & _JWK_PUBLIC or members <= _JWK_PRIVATE):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and len(node) >= 16 and holds_private(node.encode("utf-8", "replace"), depth + 1):
            return True
    return False


def _der_holds_private(blob: bytes) -> bool:
    """An ASN.1 walk for the shapes private keys take, at any depth (a key bag inside a PKCS#12, say)."""
    budget = [MAX_NODES]
    node = _parse_one(blob, 0, budget)
    if node is None:
        return False
    stack = [node[0]]
    while stack:
        tag, content, children = stack.pop()
        if children is not None:
            if tag == _SEQUENCE and _private_shape(children):
                return True
            stack.extend(children)
        elif tag in (_OCTET_STRING, _BIT_STRING) and content:
            inner = content[1:] if tag == _BIT_STRING else content  # a BIT STRING starts with its unused-bit count
            nested = _parse_one(inner, 0, budget)
            if nested is not None and nested[1] == len(inner):
                stack.append(nested[0])
    return False


def _private_shape(children: list[_Node]) -> bool:
    tags = [child[0] for child in children]
    small_version = bool(children) and tags[0] == _INTEGER and children[0][1] in (b"\x00", b"\x01")
    # PKCS#1 RSAPrivateKey (version, n, e, d, p, q, dp, dq, qi) and OpenSSL's DSA key (0, p, q, g, y, x).
    if small_version and len(tags) >= 6 and all(t == _INTEGER for t in tags[1:6]):
        return True
    # PKCS#8 PrivateKeyInfo / OneAsymmetricKey: version, AlgorithmIdentifier, OCTET STRING privateKey.
    if small_version and tags[1:3] == [_SEQUENCE, _OCTET_STRING] and _starts_with_oid(children[1]):
        return True
    # SEC1 ECPrivateKey: version 1, OCTET STRING privateKey, then only [0] parameters / [1] publicKey.
    if tags[:2] == [_INTEGER, _OCTET_STRING] and children[0][1] == b"\x01" and all(t in (0xA0, 0xA1) for t in tags[2:]):
        return True
    # EncryptedPrivateKeyInfo: a password-based encryption scheme, then the encrypted key.
    if tags == [_SEQUENCE, _OCTET_STRING] and _starts_with_oid(children[0], (_PKCS5, _PKCS12_PBE)):
        return True
    # PKCS#12 PFX: version 3, authSafe ContentInfo (data or signedData). Password or not, it is a key container.
    return (
        len(tags) in (2, 3)
        and tags[:2] == [_INTEGER, _SEQUENCE]
        and children[0][1] == b"\x03"
        and _starts_with_oid(children[1], _PKCS7_DATA_OR_SIGNED)
    )


def _starts_with_oid(node: _Node, prefixes: tuple[bytes, ...] = (b"",)) -> bool:
    children = node[2]
    if not children or children[0][0] != _OID:
        return False
    return any(children[0][1].startswith(prefix) for prefix in prefixes)


def _parse_one(data: bytes, offset: int, budget: list[int], level: int = 0) -> tuple[_Node, int] | None:
    """One BER/DER element at ``offset``: ``(node, end offset)``, or None if it is not one. Indefinite lengths are
    read too (PKCS#12 files from some tools use them); high tag numbers and absurd lengths are not."""
    budget[0] -= 1
    if budget[0] < 0 or level > MAX_NESTING or offset + 2 > len(data) or data[offset] & 0x1F == 0x1F:
        return None
    tag, constructed = data[offset], bool(data[offset] & 0x20)
    if data[offset + 1] == 0x80:  # indefinite: constructed only, children until an end-of-contents (00 00)
        found = _children(data, offset + 2, None, budget, level) if constructed else None
        return ((tag, b"", found[0][2]), found[1]) if found else None
    header = _length(data, offset + 1)
    if header is None:
        return None
    position, end = header
    if not constructed:
        return (tag, data[position:end], None), end
    found = _children(data, position, end, budget, level)
    return ((tag, data[position:end], found[0][2]), end) if found else None


def _length(data: bytes, offset: int) -> tuple[int, int] | None:
    """Where a definite-length content starts and ends, from its length octets at ``offset``."""
    first, position = data[offset], offset + 1
    length = first
    if first & 0x80:
        width = first & 0x7F
        if width > 4 or position + width > len(data):
            return None
        length, position = int.from_bytes(data[position : position + width], "big"), position + width
    return (position, position + length) if position + length <= len(data) else None


def _children(data: bytes, cursor: int, end: int | None, budget: list[int], level: int) -> tuple[_Node, int] | None:
    """The elements from ``cursor`` to ``end``, or, when ``end`` is None, to an end-of-contents marker."""
    children = []
    while (cursor < end) if end is not None else data[cursor : cursor + 2] != b"\x00\x00":
        child = _parse_one(data, cursor, budget, level + 1)
        if child is None or (end is not None and child[1] > end):
            return None
        children.append(child[0])
        cursor = child[1]
    if end is None:
        cursor += 2  # the end-of-contents octets
    return (0, b"", children), cursor


def _public_only(data: bytes) -> bool:
    """Nothing but PEM public keys and certificates that ``cryptography`` loads, separated by whitespace."""
    blocks = list(_PUBLIC_BLOCK.finditer(data))
    if not blocks or _PUBLIC_BLOCK.sub(b"", data).strip(b" \t\r\n"):
        return False
    for block in blocks:
        try:
            if block.group(1) == b"CERTIFICATE":
                x509.load_pem_x509_certificate(block.group(0))
            else:
                serialization.load_pem_public_key(block.group(0))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return False
    return True
