"""Creators for AWS WAF: the API's web ACL (created in the embedded AWS, as declared) and its association with the
API stage (skipped, with a note: the local gateway does not run AWS WAF, so no rule of the web ACL applies locally)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .properties import strict

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["web_acl", "web_acl_association"]

# CloudFormation passes Number parameters as strings; the WAFv2 API wants integers in these fields.
_INTEGERS = frozenset({"Limit", "EvaluationWindowSec", "Priority"})


def web_acl(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"Name", "Description", "Scope", "DefaultAction", "VisibilityConfig", "Rules", "Tags"})
    args = _integers({k: v for k, v in p.items() if k != "Tags"})
    summary = provisioner.client("wafv2").create_web_acl(**args)["Summary"]
    provisioner.notes.append(f"{logical_id}: created, but the local gateway does not run AWS WAF (no rule applies)")
    # Ref of AWS::WAFv2::WebACL is "name|id|scope" (CloudFormation User Guide, AWS::WAFv2::WebACL, Return values).
    return {
        "Ref": f"{summary['Name']}|{summary['Id']}|{p['Scope']}",
        "Arn": str(summary["ARN"]),
        "Id": str(summary["Id"]),
    }


def web_acl_association(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"ResourceArn", "WebACLArn"})
    provisioner.notes.append(
        f"{logical_id}: web ACL {p['WebACLArn']} not associated locally (the local gateway does not run AWS WAF)"
    )
    return {"Ref": logical_id}


def _integers(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _integers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v, key) for v in value]
    return int(value) if key in _INTEGERS else value
