"""The known attacks on auto-id, through ``POST /auto-id`` against moto, each refused with its documented status.

Every authentication failure is the one opaque 401 (byte-identical bodies); a malformed body is a 400, an
oversized one a 413, a credential outside the policy a 403 whether or not it exists; nothing is ever a 5xx.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwe import JWERegistry
from joserfc.jwk import RSAKey

from chalicelib import autoid
from chalicelib.autoid import AutoIdService, ClientPolicy, Enrollment, Want, build_request, compute_proof
from chalicelib.aws import AwsServices
from chalicelib.config import get_settings
from chalicelib.envelope import RecipientKey, generate_recipient_key, seal
from chalicelib.jose import JWE_HEADERS
from local.provision import Provisioned
from tests.conftest import install_services
from tests.functional.test_autoid import current_jwk, post, seal_to, unb64
from tests.support import proxy_post

SECRET = "credport-dev/autoid/db-password"
OUTSIDE = "credport-dev/billing/api-key"  # exists, but no policy below names it
REFUSED = b'{"error":"authentication_failed","message":"Authentication failed."}'
RSA_OAEP = JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"])
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def server_key() -> RecipientKey:
    return generate_recipient_key()


@pytest.fixture
def service(provisioned: Provisioned, aws: AwsServices, monkeypatch: pytest.MonkeyPatch) -> AutoIdService:
    # Nothing here rotates: one RSA-4096 key generated for the whole module keeps each test's setup cheap.
    monkeypatch.setattr("chalicelib.keys.recipient.generate_recipient_key", server_key)
    aws.secrets.create(SECRET, "hunter2-canary")
    aws.secrets.create(OUTSIDE, "not-for-worker-1")
    return install_services().autoid


@pytest.fixture
def enrolled(service: AutoIdService) -> Enrollment:
    return service.registry.enroll("worker-1", ClientPolicy(secrets=("credport-dev/autoid/db-*",)))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def genuine(enrollment: Enrollment, want: Want | None = None, **changes: Any) -> dict[str, Any]:
    document, _ = build_request("worker-1", 1, enrollment.entropy, want or Want(secret_id=SECRET))
    return {**document, **changes}


def forged(document: dict[str, Any], intervals: list[list[int]], entropy: bytes) -> dict[str, Any]:
    """What an attacker can build by hand: any intervals, and a correct proof over the bytes it names."""
    nonce, pairs = unb64(document["nonce"]), [(o, n) for o, n in intervals]
    proof = compute_proof(entropy, pairs, nonce, document["iat"], document["client_id"])
    return {**document, "intervals": intervals, "proof": b64(proof)}


def send(client: Client, service: AutoIdService, document: dict[str, Any]) -> Any:
    return post(client, {"jwe": seal_to(current_jwk(service), document)})


def assert_refused(response: Any, case: object = None) -> None:
    """The one opaque 401: same status, same bytes, same headers, whatever the reason."""
    assert (response.status_code, response.body) == (401, REFUSED), case
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


def assert_served(response: Any) -> None:
    assert response.status_code == 200, response.body


@pytest.fixture
def almost(enrolled: Enrollment) -> Callable[[], dict[str, Any]]:
    """A request of the right shape for the enrolled client, fresh, with a wrong proof (a closure: hypothesis
    prints its arguments, and the enrollment holds 1 MiB)."""
    return lambda: genuine(enrolled, proof=b64(bytes(32)))


def seal_raw(jwk: dict[str, Any], plaintext: bytes) -> str:
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": jwk["kid"]}
    return str(jwe.encrypt_compact(header, plaintext, RSAKey.import_key(jwk), registry=RSA_OAEP))


def test_intervals_that_do_not_cover_the_file_are_401(
    service: AutoIdService, enrolled: Enrollment, client: Client
) -> None:
    attacks = {
        "empty": ([[i * 64, 0] for i in range(16)], b""),  # the proof key is the empty string
        "one-byte": ([[i * 1000, 1] for i in range(16)], enrolled.entropy),  # guessable one byte at a time
        "short": ([[i * 4096, 32] for i in range(16)], enrolled.entropy),
        "repeated": ([[0, 64]] * 16, enrolled.entropy),  # one snippet sixteen times
        # Distinct offsets, but each snippet overlapping the next by 63 bytes: 79 bytes of the file, not 1024.
        "overlapping": ([[i, 64] for i in range(16)], enrolled.entropy),
        "overlapping-by-one": ([[i * 64 - (i == 15), 64] for i in range(16)], enrolled.entropy),
    }
    for name, (intervals, known) in attacks.items():
        document = genuine(enrolled)
        assert_refused(send(client, service, forged(document, intervals, known)), name)
        # The genuine request with the same nonce still works: the refusal consumed nothing.
        assert_served(send(client, service, document))


def test_a_proof_over_any_other_number_of_snippets_is_the_same_401(
    service: AutoIdService, enrolled: Enrollment, client: Client
) -> None:
    """Fewer snippets is shorter coverage, more is not the protocol: both are the proof check's uniform 401 (with a
    proof correct over the bytes they name), never a 400 that would tell the shape apart."""
    for count in (1, 15, 17, 64):
        intervals = [[i * 64, 64] for i in range(count)]
        assert_refused(send(client, service, forged(genuine(enrolled), intervals, enrolled.entropy)), str(count))


def test_an_interval_list_that_is_empty_or_unbounded_is_malformed(
    service: AutoIdService, enrolled: Enrollment, client: Client
) -> None:
    for intervals in ([], [[i * 64, 64] for i in range(65)]):
        response = send(client, service, forged(genuine(enrolled), intervals, b""))
        assert response.status_code == 400
        assert json.loads(response.body)["error"] == "malformed_request"


def test_a_captured_request_replayed_is_401(service: AutoIdService, enrolled: Enrollment, client: Client) -> None:
    captured = {"jwe": seal_to(current_jwk(service), genuine(enrolled))}
    assert_served(post(client, captured))
    assert_refused(post(client, captured))
    install_services()  # another container: the nonce is in DynamoDB, not in memory
    assert_refused(post(client, captured))


def test_a_secret_outside_the_policy_is_403_whether_or_not_it_exists(
    service: AutoIdService, enrolled: Enrollment, client: Client
) -> None:
    existing = send(client, service, genuine(enrolled, Want(secret_id=OUTSIDE)))
    missing = send(client, service, genuine(enrolled, Want(secret_id="credport-dev/billing/no-such-secret")))
    assert existing.status_code == missing.status_code == 403
    assert existing.body == missing.body
    assert json.loads(existing.body)["error"] == "forbidden"


def test_credports_own_secrets_are_403_whatever_the_policy(service: AutoIdService, client: Client) -> None:
    from tests.functional.test_autoid_serving import legacy_client

    # Enrolment now refuses such a policy (test_autoid_serving.py); a record stored before that gains nothing.
    greedy = legacy_client(service, "worker-1", ("credport-dev/*",))
    service.server_keys.current_kid()  # the server key secret holds a value too
    assert_served(send(client, service, genuine(greedy, Want(secret_id=SECRET))))  # the policy does grant
    for name in ("session-key", "autoid-session-key", "transfer-import-key", "autoid-server-key"):
        response = send(client, service, genuine(greedy, Want(secret_id=f"credport-dev/{name}")))
        assert response.status_code == 403, (name, response.body)
        assert json.loads(response.body)["error"] == "forbidden"


def flip(part: str, index: int) -> str:
    raw = bytearray(unb64(part))
    raw[index] ^= 0x01
    return b64(bytes(raw))


def expected_for_header(raw: bytes) -> int:
    """As documented in service.py: an envelope that is not RSA-OAEP-256/A256GCM compact JWE (including a
    header that does not parse, or names a member outside the allow-list) is 400; any other failure to open it is
    401."""
    try:
        header = json.loads(raw)
    except ValueError:
        return 400
    if not isinstance(header, dict) or not JWE_HEADERS.issuperset(header):
        return 400
    return 401 if (header.get("alg"), header.get("enc")) == ("RSA-OAEP-256", "A256GCM") else 400


def test_a_tampered_ciphertext_is_refused_in_every_part(
    service: AutoIdService, enrolled: Enrollment, client: Client
) -> None:
    envelope = seal_to(current_jwk(service), genuine(enrolled))
    parts = envelope.split(".")
    header = unb64(parts[0])
    seen = set()
    for index in range(len(header)):  # every byte of the protected header
        tampered = ".".join([flip(parts[0], index), *parts[1:]])
        response = post(client, {"jwe": tampered})
        seen.add(response.status_code)
        assert response.status_code == expected_for_header(
            bytes([*header[:index], header[index] ^ 1, *header[index + 1 :]])
        )
        if response.status_code == 401:
            assert_refused(response)
        else:
            assert json.loads(response.body)["error"] == "malformed_request"
    assert seen == {400, 401}
    for part in range(1, 5):  # encrypted key, IV, ciphertext, tag: the first, a middle and the last byte
        size = len(unb64(parts[part]))
        for index in (0, size // 2, size - 1):
            tampered_parts = [*parts]
            tampered_parts[part] = flip(parts[part], index)
            assert_refused(post(client, {"jwe": ".".join(tampered_parts)}))
    assert_served(post(client, {"jwe": envelope}))  # untouched, it was (and still is) a valid request


def test_a_wrong_generation_file_is_401(service: AutoIdService, enrolled: Enrollment, client: Client) -> None:
    other = service.registry.enroll("worker-2", ClientPolicy(secrets=(SECRET,)))
    document = genuine(enrolled)
    # Another client's file, with worker-1's id; then worker-1's file claimed as a generation that does not exist.
    assert_refused(send(client, service, forged(document, document["intervals"], other.entropy)))
    assert_refused(send(client, service, forged({**document, "gen": 2}, document["intervals"], enrolled.entropy)))
    assert_served(send(client, service, document))


def test_a_revoked_client_is_401_at_once(
    service: AutoIdService, enrolled: Enrollment, client: Client, aws: AwsServices
) -> None:
    assert_served(send(client, service, genuine(enrolled)))
    service.registry.revoke("worker-1")
    assert_refused(send(client, service, genuine(enrolled)))
    assert list(aws.s3.list_keys(get_settings().resources.transfer_bucket, "autoid/worker-1/")) == []


def test_a_stale_or_future_iat_is_401(service: AutoIdService, enrolled: Enrollment, client: Client) -> None:
    for skew in (-61, -3600, 90):
        now = time.time() + skew
        document, _ = build_request("worker-1", 1, enrolled.entropy, Want(secret_id=SECRET), now=now)
        assert_refused(send(client, service, document), skew)
    assert_served(send(client, service, genuine(enrolled)))


def test_an_unknown_server_key_is_401(service: AutoIdService, enrolled: Enrollment, client: Client) -> None:
    stranger = generate_recipient_key(2048)
    assert_refused(post(client, {"jwe": seal(stranger, json.dumps(genuine(enrolled)).encode())}))
    # The server's kid in the header, but sealed to another key: the kid does not make it openable.
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": service.server_keys.current_kid()}
    lying = jwe.encrypt_compact(header, json.dumps(genuine(enrolled)).encode(), stranger.public, registry=RSA_OAEP)
    assert_refused(post(client, {"jwe": str(lying)}))


MALFORMED = (
    "",
    "not json",
    "\udcff",  # not UTF-8
    "null",
    "[]",
    '"jwe"',
    "{}",
    '{"jwe": null}',
    '{"jwe": 7}',
    '{"jwe": ["a"]}',
    '{"jwe": ""}',
    '{"jwe": "a.b.c.d.e", "extra": 1}',
    '{"JWE": "a.b.c.d.e"}',
    '{"jwe": "a.b.c.d.e"}',
    '{"jwe": "a.b.c.d"}',
    '{"jwe": "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMjU2R0NNIn0.a.b.c.d"}',  # alg RSA1_5
)


def test_malformed_bodies_are_400(service: AutoIdService, client: Client) -> None:
    for body in MALFORMED:
        raw = body.encode("utf-8", "surrogateescape")
        response = proxy_post("/auto-id", raw)
        assert response.status_code == 400, (body, response.body)
        assert json.loads(response.body)["error"] in {"malformed_request", "bad_request"}


def test_a_deeply_nested_body_is_400(service: AutoIdService, client: Client) -> None:
    response = proxy_post("/auto-id", "[" * 5000)
    assert response.status_code == 400


def test_an_oversized_body_is_413(service: AutoIdService, enrolled: Enrollment, client: Client) -> None:
    padded = {"jwe": seal_to(current_jwk(service), genuine(enrolled, padding="x" * 20_000))}
    for body in (padded, {"jwe": "a" * (autoid.MAX_BODY_BYTES + 1)}):
        response = post(client, body)
        assert response.status_code == 413
        assert json.loads(response.body)["error"] == "payload_too_large"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=25,
)
PART = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ ", max_size=60)


@FUZZ
@given(
    body=JSON | st.dictionaries(st.just("jwe"), JSON | st.text(), min_size=1) | st.builds(lambda t: {"jwe": t}, PART),
    header=st.sampled_from(["", "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0", "e30", "bnVsbA"]),
    tail=st.lists(PART, min_size=0, max_size=6),
)
def test_no_body_or_jwe_string_is_a_5xx(
    service: AutoIdService, client: Client, body: Any, header: str, tail: list[str]
) -> None:
    for candidate in (body, {"jwe": ".".join([header, *tail])}):
        response = post(client, candidate)
        event(f"status {response.status_code}")
        assert response.status_code in {400, 401, 413}, (candidate, response.body)


@FUZZ
@given(
    field=st.sampled_from(["v", "client_id", "gen", "iat", "nonce", "intervals", "proof", "rk", "want", None]),
    value=JSON,
    raw=st.binary(max_size=300),
)
def test_no_plaintext_sealed_to_the_server_key_is_a_5xx(
    service: AutoIdService,
    almost: Callable[[], dict[str, Any]],
    client: Client,
    field: str | None,
    value: Any,
    raw: bytes,
) -> None:
    jwk = current_jwk(service)
    document = almost()
    if field is not None:
        document[field] = value
    for envelope in (seal_to(jwk, document), seal_raw(jwk, raw)):
        response = post(client, {"jwe": envelope})
        event(f"status {response.status_code}")
        assert response.status_code in {400, 401}, (document, raw, response.body)
        if response.status_code == 401:
            assert_refused(response)
