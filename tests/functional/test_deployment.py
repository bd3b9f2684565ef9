"""Deployment artefacts, checked offline: template.yaml, the packaged SAM stack, policies, requirements."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.aws.clients import ClientFactory
from chalicelib.config import STACK_OUTPUTS
from local.provision import Provisioned
from local.template import load_template
from tests.conftest import REPO_ROOT
from tests.packaging import STAGES, TEMPLATE, cfn_lint, packaged_stage, without_lint_suppressions
from tests.packaging import translated as translate


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module", params=STAGES)
def packaged(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """`chalice package --merge-template template.yaml`, as the README's SAM path runs it."""
    stage: str = request.param
    return stage, packaged_stage(stage)[1]


def test_template_passes_cfn_lint() -> None:
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_packaged_stage_passes_cfn_lint_with_nothing_silenced(
    packaged: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Linted whole, with informational checks: the suppressions template.yaml's fragments carry (false
    positives on a fragment) are stripped, so none can hide a finding in the stack CloudFormation gets."""
    stage, sam = packaged
    path = tmp_path / f"sam-{stage}.json"
    path.write_text(json.dumps(without_lint_suppressions(sam)))
    result = cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_packaged_stack_translates_offline(packaged: tuple[str, dict[str, Any]]) -> None:
    stage, sam = packaged
    translated = translate(stage, sam)
    types = {r["Type"] for r in translated["Resources"].values()}
    assert "AWS::Lambda::Function" in types
    assert "AWS::Lambda::EventSourceMapping" in types  # the S3 events queue feeds a function
    assert "AWS::SNS::Subscription" in types  # the key-events topic feeds a function
    assert "AWS::Serverless::Function" not in types
    functions = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    for function in functions:
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(STACK_OUTPUTS) <= set(variables), "Globals did not reach every function"


def test_packaged_event_sources_point_at_template_resources(
    packaged: tuple[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    stage, sam = packaged
    prefix = f"credport-{stage}"
    resources = template["Resources"]
    queue_name = resources["S3EventsQueue"]["Properties"]["QueueName"]["Fn::Sub"].replace("${Prefix}", prefix)
    topic_name = resources["KeyEventsTopic"]["Properties"]["TopicName"]["Fn::Sub"].replace("${Prefix}", prefix)
    sources = [
        e["Properties"]
        for r in sam["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        for e in r["Properties"].get("Events", {}).values()
    ]
    queues = [s["Queue"]["Fn::Sub"] for s in sources if "Queue" in s]
    topics = [s["Topic"]["Fn::Sub"] for s in sources if "Topic" in s]
    assert queues == [f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue_name}"]
    assert topics == [f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{topic_name}"]


def test_the_packaged_rest_api_definition_carries_every_gateway_response(
    packaged: tuple[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """In the API's definition, not as AWS::ApiGateway::GatewayResponse resources: every deployment of the
    stage then carries them (separate resources need a new deployment, and SAM redeployments can drop them)."""
    stage, sam = packaged
    key = "x-amazon-apigateway-gateway-responses"
    declared = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][key]
    assert set(declared) == {"UNAUTHORIZED", "ACCESS_DENIED", "AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"}
    rest_api = sam["Resources"]["RestAPI"]
    assert rest_api["Properties"]["DefinitionBody"][key] == declared
    assert {"/token", "/session"} <= set(rest_api["Properties"]["DefinitionBody"]["paths"])  # chalice's half kept
    assert rest_api["Properties"]["StageName"] == "api"
    (api,) = (r for r in translate(stage, sam)["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    assert api["Properties"]["Body"][key] == declared
    assert not [r for r in sam["Resources"].values() if r["Type"] == "AWS::ApiGateway::GatewayResponse"]


def test_the_packaged_rest_api_is_named_after_the_prefix(packaged: tuple[str, dict[str, Any]]) -> None:
    """REST API metrics carry the API's name, not its id: the SAM stack's API is named after the stage's Prefix (SAM
    passes Name to the RestApi's Name), not after chalice's app name, the definition's title in every stage."""
    from local.template import Template
    from tests.conftest import ACCOUNT_ID, REGION

    stage, sam = packaged
    assert sam["Resources"]["RestAPI"]["Properties"]["Name"] == {"Ref": "Prefix"}
    translated = translate(stage, sam)
    (api,) = (r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    assert api["Properties"]["Body"]["info"]["title"] == "credport"  # chalice's, the same in every stage
    prefix = f"credport-{stage}"
    stack = Template(translated, parameters={"Prefix": prefix}, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    assert stack.resolve(api["Properties"]["Name"]) == prefix


def test_the_packaged_stack_runs_each_function_as_its_own_role(
    packaged: tuple[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """chalice's logical ids for a function and its role (<Function>, <Function>Role) are template.yaml's, each role
    holds exactly its function's policy file under the name template.yaml gives it, and POST /auto-id is the
    auto_id function's, by proxy, invocable by API Gateway for that method only."""
    stage, sam = packaged
    resources = sam["Resources"]
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    files = _policy_files(stage)
    assert len(functions) == len(files) == 9
    for logical_id, function in functions.items():
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        name = "api_handler" if logical_id == "APIHandler" else function["Properties"]["Handler"].split(".")[1]
        role = resources[role_id]["Properties"]
        (policy,) = role["Policies"]
        assert policy["PolicyDocument"] == json.loads(files[name].read_text()), logical_id
        assert template["Resources"][role_id]["Properties"]["RoleName"]["Fn::Sub"] == f"${{Prefix}}-{name}"
        assert role["RoleName"] == {"Fn::Sub": f"${{Prefix}}-{name}"}
    assert functions["AutoId"]["Properties"]["Handler"] == "app.auto_id"
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    integration = paths["/auto-id"]["post"]["x-amazon-apigateway-integration"]
    assert (integration["type"], integration["httpMethod"]) == ("aws_proxy", "POST")
    assert "${AutoId.Arn}" in integration["uri"]["Fn::Sub"]
    assert "/auto-id" not in {p for p, item in paths.items() if "${APIHandler.Arn}" in json.dumps(item)}
    assert set(paths["/auto-id"]) == {"post"}  # no other method reaches the function
    permission = resources["AutoIdInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${RestAPI}/*/POST/auto-id")


def test_globals_outputs_and_settings_agree(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) == set(STACK_OUTPUTS)
    for env_name, output in STACK_OUTPUTS.items():
        assert template["Outputs"][output]["Value"] == variables[env_name], env_name


def test_every_resource_an_env_var_names_exists(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for env_name, value in variables.items():
        for name in _named(value):
            assert name in template["Resources"] or name in template["Parameters"], f"{env_name} names {name}"


def _named(value: dict[str, Any]) -> list[str]:
    """The resources and parameters an env var's value names (Fn::If: either branch's, the issuer's among them)."""
    if isinstance(value, str):  # a literal branch ("-": no organization) names nothing
        return []
    ((function, argument),) = value.items()
    if function == "Fn::If":
        return [n for branch in argument[1:] for n in _named(branch)]
    if function == "Fn::Sub":
        return [n.split(".")[0] for n in re.findall(r"\$\{([^}]+)\}", argument)]
    return [argument if function == "Ref" else argument[0] if isinstance(argument, list) else argument.split(".")[0]]


def test_template_names_carry_the_prefix(template: dict[str, Any]) -> None:
    name_keys = ("QueueName", "TopicName", "TableName", "BucketName", "AliasName")
    for logical_id, resource in template["Resources"].items():
        for key in name_keys:
            if key in resource.get("Properties", {}):
                assert "${Prefix}" in resource["Properties"][key]["Fn::Sub"], logical_id


def test_transfer_bucket_is_locked_down(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["TransferBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    prefixes = {
        c["Filter"]["S3Key"]["Rules"][0]["Value"] for c in bucket["NotificationConfiguration"]["QueueConfigurations"]
    }
    assert prefixes == {"inbox/", "clients/"}


def test_events_queue_has_a_dead_letter_queue_and_state_table_a_ttl(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    redrive = resources["S3EventsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["S3EventsDeadLetterQueue", "Arn"]}
    assert resources["StateTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"] is True


def _policy_files(stage: str) -> dict[str, Path]:
    """Each function's hand-written policy file in the stage (.chalice/config.json lambda_functions)."""
    settings = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())["stages"][stage]
    return {name: REPO_ROOT / ".chalice" / f["iam_policy_file"] for name, f in settings["lambda_functions"].items()}


def test_chalice_config_has_both_stages_with_hand_written_policies() -> None:
    config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    assert set(config["stages"]) == set(STAGES)
    for stage, settings in config["stages"].items():
        assert all(path.exists() for path in _policy_files(stage).values())
        # Resource names come from the template (Globals / stack outputs), never hard-coded per stage.
        assert not set(settings.get("environment_variables", {})) & set(STACK_OUTPUTS), stage


# Actions AWS authorizes only on "*" (no resource-level permissions); each must still carry a condition
# where one exists (kms:CreateKey and kms:TagResource: the request tag naming this stage's prefix).
STAR_RESOURCE_ACTIONS = {"kms:CreateKey", "kms:TagResource", "tag:GetResources"}
# Reads of any resource of one kind in the account, each for a reason no stage prefix can express.
ACCOUNT_WIDE_READS = {
    # A token's sub is the caller's role ARN with its path, and callers' roles have any name
    # (chalicelib/role_arns.py). GetRole reads the function's own account only, whatever the ARN says.
    ("iam:GetRole", "arn:aws:iam::*:role/*"),
    # A token's principal_tags of a caller that is an IAM user, any name (chalicelib/role_arns.py); GetUser, too,
    # reads the function's own account only.
    ("iam:GetUser", "arn:aws:iam::*:user/*"),
}


@pytest.mark.parametrize("stage", STAGES)
def test_policies_are_least_privilege(stage: str) -> None:
    prefix = f"credport-{stage}"
    statements = [s for p in _policy_files(stage).values() for s in json.loads(p.read_text())["Statement"]]
    for statement in statements:
        sid = statement["Sid"]
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), sid
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        condition = json.dumps(statement.get("Condition", {}))
        for resource in resources:
            if all((action, resource) in ACCOUNT_WIDE_READS for action in actions):
                continue
            if resource == "*":
                assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{sid}: only {STAR_RESOURCE_ACTIONS} may use '*'"
                if "kms:CreateKey" in actions:
                    assert f'"{prefix}"' in condition, f"{sid}: creating keys must be tied to this stage"
            else:
                scoped_by_condition = f'"{prefix}"' in condition or f"/{prefix}/" in condition
                # A name that is the prefix itself: `chalice deploy` calls the API handler <app>-<stage>.
                exactly_named = resource.endswith(f"/{prefix}") or f"/{prefix}:" in resource
                assert f"{prefix}-" in resource or f"{prefix}/" in resource or exactly_named or scoped_by_condition, (
                    f"{sid}: {resource} is not scoped to this stage"
                )


def test_token_signing_keys_carry_the_tag_the_policy_scopes_by(
    provisioned: Provisioned, factory: ClientFactory
) -> None:
    from tests.conftest import install_services

    install_services().tokens.rotation.ensure_keys()
    kms = factory.client("kms")
    for role in ("current", "pending"):
        key = kms.describe_key(KeyId=f"alias/credport-dev/signing/{role}")["KeyMetadata"]["KeyId"]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key)["Tags"]}
        assert tags["credport:prefix"] == "credport-dev"  # what the key statements of the policies require


def test_envelope_signing_keys_stay_where_the_policy_reaches_them(
    provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Secrets Manager call the envelope signer makes (bootstrap, rotation, revocation, serving) is allowed
    by a statement of each key user's policy for its secret, new keys carry the tags the create statement requires and
    are encrypted under the data key, and no direct KMS call is made (the data key is used through Secrets
    Manager only, as DataKeyThroughSecretsManager allows)."""
    from fnmatch import fnmatchcase

    from chalicelib.config import get_settings, reset_settings
    from chalicelib.services import Services
    from tests.conftest import install_services

    monkeypatch.setenv("CREDPORT_TOKEN_SIGNER", "envelope")
    reset_settings()
    services = install_services()
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, dict(params)))

    factory = services.aws.factory
    factory.client("secretsmanager").meta.events.register("before-parameter-build.secretsmanager", record)
    service = services.tokens
    for rotation in service.rotations.values():  # every enabled algorithm's key set (RS256 and ES384 by default)
        rotation.ensure_keys()
    service.rotate(force=True)
    service.revoke_current()
    cold = Services(get_settings(), services.aws)  # another container, on the same clients (their calls recorded)
    published = [key["alg"] for key in cold.tokens.jwks()["keys"]]
    # Each set: previous, current (the old pending), a new pending.
    assert {alg: published.count(alg) for alg in published} == {"RS256": 3, "ES384": 3}
    assert "kms" not in factory.created

    from chalicelib.tokens.kms_keys import SIGNING_KEY_FUNCTIONS

    operations = set()
    for (operation, params), function in ((call, f) for call in calls for f in SIGNING_KEY_FUNCTIONS):
        # Each function that uses the signing keys (the API handler, the rotation schedule) may make each call.
        statements = json.loads(_policy_files("dev")[function].read_text())["Statement"]
        operations.add(operation)
        target = str(params.get("SecretId") or params["Name"])
        arn = (
            target
            if target.startswith("arn:")
            else f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{target}-AbCdEf"
        )
        allowing = [
            statement
            for statement in statements
            if f"secretsmanager:{operation}" in statement["Action"]
            and any(fnmatchcase(arn, pattern) for pattern in _as_list(statement["Resource"]))
        ]
        assert allowing, f"no statement allows secretsmanager:{operation} on {arn}"
        if operation == "CreateSecret":
            tags = {tag["Key"]: tag["Value"] for tag in params["Tags"]}
            (condition,) = {json.dumps(s.get("Condition", {})) for s in allowing}
            assert tags["credport:prefix"] == "credport-dev"
            assert f'"{tags["credport:prefix"]}"' in condition
            assert all(f'"{key}"' in condition for key in tags)
            assert params["KmsKeyId"] == get_settings().resources.data_key_arn
    assert operations == {"CreateSecret", "DescribeSecret", "GetSecretValue", "DeleteSecret"}


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_runtime_requirements_are_bounded_and_runtime_only() -> None:
    lines = [line.strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert requirements
    for line in requirements:
        assert re.search(r"(==|<)", line), f"{line} has no upper bound or pin"
        name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower()
        assert name not in {"chalice", "moto", "pytest", "cfn-lint", "aws-sam-translator", "boto3", "botocore"}


def bytecode_of(module: str) -> str:
    """Where Python looks for a module's bytecode beside it (``__pycache__``), as Lambda unpacks the package."""
    folder, _, name = module.rpartition("/")
    return f"{folder + '/' if folder else ''}__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc"


@pytest.mark.parametrize("stage", STAGES)
def test_the_package_carries_bytecode_for_every_module(stage: str) -> None:
    """`make package` compiles deployment.zip (Lambda's /var/task is read-only): every module has unchecked-hash
    bytecode for this Python, and no bytecode of the working tree's (stamped with its timestamps) is left."""
    package = packaged_stage(stage)[0].parent / "deployment.zip"
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        for module in ("app.py", "chalicelib/coldstart.py", "chalicelib/tokens/service.py", "joserfc/jwk.py"):
            assert module in names
        assert not [m for m in names if m.endswith(".py") and bytecode_of(m) not in names]
        assert not [n for n in names if n.endswith(".pyc") and f".{sys.implementation.cache_tag}." not in n]
        pyc = archive.read(bytecode_of("chalicelib/coldstart.py"))
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # unchecked hash (PEP 552)
