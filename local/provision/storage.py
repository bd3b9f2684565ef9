"""Creators for S3 buckets (with their encryption, lifecycle and notifications) and bucket policies, and for
DynamoDB tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .properties import strict

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["dynamodb_table", "s3_bucket", "s3_bucket_policy"]


def s3_bucket(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(
        logical_id,
        p,
        {
            "BucketName",
            "VersioningConfiguration",
            "BucketEncryption",
            "OwnershipControls",
            "PublicAccessBlockConfiguration",
            "LifecycleConfiguration",
            "NotificationConfiguration",
            "Tags",
        },
    )
    s3, name = provisioner.client("s3"), p["BucketName"]
    s3.create_bucket(Bucket=name)
    if "VersioningConfiguration" in p:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=p["VersioningConfiguration"])
    if "BucketEncryption" in p:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(r.get("BucketKeyEnabled", False)),
            }
            for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in p:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in p:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
    if "LifecycleConfiguration" in p:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=_lifecycle(p))
    if "NotificationConfiguration" in p:
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=_notifications(p))
    return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}


def s3_bucket_policy(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Bucket", "PolicyDocument"})
    document = dict(p["PolicyDocument"])
    # Unless conditions are evaluated (local.iam.enforce), moto ignores them: a conditional Deny (say, TLS-only)
    # would deny every request. The local stack evaluates them (its loopback HTTP counts as secure transport).
    kept = [s for s in document["Statement"] if provisioner.conditions_evaluated or "Condition" not in s]
    for statement in document["Statement"]:
        if "Condition" in statement and not provisioner.conditions_evaluated:
            provisioner.notes.append(
                f"{logical_id}: statement {statement.get('Sid', '?')} not enforced locally "
                "(conditional bucket-policy statements)"
            )
    if kept:
        document["Statement"] = kept
        provisioner.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))
    return {"Ref": logical_id}


def dynamodb_table(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(
        logical_id,
        p,
        {
            "TableName",
            "BillingMode",
            "AttributeDefinitions",
            "KeySchema",
            "TimeToLiveSpecification",
            "PointInTimeRecoverySpecification",
            "SSESpecification",
            "Tags",
        },
    )
    ddb, name = provisioner.client("dynamodb"), p["TableName"]
    table = ddb.create_table(
        TableName=name,
        BillingMode=p.get("BillingMode", "PAY_PER_REQUEST"),
        AttributeDefinitions=p["AttributeDefinitions"],
        KeySchema=p["KeySchema"],
        SSESpecification={"Enabled": bool(p.get("SSESpecification", {}).get("SSEEnabled", False))},
    )["TableDescription"]
    if "TimeToLiveSpecification" in p:
        ttl = p["TimeToLiveSpecification"]
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"],
                "Enabled": bool(ttl.get("Enabled", True)),
            },
        )
    if "PointInTimeRecoverySpecification" in p:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification=p["PointInTimeRecoverySpecification"]
        )
    return {"Ref": name, "Arn": table["TableArn"]}


def _lifecycle(p: Mapping[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in p["LifecycleConfiguration"]["Rules"]:
        api_rule: dict[str, Any] = {
            "ID": rule["Id"],
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            api_rule["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            }
        rules.append(api_rule)
    return {"Rules": rules}


def _notifications(p: Mapping[str, Any]) -> dict[str, Any]:
    configs = []
    for queue in p["NotificationConfiguration"].get("QueueConfigurations", []):
        rules = queue.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        config: dict[str, Any] = {"QueueArn": queue["Queue"], "Events": [queue["Event"]]}
        if rules:
            config["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        configs.append(config)
    return {"QueueConfigurations": configs}
