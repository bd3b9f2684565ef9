"""Secret transfer, sending side, end to end with keys made by the openssl command, as a client would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]
BIN = Path(sys.executable).parent


def openssl_key_pair(folder: Path, name: str, bits: int) -> tuple[Path, Path]:
    """A client's key pair, made the way the client would: `openssl genrsa`, then `openssl rsa -pubout`."""
    private, public = folder / f"{name}-private.pem", folder / f"{name}-public.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), str(bits)], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)], check=True, capture_output=True
    )
    return private, public


def notifications(stack: RunningStack, queue_url: str, client_id: str, seconds: float = 10) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        found = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
        mine = [n for n in found if n.get("client_id") == client_id]
        if mine:
            return mine
        time.sleep(0.2)
    return []


def test_register_then_receive_by_link(stack: RunningStack, tmp_path: Path) -> None:
    private, public = openssl_key_pair(tmp_path, "client-one", 4096)  # exactly the commands
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    sqs, sns = stack.client("sqs"), stack.client("sns")
    queue = sqs.create_queue(QueueName=f"mail-{client_id}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.info["app_env"]["CREDPORT_NOTIFY_TOPIC_ARN"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"FilterPolicy": json.dumps({"client_id": [client_id]})},
    )  # like a client's email
    stack.client("s3").put_object(
        Bucket=stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"],
        Key=f"clients/{client_id}/public.pem",
        Body=public.read_bytes(),
    )
    (note,) = notifications(stack, queue, client_id)
    received = subprocess.run(
        [str(BIN / "credport"), "transfer", "receive", note["link"], "--key", str(private)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert received.returncode == 0, received.stderr
    document = json.loads(received.stdout)
    secret = stack.client("secretsmanager").get_secret_value(SecretId=note["secret_name"], VersionStage="AWSCURRENT")
    assert document["value"] == secret["SecretString"]
    assert document["version_id"] == note["version_id"] == secret["VersionId"]
    assert secret["SecretString"] not in json.dumps(note)
    stored = subprocess.run(
        [
            str(BIN / "credport"),
            "transfer",
            "receive",
            note["link"],
            "--key",
            str(private),
            "--store",
            "--name",
            f"received/{client_id}",
        ],
        env=stack.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert stored.returncode == 0, stored.stderr
    mine = stack.client("secretsmanager").get_secret_value(SecretId=f"received/{client_id}")
    assert mine["SecretString"] == document["value"]


def test_admin_register_refuses_a_private_key_and_registers_a_public_one(stack: RunningStack, tmp_path: Path) -> None:
    private, public = openssl_key_pair(tmp_path, "admin", 2048)
    client_id = f"admin-{uuid.uuid4().hex[:8]}"
    env = {**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)}

    def register(key: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "credport-admin"), "transfer", "register", client_id, str(key), "--local"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    refused = register(private)
    assert refused.returncode == 2
    assert "private_key" in refused.stderr
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    s3 = stack.client("s3")
    assert not s3.list_object_versions(Bucket=bucket, Prefix=f"clients/{client_id}/").get("Versions")  # never sent
    registered = register(public)
    assert registered.returncode == 0, registered.stderr
    name = f"credport-dev/transfer/{client_id}"
    secrets = stack.client("secretsmanager")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            secrets.describe_secret(SecretId=name)
            break
        except secrets.exceptions.ResourceNotFoundException:
            time.sleep(0.2)
    outbox = s3.list_objects_v2(Bucket=bucket, Prefix=f"outbox/{client_id}/").get("Contents", [])
    assert len(outbox) == 1
