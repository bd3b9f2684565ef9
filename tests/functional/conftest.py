"""Fixtures for functional tests: the app's settings (a composition root built from them), and the app under
chalice's test client."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest
from chalice.test import Client

from chalicelib.config import reset_settings
from local.provision import Provisioned
from tests.conftest import install_services

Configure = Callable[..., None]


@pytest.fixture
def configure(provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch) -> Configure:
    """A fresh composition root on the provisioned stack; ``configure({ENV: value})`` applies extra settings (the
    app then serves a root built from them: ``app.services()``)."""
    install_services()

    def apply(env: Mapping[str, str] | None = None) -> None:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        reset_settings()
        install_services()

    return apply


@pytest.fixture
def client() -> Iterator[Client]:
    """The app under chalice's test client (a module may override this with its own ``client`` fixture)."""
    from app import app

    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def callers_role(configure: Configure) -> None:
    """The role of the token tests' caller identity, with the unique id it carries: credport reads a same-account
    caller's role with iam:GetRole (chalicelib/role_arns.py) and refuses a token it cannot confirm."""
    from tests.functional.test_tokens import ROLE_CALLER, ROLE_NAME
    from tests.support import existing_role

    existing_role(ROLE_NAME, ROLE_CALLER.split(":", maxsplit=1)[0])
