"""ApiWaf (issue #16): the provided web ACL (parameter set B) with its rules and overrides, its association with the
app's API stage in B (the provided web ACL) and C (the given ARN) but not A, the association in path (b)
(``wire-app``, WAFv2 AssociateWebACL; with ApiWaf=none, DisassociateWebACL of the web ACL it associated), and what
the local stack makes of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from chalicelib.aws.clients import ClientFactory
from client.deploy import infra_template, wire_app
from client.wire_access import WEB_ACL_TAG
from local.provision.waf import web_acl, web_acl_association
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION
from tests.deploy_parameter_sets import A, B, C, resolved
from tests.packaging import TEMPLATE, packaged_stage, translated

API_ID = "a1b2c3d4e5"
STAGE_ARN = f"arn:aws:apigateway:{REGION}::/restapis/{API_ID}/stages/api"
PROVIDED_ARN = (
    f"arn:aws:wafv2:{REGION}:{ACCOUNT_ID}:regional/webacl/credport-prod-api/11111111-2222-3333-4444-555555555555"
)
# The core rule set's rules credport's own requests trip, set to Count and blocked again by a label rule everywhere
# else: rule -> (the label it adds, the path suffixes where it is not blocked again).
COUNTED = {
    "SizeRestrictions_BODY": (
        "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body",
        {"/transfer/import", "/auto-id"},
    ),
    "EC2MetaDataSSRF_BODY": ("awswaf:managed:aws:core-rule-set:EC2MetaDataSSRF_Body", {"/transfer/import"}),
    "GenericRFI_BODY": ("awswaf:managed:aws:core-rule-set:GenericRFI_Body", {"/transfer/import"}),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _rules(document: dict[str, Any]) -> dict[str, Any]:
    return {rule["Name"]: rule for rule in document["Resources"]["ApiWebAcl"]["Properties"]["Rules"]}


def test_the_association_exists_with_a_web_acl_only(template: dict[str, Any]) -> None:
    assert "ApiWebAclAssociation" not in resolved(template, A)["Resources"]
    assert "ApiWebAcl" not in resolved(template, A)["Resources"]
    stage = "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}/stages/${RestAPI.Stage}"
    provided = resolved(template, B)["Resources"]["ApiWebAclAssociation"]["Properties"]
    assert provided == {"ResourceArn": {"Fn::Sub": stage}, "WebACLArn": {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}}
    given = resolved(template, C)["Resources"]
    assert given["ApiWebAclAssociation"]["Properties"] == {
        "ResourceArn": {"Fn::Sub": stage},
        "WebACLArn": {"Ref": "ApiWaf"},
    }
    assert "ApiWebAcl" not in given  # an existing web ACL: none is created
    assert template["Resources"]["ApiWebAclAssociation"]["Metadata"]["credport"]["needs-app"] is True
    assert "ApiWebAclAssociation" not in infra_template(TEMPLATE)["Resources"]  # path (b): wire-app associates it
    assert "ApiWebAcl" in infra_template(TEMPLATE)["Resources"]


def test_the_packaged_association_names_the_stage_sam_creates() -> None:
    """`RestAPI.Stage` becomes SAM's stage resource: the association refers to it, so it is made after the stage."""
    for parameters in (B, C):
        resources = translated("prod", resolved(packaged_stage("prod")[1], parameters))["Resources"]
        association = resources["ApiWebAclAssociation"]["Properties"]["ResourceArn"]["Fn::Sub"]
        assert association.endswith("/restapis/${RestAPI}/stages/${RestAPIapiStage}")
        assert resources["RestAPIapiStage"]["Type"] == "AWS::ApiGateway::Stage"
        assert resources["RestAPIapiStage"]["Properties"]["StageName"] == "api"


