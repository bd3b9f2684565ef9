"""``credport-admin``: operator commands.

    credport-admin stage-env --stack credport-prod --stage prod [--region R] [--config .chalice/config.json]
    credport-admin token rotate [--force] (--stack NAME | --local)
    credport-admin token revoke-current (--stack NAME | --local)
    credport-admin token publish (--stack NAME | --local)
    credport-admin transfer register CLIENT_ID KEY.pem [--email ADDR] (--stack NAME | --local)
    credport-admin autoid enroll CLIENT_ID (--secret NAME|PREFIX* | --role ARN)... --out BUNDLE [--endpoint URL]
                                (--stack NAME | --local)
    credport-admin autoid show|revoke|end-grace CLIENT_ID (--stack NAME | --local)
    credport-admin autoid rotate CLIENT_ID [--end-grace] (--stack NAME | --local)
    credport-admin autoid rotate-keys (--stack NAME | --local)
    credport-admin infra-template [--out build/infra.json]
    credport-admin wire-app --stack NAME --stage prod [--region R]

``stage-env`` writes the stack's outputs (see ``STACK_OUTPUTS``) into the Chalice stage's environment
variables, so ``chalice deploy --stage prod`` runs against infrastructure deployed from template.yaml.
``token`` runs the signing-key rotation code with the operator's own AWS credentials against a deployed
stack, or against the running local stack; running containers learn of it through the key-events topic.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config import STACK_OUTPUTS, Env
from client.arguments import parse_checked

if TYPE_CHECKING:
    from chalicelib.services import Services

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
    token = commands.add_parser("token", help="signing keys: rotate now, revoke the current key, republish")
    token.add_argument("action", choices=["rotate", "revoke-current", "publish"])
    token.add_argument("--force", action="store_true", help="rotate even if the last rotation was recent")
    target = token.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="CloudFormation stack deployed from template.yaml")
    target.add_argument("--local", action="store_true", help="the running local stack (.local/stack.json)")
    token.add_argument("--region")
    _transfer_parser(commands)
    _autoid_parser(commands)
    infra = commands.add_parser("infra-template", help="template.yaml without what needs the app (path b)")
    infra.add_argument("--template", type=Path, default=Path("template.yaml"))
    infra.add_argument("--out", type=Path, default=Path("build/infra.json"))
    wire = commands.add_parser("wire-app", help="after `chalice deploy`: create what needs the app (path b)")
    wire.add_argument("--stack", required=True, help="the infrastructure stack")
    wire.add_argument("--stage", required=True)
    wire.add_argument("--region")
    wire.add_argument("--template", type=Path, default=Path("template.yaml"))
    args = parse_checked(parser, argv)
    if args.command == "token":
        return _token(args)
    if args.command == "transfer":
        return _transfer_register(args)
    if args.command == "autoid":
        from client.autoid_admin import run

        return run(args, use_stack=_use_stack, logs_to_stderr=_logs_to_stderr)
    if args.command == "infra-template":
        from client.deploy import infra_template, write_json

        write_json(args.out, infra_template(args.template))
        print(f"wrote {args.out}: deploy it with `sam deploy --template-file {args.out}`")
        return 0
    if args.command == "wire-app":
        return _wire(args)
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


def _transfer_parser(commands: Any) -> None:
    transfer = commands.add_parser("transfer", help="secret transfer: register a client")
    transfer_commands = transfer.add_subparsers(dest="transfer_command", required=True)
    register = transfer_commands.add_parser("register", help="register a client's public key (starts a send)")
    register.add_argument("client_id")
    register.add_argument("key_file", type=Path, help="the client's public key (PEM)")
    register.add_argument("--email", help="subscribe this address to the client's notifications")
    register_target = register.add_mutually_exclusive_group(required=True)
    register_target.add_argument("--stack", help="CloudFormation stack deployed from template.yaml")
    register_target.add_argument("--local", action="store_true", help="the running local stack")
    register.add_argument("--region")


def _autoid_parser(commands: Any) -> None:
    autoid = commands.add_parser("autoid", help="auto-id clients: enroll, show, revoke, rotate")
    actions = autoid.add_subparsers(dest="autoid_command", required=True)

    def target(parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--stack", help="CloudFormation stack deployed from template.yaml")
        group.add_argument("--local", action="store_true", help="the running local stack")
        parser.add_argument("--region")

    enroll = actions.add_parser("enroll", help="create a client and write its bundle (entropy, server keys)")
    enroll.add_argument("client_id")
    enroll.add_argument(
        "--secret",
        action="append",
        default=[],
        help="a secret name, or 'prefix*', under a serving prefix (default <prefix>/autoid/, <prefix>/imported/;"
        " CREDPORT_AUTOID_SERVING_PREFIXES) (repeatable)",
    )
    enroll.add_argument(
        "--role",
        action="append",
        default=[],
        help="an IAM role ARN, or 'ARN-prefix*'; never one of credport's own roles (<prefix>-…, but <prefix>-autoid-…)",
    )
    enroll.add_argument("--out", type=Path, required=True, help="where to write the client bundle (0600)")
    enroll.add_argument("--endpoint", help="the API URL the client calls (default with --local: the stack's)")
    target(enroll)
    for name, text in (
        ("show", "a client's policy, status and generations"),
        ("revoke", "refuse the client from now on and delete its entropy"),
        ("end-grace", "refuse every generation but the current one, now"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("client_id")
        target(action)
    rotate = actions.add_parser("rotate", help="a new entropy generation for one client")
    rotate.add_argument("client_id")
    rotate.add_argument("--end-grace", action="store_true", help="refuse the replaced generation at once")
    target(rotate)
    target(actions.add_parser("rotate-keys", help="a new server key and a new generation for every client"))


def _wire(args: argparse.Namespace) -> int:
    import boto3

    from client.deploy import WireError, wire_app

    deployed_path = Path(".chalice/deployed") / f"{args.stage}.json"
    try:
        deployed = json.loads(deployed_path.read_text())
        session = boto3.session.Session(region_name=args.region)
        cloudformation = session.client("cloudformation")
        stack = cloudformation.describe_stacks(StackName=args.stack)["Stacks"][0]
        resources = cloudformation.describe_stack_resources(StackName=args.stack)["StackResources"]
        done = wire_app(
            args.template,
            deployed=deployed,
            stack_resources={r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources},
            stack_parameters={p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])},
            account_id=stack["StackId"].split(":")[4],
            region=session.region_name,
            stack_name=args.stack,
            client=session.client,
        )
    except (OSError, KeyError, WireError) as error:
        print(f"credport-admin: {error}", file=sys.stderr)
        return 2
    print("\n".join(done))
    return 0


def _logs_to_stderr() -> None:
    """A command's standard output is its result; the library's log lines go to standard error."""
    import logging

    import chalicelib.observability  # noqa: F401 (creates the library's logger and its handler, to be redirected)

    for handler in logging.getLogger("credport").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


def _use_stack(args: argparse.Namespace) -> Services:
    """Point this process at a deployed stack (its outputs) or at the running local stack; the capabilities wired to
    it (a command is a process of its own: it builds its own composition root, once)."""
    import os

    import boto3

    from chalicelib.config import reset_settings
    from chalicelib.services import Services

    if args.local:
        from local.stack import read_state

        state = read_state(Path(os.environ.get("CREDPORT_LOCAL_STATE_DIR", ".local")))
        os.environ.update({**state["app_env"], **state["aws_exports"], "AWS_ENDPOINT_URL": state["aws_endpoint"]})
    else:
        cloudformation = boto3.session.Session(region_name=args.region).client("cloudformation")
        os.environ.update(stage_environment(stack_outputs(cloudformation, args.stack)))
    reset_settings()
    return Services.from_environment()


def _transfer_register(args: argparse.Namespace) -> int:
    from chalicelib.envelope import EnvelopeError, public_key_from_pem
    from chalicelib.errors import CredportError
    from chalicelib.transfer.sending import CLIENT_KEY

    key = f"clients/{args.client_id}/public.pem"
    if not CLIENT_KEY.fullmatch(key):
        print("credport-admin: a client id is 1-63 characters of a-z, 0-9 and '-'", file=sys.stderr)
        return 2
    try:
        pem = args.key_file.read_bytes()
        recipient = public_key_from_pem(pem)  # checked here first: a private key never leaves this machine
        services = _use_stack(args)
        settings, aws = services.settings, services.aws
        aws.s3.put(settings.resources.transfer_bucket, key, pem, content_type="application/x-pem-file")
        if args.email:
            aws.sns.subscribe(
                settings.resources.notify_topic_arn,
                protocol="email",
                endpoint=args.email,
                filter_policy={"client_id": [args.client_id]},
            )
    except EnvelopeError as error:
        print(f"credport-admin: {args.key_file} is not a usable public key ({error.reason})", file=sys.stderr)
        return 2
    except (AdminError, CredportError, OSError, KeyError) as error:
        print(f"credport-admin: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"client_id": args.client_id, "uploaded": key, "kid": recipient.kid, "email_subscribed": bool(args.email)},
            indent=2,
        )
    )
    return 0


def _token(args: argparse.Namespace) -> int:
    from chalicelib.errors import CredportError

    _logs_to_stderr()
    try:
        service = _use_stack(args).tokens
        if args.action == "publish":
            service.rotation.publish()
            print("published the JWKS and discovery documents")
            return 0
        report = service.rotate(force=args.force) if args.action == "rotate" else service.rotation.revoke_current()
    except (AdminError, CredportError, OSError, KeyError) as error:
        print(f"credport-admin: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "kind": report.kind,
                "rotation_id": report.rotation_id,
                "current": report.current,
                "pending": report.pending,
                "previous": report.previous,
                "retired": report.retired,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
