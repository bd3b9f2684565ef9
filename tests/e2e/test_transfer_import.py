"""Secret transfer, receiving side, end to end: drop a sealed file into the bucket, find the secret."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def wait_for_secret(stack: RunningStack, name: str, seconds: float = 5.0) -> str | None:
    secrets = stack.client("secretsmanager")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return str(secrets.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])
        except secrets.exceptions.ResourceNotFoundException:
            time.sleep(0.1)
    return None


def send_file(tmp_path: Path, pem: str, name: str, value: str) -> bytes:
    """A file built the way a sender builds one: `credport transfer send-file` with the served PEM."""
    import subprocess
    import sys

    key_file, value_file, out = tmp_path / "import-key.pem", tmp_path / f"{uuid.uuid4()}.txt", tmp_path / "out.jwe"
    key_file.write_text(pem)
    value_file.write_text(value)
    made = subprocess.run(
        [
            str(Path(sys.executable).parent / "credport"),
            "transfer",
            "send-file",
            "--to-key",
            str(key_file),
            "--name",
            name,
            "--value-file",
            str(value_file),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return out.read_bytes()


def test_a_dropped_file_is_imported_once_and_the_key_is_public(stack: RunningStack, tmp_path: Path) -> None:
    documents = requests.get(f"{stack.api}/transfer/import-key", timeout=30).json()
    assert documents["keys"][0]["kid"] == documents["current_kid"]
    name = f"credport-dev/imported/e2e-{uuid.uuid4()}"
    body = send_file(tmp_path, documents["pem"], name, "dropped in")
    s3 = stack.client("s3")
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    s3.put_object(Bucket=bucket, Key="inbox/e2e.jwe", Body=body)
    assert wait_for_secret(stack, name) == "dropped in"
    s3.put_object(Bucket=bucket, Key="inbox/e2e.jwe", Body=body)  # the same file dropped again
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and s3.list_objects_v2(Bucket=bucket, Prefix="inbox/e2e.jwe").get("Contents"):
        time.sleep(0.1)
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="inbox/e2e.jwe").get("Contents")  # handled
    versions = stack.client("secretsmanager").list_secret_version_ids(SecretId=name)["Versions"]
    assert len(versions) == 1  # still one version
    receipts = [k["Key"] for k in s3.list_objects_v2(Bucket=bucket, Prefix="processed/")["Contents"]]
    assert "processed/e2e.jwe.receipt.json" in receipts


def test_a_bad_file_is_quarantined_with_its_reason(stack: RunningStack) -> None:
    s3 = stack.client("s3")
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    s3.put_object(Bucket=bucket, Key="inbox/garbage.jwe", Body=b"not an envelope")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/garbage.jwe.error.json").get("Contents")
        if listed:
            break
        time.sleep(0.1)
    error = json.loads(s3.get_object(Bucket=bucket, Key="quarantine/garbage.jwe.error.json")["Body"].read())
    assert error["reason"] == "not_jwe"


def test_send_file_then_post_by_presigned_link_and_refuse_other_hosts(stack: RunningStack, tmp_path: Path) -> None:

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    documents = requests.get(f"{stack.api}/transfer/import-key", timeout=30).json()
    name = f"credport-dev/imported/linked-{uuid.uuid4()}"
    body = send_file(tmp_path, documents["pem"], name, "x" * 64 * 1024)  # a 64 KiB secret
    s3 = stack.client("s3")
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    s3.put_object(Bucket=bucket, Key="links/secret.jwe", Body=body)  # not a watched prefix
    link = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "links/secret.jwe"}, ExpiresIn=300)

    def post(body: dict[str, str]) -> requests.Response:
        request = AWSRequest(
            method="POST",
            url=f"{stack.api}/transfer/import",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(stack.credentials(), "execute-api", "us-east-1").add_auth(request)
        return requests.post(request.url, headers=dict(request.headers), data=request.body, timeout=30)

    answer = post({"url": link})
    assert answer.status_code == 200, answer.text
    assert answer.json()["secret_name"] == name
    assert wait_for_secret(stack, name) == "x" * 64 * 1024
    elsewhere = link.replace(stack.info["aws_endpoint"], stack.api)  # same path, another host: the API itself
    refused = post({"url": elsewhere})
    assert (refused.status_code, refused.json()["error"]) == (400, "link_refused")


def test_a_transient_failure_ends_in_the_dead_letter_queue_with_the_file_kept(
    stack: RunningStack, tmp_path: Path
) -> None:
    from chalicelib.events import parse_notification

    pem = requests.get(f"{stack.api}/transfer/import-key", timeout=30).json()["pem"]
    body = send_file(tmp_path, pem, f"credport-dev/imported/transient-{uuid.uuid4()}", "later")
    s3, sqs = stack.client("s3"), stack.client("sqs")
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    key = f"inbox/transient-{uuid.uuid4()}.jwe"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    dlq = stack.info["dead_letter_queues"]["S3EventsDeadLetterQueue"]
    deadline, dead = time.monotonic() + 45, []
    while time.monotonic() < deadline and not dead:
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        dead = [m for m in messages if key in [e.key for e in parse_notification(m["Body"])]]
        time.sleep(0.2)
    assert dead, "the message never reached the dead-letter queue"
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)  # the file is still in inbox/
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=f"quarantine/{key[len('inbox/') :]}").get("Contents")
