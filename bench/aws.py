"""template.yaml provisioned into moto in-process, with the app's environment set from its outputs (as
Lambda gets it) and a composition root built from it installed as the app's: for benchmarks that measure the app's
warm paths, which make no AWS call at all, or count the calls they make."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["REGION", "moto_stack"]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
_ISOLATED = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


@contextmanager
def moto_stack(**environment: str) -> Iterator[Any]:
    """Yields the app's :class:`~chalicelib.services.Services` (``app.services()``; ``.aws.factory`` creates every
    client the app makes)."""
    from moto import mock_aws

    from chalicelib.aws.clients import ClientFactory, ClientOptions
    from chalicelib.config import reset_settings
    from chalicelib.services import Services
    from local import kms_key_material, kms_key_state, kms_sign
    from local.provision import Provisioner, app_functions
    from local.template import Template, load_template

    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(_ISOLATED)
    kms_sign.install()  # KMS signs a DIGEST as AWS does (a long token's signing input goes as its digest)
    kms_key_state.install()  # as the local stack's embedded KMS
    kms_key_material.install()
    try:
        with mock_aws():
            reset_settings()
            template = Template(
                load_template(Path(__file__).resolve().parents[1] / "template.yaml"),
                parameters={"Prefix": "credport-dev", "Issuer": "http://127.0.0.1:8000"},
                account_id=ACCOUNT_ID,
                region=REGION,
                stack_name="credport-dev",
            )
            import app

            factory = ClientFactory(ClientOptions(region=REGION))
            provisioned = Provisioner(template, factory.client, functions=app_functions(app.app)).provision()
            os.environ.update(provisioned.app_environment())
            os.environ.update(environment)
            reset_settings()
            services = Services.from_environment()
            app.services.use(services)
            yield services
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()
        if "app" in sys.modules:
            sys.modules["app"].services.use(None)
