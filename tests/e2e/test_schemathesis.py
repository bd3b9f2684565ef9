"""Hostile input on every route: schemathesis generates requests from openapi.yaml and sends them to the local
stack over HTTP (IAM routes signed with the developer's SigV4 credentials, bearer routes with a live session
token). Every answer must be documented: no 5xx, a documented status, content type, body schema and headers,
and every error in one of the two documented error shapes (probes of undocumented methods and media types too).

Generated input rarely gets past validation, so known-good requests (a registered transfer client, sealed
imports, an enrolled auto-id client) are also sent through the same checks, for the documented success and
refusal answers. Run with ``-s`` to see the tally: cases per operation, statuses, 5xx found.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import pytest
import requests
import schemathesis
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, settings
from openapi_schema_validator import OAS30Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib.autoid import Want, build_request
from chalicelib.envelope import public_key_from_pem, seal
from client.autoid import Bundle
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
SPEC_PATH = REPO_ROOT / "openapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
REGION = "us-east-1"
UNRESERVED = "-_.~"
BIN = Path(sys.executable).parent
MAX_EXAMPLES = 100  # per operation in the fuzzing phase (positive and negative cases), after the coverage phase
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
DOCUMENTED = {
    f"{method.upper()} {path}"
    for path, item in SPEC["paths"].items()
    for method in item
    if method in ("get", "post", "put", "delete", "patch")
}
# The coverage phase also probes each path with methods it does not document. TRACE and QUERY are left out: the
# local stack's HTTP server (http.server, before any gateway or app code) answers them 501 itself; neither the
# app nor API Gateway's model of it is involved. Every other method is probed, and must get an error shape.
UNEXPECTED_METHODS = ["get", "put", "post", "delete", "options", "patch"]
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"unexpected-methods": UNEXPECTED_METHODS}}})
schema = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG)
AnyCase = schemathesis.Case[Any]


def component(name: str) -> OAS30Validator:
    return OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]})


ERROR, SERVER_ERROR, GATEWAY_ERROR = component("Error"), component("ServerError"), component("GatewayError")


@dataclass
class Tally:
    """What the run did per operation ("GET /token"): statuses of documented-method cases ("gw" when API Gateway
    answered itself) and of probes with other methods ("OPTIONS:200"), and every 5xx seen."""

    cases: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    server_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    known_cases: int = 0

    def record(self, case: AnyCase, response: schemathesis.Response) -> None:
        label = case.operation.label
        self.cases[label] += 1
        status = str(response.status_code) + ("gw" if response.headers.get("x-amzn-errortype") else "")
        if case.method.upper() != case.operation.method.upper():
            status = f"{case.method.upper()}:{status}"
        self.statuses[label][status] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

    def lines(self) -> list[str]:
        total = sum(self.cases.values())
        rows = [
            f"  {label:<40} {self.cases[label]:>5} cases  "
            + " ".join(f"{status}x{count}" for status, count in sorted(self.statuses[label].items()))
            for label in sorted(self.cases)
        ]
        summary = (
            f"schemathesis {schemathesis.__version__}: {total} cases ({self.known_cases} known-good) over "
            f"{len(self.cases)} operations, {len(self.server_errors)} 5xx, {self.seconds:.1f} s in requests"
        )
        return [summary, *rows, *(f"  5xx: {line}" for line in self.server_errors)]


TALLY = Tally()


class SigV4(requests.auth.AuthBase):
    """Sign the request exactly as it goes on the wire (after schemathesis serialised it), as an SDK would."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        # A value generated for the documented Authorization header: the signature replaces it.
        prepared.headers.pop("Authorization", None)
        # requests writes a space in the query as '+'; SigV4 canonicalises the decoded query per RFC 3986 (space
        # is %20), as AWS does and as the SDKs send it. Send the same values, encoded the SigV4 way.
        parts = urlsplit(prepared.url or "")
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = "&".join(f"{quote(k, safe=UNRESERVED)}={quote(v, safe=UNRESERVED)}" for k, v in pairs)
        prepared.url = urlunsplit(parts._replace(query=query))
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        signing = AWSRequest(method=prepared.method, url=prepared.url, data=body, headers=dict(prepared.headers))
        SigV4Auth(self.credentials, "execute-api", REGION).add_auth(signing)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signing.headers:
                prepared.headers[name] = signing.headers[name]
        return prepared


