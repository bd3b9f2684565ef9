"""``POST /auto-id``: a workload with no AWS credentials proves it holds its entropy and gets one credential.

Every check runs before the requested credential is touched, cheapest first so junk costs little: the
envelope's shape and ``kid`` (current or retired-in-grace server key), decryption, the request's shape,
freshness, the client's record (enrolled, not revoked), its generation (current or in grace), the proof, and
only then the single-use nonce (a conditional put: unauthenticated callers never write to the table; a
replayed request carries a valid proof and is stopped here). Then the serving scope (names under the serving
prefixes only, never credport's own secrets or roles: :mod:`chalicelib.autoid.scope`) and the client's policy
decide, before any AWS call for the credential, and answer 403 for anything outside them whether or not it
exists; the secret's resolved name is checked against the scope again. Every authentication failure is the
same opaque 401; the reason goes to the log only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from chalicelib import base64url
from chalicelib.audit import AuditLine
from chalicelib.autoid.clients import ACTIVE, ClientRecord, ClientRegistry
from chalicelib.autoid.exceptions import AuthenticationRefused
from chalicelib.autoid.protocol import (
    MAX_SKEW_SECONDS,
    AutoIdRequest,
    MalformedRequest,
    Want,
    check_freshness,
    parse_request,
    verify_proof,
)
from chalicelib.autoid.scope import ServingScope
from chalicelib.aws.dynamodb import ItemTable
from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected
from chalicelib.aws.secrets import SecretStore, SecretVersion
from chalicelib.aws.sts import Sts
from chalicelib.config import ROLE_CHAINING_MAX_SECONDS
from chalicelib.envelope import EnvelopeError, open_envelope, seal_direct
from chalicelib.errors import AuthenticationFailed, CredportError, Forbidden, NotFound, ServiceUnavailable
from chalicelib.keys.recipient import RecipientKeyStore, RecipientRotation
from chalicelib.observability import MetricUnit, logger, metrics

__all__ = ["MAX_BODY_BYTES", "AutoIdService", "RotationReport"]

MAX_BODY_BYTES = 16 * 1024
MIN_CREDENTIALS_TTL = 900  # AssumeRole's smallest DurationSeconds
NONCE_TTL = 2 * MAX_SKEW_SECONDS + 300
_ENVELOPE_MALFORMED = frozenset({"not_jwe", "forbidden_header", "algorithm", "too_large"})


@dataclass(frozen=True)
class RotationReport:
    rotation_id: str
    server_key: RecipientRotation
    clients_rotated: tuple[str, ...]
    clients_failed: tuple[str, ...] = ()  # rotating the same id again catches them up


class AutoIdService:
    def __init__(
        self,
        *,
        server_keys: RecipientKeyStore,
        registry: ClientRegistry,
        nonces: ItemTable,
        secrets: SecretStore,
        sts: Sts,
        start_session: Callable[..., dict[str, Any]],
        scope: ServingScope,
        credentials_ttl: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.server_keys = server_keys
        self.registry = registry
        self._nonces = nonces
        self._secrets = secrets
        self._sts = sts
        self._start_session = start_session
        self._scope = scope
        if not MIN_CREDENTIALS_TTL <= credentials_ttl <= ROLE_CHAINING_MAX_SECONDS:
            # The settings refuse this already; a service built another way (tests, bench) must not get further
            # than AWS would let it: role chaining caps the session at an hour, AssumeRole's floor is 15 minutes.
            raise ValueError(
                f"credentials_ttl must be from {MIN_CREDENTIALS_TTL} to {ROLE_CHAINING_MAX_SECONDS} seconds"
                " (role chaining caps an AssumeRole made with role credentials at one hour)"
            )
        self._credentials_ttl = credentials_ttl
        self._clock = clock
        # Every request served, for whom, which generation and kind, counted as AutoIdServed on the same line (an EMF
        # document, chalicelib.audit), as a token issued is.
        self._served = AuditLine(logger, "auto-id request served", counted=metrics.embedded_count("AutoIdServed"))

    def identify(self, body: Mapping[str, Any]) -> dict[str, Any]:
        if set(body) != {"jwe"} or not isinstance(body["jwe"], str):
            raise MalformedRequest('The body must be {"jwe": "<compact JWE>"}.')
        try:
            request, record, kid = self._authenticate(body["jwe"])
        except AuthenticationRefused as refused:
            metrics.add_metric(name="AutoIdRefused", unit=MetricUnit.Count, value=1)
            logger.info("auto-id request refused", extra={"reason": refused.reason})
            raise AuthenticationFailed() from None
        try:
            return self._serve(request, record, kid)
        except ServiceUnavailable:
            # Nothing was served: give the nonce back, so the very same request may be retried as a 503 promises.
            # (A replay of it could only earn an answer sealed to its client's response key, as the first would.)
            with contextlib.suppress(CredportError):
                self._nonces.delete(_nonce_key(request))
            raise

    def _serve(self, request: AutoIdRequest, record: ClientRecord, kid: str) -> dict[str, Any]:
        credential = self._credential(record, request.want)
        document: dict[str, Any] = {
            "v": 2,
            "client_id": record.client_id,
            **credential,
            # Bound to the generation the proof used: it ends when the record stops accepting that generation.
            "session": self._start_session(record.client_id, request.generation),
        }
        if request.generation != record.generation:
            document["entropy"] = {
                "gen": record.generation,
                "data": base64url.text(self.registry.entropy(record, record.generation)),
            }
        if kid != self.server_keys.current_kid():
            document["server_keys"] = self.server_keys.public_documents()
        self._served(client_id=record.client_id, gen=request.generation, kind=next(iter(credential)))
        return {"jwe": seal_direct(request.response_key, json.dumps(document).encode())}

    def _authenticate(self, envelope: str) -> tuple[AutoIdRequest, ClientRecord, str]:
        try:
            opened = open_envelope(envelope, self.server_keys.opening(create=False), max_bytes=MAX_BODY_BYTES)
        except EnvelopeError as error:
            if error.reason in _ENVELOPE_MALFORMED:
                raise MalformedRequest("The body's 'jwe' is not an RSA-OAEP-256/A256GCM compact JWE.") from None
            raise AuthenticationRefused(error.reason) from None
        request = parse_request(opened.plaintext)
        now = self._clock()
        try:
            check_freshness(request, now)
        except AuthenticationFailed:
            raise AuthenticationRefused("stale") from None
        record = self.registry.get(request.client_id)
        if record is None or record.status != ACTIVE:
            raise AuthenticationRefused("unknown_or_revoked_client")
        if not record.accepts_generation(request.generation, now):
            raise AuthenticationRefused("generation")
        entropy = self.registry.entropy(record, request.generation)
        try:
            verify_proof(request, entropy)
        except AuthenticationFailed:
            raise AuthenticationRefused("proof") from None
        try:
            self._nonces.put({**_nonce_key(request), "expires_at": request.issued_at + NONCE_TTL}, if_absent="pk")
        except AwsConflict:
            raise AuthenticationRefused("replay") from None
        return request, record, opened.kid

    def _credential(self, record: ClientRecord, want: Want) -> dict[str, Any]:
        if want.secret_id is not None:
            return {"secret": self._secret(record, want.secret_id)}
        role_arn = str(want.role_arn)
        _check_allowed(record, "role", self._scope.role_refusal(role_arn), record.policy.allows_role, role_arn)
        try:
            creds = self._sts.assume_role(
                role_arn, _session_name(record.client_id), duration_seconds=self._credentials_ttl
            )
        except (AwsNotFound, AwsRejected):
            raise Forbidden("The role cannot be assumed for this client.") from None
        return {
            "credentials": {
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expiration.isoformat(),
                "AssumedRoleArn": creds.assumed_role_arn,
            }
        }

    def _secret(self, record: ClientRecord, name: str) -> dict[str, Any]:
        # The scope first: a name auto-id never serves is refused before any AWS call, whatever the client's
        # policy says (a record enrolled before the scope existed may name more).
        _check_allowed(record, "secret", self._scope.secret_refusal(name), record.policy.allows_secret, name)
        try:
            version: SecretVersion | None = self._secrets.get_value(name)
        except AwsNotFound:
            raise NotFound("The secret does not exist.") from None
        except AwsRejected:
            version = None  # refused below, outside this handler: the AWS error is never chained to it
        if version is None:
            _refuse_credential(record, "aws_rejected", "secret")
        # The request names a secret by name; the answer must be that very secret, inside the scope.
        if version.name != name:
            _refuse_credential(record, "resolved_to_another_name", "secret")
        resolved = self._scope.secret_refusal(version.name)
        if resolved is not None:
            _refuse_credential(record, resolved, "secret")
        secret: dict[str, Any] = {"secret_id": version.name, "version_id": version.version_id}
        if isinstance(version.value, bytes):
            secret["value_base64"] = base64.b64encode(version.value).decode("ascii")
        else:
            secret["value"] = version.value
        return secret

    def rotate(self, rotation_id: str, *, client_ids: tuple[str, ...] | None = None) -> RotationReport:
        """A new server key and a new generation for each active client (or the ones named)."""
        server_key = self.server_keys.rotate(rotation_id)
        rotated, failed = [], []
        records = self.registry.all() if client_ids is None else (self.registry.require(c) for c in client_ids)
        for record in list(records):
            if record.status != ACTIVE:
                continue
            try:
                updated = self.registry.rotate(record.client_id, rotation_id)
            except CredportError as error:
                # One client's failure must not stop the others; a rerun with the same id catches it up.
                logger.warning(
                    "auto-id client rotation failed", extra={"client_id": record.client_id, "error": error.code}
                )
                failed.append(record.client_id)
                continue
            # A retried rotation id leaves the record as it was: that client was not rotated again.
            if updated.generation != record.generation:
                rotated.append(record.client_id)
        return RotationReport(rotation_id, server_key, tuple(rotated), tuple(failed))


def _session_name(client_id: str) -> str:
    return f"autoid-{client_id}"[:64]


def _check_allowed(
    record: ClientRecord, kind: str, scope_refusal: str | None, policy_allows: Callable[[str], bool], name: str
) -> None:
    """The scope decides first, whatever the client's policy says (a record enrolled before the scope existed may
    name more); then the client's own policy."""
    if scope_refusal is not None:
        _refuse_credential(record, scope_refusal, kind)
    if not policy_allows(name):
        _refuse_credential(record, "outside_policy", kind)


def _refuse_credential(record: ClientRecord, reason: str, kind: str) -> NoReturn:
    """The one 403 for a secret or role, whether or not it exists; which check refused goes to the log only."""
    metrics.add_metric(name="AutoIdForbidden", unit=MetricUnit.Count, value=1)
    logger.info("auto-id credential refused", extra={"client_id": record.client_id, "kind": kind, "reason": reason})
    if kind == "role":
        raise Forbidden("This client may not assume that role.")
    raise Forbidden("This client may not obtain that secret.")


def _nonce_key(request: AutoIdRequest) -> dict[str, str]:
    return {"pk": f"autoid-nonce#{request.client_id}#{base64url.text(request.nonce)}", "sk": "nonce"}
