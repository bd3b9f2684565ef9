"""``credport``: the workload-side command line.

    credport token --aud AUDIENCE [--ttl SECONDS] [--endpoint URL] [--profile P] [--region R] [--json]
    credport verify TOKEN --issuer URL [--aud AUDIENCE]        (TOKEN "-" reads standard input)
    credport session start|refresh|show [--endpoint URL] [--token-file F] [--profile P] [--print-token]
    credport transfer send-file --to-key import-key.pem --name NAME --value-file F [--out FILE]
    credport transfer receive URL --key client-private.pem [--store [--name NAME] [--profile P]]
    credport autoid get (--secret-id NAME | --role-arn ARN) [--bundle F] [--format json|value|credential-process]

``token`` signs the call with the caller's AWS credentials (profile, environment or instance role) and
prints the JWT; ``verify`` checks a token through the issuer's discovery document and prints its claims.
``session`` keeps the session's bearer token in a 0600 file (default ``~/.credport/session.json``).
The endpoint defaults to ``$CREDPORT_ENDPOINT``. ``autoid get`` needs no AWS credentials: it proves
possession of the bundle written by ``credport-admin autoid enroll`` (default ``~/.credport/autoid.json``,
or ``$CREDPORT_AUTOID_BUNDLE``) and saves any newer entropy generation the server hands back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from client.arguments import parse_checked

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="credport", description="credport workload client")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="get a JWT for your AWS identity")
    token.add_argument("--aud", help="audience (default: the service's default)")
    token.add_argument("--ttl", type=int, help="lifetime in seconds")
    token.add_argument("--endpoint", default=os.environ.get("CREDPORT_ENDPOINT"), help="API URL")
    token.add_argument("--profile", help="AWS profile to sign with")
    token.add_argument("--region", help="region of the API (default: from the endpoint or profile)")
    token.add_argument("--json", action="store_true", help="print the whole response as JSON")
    verify = commands.add_parser("verify", help="verify a token through OIDC discovery")
    verify.add_argument("token", help="the JWT, or - to read it from standard input")
    verify.add_argument("--issuer", required=True)
    verify.add_argument("--aud", help="the audience the token must be for")
    session = commands.add_parser("session", help="start, refresh or show a session (bearer token)")
    session.add_argument("action", choices=["start", "refresh", "show"])
    session.add_argument("--endpoint", default=os.environ.get("CREDPORT_ENDPOINT"), help="API URL")
    session.add_argument("--token-file", type=Path, help="where the token is kept (0600)")
    session.add_argument("--profile", help="AWS profile to sign the start with")
    session.add_argument("--region")
    session.add_argument("--print-token", action="store_true", help="also print the bearer token")
    transfer = commands.add_parser("transfer", help="secret transfer")
    transfer_commands = transfer.add_subparsers(dest="transfer_command", required=True)
    send_file = transfer_commands.add_parser("send-file", help="seal a secret into a file to drop into inbox/")
    send_file.add_argument("--to-key", type=Path, required=True, help="the receiver's public key (PEM)")
    send_file.add_argument("--name", required=True, help="the secret's name at the receiver")
    send_file.add_argument("--value-file", type=Path, required=True, help="file holding the secret value")
    send_file.add_argument("--description")
    send_file.add_argument("--out", type=Path, help="where to write the envelope (default: standard output)")
    receive = transfer_commands.add_parser("receive", help="download and open a secret sent to you")
    receive.add_argument("url", help="the link from the notification")
    receive.add_argument("--key", type=Path, required=True, help="your private key (PEM)")
    receive.add_argument("--store", action="store_true", help="store it in your Secrets Manager instead")
    receive.add_argument("--name", help="secret name to store under (default: the sender's name)")
    receive.add_argument("--profile", help="AWS profile for --store")
    autoid = commands.add_parser("autoid", help="credentials for a workload without AWS credentials")
    autoid_commands = autoid.add_subparsers(dest="autoid_command", required=True)
    get = autoid_commands.add_parser("get", help="prove the bundle and get a secret or role credentials")
    wanted = get.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--secret-id", help="the secret's name")
    wanted.add_argument("--role-arn", help="an IAM role to get temporary credentials for")
    get.add_argument("--bundle", type=Path, help="the client bundle (0600)")
    get.add_argument("--endpoint", help="API URL (default: the bundle's)")
    get.add_argument(
        "--format",
        choices=["json", "value", "credential-process"],
        default="json",
        help="json: the whole answer; value: the secret value only; credential-process: for ~/.aws/config",
    )
    args = parse_checked(parser, argv)
    if args.command == "autoid":
        return _autoid_get(args)
    if args.command == "token":
        return _token(args)
    if args.command == "session":
        return _session(args)
    if args.command == "transfer":
        return _send_file(args) if args.transfer_command == "send-file" else _receive(args)
    return _verify(args)


def _receive(args: argparse.Namespace) -> int:
    from client.transfer import ReceiveError, receive, store

    try:
        document = receive(args.url, args.key.read_bytes())
        if args.store:
            arn, version_id = store(document, name=args.name, profile=args.profile)
            print(json.dumps({"stored": arn, "version_id": version_id}))
        else:
            print(json.dumps(document, indent=2))
    except (ReceiveError, OSError) as error:
        print(f"credport: {error}", file=sys.stderr)
        return 1
    return 0


def _autoid_get(args: argparse.Namespace) -> int:
    from chalicelib.autoid.protocol import Want
    from client.autoid import DEFAULT_BUNDLE, BundleError, credential_process, fetch
    from client.aws_call import CallError

    want = Want(secret_id=args.secret_id) if args.secret_id else Want(role_arn=args.role_arn)
    try:
        answer = fetch(args.bundle or DEFAULT_BUNDLE, want, endpoint=args.endpoint)
        if args.format == "credential-process":
            print(json.dumps(credential_process(answer)))
        elif args.format == "value":
            if "secret" not in answer or "value" not in answer["secret"]:
                raise BundleError("--format value needs a text secret (use json for role credentials)")
            print(answer["secret"]["value"])
        else:
            print(json.dumps(answer, indent=2))
    except (BundleError, CallError, OSError, ValueError) as error:
        print(f"credport: {error}", file=sys.stderr)
        return 1
    return 0


def _send_file(args: argparse.Namespace) -> int:
    from chalicelib.envelope import EnvelopeError, public_key_from_pem, seal
    from chalicelib.untrusted import TextKind, UntrustedInput, check_text

    try:
        recipient = public_key_from_pem(args.to_key.read_bytes())
        value = args.value_file.read_text(encoding="utf-8")
    except EnvelopeError as error:
        print(f"credport: {args.to_key} is not a usable public key ({error.reason})", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as error:
        print(f"credport: {error}", file=sys.stderr)
        return 2
    document = {"secret_name": args.name, "value": value}
    if args.description:
        try:  # the importer quarantines a description with control, bidi or non-characters: say so now
            document["description"] = check_text(args.description, TextKind.FREE_TEXT, max_chars=2048)
        except UntrustedInput as refused:
            print(f"credport: --description is refused ({refused.reason})", file=sys.stderr)
            return 2
    envelope = seal(recipient, json.dumps(document).encode())
    if args.out:
        args.out.write_text(envelope)
        print(f"wrote {args.out} (sealed to key {recipient.kid})", file=sys.stderr)
    else:
        print(envelope)
    return 0


def _session(args: argparse.Namespace) -> int:
    from client.aws_call import CallError
    from client.sessions import DEFAULT_TOKEN_FILE, SessionClient

    if not args.endpoint:
        print("credport: no endpoint: pass --endpoint or set CREDPORT_ENDPOINT", file=sys.stderr)
        return 2
    client = SessionClient(args.endpoint, args.token_file or DEFAULT_TOKEN_FILE)
    try:
        if args.action == "start":
            result = client.start(profile=args.profile, region=args.region)
        elif args.action == "refresh":
            result = client.refresh()
        else:
            result = client.show()
    except (CallError, ValueError, OSError) as error:
        print(f"credport: {error}", file=sys.stderr)
        return 1
    shown = {k: v for k, v in result.items() if k != "token" or args.print_token}
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def _token(args: argparse.Namespace) -> int:
    from client.aws_call import CallError, signed_request

    if not args.endpoint:
        print("credport: no endpoint: pass --endpoint or set CREDPORT_ENDPOINT", file=sys.stderr)
        return 2
    query = {k: str(v) for k, v in (("aud", args.aud), ("ttl", args.ttl)) if v is not None}
    try:
        response = signed_request("GET", args.endpoint, "/token", profile=args.profile, region=args.region, query=query)
    except (CallError, ValueError) as error:
        print(f"credport: {error}", file=sys.stderr)
        return 1
    print(json.dumps(response) if args.json else response["token"])
    return 0


def _verify(args: argparse.Namespace) -> int:
    from chalicelib.tokens.exceptions import TokenRejected
    from client.oidc import DiscoveryError, discover_verifier

    token = sys.stdin.read().strip() if args.token == "-" else args.token  # noqa: S105 ("-" means stdin)
    try:
        claims = discover_verifier(args.issuer).verify(token, audience=args.aud)
    except TokenRejected as rejected:
        print(f"credport: invalid token (refused by the {rejected.check} check: {rejected.reason})", file=sys.stderr)
        return 1
    except (DiscoveryError, OSError, ValueError) as error:
        print(f"credport: cannot verify: {error}", file=sys.stderr)
        return 2
    print(json.dumps(claims, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
