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
import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config import STACK_OUTPUTS, Env
from client.arguments import add_json, env_default, new_parser, parse_checked
from client.errors import CliError, Exit, run

if TYPE_CHECKING:
    from chalicelib.services import Services

__all__ = ["main", "stage_environment", "write_stage_environment"]


class AdminError(CliError):
    """The operator's input does not fit (a stage, a stack's outputs): usage error unless said otherwise."""


def stage_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """The app's resource env vars from a stack's outputs; every one must be present."""
    missing = sorted(name for name in STACK_OUTPUTS.values() if not outputs.get(name))
    if missing:
        raise AdminError(
            f"the stack has no output(s) {', '.join(missing)}: was it deployed from template.yaml?", Exit.CONFIG
        )
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


_STACK_HELP = "CloudFormation stack deployed from template.yaml"
_LOCAL_HELP = f"the running local stack (its state: {env_default('CREDPORT_LOCAL_STATE_DIR', '.local')}/stack.json)"


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("credport-admin", "credport operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    stage_env = commands.add_parser("stage-env", help="write a stack's outputs into a Chalice stage")
    stage_env.add_argument("--stack", required=True, help=_STACK_HELP)
    stage_env.add_argument("--stage", required=True)
    _region(stage_env)
    stage_env.add_argument("--config", type=Path, default=Path(".chalice/config.json"), help="(default: %(default)s)")
    add_json(stage_env, "the variables written")
    token = commands.add_parser("token", help="signing keys: rotate now, revoke the current key, republish")
    token.add_argument("action", choices=["rotate", "revoke-current", "publish"])
    token.add_argument("--force", action="store_true", help="rotate even if the last rotation was recent")
    token.add_argument(
        "--alg",
        choices=["RS256", "ES256", "ES384"],
        help="revoke-current: only this algorithm's current key (default: every enabled algorithm's)",
    )
    target = token.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help=_STACK_HELP)
    target.add_argument("--local", action="store_true", help=_LOCAL_HELP)
    _region(token)
    add_json(token, "the rotation report")
    _transfer_parser(commands)
    _autoid_parser(commands)
    infra = commands.add_parser("infra-template", help="template.yaml without what needs the app (path b)")
    infra.add_argument("--template", type=Path, default=Path("template.yaml"), help="(default: %(default)s)")
    infra.add_argument("--out", type=Path, default=Path("build/infra.json"), help="(default: %(default)s)")
    add_json(infra, '{"wrote": PATH}')
    wire = commands.add_parser("wire-app", help="after `chalice deploy`: create what needs the app (path b)")
    wire.add_argument("--stack", required=True, help="the infrastructure stack")
    wire.add_argument("--stage", required=True)
    _region(wire)
    wire.add_argument("--template", type=Path, default=Path("template.yaml"), help="(default: %(default)s)")
    add_json(wire, '{"done": [one line per resource]}')
    return parser


