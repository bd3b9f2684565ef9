"""Acceptance of the production parameters (issue #16), offline: for each parameter set of
tests/deploy_parameter_sets.py, cfn-lint (informational checks on) and the SAM translator find nothing in template.yaml,
the infrastructure-only template (`credport-admin infra-template`) and both packaged stages (`chalice package
--merge-template template.yaml`, packaged once per session by tests/packaging.py).

cfn-lint 1.x takes parameter values (`--parameters`), but evaluates neither Rules nor, everywhere, the Conditions they
decide: each document is linted as written with the set's values AND as deployed with them (`resolved()`: conditions
applied, so a resource only one set creates is linted with that set's wiring), each once per session.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from chalicelib.aws.clients import ClientFactory
from client.deploy import WireError, infra_template, wire_app
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION
from tests.deploy_parameter_sets import PARAMETER_SETS, resolved, rule_failures
from tests.packaging import STAGES, TEMPLATE, packaged_stage, translate_with, without_lint_suppressions

SETS = list(PARAMETER_SETS)


def _documents(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What CloudFormation may be given with these parameters: template.yaml and the infrastructure-only template as
    written and as deployed, and both packaged stages as deployed (test_deployment.py lints them as written)."""
    written = {"template": load_template(TEMPLATE), "infra": infra_template(TEMPLATE)}
    stages = {f"sam-{stage}": without_lint_suppressions(packaged_stage(stage)[1]) for stage in STAGES}
    documents = dict(written)
    documents.update({f"{name} resolved": resolved(doc, parameters) for name, doc in {**written, **stages}.items()})
    return documents


@functools.cache
def _linted(set_name: str) -> dict[str, list[str]]:
    """cfn-lint's findings per document, informational checks included (in process: its API takes the same
    configuration as the command line, and a document a second)."""
    from cfnlint.api import lint
    from cfnlint.config import ManualArgs
    from cfnlint.context.parameters import ParameterSet

    parameters = PARAMETER_SETS[set_name]
    config = ManualArgs(
        regions=["us-east-1", "eu-west-1"],
        include_checks=["I"],
        parameters=[ParameterSet(source=None, parameters=dict(parameters))],
    )
    return {
        name: [str(match) for match in lint(json.dumps(document), config=config)]
        for name, document in _documents(parameters).items()
    }


@pytest.mark.parametrize("set_name", SETS)
def test_each_parameter_set_passes_the_rules(set_name: str) -> None:
    assert rule_failures(load_template(TEMPLATE), PARAMETER_SETS[set_name]) == []


@pytest.mark.parametrize("set_name", SETS)
def test_each_document_lints_clean_with_each_parameter_set(set_name: str) -> None:
    findings = _linted(set_name)
    assert len(findings) == 6
    assert {name: found for name, found in findings.items() if found} == {}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("set_name", SETS)
