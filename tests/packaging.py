"""The deployment artefacts as the README builds them, made once per test session: `chalice package
--merge-template template.yaml` per stage and its bytecode (`make package`), and cfn-lint with its informational
checks."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from local.package_bytecode import add_bytecode
from local.template import load_template

__all__ = [
    "BIN",
    "STAGES",
    "TEMPLATE",
    "cfn_lint",
    "deployed_function_names",
    "packaged_stage",
    "translated",
    "without_lint_suppressions",
]

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"
STAGES = ("dev", "prod")


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint with its informational checks (I...) too: any finding at all is a non-zero exit."""
    return subprocess.run(
        [str(BIN / "cfn-lint"), "--include-checks", "I", "--regions", "us-east-1", "eu-west-1", "--", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@functools.cache
def packaged_stage(stage: str) -> tuple[Path, dict[str, Any]]:
    """`make package STAGE=<stage>`: the SAM template's path and its content (packaged once per session)."""
    out = Path(tempfile.mkdtemp(prefix=f"credport-package-{stage}-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    env = {**os.environ, "CREDPORT_PREFIX": f"credport-{stage}", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(BIN / "chalice"), "package", "--stage", stage, "--merge-template", str(TEMPLATE), str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"chalice package --stage {stage} failed:\n{result.stdout}{result.stderr}")
    add_bytecode(out / "deployment.zip")  # make package's last step
    return out / "sam.yaml", load_template(out / "sam.yaml")


def without_lint_suppressions(document: dict[str, Any]) -> dict[str, Any]:
    """A copy without any resource's ``Metadata.cfn-lint`` (the checks it silences run again)."""
    bare: dict[str, Any] = json.loads(json.dumps(document))
    for resource in bare["Resources"].values():
        resource.get("Metadata", {}).pop("cfn-lint", None)
    return bare


def translated(stage: str, sam: dict[str, Any]) -> dict[str, Any]:
    """The packaged stack as CloudFormation runs it: aws-sam-translator's output (offline, no managed policies)."""
    return translate_with(sam, {"Prefix": f"credport-{stage}"})


def translate_with(sam: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """aws-sam-translator, offline, with these parameter values (as `sam deploy --parameter-overrides` gives them);
    ``Fn::If`` and the like stay as written, as CloudFormation's SAM transform gets them."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    # `sam deploy` uploads ./deployment.zip and substitutes its S3 location before transforming.
    uploaded = json.loads(json.dumps(sam).replace('"./deployment.zip"', '"s3://artifacts/deployment.zip"'))
    result: dict[str, Any] = transform(uploaded, dict(parameters), NoManagedPolicies())
    return result


# chalice's own naming of what `chalice deploy` creates, from its application graph (in a child process:
# chalice loads app.py with the stage's environment variables set).
_DEPLOY_NAMES = """
import json, sys
from chalice.cli.factory import CLIFactory
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
from chalice.deploy.models import LambdaFunction
stage = sys.argv[1]
application = ApplicationGraphBuilder().build(CLIFactory(".").create_config_obj(chalice_stage_name=stage), stage)
resources = DependencyBuilder().build_dependencies(application)
functions = [r for r in resources if isinstance(r, LambdaFunction)]
print(json.dumps({
    "functions": {r.resource_name: r.function_name for r in functions},
    "roles": {r.role.resource_name: r.role.role_name for r in functions},
}))
"""


def deployed_function_names(stage: str) -> dict[str, str]:
    """The names `chalice deploy --stage <stage>` gives the app's functions, by chalice resource name."""
    return _deployed_names(stage)["functions"]


def deployed_role_names(stage: str) -> dict[str, str]:
    """The names `chalice deploy --stage <stage>` gives the functions' roles, by chalice resource name
    (``<function>_role``)."""
    return _deployed_names(stage)["roles"]


@functools.cache
def _deployed_names(stage: str) -> dict[str, dict[str, str]]:
    env = {**os.environ, "CREDPORT_PREFIX": f"credport-{stage}"}
    result = subprocess.run(
        [sys.executable, "-c", _DEPLOY_NAMES, stage],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"chalice's deploy naming failed:\n{result.stderr}")
    names: dict[str, dict[str, str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return names
