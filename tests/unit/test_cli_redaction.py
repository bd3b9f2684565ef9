"""No credential reaches a CLI's error line, whatever shape a server (or a library) echoes it in: every line goes
through client.errors.one_line, which redacts by shape. Words, paths and codes a person needs stay readable."""

from __future__ import annotations

import pytest

from client.errors import one_line, redact

SESSION_TOKEN = "IQoJb3JpZ2luX2VjEHYaCXVzLWVhc3QtMSJHMEUCIQD1x2Y3z4ExAmPlE5t6u7K8L9M0" + "Ab1C" * 50
SIGNATURE = "fb2bd24e" * 8
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcm46YXdzIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
SECRETS = (SESSION_TOKEN[:40], SIGNATURE, ACCESS_KEY, JWT[:24], "wJalrXUtnFEMIK7MDENGbPxRfiCY")


@pytest.mark.parametrize(
    "echoed",
    [
        f"X-Amz-Security-Token: {SESSION_TOKEN}",  # a header line
        f'{{"X-Amz-Security-Token": "{SESSION_TOKEN}"}}',  # JSON
        f"{{'X-Amz-Security-Token': '{SESSION_TOKEN}'}}",  # a Python repr
        f"headers were {SESSION_TOKEN} and more",  # the bare value
        f"X-Amz-Security-Token%3D{SESSION_TOKEN}",  # URL-encoded
        f"Credential%3D{ACCESS_KEY}%2F20261201%2Fus-east-1 Signature%3D{SIGNATURE}",
        f"Authorization=AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261201/us-east-1/execute-api/aws4_request,"
        f" SignedHeaders=host;x-amz-date, Signature={SIGNATURE}",
        f"Authorization: Bearer {JWT}",
        f'{{"SessionToken": "{SESSION_TOKEN}", "SecretAccessKey": "wJalrXUtnFEMIK7MDENGbPxRfiCY"}}',
        "aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCY",
        f"the link https://b.s3.amazonaws.com/k?X-Amz-Signature={SIGNATURE}&X-Amz-Credential={ACCESS_KEY}",
    ],
)
def test_a_credential_in_any_shape_is_redacted(echoed: str) -> None:
    line = one_line(f"GET http://127.0.0.1:1/token answered 400 Bad Request: bad_request: got {echoed}: retry")
    assert "<redacted>" in line
    for secret in SECRETS:
        assert secret not in line, secret
    assert line.endswith(": retry")  # what follows a redacted value is kept


@pytest.mark.parametrize(
    "text",
    [
        "credport: invalid token: its audience is 'sts.amazonaws.com', not --aud 'x' (refused by the aud check: aud)",
        "no session yet (/tmp/pytest-of-root/pytest-99/test_session_before_start_or_w0/session.json does not exist)",
        "saved generation 3 to /root/.local/state/credport/autoid-build-runner-0123456789abcdef.json",
        "arn:aws:iam::123456789012:role/team/credport-dev-autoid-ci is not authorized to perform: sts:AssumeRole",
        "The last rotation finished less than 46800 seconds ago: pass --force to rotate anyway",
        "GET http://127.0.0.1:8000/token answered 404 Not Found (no body): is --endpoint the API's URL?",
    ],
)
def test_what_a_person_needs_to_read_is_kept(text: str) -> None:
    assert redact(text) == text
