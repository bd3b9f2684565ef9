"""Creators for SQS queues and queue policies, SNS topics, and the CloudWatch alarms that notify them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .properties import boolean, strict

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["cloudwatch_alarm", "sns_topic", "sqs_queue", "sqs_queue_policy"]


def sqs_queue(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    plain = {
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "MaximumMessageSize",
        "ReceiveMessageWaitTimeSeconds",
        "KmsMasterKeyId",
    }
    flags = {"SqsManagedSseEnabled", "FifoQueue", "ContentBasedDeduplication"}
    strict(logical_id, p, plain | flags | {"QueueName", "RedrivePolicy", "Tags"})
    attributes = {k: str(p[k]) for k in plain if k in p}
    attributes.update({k: boolean(p[k]) for k in flags if k in p})
    if "RedrivePolicy" in p:
        redrive = p["RedrivePolicy"]
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
        )
    sqs = provisioner.client("sqs")
    url = sqs.create_queue(QueueName=p["QueueName"], Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": p["QueueName"], "QueueUrl": url}


def sqs_queue_policy(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Queues", "PolicyDocument"})
    for url in p["Queues"]:
        provisioner.client("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
        )
    return {"Ref": logical_id}


def sns_topic(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"TopicName", "KmsMasterKeyId", "Tags"})
    attributes = {"KmsMasterKeyId": p["KmsMasterKeyId"]} if "KmsMasterKeyId" in p else {}
    arn = provisioner.client("sns").create_topic(Name=p["TopicName"], Attributes=attributes)["TopicArn"]
    return {"Ref": arn, "TopicArn": arn, "TopicName": p["TopicName"]}


def cloudwatch_alarm(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    keys = {"AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic"}
    keys |= {"Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions"}
    numbers = {"Period", "EvaluationPeriods", "DatapointsToAlarm"}
    strict(logical_id, p, keys | numbers)
    provisioner.client("cloudwatch").put_metric_alarm(
        **{k: p[k] for k in keys - {"Threshold"} if k in p},
        **{k: int(p[k]) for k in numbers if k in p},
        Threshold=float(p["Threshold"]),
    )
    note = "CloudWatch alarms: defined, never evaluated locally (the embedded CloudWatch gets no metrics)"
    if note not in provisioner.notes:
        provisioner.notes.append(note)
    region, account = (
        provisioner.template.resolve({"Ref": "AWS::Region"}),
        provisioner.template.resolve({"Ref": "AWS::AccountId"}),
    )
    return {"Ref": p["AlarmName"], "Arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{p['AlarmName']}"}
