"""Text no AWS call can carry, through the app's real entry points: a 400 with its code on the API, a quarantine
with its reason for inbox files, never a 500 or a dead letter, and the secret left as it was.

JSON can spell a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it into a ``str`` botocore cannot encode.
Before chalicelib/untrusted.py such a value in an imported secret failed inside ``str.encode``/botocore with
``UnicodeEncodeError``: a 500 on ``POST /transfer/import`` and, for an inbox file, a failed batch retried into the
dead-letter queue. Control, bidi and non-characters in a description reached Secrets Manager as they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

import app as credport_app
from chalicelib.aws import AwsServices
from chalicelib.config import get_settings
from chalicelib.envelope import public_key_from_pem, seal
from chalicelib.services import Services
from tests.conftest import app_services
from tests.functional.test_transfer_redelivery import deliver, queued_notifications
from tests.support import gateway_event, proxy_post

EXISTING = "credport-dev/imported/existing"
SENDER = {
    "userArn": "arn:aws:iam::123456789012:user/sender",
    "accountId": "123456789012",
    "caller": "AIDAEXAMPLE",
    "user": "AIDAEXAMPLE",
    "sourceIp": "203.0.113.7",
}


@pytest.fixture
def client(services: Services, aws: AwsServices) -> Iterator[Client]:
    aws.secrets.create(EXISTING, "old value")
    with Client(credport_app.app, stage_name="dev") as test_client:
        yield test_client


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The API handler invoked with an API Gateway proxy event, as Lambda does (the identity included)."""
    response = credport_app.app(event, None)
    return response["statusCode"], json.loads(response["body"])


def post_import(body: str) -> tuple[int, dict[str, Any]]:
    event = gateway_event("/transfer/import", SENDER, method="POST", headers={"Content-Type": "application/json"})
    event["body"] = body
    return call(event)


def sealed(plaintext: str) -> str:
    """A JWE to the import key around exactly this JSON text (escapes as written: json.dumps would escape)."""
    recipient = public_key_from_pem(app_services().import_keys.current().public_pem())
    return seal(recipient, plaintext.encode("utf-8"))


def document(**fields: str) -> str:
    """An import document; ``json.dumps`` spells each lone surrogate as the escape an attacker would send."""
    return json.dumps({"secret_name": EXISTING, "value": "new value", **fields})


# What each bad document is refused for: the reason recorded with a quarantined file, and in the 400's message.
BAD_DOCUMENTS = {
    "surrogate in the value": (document(value="pass\ud800word"), "unencodable_text"),
    "low surrogate alone": (document(value="\udfff"), "unencodable_text"),
    "reversed pair": (document(value="\ude00\ud83d"), "unencodable_text"),
    "surrogate in the description": (document(description="db \ud800"), "unencodable_text"),
    "surrogate in the name": (document(secret_name=EXISTING + "\ud800"), "unencodable_text"),
    "surrogate in an unknown field": (document(note="\udbff"), "unencodable_text"),
    "surrogate in a key": (document(**{"\ud800": "x"}), "unencodable_text"),
    "NUL in the description": (document(description="db\x00"), "forbidden_character"),
    "escape in the description": (document(description="\x1b[31mred"), "forbidden_character"),
    "C1 control in the description": (document(description="a\x85b"), "forbidden_character"),
    "bidi override in the description": (document(description="abc\u202edcba"), "forbidden_character"),
    "non-character in the description": (document(description="x\ufffe"), "forbidden_character"),
    "non-character U+FDD0": (document(description="\ufdd0"), "forbidden_character"),
    "NUL in the name": (document(secret_name=EXISTING + "\x00"), "bad_payload"),
    "over-long description": (document(description="d" * 2049), "bad_payload"),
    "over-long name": (document(secret_name="credport-dev/imported/" + "n" * 600), "bad_payload"),
    "over-long value": (document(value="v" * (64 * 1024 + 1)), "bad_value_size"),
    "NaN": ('{"secret_name": "%s", "value": NaN}' % EXISTING, "bad_json"),  # noqa: UP031 (JSON text, as sent)
}


def unchanged(aws: AwsServices) -> None:
    """The secret is as it was: one version, the old value."""
    assert aws.secrets.get_value(EXISTING).value == "old value"
    assert len(aws.secrets.describe(EXISTING).versions) == 1


