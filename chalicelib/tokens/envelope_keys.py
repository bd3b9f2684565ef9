"""The ``envelope`` signer: private keys made here, kept in Secrets Manager, used in memory.

For deployments whose token rate outgrows KMS request quotas. Each key is generated locally with
``cryptography`` (RSA-2048 for RS256, P-256 for ES256, P-384 for ES384) and stored as the PKCS#8 PEM of its own secret,
``<prefix>/token-signing/<rotation id>/<slot>``, which Secrets Manager encrypts under the deployment's data key
(CREDPORT_DATA_KEY_ARN); the function may use that key only through Secrets Manager. Which key holds which
role is one item in the state table per algorithm, written whole, so every role moves at once.

A container reads the roles at most once a minute and each key's secret once, then signs locally: no AWS call
per token. A revoked key leaves the roles (and the JWKS) at once and its secret is scheduled for deletion, so
no container can open it again; a warm container that already holds it stops signing with it at its next look
at the roles (``refresh_interval``: there is no per-token call to fail, as KMS Sign does for a disabled key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected
from chalicelib.aws.secrets import CURRENT, SecretStore
from chalicelib.internal_secrets import TOKEN_SIGNING
from chalicelib.observability import logger
from chalicelib.tokens.algorithms import SigningAlgorithm, algorithm, public_jwk
from chalicelib.tokens.exceptions import InvalidSigningKey
from chalicelib.tokens.keyring import ROLES, SigningKey, qualified, signing_key

__all__ = [
    "DELETION_WINDOW_DAYS",
    "ENVELOPE_JOURNAL_KEY",
    "ROLES_KEY",
    "EnvelopeKeyStore",
    "InvalidSigningKey",
    "generate_private_pem",
    "load_private_pem",
    "secret_namespace",
]

ENVELOPE_JOURNAL_KEY = {"pk": "signing-keys", "sk": "envelope-journal"}
ROLES_KEY = {"pk": "signing-keys", "sk": "envelope-roles"}
DELETION_WINDOW_DAYS = 7  # as for KMS keys: a retired key can be restored for a week, then it is gone
RSA_BITS = 2048
# What Secrets Manager answers for a secret scheduled for deletion.
_DELETED_CODES = frozenset({"InvalidRequestException"})

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_CURVES: dict[str, type[ec.EllipticCurve]] = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}


def secret_namespace(prefix: str) -> str:
    # The name-space is registered with every other secret credport owns (auto-id never serves one).
    return TOKEN_SIGNING.name(prefix)


def generate_private_pem(alg: SigningAlgorithm) -> str:
    """A fresh private key for ``alg`` (the operating system's CSPRNG, via cryptography), as PKCS#8 PEM."""
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        if alg.key_type == "RSA"
        else ec.generate_private_key(_CURVES[alg.jose]())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode("ascii")


def load_private_pem(pem: str | bytes) -> tuple[SigningAlgorithm, PrivateKey]:
    """The key and the algorithm it signs with: RSA of at least 2048 bits (RS256), P-256 (ES256) or P-384 (ES384)."""
    try:
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except Exception:  # ValueError, TypeError, UnsupportedAlgorithm: none of them may carry the input along
        raise InvalidSigningKey() from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= RSA_BITS:
        return algorithm("RS256"), key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for jose, curve in _CURVES.items():
            if isinstance(key.curve, curve):
                return algorithm(jose), key
    raise InvalidSigningKey()


def _signer(key: PrivateKey, alg: SigningAlgorithm) -> Callable[[bytes], bytes]:
    if isinstance(key, rsa.RSAPrivateKey):
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def sign_rsa(signing_input: bytes) -> bytes:
            return key.sign(signing_input, pkcs1, sha256)

        return sign_rsa
    ecdsa, to_jose = ec.ECDSA(hashes.SHA384() if alg.hash_name == "sha384" else hashes.SHA256()), alg.to_jose

    def sign_ec(signing_input: bytes) -> bytes:
        return to_jose(key.sign(signing_input, ecdsa))

    return sign_ec


class EnvelopeKeyStore:
    signer = "envelope"
    refresh_interval = 60.0

    def __init__(
        self,
        secrets: SecretStore,
        table: ItemTable,
        *,
        prefix: str,
        algorithm_name: str,
        data_key_arn: str,
        key_set: str = "",
    ) -> None:
        self._secrets = secrets
        self._table = table
        self._prefix = prefix
        self._algorithm = algorithm(algorithm_name)
        self._data_key_arn = data_key_arn
        journal_sk = qualified(ENVELOPE_JOURNAL_KEY["sk"], key_set)
        self.journal_key: Mapping[str, str] = {**ENVELOPE_JOURNAL_KEY, "sk": journal_sk}
        self._roles_key = {**ROLES_KEY, "sk": qualified(ROLES_KEY["sk"], key_set)}

    @property
    def algorithm(self) -> str:
        return self._algorithm.jose

    def roles(self, *, usable_only: bool = False) -> dict[str, str | None]:
        # A key that can no longer sign (its secret scheduled for deletion) is found out by open().
        item = self._table.get(self._roles_key) or {}
        return {role: str(item[role]) if item.get(role) else None for role in ROLES}

    def open(self, key_id: str) -> SigningKey | None:
        if f":secret:{secret_namespace(self._prefix)}" not in key_id:
            logger.warning("a signing-key role names a secret outside the signing keys", extra={"key_id": key_id})
            return None
        try:
            version = self._secrets.get_value(key_id, stage=CURRENT)
        except AwsNotFound:
            return None
        except AwsRejected as error:
            if error.aws_code in _DELETED_CODES:
                return None
            raise
        alg, private = load_private_pem(version.value)
        if alg != self._algorithm:
            logger.warning("a signing-key role names a key of another algorithm", extra={"key_id": key_id})
            return None
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return signing_key(key_id, alg, public_jwk(public, alg), _signer(private, alg))

    def create(self, label: str) -> str:
        name = TOKEN_SIGNING.member(self._prefix, label)
        # A crash between CreateSecret and the journal write leaves the secret behind: its name finds it again.
        try:
            return self._secrets.describe(name).arn
        except AwsNotFound:
            pass
        try:
            arn, _ = self._secrets.create(
                name,
                generate_private_pem(self._algorithm),
                description=f"credport token signing key ({label}); private, its public half is in the JWKS",
                kms_key_id=self._data_key_arn,
                tags={"credport:prefix": self._prefix, "credport:purpose": "token-signing"},
            )
        except AwsConflict:  # created meanwhile by a container that lost the journal race
            return self._secrets.describe(name).arn
        return arn

    def point(self, targets: Mapping[str, str | None]) -> None:
        roles: dict[str, Any] = {**self.roles(), **targets}
        self._table.put({**self._roles_key, **{role: roles[role] for role in ROLES if roles.get(role)}})

    def revoke(self, key_id: str) -> None:
        # The rotation has already taken it out of the roles. A secret scheduled for deletion cannot be read,
        # so from now on no container can load the key.
        self.retire(key_id)

    def retire(self, key_id: str) -> None:
        try:
            self._secrets.delete(key_id, recovery_days=DELETION_WINDOW_DAYS)
        except (AwsRejected, AwsNotFound) as error:
            if error.aws_code not in (*_DELETED_CODES, "ResourceNotFoundException"):
                raise  # already scheduled for deletion (a rerun) or gone: done either way
