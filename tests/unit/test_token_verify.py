"""Hostile tokens against TokenVerifier: every forged, confused, tampered or stale token is rejected, by the check
that names its flaw (``TokenRejected.check``), not merely by some check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.util import urlsafe_b64decode

from chalicelib.jose import JWS_HEADERS, TokenCheck
from chalicelib.tokens.algorithms import ALGORITHMS, public_jwk
from chalicelib.tokens.exceptions import TokenRejected
from chalicelib.tokens.keyring import signing_key
from chalicelib.tokens.verify import MAX_TOKEN_BYTES, TokenVerifier

FIXED = 1_700_000_000
LEEWAY = 30
ISSUER = "https://issuer.example"
AUDIENCE = "sts.amazonaws.com"
DROP: Any = object()  # an override that removes the member

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_KEY_2 = ec.generate_private_key(ec.SECP256R1())
ROGUE_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not in the JWKS
ROGUE_EC = ec.generate_private_key(ec.SECP256R1())


def der(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


RSA_JWK = public_jwk(der(RSA_KEY), ALGORITHMS["RS256"])
RSA_JWK_2 = public_jwk(der(RSA_KEY_2), ALGORITHMS["RS256"])
EC_JWK = public_jwk(der(EC_KEY), ALGORITHMS["ES256"])
EC_JWK_2 = public_jwk(der(EC_KEY_2), ALGORITHMS["ES256"])
JWKS = {"keys": [RSA_JWK, RSA_JWK_2, EC_JWK, EC_JWK_2]}
KIDS = {"RS256": RSA_JWK["kid"], "ES256": EC_JWK["kid"]}
SIGNERS: dict[str, Any] = {"RS256": RSA_KEY, "ES256": EC_KEY}
ROGUE_KID = RSAKey.import_key(der(ROGUE_RSA)).thumbprint()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def sign(alg: Any, data: bytes, key: Any) -> bytes:
    if isinstance(key, bytes):  # an HMAC secret
        digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg, hashlib.sha256)
        return hmac.new(key, data, digest).digest()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "PS256":
        return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def mint(header: Any, claims: Any, private_key: Any) -> str:
    """A compact JWS with exactly this header, so any header can be forged."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    alg = header.get("alg") if isinstance(header, dict) else None
    return f"{signing_input}.{b64(sign(alg, signing_input.encode(), private_key))}"


def apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    return {k: v for k, v in merged.items() if v is not DROP}


def make_claims(**overrides: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "sub": "arn:aws:iam::123456789012:role/app", "aud": AUDIENCE, "iat": FIXED, "nbf": FIXED}
    return apply({**base, "exp": FIXED + 900, "jti": "jti-1", "aws_account": "123456789012"}, overrides)


def make_header(alg: str = "RS256", **overrides: Any) -> dict[str, Any]:
    return apply({"alg": alg, "typ": "JWT", "kid": KIDS.get(alg, KIDS["RS256"])}, overrides)


def token(alg: str = "RS256", *, header: dict[str, Any] | None = None, key: Any = None, **claims: Any) -> str:
    return mint(make_header(alg, **(header or {})), make_claims(**claims), key or SIGNERS[alg])


def verifier(jwks: dict[str, Any] | None = None, **options: Any) -> TokenVerifier:
    return TokenVerifier(JWKS if jwks is None else jwks, issuer=ISSUER, now=lambda: FIXED, **options)


def rejected(value: Any, *, check: TokenCheck, v: TokenVerifier | None = None, audience: str | None = None) -> str:
    """Refused by ``check``, and no other: a token refused by an earlier check never proves the rule under test."""
    with pytest.raises(TokenRejected) as info:
        (v or verifier()).verify(value, audience=audience)
    assert info.value.check == check, info.value.reason
    assert isinstance(info.value.reason, str)
    assert info.value.reason
    return info.value.reason


# --- baseline -------------------------------------------------------------------------------------------------


def stable_ids(value: Any) -> str:
    """A value's repr as its test id, with every kid drawn at import replaced by its key's name: xdist workers must
    collect the same ids."""
    text = re.sub(r" at 0x[0-9a-f]+", "", repr(value))  # an object()'s address differs per process
    for name, kid in KIDS.items():
        text = text.replace(kid, f"<kid {name}>")
    return text


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_valid_token_verifies(alg: str) -> None:
    claims = verifier().verify(token(alg), audience=AUDIENCE)
    assert claims == make_claims()
    assert verifier(algorithms=(alg,), audiences=(AUDIENCE,)).verify(token(alg)) == make_claims()


