"""Settings: parsed once from the environment; every bad value named in one clear error."""

from __future__ import annotations

import dataclasses
import os

import pytest

from chalicelib.config import (
    DEFAULT_PREFIX,
    STACK_OUTPUTS,
    Env,
    Settings,
    audience_matches,
    deployment_prefix,
    get_settings,
    reset_settings,
)
from chalicelib.errors import ConfigError

VALID = {
    Env.TRANSFER_BUCKET: "credport-dev-transfer-123456789012",
    Env.PUBLIC_BUCKET: "credport-dev-public-123456789012",
    Env.NOTIFY_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:credport-dev-notify",
    Env.KEY_EVENTS_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:credport-dev-key-events",
    Env.STATE_TABLE: "credport-dev-state",
    Env.DATA_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    Env.SESSION_KEY_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/session-key-AbCdEf",
    Env.IMPORT_KEY_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/import-key-AbCdEf",
    Env.AUTOID_KEY_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/autoid-key-AbCdEf",
    Env.AUTOID_SESSION_KEY_SECRET_ARN: (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/autoid-session-key-AbCdEf"
    ),
    Env.LINK_SIGNER_ROLE_ARN: "arn:aws:iam::123456789012:role/credport-dev-link-signer",
}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**VALID, **overrides})


def problems(**overrides: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        settings(**overrides)
    return caught.value.problems


def test_defaults_are_documented_values() -> None:
    s = settings()
    assert s.prefix == DEFAULT_PREFIX
    assert s.token_default_ttl == 3600
    assert s.token_max_ttl == 43200
    assert s.token_audiences == ("sts.amazonaws.com",)
    assert s.token_default_audience == "sts.amazonaws.com"
    assert s.session_token_ttl == 420
    assert s.session_max_age == 7200
    assert s.autoid_grace_period == 7 * 86400
    assert s.transfer_link_ttl == 1800
    assert s.jwks_max_age == 3600
    assert s.token_signer == "kms"
    assert s.resources.transfer_bucket == VALID[Env.TRANSFER_BUCKET]


def test_settings_are_frozen() -> None:
    s = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.token_max_ttl = 1  # type: ignore[misc]


def test_values_are_parsed() -> None:
    s = settings(
        **{
            Env.TOKEN_AUDIENCES: "api://one, https://svc.example.com/*",
            Env.TOKEN_DEFAULT_AUDIENCE: "https://svc.example.com/a",
            Env.TOKEN_DEFAULT_TTL: "900",
            Env.ISSUER: "https://id.example.com/credport",
            Env.AWS_TIMEOUT: "2.5",
            Env.TOKEN_SIGNER: "envelope",
        }
    )
    assert s.token_audiences == ("api://one", "https://svc.example.com/*")
    assert s.token_default_audience == "https://svc.example.com/a"
    assert s.token_default_ttl == 900
    assert s.issuer == "https://id.example.com/credport"
    assert s.aws_timeout == 2.5
    assert s.token_signer == "envelope"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (Env.TOKEN_DEFAULT_TTL, "abc", "whole number"),
        (Env.TOKEN_DEFAULT_TTL, "-5", "whole number"),
        (Env.TOKEN_DEFAULT_TTL, "10", "from 60 to 43200"),
        (Env.TOKEN_MAX_TTL, "99999", "from 60 to 43200"),
        (Env.TOKEN_DEFAULT_TTL, "1e3", "whole number"),
        (Env.ISSUER, "http://id.example.com", "https"),
        (Env.ISSUER, "https://id.example.com/", "must not end with '/'"),
        (Env.ISSUER, "https://id.example.com?x=1", "no query"),
        (Env.ISSUER, "https://user:pw@id.example.com", "no query, fragment or credentials"),
        (Env.PREFIX, "Credport", "a-z"),
        (Env.PREFIX, "x" * 40, "3-32"),
        (Env.TOKEN_AUDIENCES, "*", "bare '*'"),
        (Env.TOKEN_AUDIENCES, "a b", "without spaces"),
        (Env.TOKEN_AUDIENCES, "a*b", "final wildcard"),
        (Env.TOKEN_AUDIENCES, " , ", "at least one"),
        (Env.NOTIFY_TOPIC_ARN, "arn:aws:sqs:us-east-1:123456789012:q", "SNS ARN"),
        (Env.DATA_KEY_ARN, "alias/foo", "KMS ARN"),
        (Env.TRANSFER_BUCKET, "a b", "resource name"),
        (Env.AWS_MAX_ATTEMPTS, "0", "from 1 to 10"),
        (Env.AWS_TIMEOUT, "fast", "a number"),
        (Env.TOKEN_SIGNER, "hsm", "one of kms, envelope"),
        (Env.TOKEN_SIGNER, "KMS", "one of kms, envelope"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    found = problems(**{name: value})
    assert len(found) == 1, found
    assert found[0].startswith(f"{name}: ")
    assert fragment in found[0]


def test_http_issuer_allowed_for_localhost_only() -> None:
    assert settings(**{Env.ISSUER: "http://127.0.0.1:8000"}).issuer == "http://127.0.0.1:8000"
    assert settings(**{Env.ISSUER: "http://localhost:9"}).issuer == "http://localhost:9"


def test_every_problem_is_reported_at_once() -> None:
    found = problems(**{Env.TOKEN_DEFAULT_TTL: "x", Env.ISSUER: "ftp://a", Env.STATE_TABLE: ""})
    names = {problem.split(":", 1)[0] for problem in found}
    assert names == {Env.TOKEN_DEFAULT_TTL, Env.ISSUER, Env.STATE_TABLE}


def test_missing_resources_are_required() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    names = {problem.split(":", 1)[0] for problem in caught.value.problems}
    assert names == set(VALID)
    assert all("is required" in problem for problem in caught.value.problems)


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        ({Env.TOKEN_DEFAULT_TTL: "7200", Env.TOKEN_MAX_TTL: "3600"}, Env.TOKEN_DEFAULT_TTL),
        ({Env.SESSION_TOKEN_TTL: "3600", Env.SESSION_MAX_AGE: "600"}, Env.SESSION_TOKEN_TTL),
        ({Env.TOKEN_AUDIENCES: "a,b", Env.TOKEN_DEFAULT_AUDIENCE: "c"}, Env.TOKEN_DEFAULT_AUDIENCE),
    ],
)
def test_relations_between_settings(overrides: dict[str, str], culprit: str) -> None:
    found = problems(**overrides)
    assert [p.split(":", 1)[0] for p in found] == [culprit]


