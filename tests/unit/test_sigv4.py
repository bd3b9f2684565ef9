"""local/sigv4.py: API Gateway's IAM (SigV4) authorization, checked against requests signed by botocore
and by requests_aws4auth at a frozen instant."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from requests_aws4auth import AWS4Auth

from local.sigv4 import ParsedSignature, Principal, SignatureRejected, parse_signature, verify

SIGNED_AT = dt.datetime(2024, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
STAMP = "20240115T120000Z"
HOST = "127.0.0.1:8000"
BASE = f"http://{HOST}"
REGION = "us-east-1"
ACCOUNT = "123456789012"

# Principal(access_key, secret_key, session_token, arn, account_id, caller)
USER = Principal(
    "AKIAUSEREXAMPLE00001", "user/secret+key", None, f"arn:aws:iam::{ACCOUNT}:user/alice", ACCOUNT, "AIDAU1"
)
TEMP = Principal(
    "ASIATEMPEXAMPLE00001",
    "temp/secret+key",
    "FwoGZXIvYXdzEXAMPLE//session+token=",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/job-1",
    ACCOUNT,
    "AROAROLEEXAMPLE00001:job-1",
)
INVALID = "InvalidSignatureException"
INCOMPLETE = "IncompleteSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"


class FakeLookup:
    """A user key (no token) and a temporary key (exact token required)."""

    def __init__(self, *principals: Principal) -> None:
        self._by_key = {p.access_key: p for p in principals}

    def find(self, access_key: str, session_token: str | None) -> Principal | None:
        principal = self._by_key.get(access_key)
        if principal is None or principal.session_token != session_token:
            return None
        return principal


LOOKUP = FakeLookup(USER, TEMP)


@pytest.fixture(autouse=True)
def frozen_signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore.auth reads the clock through get_current_datetime; sign at SIGNED_AT."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: SIGNED_AT.replace(tzinfo=None))


def creds(principal: Principal, *, secret: str | None = None, **override: str | None) -> Credentials:
    """The principal's credentials; ``token=`` overrides (or, with None, drops) its session token."""
    token = override.get("token", principal.session_token)
    return Credentials(principal.access_key, secret or principal.secret_key, token)


def sign(
    method: str,
    path: str = "/api/keys",
    *,
    params: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    credentials: Credentials | None = None,
    service: str = "execute-api",
) -> tuple[str, dict[str, str]]:
    """Header-sign with botocore; returns the wire URL and the headers the server sees (Host included)."""
    request = AWSRequest(method=method, url=BASE + path, params=params or {}, data=body, headers=headers or {})
    SigV4Auth(credentials or creds(USER), service, REGION).add_auth(request)
    return request.prepare().url, {"Host": HOST, **dict(request.headers)}


def presign(
    path: str = "/api/keys", *, params: dict[str, str] | None = None, expires: int = 300, principal: Principal = USER
) -> str:
    request = AWSRequest(method="GET", url=BASE + path, params=params or {})
    SigV4QueryAuth(creds(principal), "execute-api", REGION, expires=expires).add_auth(request)
    return str(request.prepare().url)


def check(
    method: str, url: str, headers: dict[str, str], body: bytes = b"", *, now: dt.datetime = SIGNED_AT
) -> Principal:
    return verify(method, url, headers, body, LOOKUP, region=REGION, now=now)


def rejected(
    error_type: str, method: str, url: str, headers: dict[str, str], body: bytes = b"", **kw: dt.datetime
) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as info:
        check(method, url, headers, body, **kw)
    assert info.value.error_type == error_type, info.value.message
    return info.value


# --- valid requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("principal", [USER, TEMP], ids=["iam-user", "temporary"])
def test_header_signed_get_with_encoded_query_returns_principal(principal: Principal) -> None:
    params = {"name": "a b/c", "q": "x+y=z&w", "empty": "", "ünï": "çødé~", "*": "!'()"}
    url, headers = sign("GET", "/api/keys/k-1", params=params, credentials=creds(principal))
    assert "%" in url
    got = check("GET", url, headers)
    assert got == principal
    assert (got.arn, got.account_id, got.caller) == (principal.arn, ACCOUNT, principal.caller)


def test_header_signed_post_with_json_body() -> None:
    body = json.dumps({"name": "ci", "ttl": 3600}).encode()
    url, headers = sign("POST", params={"dry": "1"}, body=body, headers={"Content-Type": "application/json"})
    assert check("POST", url, headers, body) == USER


