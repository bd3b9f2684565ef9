"""Session bearer tokens (HS256, kid = Secrets Manager version id): frozen clock, in-memory secret versions.

Hostile tokens are signed with the real key wherever that leaves the rule under test as the only reason to refuse,
and every refusal is asserted by the check its log line names (the caller only ever sees the one opaque 401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.aws.errors import AwsNotFound
from chalicelib.aws.secrets import CURRENT, PREVIOUS, SecretInfo, SecretVersion
from chalicelib.errors import InvalidToken
from chalicelib.jose import JWS_HEADERS, TokenCheck
from chalicelib.observability import SERVICE
from chalicelib.sessions.exceptions import InvalidKeyMaterial
from chalicelib.sessions.keys import KeySource, SessionKey, SessionKeyStore, decode_key, encode_key
from chalicelib.sessions.tokens import LEEWAY, MAX_TOKEN_BYTES, SESSION_AUDIENCE, SessionTokens, sign

T0 = 1_800_000_000
TTL = 420
REFRESH = 300
ISSUER = "https://issuer.example"
SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-session-keys-AbCdEf"
MIN_REFRESH = 5.0
STORE_TTL = 300


def window(store_ttl: int) -> int:
    # The previous key's life after the promotion: signing until caches expire, token life, refresh grace.
    return store_ttl + TTL + REFRESH + LEEWAY


DROP: Any = object()
OPAQUE_BODY = {"error": "invalid_token", "message": "The bearer token is missing, invalid or expired."}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSecrets:
    """The SecretStore methods SessionKeyStore uses, over AWSCURRENT/AWSPREVIOUS held in memory; calls counted."""

    def __init__(self, secret_id: str = SECRET_ID) -> None:
        self.secret_id = secret_id
        self.stages: dict[str, SecretVersion] = {}
        self.secrets: dict[str, bytes] = {}
        self.last_rotated_at: datetime | None = None
        self.calls: list[str] = []

    def rotate(self, at: float, *, promoted_at: float | None = None) -> str:
        """A new AWSCURRENT version created at ``at``; the old current becomes AWSPREVIOUS."""
        version_id, secret = str(uuid.uuid4()), os.urandom(32)
        if CURRENT in self.stages:
            self.stages[PREVIOUS] = replace(self.stages[CURRENT], stages=(PREVIOUS,))
        created = datetime.fromtimestamp(at, UTC)
        value = encode_key(secret)
        self.stages[CURRENT] = SecretVersion(self.secret_id, "session-keys", version_id, (CURRENT,), created, value)
        self.secrets[version_id] = secret
        self.last_rotated_at = datetime.fromtimestamp(at if promoted_at is None else promoted_at, UTC)
        return version_id

    def key(self, version_id: str) -> SessionKey:
        return SessionKey(version_id, CURRENT, 0.0, self.secrets[version_id])

    def get_value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> SecretVersion:
        self.calls.append(f"get_value:{stage}")
        assert secret_id == self.secret_id
        assert version_id is None
        try:
            return self.stages[stage or CURRENT]
        except KeyError:
            raise AwsNotFound("secretsmanager", "GetSecretValue", "ResourceNotFoundException") from None

    def describe(self, secret_id: str) -> SecretInfo:
        self.calls.append("describe")
        assert secret_id == self.secret_id
        versions = {v.version_id: v.stages for v in self.stages.values()}
        return SecretInfo(self.secret_id, "session-keys", versions, True, None, "", self.last_rotated_at)

    @property
    def get_calls(self) -> int:
        return sum(call.startswith("get_value") for call in self.calls)


def make_store(backend: FakeSecrets, clock: Clock, ttl: float = STORE_TTL) -> SessionKeyStore:
    fake: Any = backend  # duck-typed SecretStore
    return SessionKeyStore(fake, backend.secret_id, ttl=ttl, min_refresh_interval=MIN_REFRESH, clock=clock)


class SpyKeys:
    """The KeySource the verifier sees, recording every lookup by kid."""

    def __init__(self, inner: KeySource) -> None:
        self.inner = inner
        self.finds: list[str] = []
        self.signing_lag = inner.signing_lag

    def current(self) -> SessionKey:
        return self.inner.current()

    def find(self, kid: str) -> SessionKey | None:
        self.finds.append(kid)
        return self.inner.find(kid)


def make_tokens(keys: KeySource, clock: Clock) -> SessionTokens:
    return SessionTokens(keys, issuer=ISSUER, token_ttl=TTL, refresh_window=REFRESH, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def backend() -> FakeSecrets:
    fake = FakeSecrets()
    fake.rotate(T0 - 86_400)
    return fake


@pytest.fixture
def key_a(backend: FakeSecrets) -> str:
    return backend.stages[CURRENT].version_id


@pytest.fixture
def keys(backend: FakeSecrets, clock: Clock) -> SpyKeys:
    return SpyKeys(make_store(backend, clock))


@pytest.fixture
def tokens(keys: SpyKeys, clock: Clock) -> SessionTokens:
    return make_tokens(keys, clock)


def claims(now: int = T0, **overrides: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "sub": "user-1", "aud": SESSION_AUDIENCE, "iat": now, "exp": now + TTL, "sid": "sess-1"}
    base = {**base, "sess_exp": now + 3600, "jti": secrets.token_urlsafe(16), **overrides}
    return {k: v for k, v in base.items() if v is not DROP}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def forge(header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS built by hand, so any header can be sent (``signer=None``: empty signature)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b64(signer(signing_input.encode("ascii"))) if signer else ""
    return f"{signing_input}.{signature}"


class KeptRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def assert_rejected(tokens: SessionTokens, token: Any, *, check: TokenCheck, expired_grace: int = 0) -> str:
    """Exactly InvalidToken, 401, with the one fixed body and no chained cause that could leak a reason; and one
    log line naming ``check`` as the check that refused (never the token). Returns the logged reason."""
    kept, log = KeptRecords(), logging.getLogger(SERVICE)
    log.addHandler(kept)
    try:
        with pytest.raises(InvalidToken) as info:
            tokens.verify(token, expired_grace=expired_grace)
    finally:
        log.removeHandler(kept)
    error = info.value
    assert type(error) is InvalidToken
    assert (error.status, error.code, error.body()) == (401, "invalid_token", OPAQUE_BODY)
    assert error.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert error.__cause__ is None
    assert error.__suppress_context__
    (logged,) = [record for record in kept.records if record.getMessage() == "session token rejected"]
    assert getattr(logged, "check", None) == check, getattr(logged, "reason", None)
    if isinstance(token, str) and len(token) > 40:
        assert token not in repr(vars(logged))
    return str(getattr(logged, "reason", ""))


# --- the current key ------------------------------------------------------------------------------------------


def test_fresh_token_verifies_with_its_claims_and_header(tokens: SessionTokens, key_a: str) -> None:
    token, exp, _ = tokens.issue("user-1", "sess-1", T0 + 3600, role="admin", tags=["a", 1], iss="evil", aud="evil")
    assert exp == T0 + TTL
    verified = tokens.verify(token)
    assert (verified.subject, verified.session_id) == ("user-1", "sess-1")
    assert (verified.issued_at, verified.expires_at, verified.session_ends_at) == (T0, T0 + TTL, T0 + 3600)
    assert verified.extra == {"role": "admin", "tags": ["a", 1]}  # extra claims never override reserved ones
    header, payload, _ = token.split(".")
    assert unb64(header) == {"alg": "HS256", "typ": "JWT", "kid": key_a}
    assert unb64(payload)["iss"] == ISSUER
    assert unb64(payload)["aud"] == SESSION_AUDIENCE


def test_exp_never_outlives_the_session(tokens: SessionTokens, clock: Clock) -> None:
    token, exp, _ = tokens.issue("user-1", "sess-1", T0 + 100)
    assert exp == T0 + 100
    clock.now = T0 + 99
    assert tokens.verify(token).expires_at == T0 + 100
    clock.now = T0 + 100
    assert_rejected(tokens, token, check="sess_exp", expired_grace=REFRESH)


# --- the previous key and rotation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("store_ttl", "created_before_promotion"), [(STORE_TTL, 0), (STORE_TTL, 3600), (60, 0)])
@pytest.mark.parametrize(("after", "accepted"), [(0, True), (-1, True), (0.5, False), (1, False)])
def test_previous_key_only_inside_its_window(
    backend: FakeSecrets, key_a: str, store_ttl: int, created_before_promotion: int, after: float, accepted: bool
) -> None:
    """``after`` is relative to the window's end (0 = the last accepted instant); the window runs from the
    promotion (LastRotatedDate), not the version's creation, and spans the verifier store's own cache life."""
    long_lived = sign(backend.key(key_a), claims(exp=T0 + 10**6, sess_exp=T0 + 10**6))
    key_b = backend.rotate(T0 - created_before_promotion, promoted_at=T0)
    clock = Clock(T0 + window(store_ttl) + after)
    tokens = make_tokens(make_store(backend, clock, ttl=store_ttl), clock)
    assert tokens.verify(sign(backend.key(key_b), claims(int(clock.now)))).subject == "user-1"
    if accepted:
        assert tokens.verify(long_lived).expires_at == T0 + 10**6
    else:
        assert assert_rejected(tokens, long_lived, check="key", expired_grace=REFRESH) == "previous key retired"


def test_key_rotated_out_twice_is_refused(backend: FakeSecrets, clock: Clock, key_a: str) -> None:
    token = sign(backend.key(key_a), claims())
    backend.rotate(T0)
    backend.rotate(T0)
    assert_rejected(make_tokens(make_store(backend, clock), clock), token, check="kid")


def test_previous_key_honoured_for_the_whole_refresh_grace_of_its_last_token(backend: FakeSecrets, key_a: str) -> None:
    clock = Clock(T0 - 0.5)
    signer = make_store(backend, clock)
    signer.current()  # this container caches key A just before the rotation...
    backend.rotate(T0)
    clock.now = T0 - 0.5 + STORE_TTL  # ...and, its cache still fresh, signs with A
    token, exp, _ = make_tokens(signer, clock).issue("user-1", "sess-1", T0 + 86_400)
    assert unb64(token.split(".")[0])["kid"] == key_a
    clock.now = exp + LEEWAY + REFRESH  # the last instant a refresh accepts this exp
    assert make_tokens(make_store(backend, clock), clock).verify(token, expired_grace=REFRESH).expires_at == exp


def test_unknown_kid_triggers_one_refresh(
    backend: FakeSecrets, clock: Clock, keys: SpyKeys, tokens: SessionTokens
) -> None:
    keys.current()  # keys cached before the rotation
    key_b = backend.rotate(T0)
    token, _, _ = make_tokens(make_store(backend, clock), clock).issue("user-1", "sess-1", T0 + 3600)
    assert unb64(token.split(".")[0])["kid"] == key_b
    before = backend.get_calls
    assert tokens.verify(token).subject == "user-1"
    assert backend.get_calls == before + 2  # one re-read: AWSCURRENT and AWSPREVIOUS
    calls = len(backend.calls)
    tokens.verify(token)
    assert len(backend.calls) == calls  # now cached


def test_refresh_for_unknown_kids_is_rate_limited(backend: FakeSecrets, clock: Clock, tokens: SessionTokens) -> None:
    def made_up() -> str:
        return sign(SessionKey(str(uuid.uuid4()), CURRENT, 0.0, os.urandom(32)), claims())

    tokens.verify(tokens.issue("user-1", "sess-1", T0 + 3600)[0])
    calls = len(backend.calls)
    assert_rejected(tokens, made_up(), check="kid")
    assert len(backend.calls) > calls  # the first unknown kid re-reads the secret
    calls = len(backend.calls)
    clock.now = T0 + MIN_REFRESH - 1
    assert_rejected(tokens, made_up(), check="kid")
    assert len(backend.calls) == calls  # a second one inside the interval: no backend call
    clock.now = T0 + MIN_REFRESH
    assert_rejected(tokens, made_up(), check="kid")
    assert len(backend.calls) > calls  # after the interval, one more re-read


# --- time rules -----------------------------------------------------------------------------------------------


EXPIRY_CASES = [(-TTL, 0, True), (LEEWAY, 0, True), (LEEWAY + 1, 0, False)]
EXPIRY_CASES += [(REFRESH + LEEWAY, REFRESH, True), (REFRESH + LEEWAY + 1, REFRESH, False), (LEEWAY + 1, REFRESH, True)]


@pytest.mark.parametrize(("past_exp", "grace", "accepted"), EXPIRY_CASES)
def test_expiry_leeway_and_refresh_grace(
    tokens: SessionTokens, clock: Clock, past_exp: int, grace: int, accepted: bool
) -> None:
    token, exp, _ = tokens.issue("user-1", "sess-1", T0 + 86_400)
    clock.now = exp + past_exp
    if accepted:
        assert tokens.verify(token, expired_grace=grace).expires_at == exp
    else:
        assert_rejected(tokens, token, check="exp", expired_grace=grace)


@pytest.mark.parametrize("grace", [0, REFRESH, 10**6])
def test_absolute_session_end_wins_over_any_grace(
    tokens: SessionTokens, backend: FakeSecrets, clock: Clock, key_a: str, grace: int
) -> None:
    token = sign(backend.key(key_a), claims(exp=T0 + 10**6, sess_exp=T0 + 100))
    clock.now = T0 + 99.9
    assert tokens.verify(token, expired_grace=grace).session_ends_at == T0 + 100
    clock.now = T0 + 100
    assert_rejected(tokens, token, check="sess_exp", expired_grace=grace)


def test_iat_in_the_future_beyond_leeway(tokens: SessionTokens, backend: FakeSecrets, key_a: str) -> None:
    assert tokens.verify(sign(backend.key(key_a), claims(iat=T0 + LEEWAY))).issued_at == T0 + LEEWAY
    assert_rejected(tokens, sign(backend.key(key_a), claims(iat=T0 + LEEWAY + 1)), check="iat")


# --- claims ---------------------------------------------------------------------------------------------------


BAD_CLAIMS = [
    *[("aud", v) for v in ("sts.amazonaws.com", [SESSION_AUDIENCE], None, DROP)],
    *[("iss", v) for v in ("https://evil.example", ISSUER + "/", None, DROP)],
    *[(name, v) for name in ("sub", "sid") for v in (42, None, DROP)],
    *[(name, v) for name in ("iat", "exp", "sess_exp") for v in (float(T0 + 1), str(T0 + 1), True, None, DROP)],
]


@pytest.mark.parametrize(
    ("name", "value"), BAD_CLAIMS, ids=[f"{n}={'DROP' if v is DROP else repr(v)}" for n, v in BAD_CLAIMS]
)
def test_bad_claims_are_refused(
    tokens: SessionTokens, backend: FakeSecrets, key_a: str, name: TokenCheck, value: Any
) -> None:
    assert_rejected(tokens, sign(backend.key(key_a), claims(**{name: value})), check=name)


# --- headers --------------------------------------------------------------------------------------------------


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNERS: dict[str, Callable[[bytes], bytes]] = {
    "rsa": lambda data: RSA_KEY.sign(data, padding.PKCS1v15(), hashes.SHA256()),
    "ec": lambda data: EC_KEY.sign(data, ec.ECDSA(hashes.SHA256())),
}
FORBIDDEN: list[tuple[str, Any]] = [("jku", "https://e.example/k"), ("x5u", "https://e.example/c"), ("x5c", ["MII"])]
FORBIDDEN += [("jwk", {"kty": "oct", "k": "AA"}), ("crit", ["exp"]), ("b64", False), ("zip", "DEF"), ("enc", "A128GCM")]
HOSTILE_HEADERS: list[tuple[dict[str, Any], str | None, TokenCheck]] = [
    ({"alg": "none", "typ": "JWT"}, None, "alg"),  # unsigned
    ({"alg": "RS256", "typ": "JWT"}, "rsa", "alg"),
    ({"alg": "ES256", "typ": "JWT"}, "ec", "alg"),
    ({"typ": "JWT"}, "hmac", "alg"),
    ({"alg": "HS256"}, "hmac", "typ"),
    # HS/RS confusion and friends: a valid HMAC over the token with the real key, under another alg.
    *[({"alg": alg, "typ": "JWT"}, "hmac", "alg") for alg in ("none", "RS256", "ES256", "HS512", "hs256", None)],
    *[({"alg": "HS256", "typ": typ}, "hmac", "typ") for typ in ("JOSE", "at+jwt", None)],
    *[({"alg": "HS256", "typ": "JWT", name: value}, "hmac", "header") for name, value in FORBIDDEN],
]


@pytest.mark.parametrize(
    ("header", "signer", "check"), HOSTILE_HEADERS, ids=[f"{h}-{s}" for h, s, _ in HOSTILE_HEADERS]
)
def test_hostile_headers_are_refused_before_any_key_is_touched(
    tokens: SessionTokens,
    keys: SpyKeys,
    backend: FakeSecrets,
    key_a: str,
    header: dict[str, Any],
    signer: str | None,
    check: TokenCheck,
) -> None:
    sign_with = hmac_signer(backend.secrets[key_a]) if signer == "hmac" else SIGNERS.get(signer or "")
    assert_rejected(tokens, forge({**header, "kid": key_a}, claims(), sign_with), check=check)
    assert keys.finds == []


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=24).filter(lambda name: name not in JWS_HEADERS),
    value=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=16), st.lists(st.integers(), max_size=3)),
)
def test_any_header_member_outside_alg_typ_kid_is_refused_before_any_key_is_touched(name: str, value: Any) -> None:
    """An allow-list, not a deny-list: a member nobody has invented yet is refused like ``jku``, though the token
    is genuinely signed with the current key."""
    backend, clock = FakeSecrets(), Clock(T0)
    key_a = backend.rotate(T0 - 86_400)
    keys = SpyKeys(make_store(backend, clock))
    header = {"alg": "HS256", "typ": "JWT", "kid": key_a, name: value}
    reason = assert_rejected(
        make_tokens(keys, clock), forge(header, claims(), hmac_signer(backend.secrets[key_a])), check="header"
    )
    assert reason == "forbidden header"
    assert keys.finds == []


def test_the_header_allow_list_is_exactly_what_sessions_write(tokens: SessionTokens) -> None:
    token, _, _ = tokens.issue("user-1", "sess-1", T0 + 3600)
    assert set(unb64(token.split(".")[0])) == JWS_HEADERS


# The longest kid a token under MAX_TOKEN_BYTES can carry is ~2.8 KB: a longer one is refused by the size check first.
BAD_KIDS: list[Any] = ["../../etc/passwd", "a" * 2048, "a" * 65, "a" * 31, "", DROP, 42, None, ["x" * 36]]
BAD_KIDS.append(str(uuid.uuid4()) + "\n")
BAD_KID_IDS = ["path", "2KB", "65 chars", "31 chars", "empty", "missing", "int", "null", "list", "uuid+newline"]


@pytest.mark.parametrize("kid", BAD_KIDS, ids=BAD_KID_IDS)
def test_malformed_kid_is_refused_without_asking_the_store(
    tokens: SessionTokens, keys: SpyKeys, backend: FakeSecrets, key_a: str, kid: Any
) -> None:
    keys.current()
    calls = len(backend.calls)
    header = {"alg": "HS256", "typ": "JWT"} if kid is DROP else {"alg": "HS256", "typ": "JWT", "kid": kid}
    assert_rejected(tokens, forge(header, claims(), hmac_signer(backend.secrets[key_a])), check="kid")
    assert len(backend.calls) == calls
    assert keys.finds == []


def test_well_formed_unknown_kid_is_refused(tokens: SessionTokens, backend: FakeSecrets, key_a: str) -> None:
    signer = hmac_signer(backend.secrets[key_a])
    assert tokens.verify(forge({"alg": "HS256", "typ": "JWT", "kid": key_a}, claims(), signer)).subject == "user-1"
    unknown = forge({"alg": "HS256", "typ": "JWT", "kid": str(uuid.uuid4())}, claims(), signer)
    assert assert_rejected(tokens, unknown, check="kid") == "unknown kid"


def test_key_is_chosen_by_kid_never_by_trying_keys(backend: FakeSecrets, clock: Clock, key_a: str) -> None:
    key_b = backend.rotate(T0)
    tokens = make_tokens(make_store(backend, clock), clock)
    forged = SessionKey(key_b, CURRENT, 0.0, backend.secrets[key_a])  # A's secret under B's kid
    assert_rejected(tokens, sign(forged, claims()), check="signature")
    assert_rejected(tokens, sign(SessionKey(key_b, CURRENT, 0.0, os.urandom(32)), claims()), check="signature")


# --- shape and integrity --------------------------------------------------------------------------------------


def test_tampered_payload_or_signature(tokens: SessionTokens) -> None:
    token, _, _ = tokens.issue("user-1", "sess-1", T0 + 3600)
    h, p, sig = token.split(".")
    evil = b64(json.dumps({**unb64(p), "sub": "admin"}).encode())
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    for bad in (f"{h}.{evil}.{sig}", f"{h}.{p}.{flipped}", f"{h}.{p}.{sig[:-2]}", f"{h}.{p}.", f"{h}.{p}.{sig}="):
        assert_rejected(tokens, bad, check="signature")
    for bad in (f"{token}\n", f"{token} "):
        assert_rejected(tokens, bad, check="signature")
    for bad in (f" {token}", token.replace(".", ". ", 1)):  # a header, then a payload, that does not decode
        assert_rejected(tokens, bad, check="shape")
    assert tokens.verify(token).subject == "user-1"


def test_malformed_shapes_never_reach_the_keys(tokens: SessionTokens, keys: SpyKeys) -> None:
    token, _, _ = tokens.issue("user-1", "sess-1", T0 + 3600)
    h, p, sig = token.split(".")
    for bad in (f"{token}.{sig}", f"{h}.{p}", f"{h}..{p}.{sig}", "", "..", "a.b", f"{h}=.{p}.{sig}", "é" + token):
        assert_rejected(tokens, bad, check="shape")
    for not_an_object in (b"[]", b"null", b'"JWT"', b"1", b"{"):
        assert_rejected(tokens, f"{b64(not_an_object)}.{p}.{sig}", check="shape")
    assert keys.finds == []


def test_size_limit_is_exact(tokens: SessionTokens, backend: FakeSecrets, key_a: str) -> None:
    largest = ""
    for size in range(2700, 3200):
        token = sign(backend.key(key_a), claims(pad="x" * size))
        if len(token) > MAX_TOKEN_BYTES:
            break
        largest = token
    assert MAX_TOKEN_BYTES - 2 <= len(largest) <= MAX_TOKEN_BYTES
    assert tokens.verify(largest).subject == "user-1"
    assert assert_rejected(tokens, token, check="shape") == "shape"


@pytest.mark.parametrize("kind", ["none", "int", "bytes", "bytearray", "list"])
def test_non_string_token_is_refused(tokens: SessionTokens, keys: SpyKeys, kind: str) -> None:
    token, _, _ = tokens.issue("user-1", "sess-1", T0 + 3600)
    values = {"none": None, "int": 42, "bytes": token.encode(), "bytearray": bytearray(token.encode()), "list": [token]}
    assert_rejected(tokens, values[kind], check="shape")
    assert keys.finds == []


# --- key material ---------------------------------------------------------------------------------------------


def test_decode_key_round_trip() -> None:
    secret = os.urandom(32)
    assert decode_key(encode_key(secret)) == secret
    assert decode_key(encode_key(secret).encode()) == secret


BAD_KEYS: list[str | bytes] = [encode_key(os.urandom(31)), encode_key(b""), "not json", b"\xff\xfe", '{"v": 1}']
BAD_KEYS += [json.dumps(value) for value in ({"key": None}, {"key": 5}, [1, 2], "key", {"key": "!!!!"})]
BAD_KEY_IDS = ["31 bytes", "empty", "not json", "not utf-8", "no key", "key null", "key int", "list", "str", "not b64"]


@pytest.mark.parametrize("value", BAD_KEYS, ids=BAD_KEY_IDS)
def test_decode_key_refuses_bad_material(value: str | bytes) -> None:
    with pytest.raises(InvalidKeyMaterial):
        decode_key(value)


@pytest.mark.parametrize("claim", ["sub", "sid"])
def test_empty_subject_or_session_id_is_refused(
    tokens: SessionTokens, keys: SpyKeys, clock: Clock, claim: TokenCheck
) -> None:
    now = int(clock())
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SESSION_AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "sid": "s-1",
        "sess_exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        claim: "",
    }
    assert assert_rejected(tokens, sign(keys.current(), claims), check=claim) == "empty sub or sid"


# --- jti ------------------------------------------------------------------------------------------------------


def test_every_token_has_its_own_jti_even_within_one_second(tokens: SessionTokens) -> None:
    issued = [tokens.issue("user-1", "sess-1", T0 + 3600) for _ in range(500)]  # the clock never moves
    assert len({i.token for i in issued}) == len({i.token_id for i in issued}) == 500
    for token, _, token_id in issued[:5]:
        assert unb64(token.split(".")[1])["jti"] == token_id
        assert len(token_id) == 22  # 128 bits, base64url
        assert tokens.verify(token).token_id == token_id
        assert "jti" not in tokens.verify(token).extra


def test_a_caller_cannot_choose_the_jti(tokens: SessionTokens) -> None:
    token, _, token_id = tokens.issue("user-1", "sess-1", T0 + 3600, jti="chosen-by-the-caller-xxxxx")
    assert token_id != "chosen-by-the-caller-xxxxx"
    assert tokens.verify(token).token_id == token_id


@pytest.mark.parametrize("jti", [DROP, "", "short", "x" * 65, "has space in it here 123", 42, None, ["a" * 22]])
def test_a_token_without_a_well_formed_jti_is_refused(
    tokens: SessionTokens, backend: FakeSecrets, key_a: str, jti: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert_rejected(tokens, sign(backend.key(key_a), claims(jti=jti)), check="jti")
    assert reasons(caplog) == ["jti missing or malformed"]


# --- two key sets, each bound to its subjects -------------------------------------------------------------------

AUTOID_SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-autoid-session-keys-AbCdEf"


class FakeClients:
    """The AutoIdClients check: refusals by client id, every question recorded."""

    def __init__(self, refusals: dict[str, str] | None = None) -> None:
        self.refusals = refusals or {}
        self.asked: list[tuple[str, int]] = []

    def refusal(self, client_id: str, generation: int) -> str | None:
        self.asked.append((client_id, generation))
        return self.refusals.get(client_id)


@pytest.fixture
def autoid_backend() -> FakeSecrets:
    fake = FakeSecrets(AUTOID_SECRET_ID)
    fake.rotate(T0 - 86_400)
    return fake


@pytest.fixture
def autoid_key(autoid_backend: FakeSecrets) -> str:
    return autoid_backend.stages[CURRENT].version_id


@pytest.fixture
def clients() -> FakeClients:
    return FakeClients()


@pytest.fixture
def both(backend: FakeSecrets, autoid_backend: FakeSecrets, clock: Clock, clients: FakeClients) -> SessionTokens:
    return SessionTokens(
        make_store(backend, clock),
        autoid_keys=make_store(autoid_backend, clock),
        autoid_clients=clients,
        issuer=ISSUER,
        token_ttl=TTL,
        refresh_window=REFRESH,
        clock=clock,
    )


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(getattr(r, "reason", "")) for r in caplog.records if r.getMessage() == "session token rejected"]


def autoid_claims(client: str = "worker-1", **overrides: Any) -> dict[str, Any]:
    return claims(**{"sub": f"autoid:{client}", "autoid_client": client, "autoid_gen": 3, **overrides})


def test_each_key_set_signs_its_own_subjects_only(
    both: SessionTokens, key_a: str, autoid_key: str, clients: FakeClients
) -> None:
    main, _, _ = both.issue("user-1", "sess-1", T0 + 3600, aws_arn="arn:aws:iam::123456789012:role/app")
    auto, _, _ = both.issue("autoid:worker-1", "sess-2", T0 + 3600, autoid_client="worker-1", autoid_gen=3)
    assert unb64(main.split(".")[0])["kid"] == key_a
    assert unb64(auto.split(".")[0])["kid"] == autoid_key
    assert both.verify(main).subject == "user-1"
    assert clients.asked == []  # a main-key session never asks about auto-id clients
    verified = both.verify(auto)
    assert (verified.subject, verified.extra) == ("autoid:worker-1", {"autoid_client": "worker-1", "autoid_gen": 3})
    assert clients.asked == [("worker-1", 3)]


MISBOUND = [
    ("autoid:worker-1", {}),  # no auto-id claims
    ("autoid:worker-1", {"autoid_client": "worker-1"}),  # no generation
    ("autoid:worker-1", {"autoid_client": "worker-2", "autoid_gen": 1}),  # another client's subject
    ("autoid:worker-1", {"autoid_client": "worker-1", "autoid_gen": "1"}),
    ("autoid:worker-1", {"autoid_client": "worker-1", "autoid_gen": True}),
    ("autoid:worker-1", {"autoid_client": "worker-1", "autoid_gen": 0}),
    ("user-1", {"autoid_client": "worker-1", "autoid_gen": 1}),  # auto-id claims on another subject
    ("user-1", {"autoid_gen": 1}),
]


@pytest.mark.parametrize(("subject", "extra"), MISBOUND)
def test_issuing_claims_that_break_the_binding_is_a_programming_error(
    both: SessionTokens, subject: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="key used"):
        both.issue(subject, "sess-1", T0 + 3600, **extra)


def test_an_issuer_without_a_key_set_cannot_sign_its_subjects(
    backend: FakeSecrets, autoid_backend: FakeSecrets, clock: Clock
) -> None:
    autoid_only = SessionTokens(
        None, autoid_keys=make_store(autoid_backend, clock), issuer=ISSUER, token_ttl=TTL, refresh_window=0
    )
    with pytest.raises(ValueError, match="no key for non-auto-id sessions"):
        autoid_only.issue("user-1", "sess-1", T0 + 3600)
    assert backend.calls == []  # the main key was never asked for
    main_only = make_tokens(make_store(backend, clock), clock)
    with pytest.raises(ValueError, match="no key for auto-id sessions"):
        main_only.issue("autoid:worker-1", "sess-1", T0 + 3600, autoid_client="worker-1", autoid_gen=1)


FORGED = [
    # (signed with the auto-id key?, claims, the reason logged)
    (False, autoid_claims(), "session key used for an auto-id subject or claim"),
    (False, claims(autoid_client="worker-1"), "session key used for an auto-id subject or claim"),
    (False, claims(sub="autoid:worker-1"), "session key used for an auto-id subject or claim"),
    (True, claims(), "auto-id session key used for a subject other than autoid:<autoid_client>"),
    (True, claims(sub="admin", autoid_client="admin", autoid_gen=1), "auto-id session key used for a subject other"),
    (True, autoid_claims(sub="autoid:worker-2"), "auto-id session key used for a subject other"),
    (True, autoid_claims(autoid_client=""), "auto-id session key used for a subject other"),
    (True, autoid_claims(autoid_gen=DROP), "auto-id session key used without a whole autoid_gen"),
    (True, autoid_claims(autoid_gen=3.0), "auto-id session key used without a whole autoid_gen"),
]


@pytest.mark.parametrize(("autoid_signed", "payload", "reason"), FORGED)
def test_tokens_signed_across_the_binding_are_refused_with_the_reason_logged(
    both: SessionTokens,
    backend: FakeSecrets,
    autoid_backend: FakeSecrets,
    key_a: str,
    autoid_key: str,
    clients: FakeClients,
    caplog: pytest.LogCaptureFixture,
    autoid_signed: bool,
    payload: dict[str, Any],
    reason: str,
) -> None:
    """Validly signed with a real key (the forger holds one key, say the auto-id function's): the binding is the
    only reason left to refuse."""
    caplog.set_level(logging.INFO)
    key = autoid_backend.key(autoid_key) if autoid_signed else backend.key(key_a)
    assert_rejected(both, sign(key, payload), check="binding")
    (logged,) = reasons(caplog)
    assert logged.startswith(reason)
    assert clients.asked == []  # refused before any registry lookup


def test_the_autoid_key_under_the_main_keys_kid_is_refused(
    both: SessionTokens, autoid_backend: FakeSecrets, key_a: str, autoid_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    forged = SessionKey(key_a, CURRENT, 0.0, autoid_backend.secrets[autoid_key])  # kid chooses the key: A's
    assert_rejected(both, sign(forged, claims()), check="signature")
    assert reasons(caplog) == ["signature"]


def test_an_autoid_session_ends_when_its_client_check_refuses(
    both: SessionTokens, clients: FakeClients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token, _, _ = both.issue("autoid:worker-1", "sess-1", T0 + 3600, autoid_client="worker-1", autoid_gen=3)
    assert both.verify(token).subject == "autoid:worker-1"
    clients.refusals["worker-1"] = "auto-id client revoked"
    assert_rejected(both, token, check="client", expired_grace=REFRESH)
    assert reasons(caplog) == ["auto-id client revoked"]
    assert clients.asked == [("worker-1", 3), ("worker-1", 3)]


def test_an_autoid_session_is_refused_where_no_client_check_is_wired(
    backend: FakeSecrets, autoid_backend: FakeSecrets, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    unchecked = SessionTokens(
        make_store(backend, clock),
        autoid_keys=make_store(autoid_backend, clock),
        issuer=ISSUER,
        token_ttl=TTL,
        refresh_window=REFRESH,
        clock=clock,
    )
    token, _, _ = unchecked.issue("autoid:worker-1", "sess-1", T0 + 3600, autoid_client="worker-1", autoid_gen=1)
    assert_rejected(unchecked, token, check="client")
    assert reasons(caplog) == ["auto-id session but no auto-id client check here"]


def test_one_key_sets_tokens_never_make_the_other_reread_its_secret(
    both: SessionTokens, backend: FakeSecrets, autoid_backend: FakeSecrets
) -> None:
    main, _, _ = both.issue("user-1", "sess-1", T0 + 3600)
    auto, _, _ = both.issue("autoid:worker-1", "sess-2", T0 + 3600, autoid_client="worker-1", autoid_gen=1)
    main_calls, autoid_calls = len(backend.calls), len(autoid_backend.calls)
    for _ in range(3):
        both.verify(auto)
        both.verify(main)
    assert (len(backend.calls), len(autoid_backend.calls)) == (main_calls, autoid_calls)


def test_autoid_sessions_start_without_ever_reading_the_main_session_key(
    backend: FakeSecrets, autoid_backend: FakeSecrets, clock: Clock, clients: FakeClients, both: SessionTokens
) -> None:
    """The auto-id function's starter is given the secret store and reads only the auto-id session key."""
    from chalicelib.config import Env, Settings
    from chalicelib.sessions.issuing import AutoIdSessions
    from tests.unit.test_config import VALID

    settings = Settings.from_env(
        {
            **VALID,
            Env.ISSUER: ISSUER,
            Env.SESSION_KEY_SECRET_ARN: SECRET_ID,
            Env.AUTOID_SESSION_KEY_SECRET_ARN: AUTOID_SECRET_ID,
        }
    )
    read: list[str] = []

    class Spy:
        def get_value(self, secret_id: str, **kwargs: Any) -> SecretVersion:
            read.append(secret_id)
            return autoid_backend.get_value(secret_id, **kwargs)

        def describe(self, secret_id: str) -> SecretInfo:
            read.append(secret_id)
            return autoid_backend.describe(secret_id)

    spy: Any = Spy()
    started = AutoIdSessions(settings, spy, clock=clock).start("worker-1", 2)
    assert set(read) == {AUTOID_SECRET_ID}
    verified = both.verify(started["token"])
    assert (verified.subject, verified.extra) == ("autoid:worker-1", {"autoid_client": "worker-1", "autoid_gen": 2})
