"""The warm /token path's helpers write exactly what the library functions they stand in for write.

Each stands in for a library call on the hot path (bench/README.md, "ES256 /token"), so each is held to that call's
output over generated input: a difference would be a token, an answer or a setting read differently.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from chalice.app import handle_extra_types
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config.environment import metrics_disabled, process_env, under_chalice_cli, xray_trace_header
from chalicelib.dispatch import _serialized

# Names the OS environment can hold (os.environ encodes them with surrogateescape: a lone surrogate outside
# U+DC80..U+DCFF does not encode, see test_a_name_that_does_not_encode_is_refused_alike).
NAMES = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="=\x00"),
        st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    ),
    min_size=1,
    max_size=12,
)
VALUES = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=20)
SCALARS = st.one_of(
    st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True), st.decimals(allow_nan=False)
)
BODIES = st.one_of(
    st.dictionaries(st.text(), st.one_of(st.text(), st.integers()), max_size=5),  # what the shortcut writes
    st.dictionaries(st.one_of(st.text(), st.integers()), SCALARS, max_size=5),  # what it hands to the encoder
    st.lists(SCALARS, max_size=3),
    st.text(),
)


@settings(max_examples=300)
@given(body=BODIES)
def test_a_body_is_serialized_as_chalice_serializes_it(body: Any) -> None:
    expected = json.dumps(body, separators=(",", ":"), default=handle_extra_types)
    assert _serialized(body) == expected


@settings(max_examples=100)
@given(name=NAMES, value=VALUES)
def test_the_environment_reads_as_os_environ(name: str, value: str) -> None:
    name = "CREDPORT_TEST_" + name
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(name, raising=False)
        assert process_env(name) is None
        try:
            patch.setenv(name, value)
        except (ValueError, UnicodeEncodeError):  # not a value the OS environment can hold
            return
        assert process_env(name) == os.environ.get(name) == value
    assert process_env(name) is None  # monkeypatch's undo goes through os.environ too


def test_a_name_that_does_not_encode_is_refused_alike() -> None:
    with pytest.raises(UnicodeEncodeError):
        os.environ.get("CREDPORT_\ud800")
    with pytest.raises(UnicodeEncodeError):
        process_env("CREDPORT_\ud800")


def test_an_os_environ_replaced_by_another_mapping_is_read_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-real")
    monkeypatch.setattr(os, "environ", {"_X_AMZN_TRACE_ID": "Root=1-replaced", "POWERTOOLS_METRICS_DISABLED": "yes"})
    assert xray_trace_header() == "Root=1-replaced"
    assert metrics_disabled() is True
    assert under_chalice_cli() is False


@pytest.mark.parametrize(
    ("environment", "disabled", "cli"),
    [
        ({}, False, False),
        ({"POWERTOOLS_DEV": "true"}, True, False),
        ({"POWERTOOLS_DEV": "true", "POWERTOOLS_METRICS_DISABLED": " False "}, False, False),
        ({"AWS_CHALICE_CLI_MODE": "true"}, False, True),
        ({"AWS_CHALICE_CLI_MODE": "true", "AWS_LAMBDA_FUNCTION_NAME": "f"}, False, False),
    ],
)
def test_the_switches_read_from_the_process_as_from_a_mapping(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], disabled: bool, cli: bool
) -> None:
    for name in ("POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED", "AWS_CHALICE_CLI_MODE", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert (metrics_disabled(), under_chalice_cli()) == (disabled, cli)
    assert (metrics_disabled(environment), under_chalice_cli(environment)) == (disabled, cli)


def test_a_jti_is_what_secrets_token_urlsafe_18_makes() -> None:
    import re

    from chalicelib.tokens.issuer import new_jti_value

    jtis = {new_jti_value() for _ in range(1000)}
    assert len(jtis) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", jti) for jti in jtis)
