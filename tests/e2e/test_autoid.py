"""Auto-id end to end: the operator enrols a client with credport-admin; the workload, with no AWS
credentials at all, runs ``credport autoid get`` over HTTP against the local stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"


def admin(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        [str(BIN / "credport-admin"), "autoid", *args, "--local"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def workload_env(home: Path) -> dict[str, str]:
    """A workload's environment: no AWS credentials, no AWS config, nothing but its bundle."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CREDPORT_"))}
    return {**env, "HOME": str(home), "AWS_CONFIG_FILE": str(home / "none"), "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def get(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "credport"), "autoid", "get", "--bundle", str(bundle), *args],
        env=workload_env(bundle.parent),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def enroll(stack: RunningStack, tmp_path: Path, *policy: str) -> tuple[str, Path]:
    client_id = f"e2e-{uuid.uuid4().hex[:10]}"
    bundle = tmp_path / "bundle.json"
    enrolled = admin(stack, "enroll", client_id, *policy, "--out", str(bundle))
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["generation"] == 1
    return client_id, bundle


def bundle_state(bundle: Path) -> tuple[int, str]:
    document = json.loads(bundle.read_text())
    return document["gen"], document["server_keys"]["current_kid"]


def test_enroll_then_get_a_secret_with_no_aws_credentials(stack: RunningStack, tmp_path: Path) -> None:
    name = f"credport-dev/autoid/db-{uuid.uuid4().hex[:6]}"
    stack.client("secretsmanager").create_secret(Name=name, SecretString="e2e-db-password")
    client_id, bundle = enroll(stack, tmp_path, "--secret", "credport-dev/autoid/db-*")
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert len(json.loads(bundle.read_text())["entropy"]) > 1_000_000

    answer = get(bundle, "--secret-id", name)
    assert answer.returncode == 0, answer.stderr
    document = json.loads(answer.stdout)
    assert (document["client_id"], document["secret"]["value"]) == (client_id, "e2e-db-password")
    assert document["session"]["token_type"] == "Bearer"
    # The session token is a real one: the bearer route accepts it.
    import requests

    shown = requests.get(
        stack.api + "/session", headers={"Authorization": f"Bearer {document['session']['token']}"}, timeout=10
    )
    assert shown.status_code == 200
    assert shown.json()["sub"] == f"autoid:{client_id}"
    value = get(bundle, "--secret-id", name, "--format", "value")
    assert value.stdout == "e2e-db-password\n"

    outside = get(bundle, "--secret-id", "credport-dev/autoid/other")
    assert outside.returncode == 1
    assert "403" in outside.stderr
    assert "forbidden" in outside.stderr
    again = admin(
        stack, "enroll", client_id, "--secret", "credport-dev/autoid/x", "--out", str(tmp_path / "again.json")
    )
    assert again.returncode == 1  # a definite no (README "Exit codes")
    assert "already exists" in again.stderr


def _role(stack: RunningStack) -> str:
    name = f"credport-dev-autoid-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
    }
    stack.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def _caller(stack: RunningStack, **credentials: Any) -> str:
    sts = boto3.session.Session(region_name=stack.info["region"], **credentials).client(
        "sts", endpoint_url=stack.info["aws_endpoint"]
    )
    return str(sts.get_caller_identity()["Arn"])


