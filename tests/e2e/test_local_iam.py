"""The local stack's embedded AWS enforces IAM as AWS does, for every caller: conditions evaluated on real state,
resource and key policies, and the app's own functions acting as their role with exactly the stage's policy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.conftest import RunningStack, launch_e2e
from tests.permissions.model import FUNCTIONS


def _user(stack: RunningStack, name: str, policy: dict[str, object] | None) -> Credentials:
    iam = stack.client("iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def _code(call: object) -> str:
    with pytest.raises(ClientError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["Error"]["Code"])


def test_a_user_with_no_policy_is_refused_by_every_service(stack: RunningStack) -> None:
    nobody = _user(stack, "e2e-iam-nobody", None)
    bucket = stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"]
    assert _code(lambda: stack.client("s3", nobody).list_objects_v2(Bucket=bucket)) == "AccessDenied"
    assert _code(lambda: stack.client("secretsmanager", nobody).list_secrets()) == "AccessDeniedException"
    assert _code(lambda: stack.client("kms", nobody).list_keys()) == "AccessDeniedException"
    assert stack.client("sts", nobody).get_caller_identity()["Arn"].endswith(":user/e2e-iam-nobody")  # always allowed


def test_conditions_are_evaluated_on_the_resources_real_tags(stack: RunningStack) -> None:
    secrets = stack.client("secretsmanager")
    tagged = secrets.create_secret(Name="e2e-iam/tagged", SecretString="a", Tags=[{"Key": "team", "Value": "blue"}])
    other = secrets.create_secret(Name="e2e-iam/other", SecretString="b", Tags=[{"Key": "team", "Value": "red"}])
    statement = {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}},
    }
    blue = stack.client(
        "secretsmanager", _user(stack, "e2e-iam-blue", {"Version": "2012-10-17", "Statement": [statement]})
    )
    assert blue.get_secret_value(SecretId=tagged["ARN"])["SecretString"] == "a"
    assert _code(lambda: blue.get_secret_value(SecretId=other["ARN"])) == "AccessDeniedException"


@pytest.fixture
def fresh_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of this test's own: on the shared one, a test that ran before on the same worker may have rotated the
    signing keys with credport-admin, as the developer, whose keys then name the developer as their creator."""
    running = launch_e2e(tmp_path_factory.mktemp("fresh-iam"), "--quiet")
    yield running
    assert running.stop() == 0, running.log_text()


def test_the_functions_run_as_their_role_with_exactly_their_policy(fresh_stack: RunningStack) -> None:
    """Each function's role (credport-dev-<function>, as chalice names it) holds exactly that function's policy file,
    and the API handler's is the role that made the signing keys: their key policies name it as their creator, so it
    is what the API handler runs as."""
    from tests.permissions.model import deployment

    iam, prefix = fresh_stack.client("iam"), fresh_stack.info["prefix"]
    d = deployment("dev")
    for function in FUNCTIONS:
        (name,) = iam.list_role_policies(RoleName=f"{prefix}-{function}")["PolicyNames"]
        held = iam.get_role_policy(RoleName=f"{prefix}-{function}", PolicyName=name)["PolicyDocument"]
        assert held == json.loads(d.policy_file(function).read_text().replace("credport-dev", prefix)), function
    role = f"{prefix}-api_handler"
    assert fresh_stack.client("sts").get_caller_identity()  # the developer is not the app
    import requests
    from requests_aws4auth import AWS4Auth

    creds = fresh_stack.credentials()
    auth = AWS4Auth(creds.access_key, creds.secret_key, fresh_stack.info["region"], "execute-api")
    assert requests.get(fresh_stack.api + "/token", auth=auth, timeout=30).status_code == 200  # keys exist from here on
    kms = fresh_stack.client("kms")
    key_id = kms.describe_key(KeyId=f"alias/{prefix}/signing/current")["KeyMetadata"]["KeyId"]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    creator = next(s for s in policy["Statement"] if s["Sid"] == "CreatorAloneChangesKeyPolicy")
    account = fresh_stack.info["account_id"]
    assert creator["Action"] == ["kms:PutKeyPolicy"]
    assert creator["Condition"]["ArnLike"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::{account}:role/{role}",
        f"arn:aws:iam::{account}:role/*/{role}",
    ]
