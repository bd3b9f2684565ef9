"""The embedded AWS's front door (local/aws_server.py) answers what moto's dispatcher cannot read as AWS does: a
malformed Authorization header or X-Amz-Target was an IndexError/ValueError in moto's routing, before the IAM
enforcement ran, and werkzeug's 500 HTML page. Served here as the stack serves it, through moto's
DomainDispatcherApplication with IAM enforced; the genuine signed request is the control."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from local.aws_server import guarded
from local.iam import enforce
from tests.conftest import REGION

STS = "/?Action=GetCallerIdentity&Version=2011-06-15"
SCOPE = "AKIAIOSFODNN7EXAMPLE/20240115/us-east-1/{}/aws4_request"


@pytest.fixture
def client(credentials: Credentials) -> Iterator[Client]:
    with enforce.enforcing():  # after the caller is made: IAM enforced from here on
        yield Client(guarded(DomainDispatcherApplication(create_backend_app)))


@pytest.fixture
def credentials(moto: None) -> Credentials:
    iam = boto3.client("iam")
    iam.create_user(UserName="caller")
    made = iam.create_access_key(UserName="caller")["AccessKey"]
    return Credentials(made["AccessKeyId"], made["SecretAccessKey"])


def answer(client: Client, headers: dict[str, str], path: str = STS) -> tuple[int, str, str]:
    response: Any = client.get(path, headers=headers)
    return response.status_code, response.headers.get("Content-Type", ""), response.get_data(as_text=True)


def test_the_genuine_signed_request_is_served(client: Client, credentials: Credentials) -> None:
    form = "Action=GetCallerIdentity&Version=2011-06-15"
    headers = {"Host": "localhost", "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    request = AWSRequest(method="POST", url="http://localhost/", data=form, headers=headers)
    SigV4Auth(credentials, "sts", REGION).add_auth(request)
    response: Any = client.post("/", data=form, headers=dict(request.headers))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "GetCallerIdentityResult" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("AWS4-HMAC-SHA256 ,,,", id="commas"),
        pytest.param("AWS4-HMAC-SHA256 Credential=\xff/\xfe", id="latin-1-scope"),
        pytest.param("AWS4-HMAC-SHA256", id="scheme-only"),
        pytest.param(" ", id="space"),
        pytest.param("Bearer", id="one-word"),
        pytest.param("AWS :", id="sigv2-without-key"),
        pytest.param(f"AWS4-HMAC-SHA256 Credential={SCOPE.format('sts')}", id="sts-scope-without-signature"),
    ],
)
def test_a_malformed_authorization_is_the_query_services_incomplete_signature(
    client: Client, authorization: str
) -> None:
    status, content_type, body = answer(client, {"Authorization": authorization})
    assert (status, "html" in content_type) == (400, False), body
    assert "<Code>IncompleteSignature</Code>" in body


def test_a_malformed_authorization_to_a_json_service_is_its_json_error(client: Client) -> None:
    headers = {"Authorization": "AWS4-HMAC-SHA256 ,,,", "X-Amz-Target": "TrentService.ListKeys"}
    status, _, body = answer(client, headers, "/")
    assert status == 400
    assert '"__type": "IncompleteSignatureException"' in body


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(f"AWS4-HMAC-SHA256 Credential={SCOPE.format('s3')}", "AuthorizationHeaderMalformed", id="sigv4"),
        pytest.param("AWS4-HMAC-SHA256 ,,,", "AuthorizationHeaderMalformed", id="sigv4-commas"),
        pytest.param("Bearer", "InvalidArgument", id="unknown-type"),
        pytest.param("AWS nocolon", "InvalidArgument", id="sigv2-without-signature"),
    ],
)
def test_a_malformed_authorization_to_s3_is_s3s_xml(client: Client, authorization: str, code: str) -> None:
    status, content_type, body = answer(client, {"Authorization": authorization}, "/bucket/key")
    assert (status, content_type) == (400, "application/xml"), body
    assert f"<Code>{code}</Code>" in body


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Amz-Target": "NoDot"}, id="unsigned-target-without-dot"),
        pytest.param(
            {
                "Authorization": f"AWS4-HMAC-SHA256 Credential={SCOPE.format('dynamodb')}, "
                "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
                "X-Amz-Target": "NoUnderscore",
            },
            id="dynamodb-target-moto-cannot-split",
        ),
    ],
)
def test_a_request_moto_cannot_route_is_400_not_500(client: Client, headers: dict[str, str]) -> None:
    status, _, body = answer(client, headers, "/")
    assert status == 400, body
    assert "UnknownOperationException" in body


def test_an_exception_escaping_a_backend_is_an_aws_500_not_html(moto: None) -> None:
    class Broken:
        def get_application(self, environ: dict[str, Any]) -> Any:
            def backend(*_args: Any) -> Any:
                raise RuntimeError("the emulation's own bug")

            return backend

    response: Any = Client(guarded(Broken())).get(STS)
    assert response.status_code == 500
    assert "<Code>InternalFailure</Code>" in response.get_data(as_text=True)
