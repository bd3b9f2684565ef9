"""KMS ``Sign`` and ``Verify`` honour ``MessageType`` as AWS KMS does (KMS API Reference, "Sign" and "Verify"), and
``Sign``, ``Verify`` and ``GetPublicKey`` refuse a key that is not enabled, as AWS does.

AWS: ``Message`` is 1..4096 bytes. ``MessageType=RAW`` (the default) makes KMS hash the message with the signing
algorithm's hash; ``DIGEST`` says the message IS that hash, so its length must be the hash's (32 bytes for
``*_SHA_256``, 48 for ``*_SHA_384``, 64 for ``*_SHA_512``) and KMS signs (or verifies) it without hashing again.
moto 5.2.5 reads ``MessageType`` and ignores it: it hashes a digest a second time (the signature then verifies over
``sha(digest)``, never over the original message) and takes a message of any length. credport and its tests must
meet the limits and the semantics of AWS here, or the local stack signs what AWS would refuse.

The patch: moto's ``KmsResponse.sign``/``verify`` check ``MessageType`` and ``Message`` first (refusing what AWS
refuses, with AWS's ValidationException text), then run moto's own operation unchanged, with key lookup, key usage
and algorithm checks and the response shape all moto's. For ``DIGEST`` a context variable, set only for that call,
makes moto's hash choice for the key (the one private method of RSA and of ECDSA keys that picks it) hand
``cryptography`` a ``Prehashed`` hash: PKCS#1 v1.5, PSS and ECDSA then sign the digest as it is. A context variable
keeps concurrent requests of the threaded server apart.

Key state (KMS Developer Guide, "Key states of AWS KMS keys": a disabled key or one pending deletion cannot be used in
cryptographic operations or to get its public key): moto answers all three for such a key. AWS refuses a disabled key
with ``DisabledException`` and one pending deletion (or in any other state but Enabled) with
``KMSInvalidStateException``; credport's key ring counts either as a key it cannot use, so the local stack must refuse
them too, or a revoked key would go on signing there.

Error texts (all ValidationException): the 4096-byte refusal is quoted from an error AWS returned; "Digest is invalid
length for algorithm X." is the text clients report from AWS for a DIGEST of the wrong length; the ``messageType``
refusal follows AWS's usual enum-constraint wording. ``EXTERNAL_MU`` (ML-DSA keys only, which moto has none of) is
refused with a message of ours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.core.exceptions import JsonRESTError
from moto.kms import utils as kms_utils
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "DisabledException",
    "KMSInvalidStateException",
    "digest_size",
    "install",
    "installed",
    "require_enabled",
    "uninstall",
]

MAX_MESSAGE_BYTES = 4096
MESSAGE_TYPES = ("RAW", "DIGEST", "EXTERNAL_MU")
_HASH_SIZES = {"SHA_256": 32, "SHA_384": 48, "SHA_512": 64}

# moto's private hash pickers (name-mangled): their names are checked at install, so a moto that renames them fails
# loudly instead of silently hashing digests again.
_RSA_HASH = ("RSAPrivateKey", "_RSAPrivateKey__padding_and_hash_algorithm")
_ECDSA_HASH = ("ECDSAPrivateKey", "_ECDSAPrivateKey__hash_algorithm")

_lock = threading.Lock()
_originals: dict[str, Any] = {}
_prehashed: ContextVar[bool] = ContextVar("credport_kms_prehashed", default=False)


class DisabledException(JsonRESTError):
    code = 409  # both key-state refusals: "smithy.api#httpError": 409 in AWS KMS's Smithy API model

    def __init__(self, message: str) -> None:
        super().__init__("DisabledException", message)


class KMSInvalidStateException(JsonRESTError):
    code = 409

    def __init__(self, message: str) -> None:
        super().__init__("KMSInvalidStateException", message)


def _usable_key(response: KmsResponse) -> None:
    require_enabled(response.kms_backend, response._get_param("KeyId"))


def require_enabled(backend: Any, key_id: Any) -> None:
    """Refuse a key (id, ARN or alias) that is not Enabled, as AWS does; one moto cannot find is left to moto."""
    if not isinstance(key_id, str) or not key_id:
        return
    try:
        key = backend.describe_key(key_id)
    except Exception:  # moto's lookup errors (NotFoundException, KeyError): moto answers them itself
        return
    state = getattr(key, "key_state", "Enabled")
    if state == "Disabled":
        raise DisabledException(f"{key.arn} is disabled.")
    if state != "Enabled":
        raise KMSInvalidStateException(f"{key.arn} is {'pending deletion' if state == 'PendingDeletion' else state}.")


def digest_size(signing_algorithm: str) -> int | None:
    """Bytes of the hash ``signing_algorithm`` uses (what a DIGEST must be), None when it names no SHA-2 hash."""
    for suffix, size in _HASH_SIZES.items():
        if signing_algorithm.endswith(suffix):
            return size
    return None


def _checked(response: KmsResponse) -> bool:
    """Refuse what AWS refuses before moto runs; True when the message is a digest (sign it without hashing)."""
    message_type = response._get_param("MessageType") or "RAW"
    if message_type not in MESSAGE_TYPES:
        raise ValidationException(
            f"1 validation error detected: Value '{message_type}' at 'messageType' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(MESSAGE_TYPES)}]"
        )
    message = response._get_param("Message")
    if isinstance(message, bytes) and len(message) > MAX_MESSAGE_BYTES:
        raise ValidationException(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_MESSAGE_BYTES}"
        )
    if message_type == "EXTERNAL_MU":
        raise ValidationException(
            "MessageType EXTERNAL_MU is only valid with ML-DSA keys, which the embedded KMS does not support."
        )
    if message_type == "RAW":
        return False
    algorithm = response._get_param("SigningAlgorithm")
    size = digest_size(algorithm) if isinstance(algorithm, str) else None
    # An unknown algorithm is left to moto, which refuses it with its enum error; an empty message likewise.
    if size is not None and isinstance(message, bytes) and message and len(message) != size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return True


@contextmanager
def _digest_mode(digest: bool) -> Iterator[None]:
    token = _prehashed.set(digest)
    try:
        yield
    finally:
        _prehashed.reset(token)


def _sign(self: KmsResponse) -> str:
    _usable_key(self)
    with _digest_mode(_checked(self)):
        result: str = _originals["sign"](self)
    return result


def _verify(self: KmsResponse) -> str:
    _usable_key(self)
    with _digest_mode(_checked(self)):
        result: str = _originals["verify"](self)
    return result


def _get_public_key(self: KmsResponse) -> str:
    _usable_key(self)
    result: str = _originals["get_public_key"](self)
    return result


def _as_prehashed(algorithm: Any) -> Any:
    if _prehashed.get() and isinstance(algorithm, hashes.HashAlgorithm) and not isinstance(algorithm, Prehashed):
        return Prehashed(algorithm)
    return algorithm


def _rsa_hash(original: Callable[..., Any]) -> Callable[..., Any]:
    def padding_and_hash(self: Any, signing_algorithm: str) -> tuple[Any, Any]:
        pad, algorithm = original(self, signing_algorithm)
        return pad, _as_prehashed(algorithm)  # the PSS MGF1 hash stays a real hash: it hashes the mask seed

    return padding_and_hash


def _ecdsa_hash(original: Callable[..., Any]) -> Callable[..., Any]:
    def hash_algorithm(self: Any, signing_algorithm: str) -> Any:
        return _as_prehashed(original(self, signing_algorithm))

    return hash_algorithm


def install() -> None:
    """Make moto's KMS Sign/Verify honour MessageType and AWS's limits (idempotent; moto's classes are process-wide,
    so this holds for ``mock_aws`` in-process and for the local stack's server alike)."""
    with _lock:
        if _originals:
            return
        hooks = {_RSA_HASH: _rsa_hash, _ECDSA_HASH: _ecdsa_hash}
        # AttributeError here, before any change: this moto no longer picks hashes where the hooks expect.
        found = {where: getattr(getattr(kms_utils, where[0]), where[1]) for where in hooks}
        _originals.update(
            sign=KmsResponse.sign,
            verify=KmsResponse.verify,
            get_public_key=KmsResponse.get_public_key,
            **{w[1]: f for w, f in found.items()},
        )
        KmsResponse.sign = _sign  # type: ignore[method-assign]
        KmsResponse.verify = _verify  # type: ignore[method-assign]
        KmsResponse.get_public_key = _get_public_key  # type: ignore[method-assign]
        for (cls, name), hook in hooks.items():
            setattr(getattr(kms_utils, cls), name, hook(found[(cls, name)]))


def uninstall() -> None:
    """Give moto its own Sign/Verify back (a test that must see moto's stock behaviour)."""
    with _lock:
        if not _originals:
            return
        KmsResponse.sign = _originals.pop("sign")  # type: ignore[method-assign]
        KmsResponse.verify = _originals.pop("verify")  # type: ignore[method-assign]
        KmsResponse.get_public_key = _originals.pop("get_public_key")  # type: ignore[method-assign]
        for cls, name in (_RSA_HASH, _ECDSA_HASH):
            setattr(getattr(kms_utils, cls), name, _originals.pop(name))


def installed() -> bool:
    return bool(_originals)
