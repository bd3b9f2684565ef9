"""``wire-app``'s part for who may reach the API (path b): the web ACL on the API stage, and the API's resource policy.

Both refer to the API ``chalice deploy`` made, so ``infra-template`` leaves them out (needs-app) and ``wire-app`` puts
them through the AWS APIs after every ``chalice deploy``:

- the web ACL (``AWS::WAFv2::WebACLAssociation``): WAFv2 ``AssociateWebACL`` of the stage's ARN, after
  ``GetWebACLForResource`` shows what it holds (a rerun changes nothing). The stage is tagged ``credport:web-acl``
  with the ARN of the web ACL credport put on it (API Gateway ``TagResource``, before the association), and with
  ``ApiWaf=none`` the web ACL on the stage is disassociated (``DisassociateWebACL``) only if it is that one: a web
  ACL an operator attached outside credport stays, and is reported. IAM: ``wafv2:GetWebACLForResource``,
  ``wafv2:AssociateWebACL``, ``wafv2:DisassociateWebACL``, ``wafv2:GetWebACL`` (the provided web ACL's ARN) and
  ``apigateway:SetWebACL`` on the stage (AWS WAF Developer Guide, "Permissions for AssociateWebACL": the protected
  resource's own permission), ``apigateway:GET``, ``apigateway:PUT`` and ``apigateway:DELETE`` on ``/tags/*``.
- the resource policy (``x-amazon-apigateway-policy`` of ``RestAPI``): merged with the rest of the definition
  (PutRestApi, merge mode); what API Gateway holds is then read back and, if it is not the declared policy, put with
  ``UpdateRestApi`` (``replace /policy``). With no policy declared (OrganizationId empty), a policy the API holds is
  removed (``replace /policy`` with an empty value, as the Terraform AWS provider removes one) if every statement of
  it is one template.yaml declares (by Sid); any other is left, and reported. IAM: ``apigateway:PATCH`` and
  ``apigateway:UpdateRestApiPolicy`` on the API (API Gateway Developer Guide, "Create and attach an API Gateway
  resource policy to an API", which also says a changed policy takes effect with a new deployment: ``wire-app``
  deploys the stage afterwards).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "WEB_ACL_TAG",
    "PolicyNotHeld",
    "associate_web_acl",
    "expand_policy",
    "put_resource_policy",
    "remove_resource_policy",
    "remove_web_acl",
    "web_acl_arn",
]

_SHORTHAND = "execute-api:/"
WEB_ACL_TAG = "credport:web-acl"  # on the API stage: the web ACL credport associated with it


class PolicyNotHeld(Exception):
    """API Gateway does not hold the declared resource policy, even after UpdateRestApi."""


def web_acl_arn(wafv2: Any, physical_id: str) -> str:
    """The ARN of a stack's ``AWS::WAFv2::WebACL`` from its physical id, ``name|id|scope`` (CloudFormation User
    Guide, AWS::WAFv2::WebACL, Return values: Ref)."""
    name, acl_id, scope = physical_id.split("|")
    return str(wafv2.get_web_acl(Name=name, Scope=scope, Id=acl_id)["WebACL"]["ARN"])


def _held_web_acl(wafv2: Any, resource: str) -> str | None:
    try:
        held = wafv2.get_web_acl_for_resource(ResourceArn=resource).get("WebACL")
    except wafv2.exceptions.WAFNonexistentItemException:  # the stage does not exist (yet)
        return None
    return None if held is None else str(held["ARN"])


def _tagged_web_acl(apigateway: Any, resource: str) -> str | None:
    tags: dict[str, str] = apigateway.get_tags(resourceArn=resource).get("tags", {})
    return tags.get(WEB_ACL_TAG)


def associate_web_acl(wafv2: Any, apigateway: Any, props: Mapping[str, Any]) -> str:
    """Put the web ACL on the resource unless it is there already, the resource tagged with it first (so a tag never
    names a web ACL credport did not try to associate); one line saying which web ACL, on what."""
    resource, acl = str(props["ResourceArn"]), str(props["WebACLArn"])
    held = _held_web_acl(wafv2, resource)
    if held == acl:
        if _tagged_web_acl(apigateway, resource) != acl:  # declared (ApiWaf names it): credport's from now on
            apigateway.tag_resource(resourceArn=resource, tags={WEB_ACL_TAG: acl})
        return f"web ACL {acl} already on {resource}"
    apigateway.tag_resource(resourceArn=resource, tags={WEB_ACL_TAG: acl})
    wafv2.associate_web_acl(WebACLArn=acl, ResourceArn=resource)
    replaced = f" (replacing {held})" if held is not None else ""
    return f"web ACL {acl} associated with {resource}{replaced}"


def remove_web_acl(wafv2: Any, apigateway: Any, resource: str) -> str | None:
    """No web ACL declared (``ApiWaf=none``): disassociate the one on the resource if credport associated it (the
    resource's tag names it); None when there is none, so a rerun says nothing."""
    held = _held_web_acl(wafv2, resource)
    if held is None:
        return None
    if _tagged_web_acl(apigateway, resource) != held:
        return f"web ACL {held} on {resource} left as it is: credport did not associate it"
    wafv2.disassociate_web_acl(ResourceArn=resource)
    apigateway.untag_resource(resourceArn=resource, tagKeys=[WEB_ACL_TAG])
    return f"web ACL {held} disassociated from {resource}"


def expand_policy(policy: Mapping[str, Any], *, api_id: str, region: str, account_id: str) -> dict[str, Any]:
    """The policy with API Gateway's ``execute-api:/`` shorthand written as this API's ARNs (as API Gateway stores
    it: API Gateway Developer Guide, "x-amazon-apigateway-policy")."""
    prefix = f"arn:aws:execute-api:{region}:{account_id}:{api_id}/"
    text = json.dumps(policy).replace(f'"{_SHORTHAND}', f'"{prefix}')
    document: dict[str, Any] = json.loads(text)
    return document


def put_resource_policy(
    apigateway: Any, api_id: str, declared: Mapping[str, Any], *, region: str, account_id: str
) -> bool:
    """Make the API hold ``declared`` (shorthand allowed); True if it had to be put with UpdateRestApi."""
    wanted = expand_policy(declared, api_id=api_id, region=region, account_id=account_id)
    if _same(_held(apigateway, api_id), wanted):
        return False
    operation = {"op": "replace", "path": "/policy", "value": json.dumps(wanted)}
    apigateway.update_rest_api(restApiId=api_id, patchOperations=[operation])
    if not _same(_held(apigateway, api_id), wanted):
        raise PolicyNotHeld(f"API Gateway does not hold the declared resource policy of API {api_id}")
    return True


def remove_resource_policy(apigateway: Any, api_id: str, held: Mapping[str, Any], ours: set[str]) -> str | None:
    """No resource policy declared: remove the one the API holds (``held``: GetRestApi's answer) if each of its
    statements has a Sid of ``ours``; None when it holds none, so a rerun says nothing."""
    policy = _parsed(held.get("policy"))
    if policy is None:
        return None
    sids = {s.get("Sid") for s in _statements(policy)}
    if not sids <= ours:
        named = ", ".join(sorted(str(sid) for sid in sids))
        return f"resource policy of REST API {api_id} left as it is: credport did not put it (Sids: {named})"
    operation = {"op": "replace", "path": "/policy", "value": ""}
    answer = apigateway.update_rest_api(restApiId=api_id, patchOperations=[operation])
    if _parsed(answer.get("policy")) is not None:
        raise PolicyNotHeld(f"API Gateway still holds a resource policy on API {api_id} after removing it")
    return f"resource policy removed from REST API {api_id}"


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def _held(apigateway: Any, api_id: str) -> dict[str, Any] | None:
    return _parsed(apigateway.get_rest_api(restApiId=api_id).get("policy"))


def _parsed(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        held: dict[str, Any] = json.loads(raw)
    except ValueError:  # API Gateway returns the document with its quotes escaped (\")
        held = json.loads(raw.replace('\\"', '"'))
    return held


def _same(held: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    if held is None:
        return False
    ours = {s.get("Sid"): _normal(s) for s in _statements(held)}
    return all(ours.get(s.get("Sid")) == _normal(s) for s in wanted["Statement"]) and len(ours) == len(
        wanted["Statement"]
    )


def _normal(statement: Mapping[str, Any]) -> tuple[Any, ...]:
    def values(key: str) -> frozenset[str]:
        value = statement.get(key, [])
        return frozenset([value] if isinstance(value, str) else value)

    principal = statement.get("Principal")
    anyone = principal in ("*", {"AWS": "*"})  # the same principal in a resource policy (IAM User Guide, Principal)
    return (
        statement.get("Effect"),
        "*" if anyone else json.dumps(principal, sort_keys=True),
        values("Action"),
        values("Resource"),
        json.dumps(statement.get("Condition", {}), sort_keys=True),
    )
