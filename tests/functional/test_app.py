"""The Chalice app through chalice.test.Client and deployed-shape Lambda events, against moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

import app as credport_app
from chalicelib import __version__, events
from chalicelib.api import API_VIEW_MARK
from chalicelib.events import S3ObjectEvent
from chalicelib.services import Services
from tests.conftest import EVENTS_DIR, REPO_ROOT
from tests.support import gateway_event
from tests.unit.test_config import VALID


@pytest.fixture
def client(services: Services) -> Iterator[Client]:
    with Client(credport_app.app, stage_name="dev") as test_client:
        yield test_client


def test_health_needs_no_auth_and_no_aws(client: Client) -> None:
    response = client.http.get("/health")
    assert response.status_code == 200
    assert json.loads(response.body) == {"status": "ok", "version": __version__}


def test_whoami_reports_the_iam_caller_from_the_request_context() -> None:
    identity = {
        "userArn": "arn:aws:sts::123456789012:assumed-role/app+role@x/session-1",
        "accountId": "123456789012",
        "caller": "AROAEXAMPLEID:session-1",
        "user": "AROAEXAMPLEID:session-1",
        "accessKey": "ASIAEXAMPLE",
        "sourceIp": "203.0.113.7",
    }
    response = credport_app.app(gateway_event("/whoami", identity), None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {
        "arn": identity["userArn"],
        "account": "123456789012",
        "caller": "AROAEXAMPLEID:session-1",
    }


def test_whoami_without_an_iam_identity_is_refused(client: Client) -> None:
    # chalice's test client does not run IAM auth; the route must not trust a missing identity.
    response = client.http.get("/whoami")
    assert response.status_code == 403
    assert json.loads(response.body)["error"] == "forbidden"


def test_every_route_maps_errors_through_api_view() -> None:
    for path, methods in credport_app.app.routes.items():
        for method, entry in methods.items():
            assert getattr(entry.view_function, API_VIEW_MARK, False), f"{method} {path} is not wrapped"


def test_no_route_collides_with_the_local_control_prefix() -> None:
    assert not [path for path in credport_app.app.routes if path.startswith("/_local")]


def test_importing_the_app_creates_no_aws_client() -> None:
    script = textwrap.dedent(
        """
        import sys
        import botocore.session
        def refuse(*args, **kwargs):
            raise AssertionError("a boto3/botocore client was created at import time")
        botocore.session.Session.create_client = refuse
        import app
        assert app.app.routes, "the app has no routes"
        print("boto3 imported:", "boto3" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "boto3 imported: False" in result.stdout


# What only other routes and functions use: a token's cold start imports none of it (bench/bench_cold_start.py).
# The sessions package and chalicelib.events can join once chalicelib.api no longer imports the sessions package.
NOT_FOR_A_TOKEN = (
    "chalicelib.autoid",
    "chalicelib.transfer",
    "chalicelib.envelope",
    "chalicelib.keys.recipient",
    "argparse",
)


def test_building_the_token_service_imports_nothing_only_other_capabilities_use() -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import app
        from chalicelib.aws import AwsServices, ClientFactory
        from chalicelib.config import get_settings
        from chalicelib.services import Services
        Services(get_settings(), AwsServices(ClientFactory())).tokens  # builds the token service, calls no AWS
        print(json.dumps(sorted(m for m in sys.modules if m.startswith({NOT_FOR_A_TOKEN!r}))))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, **VALID, "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# The event fixture's key is "inbox/team a/secret@one.jwe": a route on its folder wins over the
# transfer importer's "inbox/" (the longest prefix routes).
FIXTURE_FOLDER = "inbox/team a/"


@pytest.fixture
def s3_route(services: Services) -> list[S3ObjectEvent]:
    seen: list[S3ObjectEvent] = []
    services.s3_routes.register(FIXTURE_FOLDER, seen.append)  # on the test's own root: gone with it
    return seen


def test_s3_notification_via_sqs_reaches_the_routed_handler(client: Client, s3_route: list[S3ObjectEvent]) -> None:
    body = (EVENTS_DIR / "s3_object_created.json").read_text()
    event = client.events.generate_sqs_event(message_bodies=[body], queue_name="credport-dev-s3-events")
    client.lambda_.invoke("s3_object_events", event)
    assert [e.key for e in s3_route] == ["inbox/team a/secret@one.jwe"]


def test_a_failing_s3_handler_fails_the_invocation(client: Client, services: Services) -> None:
    def fail(_: S3ObjectEvent) -> None:
        raise RuntimeError("downstream failed")

    services.s3_routes.register(FIXTURE_FOLDER, fail)
    body = (EVENTS_DIR / "s3_object_created.json").read_text()
    event = client.events.generate_sqs_event(message_bodies=[body], queue_name="credport-dev-s3-events")
    # Lambda must see the failure so SQS keeps the message for retry and, at last, the DLQ.
    with pytest.raises(RuntimeError, match="downstream failed"):
        client.lambda_.invoke("s3_object_events", event)


def test_malformed_s3_message_fails_so_it_reaches_the_dead_letter_queue(client: Client) -> None:
    event = client.events.generate_sqs_event(message_bodies=["not an s3 event"], queue_name="credport-dev-s3-events")
    with pytest.raises(events.MalformedNotification):
        client.lambda_.invoke("s3_object_events", event)


def test_key_events_via_sns_reach_subscribed_listeners(client: Client, services: Services) -> None:
    seen: list[dict[str, Any]] = []

    def listener(event: Any) -> None:
        seen.append(dict(event))

    services.key_events.subscribe("session-key-rotated", listener)
    message = json.loads((EVENTS_DIR / "sns_key_event.json").read_text())["Records"][0]["Sns"]["Message"]
    client.lambda_.invoke("key_events", client.events.generate_sns_event(message=message))
    assert seen == [json.loads(message)]


def test_event_sources_use_the_template_names() -> None:
    sources = {type(s).__name__: s for s in credport_app.app.event_sources}
    assert sources["SQSEventConfig"].queue == "credport-dev-s3-events"
    assert sources["SNSEventConfig"].topic == "credport-dev-key-events"


def test_log_lines_carry_the_api_gateway_request_id() -> None:
    import logging

    from chalicelib.observability import logger

    shipped: list[dict[str, Any]] = []

    class Ship(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # Formatted at emit time, as the Lambda runtime ships it (the request's keys are set then).
            shipped.append(json.loads(logger.registered_formatter.format(record)))

    handler = Ship()
    logging.getLogger("credport").addHandler(handler)
    try:
        event = gateway_event("/whoami", {"sourceIp": "203.0.113.7"})  # no IAM identity: refused, logged
        response = credport_app.app(event, None)
    finally:
        logging.getLogger("credport").removeHandler(handler)
    assert response["statusCode"] == 403
    (line,) = [entry for entry in shipped if entry["message"] == "request refused"]
    assert line["request_id"] == event["requestContext"]["requestId"]
    assert line["code"] == "forbidden"
    assert line["service"] == "credport"
