"""Auto-id client records, pure: what a policy allows, which generations a record accepts, how it is stored."""

from __future__ import annotations

import base64
import dataclasses
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.autoid import ClientPolicy, ClientRecord, Enrollment, InvalidPolicy

ROLE = "arn:aws:iam::123456789012:role/credport-dev-autoid-reader"
NOW = 1_795_000_000
NAME_CHARS = string.ascii_letters + string.digits + "/_+=.@-"


def record(**changes: Any) -> ClientRecord:
    base = ClientRecord(
        client_id="worker-1",
        status="active",
        policy=ClientPolicy(secrets=("credport-dev/apps/db-*",), roles=(ROLE,)),
        generation=3,
        previous={2: NOW + 100, 1: NOW - 1},
        objects={3: "gen-3-cccc.bin", 2: "gen-2-bbbb.bin", 1: "gen-1-aaaa.bin"},
        revision=7,
        created_at=NOW - 1000,
        rotated_at=NOW - 10,
        last_rotation_id="r3",
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("secrets", "roles"),
    [
        (("credport-dev/apps/db",), ()),
        (("credport-dev/apps/*",), ()),
        (("a",), ()),
        ((), (ROLE,)),
        ((), ("arn:aws:iam::123456789012:role/credport-dev-autoid-*",)),
        ((), ("arn:aws:iam::123456789012:role/*",)),  # every role of that account, said explicitly
        ((), ("arn:aws-us-gov:iam::123456789012:role/path/app",)),
        (("x/y", "x/z*"), (ROLE, "arn:aws:iam::210987654321:role/other")),
    ],
)
def test_valid_policies(secrets: tuple[str, ...], roles: tuple[str, ...]) -> None:
    policy = ClientPolicy(secrets=secrets, roles=roles)
    assert policy.document() == {"secrets": list(secrets), "roles": list(roles)}


@pytest.mark.parametrize(
    ("secrets", "roles"),
    [
        ((), ()),  # allowed nothing
        (("*",), ()),  # every secret
        (("",), ()),
        (("has space",), ()),
        (("a**",), ()),
        (("pre*fix",), ()),
        (("arn:aws:secretsmanager:us-east-1:123456789012:secret:x",), ()),  # names only
        (("x" * 513,), ()),
        ((), ("*",)),
        ((), ("arn:aws:iam::123456789012:user/someone",)),
        ((), ("arn:aws:iam::12345:role/short-account",)),
        ((), ("arn:aws:iam::*:role/app-*",)),  # an account wildcard would never match anything
        ((), ("arn:aws:iam::123456789012:role/",)),  # nor would an empty role name
        ((), ("arn:aws:iam::123456789012:role/a*b",)),
        # Shapes that name no role: a trailing '/', an empty, '.' or '..' segment (a rule reading the name off the
        # last segment would see an empty or a made-up name).
        ((), ("arn:aws:iam::123456789012:role/credport-dev-api_handler/",)),
        ((), ("arn:aws:iam::123456789012:role/credport-dev-autoid-x/../credport-dev-link-signer/",)),
        ((), ("arn:aws:iam::123456789012:role/credport-dev-autoid-x/../credport-dev-link-signer",)),
        ((), ("arn:aws:iam::123456789012:role/a//credport-dev-autoid-x",)),
        ((), ("arn:aws:iam::123456789012:role/./credport-dev-autoid-x",)),
        ((), ("arn:aws:iam::123456789012:role/app/..",)),
        ((), ("arn:aws:iam::123456789012:role/" + "n" * 65,)),  # IAM role names are 1-64 characters
        ((), (ROLE + "\n",)),
        ((), ("arn:aws:sts::123456789012:assumed-role/x/y",)),
    ],
)
def test_invalid_policies_are_refused(secrets: tuple[str, ...], roles: tuple[str, ...]) -> None:
    with pytest.raises(InvalidPolicy) as refused:
        ClientPolicy(secrets=secrets, roles=roles)
    assert (refused.value.status, refused.value.code) == (400, "invalid_policy")


def test_an_exact_name_allows_that_name_only() -> None:
    policy = ClientPolicy(secrets=("credport-dev/apps/db",))
    assert policy.allows_secret("credport-dev/apps/db")
    for other in ("credport-dev/apps/db2", "credport-dev/apps/d", "Credport-dev/apps/db", "credport-dev/apps/db/"):
        assert not policy.allows_secret(other)


def test_a_prefix_allows_longer_names_only() -> None:
    policy = ClientPolicy(secrets=("credport-dev/apps/db-*",))
    assert policy.allows_secret("credport-dev/apps/db-password")
    assert not policy.allows_secret("credport-dev/apps/db-")  # the bare prefix is not a name under it
    assert not policy.allows_secret("credport-dev/apps/db")
    assert not policy.allows_secret("credport-dev/apps/other")
    assert not policy.allows_secret("other/credport-dev/apps/db-password")


