"""The three production parameter sets of issue #16, and pure helpers to see what each one deploys.

`resolved(template, parameters)` is what CloudFormation would work on once the parameters are known: Conditions
evaluated, resources and outputs under a false Condition gone, `Fn::If` and `AWS::NoValue` resolved. Every other
intrinsic (Ref, GetAtt, Sub, ...) stays as written, so tests assert wiring ("this policy's SourceArn is the
distribution's ARN"), not values. No AWS is involved.

`rule_failures(template, parameters)` evaluates the template's Rules section as CloudFormation does before it
touches any resource (the local stack refuses the same combinations: local/template.py).
"""

from __future__ import annotations

import copy
from typing import Any

from local.template import Template

__all__ = [
    "ACCOUNT_ID",
    "PARAMETER_SETS",
    "REGION",
    "A",
    "B",
    "C",
    "conditions",
    "resolved",
    "rule_failures",
]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

# (A) defaults: today's single-account stack, the issuer served by the API.
A: dict[str, str] = {"Prefix": "credport-prod", "Issuer": "https://id.example.com"}
# (B) the issuer on CloudFront under a custom domain, the API under a custom domain, a web ACL the stack provides.
B: dict[str, str] = {
    "Prefix": "credport-prod",
    "Issuer": "",
    "IssuerDistribution": "cloudfront",
    "HostedZoneId": "Z0123456789ABCDEFGHIJ",
    "HostedZoneName": "example.com",
    "IssuerSubdomain": "id",
    "ApiSubdomain": "api",
    "ApiWaf": "provided",
    "AlarmEmail": "ops@example.com",
}
# (C) an existing web ACL, and callers from the whole organization.
C: dict[str, str] = {
    "Prefix": "credport-prod",
    "Issuer": "https://id.example.com",
    "ApiWaf": "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/existing/0123abcd-0123-4567-89ab-0123456789ab",
    "OrganizationId": "o-abcdefghij",
}

PARAMETER_SETS: dict[str, dict[str, str]] = {"defaults": A, "cloudfront-domain-waf": B, "existing-waf-organization": C}

_NO_VALUE = object()


def _template(template: dict[str, Any], parameters: dict[str, str], region: str) -> Template:
    # Only the template's own parameters: a packaged (chalice) stage declares the same ones.
    return Template(template, parameters=parameters, account_id=ACCOUNT_ID, region=region, stack_name="credport-prod")


def conditions(template: dict[str, Any], parameters: dict[str, str], *, region: str = REGION) -> dict[str, bool]:
    """Every Condition of the template, evaluated with these parameter values (and the parameters' Defaults)."""
    evaluator = _template(template, parameters, region)
    return {name: evaluator.condition(name) for name in template.get("Conditions", {})}


def rule_failures(template: dict[str, Any], parameters: dict[str, str], *, region: str = REGION) -> list[str]:
    """The AssertDescription of every Rules assertion these parameters break (empty: CloudFormation accepts them)."""
    return _template(template, parameters, region).rule_failures()


def resolved(template: dict[str, Any], parameters: dict[str, str], *, region: str = REGION) -> dict[str, Any]:
    """The template as deployed with these parameters: conditions applied, the rest of the intrinsics kept.

    Parameters keep their declaration, with `Default` set to the value given (so a linter of the result sees the
    values of this set); the Conditions section is gone (nothing refers to it any more).
    """
    truth = conditions(template, parameters, region=region)
    document = copy.deepcopy(template)
    document.pop("Conditions", None)
    for section in ("Resources", "Outputs"):
        entries = document.get(section, {})
        for name in list(entries):
            condition = entries[name].get("Condition") if isinstance(entries[name], dict) else None
            if condition is not None:
                if not truth[condition]:
                    del entries[name]
                else:
                    del entries[name]["Condition"]
    for name, value in parameters.items():
        if name in document.get("Parameters", {}):
            document["Parameters"][name]["Default"] = value
    result = _apply(document, truth)
    assert isinstance(result, dict)
    return result


def _apply(value: Any, truth: dict[str, bool]) -> Any:
    if isinstance(value, list):
        return [item for item in (_apply(v, truth) for v in value) if item is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, args),) = value.items()
        if key == "Fn::If":
            name, when_true, when_false = args
            return _apply(when_true if truth[name] else when_false, truth)
        if key == "Ref" and args == "AWS::NoValue":
            return _NO_VALUE
    return {k: r for k, r in ((k, _apply(v, truth)) for k, v in value.items()) if r is not _NO_VALUE}