def test_signed_correct_content_sha256_header_is_accepted() -> None:
    body = b'{"a": 1}'
    url, headers = sign("PUT", body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert "x-amz-content-sha256" in headers["Authorization"]
    assert check("PUT", url, headers, body) == USER


def test_extra_unsigned_header_is_fine() -> None:
    url, headers = sign("GET")
    assert check("GET", url, {**headers, "User-Agent": "curl/8", "X-Forwarded-For": "10.0.0.1"}) == USER


@pytest.mark.parametrize("principal", [USER, TEMP], ids=["iam-user", "temporary"])
def test_presigned_get_is_accepted(principal: Principal) -> None:
    url = presign("/api/keys/k 1", params={"filter": "a&b=c"}, principal=principal)
    assert "X-Amz-Signature=" in url
    assert check("GET", url, {"Host": HOST}) == principal


@pytest.mark.parametrize("principal", [USER, TEMP], ids=["iam-user", "temporary"])
def test_requests_aws4auth_get_with_query_and_post_with_body(principal: Principal) -> None:
    key, secret, token = principal.access_key, principal.secret_key, principal.session_token
    auth = AWS4Auth(key, secret, REGION, "execute-api", "20240115", session_token=token)
    for request in (
        requests.Request("GET", BASE + "/api/keys", params={"q": "a b", "sort": "-created"}),
        requests.Request("POST", BASE + "/api/keys", params={"x": "1"}, json={"name": "ci", "tags": ["ü"]}),
    ):
        prepared = request.prepare()
        prepared.headers["x-amz-date"] = STAMP
        auth(prepared)
        body = prepared.body if isinstance(prepared.body, bytes) else (prepared.body or "").encode()
        assert check(str(prepared.method), str(prepared.url), {"Host": HOST, **prepared.headers}, body) == principal


# --- body integrity ---------------------------------------------------------------------------------------


def test_post_body_altered_in_transit_is_rejected() -> None:
    url, headers = sign("POST", body=b'{"ttl": 60}', headers={"Content-Type": "application/json"})
    rejected(INVALID, "POST", url, headers, b'{"ttl": 6000}')


def test_unsigned_content_sha256_header_not_matching_body_is_rejected() -> None:
    body = b'{"ttl": 60}'
    url, headers = sign("POST", body=body)
    assert check("POST", url, headers, body) == USER
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"something else").hexdigest()
    rejected(INVALID, "POST", url, headers, body)


def test_signed_content_sha256_of_another_body_is_rejected() -> None:
    claimed = hashlib.sha256(b'{"ttl": 60}').hexdigest()
    url, headers = sign("POST", body=b'{"ttl": 60}', headers={"X-Amz-Content-SHA256": claimed})
    rejected(INVALID, "POST", url, headers, b'{"ttl": 6000}')


# --- time ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_offset", "error"),
    [
        (dt.timedelta(minutes=14), None),
        (dt.timedelta(minutes=15), None),
        (-dt.timedelta(minutes=14), None),
        (dt.timedelta(minutes=15, seconds=1), "Signature expired"),
        (dt.timedelta(hours=2), "Signature expired"),
        (-dt.timedelta(minutes=15, seconds=1), "not yet current"),
    ],
)
def test_header_signature_clock_skew(now_offset: dt.timedelta, error: str | None) -> None:
    url, headers = sign("GET")
    if error is None:
        assert check("GET", url, headers, now=SIGNED_AT + now_offset) == USER
    else:
        assert error in rejected(INVALID, "GET", url, headers, now=SIGNED_AT + now_offset).message


@pytest.mark.parametrize(
    ("now_offset", "error"),
    [
        (dt.timedelta(seconds=300), None),
        (dt.timedelta(seconds=301), "Signature expired"),
        (dt.timedelta(days=1), "Signature expired"),
        (-dt.timedelta(minutes=16), "not yet current"),
    ],
)
def test_presigned_expiry(now_offset: dt.timedelta, error: str | None) -> None:
    url = presign(expires=300)
    if error is None:
        assert check("GET", url, {"Host": HOST}, now=SIGNED_AT + now_offset) == USER
    else:
        assert error in rejected(INVALID, "GET", url, {"Host": HOST}, now=SIGNED_AT + now_offset).message


@pytest.mark.parametrize(("expires", "ok"), [(0, False), (604801, False), (1, True), (604800, True)])
def test_presigned_expires_bounds(expires: int, ok: bool) -> None:
    url = presign(expires=expires)
    if ok:
        assert check("GET", url, {"Host": HOST}) == USER
    else:
        assert "X-Amz-Expires" in rejected(INCOMPLETE, "GET", url, {"Host": HOST}).message


