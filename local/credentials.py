"""Which principal owns an access key, read from the embedded AWS (moto runs in this process).

IAM users' access keys and STS temporary credentials (AssumeRole) are both honoured, with the ARN and
unique id API Gateway would report: ``arn:aws:iam::A:user/PATH/NAME`` with ``AIDA…``, and
``arn:aws:sts::A:assumed-role/ROLE/SESSION`` with ``AROA…:SESSION``.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterator
from typing import Any

from local.sigv4 import Principal

__all__ = ["MotoCredentials"]


class MotoCredentials:
    def __init__(self, partition: str = "aws") -> None:
        self._partition = partition

    def find(self, access_key: str, session_token: str | None) -> Principal | None:
        if session_token is None:
            return self._find_user_key(access_key)
        return self._find_session(access_key, session_token)

    def _find_user_key(self, access_key: str) -> Principal | None:
        for account_id, iam in self._backends("iam"):
            for user in list(iam.users.values()):
                for key in list(user.access_keys):
                    if hmac.compare_digest(key.access_key_id, access_key) and key.status == "Active":
                        return Principal(
                            access_key=access_key,
                            secret_key=key.secret_access_key,
                            session_token=None,
                            arn=user.arn,
                            account_id=account_id,
                            caller=user.id,
                        )
        return None

    def _find_session(self, access_key: str, session_token: str) -> Principal | None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for account_id, sts in self._backends("sts"):
            for session in list(sts.assumed_roles):
                if not hmac.compare_digest(session.access_key_id, access_key):
                    continue
                expiration = session.expiration.replace(tzinfo=None)
                if not hmac.compare_digest(session.session_token, session_token) or expiration <= now:
                    return None
                return Principal(
                    access_key=access_key,
                    secret_key=session.secret_access_key,
                    session_token=session_token,
                    arn=session.arn,
                    account_id=account_id,
                    caller=session.user_id,
                )
        return None

    def _backends(self, service: str) -> Iterator[tuple[str, Any]]:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        backends: Any = iam_backends if service == "iam" else sts_backends
        for account_id in list(backends.keys()):
            regions = backends[account_id]
            if self._partition in regions:
                yield account_id, regions[self._partition]
