"""``credport``: the workload-side command line.

    credport token [--aud AUDIENCE ...] [--alg RS256|ES256|ES384] [--ttl SECONDS] [--tag KEY=VALUE ...] [--out F]
                   [--endpoint URL] [--profile P] [--region R] [--json]
    credport verify TOKEN [--issuer URL] [--aud AUDIENCE] [--json]     (TOKEN "-" reads standard input)
    credport session start|refresh|show [--endpoint URL] [--token-file F] [--profile P] [--print-token]
    credport transfer send-file --to-key import-key.pem --name NAME --value-file F [--out FILE]
    credport transfer receive URL --key client-private.pem [--store [--name NAME | --prefix P] [--overwrite]]
    credport autoid get (--secret-id NAME | --role-arn ARN) [--bundle F] [--format json|value|credential-process]
    credport autoid serve (--role-arn ARN | --secret-id NAME) [--bundle F] [--port N] [--token-file F]

``token`` signs the call with the caller's AWS credentials (profile, environment or instance role) and
prints the JWT (``--aud`` repeats up to 10 times, ``--tag`` up to 50: :mod:`client.token_request`); ``verify``
checks a token through the issuer's discovery document and prints its claims.
``session`` keeps the session's bearer token in a 0600 file (default ``~/.credport/session.json``).
The endpoint defaults to ``$CREDPORT_ENDPOINT``, the issuer to ``$CREDPORT_ISSUER``; every command takes
``--json``, ``--version`` and ``--help`` (which lists the exit codes, :mod:`client.errors`).
``autoid get`` needs no AWS credentials: it proves
possession of the bundle written by ``credport-admin autoid enroll`` (default ``~/.credport/autoid.json``,
or ``$CREDPORT_AUTOID_BUNDLE``) and saves any newer entropy generation the server hands back (in the bundle, else
in the state directory: ``--state-dir``, ``$CREDPORT_STATE_DIR``, ``$XDG_STATE_HOME/credport``, ``~/.local/state/
credport``). ``autoid serve`` hands the same credentials to AWS SDKs as a container credential endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from client.arguments import add_aws_options, add_endpoint, add_json, env_default, new_parser, parse_checked
from client.errors import CliError, Exit, run
from client.token_request import add_token_options, token_query
from client.transfer import DEFAULT_RECEIVED_PREFIX

_SESSION_FILE = Path("~/.credport/session.json")
MAX_KEY_FILE_BYTES = 64 * 1024  # a PEM RSA-4096 private key is about 3.3 KB

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("credport", "credport workload client")
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="get a JWT for your AWS identity")
    add_token_options(token)
    add_endpoint(token)
    add_aws_options(token)
    token.add_argument("--json", action="store_true", help="print the whole response as one line of JSON")
    token.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the token to FILE (0600, replaced whole, no newline: an AWS_WEB_IDENTITY_TOKEN_FILE) instead of"
        " printing it",
    )
    verify = commands.add_parser("verify", help="verify a token through OIDC discovery")
    verify.add_argument("token", help="the JWT, or - to read it from standard input")
    verify.add_argument(
        "--issuer",
        default=os.environ.get("CREDPORT_ISSUER"),
        help=f"the issuer's URL, exactly as in the token (required; default: {env_default('CREDPORT_ISSUER')})",
    )
    verify.add_argument(
        "--aud", help="an audience the token must be for (one of its audiences, if it has several; default: any)"
    )
    add_json(verify, "the claims")
    session = commands.add_parser("session", help="start, refresh or show a session (bearer token)")
    session.add_argument("action", choices=["start", "refresh", "show"])
    add_endpoint(session)
    session.add_argument(
        "--token-file",
        type=Path,
        help=f"where the token is kept, 0600 (default: {env_default('CREDPORT_SESSION_FILE', str(_SESSION_FILE))})",
    )
    add_aws_options(session, "to sign the start with")
    session.add_argument("--print-token", action="store_true", help="also print the bearer token")
    add_json(session, "the session")
    transfer = commands.add_parser("transfer", help="secret transfer")
    transfer_commands = transfer.add_subparsers(dest="transfer_command", required=True)
    send_file = transfer_commands.add_parser("send-file", help="seal a secret into a file to drop into inbox/")
    send_file.add_argument("--to-key", type=Path, required=True, help="the receiver's public key (PEM)")
    send_file.add_argument("--name", required=True, help="the secret's name at the receiver")
    send_file.add_argument("--value-file", type=Path, required=True, help="file holding the secret value")
    send_file.add_argument("--description")
    send_file.add_argument("--out", type=Path, help="where to write the envelope (default: standard output)")
    add_json(send_file, '{"out", "kid"} (or {"envelope", "kid"} without --out)')
    receive = transfer_commands.add_parser("receive", help="download and open a secret sent to you")
    receive.add_argument("url", help="the link from the notification")
    receive.add_argument("--key", type=Path, required=True, help="your private key (PEM)")
    receive.add_argument("--store", action="store_true", help="store it in your Secrets Manager instead")
    receive.add_argument("--name", help="secret name to store under (default: --prefix followed by the sender's name)")
    receive.add_argument(
        "--prefix",
        default=DEFAULT_RECEIVED_PREFIX,
        help="without --name: the prefix the sender's name is stored under (default: %(default)s)",
    )
    receive.add_argument(
        "--overwrite", action="store_true", help="add a new version to a secret that exists (else refused)"
    )
    add_aws_options(receive, "for --store")
    add_json(receive, "the secret document (or, with --store, what was stored)")
    _add_autoid(commands.add_parser("autoid", help="credentials for a workload without AWS credentials"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The exit code (client/errors.py); every failure is one line on standard error."""
    return run("credport", lambda: _dispatch(parse_checked(build_parser(), argv)))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "autoid":
        return _autoid_get(args) if args.autoid_command == "get" else _autoid_serve(args)
    if args.command == "token":
        return _token(args)
    if args.command == "session":
        return _session(args)
    if args.command == "transfer":
        return _send_file(args) if args.transfer_command == "send-file" else _receive(args)
    return _verify(args)


