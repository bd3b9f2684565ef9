"""The ``kms`` signer: asymmetric KMS keys behind aliases ``alias/<prefix>/signing/{previous,current,pending}``.

The private keys never leave KMS: every token costs one KMS Sign (``MessageType=RAW``). A disabled or
deleted key answers Sign with an error, which makes a warm container look the aliases up again at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chalicelib.aws.errors import AwsNotFound, AwsRejected
from chalicelib.aws.kms import KeyService
from chalicelib.tokens.algorithms import KMS_SPEC_TO_JOSE, SigningAlgorithm, algorithm, public_jwk
from chalicelib.tokens.keyring import ROLES, SigningKey, alias_name, signing_key

__all__ = ["DELETION_WINDOW_DAYS", "KMS_JOURNAL_KEY", "KmsKeyStore"]

KMS_JOURNAL_KEY = {"pk": "signing-keys", "sk": "journal"}
DELETION_WINDOW_DAYS = 7
USABLE_STATES = frozenset({"Enabled"})


class KmsKeyStore:
    signer = "kms"
    journal_key: Mapping[str, str] = KMS_JOURNAL_KEY
    refresh_interval = 300.0

    def __init__(self, kms: KeyService, prefix: str, algorithm_name: str) -> None:
        self._kms = kms
        self._prefix = prefix
        self._algorithm = algorithm(algorithm_name)

    def roles(self, *, usable_only: bool = False) -> dict[str, str | None]:
        result: dict[str, str | None] = {}
        for role in ROLES:
            info = self._kms.alias_target(alias_name(self._prefix, role))
            usable = info is not None and info.state in USABLE_STATES and info.usage == "SIGN_VERIFY"
            result[role] = info.arn if info is not None and (usable or not usable_only) else None
        return result

    def open(self, key_id: str) -> SigningKey:
        public = self._kms.public_key(key_id)
        alg = algorithm(KMS_SPEC_TO_JOSE.get(public.key_spec, public.key_spec))
        return signing_key(key_id, alg, public_jwk(public.der, alg), self._signer(key_id, alg))

    def _signer(self, key_id: str, alg: SigningAlgorithm) -> Callable[[bytes], bytes]:
        kms, to_jose, kms_algorithm = self._kms, alg.to_jose, alg.kms_algorithm

        def sign(signing_input: bytes) -> bytes:
            return to_jose(kms.sign(key_id, signing_input, kms_algorithm))

        return sign

    def create(self, label: str) -> str:
        description = f"{self._prefix} token signing key ({label})"
        # A crash (or a lost race) between CreateKey and the journal write would orphan a key: look first.
        found = self._kms.find_by_description(description)
        info = found or self._kms.create_key(
            description=description,
            key_spec=self._algorithm.kms_key_spec,
            usage="SIGN_VERIFY",
            tags={"credport:prefix": self._prefix, "credport:purpose": "token-signing"},
        )
        return info.arn

    def point(self, targets: Mapping[str, str | None]) -> None:
        for role in ROLES:
            if role not in targets:
                continue
            target = targets[role]
            if target:
                self._kms.set_alias(alias_name(self._prefix, role), target)
            else:
                self._kms.delete_alias(alias_name(self._prefix, role))

    def revoke(self, key_id: str) -> None:
        if self._kms.describe(key_id).state == "Enabled":
            self._kms.disable(key_id)
        self.retire(key_id)

    def retire(self, key_id: str) -> None:
        try:
            self._kms.schedule_deletion(key_id, days=DELETION_WINDOW_DAYS)
        except (AwsRejected, AwsNotFound) as error:
            if error.aws_code not in ("KMSInvalidStateException", "NotFoundException"):
                raise  # already pending deletion (a rerun) or gone: done either way
