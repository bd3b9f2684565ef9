"""A developer identity in the embedded AWS, written as AWS profiles any SDK or tool can use.

``credport-local`` is an IAM user with an access key; ``credport-local-workload`` is a role it can
assume (boto3 does the AssumeRole itself through ``source_profile``), so both principal kinds API Gateway
reports can be exercised without an AWS account.

Both hold real IAM policies, because the local gateway checks ``execute-api:Invoke`` as API Gateway does: the
user an administrator's (the document of AWS's managed AdministratorAccess, as a customer managed policy: moto
does not load AWS's managed policies), the role only ``execute-api:Invoke`` on the local API, all a workload needs
to call it (its token, whoami, sessions, transfers).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.apidef import STAGE, api_arn

__all__ = [
    "ADMINISTRATOR_ACCESS",
    "ADMINISTRATOR_POLICY",
    "DEVELOPER_USER",
    "PROFILE",
    "WORKLOAD_PROFILE",
    "WORKLOAD_ROLE",
    "Developer",
    "create_developer",
]

PROFILE = "credport-local"
WORKLOAD_PROFILE = "credport-local-workload"
DEVELOPER_USER = "credport-developer"
WORKLOAD_ROLE = "credport-local-workload"
ADMINISTRATOR_POLICY = "credport-local-administrator"
# The policy document of AWS's managed policy AdministratorAccess (arn:aws:iam::aws:policy/AdministratorAccess).
ADMINISTRATOR_ACCESS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class Developer:
    user_arn: str
    role_arn: str
    config_file: Path
    credentials_file: Path

    def exports(self) -> dict[str, str]:
        return {
            "AWS_CONFIG_FILE": str(self.config_file),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_file),
            "AWS_PROFILE": PROFILE,
        }


def create_developer(client: Any, *, state_dir: Path, account_id: str, region: str, endpoint: str) -> Developer:
    iam = client("iam")
    user = iam.create_user(UserName=DEVELOPER_USER)["User"]
    administrator = iam.create_policy(
        PolicyName=ADMINISTRATOR_POLICY,
        PolicyDocument=json.dumps(ADMINISTRATOR_ACCESS),
        Description="AdministratorAccess, for the local stack's developer",
    )["Policy"]
    iam.attach_user_policy(UserName=DEVELOPER_USER, PolicyArn=administrator["Arn"])
    key = iam.create_access_key(UserName=DEVELOPER_USER)["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}}
        ],
    }
    role = iam.create_role(
        RoleName=WORKLOAD_ROLE,
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="A workload role for trying credport locally",
    )["Role"]
    invoke = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CallTheLocalApi",
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": api_arn(region, account_id, f"{STAGE}/*"),
            }
        ],
    }
    iam.put_role_policy(RoleName=WORKLOAD_ROLE, PolicyName="invoke-credport", PolicyDocument=json.dumps(invoke))

    aws_dir = state_dir / "aws"
    aws_dir.mkdir(parents=True, exist_ok=True)
    credentials_file, config_file = aws_dir / "credentials", aws_dir / "config"
    _write_private(
        credentials_file,
        (f"[{PROFILE}]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = {key['SecretAccessKey']}\n"),
    )
    _write_private(
        config_file,
        (
            f"[profile {PROFILE}]\n"
            f"region = {region}\n"
            f"endpoint_url = {endpoint}\n"
            f"\n[profile {WORKLOAD_PROFILE}]\n"
            f"region = {region}\n"
            f"endpoint_url = {endpoint}\n"
            f"role_arn = {role['Arn']}\n"
            f"role_session_name = local-workload\n"
            f"source_profile = {PROFILE}\n"
        ),
    )
    return Developer(
        user_arn=user["Arn"],
        role_arn=role["Arn"],
        config_file=config_file.resolve(),
        credentials_file=credentials_file.resolve(),
    )


def _write_private(path: Path, text: str) -> None:
    """Write with 0600 from the first byte (no window in which the key file is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
