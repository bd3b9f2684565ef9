"""The S3 events queue's policy, as SQS evaluates it for S3's notifications (moto delivers without evaluating it).

S3 sends with the service principal s3.amazonaws.com and tells SQS the notifying bucket (aws:SourceArn) and its owner
(aws:SourceAccount): only the deployment's own transfer bucket, in its own account, may send (S3 User Guide,
"Granting permissions to publish event notification messages to a destination").
"""

from __future__ import annotations

from typing import Any

import pytest

from local.iam.policy import Decision, Principal, Request, authorize
from local.template import Template, load_template
from tests.conftest import REPO_ROOT

ACCOUNT, REGION, PREFIX = "123456789012", "eu-west-1", "credport-prod"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{PREFIX}-s3-events"
S3 = Principal(arn="s3.amazonaws.com", account="", service="s3.amazonaws.com")


def _template() -> Template:
    return Template(
        load_template(REPO_ROOT / "template.yaml"),
        parameters={"Prefix": PREFIX, "Issuer": "https://id.example.com"},
        account_id=ACCOUNT,
        region=REGION,
        stack_name=PREFIX,
    )


def _queue_policy() -> dict[str, Any]:
    template = _template()
    template.attributes["S3EventsQueue"] = {"Ref": f"https://sqs/{PREFIX}-s3-events", "Arn": QUEUE_ARN}
    resource = template.resources["S3EventsQueuePolicy"]
    document: dict[str, Any] = template.resolve(resource["Properties"]["PolicyDocument"])
    return document


def _decision(source_bucket: str, source_account: str, action: str = "sqs:SendMessage") -> Decision:
    context = {"aws:SourceArn": f"arn:aws:s3:::{source_bucket}", "aws:SourceAccount": source_account}
    request = Request(action, QUEUE_ARN, S3, context)
    return authorize(request, [], _queue_policy(), resource_account=ACCOUNT)


def test_the_transfer_bucket_of_this_deployment_may_notify() -> None:
    assert _decision(f"{PREFIX}-transfer-{ACCOUNT}", ACCOUNT) is Decision.ALLOW


@pytest.mark.parametrize(
    ("bucket", "account", "action"),
    [
        (f"{PREFIX}-public-{ACCOUNT}", ACCOUNT, "sqs:SendMessage"),  # another bucket of the deployment
        (f"credport-dev-transfer-{ACCOUNT}", ACCOUNT, "sqs:SendMessage"),  # another deployment's bucket
        (f"{PREFIX}-transfer-{ACCOUNT}", "210987654321", "sqs:SendMessage"),  # the same name, owned elsewhere
        (f"{PREFIX}-transfer-{ACCOUNT}", ACCOUNT, "sqs:ReceiveMessage"),  # S3 may only send
    ],
)
def test_nothing_else_may(bucket: str, account: str, action: str) -> None:
    assert _decision(bucket, account, action) is Decision.NONE


def _link_signer() -> dict[str, Any]:
    template = _template()
    template.attributes["TransferBucket"] = {
        "Ref": f"{PREFIX}-transfer-{ACCOUNT}",
        "Arn": f"arn:aws:s3:::{PREFIX}-transfer-{ACCOUNT}",
    }
    template.attributes["DataKey"] = {"Ref": "k", "Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"}
    resolved: dict[str, Any] = template.resolve(template.resources["LinkSignerRole"]["Properties"])
    return resolved


@pytest.mark.parametrize(
    ("action", "key", "allowed"),
    [
        ("s3:GetObject", "outbox/client-one/v1.jwe", True),  # what a transfer link fetches
        ("s3:GetObject", "inbox/db.jwe", False),  # nothing else in the bucket
        ("s3:GetObject", "autoid/worker-1/gen-1.bin", False),
        ("s3:PutObject", "outbox/client-one/v1.jwe", False),
    ],
)
def test_the_link_signer_reads_sealed_outbox_files_and_nothing_else(action: str, key: str, allowed: bool) -> None:
    """A presigned link is authorised as the role whose session signed it (credport's link signer)."""
    role = _link_signer()
    principal = Principal(f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-link-signer", ACCOUNT, "arn:aws:sts::x")
    request = Request(action, f"arn:aws:s3:::{PREFIX}-transfer-{ACCOUNT}/{key}", principal, {})
    policies = [p["PolicyDocument"] for p in role["Policies"]]
    assert (authorize(request, policies) is Decision.ALLOW) is allowed
    assert role["MaxSessionDuration"] == 3600  # a link lives at most an hour: sessions from Lambda are chained