def _add_autoid(autoid: argparse.ArgumentParser) -> None:
    autoid_commands = autoid.add_subparsers(dest="autoid_command", required=True)
    get = autoid_commands.add_parser("get", help="prove the bundle and get a secret or role credentials")
    serve = autoid_commands.add_parser("serve", help="serve role credentials to AWS SDKs on a loopback port")
    for command in (get, serve):
        wanted = command.add_mutually_exclusive_group(required=True)
        wanted.add_argument("--secret-id", help="the secret's name (for serve: one holding access keys)")
        wanted.add_argument("--role-arn", help="an IAM role to get temporary credentials for")
        command.add_argument(
            "--bundle",
            type=Path,
            help="the client bundle (0600; default: $CREDPORT_AUTOID_BUNDLE, else ~/.credport/autoid.json)",
        )
        command.add_argument("--endpoint", help="API URL (default: the bundle's)")
        command.add_argument(
            "--state-dir",
            type=Path,
            help="where a newer generation is kept when the bundle cannot be rewritten (default: $CREDPORT_STATE_DIR,"
            " else $XDG_STATE_HOME/credport, else ~/.local/state/credport)",
        )
    get.add_argument(
        "--format",
        choices=["json", "value", "credential-process"],
        default="json",
        help="json: the whole answer; value: the secret value only; credential-process: for ~/.aws/config",
    )
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.1 or ::1)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed in the exports)")
    serve.add_argument(
        "--token-file",
        type=Path,
        help="where the Authorization token is written, 0600 (default: in the state directory)",
    )


def _receive(args: argparse.Namespace) -> int:
    from client.transfer import receive, store

    if not args.store:
        for given, option in ((args.name, "--name"), (args.overwrite, "--overwrite"), (args.profile, "--profile")):
            if given:
                raise CliError(f"{option} goes with --store (without it, the secret is printed)")
    if args.overwrite and not args.name:  # before the download: a received name never replaces a secret
        raise CliError("--overwrite needs --name: only a secret you name in full is ever replaced")
    document = receive(args.url, _read_bytes(args.key, "--key", MAX_KEY_FILE_BYTES))
    if args.store:
        arn, version_id = store(
            document,
            name=args.name,
            prefix=args.prefix,
            overwrite=args.overwrite,
            profile=args.profile,
            region=args.region,
        )
        stored = {"stored": arn, "version_id": version_id}
        print(json.dumps(stored) if args.json else json.dumps(stored, indent=2))
    else:
        print(json.dumps(document) if args.json else json.dumps(document, indent=2))
    return 0