def test_each_packaged_stage_translates_with_each_parameter_set(set_name: str, stage: str) -> None:
    parameters = PARAMETER_SETS[set_name]
    sam = packaged_stage(stage)[1]
    as_written = translate_with(sam, parameters)
    as_deployed = translate_with(resolved(sam, parameters), parameters)
    types = {r["Type"] for r in as_deployed["Resources"].values()}
    assert "AWS::Serverless::Function" not in types
    assert {_undeployed(r) for r in as_deployed["Resources"]} <= {_undeployed(r) for r in as_written["Resources"]}
    # The API is named after the set's Prefix (its metrics carry the name: the api-5xx alarm's ApiName).
    (api,) = (r for r in as_deployed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    stack = Template(as_deployed, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    assert stack.resolve(api["Properties"]["Name"]) == parameters["Prefix"]
    mapping = as_deployed["Resources"].get("ApiBasePathMapping")
    if set_name == "cloudfront-domain-waf":
        # SAM's `RestAPI.Stage` became its generated stage: the mapping is made once the stage exists.
        assert mapping is not None
        stage_id = mapping["Properties"]["Stage"]["Ref"]
        assert as_deployed["Resources"][stage_id]["Type"] == "AWS::ApiGateway::Stage"
        assert as_deployed["Resources"][stage_id]["Properties"]["StageName"] == "api"
        assert "AWS::CloudFront::Distribution" in types
    else:
        assert mapping is None
        assert "AWS::CloudFront::Distribution" not in types


def _undeployed(logical_id: str) -> str:
    """SAM names the API's deployment after a hash of its definition (which the conditions change)."""
    return re.sub(r"^RestAPIDeployment[0-9a-f]{10}$", "RestAPIDeployment", logical_id)


# wire-app (deployment path b): the API's custom domain mapped to the API and stage chalice deployed -----------

MAPPING_TEMPLATE = {
    "Parameters": {"Prefix": {"Type": "String", "Default": "credport-dev"}, "ApiSubdomain": {"Type": "String"}},
    "Conditions": {"HasApiDomain": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiSubdomain"}, ""]}]}},
    "Resources": {
        "ApiDomainName": {"Type": "AWS::ApiGateway::DomainName", "Condition": "HasApiDomain"},
        "RestAPI": {"Type": "AWS::Serverless::Api", "Metadata": {"credport": {"needs-app": True}}},
        "ApiBasePathMapping": load_template(TEMPLATE)["Resources"]["ApiBasePathMapping"],
    },
}


def _wire(factory: ClientFactory, tmp_path: Path, apigateway: Any) -> list[str]:
    document = json.loads(json.dumps(MAPPING_TEMPLATE))
    document["Resources"].pop("RestAPI")  # only the mapping is under test here
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    api_url = f"https://a1b2c3d4e5.execute-api.{REGION}.amazonaws.com/api/"
    return wire_app(
        path,
        deployed={"resources": [{"resource_type": "rest_api", "rest_api_id": "a1b2c3d4e5", "rest_api_url": api_url}]},
        stack_resources={"ApiDomainName": "api.example.com"},
        stack_parameters={"Prefix": "credport-dev", "ApiSubdomain": "api"},
        account_id=ACCOUNT_ID,
        region=REGION,
        stack_name="credport-dev",
        client=lambda service: apigateway if service == "apigateway" else factory.client(service),
    )


def _lookup(stubber: Stubber, held: dict[str, str] | None) -> None:
    expected = {"domainName": "api.example.com", "basePath": "(none)"}
    if held is None:
        stubber.add_client_error("get_base_path_mapping", "NotFoundException", http_status_code=404)
    else:
        stubber.add_response("get_base_path_mapping", {"basePath": "(none)", **held}, expected)


def test_wire_app_maps_the_api_domain_root_once(factory: ClientFactory, tmp_path: Path) -> None:
    apigateway = factory.client("apigateway")
    with Stubber(apigateway) as stubber:
        _lookup(stubber, None)
        created = {"domainName": "api.example.com", "restApiId": "a1b2c3d4e5", "stage": "api"}  # no basePath: root
        stubber.add_response("create_base_path_mapping", {"basePath": "(none)"}, created)
        assert _wire(factory, tmp_path, apigateway) == ["ApiBasePathMapping (AWS::ApiGateway::BasePathMapping)"]
        _lookup(stubber, {"restApiId": "a1b2c3d4e5", "stage": "api"})  # a rerun: the same mapping, nothing to do
        _wire(factory, tmp_path, apigateway)
        stubber.assert_no_pending_responses()


def test_wire_app_never_repoints_a_domain_mapped_to_another_api(factory: ClientFactory, tmp_path: Path) -> None:
    apigateway = factory.client("apigateway")
    with Stubber(apigateway) as stubber:
        _lookup(stubber, {"restApiId": "zzzzzzzzzz", "stage": "api"})
        with pytest.raises(WireError, match=r"https://api\.example\.com/ already maps to API zzzzzzzzzz stage api"):
            _wire(factory, tmp_path, apigateway)
        stubber.assert_no_pending_responses()  # and nothing was created
