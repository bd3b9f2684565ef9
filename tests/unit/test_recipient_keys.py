"""RecipientKeyStore against an in-memory Secrets Manager: bootstrap races, rotation grace, forced reloads, the
``create=False`` rule, and the import key as today's deployments hold it (``{"v": 1, "private_pem": ...}``)."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import pytest

from bench.memory import MemorySecrets
from chalicelib.aws.secrets import CURRENT, SecretStore, SecretVersion
from chalicelib.envelope import RecipientKey, generate_recipient_key, open_envelope, seal
from chalicelib.keys import IMPORT_KEY, SERVER_KEYS, KeyUnavailable, RecipientKeyKind, RecipientKeyStore
from chalicelib.keys import recipient as recipient_module
from chalicelib.keys.recipient import FORCED_RELOAD_INTERVAL, MAX_KEYS
from tests.support import Clock

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/keys-AbCdEf"
GRACE = 7 * 86400
NOW = 1_795_000_000.0
PLACEHOLDER = '{"placeholder": true}'


class Secrets(MemorySecrets):
    """Calls recorded; ``stale_reads`` makes the next reads see the placeholder (a container that read just
    before another one wrote)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.stale_reads = 0

    def get_value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> SecretVersion:
        self.calls.append(f"get:{stage}")
        if self.stale_reads:
            self.stale_reads -= 1
            return SecretVersion(secret_id, secret_id, "stale", (CURRENT,), None, PLACEHOLDER)
        return super().get_value(secret_id, stage=stage, version_id=version_id)

    def put_value(self, secret_id: str, value: str | bytes, *, client_request_token: str, **_: Any) -> str:
        self.calls.append("put")
        return super().put_value(secret_id, value, client_request_token=client_request_token)

    def document(self) -> dict[str, Any]:
        return dict(json.loads(super().get_value(ARN).value))


@pytest.fixture(autouse=True)
def small_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipient_module, "generate_recipient_key", lambda: generate_recipient_key(2048))


@pytest.fixture
def secrets() -> Secrets:
    fake = Secrets()
    fake.create(ARN, PLACEHOLDER)  # what the template leaves
    return fake


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def monotonic() -> Clock:
    return Clock(50.0)


def store(
    secrets: Secrets, kind: RecipientKeyKind = SERVER_KEYS, clock: Clock | None = None, monotonic: Clock | None = None
) -> RecipientKeyStore:
    return RecipientKeyStore(
        cast(SecretStore, secrets),
        ARN,
        kind,
        grace_period=GRACE if kind is SERVER_KEYS else None,
        clock=clock or Clock(NOW),
        monotonic=monotonic or Clock(0.0),
    )


def legacy(key: RecipientKey) -> str:
    assert key.private is not None
    return json.dumps({"v": 1, "private_pem": key.private.as_pem(private=True).decode("ascii")})


def token(suffix: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ARN}#{suffix}"))


# --- bootstrap --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "suffix"), [(SERVER_KEYS, "autoid-key-1"), (IMPORT_KEY, "import-key-1")])
def test_the_first_key_is_one_deterministic_version(secrets: Secrets, kind: RecipientKeyKind, suffix: str) -> None:
    kid = store(secrets, kind).current_kid()
    current = secrets.get_value(ARN)
    assert current.version_id == token(suffix)  # the token each store has always used
    assert [k["kid"] for k in json.loads(current.value)["keys"]] == [kid]
    assert store(secrets, kind).current_kid() == kid  # another container reads it


def test_racing_containers_bootstrap_the_same_key(secrets: Secrets) -> None:
    first = store(secrets).current_kid()
    secrets.stale_reads = 1  # the second container read the placeholder before the first one wrote
    second = store(secrets)
    assert second.current_kid() == first
    assert len(secrets.versions[ARN]) == 2  # the placeholder and one key version
    assert second.accepted()[first].private is not None


def test_an_unusable_value_is_no_key(secrets: Secrets) -> None:
    for value in ("not json", '{"v": 2, "keys": []}', '{"v": 1, "keys": [{"kid": "x"}]}', '{"private_pem": 7}'):
        secrets.create(ARN, value)
        assert store(secrets).accepted(create=False) == {}
    bad_pem = json.dumps({"v": 1, "private_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"})
    secrets.create(ARN, bad_pem)
    assert store(secrets, IMPORT_KEY).accepted(create=False) == {}