@pytest.mark.parametrize(("alg", "key"), [("RS256", RSA_KEY), ("ES256", EC_KEY)])
def test_token_serialized_by_joserfc_verifies(alg: str, key: Any) -> None:
    private = RSAKey.import_key(private_pem(key)) if alg == "RS256" else ECKey.import_key(private_pem(key))
    value = jws.serialize_compact(make_header(alg), json.dumps(make_claims()), private, algorithms=[alg])
    assert verifier().verify(value)["jti"] == "jti-1"


# --- alg ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", DROP, None, "", ["RS256"], "rs256", "RS256 "])
def test_none_missing_or_malformed_alg_rejected(alg: Any) -> None:
    unsigned = f"{segment(apply(make_header(), {'alg': alg}))}.{segment(make_claims())}."
    rejected(unsigned, check="alg")
    rejected(unsigned + b64(sign("RS256", unsigned[:-1].encode(), RSA_KEY)), check="alg")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize(
    "secret",
    [
        pem(RSA_KEY),
        pem(RSA_KEY).strip(),
        der(RSA_KEY),
        json.dumps(RSA_JWK).encode(),
        json.dumps(RSA_JWK, separators=(",", ":"), sort_keys=True).encode(),
        RSA_JWK["n"].encode(),
        pem(EC_KEY),
    ],
    ids=["pem", "pem-stripped", "der", "jwk-json", "jwk-json-compact", "modulus", "ec-pem"],
)
def test_hmac_with_public_key_as_secret_rejected(alg: str, secret: bytes) -> None:
    """Classic RS/HS confusion: the public key is no secret."""
    for kid in KIDS.values():
        rejected(mint(make_header(alg, kid=kid), make_claims(), secret), check="alg")


def test_hmac_signed_by_joserfc_rejected() -> None:
    value = jws.serialize_compact(make_header("HS256"), json.dumps(make_claims()), OctKey.import_key(b"s" * 32))
    rejected(value, check="alg")


# Ids name the algorithm and the kid's key type, never the kid itself: kids are drawn at import, and every xdist
# worker must collect the same ids.
@pytest.mark.parametrize(
    ("alg", "kid", "key", "check"),
    [
        ("RS256", KIDS["ES256"], EC_KEY, "key"),  # RS256 header, ES256 key and signature: the EC key is no RS256 key
        ("ES256", KIDS["RS256"], RSA_KEY, "key"),  # ES256 header, RSA key and signature
        ("RS256", KIDS["ES256"], RSA_KEY, "key"),
        ("ES256", KIDS["RS256"], EC_KEY, "key"),
        ("PS256", KIDS["RS256"], RSA_KEY, "alg"),  # algorithms no verifier allows: refused before any key
        ("EdDSA", KIDS["RS256"], ed25519.Ed25519PrivateKey.generate(), "alg"),
        ("RS384", KIDS["RS256"], RSA_KEY, "alg"),
        ("ES384", KIDS["ES256"], EC_KEY, "key"),  # ES384 is allowed, but a P-256 key is no ES384 key (its crv)
        ("ES512", KIDS["ES256"], EC_KEY, "alg"),
    ],
    ids=lambda value: next((name for name, kid in KIDS.items() if kid == value), None),
)
def test_alg_and_key_type_mismatch_rejected(alg: str, kid: str, key: Any, check: TokenCheck) -> None:
    rejected(mint(make_header(alg, kid=kid), make_claims(), key), check=check)


def test_alg_outside_the_configured_list_rejected() -> None:
    rejected(token("ES256"), check="alg", v=verifier(algorithms=("RS256",)))
    rejected(token("RS256"), check="alg", v=verifier(algorithms=()))


