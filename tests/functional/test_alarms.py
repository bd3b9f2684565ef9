"""Alarms, the alarm topic and the dashboard (issue #16), for the three production parameter sets: what each alarm
watches and when it fires, that every function and dead-letter queue has one, that each sends to the alarm topic
(which CloudWatch and EventBridge may use), and that the dashboard names only metrics that exist."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from chalicelib.aws.clients import ClientFactory
from chalicelib.observability import ROTATION_KINDS
from client.deploy import infra_template, needs_app
from local.provision import Provisioner, app_functions
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT
from tests.deploy_parameter_sets import PARAMETER_SETS, A, B, C, resolved

TEMPLATE = REPO_ROOT / "template.yaml"
TOPIC = [{"Ref": "AlarmTopic"}]
SVC = {"service": "credport"}

# Every alarm but the per-function ones: (namespace, metric, dimensions, statistic, period, evaluation periods,
# datapoints to alarm, threshold, comparison, missing data, OK actions too). Function alarms: FUNCTION_ALARM.
ALARMS: dict[str, tuple[Any, ...]] = {
    "S3EventsDeadLetterQueueAlarm": (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible",
        {"QueueName": {"Fn::GetAtt": ["S3EventsDeadLetterQueue", "QueueName"]}},
        "Maximum", 300, 1, None, 0, "GreaterThanThreshold", "ignore", True,
    ),
    "AsyncDeadLetterQueueAlarm": (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible",
        {"QueueName": {"Fn::GetAtt": ["AsyncDeadLetterQueue", "QueueName"]}},
        "Maximum", 300, 1, None, 0, "GreaterThanThreshold", "ignore", True,
    ),
    "SigningKeysRotationFailedAlarm": (
        "Credport", "RotationFailed", {**SVC, "kind": "signing-keys"},
        "Sum", 300, 1, None, 1, "GreaterThanOrEqualToThreshold", "notBreaching", False,
    ),
    "SessionKeyRotationFailedAlarm": (
        "Credport", "RotationFailed", {**SVC, "kind": "session-key"},
        "Sum", 300, 1, None, 1, "GreaterThanOrEqualToThreshold", "notBreaching", False,
    ),
    "AutoIdKeysRotationFailedAlarm": (
        "Credport", "RotationFailed", {**SVC, "kind": "autoid-keys"},
        "Sum", 300, 1, None, 1, "GreaterThanOrEqualToThreshold", "notBreaching", False,
    ),
    "Api5xxAlarm": (
        "AWS/ApiGateway", "5XXError", {"ApiName": {"Ref": "Prefix"}, "Stage": "api"},
        "Sum", 300, 1, None, 5, "GreaterThanOrEqualToThreshold", "notBreaching", True,
    ),
    "AuthorizerFailuresAlarm": (
        "Credport", "AuthorizerFailures", SVC,
        "Sum", 300, 1, None, 3, "GreaterThanOrEqualToThreshold", "notBreaching", False,
    ),
    "KmsSignThrottledAlarm": (
        "Credport", "AwsThrottled", {**SVC, "aws_service": "kms", "operation": "Sign"},
        "Sum", 60, 3, 2, 10, "GreaterThanOrEqualToThreshold", "notBreaching", True,
    ),
    "TransferPrivateKeyAlarm": (
        "Credport", "TransferPrivateKeysPurged", SVC,
        "Sum", 60, 1, None, 1, "GreaterThanOrEqualToThreshold", "notBreaching", False,
    ),
    "TransferFileTooLargeAlarm": (
        "Credport", "TransferFilesTooLarge", SVC,
        "Sum", 60, 1, None, 1, "GreaterThanOrEqualToThreshold", "notBreaching", False,
    ),
}  # fmt: skip
# (statistic, period, evaluation periods, threshold, comparison, missing data, OK actions too) by Lambda metric.
FUNCTION_ALARM = {
    "Errors": ("Sum", 300, 1, 1, "GreaterThanOrEqualToThreshold", "notBreaching", False),
    "Throttles": ("Sum", 300, 1, 1, "GreaterThanOrEqualToThreshold", "notBreaching", True),
}
# A 401 is the bearer authorizer raising "Unauthorized": its Lambda Errors count refusals (AuthorizerFailuresAlarm).
NO_ERRORS_ALARM = {"Bearer"}
# AWS metrics the dashboard may name (each documented by its service for these dimensions).
AWS_METRICS = {
    "AWS/ApiGateway": {"Latency", "IntegrationLatency", "Count", "4XXError", "5XXError"},
    "AWS/Lambda": {"Duration", "Errors", "Throttles"},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible"},
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module", params=sorted(PARAMETER_SETS))
def deployed(request: pytest.FixtureRequest, template: dict[str, Any]) -> dict[str, Any]:
    return resolved(template, PARAMETER_SETS[request.param])


def alarms_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in document["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


def function_names(document: dict[str, Any]) -> dict[str, Any]:
    """The app's functions (by chalice's logical id) and the FunctionName template.yaml gives each."""
    import app

    logical_ids = set(app_functions(app.app))
    names = {k: r["Properties"]["FunctionName"] for k, r in document["Resources"].items() if k in logical_ids}
    assert set(names) == logical_ids, "a function of the app has no fragment in template.yaml"
    return names


def app_metric_names() -> set[str]:
    """Every metric name chalicelib emits: add_metric(name=...) (both arms of a conditional), count_once("..."),
    embedded_count("...") (a count carried by a log line) and rotation_failed (RotationFailed)."""
    names = {"RotationFailed"}
    for path in (REPO_ROOT / "chalicelib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if called == "add_metric":
                values = [k.value for k in node.keywords if k.arg == "name"]
            elif called in ("count_once", "embedded_count") and node.args:
                values = [node.args[0]]
            else:
                continue
            for value in values:
                arms = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                names.update(a.value for a in arms if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return names


def test_each_alarm_watches_its_metric_and_fires_as_documented(deployed: dict[str, Any]) -> None:
    alarms = alarms_of(deployed)
    for logical_id, spec in ALARMS.items():
        namespace, metric, dims, statistic, period, evaluations, datapoints, threshold, comparison, missing, ok = spec
        alarm = alarms[logical_id]
        assert (alarm["Namespace"], alarm["MetricName"], dimensions(alarm)) == (namespace, metric, dims), logical_id
        assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == (statistic, period, evaluations)
        assert (alarm.get("DatapointsToAlarm"), alarm["Threshold"]) == (datapoints, threshold), logical_id
        assert (alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (comparison, missing), logical_id
        assert alarm["AlarmActions"] == TOPIC
        assert alarm.get("OKActions") == (TOPIC if ok else None), logical_id


def test_every_function_has_errors_and_throttles_alarms(deployed: dict[str, Any]) -> None:
    """Derived from the app: a new function without its alarms fails here."""
    watched: dict[tuple[str, str], dict[str, Any]] = {}
    for alarm in alarms_of(deployed).values():
        if alarm["Namespace"] == "AWS/Lambda":
            assert set(dimensions(alarm)) == {"FunctionName"}
            key = (alarm["MetricName"], json.dumps(dimensions(alarm)["FunctionName"], sort_keys=True))
            assert key not in watched, f"two alarms on {key}"
            watched[key] = alarm
    expected = set()
    for logical_id, name in function_names(deployed).items():
        for metric in FUNCTION_ALARM:
            if not (metric == "Errors" and logical_id in NO_ERRORS_ALARM):
                expected.add((metric, json.dumps(name, sort_keys=True)))
    assert set(watched) == expected
    for (metric, _name), alarm in watched.items():
        statistic, period, evaluations, threshold, comparison, missing, ok = FUNCTION_ALARM[metric]
        assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"]) == (
            statistic,
            period,
            evaluations,
            threshold,
        )
        assert (alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (comparison, missing)
        assert alarm["AlarmActions"] == TOPIC
        assert alarm.get("OKActions") == (TOPIC if ok else None)


def test_every_dead_letter_queue_has_a_depth_alarm(deployed: dict[str, Any]) -> None:
    """A dead-letter queue is any queue a redrive policy or an on-failure destination names."""
    found: set[str] = set()

    def collect(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            if key in ("deadLetterTargetArn", "Destination") and "Fn::GetAtt" in value:
                found.add(value["Fn::GetAtt"][0])
            for k, v in value.items():
                collect(v, k)
        elif isinstance(value, list):
            for item in value:
                collect(item, key)

    collect(deployed["Resources"])
    assert found == {"S3EventsDeadLetterQueue", "AsyncDeadLetterQueue"}
    depth = [
        dimensions(a)["QueueName"]["Fn::GetAtt"][0]
        for a in alarms_of(deployed).values()
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    ]
    assert sorted(depth) == sorted(found)


def test_every_alarm_is_named_for_the_stack_and_sends_to_the_alarm_topic(deployed: dict[str, Any]) -> None:
    for logical_id, alarm in alarms_of(deployed).items():
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${Prefix}-"), logical_id  # the topic policy's pattern
        assert alarm["AlarmActions"] == TOPIC, logical_id
    assert len(alarms_of(deployed)) == len(ALARMS) + sum(
        len(FUNCTION_ALARM) - (k in NO_ERRORS_ALARM) for k in function_names(deployed)
    )


def test_app_alarms_watch_metrics_the_app_emits(deployed: dict[str, Any]) -> None:
    emitted = app_metric_names()
    for logical_id, alarm in alarms_of(deployed).items():
        if alarm["Namespace"] == "Credport":
            assert alarm["MetricName"] in emitted, logical_id
            assert dimensions(alarm)["service"] == "credport"
    kinds = {dimensions(a)["kind"] for a in alarms_of(deployed).values() if a["MetricName"] == "RotationFailed"}
    assert kinds == set(ROTATION_KINDS)


def test_the_alarm_topic_lets_cloudwatch_and_eventbridge_publish(deployed: dict[str, Any]) -> None:
    resources = deployed["Resources"]
    topic = resources["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}  # not alias/aws/sns: its policy is fixed
    key_statements = resources["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    (grant,) = [s for s in key_statements if s["Sid"] == "AlarmsAndEventsPublish"]
    assert set(grant["Principal"]["Service"]) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "Condition" not in grant  # EventBridge sends KMS no source condition keys
    policy = resources["AlarmTopicPolicy"]["Properties"]
    assert policy["Topics"] == TOPIC
    statements = {s["Principal"]["Service"]: s for s in policy["PolicyDocument"]["Statement"]}
    cloudwatch, events = statements["cloudwatch.amazonaws.com"], statements["events.amazonaws.com"]
    assert (cloudwatch["Action"], cloudwatch["Resource"]) == ("sns:Publish", TOPIC[0])
    assert cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${Prefix}-*"
    }
    assert events["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["SessionKeyRotationFailedRule", "Arn"]}}
    }
    assert deployed["Outputs"]["AlarmTopicArn"]["Value"] == TOPIC[0]


def test_secrets_manager_rotation_failures_of_the_session_keys_reach_the_topic(deployed: dict[str, Any]) -> None:
    rule = deployed["Resources"]["SessionKeyRotationFailedRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert (pattern["source"], pattern["detail-type"]) == (["aws.secretsmanager"], ["AWS Service Event via CloudTrail"])
    assert pattern["detail"]["eventName"] == ["RotationFailed"]
    assert pattern["detail"]["additionalEventData"]["SecretId"] == [
        {"Ref": "SessionKeySecret"},
        {"Ref": "AutoIdSessionKeySecret"},
    ]
    assert rule["Targets"] == [{"Id": "AlarmTopic", "Arn": TOPIC[0]}]
    assert rule["State"] == "ENABLED"


@pytest.mark.parametrize(("name", "parameters"), [("A", A), ("B", B), ("C", C)])
def test_the_email_subscription_exists_only_with_an_alarm_email(
    template: dict[str, Any], name: str, parameters: dict[str, str]
) -> None:
    subscription = resolved(template, parameters)["Resources"].get("AlarmEmailSubscription")
    if name == "B":
        assert subscription is not None
        assert subscription["Properties"] == {
            "TopicArn": TOPIC[0],
            "Protocol": "email",
            "Endpoint": {"Ref": "AlarmEmail"},
        }
    else:
        assert subscription is None


def dashboard_of(document: dict[str, Any]) -> dict[str, Any]:
    body = document["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # Fn::Sub's variables as JSON-safe placeholders: the body must be JSON once CloudFormation substitutes them.
    parsed: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))
    return parsed


def test_the_dashboard_names_only_metrics_that_exist(deployed: dict[str, Any]) -> None:
    emitted, functions = app_metric_names(), function_names(deployed)
    fn_names = {
        "<Prefix>" if n == {"Ref": "Prefix"} else n["Fn::Sub"].replace("${Prefix}", "<Prefix>")
        for n in functions.values()
    }
    named: set[str] = set()
    for widget in dashboard_of(deployed)["widgets"]:
        for row in widget["properties"].get("metrics", []):
            namespace, metric, *rest = row
            dims = dict(zip(rest[0:-1:2], rest[1:-1:2], strict=True)) if isinstance(rest[-1], dict) else {}
            named.add(metric)
            if namespace == "Credport":
                assert metric in emitted, metric
                assert dims["service"] == "credport"
            else:
                assert metric in AWS_METRICS[namespace], (namespace, metric)
            if namespace == "AWS/Lambda":
                assert dims["FunctionName"] in fn_names
            if namespace == "AWS/ApiGateway":
                assert dims == {"ApiName": "<Prefix>", "Stage": "api"}  # RestAPI's Name, per deployment
    assert {"TokensIssued", "SessionsStarted", "AutoIdServed", "AutoIdRefused", "SecretsImported", "Latency"} <= named
    assert {"Duration"} <= named


def test_the_dashboard_shows_every_alarm(deployed: dict[str, Any]) -> None:
    (widget,) = [w for w in dashboard_of(deployed)["widgets"] if w["type"] == "alarm"]
    shown = widget["properties"]["alarms"]
    assert sorted(shown) == sorted(f"<{k}.Arn>" for k in alarms_of(deployed))
    assert len(shown) <= 100  # CloudWatch's limit for one alarm widget


@pytest.mark.parametrize(
    "parameters",
    [*PARAMETER_SETS.values(), {**A, "Prefix": "credport-dev"}],
    ids=[*PARAMETER_SETS, "defaults-dev"],
)
def test_the_api_alarm_names_the_api_as_both_paths_name_it(
    template: dict[str, Any], parameters: dict[str, str]
) -> None:
    """REST API metrics carry the API's name and stage, not its id (API Gateway Developer Guide, "Amazon API Gateway
    dimensions and metrics"). chalice names every stage's API credport (app_name), so the API is named after the
    deployment's Prefix (RestAPI's Name in the SAM stack; wire-app renames chalice's API in path b), and the alarm
    watches that name: credport-dev and credport-prod in one account do not share the alarm's data. The stage is
    chalice's api_gateway_stage."""
    config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    assert {stage.get("api_gateway_stage", "api") for stage in config["stages"].values()} == {"api"}
    stack = Template(template, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    api_name = stack.resolve(template["Resources"]["RestAPI"]["Properties"]["Name"])
    assert api_name == parameters["Prefix"]
    alarm = template["Resources"]["Api5xxAlarm"]["Properties"]
    assert stack.resolve(dimensions(alarm)) == {"ApiName": parameters["Prefix"], "Stage": "api"}


def test_monitoring_needs_no_app_so_the_infrastructure_stack_holds_it(template: dict[str, Any]) -> None:
    monitoring = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard", "AWS::Events::Rule"}
    monitoring |= {"AWS::SNS::TopicPolicy", "AWS::SNS::Subscription"}
    ours = {k for k, r in template["Resources"].items() if r["Type"] in monitoring}
    ours |= {"AlarmTopic", "AlarmTopicKey"}
    assert not [k for k in ours if needs_app(template["Resources"][k])]
    infra = infra_template(TEMPLATE)["Resources"]
    assert ours <= set(infra)
    evaluator = Template(infra_template(TEMPLATE), parameters=A, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    for logical_id in ours:  # everything they refer to is in the infrastructure stack too
        assert evaluator.dependencies(logical_id) <= set(infra), logical_id


def test_the_local_stack_provisions_alarms_dashboard_and_rule(factory: ClientFactory) -> None:
    import app

    parameters = {"Prefix": "cp-alarms", "Issuer": "http://127.0.0.1:8000", "AlarmEmail": "ops@example.com"}
    template = Template(
        load_template(TEMPLATE), parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="s"
    )
    provisioned = Provisioner(template, factory.client, functions=app_functions(app.app)).provision()
    topic = provisioned.outputs["AlarmTopicArn"]
    cloudwatch, events, sns = (factory.client(s) for s in ("cloudwatch", "events", "sns"))
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="cp-alarms-")["MetricAlarms"]
    assert len(alarms) == len(alarms_of(load_template(TEMPLATE)))
    assert all(a["AlarmActions"] == [topic] for a in alarms)
    (throttle,) = [a for a in alarms if a["AlarmName"] == "cp-alarms-kms-sign-throttled"]
    assert (throttle["Period"], throttle["EvaluationPeriods"], throttle["DatapointsToAlarm"]) == (60, 3, 2)
    assert throttle["OKActions"] == [topic]
    body = json.loads(cloudwatch.get_dashboard(DashboardName="cp-alarms")["DashboardBody"])
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(widget["properties"]["alarms"]) == sorted(a["AlarmArn"] for a in alarms)
    # The API is named after the Prefix, as on AWS; the alarm and the API widgets name it so.
    assert provisioned.attributes["RestAPI"]["Name"] == "cp-alarms"
    (api_5xx,) = [a for a in alarms if a["AlarmName"] == "cp-alarms-api-5xx"]
    assert api_5xx["Dimensions"] == [{"Name": "ApiName", "Value": "cp-alarms"}, {"Name": "Stage", "Value": "api"}]
    api_rows = [r for w in body["widgets"] for r in w["properties"].get("metrics", []) if r[0] == "AWS/ApiGateway"]
    assert api_rows
    assert all(r[2:6] == ["ApiName", "cp-alarms", "Stage", "api"] for r in api_rows)
    rule = events.describe_rule(Name="cp-alarms-session-key-rotation-failed")
    assert json.loads(rule["EventPattern"])["detail"]["additionalEventData"]["SecretId"] == [
        provisioned.outputs["SessionKeySecretArn"],
        provisioned.outputs["AutoIdSessionKeySecretArn"],
    ]
    assert [t["Arn"] for t in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]] == [topic]
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {"StackAlarmsPublish", "RotationFailedRulePublishes"}
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []  # no mail locally: stated
    assert "AlarmEmailSubscription: email subscription of ops@example.com not created (no mail locally)" in (
        provisioned.notes
    )


def test_emf_metrics_need_no_cloudwatch_permission() -> None:
    """EMF metrics are log lines (CloudWatch User Guide, "Embedded metric format"): the functions' policies hold
    CloudWatch Logs writes, and no cloudwatch:PutMetricData."""
    for path in sorted((REPO_ROOT / ".chalice").glob("policy-*.json")):
        actions: set[str] = set()
        for statement in json.loads(path.read_text())["Statement"]:
            action = statement.get("Action", [])
            actions.update([action] if isinstance(action, str) else action)
        assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= actions, path.name
        assert not [a for a in actions if a.startswith("cloudwatch:")], path.name
