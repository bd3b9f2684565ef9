"""What auto-id may serve, by structure: the serving prefixes setting, the enrolment rules for secret and role
patterns, and the serving checks that hold even for a policy written before the rules."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.autoid import ClientPolicy, ServingScope
from chalicelib.config import Env, Settings
from chalicelib.errors import ConfigError
from chalicelib.internal_secrets import KINDS
from tests.unit.test_config import VALID as CONFIG_VALID

PREFIX = "credport-dev"
SERVING = (f"{PREFIX}/autoid/", f"{PREFIX}/imported/")
SCOPE = ServingScope(PREFIX, SERVING)
ROLE = "arn:aws:iam::123456789012:role/"
NAME_CHARS = string.ascii_letters + string.digits + "/_+=.@-"
# test_config's valid environment (this resource, newer than some of its copies, in case it lacks it).
VALID = {
    "CREDPORT_AUTOID_SESSION_KEY_SECRET_ARN": (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/autoid-session-key-AbCdEf"
    ),
    **CONFIG_VALID,
}


def config_problems(**overrides: str) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        Settings.from_env({**VALID, **overrides})
    return list(failed.value.problems)


# The setting -------------------------------------------------------------------------------------------


def test_the_default_serving_prefixes() -> None:
    assert Settings.from_env(VALID).autoid_serving_prefixes == SERVING
    prod = Settings.from_env({**VALID, Env.PREFIX: "credport-prod"})
    assert prod.autoid_serving_prefixes == ("credport-prod/autoid/", "credport-prod/imported/")


def test_serving_prefixes_are_parsed() -> None:
    value = f" {PREFIX}/autoid/ , team/apps/ ,"
    assert Settings.from_env({**VALID, Env.AUTOID_SERVING_PREFIXES: value}).autoid_serving_prefixes == (
        f"{PREFIX}/autoid/",
        "team/apps/",
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (f"{PREFIX}/", "must not reach credport's own secrets"),  # every internal secret
        (f"{PREFIX}/token-signing/", f"{PREFIX}/token-signing/"),  # a name-space itself
        (f"{PREFIX}/token-signing/r1/", f"{PREFIX}/token-signing/"),  # inside one
        (f"{PREFIX}/transfer/", f"{PREFIX}/transfer/"),
        (f"{PREFIX}/autoid/,{PREFIX}/session-key/", f"{PREFIX}/session-key"),
        (f"{PREFIX}/autoid", "ending with '/'"),
        ("has space/", "ending with '/'"),
        ("app*/", "ending with '/'"),
        ("/", "ending with '/'"),
    ],
)
def test_a_serving_prefix_that_could_reach_an_internal_secret_is_refused(value: str, fragment: str) -> None:
    (problem,) = config_problems(**{Env.AUTOID_SERVING_PREFIXES: value})
    assert problem.startswith(Env.AUTOID_SERVING_PREFIXES + ": ")
    assert fragment in problem


def test_every_config_problem_is_reported_together() -> None:
    problems = config_problems(
        **{Env.AUTOID_SERVING_PREFIXES: f"{PREFIX}/", Env.TRANSFER_IMPORT_PREFIX: f"{PREFIX}/transfer/", Env.STAGE: "X"}
    )
    assert {p.split(":", 1)[0] for p in problems} == {
        Env.AUTOID_SERVING_PREFIXES,
        Env.TRANSFER_IMPORT_PREFIX,  # the importer would overwrite credport's secrets just as well
        Env.STAGE,
    }


def test_the_scope_refuses_what_the_settings_refuse_however_it_is_built() -> None:
    with pytest.raises(ValueError, match="reach no internal secret"):
        ServingScope(PREFIX, (f"{PREFIX}/",))
    with pytest.raises(ValueError, match="must end with '/'"):
        ServingScope(PREFIX, (f"{PREFIX}/autoid",))


# Enrolment: secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        f"{PREFIX}/*",
        f"{PREFIX}/auto*",  # reaches <prefix>/autoid-server-key and <prefix>/autoid-session-key
        f"{PREFIX}/autoid*",  # the serving prefix without its '/'
        "credport*",
        f"{PREFIX}/token-signing/*",
        f"{PREFIX}/token-signing/r1/current",
        f"{PREFIX}/session-key",
        f"{PREFIX}/transfer/client-one",
        f"{PREFIX}/autoid/",  # the prefix itself is no name under it
        "other/app",
        "credport-prod/autoid/app",  # another deployment's serving prefix is not this one's
    ],
)
def test_a_secret_pattern_reaching_outside_the_serving_prefixes_is_refused(pattern: str) -> None:
    problems = SCOPE.policy_problems((pattern,), ())
    assert len(problems) == 1
    assert all(prefix in problems[0] for prefix in SERVING)  # the message names the serving prefixes


@pytest.mark.parametrize(
    "pattern",
    [f"{PREFIX}/autoid/app-*", f"{PREFIX}/autoid/*", f"{PREFIX}/imported/*", f"{PREFIX}/autoid/ci-token"],
)
def test_a_secret_pattern_inside_the_serving_prefixes_is_accepted(pattern: str) -> None:
    assert SCOPE.policy_problems((pattern,), ()) == []


@settings(max_examples=300, deadline=None)
@given(
    stem=st.one_of(
        st.text(NAME_CHARS, max_size=40),
        st.builds(lambda s, t: s + t, st.sampled_from([*SERVING, f"{PREFIX}/", f"{PREFIX}/auto"]), st.text(NAME_CHARS)),
    ),
    wildcard=st.booleans(),
    rest=st.text(NAME_CHARS, min_size=1, max_size=20),
)
def test_an_enrollable_secret_pattern_only_ever_matches_served_names(stem: str, wildcard: bool, rest: str) -> None:
    pattern = stem + "*" if wildcard else stem
    if not stem or SCOPE.policy_problems((pattern,), ()):
        return
    policy = ClientPolicy(secrets=(pattern,))
    for name in (stem, stem + rest):
        if policy.allows_secret(name):
            assert SCOPE.secret_refusal(name) is None, (pattern, name)


def test_every_internal_kind_is_refused_when_served() -> None:
    for kind in KINDS:
        name = kind.member(PREFIX, "x") if kind.is_namespace else kind.name(PREFIX)
        assert SCOPE.secret_refusal(name) == "internal_secret"
    assert SCOPE.secret_refusal(f"{PREFIX}/billing/api-key") == "outside_serving_prefixes"
    assert SCOPE.secret_refusal(f"{PREFIX}/autoid/") == "outside_serving_prefixes"
    assert SCOPE.secret_refusal(f"{PREFIX}/autoid/db") is None


# Enrolment: roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        f"{ROLE}*",
        f"{ROLE}c*",
        f"{ROLE}credport-*",
        f"{ROLE}{PREFIX}-*",
        f"{ROLE}{PREFIX}-auto*",  # reaches <prefix>-auto_id, the auto-id function's own role
        f"{ROLE}{PREFIX}-autoid*",  # reaches <prefix>-autoid_<function> (no '-')
        f"{ROLE}{PREFIX}-api_handler",
        f"{ROLE}{PREFIX}-auto_id",
        f"{ROLE}{PREFIX}-link-signer",
        f"{ROLE}{PREFIX}-link*",
        f"{ROLE}team/{PREFIX}-api_handler",  # the role name, whatever the path
        f"{ROLE}CREDPORT-DEV-API_HANDLER",  # IAM role names are unique regardless of case
        f"{ROLE}C*",
        f"arn:aws:iam::210987654321:role/{PREFIX}-*",  # the account does not matter: the rule is one of shape
    ],
)
def test_a_role_pattern_that_could_match_credports_own_roles_is_refused(pattern: str) -> None:
    ClientPolicy(roles=(pattern,))  # well-formed: refused by the scope, not by the syntax
    (problem,) = SCOPE.policy_problems((), (pattern,))
    assert f"{PREFIX}-" in problem


@pytest.mark.parametrize(
    "pattern",
    [
        f"{ROLE}{PREFIX}-autoid-*",
        f"{ROLE}{PREFIX}-autoid-ci",
        f"{ROLE}{PREFIX}-autoid-ci-*",
        f"{ROLE}app-*",
        f"{ROLE}team/*",  # a path: credport's roles live at '/'
        f"{ROLE}credport-prod-*",
    ],
)
def test_a_role_pattern_clear_of_credports_roles_is_accepted(pattern: str) -> None:
    assert SCOPE.policy_problems((), (pattern,)) == []


def test_serving_refuses_credports_roles_whatever_the_record_says() -> None:
    for name in ("api_handler", "auto_id", "link-signer", "rotate_signing_keys"):
        assert SCOPE.role_refusal(f"{ROLE}{PREFIX}-{name}") == "credport_role"
        assert SCOPE.role_refusal(f"{ROLE}team/{PREFIX}-{name}") == "credport_role"
        assert SCOPE.role_refusal(f"{ROLE}{PREFIX.upper()}-{name}") == "credport_role"
    assert SCOPE.role_refusal(f"{ROLE}{PREFIX}-autoid-reader") is None
    assert SCOPE.role_refusal(f"{ROLE}{PREFIX}-AutoId-Reader") is None
    assert SCOPE.role_refusal(f"{ROLE}app") is None