def test_secrets_and_roles_are_separate_grants() -> None:
    policy = ClientPolicy(secrets=("credport-dev/*",), roles=("arn:aws:iam::123456789012:role/credport-dev-*",))
    assert policy.allows_role("arn:aws:iam::123456789012:role/credport-dev-autoid-reader")
    assert not policy.allows_role("arn:aws:iam::210987654321:role/credport-dev-autoid-reader")  # other account
    assert not policy.allows_role("arn:aws:iam::123456789012:role/credport-prod-reader")
    assert not policy.allows_secret("arn:aws:iam::123456789012:role/credport-dev-autoid-reader")
    assert not ClientPolicy(roles=(ROLE,)).allows_secret("credport-dev/anything")
    assert not ClientPolicy(secrets=("credport-dev/*",)).allows_role(ROLE)


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(NAME_CHARS, min_size=1, max_size=30),
    rest=st.text(NAME_CHARS, min_size=1, max_size=30),
    other=st.text(NAME_CHARS, min_size=1, max_size=60),
)
def test_prefix_semantics(prefix: str, rest: str, other: str) -> None:
    policy = ClientPolicy(secrets=(prefix + "*",))
    assert policy.allows_secret(prefix + rest)
    assert not policy.allows_secret(prefix)
    assert policy.allows_secret(other) == (other.startswith(prefix) and other != prefix)
    assert ClientPolicy(secrets=(prefix,)).allows_secret(other) == (other == prefix)


def test_generations_the_record_accepts() -> None:
    current = record()
    assert current.accepts_generation(3, NOW + 10**9)  # the current one, at any time
    assert current.accepts_generation(2, NOW)
    assert current.accepts_generation(2, NOW + 100)  # the last second of its grace
    assert not current.accepts_generation(2, NOW + 101)
    assert not current.accepts_generation(1, NOW)  # its grace is over, though the record still names it
    assert not current.accepts_generation(4, NOW)  # a generation that does not exist yet
    assert not current.accepts_generation(0, NOW)
    assert current.generations() == (3, 2, 1)
    assert not record(previous={}).accepts_generation(2, NOW)


def test_object_keys_live_under_the_clients_prefix() -> None:
    current = record()
    assert current.object_key(3) == "autoid/worker-1/gen-3-cccc.bin"
    assert current.object_key(1) == "autoid/worker-1/gen-1-aaaa.bin"
    with pytest.raises(KeyError):
        current.object_key(4)


def test_the_item_round_trips_as_dynamodb_returns_it() -> None:
    original = record(revoked_at=NOW)
    item = original.item()
    assert (item["pk"], item["sk"]) == ("autoid-clients", "worker-1")
    assert item["previous"] == {"2": NOW + 100, "1": NOW - 1}  # map keys are strings in DynamoDB
    # boto3's resource layer hands numbers back as Decimal.
    stored = {
        **item,
        "generation": Decimal(item["generation"]),
        "revision": Decimal(item["revision"]),
        "created_at": Decimal(item["created_at"]),
        "rotated_at": Decimal(item["rotated_at"]),
        "revoked_at": Decimal(NOW),
        "previous": {g: Decimal(until) for g, until in item["previous"].items()},
    }
    assert ClientRecord.from_item(stored) == original
    assert ClientRecord.from_item(record().item()) == record()


def test_an_item_without_optional_members_reads_with_defaults() -> None:
    item = record().item()
    for name in ("previous", "objects", "last_rotation_id"):
        del item[name]
    assert "revoked_at" not in item
    read = ClientRecord.from_item(item)
    assert (read.previous, read.objects, read.last_rotation_id, read.revoked_at) == ({}, {}, "", None)


def test_a_stored_policy_is_validated_when_read() -> None:
    item = record().item()
    item["policy"] = {"secrets": ["*"], "roles": []}
    with pytest.raises(InvalidPolicy):
        ClientRecord.from_item(item)


def test_the_public_view_names_no_object() -> None:
    view = record(revoked_at=NOW).public_view()
    assert view["previous_generations"] == {"1": NOW - 1, "2": NOW + 100}
    assert (view["generation"], view["status"], view["revoked_at"]) == (3, "active", NOW)
    assert "objects" not in view
    assert not any("gen-" in str(value) for value in view.values())


def test_records_and_policies_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        record().generation = 4  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClientPolicy(secrets=("a",)).secrets = ("*",)  # type: ignore[misc]


def test_an_enrollment_never_prints_its_entropy() -> None:
    entropy = bytes(range(256)) * 4
    enrollment = Enrollment(record(), entropy)
    assert "entropy" not in repr(enrollment)
    assert entropy.hex()[:32] not in repr(enrollment)
    encoded = enrollment.entropy_b64()  # unpadded base64url, as the bundle carries it
    assert "=" not in encoded
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == entropy