def test_a_key_that_cannot_be_written_is_an_error(secrets: Secrets) -> None:
    secrets.stale_reads = 2  # the write seems to succeed, yet nothing usable is read back
    with pytest.raises(KeyUnavailable, match="the auto-id server key could not be created"):
        store(secrets).current_kid()


# --- create=False: opening a request never makes a key -----------------------------------------------------------


def test_opening_a_request_never_makes_the_first_key(secrets: Secrets) -> None:
    keys = store(secrets)
    assert keys.accepted("some-kid", create=False) == {}
    assert keys.accepted(create=False) == {}
    assert "put" not in secrets.calls
    # The unknown kid forces one re-read; "no key" is then trusted briefly, so a flood of requests naming made-up
    # kids costs one read per interval, never one per request.
    assert secrets.calls == ["get:AWSCURRENT"] * 2
    for n in range(20):
        assert keys.accepted(f"made-up-{n}", create=False) == {}
    assert secrets.calls == ["get:AWSCURRENT"] * 2
    kid = keys.current_kid()  # a reader that may create does, at once
    assert list(keys.accepted(kid, create=False)) == [kid]


# --- rotation -----------------------------------------------------------------------------------------------------


def test_rotation_keeps_the_old_key_for_its_grace_period(secrets: Secrets, clock: Clock) -> None:
    keys = store(secrets, clock=clock)
    old = keys.current_kid()
    report = keys.rotate("r1")
    assert (report.changed, report.retired_kids, report.dropped_kids) == (True, (old,), ())
    new = keys.current_kid()
    assert report.current_kid == new != old
    assert set(keys.accepted()) == {new, old}
    documents = keys.public_documents()
    assert documents["current_kid"] == new
    assert [k["kid"] for k in documents["keys"]] == [new, old]
    assert "pem" not in documents
    assert not {"d", "p", "q"} & {m for k in documents["keys"] for m in k}

    clock.advance(GRACE)
    assert old in keys.accepted(old)  # the last second of its grace
    clock.advance(1)
    assert keys.accepted(old) == {}
    assert [k["kid"] for k in keys.public_documents()["keys"]] == [new]
    third = keys.rotate("r2")
    assert (third.retired_kids, third.dropped_kids) == ((new,), (old,))
    assert [k["kid"] for k in secrets.document()["keys"]] == [third.current_kid, new]


def test_the_same_rotation_id_rotates_once(secrets: Secrets, clock: Clock) -> None:
    keys = store(secrets, clock=clock)
    first = keys.rotate("r1")
    versions = len(secrets.versions[ARN])
    again = keys.rotate("r1")
    assert (again.changed, again.current_kid, again.retired_kids) == (False, first.current_kid, ())
    assert len(secrets.versions[ARN]) == versions
    assert secrets.get_value(ARN).version_id == token("autoid-rotation#r1")


