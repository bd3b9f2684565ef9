"""Kill and rerun every event handler and multi-step operation at each of its AWS calls.

A kill is an AWS failure injected at one call (``tests/support/faults``): everything before it happened, nothing after.
The handler must raise (so Lambda, or SQS with its batch of one, retries it), lose nothing (the inbox file or the
uploaded key is still there for the retry), leave nothing half-written without a way forward, and its rerun must
end as a clean run does. Every call is a kill point (for the signing keys, the first call to each operation: their
rotation steps are also crashed one by one through ``fail_at`` in ``test_token_rotation.py``); every kind of fault
hits the first call to each service.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote_plus

import pytest
from chalice.local import LambdaContext

import app as credport_app
from chalicelib.autoid import ClientPolicy, ClientRecord, Want, build_request
from chalicelib.aws import AwsServices
from chalicelib.aws.secrets import CURRENT, PENDING
from chalicelib.config import reset_settings
from chalicelib.envelope import public_key_from_pem, seal
from chalicelib.errors import ServiceUnavailable
from chalicelib.tokens.kms_keys import KMS_JOURNAL_KEY
from chalicelib.transfer import sending
from local.provision import Provisioned
from local.rotation import STEPS, RotationDriver, RotationFailed
from tests.conftest import ACCOUNT_ID, EVENTS_DIR, REGION
from tests.functional.test_transfer_send import PRIVATE_PEM, PUBLIC_PEM
from tests.support.faults import KINDS, SEND, Call, Stack, api, calls, current_key, open_stack, positions

SECRET = "credport-dev/autoid/kill"
SCHEDULE = {"version": "0", "id": "schedule-1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
SCHEDULE.update(account=ACCOUNT_ID, region=REGION, time="2026-11-24T12:00:00Z", resources=[])


@pytest.fixture
def stack(provisioned: Provisioned, aws: AwsServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield open_stack(aws, monkeypatch)
    Stack.cold()


def invoke(function: str, event: dict[str, Any]) -> Any:
    context = LambdaContext(function_name=function, memory_size=512, max_runtime_ms=30_000)
    return credport_app.app.handler_map[function](event, context)


def s3_delivery(bucket: str, key: str) -> dict[str, Any]:
    """The SQS message (a batch of one) carrying S3's notification of a new object."""
    s3 = {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1, "eTag": "e1", "sequencer": "01"}}
    record = {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": s3}
    message = {"messageId": "m1", "receiptHandle": "h1", "body": json.dumps({"Records": [record]}), "attributes": {}}
    return {"Records": [{**message, "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": REGION}]}


@dataclass
class Case:
    run: Callable[[], Any]
    check: Callable[[str], None]  # after a kill: nothing lost, nothing half-written without a way forward
    shape: Callable[[], Any]  # the end state, comparable with a clean run's
    rerun: Callable[[], Any] | None = None  # how the platform retries it (default: the same invocation again)
    absorbed: tuple[Call, ...] = ()  # calls whose failure the operation may absorb (best-effort work)


Prepare = Callable[[Stack], Callable[[int], Case]]  # set up; then make case number i


def read_json(stack: Stack, key: str, bucket: str | None = None) -> Any:
    found = stack.services.s3.head(bucket or stack.bucket, key)
    return found and json.loads(stack.services.s3.get(bucket or stack.bucket, key).body)


def names(stack: Stack, marker: str, *prefixes: str) -> list[str]:
    return [k.replace(marker, "*") for p in prefixes for k in stack.keys(p) if marker in k]


def stages(versions: dict[str, set[str]]) -> list[list[str]]:
    return sorted(sorted(s) for s in versions.values())


def inbox(body: Callable[[str], bytes]) -> Prepare:
    def prepare(stack: Stack) -> Callable[[int], Case]:
        credport_app.services().import_keys.current()  # a deployed stack has its import key

        def make(i: int) -> Case:
            secret, key = f"credport-dev/imported/kill-{i}", f"inbox/kill-{i}.jwe"
            stack.services.s3.put(stack.bucket, key, body(secret))

            def check(where: str) -> None:
                assert key in stack.keys("inbox/"), where  # the retried message finds the file
                assert len(stack.versions(secret)) <= 1, where  # a version without receipt: the retry writes it

            def shape() -> Any:
                versions, receipt = stack.versions(secret), read_json(stack, f"processed/kill-{i}.jwe.receipt.json")
                own = bool(receipt) and receipt["version_id"] in versions and receipt["secret_name"] == secret
                error = read_json(stack, f"quarantine/kill-{i}.jwe.error.json")
                files = names(stack, f"kill-{i}.", "inbox/", "processed/", "quarantine/")
                return [stages(versions), own, files, error and error["reason"]]

            return Case(lambda: invoke("s3_object_events", s3_delivery(stack.bucket, key)), check, shape)

        return make

    return prepare


def sealed(secret: str) -> bytes:
    recipient = public_key_from_pem(credport_app.services().import_keys.public_documents()["pem"].encode())
    return seal(recipient, json.dumps({"secret_name": secret, "value": f"value of {secret}"}).encode()).encode()


def client_key(pem: bytes) -> Prepare:
    def prepare(stack: Stack) -> Callable[[int], Case]:
        def make(i: int) -> Case:
            client, key = f"kill-{i}", f"clients/kill-{i}/public.pem"
            stack.services.s3.put(stack.bucket, key, pem)
            alarms = lambda: [m["type"] for m in stack.messages("key-events") if m.get("key") == key]  # noqa: E731

            def check(where: str) -> None:
                assert alarms() or stack.services.s3.head(stack.bucket, key), where  # never gone unannounced

            def shape() -> Any:
                versions = stack.versions(f"credport-dev/transfer/{client}")
                sent = {m["version_id"] for m in stack.messages("notify") if m["client_id"] == client}
                outbox = stack.keys(f"outbox/{client}/") == [f"outbox/{client}/{v}.jwe" for v in versions]
                listed = stack.services.factory.client("s3").list_object_versions(Bucket=stack.bucket, Prefix=key)
                files = names(stack, f"/{client}/", "clients/", "quarantine/")
                return [stages(versions), sent == set(versions), outbox, set(alarms()), files, "Versions" in listed]

            return Case(lambda: invoke("s3_object_events", s3_delivery(stack.bucket, key)), check, shape)

        return make

    return prepare


def transfer_schedule(stack: Stack) -> Callable[[int], Case]:
    secrets = {c: f"credport-dev/transfer/{c}" for c in ("sched-a", "sched-b")}
    for client in secrets:
        stack.services.s3.put(stack.bucket, f"clients/{client}/public.pem", PUBLIC_PEM)
        credport_app.services().sender.on_client_object(f"clients/{client}/public.pem", "etag-1")
    day = [0]
    later = SimpleNamespace(gmtime=lambda t: time.gmtime(t + 86400 * day[0]), strftime=time.strftime)
    stack.patch.setattr(sending, "time", later)

    def make(i: int) -> Case:
        day[0] = i + 1  # each case is another day's schedule
        before, announced = {c: stack.versions(s) for c, s in secrets.items()}, len(stack.messages("notify"))

        def new(client: str) -> dict[str, set[str]]:
            return {v: s for v, s in stack.versions(secrets[client]).items() if v not in before[client]}

        def sent(client: str) -> set[str]:
            return {m["version_id"] for m in stack.messages("notify")[announced:] if m["client_id"] == client}

        def check(where: str) -> None:
            for client in secrets:  # no new version, or an unfinished one (resumable), or a finished one
                assert all(PENDING in s or (s == {CURRENT} and v in sent(client)) for v, s in new(client).items())
                assert len(new(client)) <= 1, where

        def shape() -> Any:
            old = {c: next(v for v, s in before[c].items() if CURRENT in s) for c in secrets}
            return [[stages(new(c)), stack.versions(s)[old[c]], sent(c) == set(new(c))] for c, s in secrets.items()]

        return Case(lambda: invoke("rotate_transfer_secrets", SCHEDULE), check, shape)

    return make


def session_rotation(stack: Stack) -> Callable[[int], Case]:
    driver, function = RotationDriver(ACCOUNT_ID, REGION), credport_app.app.handler_map["rotate_session_key"]
    arn = stack.settings.resources.session_key_secret_arn
    name = stack.services.secrets.describe(arn).name

    def make(i: int) -> Case:
        old, failed = stack.services.secrets.get_value(arn).version_id, []

        def run() -> None:
            try:
                driver.rotate(name, function)
            except RotationFailed as error:
                failed.append(error)
                raise

        def rerun() -> None:  # Secrets Manager retries the failed step with the same token, then goes on
            for step in STEPS[STEPS.index(failed[0].step) :]:
                function({"SecretId": arn, "ClientRequestToken": failed[0].token, "Step": step}, None)

        def check(where: str) -> None:
            versions = stack.versions(arn)
            assert PENDING in versions[failed[0].token], where
            assert CURRENT in versions[old] | versions[failed[0].token], where
            assert api("POST", "/session", iam=True).status == 200, where  # a key is in force

        def shape() -> Any:
            versions = stack.versions(arn)
            new = next(v for v, s in versions.items() if CURRENT in s)
            Stack.cold()
            header = api("POST", "/session", iam=True).body["token"].split(".")[0]
            kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
            events = [e["previous_version_id"] for e in stack.messages("key-events") if e.get("version_id") == new]
            return [sorted(versions[new]), sorted(versions[old]), kid == new, set(events) == {old}]

        return Case(run, check, shape, rerun)

    return make


def autoid_rotation(stack: Stack) -> Callable[[int], Case]:
    clients = ("rot-a", "rot-b")
    stack.services.secrets.create(SECRET, "autoid canary")
    for client in clients:
        credport_app.services().autoid.registry.enroll(client, ClientPolicy(secrets=(SECRET,)))
    invoke("rotate_autoid_keys", {**SCHEDULE, "id": "warm-up"})  # every client now has an older generation
    table = stack.services.table(stack.settings.resources.state_table)
    item = lambda client: table.get({"pk": "autoid-clients", "sk": client}) or {}  # noqa: E731
    named = lambda record: {record.object_key(g) for g in record.objects}  # noqa: E731

    def works(record: ClientRecord) -> bool:
        entropy = stack.services.s3.get(stack.bucket, record.object_key(record.generation)).body
        document, _ = build_request(record.client_id, record.generation, entropy, Want(secret_id=SECRET))
        body = {"jwe": seal(current_key(api("GET", "/auto-id/keys").body), json.dumps(document).encode())}
        return api("POST", "/auto-id", body=body).status == 200

    def make(i: int) -> Case:
        rotation = f"rotation-{i}"
        for client in clients:  # the older generations' grace is over: this rotation purges their objects
            table.put({**item(client), "previous": dict.fromkeys(item(client)["previous"], 1)})
        before, kid = {c: int(item(c)["generation"]) for c in clients}, api("GET", "/auto-id/keys").body["current_kid"]

        def check(where: str) -> None:
            for client in clients:  # whatever failed, the record names only objects that exist
                assert named(ClientRecord.from_item(item(client))) <= set(stack.keys(f"autoid/{client}/")), where

        def shape() -> Any:
            Stack.cold()
            found: list[Any] = []
            for client in clients:
                record = ClientRecord.from_item(item(client))
                stored = set(stack.keys(f"autoid/{client}/"))
                moved = [record.generation - before[client], record.last_rotation_id == rotation]
                found.append(
                    [*moved, list(record.previous) == [before[client]], named(record) == stored, works(record)]
                )
            keys, published = (
                api("GET", "/auto-id/keys").body,
                read_json(stack, "autoid/keys.json", stack.public_bucket),
            )
            events = [e for e in stack.messages("key-events") if e.get("rotation_id") == rotation]
            return [*found, keys["current_kid"] != kid, published == keys, bool(events)]

        return Case(lambda: invoke("rotate_autoid_keys", {**SCHEDULE, "id": rotation}), check, shape)

    return make


def enroll(stack: Stack) -> Callable[[int], Case]:
    table = stack.services.table(stack.settings.resources.state_table)

    def make(i: int) -> Case:
        client, got = f"enrol-{i}", []
        record = lambda: ClientRecord.from_item(table.get({"pk": "autoid-clients", "sk": client}) or {})  # noqa: E731

        def run() -> None:
            got.append(credport_app.services().autoid.registry.enroll(client, ClientPolicy(secrets=(SECRET,))))

        def check(where: str) -> None:  # no record yet, or one whose object exists
            objects = table.get({"pk": "autoid-clients", "sk": client}) and record().objects
            assert not objects or {record().object_key(1)} <= set(stack.keys(f"autoid/{client}/")), where

        def shape() -> Any:
            stored = {k: stack.services.s3.get(stack.bucket, k).body for k in stack.keys(f"autoid/{client}/")}
            return [
                record().generation,
                list(stored) == [record().object_key(1)],
                list(stored.values()) == [got[-1].entropy],
            ]

        return Case(run, check, shape, absorbed=(("s3", "ListObjectsV2"),))

    return make


def signing_rotation(stack: Stack) -> Callable[[int], Case]:
    # One key set's kill points: each enabled algorithm's set runs the same steps under a journal of its own
    # (test_token_v2.py rotates them all), so the sweep covers RS256's alone.
    stack.patch.setenv("CREDPORT_TOKEN_ALGORITHMS", "RS256")
    reset_settings()
    Stack.cold()
    assert api("GET", "/token", iam=True).status == 200  # the first use bootstrapped the keys
    table = stack.services.table(stack.settings.resources.state_table)
    age = lambda: table.put({**(table.get(KMS_JOURNAL_KEY) or {}), "completed_at": 0})  # noqa: E731
    age()  # the last rotation was long ago
    invoke("rotate_signing_keys", SCHEDULE)  # from now on each rotation also retires a key
    alias = lambda role: stack.services.kms.alias_target(f"alias/credport-dev/signing/{role}")  # noqa: E731
    roles = lambda: [getattr(alias(r), "arn", None) for r in ("previous", "current", "pending")]  # noqa: E731

    def make(i: int) -> Case:
        age()
        (_, current, pending), announced = roles(), len(stack.messages("key-events"))

        def check(where: str) -> None:
            Stack.cold()
            assert api("GET", "/token", iam=True).status == 200, where  # a working signing key, whatever failed

        def shape() -> Any:
            (previous, now, new), done = roles(), table.get(KMS_JOURNAL_KEY) or {}
            events = [e for e in stack.messages("key-events")[announced:] if e["type"] == "signing-key-rotated"]
            moved = (previous, now) == (current, pending) and new not in (current, pending)
            return [moved, done["step"], {e["rotation_id"] for e in events} == {done["rotation_id"]}]

        return Case(lambda: invoke("rotate_signing_keys", SCHEDULE), check, shape)

    return make


def plan(sequence: tuple[Call, ...], every_call: bool) -> list[tuple[str, str, int, str]]:
    """The kills: every call (or each operation's first), one kind each in turn; every kind at each service's first."""
    found, seen = [], set()
    for index, (service, operation, nth) in enumerate(positions(sequence)):
        if service not in seen:
            found += [(service, operation, nth, kind) for kind in KINDS]
        elif every_call or (service, operation) not in seen:
            found.append((service, operation, nth, KINDS[index % len(KINDS)]))
        seen |= {service, (service, operation)}
    return found


IMPORT = "s3.GetObject sm.GetSecretValue*2"  # the file, the import key
REGISTER = "s3.GetObject dynamodb.PutItem*2 dynamodb.GetItem"  # the key, the profile and index, the profile again
SESSION_ROTATION = (
    "sm.DescribeSecret sm.GetSecretValue sm.PutSecretValue sm.DescribeSecret"  # createSecret, setSecret
    " sm.DescribeSecret sm.GetSecretValue*2 sm.DescribeSecret sm.UpdateSecretVersionStage sns.Publish"  # test, finish
)
AUTOID_CLIENT = "dynamodb.GetItem s3.PutObject dynamodb.PutItem s3.ListObjectsV2 s3.ListObjectVersions s3.DeleteObject"
JOURNAL = "dynamodb.PutItem dynamodb.GetItem"  # a signing-key step journaled, then the journal checked
SIGNING_ROTATION = (
    f"dynamodb.GetItem kms.DescribeKey*3 dynamodb.PutItem {JOURNAL}"  # begun
    f" resourcegroupstaggingapi.GetResources sts.GetCallerIdentity kms.CreateKey dynamodb.PutItem {JOURNAL}"  # new key
    # The key ring reads each alias with one GetPublicKey (the key and its public half): published, then announced.
    f" kms.UpdateAlias*3 {JOURNAL} kms.GetPublicKey*3 s3.PutObject*2 {JOURNAL}"  # moved, published
    f" kms.ScheduleKeyDeletion {JOURNAL} kms.GetPublicKey*3 sns.Publish dynamodb.PutItem*2"  # retired, announced, done
)
# operation -> (its AWS calls, its setup and cases, whether every call is a kill point)
OPERATIONS: dict[str, tuple[str, Prepare, bool]] = {
    "s3_object_events: inbox file imported": (
        # dynamodb.PutItem*2: the file's fate, for the event's version and the one read (chalicelib.transfer.fates)
        f"{IMPORT} sm.DescribeSecret sm.CreateSecret s3.PutObject dynamodb.PutItem*2 s3.CopyObject s3.DeleteObject",
        inbox(sealed),
        True,
    ),
    "s3_object_events: inbox file quarantined": (
        # Not an envelope: refused by its shape before any key is looked up (no import-key read).
        "s3.GetObject dynamodb.PutItem*2 s3.PutObject s3.CopyObject s3.DeleteObject",
        inbox(lambda _: b"not a JWE"),
        True,
    ),
    "s3_object_events: client key registered": (
        f"{REGISTER} sm.DescribeSecret sm.CreateSecret sm.GetSecretValue s3.PutObject sts.AssumeRole sns.Publish",
        client_key(PUBLIC_PEM),
        True,
    ),
    "s3_object_events: private key purged": (
        "s3.GetObject sns.Publish dynamodb.PutItem*2 s3.ListObjectVersions s3.DeleteObject",
        client_key(PRIVATE_PEM),
        True,
    ),
    "rotate_transfer_secrets": (f"dynamodb.Query {SEND} {SEND}", transfer_schedule, True),
    "rotate_session_key (4 steps)": (SESSION_ROTATION, session_rotation, True),
    "rotate_autoid_keys": (  # the server key; each client's generation; the keys published and announced
        f"sm.GetSecretValue sm.PutSecretValue dynamodb.Query {AUTOID_CLIENT} {AUTOID_CLIENT}"
        " sm.GetSecretValue s3.PutObject sns.Publish",
        autoid_rotation,
        True,
    ),
    "auto-id enroll": ("dynamodb.GetItem s3.PutObject dynamodb.PutItem s3.ListObjectsV2", enroll, True),
    "rotate_signing_keys": (SIGNING_ROTATION, signing_rotation, False),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_each_kill_point_is_finished_by_a_rerun_like_a_clean_run(stack: Stack, operation: str) -> None:
    spec, prepare, every_call = OPERATIONS[operation]
    make = prepare(stack)
    clean = make(0)
    Stack.cold()
    stack.faults.reset()
    clean.run()
    assert stack.faults.calls == list(calls(spec)), "the operation's AWS calls changed: update OPERATIONS"
    reference = clean.shape()
    for n, (service, call, nth, kind) in enumerate(plan(calls(spec), every_call), start=1):
        where = f"{operation}: {kind} on {service} {call} #{nth}"
        case = make(n)
        Stack.cold()
        stack.faults.reset()
        stack.faults.fail(kind, service, call, nth=nth)
        try:
            case.run()
        except (ServiceUnavailable, RotationFailed, RuntimeError):
            assert stack.faults.fired == [((service, call), kind)], where
            stack.faults.reset()
            case.check(where)
            Stack.cold()
            (case.rerun or case.run)()
        else:
            assert stack.faults.fired == [((service, call), kind)], where
            assert (service, call) in case.absorbed, f"{where}: the failure was swallowed"
        assert case.shape() == reference, where


@pytest.mark.parametrize("event_type", ["session-key-rotated", "signing-key-rotated", "autoid-keys-rotated"])
def test_key_events_depend_on_no_aws_service(stack: Stack, event_type: str) -> None:
    """The key-events handler only drops caches: no AWS call, so no AWS failure can lose an event."""
    assert api("POST", "/session", iam=True).status == 200  # caches to drop
    stack.faults.reset()
    for service in ("s3", "secretsmanager", "kms", "sns", "dynamodb", "sts"):
        stack.faults.fail("throttling", service, count=None)
    event = json.loads((EVENTS_DIR / "sns_key_event.json").read_text())
    event["Records"][0]["Sns"]["Message"] = json.dumps({"type": event_type})
    invoke("key_events", event)
    assert stack.faults.calls == []


def test_a_late_redelivery_never_puts_an_older_version_back_in_force(stack: Stack) -> None:
    """A registration event redelivered after a newer send resumes nothing: the newer version stays current."""
    key = "clients/late/public.pem"
    stack.services.s3.put(stack.bucket, key, PUBLIC_PEM)
    sender = credport_app.services().sender
    first = sender.on_client_object(key, "etag-1")
    newer = sender.send("late")
    again = sender.on_client_object(key, "etag-1")
    assert first is not None
    assert again is not None
    assert again.version_id == first.version_id != newer.version_id
    assert stack.versions("credport-dev/transfer/late")[newer.version_id] == {CURRENT}
