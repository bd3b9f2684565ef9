"""The auto-id client benchmark times only calls whose output is real temporary credentials: a broken output fails
the run, never becomes a figure (the stack-backed round itself: tests/e2e/test_bench_autoid_client.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bench.bench_autoid_client import check_credentials


def _credentials(**changes: Any) -> dict[str, Any]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    document = {
        "AccessKeyId": "ASIAEXAMPLEEXAMPLE00",
        "SecretAccessKey": "not-a-real-secret",
        "SessionToken": "not-a-real-token",
        "Expiration": expires.isoformat(),
    }
    return {**document, **changes}


def test_temporary_credentials_pass() -> None:
    check_credentials("credport autoid get", _credentials())
    check_credentials("aws", _credentials(Expiration=_credentials()["Expiration"].replace("+00:00", "Z")))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (None, "printed no credentials"),
        (_credentials(SessionToken=""), "without SessionToken"),
        ({k: v for k, v in _credentials().items() if k != "Expiration"}, "without Expiration"),
        (_credentials(AccessKeyId="AKIAEXAMPLEEXAMPLE00"), "long-term credentials"),
        (_credentials(Expiration="2001-01-01T00:00:00"), "have expired"),
    ],
)
def test_anything_else_fails_the_run_naming_the_command(document: Any, reason: str) -> None:
    with pytest.raises(RuntimeError, match=reason) as raised:
        check_credentials("credport autoid get", document)
    assert str(raised.value).startswith("credport autoid get ")
    assert "not-a-real-secret" not in str(raised.value)