# --- keys and tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "error"),
    [
        (creds(USER, secret="not-the-secret"), INVALID),
        (Credentials("AKIAUNKNOWNEXAMPLE01", "whatever"), UNRECOGNIZED),
        (creds(TEMP, token="FwoGZXIvYXdzWRONGTOKEN"), UNRECOGNIZED),
        (creds(TEMP, token=None), UNRECOGNIZED),
        (creds(USER, token="unexpected-token"), UNRECOGNIZED),
    ],
    ids=["wrong-secret", "unknown-key", "wrong-token", "missing-token", "user-key-with-token"],
)
def test_bad_credentials(credentials: Credentials, error: str) -> None:
    url, headers = sign("GET", credentials=credentials)
    rejected(error, "GET", url, headers)


def test_presigned_with_wrong_secret_is_rejected() -> None:
    request = AWSRequest(method="GET", url=BASE + "/api/keys")
    SigV4QueryAuth(creds(USER, secret="nope"), "execute-api", REGION, expires=60).add_auth(request)
    rejected(INVALID, "GET", request.url, {"Host": HOST})


# --- missing / malformed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (BASE + "/api/keys", {"Host": HOST}),
        (BASE + "/api/keys?a=1&X-Amz-Date=" + STAMP, {"Host": HOST, "X-Amz-Date": STAMP}),
    ],
)
def test_unsigned_request_is_missing_authentication_token(url: str, headers: dict[str, str]) -> None:
    assert rejected("MissingAuthenticationTokenException", "GET", url, headers).message == (
        "Missing Authentication Token"
    )


CREDENTIAL = f"{USER.access_key}/20240115/{REGION}/execute-api/aws4_request"


def authorization(algorithm: str = "AWS4-HMAC-SHA256", **fields: str | None) -> str:
    merged = {"Credential": CREDENTIAL, "SignedHeaders": "host;x-amz-date", "Signature": "a" * 64, **fields}
    return algorithm + " " + ", ".join(f"{k}={v}" for k, v in merged.items() if v is not None)


def test_fabricated_authorization_parses_so_malformed_cases_are_isolated() -> None:
    headers = {"Host": HOST, "X-Amz-Date": STAMP, "Authorization": authorization()}
    assert parse_signature("GET", BASE + "/", headers).access_key == USER.access_key
    rejected(INVALID, "GET", BASE + "/", headers)


@pytest.mark.parametrize(
    ("auth", "amz_date"),
    [
        pytest.param(authorization(Credential=None), STAMP, id="no-credential"),
        pytest.param(authorization(Signature=None), STAMP, id="no-signature"),
        pytest.param(authorization(SignedHeaders=None), STAMP, id="no-signed-headers"),
        pytest.param(authorization(), None, id="no-x-amz-date"),
        pytest.param(authorization(), "2024-01-15T12:00:00Z", id="bad-x-amz-date"),
        pytest.param(authorization("AWS4-HMAC-SHA1"), STAMP, id="wrong-algorithm"),
        pytest.param("Bearer abc.def.ghi", STAMP, id="bearer"),
        pytest.param(authorization(Credential="garbage"), STAMP, id="garbage-credential"),
        pytest.param(authorization(Credential=CREDENTIAL.removesuffix("/aws4_request")), STAMP, id="short-scope"),
        pytest.param(authorization(Credential=CREDENTIAL.replace("20240115", "2024-01-15")), STAMP, id="scope-date"),
        pytest.param(authorization(Signature="a" * 63), STAMP, id="short-signature"),
        pytest.param(authorization(Signature="g" * 64), STAMP, id="non-hex-signature"),
        pytest.param(authorization(SignedHeaders="x-amz-date"), STAMP, id="host-not-signed"),
    ],
)
def test_malformed_authorization_is_incomplete(auth: str, amz_date: str | None) -> None:
    headers = {"Host": HOST, "Authorization": auth} | ({"X-Amz-Date": amz_date} if amz_date else {})
    rejected(INCOMPLETE, "GET", BASE + "/api/keys", headers)


def test_missing_parameters_are_all_named() -> None:
    message = rejected(INCOMPLETE, "GET", BASE + "/", {"Host": HOST, "Authorization": "AWS4-HMAC-SHA256 "}).message
    for name in ("'Credential'", "'Signature'", "'SignedHeaders'", "'X-Amz-Date'"):
        assert name in message


# --- scope -------------------------------------------------------------------------------------------------


def test_signature_scoped_to_another_service_is_rejected() -> None:
    url, headers = sign("GET", service="s3")
    assert "scoped" in rejected(INVALID, "GET", url, headers).message


