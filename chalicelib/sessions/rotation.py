"""The session keys' Secrets Manager rotation function: four steps, each idempotent per token.

One function rotates both session keys, the main one and the auto-id one: Secrets Manager names the secret in
``SecretId``, and any secret but those two is refused once its description says what it is (nothing of it is
read or written).

createSecret makes the AWSPENDING version (256 random bits), setSecret has no external system to update,
testSecret signs and verifies a token with the pending key, finishSecret moves AWSCURRENT. Any failure
leaves AWSCURRENT where it was; Secrets Manager retries with the same ClientRequestToken.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from chalicelib.aws.errors import AwsNotFound
from chalicelib.aws.secrets import CURRENT, PENDING, PREVIOUS, SecretStore
from chalicelib.aws.sns import Publisher
from chalicelib.events import key_event
from chalicelib.observability import logger, rotation_failed
from chalicelib.sessions.exceptions import RotationRequestRefused
from chalicelib.sessions.keys import MIN_KEY_BYTES, SessionKey, decode_key, encode_key
from chalicelib.sessions.tokens import SESSION_AUDIENCE, SessionTokens, sign

__all__ = ["STEPS", "RotationRequestRefused", "SessionKeyRotation"]

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class SessionKeyRotation:
    def __init__(
        self,
        secrets_store: SecretStore,
        publisher: Publisher,
        *,
        secret_arns: Collection[str],
        key_events_topic: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = secrets_store
        self._publisher = publisher
        self._secret_arns = frozenset(secret_arns)
        if not self._secret_arns:
            raise ValueError("the rotation needs the secrets it may rotate")
        self._topic = key_events_topic
        self._clock = clock

    def handle(self, event: Mapping[str, Any]) -> None:
        secret_id, token, step = event.get("SecretId"), event.get("ClientRequestToken"), event.get("Step")
        if step not in STEPS or not isinstance(secret_id, str) or not isinstance(token, str):
            raise RotationRequestRefused("Not a Secrets Manager rotation request.")
        info = self._secrets.describe(secret_id)
        # By what Secrets Manager says the secret is (ARN or name, as configured), not by the request's text.
        if not self._secret_arns & {info.arn, info.name}:
            logger.warning("session key rotation refused: not a session key secret", extra={"step": step})
            raise RotationRequestRefused("This function rotates the session keys only.")
        stages = info.versions.get(token)
        if stages is None:
            raise RotationRequestRefused("The token is not a version of the secret.")
        if CURRENT in stages:
            logger.info("session key rotation step already complete", extra={"step": step})
            if step == "finishSecret" and PENDING in stages:
                # A retry of a rotation whose announcement may have failed: announce again (listeners are
                # idempotent). A version that is only AWSCURRENT was never this rotation's: stay silent.
                self._announce(token, self._previous_of(info.versions, token))
            return
        if PENDING not in stages:
            raise RotationRequestRefused("The version is not AWSPENDING.")
        steps = {
            "createSecret": self._create,
            "setSecret": self._set,
            "testSecret": self._test,
            "finishSecret": self._finish,
        }
        try:
            steps[step](info.arn, token, info.version_in_stage(CURRENT))
        except Exception:
            # Secrets Manager's own RotationFailed event reaches EventBridge only through CloudTrail, best effort;
            # this metric is the alarm's signal (template.yaml, rotation-failed-session-key).
            rotation_failed("session-key")
            raise
        logger.info("session key rotation step done", extra={"step": step, "version_id": token})

    def _create(self, arn: str, token: str, current: str | None) -> None:
        try:
            self._secrets.get_value(arn, version_id=token, stage=PENDING)
            return  # made by an earlier attempt with this token
        except AwsNotFound:
            pass
        self._secrets.put_value(
            arn, encode_key(secrets.token_bytes(MIN_KEY_BYTES)), client_request_token=token, stages=(PENDING,)
        )

    def _set(self, arn: str, token: str, current: str | None) -> None:
        # Nothing outside Secrets Manager holds this key: verifiers read it from here.
        logger.info("session key setSecret: no external system to update")

    def _test(self, arn: str, token: str, current: str | None) -> None:
        pending = self._secrets.get_value(arn, version_id=token, stage=PENDING)
        key = SessionKey(version_id=token, stage=CURRENT, created_at=self._clock(), secret=decode_key(pending.value))
        if current is not None:
            in_force = decode_key(self._secrets.get_value(arn, stage=CURRENT).value)
            if secrets.compare_digest(in_force, key.secret):
                raise RotationRequestRefused("The pending key equals the current key.")
        now = int(self._clock())
        token_text = sign(
            key,
            {
                "iss": "credport-rotation-test",
                "sub": "rotation-test",
                "aud": SESSION_AUDIENCE,
                "iat": now,
                "exp": now + 60,
                "sid": "rotation-test",
                "sess_exp": now + 60,
                "jti": secrets.token_urlsafe(16),
            },
        )
        SessionTokens(
            _SingleKey(key), issuer="credport-rotation-test", token_ttl=60, refresh_window=0, clock=self._clock
        ).verify(token_text)

    def _finish(self, arn: str, token: str, current: str | None) -> None:
        self._secrets.move_stage(arn, CURRENT, to_version=token, from_version=current)
        self._announce(token, current)

    def _announce(self, token: str, previous: str | None) -> None:
        self._publisher.publish(
            self._topic,
            key_event("session-key-rotated", version_id=token, previous_version_id=previous),
            attributes={"type": "session-key-rotated"},
        )

    @staticmethod
    def _previous_of(versions: Mapping[str, tuple[str, ...]], token: str) -> str | None:
        return next((v for v, stages in versions.items() if PREVIOUS in stages and v != token), None)


class _SingleKey:
    """The one pending key, in the shape the token codec reads keys from."""

    signing_lag = 0.0

    def __init__(self, key: SessionKey) -> None:
        self._key = key

    def current(self) -> SessionKey:
        return self._key

    def find(self, kid: str, *, reload: bool = True) -> SessionKey | None:
        return self._key if kid == self._key.version_id else None