@pytest.mark.parametrize("algorithms", [("HS256",), ("none",), ("RS256", "HS256"), ("PS256",), ("EdDSA",), ("rs256",)])
def test_constructor_refuses_unsafe_algorithms(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        TokenVerifier(JWKS, issuer=ISSUER, algorithms=algorithms)


# --- headers: alg, typ and kid only (an allow-list: the ones that choose the key or extend the rules, and any other) --

ATTACKER_JWK = RSAKey.import_key(der(ROGUE_RSA)).as_dict(private=False)


FORBIDDEN = [("jku", "https://attacker.example/jwks.json"), ("x5u", "https://attacker.example/cert.pem")]
FORBIDDEN += [("jwk", ATTACKER_JWK), ("jwk", RSA_JWK), ("x5c", [base64.b64encode(der(ROGUE_RSA)).decode()])]
FORBIDDEN += [("crit", ["exp"]), ("crit", ["b64"]), ("crit", []), ("b64", False), ("zip", "DEF"), ("enc", "A256GCM")]


@pytest.mark.parametrize(("name", "value"), FORBIDDEN)
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_forbidden_header_rejected_even_when_signature_is_valid(alg: str, name: str, value: Any) -> None:
    rejected(token(alg, header={name: value}), check="header")
    if name == "crit":  # with the critical members present too
        rejected(token(alg, header={name: value, "exp": FIXED + 900, "b64": True}), check="header")


def test_embedded_jwk_signed_by_attacker_key_rejected() -> None:
    rejected(token(header={"jwk": ATTACKER_JWK, "kid": ROGUE_KID}, key=ROGUE_RSA), check="header")
    rejected(token(header={"jwk": ATTACKER_JWK}, key=ROGUE_RSA), check="header")  # with the real kid


# Registered or well-known members credport never writes: each is refused although the token is genuinely signed.
NOT_OURS = ["x5t", "x5t#S256", "cty", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c", "url", "nonce", "ppt", "svt"]
NOT_OURS += ["iss", "sub", "aud", "exp", "KID", "Alg", " typ", "kid ", ""]


@pytest.mark.parametrize("name", NOT_OURS)
def test_a_registered_header_credport_never_writes_is_refused(name: str) -> None:
    assert rejected(token(header={name: "x"}), check="header") == "forbidden header"


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=24).filter(lambda name: name not in JWS_HEADERS),
    value=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=16), st.lists(st.integers(), max_size=3)),
    alg=st.sampled_from(["RS256", "ES256"]),
)
def test_any_header_member_outside_the_allow_list_is_refused(name: str, value: Any, alg: str) -> None:
    """Deny by structure: a member nobody has invented yet is refused like ``jku``."""
    assert rejected(token(alg, header={name: value}), check="header") == "forbidden header"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_the_allow_list_is_exactly_the_header_credport_writes(alg: str) -> None:
    jwk = RSA_JWK if alg == "RS256" else EC_JWK
    key = signing_key("key-id", ALGORITHMS[alg], jwk, lambda data: sign(alg, data, SIGNERS[alg]))
    header = json.loads(urlsafe_b64decode(key.header))
    assert set(header) == JWS_HEADERS
    assert verifier().verify(mint(header, make_claims(), SIGNERS[alg]))["jti"] == "jti-1"
    required: dict[str, TokenCheck] = {"alg": "alg", "typ": "typ", "kid": "kid"}
    assert set(required) == JWS_HEADERS
    for member, check in required.items():  # each allowed member is also required: without it, its check refuses
        rejected(mint(apply(header, {member: DROP}), make_claims(), SIGNERS[alg]), check=check)


# --- kid ------------------------------------------------------------------------------------------------------


KID = KIDS["RS256"]
BAD_KIDS = [ROGUE_KID, DROP, "", None, 42, [KID], {"kid": KID}, "../../etc/passwd", "/dev/null", "a/b", "A" * 4096]
BAD_KIDS += [KID + "\n", KID + "=", " " + KID, KID[:-1], KID.swapcase()]


@pytest.mark.parametrize("kid", BAD_KIDS, ids=[f"kid{i}" for i in range(len(BAD_KIDS))])  # drawn at import
def test_bad_kid_rejected(kid: Any) -> None:
    rejected(token(header={"kid": kid}), check="kid")


@pytest.mark.parametrize(("alg", "rogue"), [("RS256", ROGUE_RSA), ("ES256", ROGUE_EC)])
def test_signed_by_unknown_key_with_known_kid_rejected(alg: str, rogue: Any) -> None:
    rejected(token(alg, key=rogue), check="signature")


