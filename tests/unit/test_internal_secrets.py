"""The registry of credport's own secret kinds: template.yaml and the name builders draw from it, and the
auto-id role name-space never holds one of credport's own roles."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.internal_secrets import (
    AUTOID_ROLE_NAMESPACE,
    KINDS,
    TOKEN_SIGNING,
    TRANSFER_CLIENT,
    internal_kind,
    reaching_kinds,
    role_name_prefix,
)
from local.provision import app_functions
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT

PREFIX = "credport-dev"


def template(prefix: str = PREFIX) -> Template:
    return Template(
        load_template(REPO_ROOT / "template.yaml"),
        parameters={"Prefix": prefix, "Issuer": "https://id.example.com"},
        account_id=ACCOUNT_ID,
        region=REGION,
        stack_name=prefix,
    )


def names_of(kind: str, name_property: str, prefix: str = PREFIX) -> dict[str, str]:
    """Each resource of that type, by logical id, with its resolved name."""
    t = template(prefix)
    return {
        logical_id: str(t.resolve(resource["Properties"][name_property]))
        for logical_id, resource in t.resources.items()
        if resource["Type"] == kind
    }


@pytest.mark.parametrize("prefix", [PREFIX, "credport-prod"])
def test_every_template_secret_is_a_registered_exact_kind(prefix: str) -> None:
    secrets = names_of("AWS::SecretsManager::Secret", "Name", prefix)
    assert secrets, "template.yaml declares secrets"
    for logical_id, name in secrets.items():
        kind = internal_kind(prefix, name)
        assert kind is not None, f"{logical_id} ({name}) is not in chalicelib/internal_secrets.py"
        assert not kind.is_namespace
        assert kind.name(prefix) == name
        assert kind.created_by == f"template.yaml {logical_id}", "the registry names the resource that makes it"
    # And every exact kind the registry credits to template.yaml is still declared there.
    declared = {f"template.yaml {logical_id}" for logical_id in secrets}
    assert {k.created_by for k in KINDS if k.created_by.startswith("template.yaml")} == declared


def test_the_name_builders_use_the_registry() -> None:
    from chalicelib.tokens.envelope_keys import secret_namespace
    from chalicelib.transfer.sending import Sender

    assert secret_namespace(PREFIX) == TOKEN_SIGNING.name(PREFIX) == f"{PREFIX}/token-signing/"
    sender = Sender.__new__(Sender)
    sender._prefix = PREFIX  # only the name builder is exercised
    assert sender.secret_name("client-one") == TRANSFER_CLIENT.member(PREFIX, "client-one")
    assert internal_kind(PREFIX, sender.secret_name("client-one")) is TRANSFER_CLIENT
    with pytest.raises(ValueError, match="empty"):
        TRANSFER_CLIENT.member(PREFIX, "")  # the name-space itself is no client's secret


def test_kinds_are_distinct_and_exact_names_do_not_nest() -> None:
    names = [kind.name(PREFIX) for kind in KINDS]
    assert len(set(names)) == len(names)
    assert all(kind.suffix and not kind.suffix.startswith("/") for kind in KINDS)


@pytest.mark.parametrize(
    ("name_prefix", "reached"),
    [
        ("credport-dev/", "all"),
        ("credport-", "all"),
        ("credport-dev/token-signing/", {"token-signing/"}),
        ("credport-dev/token-signing/r1/", {"token-signing/"}),  # inside a name-space
        ("credport-dev/transfer/", {"transfer/"}),
        ("credport-dev/transfer-", {"transfer-import-key"}),
        ("credport-dev/session-key/", {"session-key"}),  # conservatively: a name that starts with an exact kind
        ("credport-dev/autoid/", set()),
        ("credport-dev/imported/", set()),
        ("credport-prod/", set()),
    ],
)
def test_what_a_name_prefix_reaches(name_prefix: str, reached: Any) -> None:
    found = {kind.suffix for kind in reaching_kinds(PREFIX, name_prefix)}
    assert found == ({kind.suffix for kind in KINDS} if reached == "all" else reached)


def test_no_role_of_credports_own_is_in_the_auto_id_role_namespace() -> None:
    """auto-id may hand out ``<prefix>-autoid-…`` roles: none of credport's own roles may ever be named so."""
    import app

    own = role_name_prefix(PREFIX)
    roles = list(names_of("AWS::IAM::Role", "RoleName").values())
    roles += [f"{own}{name}" for name in app_functions(app.app).values()]  # chalice's function roles
    assert f"{own}api_handler" in roles
    for role in roles:
        assert role.startswith(own), role
        assert not role.startswith(own + AUTOID_ROLE_NAMESPACE), role
    # A function's role carries its Python name, which has no '-': none can ever enter the name-space.
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in app_functions(app.app).values())
