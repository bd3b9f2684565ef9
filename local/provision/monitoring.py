"""Creators for what tells an operator something went wrong: the alarm topic's policy and subscriptions, the
EventBridge rule that forwards Secrets Manager's rotation failures, and the CloudWatch dashboard.

Each is created in the embedded AWS as declared, so a template error shows locally; what the embedded AWS cannot do
with it (send mail, emit Secrets Manager's CloudTrail events) is stated as a provisioning note.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from local.template import TemplateError

from .properties import strict

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["cloudwatch_dashboard", "events_rule", "sns_subscription", "sns_topic_policy"]


def sns_topic_policy(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Topics", "PolicyDocument"})
    for topic_arn in p["Topics"]:
        provisioner.client("sns").set_topic_attributes(
            TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
        )
    return {"Ref": logical_id}


def sns_subscription(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"TopicArn", "Protocol", "Endpoint"})
    if p["Protocol"] != "email":
        raise TemplateError(f"{logical_id}: the local stack subscribes email endpoints only; teach local/provision/")
    # An email subscription waits for its confirmation link; the embedded AWS sends no mail, so it is left out rather
    # than held pending forever. Alarms still publish to the topic (nothing evaluates them locally either).
    provisioner.notes.append(f"{logical_id}: email subscription of {p['Endpoint']} not created (no mail locally)")
    return {"Ref": f"{p['TopicArn']}:{logical_id}"}


def events_rule(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Name", "Description", "State", "EventPattern", "Targets"})
    events = provisioner.client("events")
    args: dict[str, Any] = {"Name": p["Name"], "EventPattern": json.dumps(p["EventPattern"])}
    args.update({k: p[k] for k in ("Description", "State") if k in p})
    arn = events.put_rule(**args)["RuleArn"]
    targets = []
    for target in p.get("Targets", []):
        strict(f"{logical_id}.Targets", target, {"Id", "Arn"})
        targets.append({"Id": target["Id"], "Arn": target["Arn"]})
    if targets:
        events.put_targets(Rule=p["Name"], Targets=targets)
    if p["EventPattern"].get("source") == ["aws.secretsmanager"]:
        provisioner.notes.append(
            f"{logical_id}: never matches locally (the embedded Secrets Manager emits no CloudTrail events)"
        )
    return {"Ref": p["Name"], "Arn": arn}


def cloudwatch_dashboard(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"DashboardName", "DashboardBody"})
    try:
        json.loads(p["DashboardBody"])  # CloudWatch refuses a body that is not JSON (PutDashboard); so do we
    except ValueError as error:
        raise TemplateError(f"{logical_id}: DashboardBody is not JSON once resolved ({error})") from None
    provisioner.client("cloudwatch").put_dashboard(DashboardName=p["DashboardName"], DashboardBody=p["DashboardBody"])
    return {"Ref": p["DashboardName"]}
