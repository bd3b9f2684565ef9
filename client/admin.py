"""``credport-admin``: operator commands.

    credport-admin stage-env --stack credport-prod --stage prod [--region R] [--config .chalice/config.json]

writes the stack's outputs (see ``STACK_OUTPUTS``) into the Chalice stage's environment variables, so
``chalice deploy --stage prod`` runs against infrastructure deployed from template.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chalicelib.config import STACK_OUTPUTS, Env

__all__ = ["main", "stage_environment", "write_stage_environment"]


class AdminError(Exception):
    pass


def stage_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """The app's resource env vars from a stack's outputs; every one must be present."""
    missing = sorted(name for name in STACK_OUTPUTS.values() if not outputs.get(name))
    if missing:
        raise AdminError(f"the stack has no output(s) {', '.join(missing)}: was it deployed from template.yaml?")
    return {env: outputs[name] for env, name in STACK_OUTPUTS.items()}


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def write_stage_environment(config_path: Path, stage: str, environment: Mapping[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(config_path.read_text())
    if stage not in config.get("stages", {}):
        raise AdminError(f"{config_path} has no stage {stage!r}")
    variables = config["stages"][stage].setdefault("environment_variables", {})
    variables.update(environment)
    variables[Env.STAGE] = stage
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="credport-admin", description="credport operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    stage_env = commands.add_parser("stage-env", help="write a stack's outputs into a Chalice stage")
    stage_env.add_argument("--stack", required=True, help="CloudFormation stack deployed from template.yaml")
    stage_env.add_argument("--stage", required=True)
    stage_env.add_argument("--region")
    stage_env.add_argument("--config", type=Path, default=Path(".chalice/config.json"))
    args = parser.parse_args(argv)
    import boto3

    try:
        cloudformation = boto3.session.Session(region_name=args.region).client("cloudformation")
        environment = stage_environment(stack_outputs(cloudformation, args.stack))
        write_stage_environment(args.config, args.stage, environment)
    except AdminError as error:
        print(f"credport-admin: {error}", file=sys.stderr)
        return 2
    for name, value in sorted(environment.items()):
        print(f"{name}={value}")
    print(f"wrote {len(environment)} variables into stage {args.stage!r} of {args.config}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