def test_the_provided_web_acl_rules_in_order(template: dict[str, Any]) -> None:
    acl = resolved(template, B)["Resources"]["ApiWebAcl"]["Properties"]
    assert (acl["Scope"], acl["DefaultAction"]) == ("REGIONAL", {"Allow": {}})
    assert acl["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    rules = _rules(resolved(template, B))
    assert [(r["Name"], r["Priority"]) for r in rules.values()] == [
        ("RateLimitPerIp", 0),
        ("AWSManagedRulesAmazonIpReputationList", 1),
        ("AWSManagedRulesKnownBadInputsRuleSet", 2),
        ("AWSManagedRulesCommonRuleSet", 3),
        ("LargeBodyOutsideUploads", 4),
        ("BodyUrlOutsideImport", 5),
    ]
    assert rules["RateLimitPerIp"]["Statement"] == {
        "RateBasedStatement": {
            "Limit": {"Ref": "ApiWafRateLimit"},
            "EvaluationWindowSec": 300,
            "AggregateKeyType": "IP",
        }
    }
    assert rules["RateLimitPerIp"]["Action"] == {"Block": {}}
    limit = template["Parameters"]["ApiWafRateLimit"]
    assert (limit["Default"], limit["MinValue"], limit["MaxValue"]) == (1000, 10, 2000000000)  # WAF's own bounds
    for name in ("AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesKnownBadInputsRuleSet"):
        assert rules[name]["OverrideAction"] == {"None": {}}
        assert rules[name]["Statement"] == {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": name}}
    for rule in rules.values():
        assert rule["VisibilityConfig"]["MetricName"] == rule["Name"]


def _paths(statement: dict[str, Any]) -> set[str]:
    """The path suffixes a (Not) statement exempts: ENDS_WITH matches on the undecoded URI path."""
    inner = statement["NotStatement"]["Statement"]
    matches = inner["OrStatement"]["Statements"] if "OrStatement" in inner else [inner]
    found = set()
    for match in matches:
        byte = match["ByteMatchStatement"]
        assert (byte["FieldToMatch"], byte["PositionalConstraint"]) == ({"UriPath": {}}, "ENDS_WITH")
        assert byte["TextTransformations"] == [{"Priority": 0, "Type": "NONE"}]
        found.add(byte["SearchString"])
    return found


def test_counted_core_rules_are_blocked_again_outside_credports_own_uploads(template: dict[str, Any]) -> None:
    rules = _rules(resolved(template, B))
    common = rules["AWSManagedRulesCommonRuleSet"]
    assert common["OverrideAction"] == {"None": {}}  # the group's own actions, but for the overrides
    overrides = common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    assert {o["Name"]: o["ActionToUse"] for o in overrides} == {name: {"Count": {}} for name in COUNTED}
    reblocked: dict[str, set[str]] = {}
    for name in ("LargeBodyOutsideUploads", "BodyUrlOutsideImport"):
        assert rules[name]["Action"] == {"Block": {}}
        labels, exempt = rules[name]["Statement"]["AndStatement"]["Statements"]
        matches = labels["OrStatement"]["Statements"] if "OrStatement" in labels else [labels]
        for match in matches:
            assert match["LabelMatchStatement"]["Scope"] == "LABEL"
            reblocked[match["LabelMatchStatement"]["Key"]] = _paths(exempt)
    assert reblocked == dict(COUNTED.values())


def test_the_local_stack_creates_the_web_acl_and_says_it_is_not_applied(
    template: dict[str, Any], factory: ClientFactory
) -> None:
    stack = Template(template, parameters=B, account_id=ACCOUNT_ID, region=REGION, stack_name="credport-prod")
    notes: list[str] = []
    provisioner: Any = type("P", (), {"client": staticmethod(factory.client), "notes": notes})()
    created = web_acl(provisioner, "ApiWebAcl", stack.resolve(template["Resources"]["ApiWebAcl"]["Properties"]))
    held = provisioner.client("wafv2").get_web_acl(Name="credport-prod-api", Scope="REGIONAL", Id=created["Id"])
    assert [r["Name"] for r in held["WebACL"]["Rules"]] == list(_rules(resolved(template, B)))
    assert held["WebACL"]["Rules"][0]["Statement"]["RateBasedStatement"]["Limit"] == 1000
    assert created["Ref"] == f"credport-prod-api|{created['Id']}|REGIONAL"
    web_acl_association(provisioner, "ApiWebAclAssociation", {"ResourceArn": STAGE_ARN, "WebACLArn": created["Arn"]})
    assert any("not associated locally" in note for note in notes)


# ---- wire-app (path b) ---------------------------------------------------------------------------------------


def _acl(arn: str) -> dict[str, Any]:
    """A web ACL as WAFv2 describes it (GetWebACL, GetWebACLForResource)."""
    name, acl_id = arn.rsplit("/", 2)[1:]
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": name}
    return {"Name": name, "Id": acl_id, "ARN": arn, "DefaultAction": {"Allow": {}}, "VisibilityConfig": visibility}


def _wire(
    tmp_path: Path,
    template: dict[str, Any],
    parameters: dict[str, str],
    clients: dict[str, Any],
    stack: dict[str, str],
) -> list[str]:
    document = json.loads(json.dumps(template))
    document["Resources"] = {k: v for k, v in document["Resources"].items() if k.startswith("ApiWebAcl")}
    document.pop("Outputs")
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    api_url = f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/api/"
    return wire_app(
        path,
        deployed={"resources": [{"resource_type": "rest_api", "rest_api_id": API_ID, "rest_api_url": api_url}]},
        stack_resources=stack,
        stack_parameters=parameters,
        account_id=ACCOUNT_ID,
        region=REGION,
        stack_name="credport-prod",
        client=lambda service: clients[service],
    )


def _stubbed(factory: ClientFactory) -> tuple[dict[str, Any], Stubber, Stubber]:
    clients = {service: factory.client(service) for service in ("wafv2", "apigateway")}
    return clients, Stubber(clients["wafv2"]), Stubber(clients["apigateway"])


def _tags(stubber: Stubber, acl: str | None) -> None:
    """GetTags of the stage: the web ACL credport associated with it (WEB_ACL_TAG), if any."""
    tags = {} if acl is None else {WEB_ACL_TAG: acl}
    stubber.add_response("get_tags", {"tags": tags}, {"resourceArn": STAGE_ARN})


def _tag(stubber: Stubber, acl: str) -> None:
    stubber.add_response("tag_resource", {}, {"resourceArn": STAGE_ARN, "tags": {WEB_ACL_TAG: acl}})


def test_wire_app_associates_the_given_web_acl_once(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    clients, waf, apigateway = _stubbed(factory)
    given = C["ApiWaf"]
    with waf, apigateway:
        waf.add_client_error("get_web_acl_for_resource", "WAFNonexistentItemException", http_status_code=400)
        _tag(apigateway, given)  # the stage says which web ACL is credport's, before it is associated
        waf.add_response("associate_web_acl", {}, {"WebACLArn": given, "ResourceArn": STAGE_ARN})
        assert _wire(tmp_path, template, C, clients, {}) == [
            f"ApiWebAclAssociation (AWS::WAFv2::WebACLAssociation): web ACL {given} associated with {STAGE_ARN}"
        ]
        waf.add_response("get_web_acl_for_resource", {"WebACL": _acl(given)}, {"ResourceArn": STAGE_ARN})
        _tags(apigateway, given)  # a rerun: nothing to do
        assert _wire(tmp_path, template, C, clients, {})[0].endswith(f"web ACL {given} already on {STAGE_ARN}")
        waf.add_response("get_web_acl_for_resource", {"WebACL": _acl(given)}, {"ResourceArn": STAGE_ARN})
        _tags(apigateway, None)  # on the stage but untagged (associated by hand): ApiWaf names it, so it is tagged
        _tag(apigateway, given)
        assert _wire(tmp_path, template, C, clients, {})[0].endswith(f"web ACL {given} already on {STAGE_ARN}")
        waf.assert_no_pending_responses()
        apigateway.assert_no_pending_responses()


def test_wire_app_associates_the_provided_web_acl_of_the_infrastructure_stack(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    clients, waf, apigateway = _stubbed(factory)
    physical = "credport-prod-api|11111111-2222-3333-4444-555555555555|REGIONAL"  # its Ref, name|id|scope
    with waf, apigateway:
        lookup = {"Name": "credport-prod-api", "Scope": "REGIONAL", "Id": "11111111-2222-3333-4444-555555555555"}
        waf.add_response("get_web_acl", {"WebACL": _acl(PROVIDED_ARN), "LockToken": "t"}, lookup)
        old = f"arn:aws:wafv2:{REGION}:{ACCOUNT_ID}:regional/webacl/old/99999999-2222-3333-4444-555555555555"
        waf.add_response("get_web_acl_for_resource", {"WebACL": _acl(old)}, {"ResourceArn": STAGE_ARN})
        _tag(apigateway, PROVIDED_ARN)
        waf.add_response("associate_web_acl", {}, {"WebACLArn": PROVIDED_ARN, "ResourceArn": STAGE_ARN})
        (line,) = _wire(tmp_path, template, B, clients, {"ApiWebAcl": physical})
        waf.assert_no_pending_responses()
        apigateway.assert_no_pending_responses()
    assert line.endswith(f"web ACL {PROVIDED_ARN} associated with {STAGE_ARN} (replacing {old})")


def test_wire_app_disassociates_the_web_acl_it_associated_once_api_waf_is_none(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    """Path (b) with ApiWaf=none (set A): the web ACL credport put on the stage (the stage's tag names it) is
    disassociated and the tag removed, which is said; a rerun finds none and says nothing."""
    clients, waf, apigateway = _stubbed(factory)
    given = C["ApiWaf"]
    with waf, apigateway:
        waf.add_response("get_web_acl_for_resource", {"WebACL": _acl(given)}, {"ResourceArn": STAGE_ARN})
        _tags(apigateway, given)
        waf.add_response("disassociate_web_acl", {}, {"ResourceArn": STAGE_ARN})
        untag = {"resourceArn": STAGE_ARN, "tagKeys": [WEB_ACL_TAG]}
        apigateway.add_response("untag_resource", {}, untag)
        assert _wire(tmp_path, template, A, clients, {}) == [
            f"ApiWebAclAssociation (AWS::WAFv2::WebACLAssociation): web ACL {given} disassociated from {STAGE_ARN}"
        ]
        waf.add_response("get_web_acl_for_resource", {}, {"ResourceArn": STAGE_ARN})  # a rerun: nothing on the stage
        assert _wire(tmp_path, template, A, clients, {}) == []
        waf.assert_no_pending_responses()
        apigateway.assert_no_pending_responses()


def test_wire_app_leaves_a_web_acl_credport_did_not_associate(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    """ApiWaf=none and a web ACL an operator attached outside credport (untagged, or not the one the tag names): it
    stays on the stage (as in path a, where CloudFormation deletes only the association it made), and is reported."""
    clients, waf, apigateway = _stubbed(factory)
    theirs = f"arn:aws:wafv2:{REGION}:{ACCOUNT_ID}:regional/webacl/theirs/77777777-2222-3333-4444-555555555555"
    with waf, apigateway:
        for tagged in (None, C["ApiWaf"]):
            waf.add_response("get_web_acl_for_resource", {"WebACL": _acl(theirs)}, {"ResourceArn": STAGE_ARN})
            _tags(apigateway, tagged)
            assert _wire(tmp_path, template, A, clients, {}) == [
                f"ApiWebAclAssociation (AWS::WAFv2::WebACLAssociation): web ACL {theirs} on {STAGE_ARN} left as it "
                "is: credport did not associate it"
            ]
        waf.assert_no_pending_responses()  # no DisassociateWebACL
        apigateway.assert_no_pending_responses()