def test_role_credentials_work_with_boto3_and_as_credential_process(stack: RunningStack, tmp_path: Path) -> None:
    role = _role(stack)
    client_id, bundle = enroll(stack, tmp_path, "--role", f"arn:aws:iam::{ACCOUNT}:role/credport-dev-autoid-*")
    answer = get(bundle, "--role-arn", role)
    assert answer.returncode == 0, answer.stderr
    creds = json.loads(answer.stdout)["credentials"]
    arn = _caller(
        stack,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    role_name = role.rsplit("/", 1)[1]
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/autoid-{client_id}"

    # ~/.aws/config's credential_process: the SDK runs `credport autoid get` itself.
    config = tmp_path / "aws-config"
    command = f"{BIN / 'credport'} autoid get --bundle {bundle} --role-arn {role} --format credential-process"
    config.write_text(f"[profile autoid]\ncredential_process = {command}\nregion = {stack.info['region']}\n")
    script = (
        "import boto3, sys; s = boto3.session.Session(profile_name='autoid');"
        f"print(s.client('sts', endpoint_url={stack.info['aws_endpoint']!r}).get_caller_identity()['Arn'])"
    )
    env = {**workload_env(tmp_path), "AWS_CONFIG_FILE": str(config)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == arn

    refused = get(bundle, "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/admin")
    assert refused.returncode == 1
    assert "403" in refused.stderr


@pytest.mark.parametrize("shape", ["json", "legacy"])
def test_credential_process_from_a_secret_holding_access_keys(stack: RunningStack, tmp_path: Path, shape: str) -> None:
    iam = stack.client("iam")
    user = f"e2e-autoid-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    value = (
        json.dumps({"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]})
        if shape == "json"
        else f"{key['AccessKeyId']},{key['SecretAccessKey']}"
    )
    name = f"credport-dev/autoid/keys-{uuid.uuid4().hex[:6]}"
    stack.client("secretsmanager").create_secret(Name=name, SecretString=value)
    _, bundle = enroll(stack, tmp_path, "--secret", name)
    result = get(bundle, "--secret-id", name, "--format", "credential-process")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["Version"] == 1
    assert document["AccessKeyId"] == key["AccessKeyId"]
    arn = _caller(stack, aws_access_key_id=document["AccessKeyId"], aws_secret_access_key=document["SecretAccessKey"])
    assert arn == f"arn:aws:iam::{ACCOUNT}:user/{user}"


def test_rotation_keeps_old_bundles_working_for_the_grace_period_then_refuses_them(
    stack: RunningStack, tmp_path: Path
) -> None:
    name = f"credport-dev/autoid/rot-{uuid.uuid4().hex[:6]}"
    stack.client("secretsmanager").create_secret(Name=name, SecretString="rotating")
    client_id, bundle = enroll(stack, tmp_path, "--secret", name)
    first_kid = bundle_state(bundle)[1]
    kept = tmp_path / "kept"
    kept.mkdir()
    old_copy = kept / "bundle.json"
    shutil.copy2(bundle, old_copy)

    rotated = subprocess.run(
        [sys.executable, "-m", "local", "trigger", "rotate_autoid_keys"],
        env={**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert json.loads(rotated.stdout) == {"schedule": "rotate_autoid_keys", "ok": True}, rotated.stderr
    # The old bundle still works, and the client picks up the new generation and server key by itself.
    answer = get(bundle, "--secret-id", name, "--format", "value")
    assert answer.returncode == 0, answer.stderr
    gen, kid = bundle_state(bundle)
    assert gen >= 2
    assert kid != first_kid
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert get(bundle, "--secret-id", name, "--format", "value").stdout == "rotating\n"  # the new bundle works

    # Time passes beyond the grace period: the stored grace end moves into the past.
    table = stack.client("dynamodb")
    state = stack.info["app_env"]["CREDPORT_STATE_TABLE"]
    item = table.get_item(TableName=state, Key={"pk": {"S": "autoid-clients"}, "sk": {"S": client_id}})["Item"]
    previous = item["previous"]["M"]
    assert "1" in previous
    past = {"N": str(int(time.time()) - 1)}
    item["previous"] = {"M": dict.fromkeys(previous, past)}
    table.put_item(TableName=state, Item=item)
    refused = get(old_copy, "--secret-id", name)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "authentication_failed" in refused.stderr
    assert get(bundle, "--secret-id", name, "--format", "value").returncode == 0


def test_end_grace_and_revocation_are_effective_at_once(stack: RunningStack, tmp_path: Path) -> None:
    name = f"credport-dev/autoid/rev-{uuid.uuid4().hex[:6]}"
    stack.client("secretsmanager").create_secret(Name=name, SecretString="revocable")
    client_id, bundle = enroll(stack, tmp_path, "--secret", name)
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy2(bundle, old / "bundle.json")
    assert admin(stack, "rotate", client_id).returncode == 0
    assert get(bundle, "--secret-id", name).returncode == 0  # in grace; the bundle moves to generation 2
    assert bundle_state(bundle)[0] == 2

    ended = admin(stack, "end-grace", client_id)
    assert ended.returncode == 0
    assert json.loads(ended.stdout)["previous_generations"] == {}
    stale = get(old / "bundle.json", "--secret-id", name)
    assert stale.returncode == 1
    assert "401" in stale.stderr
    assert get(bundle, "--secret-id", name).returncode == 0

    revoked = admin(stack, "revoke", client_id)
    assert revoked.returncode == 0
    assert json.loads(revoked.stdout)["status"] == "revoked"
    refused = get(bundle, "--secret-id", name)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    listed = stack.client("s3").list_object_versions(Bucket=bucket, Prefix=f"autoid/{client_id}/")
    assert not listed.get("Versions")  # the entropy is gone, in every version
    assert json.loads(admin(stack, "show", client_id).stdout)["status"] == "revoked"