def test_signed_by_one_jwks_key_with_the_kid_of_another_rejected() -> None:
    rejected(token(header={"kid": RSA_JWK_2["kid"]}, key=RSA_KEY), check="signature")
    rejected(token("ES256", header={"kid": EC_JWK_2["kid"]}, key=EC_KEY), check="signature")


def test_jwks_entry_whose_kid_is_not_its_thumbprint_rejected() -> None:
    lying = {**RSA_JWK_2, "kid": RSA_JWK["kid"]}  # the attacker's key filed under a trusted kid
    rejected(token(key=RSA_KEY_2), check="key", v=verifier({"keys": [lying]}))
    lying_ec = {**public_jwk(der(ROGUE_EC), ALGORITHMS["ES256"]), "kid": EC_JWK["kid"]}
    rejected(token("ES256", key=ROGUE_EC), check="key", v=verifier({"keys": [lying_ec]}))


def test_jwks_entry_with_private_key_rejected() -> None:
    jwk = {
        **RSAKey.import_key(private_pem(RSA_KEY)).as_dict(private=True),
        "kid": RSA_JWK["kid"],
        "use": "sig",
        "alg": "RS256",
    }
    assert "d" in jwk
    rejected(token(), check="key", v=verifier({"keys": [jwk]}))
    rejected(token(), check="key", v=verifier({"keys": [{**RSA_JWK, "d": jwk["d"]}]}))


@pytest.mark.parametrize(
    "override", [{"use": "enc"}, {"alg": "RS512"}, {"alg": "PS256"}, {"kty": "EC"}, {"n": "AQAB"}, {"e": DROP}]
)
def test_jwks_entry_not_fit_for_rs256_rejected(override: dict[str, Any]) -> None:
    rejected(token(), check="key", v=verifier({"keys": [apply(RSA_JWK, override)]}))


# --- typ ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typ", [DROP, None, "at+jwt", "JWS", "jwt", "Jwt", "JWT ", "application/jwt", ["JWT"]])
def test_typ_other_than_exactly_jwt_rejected(typ: Any) -> None:
    """The verifier requires ``typ`` to be exactly "JWT" (as the issuer writes it), not case-insensitively."""
    rejected(token(header={"typ": typ}), check="typ")


# --- aud ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        [AUDIENCE],  # one audience is a string claim
        ["other", "another"],
        [AUDIENCE, AUDIENCE],
        [AUDIENCE, 42],
        [AUDIENCE, *(f"a{i}" for i in range(10))],  # 11
        "sts.amazonaws.com.evil",
        "",
        DROP,
        None,
        42,
    ],
)
def test_bad_aud_rejected(aud: Any) -> None:
    check: TokenCheck = "claims" if aud is DROP else "aud"  # a missing aud is the required-claims check's
    rejected(token(aud=aud), check=check, audience=AUDIENCE)
    rejected(token(aud=aud), check=check, v=verifier(audiences=(AUDIENCE,)))


@pytest.mark.parametrize("aud", [[AUDIENCE], DROP, None, 42, {"aud": AUDIENCE}, [], ["a", "a"]])
def test_aud_must_be_a_string_or_an_array_of_distinct_strings_even_unrestricted(aud: Any) -> None:
    rejected(token(aud=aud), check="claims" if aud is DROP else "aud")


def test_an_array_of_audiences_is_accepted_by_each_of_its_members() -> None:
    compact = token(aud=["https://rp.example", AUDIENCE])
    assert verifier().verify(compact, audience=AUDIENCE)["aud"] == ["https://rp.example", AUDIENCE]
    assert verifier(audiences=("https://rp.*",)).verify(compact)["aud"] == ["https://rp.example", AUDIENCE]
    rejected(compact, check="aud", audience="https://other.example")


@pytest.mark.parametrize("aud", ["https://svc/a", "https://svc/a/b"])
def test_audience_pattern_accepts_prefix(aud: str) -> None:
    v = verifier(audiences=("https://svc/*",))
    assert v.verify(token(aud=aud))["aud"] == aud
    assert v.verify(token(aud=aud), audience=aud)["aud"] == aud
    rejected(token(aud=aud), check="aud", v=v, audience="https://svc/other")


