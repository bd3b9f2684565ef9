"""Lifetimes AWS caps, refused as configuration (when the settings are read), not discovered by a failing call.

- Auto-id role credentials: the auto-id function assumes roles with its own role's credentials, which is role
  chaining; AWS caps such a session at one hour and refuses a longer DurationSeconds (IAM User Guide, "Role
  chaining").
- Presigned transfer links: a link dies when the credentials that signed it expire (S3 User Guide, "Sharing
  objects with presigned URLs"), and Lambda's execution-role credentials state no expiry.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from chalicelib.autoid import AutoIdService
from chalicelib.config import Env, Settings
from chalicelib.errors import ConfigError
from tests.unit.test_config import VALID


def problems(**env: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, **env})
    return caught.value.problems


@pytest.mark.parametrize("value", ["3601", "7200", "43200"])
def test_auto_id_credentials_over_an_hour_are_a_configuration_error(value: str) -> None:
    (problem,) = problems(**{Env.AUTOID_CREDENTIALS_TTL: value})
    assert problem.startswith(f"{Env.AUTOID_CREDENTIALS_TTL}: must be from 900 to 3600, got {value} (seconds)")
    assert "role chaining" in problem
    assert "one hour" in problem


@pytest.mark.parametrize("value", ["900", "3600"])
def test_auto_id_credentials_up_to_an_hour_are_accepted(value: str) -> None:
    assert Settings.from_env({**VALID, Env.AUTOID_CREDENTIALS_TTL: value}).autoid_credentials_ttl == int(value)


def test_the_auto_id_service_refuses_a_chained_lifetime_over_an_hour() -> None:
    """However it is built (the settings are one way; tests and benchmarks build it directly)."""
    parts: dict[str, Any] = {
        name: cast(Any, None)
        for name in ("server_keys", "registry", "nonces", "secrets", "sts", "start_session", "scope")
    }
    with pytest.raises(ValueError, match="role chaining"):
        AutoIdService(**parts, credentials_ttl=7200)
    assert AutoIdService(**parts, credentials_ttl=3600)


@pytest.mark.parametrize("value", ["3601", "86400", str(7 * 86400)])
def test_a_link_lifetime_over_an_hour_is_a_configuration_error(value: str) -> None:
    (problem,) = problems(**{Env.TRANSFER_LINK_TTL: value})
    assert problem.startswith(f"{Env.TRANSFER_LINK_TTL}: must be from 60 to 3600, got {value} (seconds)")
    assert "dies when the credentials that signed it expire" in problem