def test_a_retried_rotation_racing_the_first_one_writes_nothing(
    secrets: Secrets, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, retried = store(secrets, clock=clock), store(secrets, clock=clock)
    first.rotate("r1")
    raced: list[Any] = []

    def generate() -> RecipientKey:
        if not raced:  # the first run writes r2 between the retry's read and its write
            raced.append(None)
            raced[0] = first.rotate("r2")
        return generate_recipient_key(2048)

    monkeypatch.setattr(recipient_module, "generate_recipient_key", generate)
    versions = len(secrets.versions[ARN]) + 1
    late = retried.rotate("r2")
    assert raced[0].changed
    assert (late.changed, late.current_kid) == (False, raced[0].current_kid)
    assert len(secrets.versions[ARN]) == versions


def test_a_bootstrap_then_a_rotation_in_one_call(secrets: Secrets) -> None:
    keys = store(secrets)
    report = keys.rotate("r1")  # a first key is no rotation: this one still goes on
    assert report.changed
    assert len(report.retired_kids) == 1
    assert report.current_kid == keys.current_kid() not in report.retired_kids
    assert secrets.calls[:4] == ["get:AWSCURRENT", "put", "get:AWSCURRENT", "put"]


def test_a_rotation_reads_once_writes_once_and_the_next_reader_reads_once(secrets: Secrets) -> None:
    keys = store(secrets)
    keys.current_kid()
    secrets.calls.clear()
    keys.rotate("r1")
    keys.public_documents()  # the schedule publishes the new JWKS
    keys.public_documents()
    assert secrets.calls == ["get:AWSCURRENT", "put", "get:AWSCURRENT"]


def test_the_secret_holds_a_bounded_number_of_keys(secrets: Secrets, clock: Clock) -> None:
    keys = store(secrets, clock=clock)
    for n in range(MAX_KEYS + 3):
        keys.rotate(f"r{n}")
    assert len(secrets.document()["keys"]) == MAX_KEYS


def test_another_containers_rotation_is_seen_at_once_and_made_up_kids_are_rate_limited(
    secrets: Secrets, monotonic: Clock
) -> None:
    reader = store(secrets, monotonic=monotonic)
    reader.current_kid()
    new = store(secrets).rotate("r1").current_kid
    before = len(secrets.calls)
    assert list(reader.accepted(new, create=False)) == [new]
    assert len(secrets.calls) == before + 1  # one forced re-read
    reader.accepted("made-up-1", create=False)
    assert len(secrets.calls) == before + 1  # inside the interval: the cache answers
    monotonic.advance(FORCED_RELOAD_INTERVAL)
    reader.accepted("made-up-2", create=False)
    assert len(secrets.calls) == before + 2


def test_a_rotation_is_seen_after_invalidate(secrets: Secrets) -> None:
    reader = store(secrets)
    old = reader.current_kid()
    store(secrets).rotate("r1")
    assert reader.current_kid() == old  # cached
    reader.invalidate()
    assert reader.current_kid() != old


# --- the import key, as today's deployments hold it ---------------------------------------------------------------


def test_a_legacy_import_key_and_its_predecessor_both_open(secrets: Secrets) -> None:
    older, current = generate_recipient_key(2048), generate_recipient_key(2048)
    secrets.put_value(ARN, legacy(older), client_request_token=token("import-key-1"))
    secrets.put_value(ARN, legacy(current), client_request_token=str(uuid.uuid4()))  # rotated by hand
    secrets.calls.clear()
    keys = store(secrets, IMPORT_KEY)
    assert keys.current().kid == current.kid
    assert secrets.calls == ["get:AWSCURRENT", "get:AWSPREVIOUS"]
    accepted = keys.accepted()
    assert list(accepted) == [current.kid, older.kid]
    for sealed_to in (older, current):
        assert open_envelope(seal(sealed_to, b"x"), accepted).kid == sealed_to.kid
    documents = keys.public_documents()
    assert [k["kid"] for k in documents["keys"]] == [current.kid, older.kid]
    assert documents["current_kid"] == current.kid
    assert documents["pem"] == current.public_pem().decode("ascii")
    assert "put" not in secrets.calls  # nothing rewritten


def test_the_import_key_bootstraps_as_before(secrets: Secrets) -> None:
    keys = store(secrets, IMPORT_KEY)
    current = keys.current()
    assert secrets.calls == ["get:AWSCURRENT", "put", "get:AWSCURRENT", "get:AWSPREVIOUS"]
    documents = keys.public_documents()
    assert [k["kid"] for k in documents["keys"]] == [current.kid]  # the placeholder at AWSPREVIOUS is no key
    assert documents["pem"] == current.public_pem().decode("ascii")


def test_a_hand_rotated_legacy_key_over_a_new_document(secrets: Secrets) -> None:
    first = store(secrets, IMPORT_KEY).current()
    replacement = generate_recipient_key(2048)
    secrets.put_value(ARN, legacy(replacement), client_request_token=str(uuid.uuid4()))
    keys = store(secrets, IMPORT_KEY)
    assert keys.current().kid == replacement.kid
    assert list(keys.accepted()) == [replacement.kid, first.kid]


def test_the_server_keys_never_read_awsprevious(secrets: Secrets) -> None:
    older = generate_recipient_key(2048)
    secrets.put_value(ARN, legacy(older), client_request_token=str(uuid.uuid4()))
    kid = store(secrets).current_kid()  # a legacy value is one current key for either kind
    assert kid == older.kid
    secrets.calls.clear()
    keys = store(secrets)
    keys.rotate("r1")
    keys.accepted()
    assert "get:AWSPREVIOUS" not in secrets.calls


def test_private_keys_stay_out_of_reprs(secrets: Secrets) -> None:
    keys = store(secrets)
    keys.current_kid()
    stored = keys.get()
    assert stored is not None
    assert "PRIVATE" not in repr(stored) + repr(list(stored))