@pytest.mark.parametrize(
    "aud", ["https://svc/", "https://svc", "https://svcx/a", "http://svc/a", "https://other/svc/a", "HTTPS://svc/a"]
)
def test_audience_pattern_rejects_others(aud: str) -> None:
    v = verifier(audiences=("https://svc/*",))
    rejected(token(aud=aud), check="aud", v=v)
    rejected(token(aud=aud), check="aud", v=v, audience=aud)  # asking for it does not bypass the allow-list


# --- iss ------------------------------------------------------------------------------------------------------


BAD_ISS = [ISSUER + "/", "https://ISSUER.example", "HTTPS://issuer.example", "http://issuer.example", ISSUER + " "]
BAD_ISS += ["https://issuer.example.evil", "", DROP, None, [ISSUER], 42]


@pytest.mark.parametrize("iss", BAD_ISS, ids=stable_ids)
def test_bad_iss_rejected(iss: Any) -> None:
    rejected(token(iss=iss), check="claims" if iss is DROP else "iss")


# --- time -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "check"),
    [
        ({"exp": FIXED - LEEWAY - 1}, "exp"),
        ({"exp": FIXED - LEEWAY}, "exp"),  # on the boundary: "on or after" exp is expired
        ({"exp": FIXED - 3600, "iat": FIXED - 7200, "nbf": FIXED - 7200}, "exp"),
        ({"nbf": FIXED + LEEWAY + 1}, "nbf"),
        ({"iat": FIXED + LEEWAY + 1}, "iat"),
        ({"iat": FIXED + LEEWAY + 1, "nbf": FIXED - 10}, "iat"),
    ],
)
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_outside_validity_window_rejected(alg: str, claims: dict[str, Any], check: TokenCheck) -> None:
    rejected(token(alg, **claims), check=check)


@pytest.mark.parametrize(
    "claims",
    [{"exp": FIXED - LEEWAY + 1}, {"exp": FIXED - 10}, {"nbf": FIXED + LEEWAY}, {"iat": FIXED + LEEWAY, "nbf": FIXED}],
)
def test_within_leeway_accepted(claims: dict[str, Any]) -> None:
    assert verifier().verify(token(**claims))["jti"] == "jti-1"


def test_leeway_zero() -> None:
    v = verifier(leeway=0)
    rejected(token(exp=FIXED), check="exp", v=v)
    rejected(token(nbf=FIXED + 1), check="nbf", v=v)
    assert v.verify(token(exp=FIXED + 1))["exp"] == FIXED + 1


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value", ["1700000900", str(FIXED), None, True, False, [FIXED], {"t": FIXED}, float("nan"), float("inf")], ids=repr
)
def test_non_numeric_dates_rejected(name: TokenCheck, value: Any) -> None:
    rejected(token(**{name: value}), check=name)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_fractional_dates_are_not_ours(name: TokenCheck) -> None:
    """RFC 7519 allows fractional NumericDates; credport issues whole seconds, so anything else is refused."""
    assert rejected(token(**{name: float(FIXED) + (900.5 if name == "exp" else -0.5)}), check=name) == (
        "dates must be whole seconds"
    )


