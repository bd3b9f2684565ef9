"""``credport-admin autoid``: enrol, inspect, revoke and rotate auto-id clients with the operator's own
AWS credentials (against a deployed stack, or the running local stack)."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from client.errors import CliError

if TYPE_CHECKING:
    from chalicelib.services import Services

__all__ = ["run"]


def run(
    args: argparse.Namespace,
    *,
    use_stack: Callable[[argparse.Namespace], Services],
    logs_to_stderr: Callable[[], None],
) -> int:
    logs_to_stderr()
    services = use_stack(args)
    service = services.autoid
    registry = service.registry
    command = args.autoid_command
    result: dict[str, Any]
    if command == "enroll":
        result = _enroll(args, service)
    elif command == "show":
        result = registry.require(args.client_id).public_view()
    elif command == "revoke":
        result = registry.revoke(args.client_id).public_view()
    elif command == "end-grace":
        result = registry.end_grace(args.client_id).public_view()
    elif command == "rotate":
        rotation_id = str(uuid.uuid4())
        result = registry.rotate(args.client_id, rotation_id, end_grace=args.end_grace).public_view()
    else:
        result = _report(services.autoid_rotation.rotate())
    # Failures (a refused policy, an unknown client, AWS) leave for the CLI's one handler: client/errors.py.
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def _enroll(args: argparse.Namespace, service: Any) -> dict[str, Any]:
    from chalicelib.autoid import ClientPolicy
    from client.autoid import Bundle, write_bundle

    endpoint = args.endpoint
    if not endpoint and args.local:
        from client.admin import local_state

        endpoint = local_state().get("api_url")
    if not endpoint:
        raise CliError("pass --endpoint: the API URL the client will call")
    if args.out.exists():
        raise CliError(f"--out {args.out} exists; a bundle is never overwritten (move it away first)")
    policy = ClientPolicy(secrets=tuple(args.secret), roles=tuple(args.role))
    enrollment = service.registry.enroll(args.client_id, policy)
    bundle = Bundle(
        client_id=args.client_id,
        endpoint=endpoint,
        generation=enrollment.record.generation,
        server_keys=service.server_keys.public_documents(),
        entropy=enrollment.entropy,
    )
    write_bundle(args.out, bundle)
    return {**enrollment.record.public_view(), "bundle": str(args.out)}


def _report(report: Any) -> dict[str, Any]:
    return {
        "rotation_id": report.rotation_id,
        "server_key": {
            "current_kid": report.server_key.current_kid,
            "retired": list(report.server_key.retired_kids),
            "dropped": list(report.server_key.dropped_kids),
        },
        "clients_rotated": list(report.clients_rotated),
    }