def test_scope_date_not_matching_x_amz_date_is_rejected() -> None:
    url, headers = sign("GET")
    headers["Authorization"] = headers["Authorization"].replace("/20240115/", "/20240114/")
    assert "scoped" in rejected(INVALID, "GET", url, headers).message


# --- tampering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Amz-Date", "20240115T120001Z"), ("X-Tenant", "tenant-b"), ("X-Tenant", None), ("Host", "evil:8000")],
    ids=["x-amz-date+1s", "custom-header-changed", "custom-header-dropped", "host-changed"],
)
def test_tampered_signed_header_is_rejected(name: str, value: str | None) -> None:
    url, headers = sign("GET", headers={"X-Tenant": "tenant-a"})
    assert "x-tenant" in headers["Authorization"]
    assert check("GET", url, headers) == USER
    headers.pop(name)
    rejected(INVALID, "GET", url, headers | ({name: value} if value else {}))


@pytest.mark.parametrize(
    ("before", "after"),
    [("limit=10", "limit=11"), ("limit=10", "limit=10&admin=true"), ("limit=10&", ""), ("/api/keys", "/api/key")],
    ids=["value-changed", "param-added", "param-removed", "path-changed"],
)
def test_tampered_url_is_rejected(before: str, after: str) -> None:
    url, headers = sign("GET", params={"limit": "10", "state": "active"})
    assert before in url
    rejected(INVALID, "GET", url.replace(before, after, 1), headers)


def test_tampered_presigned_query_is_rejected() -> None:
    url = presign(params={"limit": "10"})
    rejected(INVALID, "GET", url.replace("limit=10", "limit=99"), {"Host": HOST})
    rejected(INVALID, "GET", url + "&admin=true", {"Host": HOST})


def test_method_changed_after_signing_is_rejected() -> None:
    url, headers = sign("GET")
    rejected(INVALID, "POST", url, headers)
    rejected(INVALID, "DELETE", url, headers)


# --- parse_signature --------------------------------------------------------------------------------------


def test_parse_header_signature() -> None:
    url, headers = sign("GET", headers={"X-Tenant": "t"}, credentials=creds(TEMP))
    parsed = parse_signature("GET", url, headers)
    signature = headers["Authorization"].rpartition("Signature=")[2]
    assert parsed == ParsedSignature(
        access_key=TEMP.access_key,
        scope_date="20240115",
        region=REGION,
        service="execute-api",
        signed_headers=("host", "x-amz-date", "x-amz-security-token", "x-tenant"),
        signature=signature,
        amz_date=SIGNED_AT,
        session_token=TEMP.session_token,
        presigned_expires=None,
    )


def test_parse_query_signature() -> None:
    url = presign(params={"a": "1"}, expires=900, principal=TEMP)
    parsed = parse_signature("GET", url, {"Host": HOST})
    assert parsed == ParsedSignature(
        access_key=TEMP.access_key,
        scope_date="20240115",
        region=REGION,
        service="execute-api",
        signed_headers=("host",),
        signature=url.rpartition("X-Amz-Signature=")[2],
        amz_date=SIGNED_AT,
        session_token=TEMP.session_token,
        presigned_expires=900,
    )


# --- known defects (see local/sigv4.py) --------------------------------------------------------------------


def test_repeated_query_keys_are_accepted() -> None:
    url, headers = sign("GET", params=[("tag", "a"), ("tag", "b")])
    assert url.endswith("?tag=a&tag=b")
    assert check("GET", url, headers) == USER


def test_prepended_duplicate_query_parameter_is_rejected() -> None:
    url, headers = sign("GET", params={"owner": "alice"})
    rejected(INVALID, "GET", url.replace("?", "?owner=mallory&", 1), headers)


def test_date_header_instead_of_x_amz_date_is_accepted() -> None:
    url, headers = sign("GET", headers={"Date": "Mon, 15 Jan 2024 12:00:00 GMT"})
    assert "X-Amz-Date" not in headers
    assert check("GET", url, headers) == USER


def test_signature_scoped_to_another_region_is_rejected() -> None:
    request = AWSRequest(method="GET", url=BASE + "/api/keys")
    SigV4Auth(creds(USER), "execute-api", "eu-west-1").add_auth(request)
    error = rejected(INVALID, "GET", request.prepare().url, {"Host": HOST, **dict(request.headers)})
    assert "region" in error.message


def test_repeated_authentication_parameters_are_rejected() -> None:
    url = presign()
    signature = url.split("X-Amz-Signature=")[1]
    rejected("IncompleteSignatureException", "GET", f"{url}&X-Amz-Signature={signature}", {"Host": HOST})
