"""A misconfigured app under `chalice local` names what is missing; on Lambda its answer stays opaque.

chalice.test's client serves the app through chalice local's own gateway (chalice.local.LocalGateway), so these
requests take the path `chalice local` takes: IAM routes let through without an identity, the bearer authorizer run
in-process. ``AWS_CHALICE_CLI_MODE=true`` is what chalice's CLI sets; without it the app answers as on Lambda.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.api import NO_IAM_UNDER_CHALICE_LOCAL
from chalicelib.config import Env, Settings, reset_settings, under_chalice_cli
from chalicelib.errors import ConfigError
from chalicelib.observability import logger
from chalicelib.sessions.service import BearerRefused
from tests.unit.test_config import VALID

CANARY = "canary-s3cr3t-value-91c4"
REQUIRED = [  # every resource name template.yaml fills in, in the order the settings read them
    Env.TRANSFER_BUCKET,
    Env.PUBLIC_BUCKET,
    Env.NOTIFY_TOPIC_ARN,
    Env.KEY_EVENTS_TOPIC_ARN,
    Env.STATE_TABLE,
    Env.DATA_KEY_ARN,
    Env.SESSION_KEY_SECRET_ARN,
    Env.IMPORT_KEY_SECRET_ARN,
    Env.AUTOID_KEY_SECRET_ARN,
    Env.AUTOID_SESSION_KEY_SECRET_ARN,
    Env.LINK_SIGNER_ROLE_ARN,
]
FIX = "`.venv/bin/python -m local chalice`"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The real app, in an environment holding no credport variable (chalice's stage variables aside)."""
    for name in [n for n in os.environ if n.startswith("CREDPORT_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_CHALICE_CLI_MODE", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    reset_settings()
    from app import app

    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def cli_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CHALICE_CLI_MODE", "true")


def get(client: Client, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
    response = client.http.get(path, headers=headers)
    return response.status_code, json.loads(response.body)


def test_under_chalice_local_the_answer_names_every_missing_variable_and_the_fix(
    client: Client, cli_mode: None
) -> None:
    status, body = get(client, "/.well-known/jwks.json")
    assert status == 500
    assert body["error"] == "configuration_error"
    message = body["message"]
    assert message.startswith(f"The service is misconfigured: missing {', '.join(REQUIRED)}. ")
    assert "invalid" not in message
    assert FIX in message


def test_under_chalice_local_an_invalid_variable_is_named_without_its_value(
    client: Client, cli_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(Env.TOKEN_MAX_TTL, CANARY)
    monkeypatch.setenv(Env.ISSUER, f"http://{CANARY}.example")  # http is for loopback only
    status, body = get(client, "/.well-known/openid-configuration")
    assert status == 500
    assert body["message"].startswith(f"The service is misconfigured: invalid {Env.TOKEN_MAX_TTL}, {Env.ISSUER}. ")
    assert CANARY not in json.dumps(body)


def test_on_lambda_the_answer_stays_opaque_and_the_log_names_the_variables(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv(Env.TOKEN_MAX_TTL, CANARY)
    status, body = get(client, "/.well-known/jwks.json")
    assert status == 500
    assert body == {
        "error": "configuration_error",
        "message": "The service is misconfigured.",
        "request_id": body["request_id"],
    }
    (record,) = [r for r in caplog.records if r.getMessage() == "request failed"]
    line = json.loads(logger.registered_formatter.format(record))  # what would ship to CloudWatch
    assert line["code"] == "configuration_error"
    assert line["variables"] == [*REQUIRED, Env.TOKEN_MAX_TTL]
    assert CANARY not in json.dumps(line)


def test_the_chalice_flag_on_lambda_changes_nothing(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda always sets AWS_LAMBDA_FUNCTION_NAME: a function given chalice's flag by mistake stays opaque."""
    monkeypatch.setenv("AWS_CHALICE_CLI_MODE", "true")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "credport-dev")
    status, body = get(client, "/.well-known/jwks.json")
    assert (status, body["message"]) == (500, "The service is misconfigured.")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AWS_CHALICE_CLI_MODE": "true"}, True),
        ({}, False),
        ({"AWS_CHALICE_CLI_MODE": "1"}, False),  # chalice sets exactly 'true'
        ({"AWS_CHALICE_CLI_MODE": "true", "AWS_LAMBDA_FUNCTION_NAME": "credport-dev"}, False),
    ],
)
def test_under_chalice_cli(environ: dict[str, str], expected: bool) -> None:
    assert under_chalice_cli(environ) is expected


@pytest.mark.parametrize("path", ["/token", "/whoami"])
def test_under_chalice_local_an_iam_route_says_it_needs_api_gateway(client: Client, cli_mode: None, path: str) -> None:
    """chalice local lets an IAMAuthorizer route through with no identity: refused before the view (and before any
    settings are read: the message holds even without configuration)."""
    assert get(client, path) == (403, {"error": "forbidden", "message": NO_IAM_UNDER_CHALICE_LOCAL})
    assert "make run" in NO_IAM_UNDER_CHALICE_LOCAL


def test_under_chalice_local_the_other_iam_routes_answer_the_same(client: Client, cli_mode: None) -> None:
    for method, path in [("POST", "/session"), ("POST", "/transfer/import"), ("POST", "/transfer/clients/c1/send")]:
        response = client.http.request(method, path, headers={"content-type": "application/json"}, body=b"{}")
        assert response.status_code == 403, path
        assert json.loads(response.body)["message"] == NO_IAM_UNDER_CHALICE_LOCAL, path


def test_outside_chalice_local_an_iam_route_without_identity_is_refused_by_the_view(client: Client) -> None:
    assert get(client, "/whoami") == (403, {"error": "forbidden", "message": "The request carries no IAM identity."})


def test_under_chalice_local_a_public_route_needs_no_identity(client: Client, cli_mode: None) -> None:
    assert get(client, "/health")[0] == 200


def test_under_chalice_local_the_bearer_authorizer_answers_instead_of_dropping_the_connection(
    client: Client, cli_mode: None
) -> None:
    """chalice local sends no response for an authorizer's exception: the authorizer raises its gateway's answer."""
    status, body = get(client, "/session", authorization="Bearer not-a-token")
    assert status == 500  # the check failed (no configuration), as API Gateway's authorizer error
    assert body["error"] == "configuration_error"
    assert body["message"].startswith(f"The service is misconfigured: missing {Env.TRANSFER_BUCKET},")


def test_under_chalice_local_a_refused_bearer_token_is_api_gateways_401(
    client: Client, cli_mode: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app

    def refuse(method_arn: str, token: str | None) -> Any:
        raise BearerRefused()

    app.services.use(SimpleNamespace(sessions=SimpleNamespace(authorize=refuse)))  # type: ignore[arg-type]
    response = client.http.get("/session", headers={"authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert json.loads(response.body) == {"message": "Unauthorized"}
    assert response.headers["x-amzn-ErrorType"] == "UnauthorizedException"


@pytest.mark.parametrize(
    ("problems", "missing", "invalid", "other"),
    [
        (["CREDPORT_A: is required (set by template.yaml)"], ["CREDPORT_A"], [], False),
        (["CREDPORT_A: must be an integer, got 'x'", "CREDPORT_A: too big"], [], ["CREDPORT_A"], False),
        (["CREDPORT_B: is required", "CREDPORT_C is bad", "something else"], ["CREDPORT_B"], ["CREDPORT_C"], True),
    ],
)
def test_config_error_names(problems: list[str], missing: list[str], invalid: list[str], other: bool) -> None:
    error = ConfigError(problems)
    message = error.local_message()
    assert (list(error.missing), list(error.invalid)) == (missing, invalid)
    assert ("; 1 other problem." in message) is other
    assert "'x'" not in message
    assert "too big" not in message


def test_the_names_follow_the_readers_wording() -> None:
    """Missing and invalid are told apart by the reader's own words: checked against the real parse."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**{k: v for k, v in VALID.items() if k != Env.STATE_TABLE}, Env.TOKEN_MIN_TTL: "7200"})
    assert (caught.value.missing, caught.value.invalid) == ((Env.STATE_TABLE,), (Env.TOKEN_MIN_TTL,))
