"""What a real deployment keeps and where its failures and logs go, checked offline on template.yaml and on
both packaged stages: stateful resources survive the stack, every function can write its own log group
under the names both deployment paths give it, and asynchronous invocations that failed every attempt are
recorded in a retained queue the function may write to."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from chalice.app import ScheduledEventConfig, SNSEventConfig
from chalice.utils import to_cfn_resource_name

from local.template import Template
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT
from tests.packaging import STAGES, TEMPLATE, deployed_function_names, packaged_stage, translated

# Keys, secrets, tables, queues and buckets: what holds keys or data, by resource type.
STATEFUL_TYPES = {
    "AWS::KMS::Key",
    "AWS::SecretsManager::Secret",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
}


@pytest.fixture(scope="module", params=STAGES)
def packaged(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    stage: str = request.param
    return stage, packaged_stage(stage)[1]


def _resolver(stage: str, document: dict[str, Any]) -> Template:
    parameters = {"Prefix": f"credport-{stage}", "Issuer": "https://id.example.com"}
    return Template(document, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="s")


def _statements(stage: str, function: str) -> list[dict[str, Any]]:
    """The statements of ``function``'s own policy file in the stage (.chalice/config.json lambda_functions)."""
    settings = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())["stages"][stage]
    path = REPO_ROOT / ".chalice" / settings["lambda_functions"][function]["iam_policy_file"]
    statements: list[dict[str, Any]] = json.loads(path.read_text())["Statement"]
    return statements


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    """An unconditional Allow of ``action`` on ``arn`` (IAM's wildcard: ``*`` matches any run of characters)."""

    def matches(pattern: str) -> bool:
        return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), arn) is not None

    return any(
        s["Effect"] == "Allow"
        and "Condition" not in s
        and action in _as_list(s["Action"])
        and any(matches(p) for p in _as_list(s["Resource"]))
        for s in statements
    )


@pytest.mark.parametrize("source", ["template.yaml", *STAGES])
def test_every_stateful_resource_is_retained(source: str) -> None:
    """Deleting the stack, or an update that replaces a resource, must never destroy keys, secrets or data."""
    from local.template import load_template

    document = load_template(TEMPLATE) if source == "template.yaml" else packaged_stage(source)[1]
    stateful = {k: r for k, r in document["Resources"].items() if r["Type"] in STATEFUL_TYPES}
    assert {r["Type"] for r in stateful.values()} == STATEFUL_TYPES  # each kind is there: the check bites
    for logical_id, resource in stateful.items():
        assert resource.get("DeletionPolicy") == "Retain", logical_id
        assert resource.get("UpdateReplacePolicy") == "Retain", logical_id


def test_both_paths_give_every_function_the_name_its_log_permissions_cover(
    packaged: tuple[str, dict[str, Any]],
) -> None:
    """The SAM stack's function names (from the packaged template) are chalice deploy's (from chalice's own
    naming), and the stage's policy lets each write its log group and streams: a function without a
    FunctionName would get CloudFormation's <stack>-<LogicalId>-<random>, which no policy can name."""
    stage, sam = packaged
    resolver = _resolver(stage, sam)
    sam_names = {}
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "FunctionName" in resource["Properties"], f"{logical_id}: CloudFormation would name it"
            sam_names[logical_id] = resolver.resolve(resource["Properties"]["FunctionName"])
    deploy_names = {
        ("APIHandler" if name == "api_handler" else to_cfn_resource_name(name)): function_name
        for name, function_name in deployed_function_names(stage).items()
    }
    assert sam_names == deploy_names
    assert f"credport-{stage}" in deploy_names.values()  # the API handler: <app>-<stage>, no suffix

    for function, name in deployed_function_names(stage).items():
        statements = _statements(stage, function)  # each function may write its own logs, in its own role
        # CloudWatch Logs ARNs (CloudWatch Logs User Guide, "Overview of managing access permissions").
        group = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/{name}"
        stream = f"{group}:log-stream:2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"
        assert _allows(statements, "logs:CreateLogGroup", group), name
        assert _allows(statements, "logs:CreateLogStream", group), name
        assert _allows(statements, "logs:CreateLogStream", stream), name
        assert _allows(statements, "logs:PutLogEvents", stream), name


def _asynchronous_functions() -> dict[str, str]:
    """The app's functions AWS invokes asynchronously (SNS subscriptions and schedules): logical id -> name."""
    import app

    sources = [s for s in app.app.event_sources if isinstance(s, SNSEventConfig | ScheduledEventConfig)]
    assert any(isinstance(s, SNSEventConfig) for s in sources)
    assert any(isinstance(s, ScheduledEventConfig) for s in sources)
    return {to_cfn_resource_name(s.name): s.name for s in sources}


def test_sns_and_schedule_functions_record_failures_in_a_retained_queue_they_may_write(
    packaged: tuple[str, dict[str, Any]],
) -> None:
    stage, sam = packaged
    resolver = _resolver(stage, sam)
    resources = sam["Resources"]
    for logical_id, function in _asynchronous_functions().items():
        config = resources[logical_id]["Properties"]["EventInvokeConfig"]
        assert config["MaximumRetryAttempts"] in (0, 1, 2), logical_id  # stated, not left to Lambda's default
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", logical_id
        (queue_id, attribute) = on_failure["Destination"]["Fn::GetAtt"]
        queue = resources[queue_id]
        assert (queue["Type"], attribute) == ("AWS::SQS::Queue", "Arn"), logical_id
        assert not queue["Properties"].get("FifoQueue"), "Lambda destinations take standard queues only"
        assert queue["DeletionPolicy"] == queue["UpdateReplacePolicy"] == "Retain"
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{resolver.resolve(queue['Properties']['QueueName'])}"
        assert _allows(_statements(stage, function), "sqs:SendMessage", queue_arn), f"{logical_id}: {queue_arn}"

    # What CloudFormation creates from it: one EventInvokeConfig per asynchronous function.
    configs = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in translated(stage, sam)["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    assert set(configs) == set(_asynchronous_functions())
    for properties in configs.values():
        assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["AsyncDeadLetterQueue", "Arn"]
        }
