"""The ``kms`` signer: asymmetric KMS keys behind aliases ``alias/<prefix>/signing/{previous,current,pending}``
(``alias/<prefix>/signing/es384/...`` for the key set of another algorithm than the legacy one, see
:func:`~chalicelib.tokens.keyring.key_set_name`).

The private keys never leave KMS: every token costs one KMS Sign (``MessageType=RAW``, or ``DIGEST`` for a signing
input over KMS's 4096-byte limit: the same signature). A disabled or
deleted key answers Sign with an error, which makes a warm container look the aliases up again at once.

A new key must be usable by the principal that made it *at once*. The IAM policy scopes key use by the
``credport:prefix`` tag, but "it might take up to five minutes for tag and alias changes to affect KMS key
authorization" (KMS Developer Guide, ABAC for AWS KMS), while a key policy takes effect when the key is created. So
each key is created with a key policy: AWS's default statement (the account administers the key, IAM policies
apply), one granting the creating principal and the roles of the functions that use signing keys what the rotation
and the signer do with it, and one granting the creator alone ``kms:PutKeyPolicy`` (what KMS's lockout safety check
demands of the caller of CreateKey, and no more: the internet-facing API handler cannot rewrite the policy of a key
it did not make). A key whose creation
was not recorded (a crash between CreateKey and the journal write) is found again by its ``credport:label`` tag
through the Resource Groups Tagging API, never by listing and describing every key in the account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.aws.errors import AwsNotFound, AwsRejected
from chalicelib.aws.kms import KeyService, PublicKeyInfo
from chalicelib.aws.tagging import TaggedResources
from chalicelib.observability import logger
from chalicelib.tokens.algorithms import KMS_SPEC_TO_JOSE, SigningAlgorithm, algorithm, public_jwk
from chalicelib.tokens.keyring import ROLES, SigningKey, alias_name, qualified, signing_key

__all__ = [
    "CREATOR_ONLY_ACTIONS",
    "DELETION_WINDOW_DAYS",
    "KMS_JOURNAL_KEY",
    "KMS_RAW_LIMIT",
    "SIGNER_ACTIONS",
    "SIGNING_KEY_FUNCTIONS",
    "KmsKeyStore",
    "signing_key_policy",
]

KMS_JOURNAL_KEY = {"pk": "signing-keys", "sk": "journal"}
KMS_RAW_LIMIT = 4096  # the longest Message KMS Sign takes as RAW (KMS API Reference, Sign)
DELETION_WINDOW_DAYS = 7
LABEL_TAG = "credport:label"
# What the rotation and the signer do with a signing key: granted to its creator and to the functions' roles.
SIGNER_ACTIONS = (
    "kms:Sign",
    "kms:GetPublicKey",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
)
# Granted to the creator alone: KMS refuses a key policy that would not let the principal calling CreateKey change
# it later (the lockout safety check; CreateKey, "Policy"), and asks that of that caller only. credport never
# bypasses the check (organizations deny the bypass by SCP, e.g. AWS Control Tower CT.KMS.PV.3) and never calls
# PutKeyPolicy.
CREATOR_ONLY_ACTIONS = ("kms:PutKeyPolicy",)
# The app's functions that use the signing keys: the API handler signs (and bootstraps the first keys), the schedule
# rotates. Chalice gives each function a role of its own, <app>-<stage>-<function> (the SAM stack names them the same
# way: template.yaml), so a key one of them makes must name the other too: tags alone would leave it out for minutes.
SIGNING_KEY_FUNCTIONS = ("api_handler", "rotate_signing_keys")
_CALLER = re.compile(r"arn:([a-z-]{3,16}):(iam|sts)::(\d{12}):([\w+=,.@/-]{1,600})", re.ASCII)


def signing_key_policy(caller_arn: str, prefix: str) -> dict[str, Any]:
    """The key policy of a new signing key made by ``caller_arn`` (as GetCallerIdentity reports it) for the
    deployment ``prefix``: the caller and the roles of :data:`SIGNING_KEY_FUNCTIONS` may use it at once
    (:data:`SIGNER_ACTIONS`); only the caller may change the key policy (:data:`CREATOR_ONLY_ACTIONS`).

    Roles are matched by ``aws:PrincipalArn``, which holds the *role* ARN with its path (a session ARN has none), so
    the bare name and any path are allowed: role names are unique in an account, whatever their path. The principal
    is ``*`` only in form: the account and the ARNs are pinned by the conditions.
    """
    match = _CALLER.fullmatch(caller_arn)
    if match is None:
        raise ValueError("not an IAM or STS principal ARN")
    partition, service, account, resource = match.groups()
    root = f"arn:{partition}:iam::{account}:root"

    def role_arns(role: str) -> list[str]:
        return [f"arn:{partition}:iam::{account}:role/{role}", f"arn:{partition}:iam::{account}:role/*/{role}"]

    def granted(sid: str, actions: tuple[str, ...], arns: list[str]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": list(actions),
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": account}, "ArnLike": {"aws:PrincipalArn": arns}},
        }

    if service == "sts" and resource.startswith("assumed-role/") and resource.count("/") == 2:
        creator = role_arns(resource.split("/")[1])
    elif caller_arn != root:
        creator = [caller_arn]
    else:  # the root user is the account: the first statement covers it
        creator = []
    signers = list(creator)
    for function in SIGNING_KEY_FUNCTIONS:
        signers += [arn for arn in role_arns(f"{prefix}-{function}") if arn not in signers]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        },
        granted("CreatorAndFunctionsSignAndRotate", SIGNER_ACTIONS, signers),
    ]
    if creator:
        statements.append(granted("CreatorAloneChangesKeyPolicy", CREATOR_ONLY_ACTIONS, creator))
    return {"Version": "2012-10-17", "Statement": statements}


class KmsKeyStore:
    signer = "kms"
    refresh_interval = 300.0

    def __init__(
        self,
        kms: KeyService,
        prefix: str,
        algorithm_name: str,
        *,
        tagged: TaggedResources,
        caller_arn: Callable[[], str],
        key_set: str = "",
    ) -> None:
        self._kms = kms
        self._prefix = prefix
        self._algorithm = algorithm(algorithm_name)
        self._tagged = tagged
        self._caller_arn = caller_arn
        self._key_set = key_set
        self._looked_up: dict[str, PublicKeyInfo] = {}  # the public keys of the last usable-roles lookup, by key id
        self.journal_key: Mapping[str, str] = {**KMS_JOURNAL_KEY, "sk": qualified(KMS_JOURNAL_KEY["sk"], key_set)}

    @property
    def algorithm(self) -> str:
        return self._algorithm.jose

    def roles(self, *, usable_only: bool = False) -> dict[str, str | None]:
        if usable_only:
            return self._usable_roles()
        result: dict[str, str | None] = {}
        for role in ROLES:
            info = self._kms.alias_target(alias_name(self._prefix, role, self._key_set))
            result[role] = info.arn if info is not None else None
        return result

    def _usable_roles(self) -> dict[str, str | None]:
        """What a key ring loads: one GetPublicKey per alias, where a DescribeKey per alias and then a GetPublicKey
        per key took up to six calls. KMS resolves the alias and refuses a key that cannot sign (Disabled,
        PendingDeletion: :data:`~chalicelib.aws.kms.UNUSABLE_KEY_CODES`), which counts as absent, as does a key
        not made to sign. The public keys are kept for :meth:`open`, which then makes no call of its own. Same
        permission as before (kms:GetPublicKey, authorised on the key whether it is named by alias or by ARN); the
        embedded KMS refuses such keys as AWS does (local/kms_sign.py)."""
        looked_up: dict[str, PublicKeyInfo] = {}
        result: dict[str, str | None] = {}
        for role in ROLES:
            public = self._kms.usable_public_key(alias_name(self._prefix, role, self._key_set))
            if public is None or public.usage != "SIGN_VERIFY":
                result[role] = None
                continue
            result[role] = public.arn
            looked_up[public.arn] = public
        self._looked_up = looked_up
        return result

    def open(self, key_id: str) -> SigningKey | None:
        # A key's public half never changes: the one the roles' lookup just read is as good as a new GetPublicKey.
        public = self._looked_up.get(key_id) or self._kms.public_key(key_id)
        if KMS_SPEC_TO_JOSE.get(public.key_spec) != self._algorithm.jose:
            # An alias of this key set pointed by hand at a key of another algorithm: never sign with it here.
            logger.warning("a signing-key alias names a key of another algorithm", extra={"key_id": key_id})
            return None
        alg = self._algorithm
        return signing_key(key_id, alg, public_jwk(public.der, alg), self._signer(key_id, alg))

    def _signer(self, key_id: str, alg: SigningAlgorithm) -> Callable[[bytes], bytes]:
        kms, to_jose, kms_algorithm, digest = self._kms, alg.to_jose, alg.kms_algorithm, alg.digest

        def sign(signing_input: bytes) -> bytes:
            if len(signing_input) <= KMS_RAW_LIMIT:
                return to_jose(kms.sign(key_id, signing_input, kms_algorithm))
            return to_jose(kms.sign(key_id, digest(signing_input), kms_algorithm, digest=True))

        return sign

    def create(self, label: str) -> str:
        tags = {"credport:prefix": self._prefix, "credport:purpose": "token-signing", LABEL_TAG: label}
        # A crash (or a lost race) between CreateKey and the journal write would orphan a key: look first.
        for arn in self._tagged.find("kms:key", tags):
            if self._made_here(arn):
                return arn
        info = self._kms.create_key(
            description=f"{self._prefix} token signing key ({label})",
            key_spec=self._algorithm.kms_key_spec,
            usage="SIGN_VERIFY",
            tags=tags,
            policy=json.dumps(signing_key_policy(self._caller_arn(), self._prefix)),
        )
        return info.arn

    def _made_here(self, arn: str) -> bool:
        """Whether a key found by credport's tags is one this deployment made: tags are not proof (a principal allowed
        kms:CreateKey and kms:TagResource could copy them), so the key must also be an enabled signing key of this
        algorithm whose key policy is exactly the one credport writes, for this caller or a function's role. A key
        that is not is left alone (and logged by the caller's rotation run as a new key is made instead)."""
        try:
            info = self._kms.describe(arn)
            policy = self._kms.key_policy(arn)
        except AwsRejected as refused:  # a key whose policy does not let this deployment read it is not its own
            if refused.aws_code != "AccessDeniedException":
                raise
            return False
        if (info.state, info.usage, info.key_spec) != ("Enabled", "SIGN_VERIFY", self._algorithm.kms_key_spec):
            return False
        caller = self._caller_arn()
        partition, account = caller.split(":")[1], caller.split(":")[4]
        makers = [caller] + [
            f"arn:{partition}:sts::{account}:assumed-role/{self._prefix}-{function}/credport"
            for function in SIGNING_KEY_FUNCTIONS
        ]
        return any(policy == signing_key_policy(maker, self._prefix) for maker in makers)

    def point(self, targets: Mapping[str, str | None]) -> None:
        for role in ROLES:
            if role not in targets:
                continue
            target = targets[role]
            if target:
                self._kms.set_alias(alias_name(self._prefix, role, self._key_set), target)
            else:
                self._kms.delete_alias(alias_name(self._prefix, role, self._key_set))

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