def _region(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        help=f"the stack's AWS region (default: {env_default('AWS_DEFAULT_REGION')}, else the region of the"
        f" profile ({env_default('AWS_PROFILE')}))",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The exit code (client/errors.py); every failure is one line on standard error."""
    return run("credport-admin", lambda: _dispatch(parse_checked(build_parser(), argv)))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "token":
        return _token(args)
    if args.command == "transfer":
        return _transfer_register(args)
    if args.command == "autoid":
        from client.autoid_admin import run as run_autoid

        return run_autoid(args, use_stack=_use_stack, logs_to_stderr=_logs_to_stderr)
    if args.command == "infra-template":
        from client.deploy import infra_template, write_json

        write_json(args.out, infra_template(args.template))
        if args.json:
            print(json.dumps({"wrote": str(args.out)}))
        else:
            print(f"wrote {args.out}: deploy it with `sam deploy --template-file {args.out}`")
        return 0
    if args.command == "wire-app":
        return _wire(args)
    import boto3

    cloudformation = boto3.session.Session(region_name=args.region).client("cloudformation")
    environment = stage_environment(stack_outputs(cloudformation, args.stack))
    write_stage_environment(args.config, args.stage, environment)
    if args.json:
        print(json.dumps(environment, sort_keys=True))
    else:
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
    register_target.add_argument("--stack", help=_STACK_HELP)
    register_target.add_argument("--local", action="store_true", help=_LOCAL_HELP)
    _region(register)
    add_json(register, "what was registered")


def _autoid_parser(commands: Any) -> None:
    autoid = commands.add_parser("autoid", help="auto-id clients: enroll, show, revoke, rotate")
    actions = autoid.add_subparsers(dest="autoid_command", required=True)

    def target(parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--stack", help=_STACK_HELP)
        group.add_argument("--local", action="store_true", help=_LOCAL_HELP)
        _region(parser)
        add_json(parser, "the result")

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
    except FileNotFoundError:
        raise CliError(
            f"{deployed_path} does not exist: run `chalice deploy --stage {args.stage}` first", Exit.CONFIG
        ) from None
    except ValueError:
        raise CliError(f"{deployed_path} is not chalice's record of a deployment (not JSON)", Exit.CONFIG) from None
    try:
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
    except WireError as error:
        raise CliError(str(error), Exit.CONFIG) from None
    print(json.dumps({"done": done}) if args.json else "\n".join(done))
    return 0


def _logs_to_stderr() -> None:
    """A command's standard output is its result; the library's log lines go to standard error."""
    import logging

    import chalicelib.observability  # noqa: F401 (creates the library's logger and its handler, to be redirected)

    for handler in logging.getLogger("credport").handlers:
        if isinstance(handler, logging.StreamHandler):
            with handler.lock or contextlib.nullcontext():  # not setStream: it flushes the old stream, maybe closed
                handler.stream = sys.stderr


def _use_stack(args: argparse.Namespace) -> Services:
    """Point this process at a deployed stack (its outputs) or at the running local stack; the capabilities wired to
    it (a command is a process of its own: it builds its own composition root, once)."""
    import os

    import boto3

    from chalicelib.config import reset_settings
    from chalicelib.services import Services

    if args.local:
        state = local_state()
        os.environ.update({**state["app_env"], **state["aws_exports"], "AWS_ENDPOINT_URL": state["aws_endpoint"]})
    else:
        cloudformation = boto3.session.Session(region_name=args.region).client("cloudformation")
        os.environ.update(stage_environment(stack_outputs(cloudformation, args.stack)))
    reset_settings()
    return Services.from_environment()


def local_state() -> dict[str, Any]:
    """What the running local stack wrote about itself; no stack running is a configuration problem (4)."""
    import os

    from local.stack import read_state

    folder = Path(os.environ.get("CREDPORT_LOCAL_STATE_DIR", ".local"))
    try:
        state = read_state(folder)
    except FileNotFoundError as error:  # local.state.NoRunningStack: its message names the folder and the remedy
        missing = str(error) if not error.filename else f"no local stack running ({error.filename} does not exist)"
        raise CliError(f"{missing} (the folder is $CREDPORT_LOCAL_STATE_DIR, else .local)", Exit.CONFIG) from None
    except ValueError:
        state = None
    if not isinstance(state, dict) or not all(k in state for k in ("app_env", "aws_exports", "aws_endpoint")):
        raise CliError(f"{folder / 'stack.json'} is not a local stack's state: restart the stack", Exit.CONFIG)
    return state


def _transfer_register(args: argparse.Namespace) -> int:
    from chalicelib.envelope import EnvelopeError, public_key_from_pem
    from chalicelib.transfer.sending import CLIENT_KEY

    key = f"clients/{args.client_id}/public.pem"
    if not CLIENT_KEY.fullmatch(key):
        raise CliError("a client id is 1-63 characters of a-z, 0-9 and '-'")
    pem = args.key_file.read_bytes()
    try:
        recipient = public_key_from_pem(pem)  # checked here first: a private key never leaves this machine
    except EnvelopeError as error:
        raise CliError(f"{args.key_file} is not a usable public key ({error.reason})") from None
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
    result = {"client_id": args.client_id, "uploaded": key, "kid": recipient.kid, "email_subscribed": bool(args.email)}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def _token(args: argparse.Namespace) -> int:
    from chalicelib.tokens import RotationRefused

    _logs_to_stderr()
    service = _use_stack(args).tokens
    if args.action == "publish":
        service.rotation.publish()
        print(json.dumps({"published": True}) if args.json else "published the JWKS and discovery documents")
        return 0
    if args.alg and args.alg not in service.settings.token_algorithms:
        raise CliError(f"--alg {args.alg} is not enabled (enabled: {', '.join(service.settings.token_algorithms)})")
    try:
        reports = service.rotate(force=args.force) if args.action == "rotate" else service.revoke_current(args.alg)
    except RotationRefused as refused:
        # The capability says why; only the command line knows the option that overrides it.
        message = refused.message.rstrip(".")
        if args.action == "rotate" and not args.force:
            message += ": pass --force to rotate anyway"
        raise CliError(message, Exit.REFUSED) from None
    document = {
        report.algorithm: {
            "kind": report.kind,
            "rotation_id": report.rotation_id,
            "current": report.current,
            "pending": report.pending,
            "previous": report.previous,
            "retired": report.retired,
        }
        for report in reports
    }
    print(json.dumps(document) if args.json else json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
