"""End to end over HTTP: API Gateway's IAM authorization, identities, and event delivery on the local stack."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from requests_aws4auth import AWS4Auth

from chalicelib.events import parse_notification
from tests.e2e.conftest import RunningStack, launch_e2e

pytestmark = pytest.mark.e2e
REGION = "us-east-1"


def signed(
    stack: RunningStack, path: str, *, method: str = "GET", body: bytes = b"", credentials: Credentials | None = None
) -> AWSRequest:
    request = AWSRequest(method=method, url=stack.api + path, data=body)
    SigV4Auth(credentials or stack.credentials(), "execute-api", REGION).add_auth(request)
    return request


def send(request: AWSRequest, *, body: bytes | None = None) -> requests.Response:
    return requests.request(
        request.method,
        request.url,
        headers=dict(request.headers),
        data=request.body if body is None else body,
        timeout=10,
    )


def wait_for(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_health_answers(stack: RunningStack) -> None:
    response = requests.get(stack.api + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_botocore_header_signature_returns_the_caller(stack: RunningStack) -> None:
    response = send(signed(stack, "/whoami"))
    assert response.status_code == 200, response.text
    assert response.json()["arn"] == stack.info["developer_arn"]
    assert response.json()["arn"] == "arn:aws:iam::123456789012:user/credport-developer"


def test_botocore_presigned_url_returns_the_caller(stack: RunningStack) -> None:
    request = AWSRequest(method="GET", url=stack.api + "/whoami")
    SigV4QueryAuth(stack.credentials(), "execute-api", REGION, expires=60).add_auth(request)
    response = requests.get(request.url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["arn"] == stack.info["developer_arn"]


def test_requests_aws4auth_signature_returns_the_caller(stack: RunningStack) -> None:
    creds = stack.credentials()
    auth = AWS4Auth(creds.access_key, creds.secret_key, REGION, "execute-api")
    response = requests.get(stack.api + "/whoami", params={"aud": "api://x y", "n": "1"}, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["arn"] == stack.info["developer_arn"]


def test_awscurl_with_the_developer_profile_returns_the_caller(stack: RunningStack) -> None:
    awscurl = Path(sys.executable).parent / "awscurl"
    result = subprocess.run(
        [str(awscurl), "--service", "execute-api", "--region", REGION, stack.api + "/whoami"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["arn"] == stack.info["developer_arn"]


def test_identity_is_filled_as_api_gateway_fills_it(stack: RunningStack) -> None:
    creds = stack.credentials()
    identity = send(signed(stack, "/e2e/identity")).json()
    iam_user = stack.client("iam").get_user(UserName="credport-developer")["User"]
    assert identity["userArn"] == iam_user["Arn"]
    assert identity["accountId"] == "123456789012"
    assert identity["caller"] == iam_user["UserId"]
    assert identity["user"] == iam_user["UserId"]
    assert identity["accessKey"] == creds.access_key
    assert identity["sourceIp"] == "127.0.0.1"


def test_a_role_session_shows_up_as_an_assumed_role(stack: RunningStack) -> None:
    assumed = stack.client("sts").assume_role(RoleArn=stack.info["workload_role_arn"], RoleSessionName="e2e-session")
    c = assumed["Credentials"]
    session = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    identity = send(signed(stack, "/e2e/identity", credentials=session)).json()
    assert identity["userArn"] == "arn:aws:sts::123456789012:assumed-role/credport-local-workload/e2e-session"
    role = stack.client("iam").get_role(RoleName="credport-local-workload")["Role"]
    assert identity["caller"] == f"{role['RoleId']}:e2e-session"
    assert identity["caller"].startswith("AROA")
    # The same role session through the profile's source_profile chain and awscurl:
    awscurl = Path(sys.executable).parent / "awscurl"
    result = subprocess.run(
        [str(awscurl), "--service", "execute-api", "--region", REGION, stack.api + "/whoami"],
        env=stack.env(AWS_PROFILE="credport-local-workload"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["arn"].startswith(
        "arn:aws:sts::123456789012:assumed-role/credport-local-workload/"
    )


def _frozen_signature(stack: RunningStack, monkeypatch: pytest.MonkeyPatch, age: dt.timedelta) -> AWSRequest:
    instant = dt.datetime.now(dt.UTC).replace(tzinfo=None) - age
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: instant)
    return signed(stack, "/whoami")


@pytest.mark.parametrize(
    ("case", "error_type"),
    [
        ("unsigned", "MissingAuthenticationTokenException"),
        ("wrong-secret", "InvalidSignatureException"),
        ("tampered-body", "InvalidSignatureException"),
        ("tampered-query", "InvalidSignatureException"),
        ("stale-date", "InvalidSignatureException"),
        ("unknown-key", "UnrecognizedClientException"),
        ("expired-session", "UnrecognizedClientException"),
    ],
)
def test_bad_requests_get_api_gateways_403(
    stack: RunningStack, monkeypatch: pytest.MonkeyPatch, case: str, error_type: str
) -> None:
    creds = stack.credentials()
    if case == "unsigned":
        response = requests.get(stack.api + "/whoami", timeout=10)
    elif case == "wrong-secret":
        response = send(signed(stack, "/whoami", credentials=Credentials(creds.access_key, "not-the-secret")))
    elif case == "tampered-body":
        response = send(signed(stack, "/whoami", body=b'{"amount": 1}'), body=b'{"amount": 9}')
    elif case == "tampered-query":
        request = signed(stack, "/whoami?aud=a")
        response = requests.get(stack.api + "/whoami?aud=b", headers=dict(request.headers), timeout=10)
    elif case == "stale-date":
        response = send(_frozen_signature(stack, monkeypatch, dt.timedelta(minutes=16)))
    elif case == "unknown-key":
        response = send(signed(stack, "/whoami", credentials=Credentials("AKIAUNKNOWNKEY000000", "secret")))
    else:
        response = send(signed(stack, "/whoami", credentials=Credentials("ASIAEXPIRED000000000", "s", "token")))
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == error_type
    assert set(response.json()) == {"message"}
    if case == "stale-date":
        assert response.json()["message"].startswith("Signature expired")


def test_a_signature_fourteen_minutes_old_is_still_accepted(
    stack: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert send(_frozen_signature(stack, monkeypatch, dt.timedelta(minutes=14))).status_code == 200


def test_oversized_bodies_are_refused_before_the_app(stack: RunningStack) -> None:
    response = requests.post(stack.api + "/whoami", data=b"x" * (10 * 1024 * 1024 + 1), timeout=30)
    assert response.status_code == 413


def _records(stack: RunningStack, kind: str, key: str) -> int:
    item = (
        stack.client("dynamodb")
        .get_item(
            TableName=stack.info["app_env"]["CREDPORT_STATE_TABLE"],
            Key={"pk": {"S": f"e2e#{kind}"}, "sk": {"S": key}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return int(item["count"]["N"]) if item else 0


def test_an_object_in_the_watched_prefix_reaches_its_handler_within_two_seconds(stack: RunningStack) -> None:
    key = f"inbox/e2e/ok/{uuid.uuid4()}.jwe"
    stack.client("s3").put_object(Bucket=stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"], Key=key, Body=b"x")
    assert wait_for(lambda: _records(stack, "s3", key), seconds=2.0) == 1


def test_a_failing_handler_is_retried_then_the_message_is_dead_lettered(stack: RunningStack) -> None:
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    key = f"inbox/e2e/fail/{uuid.uuid4()}.jwe"
    s3, sqs = stack.client("s3"), stack.client("sqs")
    s3.put_object(Bucket=bucket, Key=key, Body=b"poison")
    dlq = stack.info["dead_letter_queues"]["S3EventsDeadLetterQueue"]

    def dead_lettered() -> list[str]:
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        return [m["Body"] for m in messages if key in [e.key for e in parse_notification(m["Body"])]]

    bodies = wait_for(dead_lettered, seconds=45)
    assert bodies, f"never dead-lettered; attempts so far: {_records(stack, 's3-fail', key)}"
    assert _records(stack, "s3-fail", key) == 5  # EventsMaxReceiveCount in template.yaml
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == 6  # nothing lost


def test_an_sns_publish_reaches_the_sns_handler(stack: RunningStack) -> None:
    nonce = str(uuid.uuid4())
    stack.client("sns").publish(
        TopicArn=stack.info["app_env"]["CREDPORT_KEY_EVENTS_TOPIC_ARN"],
        Message=json.dumps({"type": "e2e-ping", "nonce": nonce}),
    )
    assert wait_for(lambda: _records(stack, "key-event", nonce), seconds=5) == 1


def test_control_endpoints_report_and_refuse_unknown_names(stack: RunningStack) -> None:
    status = requests.get(stack.api + "/_local/status", timeout=5).json()
    assert "s3_object_events.ok" in status["deliveries"]
    assert requests.post(stack.api + "/_local/trigger/nope", timeout=5).status_code == 404
    assert requests.post(stack.api + "/_local/rotate/nope", timeout=5).status_code == 404


def _local_cli(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_trigger_fires_a_schedule_with_the_scheduled_event_shape(stack: RunningStack) -> None:
    listed = _local_cli(stack, "trigger", "--list")
    assert {"e2e_broken", "e2e_tick", "rotate_signing_keys"} <= set(listed.stdout.split())
    before = _schedule_runs(stack)
    result = _local_cli(stack, "trigger", "e2e_tick")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"schedule": "e2e_tick", "ok": True}
    assert _schedule_runs(stack) == before + 1


def test_a_failing_schedule_is_tried_three_times_then_dead_lettered(stack: RunningStack) -> None:
    result = _local_cli(stack, "trigger", "e2e_broken")
    assert result.returncode == 1, result.stdout + result.stderr
    reason = {"type": "RuntimeError", "message": "e2e schedule failure"}
    assert json.loads(result.stdout) == {"schedule": "e2e_broken", "ok": False, "attempts": 3, "reason": reason}
    assert result.stderr.splitlines() == [
        "python -m local: trigger e2e_broken failed: RuntimeError: e2e schedule failure"
        " (after 3 attempts; the event was dead-lettered)"
    ]
    assert _records(stack, "schedule-fail", "attempts") == 3  # Lambda's async invocation: 1 try + 2 retries
    sqs = stack.client("sqs")
    dlq = sqs.get_queue_url(QueueName=f"{stack.info['prefix']}-local-schedules-dlq")["QueueUrl"]
    (message,) = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    event = json.loads(message["Body"])
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"][0].endswith(":rule/credport-dev-e2e_broken")


def _schedule_runs(stack: RunningStack) -> int:
    items = stack.client("dynamodb").query(
        TableName=stack.info["app_env"]["CREDPORT_STATE_TABLE"],
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "e2e#schedule"}},
    )["Items"]
    return len(items)


def _port_is_free(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


def test_ctrl_c_stops_everything_and_frees_the_ports(tmp_path: Path) -> None:
    running = launch_e2e(tmp_path)
    api, aws = running.api, running.info["aws_endpoint"]
    assert requests.get(api + "/health", timeout=5).status_code == 200
    assert running.stop() == 0
    log = running.log.read_text()
    assert "credport local stack is up" in log
    assert "stopped." in log
    assert _port_is_free(api)
    assert _port_is_free(aws)
    assert not (tmp_path / "stack.json").exists()
