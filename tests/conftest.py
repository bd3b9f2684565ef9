"""Shared fixtures: an isolated fake AWS environment, moto, template.yaml provisioned into moto, and the app's
composition root (``services``: a :class:`~chalicelib.services.Services` installed as ``app.services``).

A test that changes settings (environment variables) calls ``reset_settings()`` and then ``install_services()``:
the app serves a composition root built from the changed environment, with fresh capabilities (a new container).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from chalicelib.aws import AwsServices
from chalicelib.aws.clients import ClientFactory, ClientOptions
from chalicelib.config import reset_settings
from chalicelib.services import Services
from local import kms_key_material, kms_key_state, kms_sign, s3_notifications
from local.iam.sts import install as install_sts
from local.provision import Provisioned, Provisioner, app_functions
from local.template import Template, load_template
from tests.support import botocore_models

botocore_models.share()  # the sessions of this test process parse botocore's service models once, not per session

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = Path(__file__).resolve().parent / "events"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def isolated_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test ever reaches a real AWS account or reads the developer's own AWS configuration."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    reset_settings()
    uninstall_services()
    yield
    reset_settings()
    uninstall_services()


def install_services(*, clock: Callable[[], float] = time.time, credentials: object = None) -> Services:
    """A composition root built from the environment as it is now (call ``reset_settings()`` first after changing
    it), installed as the app's: every handler the test invokes, in-process, uses it. Uninstalled after the test."""
    import app

    services = Services.from_environment(clock=clock, credentials=credentials)
    app.services.use(services)
    return services


def app_services() -> Services:
    """The composition root the app serves now (the one ``install_services`` or a fixture installed)."""
    import app

    return app.services()


def uninstall_services() -> None:
    """The app builds its composition root anew on its next call (a test that never imported the app has none)."""
    app = sys.modules.get("app")
    if app is not None:
        app.services.use(None)


@pytest.fixture
def moto() -> Iterator[None]:
    install_sts()  # STS checks roles, trust policies, durations and web identity tokens as AWS does
    s3_notifications.install()  # S3 notifications name the version of a versioned bucket's object, as S3's do
    kms_sign.install()  # KMS Sign/Verify honour MessageType (DIGEST is not hashed again) and the 4096-byte limit
    kms_key_state.install()  # every other KMS operation refuses a key that is not Enabled, as AWS does
    kms_key_material.install()  # a symmetric key's unused RSA key is made only if read: ~0.1 s less per CreateKey
    with mock_aws():
        yield


@pytest.fixture
def factory(moto: None) -> ClientFactory:
    return ClientFactory(ClientOptions(region=REGION, max_attempts=1, timeout=2))


@pytest.fixture
def aws(factory: ClientFactory) -> AwsServices:
    """Adapters of the test's own (not the app's: ``services.aws`` is the app's)."""
    return AwsServices(factory)


def provision_template(
    factory: ClientFactory, *, prefix: str = "credport-dev", issuer: str = "http://127.0.0.1:8000"
) -> Provisioned:
    template = Template(
        load_template(REPO_ROOT / "template.yaml"),
        parameters={"Prefix": prefix, "Issuer": issuer},
        account_id=ACCOUNT_ID,
        region=REGION,
        stack_name=prefix,
    )
    import app

    return Provisioner(template, factory.client, functions=app_functions(app.app)).provision()


@pytest.fixture
def provisioned(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> Provisioned:
    """template.yaml created in moto, and the app's environment set from its outputs (as Lambda gets it)."""
    result = provision_template(factory)
    for name, value in result.app_environment().items():
        monkeypatch.setenv(name, value)
    reset_settings()
    uninstall_services()
    return result


@pytest.fixture
def services(provisioned: Provisioned) -> Services:
    """The app's composition root on the provisioned stack, installed as ``app.services`` for the test."""
    return install_services()


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Bytes are named by their argument, not their content: test vectors drawn at import (keys, random bytes) must
    give the same test ids in every xdist worker, or the workers refuse to run."""
    del config
    return argname if isinstance(val, bytes | bytearray) else None