@dataclass
class Caller:
    """Sends a case the way its operation's security requires, and checks the answer."""

    api: str
    signer: SigV4
    bearer_token: str
    http: requests.Session

    def exchange(
        self, case: AnyCase, *, raw_body: bytes | None = None, headers: dict[str, Any] | None = None
    ) -> schemathesis.Response:
        """``raw_body`` replaces the serialised body with exact bytes (what no JSON serialiser writes: invalid
        UTF-8, encoded surrogates), signed as sent; ``headers`` are added."""
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        security = case.operation.definition.raw.get("security")
        if security == [{"sigv4": []}]:
            kwargs["auth"] = self.signer
        elif security == [{"bearer": []}]:
            # Negative cases may still drop the header: a missing token must be the documented 401.
            kwargs["headers"].setdefault("Authorization", f"Bearer {self.bearer_token}")
        else:
            assert security == [], f"{case.operation.label}: unknown security {security}"
        if raw_body is not None:
            kwargs["auth"] = RawBody(raw_body, kwargs.get("auth"))
        started = time.monotonic()
        response = case.call(base_url=self.api, session=self.http, timeout=30, **kwargs)
        TALLY.seconds += time.monotonic() - started
        TALLY.record(case, response)
        case.validate_response(response, checks=CHECKS)
        assert_error_shape(case, response)
        return response


class RawBody(requests.auth.AuthBase):
    """Put exact bytes on the wire as the body (then sign them, for an IAM route)."""

    def __init__(self, body: bytes, then: requests.auth.AuthBase | None) -> None:
        self.body, self.then = body, then

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        prepared.body = self.body
        prepared.headers["Content-Length"] = str(len(self.body))
        prepared.headers["Content-Type"] = "application/json"
        return self.then(prepared) if self.then is not None else prepared


def assert_error_shape(case: AnyCase, response: schemathesis.Response) -> None:
    """Every error, including answers to probes the schema checks skip, is one of the two documented shapes."""
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), where
    body = response.json()
    if response.headers.get("x-amzn-errortype"):  # API Gateway answered before the app
        assert GATEWAY_ERROR.is_valid(body) or ERROR.is_valid(body), f"{where}: {body}"
        return
    assert ERROR.is_valid(body), f"{where}: not the Error shape: {response.text[:300]}"
    if response.status_code >= 500:
        assert SERVER_ERROR.is_valid(body), f"{where}: a 5xx carries the request id"


def signed(caller_signer: SigV4, method: str, url: str, body: bytes = b"") -> requests.Response:
    headers = {"Content-Type": "application/json"} if body else {}
    prepared = requests.Request(method, url, data=body, headers=headers).prepare()
    caller_signer(prepared)
    with requests.Session() as session:
        return session.send(prepared, timeout=30)


@pytest.fixture(scope="module")
def caller(stack: RunningStack) -> Iterator[Caller]:
    signer = SigV4(stack.credentials())
    started = signed(signer, "POST", stack.api + "/session")
    assert started.status_code == 200, started.text
    with requests.Session() as http:
        yield Caller(stack.api, signer, started.json()["token"], http)
    if TALLY.cases:
        print("\n" + "\n".join(TALLY.lines()))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_generated_requests_get_documented_answers(case: AnyCase, caller: Caller) -> None:
    caller.exchange(case)


# Known-good requests ------------------------------------------------------------------------------------------


def operation(method: str, path: str) -> Any:
    return schema[path][method]


def known(caller: Caller, case: AnyCase, status: int) -> schemathesis.Response:
    response = caller.exchange(case)
    TALLY.known_cases += 1
    assert response.status_code == status, f"{case.operation.label}: {response.status_code} {response.text[:300]}"
    return response