@pytest.mark.parametrize("name", ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"])
def test_missing_required_claim_rejected(name: str) -> None:
    rejected(token(**{name: DROP}), check="claims")


@pytest.mark.parametrize("claims", [{"sub": None}, {"sub": ""}, {"sub": 42}, {"jti": ""}, {"jti": None}, {"jti": 7}])
def test_blank_or_non_string_sub_and_jti_rejected(claims: dict[str, Any]) -> None:
    (name,) = claims
    rejected(token(**claims), check=name)


# --- tampering and shape --------------------------------------------------------------------------------------


def _swap(value: str, index: int, part: str) -> str:
    parts = value.split(".")
    parts[index] = part
    return ".".join(parts)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_tampered_tokens_rejected(alg: str) -> None:
    good = token(alg)
    head, body, sig = good.split(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    rejected(f"{head}.{flipped}.{sig}", check="signature")
    rejected(_swap(good, 1, segment(make_claims(sub="arn:aws:iam::123456789012:role/admin"))), check="signature")
    rejected(_swap(good, 1, segment(make_claims(exp=FIXED + 10**6))), check="signature")
    other_kid = RSA_JWK_2["kid"] if alg == "RS256" else EC_JWK_2["kid"]  # another key fit for this alg
    rejected(_swap(good, 0, segment(make_header(alg, kid=other_kid))), check="signature")
    reordered = dict(reversed(make_header(alg).items()))  # the same members, other bytes: the header is signed
    rejected(_swap(good, 0, segment(reordered)), check="signature")
    rejected(_swap(good, 0, segment({**make_header(alg), "extra": 1})), check="header")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    bad_sigs = [sig[:-4], sig + "AAAA", "", sig[:-1], b64(raw[:-1]), b64(raw + b"\0")]
    for bad in [*bad_sigs, b64(bytes([raw[0] ^ 1]) + raw[1:])]:
        rejected(f"{head}.{body}.{bad}", check="signature")
    lifted = token(alg, jti="other").split(".")[2]  # a signature lifted from another token
    rejected(f"{head}.{body}.{lifted}", check="signature")


def test_es256_degenerate_or_der_signatures_rejected() -> None:
    good = token("ES256")
    signing_input = good.rsplit(".", 1)[0].encode()
    der_sig = EC_KEY.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    for sig in (bytes(64), b"\xff" * 64, der_sig, bytes(32) + b"\x01" * 32):
        rejected(_swap(good, 2, b64(sig)), check="signature")


MALFORMED = ["", ".", "..", "...", "a.b", "a.b.c.d", "a.b.c.d.e", "eyJ!.e30.AA", "eyJhbGciOiJSUzI1NiJ9=.e30.AA"]
MALFORMED += [f"{b64(b'not json')}.e30.AA", f"{segment(['alg', 'RS256'])}.e30.AA", f"{segment('RS256')}.e30.AA"]
MALFORMED += [f"{segment(None)}.e30.AA", f"{segment(1)}.e30.AA", f"{b64(bytes([0xFF, 0xFE, 0x00]))}.e30.AA"]
MALFORMED += [f"{segment(make_header())}.e30\u00e9.AA"]


@pytest.mark.parametrize("value", MALFORMED, ids=[f"shape{i}" for i in range(len(MALFORMED))])  # kids inside
def test_malformed_shape_rejected(value: str) -> None:
    rejected(value, check="shape")


def test_extra_or_missing_segments_of_a_good_token_rejected() -> None:
    good = token()
    variants = [good + ".", good + "." + good.split(".")[2], good.rsplit(".", 1)[0], "." + good, " " + good]
    for value in variants:
        rejected(value, check="shape")
    head, body, sig = good.split(".")
    for bad in (f"{head}.{body}!.{sig}", f"{head}.{body}=.{sig}"):  # a payload that does not decode
        rejected(bad, check="shape")
    for bad in (good + "\n", f"{head}.{body}.{sig}+", f"{head}.{body}.{sig}/"):  # a signature that is not the one
        rejected(bad, check="signature")


@pytest.mark.parametrize("value", [None, 42, ["a", "b", "c"], {"token": "x"}])
def test_non_string_token_rejected(value: Any) -> None:
    rejected(value, check="shape")


def test_bytes_token_rejected() -> None:
    good = token()
    rejected(good.encode(), check="shape")
    rejected(bytearray(good.encode()), check="shape")


def test_oversized_token_rejected_even_when_signed() -> None:
    start = (MAX_TOKEN_BYTES - len(token(pad=""))) * 3 // 4 - 20
    sized = {len(t): t for t in (token(pad="x" * n) for n in range(start, start + 40))}
    assert max(sized) > MAX_TOKEN_BYTES >= min(sized)
    fits = max(n for n in sized if n <= MAX_TOKEN_BYTES)
    assert verifier().verify(sized[fits])["jti"] == "jti-1"
    for n in (n for n in sized if n > MAX_TOKEN_BYTES):
        assert rejected(sized[n], check="shape") == "shape"


@pytest.mark.parametrize("nested", [b"[" * 3000, b'{"a":' * 1200])
def test_deeply_nested_header_rejected(nested: bytes) -> None:
    value = f"{b64(nested)}.e30.AA"
    assert len(value) <= MAX_TOKEN_BYTES
    rejected(value, check="shape")


def test_a_refusal_names_one_check_of_the_closed_set() -> None:
    """Tests and log queries rely on the names: a check outside the vocabulary is a programming error."""
    assert (TokenRejected("exp").check, TokenRejected("exp").reason) == ("exp", "exp")
    with pytest.raises(ValueError, match="not a token check"):
        TokenRejected("expired")  # type: ignore[arg-type]
