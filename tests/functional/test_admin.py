"""credport-admin stage-env: the `chalice deploy` path takes its resource names from the stack's outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chalicelib.aws.clients import ClientFactory
from chalicelib.config import STACK_OUTPUTS, Settings
from client.admin import AdminError, main, stage_environment
from local.provision import Provisioned
from tests.conftest import REPO_ROOT


def deploy_outputs_stack(factory: ClientFactory, outputs: dict[str, str]) -> None:
    """A stack whose outputs mirror template.yaml's (moto cannot deploy the full template itself)."""
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "marker"}}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    factory.client("cloudformation").create_stack(StackName="credport-prod", TemplateBody=json.dumps(template))


def test_stage_env_writes_the_stack_outputs_into_the_stage(
    provisioned: Provisioned, factory: ClientFactory, tmp_path: Path
) -> None:
    deploy_outputs_stack(factory, dict(provisioned.outputs))
    config = tmp_path / "config.json"
    shutil.copy(REPO_ROOT / ".chalice" / "config.json", config)
    assert main(["stage-env", "--stack", "credport-prod", "--stage", "prod", "--config", str(config)]) == 0
    variables = json.loads(config.read_text())["stages"]["prod"]["environment_variables"]
    assert {name: variables[name] for name in STACK_OUTPUTS} == provisioned.app_environment()
    assert variables["CREDPORT_STAGE"] == "prod"
    Settings.from_env(variables)  # a complete, valid configuration


def test_missing_outputs_are_named() -> None:
    with pytest.raises(AdminError, match="DataKeyArn"):
        stage_environment({name: "x" for name in STACK_OUTPUTS.values() if name != "DataKeyArn"})


def test_unknown_stage_is_refused(
    provisioned: Provisioned, factory: ClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_outputs_stack(factory, dict(provisioned.outputs))
    config = tmp_path / "config.json"
    shutil.copy(REPO_ROOT / ".chalice" / "config.json", config)
    assert main(["stage-env", "--stack", "credport-prod", "--stage", "staging", "--config", str(config)]) == 2
    assert "no stage 'staging'" in capsys.readouterr().err