def registered_client(stack: RunningStack) -> str:
    """A transfer client registered the way a client does it: its public key dropped into the bucket."""
    client_id = f"st-{uuid.uuid4().hex[:10]}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    stack.client("s3").put_object(Bucket=bucket, Key=f"clients/{client_id}/public.pem", Body=pem)
    table = stack.info["app_env"]["CREDPORT_STATE_TABLE"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        item = stack.client("dynamodb").get_item(
            TableName=table, Key={"pk": {"S": f"transfer-client#{client_id}"}, "sk": {"S": "profile"}}
        )
        if "Item" in item:
            return client_id
        time.sleep(0.1)
    raise AssertionError(f"transfer client {client_id} was not registered")


def test_known_transfer_requests_get_documented_answers(stack: RunningStack, caller: Caller) -> None:
    send = operation("POST", "/transfer/clients/{client_id}/send")
    client_id = registered_client(stack)
    report = known(caller, send.Case(path_parameters={"client_id": client_id}), 200).json()
    assert report["client_id"] == client_id
    known(caller, send.Case(path_parameters={"client_id": f"{client_id}-gone"}), 404)

    key = public_key_from_pem(requests.get(stack.api + "/transfer/import-key", timeout=30).json()["pem"].encode())
    imports = operation("POST", "/transfer/import")

    def sealed(name: str) -> str:
        return seal(key, json.dumps({"secret_name": name, "value": "schemathesis"}).encode())

    inline = f"credport-dev/imported/st-{uuid.uuid4().hex[:8]}"
    receipt = known(caller, imports.Case(body={"jwe": sealed(inline)}, media_type="application/json"), 200).json()
    assert receipt["secret_name"] == inline
    outside = sealed(f"credport-dev/autoid/st-{uuid.uuid4().hex[:8]}")  # outside the import prefix
    known(caller, imports.Case(body={"jwe": outside}, media_type="application/json"), 400)

    linked = f"credport-dev/imported/st-{uuid.uuid4().hex[:8]}"
    s3, bucket = stack.client("s3"), stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    s3.put_object(Bucket=bucket, Key=f"links/{linked.rsplit('/', 1)[1]}.jwe", Body=sealed(linked).encode())
    for object_key, status in ((f"links/{linked.rsplit('/', 1)[1]}.jwe", 200), ("links/missing.jwe", 400)):
        link = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": object_key}, ExpiresIn=300)
        known(caller, imports.Case(body={"url": link}, media_type="application/json"), status)


def enrolled_bundle(stack: RunningStack, folder: Path, secret_pattern: str) -> Bundle:
    client_id = f"st-{uuid.uuid4().hex[:10]}"
    bundle = folder / "bundle.json"
    command = ["autoid", "enroll", client_id, "--secret", secret_pattern, "--out", str(bundle), "--local"]
    enrolled = subprocess.run(
        [str(BIN / "credport-admin"), *command],
        env={**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    return Bundle.load(bundle)


def test_known_auto_id_requests_get_documented_answers(stack: RunningStack, caller: Caller, tmp_path: Path) -> None:
    prefix = f"credport-dev/autoid/st-{uuid.uuid4().hex[:8]}"
    stack.client("secretsmanager").create_secret(Name=f"{prefix}-db", SecretString="schemathesis")
    bundle = enrolled_bundle(stack, tmp_path, f"{prefix}-*")
    identify = operation("POST", "/auto-id")

    def request(secret_id: str) -> str:
        document, _ = build_request(bundle.client_id, bundle.generation, bundle.entropy, Want(secret_id=secret_id))
        return seal(bundle.server_key(), json.dumps(document).encode())

    served = request(f"{prefix}-db")
    known(caller, identify.Case(body={"jwe": served}, media_type="application/json"), 200)
    known(caller, identify.Case(body={"jwe": served}, media_type="application/json"), 401)  # a replay
    known(caller, identify.Case(body={"jwe": request(f"{prefix}-absent")}, media_type="application/json"), 404)
    known(caller, identify.Case(body={"jwe": request("credport-dev/imported/x")}, media_type="application/json"), 403)


# Unicode-hostile requests -------------------------------------------------------------------------------------
# Lone surrogates spelled as JSON escapes (Python decodes them into text no AWS call or log line can carry), bytes
# that are not UTF-8 (an encoded surrogate, UTF-16), NaN, controls, bidi overrides, non-characters, astral text:
# the JSON routes answer each with its documented 400, and no route is moved to a 5xx by such parameters or headers.

SURROGATE_TEXT = ["\ud800", "x\udfffy", "\ud83d\ud83d", "\udc80" * 40]
HOSTILE_TEXT = ["\x00\x1b[31m\x85", "\u202egnp.exe", "\ufdd0\ufffe\uffff", "é🔑\U0010ffff", "\ufeff", "Ω" * 300]
SURROGATE_BODIES = [
    b'{"jwe": "\\ud800"}',
    b'{"\\udc80": "x"}',
    b'{"jwe": "a", "pad": [{"x": "\\uDBFF"}]}',
    b'{"url": "https://example.com/\\udfff"}',
]
NOT_JSON_BODIES = [b'{"jwe": "\xed\xa0\x80"}', b'{"jwe": "\xff\xfe"}', b'{"jwe": NaN}', '{"jwe": "x"}'.encode("utf-16")]
JSON_ROUTES = [("POST", "/transfer/import"), ("POST", "/auto-id")]


def hostile(caller: Caller, case: AnyCase, **sent: Any) -> schemathesis.Response:
    """A hostile request through the usual checks (documented status and shape, no 5xx), counted as known."""
    response = caller.exchange(case, **sent)
    TALLY.known_cases += 1
    assert response.status_code < 500, f"{case.operation.label}: {response.status_code} {response.text[:300]}"
    return response


def test_unicode_hostile_bodies_get_their_documented_400(stack: RunningStack, caller: Caller) -> None:
    key = public_key_from_pem(requests.get(stack.api + "/transfer/import-key", timeout=30).json()["pem"].encode())
    for method, path in JSON_ROUTES:
        case = operation(method, path).Case(body={"jwe": "placeholder"}, media_type="application/json")
        escaped = [json.dumps({"jwe": text}).encode() for text in SURROGATE_TEXT]  # json.dumps writes "\ud800"
        for raw in SURROGATE_BODIES + escaped:
            answer = hostile(caller, case, raw_body=raw)
            assert (answer.status_code, answer.json()["error"]) == (400, "invalid_text"), raw
        for raw in NOT_JSON_BODIES:
            answer = hostile(caller, case, raw_body=raw)
            assert (answer.status_code, answer.json()["error"]) == (400, "bad_request"), raw
        for text in HOSTILE_TEXT:  # valid Unicode: the route's own refusal, never a 5xx
            hostile(caller, case, raw_body=json.dumps({"jwe": text}, ensure_ascii=False).encode())
    imports = operation("POST", "/transfer/import")
    name = f"credport-dev/imported/st-{uuid.uuid4().hex[:8]}"
    documents = [{"value": text} for text in SURROGATE_TEXT] + [{"description": "db\x00"}, {"description": "\u202e"}]
    for fields in documents:  # sealed: only the importer sees them, and quarantines them with a reason
        envelope = seal(key, json.dumps({"secret_name": name, "value": "v", **fields}).encode())
        answer = hostile(caller, imports.Case(body={"jwe": envelope}, media_type="application/json"))
        assert (answer.status_code, answer.json()["error"]) == (400, "import_refused")
    secrets = stack.client("secretsmanager").list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
    assert secrets == []


def test_unicode_hostile_parameters_and_headers_never_get_a_5xx(caller: Caller) -> None:
    # Header bytes that are not UTF-8 (an encoded surrogate, 0xff) and UTF-8 holding a C1 control; requests writes
    # a str header as latin-1, so these go on the wire as exactly those bytes (and SigV4 signs them as sent).
    raw_headers = {"X-Hostile": b"\xed\xa0\x80 \xff".decode("latin-1"), "X-Text": "é\x85".encode().decode("latin-1")}
    for label in sorted(DOCUMENTED):
        method, path = label.split(" ", 1)
        parameters: dict[str, Any] = {}
        if "{client_id}" in path:
            parameters["path_parameters"] = {"client_id": "clïent-\u202e"}
        for text in HOSTILE_TEXT:
            query = {"aud": text, "ttl": "٣٠٠"} if path == "/token" else None  # Arabic-Indic digits: not a ttl
            if (method, path) in JSON_ROUTES:
                case = operation(method, path).Case(body={"jwe": text}, media_type="application/json")
            else:
                case = operation(method, path).Case(query=query, **parameters)
            hostile(caller, case, headers=raw_headers)
        bearer = operation(method, path).definition.raw.get("security") == [{"bearer": []}]
        if bearer:  # a token that is not ASCII, and one whose bytes are not UTF-8
            for token in ("Bearer \xed\xa0\x80", "Bearer é.é.é".encode().decode("latin-1")):
                answer = hostile(caller, operation(method, path).Case(), headers={"Authorization": token})
                assert answer.status_code == 401


def test_every_operation_ran_and_no_server_error(caller: Caller) -> None:
    if not TALLY.cases:
        pytest.skip("run with the generated and known-good tests of this module")
    assert set(TALLY.cases) == DOCUMENTED, "schemathesis exercised every documented operation"
    assert TALLY.server_errors == []
    for label, statuses in TALLY.statuses.items():
        documented_method = {status for status in statuses if ":" not in status}
        # Each operation got past API Gateway to the app (a signature or token problem would show as "gw" only).
        assert any(not status.endswith("gw") for status in documented_method), f"{label}: {statuses}"
        assert any(status.startswith("2") for status in documented_method), f"{label} never succeeded: {statuses}"
