"""Test hooks loaded into the local stack with ``--plugin`` (never part of the deployed app).

They register handlers on the app's real event router and key-event bus (through ``app.services.on_serve``: on the
composition root the local stack builds), and one IAM route that echoes
``requestContext.identity``, so end-to-end tests can observe deliveries and identities from outside.
Each delivery is recorded in the state table, where the test reads it back over the embedded AWS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import boto3
from chalice import IAMAuthorizer, Rate

import app as credport_app
from chalicelib import events
from chalicelib.aws import AwsUnavailable, ItemTable
from chalicelib.aws.secrets import SecretStore
from chalicelib.config import get_settings
from chalicelib.services import Services
from chalicelib.sessions.service import SessionService

app = credport_app.app


def _record(kind: str, key: str) -> None:
    # As the test harness (the stack's own credentials), not as the function it runs in: no function's role may
    # write the e2e# items, and the plugin's own schedules have no role at all.
    table = ItemTable(boto3.client("dynamodb"), get_settings().resources.state_table)
    item = table.get({"pk": f"e2e#{kind}", "sk": key}) or {"pk": f"e2e#{kind}", "sk": key, "count": 0}
    item["count"] = int(item["count"]) + 1
    item["at"] = str(time.time())
    table.put(item)


def _ok(event: events.S3ObjectEvent) -> None:
    _record("s3", event.key)


def _fail(event: events.S3ObjectEvent) -> None:
    _record("s3-fail", event.key)
    raise RuntimeError("e2e handler failure")


def _ping(event: Mapping[str, Any]) -> None:
    _record("key-event", str(event["nonce"]))


# Fault injection: Secrets Manager throttles the creation of secrets named ".../transient-...", so the real
# importer meets a transient AWS failure (the message must be retried, dead-lettered, and the file kept).
_original_create = SecretStore.create


def _throttled_create(self: SecretStore, name: str, *args: Any, **kwargs: Any) -> Any:
    if "/transient-" in name:
        raise AwsUnavailable("secretsmanager", "CreateSecret", "ThrottlingException")
    return _original_create(self, name, *args, **kwargs)


SecretStore.create = _throttled_create  # type: ignore[method-assign]

# Fault injection: the bearer authorizer meets a dependency outage for one magic token (as when Secrets Manager
# throttles its key reload): API Gateway answers with the template's AUTHORIZER_CONFIGURATION_ERROR response.
OUTAGE_TOKEN = "e2e-authorizer-outage"
_original_authorize = SessionService.authorize


def _authorize_with_outage(self: SessionService, method_arn: str, authorization: str | None) -> Any:
    if authorization == f"Bearer {OUTAGE_TOKEN}":
        raise AwsUnavailable("secretsmanager", "GetSecretValue", "ThrottlingException")
    return _original_authorize(self, method_arn, authorization)


SessionService.authorize = _authorize_with_outage  # type: ignore[method-assign]


def _wire(services: Services) -> None:
    services.s3_routes.register("inbox/e2e/ok/", _ok)
    services.s3_routes.register("inbox/e2e/fail/", _fail)
    services.key_events.subscribe("e2e-ping", _ping)


credport_app.services.on_serve(_wire)


@app.route("/e2e/identity", authorizer=IAMAuthorizer())
def e2e_identity() -> Any:
    return app.current_request.context["identity"]


@app.schedule(Rate(1, unit=Rate.HOURS), name="e2e_tick")
def e2e_tick(event: Any) -> None:
    _record("schedule", event.to_dict()["id"])


@app.schedule(Rate(1, unit=Rate.HOURS), name="e2e_broken")
def e2e_broken(event: Any) -> None:
    _record("schedule-fail", "attempts")
    raise RuntimeError("e2e schedule failure")