def test_relation_checks_skip_values_that_already_failed() -> None:
    # A bad max must not also produce a misleading "default exceeds max" line.
    found = problems(**{Env.TOKEN_MAX_TTL: "nope", Env.TOKEN_DEFAULT_TTL: "7200"})
    assert [p.split(":", 1)[0] for p in found] == [Env.TOKEN_MAX_TTL]


def test_config_error_response_hides_the_details() -> None:
    error = ConfigError(["CREDPORT_X: bad"])
    assert error.status == 500
    assert error.body() == {"error": "configuration_error", "message": "The service is misconfigured."}
    assert "CREDPORT_X" in str(error)  # for the log


@pytest.mark.parametrize(
    ("pattern", "audience", "matches"),
    [
        ("api://one", "api://one", True),
        ("api://one", "api://one2", False),
        ("https://svc/*", "https://svc/a", True),
        ("https://svc/*", "https://svc/", False),
        ("https://svc/*", "https://svcx/a", False),
    ],
)
def test_audience_patterns(pattern: str, audience: str, matches: bool) -> None:
    assert audience_matches(pattern, audience) is matches


def test_get_settings_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    first = get_settings()
    monkeypatch.setenv(Env.TOKEN_DEFAULT_TTL, "600")
    assert get_settings() is first
    reset_settings()
    assert get_settings().token_default_ttl == 600


def test_deployment_prefix_is_validated() -> None:
    assert deployment_prefix({}) == DEFAULT_PREFIX
    assert deployment_prefix({Env.PREFIX: "team-a"}) == "team-a"
    with pytest.raises(ValueError, match="a-z"):
        deployment_prefix({Env.PREFIX: "Bad_Prefix"})


def test_every_env_name_is_unique_and_namespaced() -> None:
    names = [v for k, v in vars(Env).items() if not k.startswith("_")]
    assert len(names) == len(set(names))
    assert all(name.startswith("CREDPORT_") for name in names)
    assert set(STACK_OUTPUTS) <= set(names)


def test_only_config_reads_credport_variables() -> None:
    """The service reads its environment in one place (the CLIs in client/ are separate programs)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    offenders = []
    for folder in ("chalicelib",):
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for file in files:
                path = os.path.join(dirpath, file)
                if file.endswith(".py") and not path.endswith(os.path.join("chalicelib", "config", "environment.py")):
                    with open(path, encoding="utf-8") as handle:
                        text = handle.read()
                    if "os.environ" in text or "getenv" in text:
                        offenders.append(path)
    assert offenders == []
