"""AWS faults on every API route: each AWS call a route makes fails in turn (throttled, a 5xx, a read timeout), and
the route must answer 503 ``service_unavailable`` with Retry-After, change nothing, and serve the very same request
once the fault is gone.

The faults come from :class:`tests.support.faults.FaultInjector`, one failed call per injected failure. Each route
first runs once on a cold container (every cache dropped) while the injector records its calls; that list is
asserted, so a new dependency shows up here, and then every call in it fails with every kind of fault. Event
handlers and multi-step operations: ``test_kill_rerun.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import app as credport_app
from chalicelib.autoid import ClientPolicy, Want, build_request
from chalicelib.aws import AwsServices, AwsUnavailable
from chalicelib.aws.secrets import CURRENT, PENDING, PREVIOUS
from chalicelib.envelope import public_key_from_pem, seal
from local.provision import Provisioned
from tests.functional.test_transfer_send import PUBLIC_PEM
from tests.support.faults import KINDS, SEND, Reply, Stack, api, calls, current_key, open_stack, positions


@pytest.fixture
def stack(provisioned: Provisioned, aws: AwsServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield open_stack(aws, monkeypatch)
    Stack.cold()


# --- the routes ---------------------------------------------------------------------------------------------------

SECRET, ROLE = "credport-dev/autoid/faults", "arn:aws:iam::123456789012:role/credport-dev-autoid-faults"
CLIENT_SECRET, WELL_KNOWN = "credport-dev/transfer/client-one", "/.well-known/"

Request = Callable[[], Reply]
Prepare = Callable[[Stack], Callable[[], Request]]  # set up; then make fresh requests


def plain(method: str, path: str, *, warm_up: str | None = None, **kwargs: Any) -> Prepare:
    """A route whose every request is the same. Its first one (or ``GET warm_up``, signed) may bootstrap keys:
    it is made during setup."""

    def prepare(_stack: Stack) -> Callable[[], Request]:
        assert (api("GET", warm_up, iam=True) if warm_up else api(method, path, **kwargs)).status == 200
        return lambda: lambda: api(method, path, **kwargs)

    return prepare


def bearer(method: str, path: str) -> Prepare:
    def prepare(stack: Stack) -> Callable[[], Request]:
        return plain(method, path, bearer=api("POST", "/session", iam=True).body["token"])(stack)

    return prepare


def importing(existing: bool) -> Prepare:
    """A new secret per request, or a new version of an existing one: the two paths of an import."""

    def prepare(stack: Stack) -> Callable[[], Request]:
        recipient = public_key_from_pem(api("GET", "/transfer/import-key").body["pem"].encode())
        made = iter(range(1000))

        def fresh() -> Request:
            name = f"credport-dev/imported/faults-{next(made)}"
            if existing:
                stack.services.secrets.create(name, "old value")
            envelope = seal(recipient, json.dumps({"secret_name": name, "value": f"value of {name}"}).encode())
            return lambda: api("POST", "/transfer/import", iam=True, body={"jwe": envelope})

        return fresh

    return prepare


def sending(stack: Stack) -> Callable[[], Request]:
    stack.services.s3.put(stack.bucket, "clients/client-one/public.pem", PUBLIC_PEM)
    assert credport_app.services().sender.on_client_object("clients/client-one/public.pem", "etag-1") is not None
    return lambda: lambda: api("POST", "/transfer/clients/client-one/send", iam=True)


def identifying(want: Want) -> Prepare:
    """Auto-id requests, each with a fresh nonce (the retry re-sends the same one)."""

    def prepare(stack: Stack) -> Callable[[], Request]:
        stack.services.secrets.create(SECRET, "autoid canary")
        # As on AWS, the role must trust credport's account (README: its trust policy must trust the app's role).
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRole"}],
            }
        )
        stack.services.factory.client("iam").create_role(
            RoleName=ROLE.rsplit("/", maxsplit=1)[-1], AssumeRolePolicyDocument=trust
        )
        policy = ClientPolicy(secrets=(SECRET,), roles=(ROLE,))
        entropy = credport_app.services().autoid.registry.enroll("worker-1", policy).entropy
        recipient = current_key(api("GET", "/auto-id/keys").body)

        def fresh() -> Request:
            body = {"jwe": seal(recipient, json.dumps(build_request("worker-1", 1, entropy, want)[0]).encode())}
            return lambda: api("POST", "/auto-id", body=body)

        return fresh

    return prepare


KMS_KEYS, SESSION_KEYS = "kms.GetPublicKey*3", "sm.DescribeSecret sm.GetSecretValue*2"
IMPORT, AUTOID = (
    "sm.GetSecretValue*2 sm.DescribeSecret",
    "sm.GetSecretValue dynamodb.GetItem s3.GetObject dynamodb.PutItem",
)
# route -> (its AWS calls on a cold container, its setup and requests)
ROUTES: dict[str, tuple[str, Prepare]] = {
    "GET /token": (f"iam.GetRole {KMS_KEYS} kms.Sign", plain("GET", "/token", iam=True)),
    # The discovery document is the deployment's settings (issuer, enabled algorithms, claims): no AWS call to fail.
    "GET /.well-known/openid-configuration": ("", plain("GET", f"{WELL_KNOWN}openid-configuration")),
    # Each default algorithm's key set (RS256, ES384), read once; the first request bootstrapped both.
    "GET /.well-known/jwks.json": (f"{KMS_KEYS} {KMS_KEYS}", plain("GET", f"{WELL_KNOWN}jwks.json")),
    "POST /session": (f"iam.GetRole {SESSION_KEYS}", plain("POST", "/session", iam=True)),
    "POST /session/refresh": (SESSION_KEYS, bearer("POST", "/session/refresh")),
    "GET /session": (SESSION_KEYS, bearer("GET", "/session")),
    "GET /transfer/import-key": ("sm.GetSecretValue*2", plain("GET", "/transfer/import-key")),
    "POST /transfer/import (new secret)": (f"{IMPORT} sm.CreateSecret", importing(existing=False)),
    "POST /transfer/import (new version)": (f"{IMPORT} sm.PutSecretValue", importing(existing=True)),
    "POST /transfer/clients/{id}/send": (SEND, sending),
    "GET /auto-id/keys": ("sm.GetSecretValue", plain("GET", "/auto-id/keys")),
    "POST /auto-id (secret)": (f"{AUTOID} sm.GetSecretValue {SESSION_KEYS}", identifying(Want(secret_id=SECRET))),
    "POST /auto-id (role)": (f"{AUTOID} sts.AssumeRole {SESSION_KEYS}", identifying(Want(role_arn=ROLE))),
}


def unfinished_send(stack: Stack, before: dict[str, Any], after: dict[str, Any], where: str) -> str | None:
    """What a failed send may leave: nothing, or one new version still labelled AWSPENDING (the retry finishes that
    very version), with its outbox copy, and AWSCURRENT and its one announcement only if its last step failed."""
    old, now = before["secrets"][CLIENT_SECRET], after["secrets"][CLIENT_SECRET]
    added = set(now) - set(old)
    if not added:
        return None
    (pending,) = added
    assert PENDING in now[pending], where
    assert {v for v, stages in now.items() if CURRENT in stages} <= {pending, *(v for v in old if CURRENT in old[v])}
    assert {m["version_id"] for m in stack.messages("notify")[before["notify"] :]} <= {pending}, where
    written = {key for key, *_ in set(after["objects"][stack.bucket]) - set(before["objects"][stack.bucket])}
    assert written <= {f"outbox/client-one/{pending}.jwe"}, where
    rest = lambda snapshot: {k: v for k, v in snapshot.items() if k not in ("secrets", "objects", "notify")}  # noqa: E731
    assert rest(after) == rest(before), where
    return pending


def sent_once(stack: Stack, before: dict[str, Any], version: str, pending: str | None, where: str) -> None:
    """A send retried after a failure ends as a clean send: one new version, in force and delivered."""
    old = before["secrets"][CLIENT_SECRET]
    previous = next(v for v, stages in old.items() if CURRENT in stages)
    assert pending in (None, version), where
    assert stack.versions(CLIENT_SECRET) == {**{v: set() for v in old}, previous: {PREVIOUS}, version: {CURRENT}}
    assert f"outbox/client-one/{version}.jwe" in stack.keys("outbox/"), where
    assert {m["version_id"] for m in stack.messages("notify")[before["notify"] :]} == {version}, where


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_aws_failure_of_a_route_is_a_503_that_changes_nothing(stack: Stack, route: str) -> None:
    spec, prepare = ROUTES[route]
    expected, fresh = calls(spec), prepare(stack)
    stack.cold()
    stack.faults.reset()
    assert fresh()().status == 200
    assert stack.faults.calls == list(expected), "the route's AWS calls changed: update ROUTES and its checks"
    cases = 0
    for kind in KINDS:
        for service, operation, nth in positions(expected):
            where = f"{route}: {kind} on {service} {operation} #{nth}"
            request, before = fresh(), stack.snapshot()
            stack.cold()
            stack.faults.reset()
            stack.faults.fail(kind, service, operation, nth=nth)
            reply = request()
            assert stack.faults.fired == [((service, operation), kind)], where
            assert (reply.status, reply.body.get("error")) == (503, "service_unavailable"), where
            assert reply.headers["Retry-After"] == ("2" if kind == "throttling" else "1"), where
            assert reply.headers["Cache-Control"] == "no-store", where
            after = stack.snapshot()
            pending = unfinished_send(stack, before, after, where) if "send" in route else None
            assert pending is not None or after == before, where
            stack.cold()
            stack.faults.reset()
            retried = request()  # the very same request, once the fault is gone
            assert retried.status == 200, (where, retried)
            if "send" in route:
                sent_once(stack, before, retried.body["version_id"], pending, where)
            cases += 1
    assert cases == len(KINDS) * len(expected)


def test_a_failing_key_read_in_the_bearer_authorizer_is_never_a_401(stack: Stack) -> None:
    """API Gateway turns any authorizer error but ``Unauthorized`` into its AUTHORIZER_CONFIGURATION_ERROR gateway
    response (500 unless the API definition maps it). A fault must never be ``Unauthorized``: a client would drop
    a valid session."""
    token = api("POST", "/session", iam=True).body["token"]
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/GET/session"
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": arn}
    stack.cold()
    stack.faults.reset()
    assert credport_app.bearer(event, None)["principalId"] == "arn:aws:iam::123456789012:role/credport-dev-workload"
    assert stack.faults.calls == list(calls(SESSION_KEYS))
    for kind in KINDS:
        for service, operation, nth in positions(calls(SESSION_KEYS)):
            stack.cold()
            stack.faults.reset()
            stack.faults.fail(kind, service, operation, nth=nth)
            with pytest.raises(AwsUnavailable) as raised:
                credport_app.bearer(event, None)
            assert str(raised.value) != "Unauthorized"
            assert stack.faults.fired == [((service, operation), kind)]