# --- the API ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_a_bad_document_is_a_400_on_the_api_and_a_quarantine_from_the_inbox(
    client: Client, aws: AwsServices, case: str
) -> None:
    plaintext, reason = BAD_DOCUMENTS[case]
    envelope = sealed(plaintext)
    status, answer = post_import(json.dumps({"jwe": envelope}))
    assert (status, answer["error"]) == (400, "import_refused"), answer
    assert answer["message"] == f"The file cannot be imported: {reason}."
    unchanged(aws)

    # The same file dropped into the inbox: an S3 notification through SQS, as Lambda's event source mapping
    # delivers it. No exception: the batch succeeds, nothing is retried into the dead-letter queue.
    bucket = get_settings().resources.transfer_bucket
    queued_notifications()  # the notifications of earlier objects
    aws.s3.put(bucket, "inbox/bad.jwe", envelope.encode())
    (body,) = queued_notifications()
    deliver(client, body)
    assert sorted(aws.s3.list_keys(bucket, "quarantine/")) == [
        "quarantine/bad.jwe",
        "quarantine/bad.jwe.error.json",
    ]
    error = json.loads(aws.s3.get(bucket, "quarantine/bad.jwe.error.json").body)
    assert (error["reason"], error["source"]) == (reason, "inbox/bad.jwe")
    assert list(aws.s3.list_keys(bucket, "inbox/")) == []
    unchanged(aws)
    deliver(client, body)  # a redelivery of the same event is done, not an error


def test_a_good_description_with_tabs_line_breaks_and_any_script_imports(client: Client, aws: AwsServices) -> None:
    name = "credport-dev/imported/described"
    text = "Base de données\tprod\r\n数据库 — קבוצה 🔑 \u200f"
    value = "any text \x00\x1b\ufffe\U0001f511 is a value"  # values are opaque: only encodability is required
    plaintext = document(secret_name=name, description=text, value=value)
    status, answer = post_import(json.dumps({"jwe": sealed(plaintext)}))
    assert status == 200, answer
    assert aws.secrets.get_value(name).value == value
    assert aws.secrets.describe(name).description == text


# JSON bodies spelling a lone surrogate anywhere: refused by the strict loader before any route reads them.
SURROGATE_BODIES = [
    '{"jwe": "\\ud800"}',
    '{"jwe": "abc.\\udfff.def.ghi.jkl"}',
    '{"\\udc80": "x"}',
    '{"jwe": "x", "pad": [1, {"deep": ["\\uDBFF"]}]}',
    '{"jwe": "\\ud83d\\ud83d"}',  # two high surrogates: no pair
]


@pytest.mark.parametrize("body", SURROGATE_BODIES)
def test_a_lone_surrogate_in_the_import_body_is_invalid_text(client: Client, body: str) -> None:
    status, answer = post_import(body)
    assert (status, answer["error"]) == (400, "invalid_text")


@pytest.mark.parametrize("body", SURROGATE_BODIES)
def test_a_lone_surrogate_in_the_auto_id_body_is_invalid_text(client: Client, body: str) -> None:
    response = proxy_post("/auto-id", body.encode())  # the auto_id function, as API Gateway hands it the request
    assert response.status_code == 400
    assert json.loads(response.body)["error"] == "invalid_text"


def test_a_lone_surrogate_already_decoded_in_the_event_body_is_invalid_text(client: Client) -> None:
    """The Lambda runtime decodes the event's JSON: a body str can hold the surrogate itself, which Chalice's
    ``raw_body`` fails to encode (a 500 before)."""
    status, answer = post_import('{"jwe": "\ud800"}')
    assert (status, answer["error"]) == (400, "invalid_text")


def test_a_surrogate_in_a_query_parameter_is_invalid_text(client: Client) -> None:
    # invalid_text, not invalid_audience: refused before any route reads it; a bad name as much as a bad value
    for query in ({"aud": "sts.amazonaws.com\ud800"}, {"\udc80": "x"}):
        status, answer = call(gateway_event("/token", SENDER, query=query))
        assert (status, answer["error"]) == (400, "invalid_text")


def test_a_surrogate_in_a_path_parameter_is_invalid_text(client: Client) -> None:
    path = "/transfer/clients/{client_id}/send"
    event = gateway_event(path, SENDER, method="POST")
    event["pathParameters"] = {"client_id": "client\ud800"}
    event["path"] = "/transfer/clients/client%ED%A0%80/send"
    status, answer = call(event)
    assert (status, answer["error"]) == (400, "invalid_text")


def test_a_surrogate_in_a_header_is_invalid_text(client: Client) -> None:
    status, answer = call(gateway_event("/health", {"sourceIp": "203.0.113.7"}, headers={"X-Note": "\udcff"}))
    assert (status, answer["error"]) == (400, "invalid_text")
    assert "\udcff" not in answer["message"]
    assert call(gateway_event("/health", {"sourceIp": "203.0.113.7"}, headers={"X-Note": "ok é"}))[0] == 200
