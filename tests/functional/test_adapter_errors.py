"""Shared clients and failures: the lazy ClientFactory, its retry settings, and botocore errors turned into credport
errors (transient ones retryable with 503, the rest opaque, AWS error text never copied)."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from urllib3 import HTTPResponse

from chalicelib.aws import AwsConflict, AwsNotFound, AwsRejected, AwsServices, AwsUnavailable, aws_call, translate
from chalicelib.aws.clients import ClientFactory, ClientOptions
from chalicelib.aws.s3 import ObjectStore
from chalicelib.aws.secrets import SecretStore
from chalicelib.errors import CredportError
from tests.conftest import REGION

CANARY = "SECRET-CANARY-123"


def client_error(code: str, *, status: int = 400, message: str = CANARY, operation: str = "Op") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "req-1"},
    }
    return ClientError(response, operation)


def stubbed(service: str) -> tuple[Any, Stubber]:
    """A real botocore client whose responses come from a Stubber (no network, no moto)."""
    client = botocore.session.get_session().create_client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return client, Stubber(client)


# --- ClientFactory ----------------------------------------------------------------------------------------------------


def test_factory_creates_no_client_until_an_adapter_calls_aws(factory: ClientFactory) -> None:
    """Building an adapter creates no client (a cold start pays only for the clients its first request calls): its
    first call does, and every adapter of that service shares it."""
    services = AwsServices(factory)
    assert not factory.created
    table, tagging = services.table("anything"), services.tagging
    assert services.s3 is services.s3
    assert services.table("other") is not table
    assert not factory.created
    assert services.kms.alias_target("alias/none") is None  # moto: NotFoundException
    assert factory.created == ("kms",)
    assert services.kms.alias_target("alias/none") is None
    assert factory.created == ("kms",)
    assert tagging is services.tagging


def test_factory_returns_one_client_per_service(factory: ClientFactory) -> None:
    sqs = factory.client("sqs")
    assert factory.client("sqs") is sqs
    assert factory.client("sns") is not sqs
    assert factory.created == ("sqs", "sns")


def test_factory_hands_every_thread_the_same_client(factory: ClientFactory) -> None:
    threads = 16
    barrier = threading.Barrier(threads)

    def ask(_: int) -> object:
        barrier.wait()
        return factory.client("kms")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        clients = list(pool.map(ask, range(threads)))
    assert len({id(c) for c in clients}) == 1
    assert factory.created == ("kms",)


def test_factory_clients_honour_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "amazonaws.com" in ClientFactory().client("sqs").meta.endpoint_url
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    factory = ClientFactory(ClientOptions(region=REGION))
    assert factory.client("sqs").meta.endpoint_url == "http://127.0.0.1:1"
    assert factory.client("s3").meta.endpoint_url == "http://127.0.0.1:1"


def test_factory_configures_standard_retries_and_timeouts() -> None:
    config = ClientFactory(ClientOptions(region=REGION, max_attempts=4, timeout=2.5)).client("sts").meta.config
    assert config.retries["mode"] == "standard"
    assert config.connect_timeout == 2.5
    assert config.read_timeout == 2.5
    assert config.region_name == REGION


@pytest.mark.parametrize("attempts", [1, 3])
def test_factory_max_attempts_is_the_total_number_of_attempts(attempts: int) -> None:
    config = ClientFactory(ClientOptions(region=REGION, max_attempts=attempts)).client("sts").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": attempts}


# --- translate ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "retry_after"),
    [
        ("ThrottlingException", 400, "2"),
        ("LimitExceededException", 400, "2"),  # KMS request-rate throttling
        ("SlowDown", 503, "2"),
        ("ProvisionedThroughputExceededException", 400, "2"),
        ("SomethingNew", 429, "2"),
        ("InternalFailure", 500, "1"),
        ("KMSInternalException", 500, "1"),
        ("Unknown", 500, "1"),
        ("Unknown", 503, "1"),
        ("RequestTimeout", 400, "1"),
    ],
)
def test_transient_client_errors_become_unavailable(code: str, status: int, retry_after: str) -> None:
    error = translate(client_error(code, status=status), "kms", "Sign")
    assert isinstance(error, AwsUnavailable)
    assert (error.status, error.code, error.headers) == (503, "service_unavailable", {"Retry-After": retry_after})
    assert (error.service, error.operation, error.aws_code) == ("kms", "Sign", code)


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
        EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_network_failures_become_unavailable(exc: Exception) -> None:
    error = translate(exc, "kms", "Sign")
    assert isinstance(error, AwsUnavailable)
    assert error.status == 503
    assert error.headers["Retry-After"] == "1"
    assert error.aws_code == type(exc).__name__


@pytest.mark.parametrize(
    ("code", "status", "cls", "http", "api_code"),
    [
        ("ResourceNotFoundException", 400, AwsNotFound, 404, "not_found"),
        ("NoSuchKey", 404, AwsNotFound, 404, "not_found"),
        ("404", 404, AwsNotFound, 404, "not_found"),  # S3 HeadObject
        ("AWS.SimpleQueueService.NonExistentQueue", 400, AwsNotFound, 404, "not_found"),
        ("ConditionalCheckFailedException", 400, AwsConflict, 409, "conflict"),
        ("ResourceExistsException", 400, AwsConflict, 409, "conflict"),
        ("PreconditionFailed", 412, AwsConflict, 409, "conflict"),
        ("AccessDeniedException", 400, AwsRejected, 500, "dependency_error"),
        ("ValidationException", 400, AwsRejected, 500, "dependency_error"),
        ("InvalidCiphertextException", 400, AwsRejected, 500, "dependency_error"),
        ("PreconditionFailed", 400, AwsRejected, 500, "dependency_error"),
    ],
)
def test_permanent_client_errors(code: str, status: int, cls: type[CredportError], http: int, api_code: str) -> None:
    error = translate(client_error(code, status=status), "secretsmanager", "GetSecretValue")
    assert type(error) is cls
    assert isinstance(error, CredportError)
    assert (error.status, error.code) == (http, api_code)
    assert "Retry-After" not in error.headers


def test_other_botocore_errors_are_rejected_and_plain_exceptions_pass_through() -> None:
    rejected = translate(ParamValidationError(report="bad"), "s3", "PutObject")
    assert isinstance(rejected, AwsRejected)
    assert rejected.aws_code == "ParamValidationError"
    original = ValueError("ours")
    assert translate(original, "s3", "PutObject") is original


@pytest.mark.parametrize(
    "code",
    ["ThrottlingException", "ResourceNotFoundException", "ConditionalCheckFailedException", "ValidationException"],
)
def test_aws_error_text_never_reaches_the_caller(code: str) -> None:
    error = translate(client_error(code), "secretsmanager", "GetSecretValue")
    assert isinstance(error, CredportError)
    for rendered in (str(error), repr(error), error.message, *error.body().values(), *error.headers.values()):
        assert CANARY not in rendered


def test_aws_call_chains_the_original_exception() -> None:
    original = client_error("ValidationException")
    with pytest.raises(AwsRejected) as caught, aws_call("dynamodb", "PutItem"):
        raise original
    assert caught.value.__cause__ is original
    assert CANARY not in str(caught.value)


def test_aws_call_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), aws_call("dynamodb", "PutItem"):
        raise KeyError("not botocore")


def test_stubbed_throttling_reaches_the_caller_as_503() -> None:
    client, stubber = stubbed("secretsmanager")
    stubber.add_client_error(
        "get_secret_value", service_error_code="ThrottlingException", service_message=CANARY, http_status_code=400
    )
    with stubber, pytest.raises(AwsUnavailable) as caught:
        SecretStore(client).get_value("credport/any")
    stubber.assert_no_pending_responses()
    assert caught.value.headers == {"Retry-After": "2"}
    assert isinstance(caught.value.__cause__, ClientError)
    assert CANARY not in str(caught.value)


def test_stubbed_server_error_and_missing_key_from_s3() -> None:
    client, stubber = stubbed("s3")
    stubber.add_client_error("get_object", service_error_code="InternalError", http_status_code=500)
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    with stubber:
        with pytest.raises(AwsUnavailable):
            ObjectStore(client).get("credport-bucket", "key")
        assert ObjectStore(client).head("credport-bucket", "key") is None
    stubber.assert_no_pending_responses()


def test_unreachable_endpoint_is_unavailable() -> None:
    client = botocore.session.get_session().create_client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(AwsUnavailable) as caught:
        SecretStore(client).get_value("credport/any")
    assert caught.value.aws_code == "EndpointConnectionError"
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


def count_attempts(options: ClientOptions) -> int:
    """How many HTTP requests one failing call makes (every request is answered 500 without any network)."""
    client = ClientFactory(options).client("sts")
    sent: list[str] = []

    def answer_500(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        return AWSResponse(request.url, 500, {}, HTTPResponse(body=io.BytesIO(b""), status=500, preload_content=False))

    client.meta.events.register("before-send.sts.GetCallerIdentity", answer_500)
    with pytest.raises(AwsUnavailable), aws_call("sts", "GetCallerIdentity"):
        client.get_caller_identity()
    return len(sent)


def test_max_attempts_one_means_a_single_attempt() -> None:
    assert count_attempts(ClientOptions(region=REGION, max_attempts=1)) == 1
