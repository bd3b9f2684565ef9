"""The embedded AWS answers hostile signing fields as AWS does, never with a 500: a presigned S3 link's X-Amz-Expires,
X-Amz-Date and X-Amz-Signature, and a header signature's Authorization and X-Amz-Date, are read by ASCII allow-lists
(local/headers.py) before moto's own parser (which indexes and int()s them) ever sees them.

Before, a superscript or 5000-digit X-Amz-Expires, a link dated 9999 (its expiry overflowed), a non-ASCII signature
(hmac.compare_digest raised), a Credential without its scope or an unsigned X-Amz-Date each raised out of the check.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.iam import enforce
from local.iam.presigned import PresignRejected, verify_presigned
from tests.conftest import REGION

BUCKET = "untrusted-fields-bucket"
KEY = "k.jwe"
URL = f"https://{BUCKET}.s3.amazonaws.com/{KEY}"
ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
NOW = dt.datetime(2024, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)


@pytest.fixture
def reader(moto: None) -> Iterator[Credentials]:
    iam, s3 = boto3.client("iam"), boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"sealed")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="all", PolicyDocument=json.dumps(ALL))
    made = iam.create_access_key(UserName="reader")["AccessKey"]
    with enforce.enforcing():
        yield Credentials(made["AccessKeyId"], made["SecretAccessKey"])


def presign(creds: Credentials, *, signed_at: dt.datetime | None = None, expires: int = 600) -> str:
    request = AWSRequest(method="GET", url=URL)
    request.context["timestamp"] = (signed_at or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    auth = S3SigV4QueryAuth(creds, "s3", REGION, expires=expires)
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return str(request.url)


def s3_error(response: requests.Response) -> tuple[int, str, str]:
    """(status, Code, Message) of S3's XML error; anything else (a 500, a traceback) fails here."""
    assert response.status_code < 500, response.text
    code = re.search(r"<Code>([^<]*)</Code>", response.text)
    message = re.search(r"<Message>([^<]*)</Message>", response.text)
    assert code, response.text
    assert message, response.text
    return response.status_code, code.group(1), message.group(1)


def test_the_genuine_link_works(reader: Credentials) -> None:
    assert requests.get(presign(reader), timeout=5).content == b"sealed"


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        pytest.param("\u00b2", "X-Amz-Expires should be a number", id="superscript"),
        pytest.param("\u0663\u0660\u0660", "X-Amz-Expires should be a number", id="arabic-indic"),
        pytest.param("\uff13\uff10\uff10", "X-Amz-Expires should be a number", id="fullwidth"),
        pytest.param("+300", "X-Amz-Expires should be a number", id="leading-plus"),
        pytest.param("3_00", "X-Amz-Expires should be a number", id="underscore"),
        pytest.param("-1", "X-Amz-Expires must be non-negative", id="negative"),
        pytest.param("9" * 5000, "X-Amz-Expires must be less than a week", id="5000-digits"),
        pytest.param("1" + "0" * 100, "X-Amz-Expires must be less than a week", id="10**100"),
    ],
)
def test_a_malformed_x_amz_expires_is_s3s_400(reader: Credentials, expires: str, message: str) -> None:
    link = re.sub(r"X-Amz-Expires=[0-9]+", "X-Amz-Expires=" + quote(expires, safe=""), presign(reader))
    status, code, said = s3_error(requests.get(link, timeout=5))
    assert (status, code) == (400, "AuthorizationQueryParametersError")
    assert said.startswith(message)


@pytest.mark.parametrize(
    "stamp",
    [
        "\u0662\u0660\u0662\u06640115T120000Z",
        "\uff12\uff10\uff12\uff140115T120000Z",
        "00000115T120000Z",
        "20240115T120000Z\n",
    ],
)
def test_a_malformed_x_amz_date_is_s3s_400(reader: Credentials, stamp: str) -> None:
    link = presign(reader)
    signed_at = link.split("X-Amz-Date=")[1][:16]
    status, code, said = s3_error(requests.get(link.replace(signed_at, quote(stamp, safe="")), timeout=5))
    assert (status, code, said) == (
        400,
        "AuthorizationQueryParametersError",
        "X-Amz-Date must be in the ISO8601 format.",
    )


def test_a_link_dated_9999_is_not_yet_valid_not_overflowed(reader: Credentials) -> None:
    link = presign(reader, signed_at=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC), expires=604800)
    assert s3_error(requests.get(link, timeout=5)) == (403, "AccessDenied", "Request is not yet valid")


def test_a_non_ascii_signature_does_not_match(reader: Credentials) -> None:
    link = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + quote("\u00e9" * 64), presign(reader))
    assert s3_error(requests.get(link, timeout=5))[:2] == (403, "SignatureDoesNotMatch")


def header_signed(creds: Credentials) -> dict[str, str]:
    from botocore.auth import S3SigV4Auth

    request = AWSRequest(method="GET", url=URL)
    S3SigV4Auth(creds, "s3", REGION).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda h: {**h, "Authorization": re.sub(r"Credential=[^,]+", "Credential=x", h["Authorization"])},
            (400, "AuthorizationHeaderMalformed"),
            id="credential-without-scope",
        ),
        pytest.param(
            lambda h: {**h, "Authorization": h["Authorization"].replace("/s3/aws4_request", "")},
            (400, "AuthorizationHeaderMalformed"),
            id="credential-short-scope",
        ),
        pytest.param(
            lambda h: {**h, "X-Amz-Date": "\xb2\xb3" + h["X-Amz-Date"][2:]},
            (403, "AccessDenied"),
            id="x-amz-date-superscripts",
        ),
        pytest.param(
            lambda h: {k: v for k, v in h.items() if k != "X-Amz-Date"},
            (403, "AccessDenied"),
            id="x-amz-date-missing",
        ),
        pytest.param(
            lambda h: {**h, "Authorization": h["Authorization"].replace(";x-amz-date", "")},
            (403, "AccessDenied"),
            id="x-amz-date-not-signed",
        ),
    ],
)
def test_a_malformed_header_signature_is_an_s3_error(
    reader: Credentials, change: Callable[[dict[str, str]], dict[str, str]], expected: tuple[int, str]
) -> None:
    headers = change(header_signed(reader))
    assert s3_error(requests.get(URL, headers=headers, timeout=5))[:2] == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["X-Amz-Expires", "X-Amz-Date", "X-Amz-Signature", "X-Amz-Credential"]), value=ANY_TEXT)
def test_verify_presigned_returns_or_refuses_with_s3s_codes(name: str, value: str) -> None:
    link = presign(Credentials("AKIAEXAMPLE000000001", "secret"), signed_at=NOW)
    query = dict(p.split("=", 1) for p in link.split("?", 1)[1].split("&"))
    from urllib.parse import unquote

    params = {k: unquote(v) for k, v in query.items()} | {name: value}
    from urllib.parse import urlencode

    refused = None
    try:
        verify_presigned(
            "GET", f"{BUCKET}.s3.amazonaws.com", f"/{KEY}", urlencode(params, errors="surrogatepass"), {},
            lambda key, token: ("secret", None), now=NOW,
        )  # fmt: skip
    except PresignRejected as rejected:
        refused = rejected.code
    assert refused in {None, "AuthorizationQueryParametersError", "AccessDenied", "SignatureDoesNotMatch"}