def _read_bytes(path: Path, option: str, max_bytes: int) -> bytes:
    """A regular file named on the command line, at most ``max_bytes``; the message names the option as well as
    the file. Opened without blocking (a FIFO would wait for a writer) and checked before reading: a device
    (/dev/zero) or a pipe is refused, never read until memory runs out."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise CliError(f"{option} {path}: {error.strerror or type(error).__name__}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        what = "Is a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file (a device, a pipe, a socket)"
        raise CliError(f"{option} {path}: {what}")
    with os.fdopen(descriptor, "rb") as file:
        try:
            data = file.read(max_bytes + 1)  # the size may change after fstat: the read is bounded all the same
        except OSError as error:
            raise CliError(f"{option} {path}: {error.strerror or type(error).__name__}") from None
    if len(data) > max_bytes:
        raise CliError(f"{option} {path} is larger than {max_bytes} bytes")
    return data


def _autoid_get(args: argparse.Namespace) -> int:
    from chalicelib.autoid.protocol import Want
    from client.autoid import DEFAULT_BUNDLE, credential_process, fetch

    want = Want(secret_id=args.secret_id) if args.secret_id else Want(role_arn=args.role_arn)
    answer = fetch(args.bundle or DEFAULT_BUNDLE, want, endpoint=args.endpoint, state_dir=args.state_dir)
    if args.format == "credential-process":
        print(json.dumps(credential_process(answer)))
    elif args.format == "value":
        if "secret" not in answer or "value" not in answer["secret"]:
            raise CliError("--format value needs a text secret (use --format json for role credentials)")
        print(answer["secret"]["value"])
    else:
        print(json.dumps(answer, indent=2))
    return 0


def _autoid_serve(args: argparse.Namespace) -> int:
    from client.autoid_serve import serve_command

    return serve_command(args)


def _send_file(args: argparse.Namespace) -> int:
    from chalicelib.envelope import EnvelopeError, public_key_from_pem, seal
    from chalicelib.transfer.importer import MAX_VALUE_BYTES  # the importer's (Secrets Manager's) limit
    from chalicelib.untrusted import TextKind, UntrustedInput, check_text

    try:
        recipient = public_key_from_pem(_read_bytes(args.to_key, "--to-key", MAX_KEY_FILE_BYTES))
    except EnvelopeError as error:
        raise CliError(f"--to-key {args.to_key} is not a usable public key ({error.reason})") from None
    try:
        value = _read_bytes(args.value_file, "--value-file", MAX_VALUE_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"--value-file {args.value_file} is not UTF-8 text") from None
    document = {"secret_name": args.name, "value": value}
    if args.description:
        try:  # the importer quarantines a description with control, bidi or non-characters: say so now
            document["description"] = check_text(args.description, TextKind.FREE_TEXT, max_chars=2048)
        except UntrustedInput as refused:
            raise CliError(f"--description is refused ({refused.reason})") from None
    envelope = seal(recipient, json.dumps(document).encode())
    if args.out:
        args.out.write_text(envelope)
        print(f"wrote {args.out} (sealed to key {recipient.kid})", file=sys.stderr)
        if args.json:
            print(json.dumps({"out": str(args.out), "kid": recipient.kid}))
    else:
        print(json.dumps({"envelope": envelope, "kid": recipient.kid}) if args.json else envelope)
    return 0


def _session(args: argparse.Namespace) -> int:
    from client.aws_call import CallError
    from client.sessions import DEFAULT_TOKEN_FILE, SessionClient

    client = SessionClient(_endpoint(args), args.token_file or DEFAULT_TOKEN_FILE)
    try:
        if args.action == "start":
            result = client.start(profile=args.profile, region=args.region)
        elif args.action == "refresh":
            result = client.refresh()
        else:
            result = client.show()
    except CallError as error:
        if error.status != 401 or args.action == "start":
            raise
        raise CliError(f"{error}: the session has ended; run credport session start", error.exit_code) from None
    shown = {k: v for k, v in result.items() if k != "token" or args.print_token}
    print(json.dumps(shown, sort_keys=True) if args.json else json.dumps(shown, indent=2, sort_keys=True))
    return 0


def _endpoint(args: argparse.Namespace) -> str:
    from client.http import check_url

    if not args.endpoint:
        raise CliError("no endpoint: pass --endpoint or set CREDPORT_ENDPOINT")
    from_environment = args.endpoint == os.environ.get("CREDPORT_ENDPOINT")  # the default: name where it came from
    named = "$CREDPORT_ENDPOINT (--endpoint's default)" if from_environment else "--endpoint"
    return check_url(str(args.endpoint), named)


def _token(args: argparse.Namespace) -> int:
    from client.aws_call import signed_request
    from client.private_file import write_private_text

    query = token_query(args)  # before anything else: a mistake on the command line costs no round trip
    endpoint = _endpoint(args)
    response = signed_request("GET", endpoint, "/token", profile=args.profile, region=args.region, query=query)
    if not isinstance(response.get("token"), str):
        raise CliError(f"GET {endpoint}/token answered no token: is --endpoint the API's URL?", Exit.CONFIG)
    if args.out is not None:
        # What AWS_WEB_IDENTITY_TOKEN_FILE names: the token alone, no newline (the SDKs send the file as it is),
        # 0600 and replaced whole, so a refresh never leaves a reader half a token.
        write_private_text(args.out, response["token"], prefix=".credport-token-")
        if args.json:
            print(
                json.dumps({key: value for key, value in response.items() if key != "token"} | {"out": str(args.out)})
            )
        return 0
    print(json.dumps(response) if args.json else response["token"])
    return 0


def _verify(args: argparse.Namespace) -> int:
    from chalicelib.tokens.exceptions import TokenRejected
    from client.oidc import discover_verifier, explain_rejection

    if not args.issuer:
        raise CliError("no issuer: pass --issuer or set CREDPORT_ISSUER")
    token = sys.stdin.read().strip() if args.token == "-" else args.token  # noqa: S105 ("-" means stdin)
    try:
        claims = discover_verifier(args.issuer).verify(token, audience=args.aud)
    except TokenRejected as rejected:
        explained = explain_rejection(token, rejected, issuer=args.issuer, audience=args.aud)
        raise CliError(explained, Exit.REFUSED) from None
    print(json.dumps(claims, sort_keys=True) if args.json else json.dumps(claims, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
