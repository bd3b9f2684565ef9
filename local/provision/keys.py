"""Creators for KMS keys and aliases, and for Secrets Manager secrets and their rotation schedules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .properties import boolean, strict
from .results import RotationSpec

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["kms_alias", "kms_key", "rotation_schedule", "secret"]


def kms_key(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Description", "KeySpec", "KeyUsage", "EnableKeyRotation", "KeyPolicy", "Tags"})
    kms = provisioner.client("kms")
    meta = kms.create_key(
        Description=p.get("Description", ""),
        KeySpec=p.get("KeySpec", "SYMMETRIC_DEFAULT"),
        KeyUsage=p.get("KeyUsage", "ENCRYPT_DECRYPT"),
        Policy=json.dumps(p["KeyPolicy"]) if "KeyPolicy" in p else None,
        Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p.get("Tags", [])],
    )["KeyMetadata"]
    if boolean(p.get("EnableKeyRotation")) == "true":
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    return {"Ref": meta["KeyId"], "Arn": meta["Arn"], "KeyId": meta["KeyId"]}


def kms_alias(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"AliasName", "TargetKeyId"})
    provisioner.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    return {"Ref": p["AliasName"]}


def secret(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Name", "Description", "KmsKeyId", "SecretString", "GenerateSecretString", "Tags"})
    secrets = provisioner.client("secretsmanager")
    value = p.get("SecretString")
    if "GenerateSecretString" in p:
        value = _generated_secret(secrets, p["GenerateSecretString"])
    args: dict[str, Any] = {"Name": p["Name"], "SecretString": value or ""}
    args.update({k: p[k] for k in ("Description", "KmsKeyId") if k in p})
    arn = secrets.create_secret(**args)["ARN"]
    return {"Ref": arn, "Id": arn}


def rotation_schedule(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"SecretId", "RotationLambdaARN", "RotationRules", "RotateImmediatelyOnUpdate"})
    rules = p.get("RotationRules", {})
    period = None
    if "AutomaticallyAfterDays" in rules:
        period = int(rules["AutomaticallyAfterDays"]) * 86400
    elif "ScheduleExpression" in rules:
        from local.pump import rate_seconds

        period = rate_seconds(rules["ScheduleExpression"])
    provisioner.rotations.append(
        RotationSpec(
            secret_id=p["SecretId"],
            function_arn=p["RotationLambdaARN"],
            period_seconds=period,
            rotate_immediately=boolean(p.get("RotateImmediatelyOnUpdate", True)) == "true",
        )
    )
    return {"Ref": logical_id}


def _generated_secret(secrets: Any, spec: Mapping[str, Any]) -> str:
    strict(
        "GenerateSecretString",
        spec,
        {
            "SecretStringTemplate",
            "GenerateStringKey",
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludePunctuation",
            "IncludeSpace",
            "RequireEachIncludedType",
        },
    )
    args = {
        k: spec[k]
        for k in (
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludePunctuation",
            "IncludeSpace",
            "RequireEachIncludedType",
        )
        if k in spec
    }
    password = secrets.get_random_password(**args)["RandomPassword"]
    if "SecretStringTemplate" not in spec:
        return str(password)
    document = json.loads(spec["SecretStringTemplate"])
    document[spec["GenerateStringKey"]] = password
    return json.dumps(document)
