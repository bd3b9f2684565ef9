"""The local stack: embedded AWS, provisioning from template.yaml, the API, the event pump, rotation.

One process, started in the foreground by ``make run`` (``python -m local``) or from pytest on free ports.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.aws.clients import ClientFactory, ClientOptions
from chalicelib.config import reset_settings
from chalicelib.services import Services
from local import s3_notifications
from local.credentials import MotoCredentials
from local.developer import Developer, create_developer
from local.execution import (
    FunctionCredentials,
    Keys,
    function_policies,
    lambda_session,
    role_logical_id,
    root_keys,
)
from local.gateway import ApiServer, make_thread_safe
from local.iam import enforce
from local.iam.sts import install as install_sts
from local.organization import LocalOrganization, create_callers, create_organization
from local.provision import GatewayResponse, Provisioned, Provisioner, ProxyRoute, app_functions
from local.pump import EventPump, PumpSettings
from local.rotation import RotationDriver, RotationFailed
from local.template import Template, load_template

__all__ = ["REPO_ROOT", "LocalStack", "StackInfo", "StackOptions", "read_state"]

REPO_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_ID = "123456789012"  # moto's default account
TAG_AUTHORIZATION_DELAY = 300  # seconds: KMS Developer Guide, ABAC ("up to five minutes")


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    aws_port: int = 4566
    api_port: int = 8000
    prefix: str = "credport-dev"
    region: str = "us-east-1"
    state_dir: Path = REPO_ROOT / ".local"
    plugins: Sequence[str] = ()
    quiet: bool = False
    retry_delay: int = 1
    token_signer: str = "kms"  # noqa: S105 (a mode, not a password): the template's TokenSigner parameter
    organization: bool = False  # an organization of the stack's account, a member and an outsider (OrganizationId)


@dataclass(frozen=True)
class StackInfo:
    api_url: str
    aws_endpoint: str
    region: str
    account_id: str
    prefix: str
    app_env: dict[str, str]
    developer: Developer
    schedules: tuple[str, ...]
    rotations: tuple[str, ...]
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    organization: LocalOrganization | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "aws_endpoint": self.aws_endpoint,
            "region": self.region,
            "account_id": self.account_id,
            "prefix": self.prefix,
            "app_env": self.app_env,
            "aws_exports": self.developer.exports(),
            "developer_arn": self.developer.user_arn,
            "workload_role_arn": self.developer.role_arn,
            "schedules": list(self.schedules),
            "rotations": list(self.rotations),
            "dead_letter_queues": self.dead_letter_queues,
            "organization": self.organization.to_json() if self.organization else None,
            "pid": os.getpid(),
        }


def read_state(state_dir: Path) -> dict[str, Any]:
    """What a running stack wrote about itself (endpoints, app environment, developer exports)."""
    path = state_dir / "stack.json"
    if not path.exists():
        raise FileNotFoundError(f"no running local stack ({path} is missing): start one with `make run`")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self._moto: Any = None
        self._api: ApiServer | None = None
        self._pump: EventPump | None = None
        self._rotations: dict[str, tuple[str, Any]] = {}  # secret id -> (function name, handler)
        self._driver = RotationDriver(ACCOUNT_ID, options.region)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._gateway_responses: dict[str, GatewayResponse] = {}
        self._proxy_routes: dict[tuple[str, str], ProxyRoute] = {}
        self._iam_options: Any = None
        self.info: StackInfo | None = None

    def start(self) -> StackInfo:
        o = self.options
        from local.aws_server import EmbeddedAwsServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call drowns the app's logs
        install_sts()  # the embedded STS checks roles, trust policies and web identity tokens as AWS does
        s3_notifications.install()  # notifications name the object's version, as S3's do for a versioned bucket
        root = root_keys()
        self._enforce_iam(root)
        # moto's server binds in a thread of its own and, when the port is taken, reports it there and never gets
        # ready: find out here, so the caller gets an OSError (and its hint) instead of a stack waiting forever.
        _check_port_free(o.host, o.aws_port)
        self._moto = EmbeddedAwsServer(ip_address=o.host, port=o.aws_port, verbose=False)
        self._moto.start()
        endpoint = "http://{}:{}".format(*self._moto.get_host_and_port())
        _isolate_environment(endpoint, o.region, o.prefix, root)

        module = importlib.import_module("app")  # after CREDPORT_PREFIX is set: it names queues and topics
        app = make_thread_safe(module.app)
        self._api = ApiServer(
            app,
            host=o.host,
            port=o.api_port,
            credentials=MotoCredentials(),
            account_id=ACCOUNT_ID,
            region=o.region,
            responses=self._gateway_responses,
            proxy_routes=self._proxy_routes,
            control=self.control,
            quiet=o.quiet,
        )
        api_url = f"http://{o.host}:{self._api.port}"

        factory = ClientFactory(ClientOptions(region=o.region))
        parameters = {"Prefix": o.prefix, "Issuer": api_url, "TokenSigner": o.token_signer}
        organization = None
        if o.organization:  # before the template: its id is the OrganizationId parameter
            organization = create_organization(factory.client, management_account=ACCOUNT_ID)
            parameters["OrganizationId"] = organization.id
        template = Template(
            load_template(REPO_ROOT / "template.yaml"),
            parameters=parameters,
            account_id=ACCOUNT_ID,
            region=o.region,
            stack_name=o.prefix,
        )
        functions = app_functions(app)
        policies = function_policies(REPO_ROOT / ".chalice", functions.values(), o.prefix)
        role_policies = {role_logical_id(name): policies[name] for name in functions.values()}
        provisioned = Provisioner(
            template, factory.client, functions=functions, role_policies=role_policies, conditions_evaluated=True
        ).provision()
        self._gateway_responses.update(provisioned.gateway_responses)
        self._proxy_routes.update(provisioned.proxy_routes)
        self._api.set_resource_policy(provisioned.api_resource_policy)
        os.environ.update(provisioned.app_environment())
        for note in provisioned.notes:
            _print(f"note: {note}")
        reset_settings()

        self._register_rotations(provisioned, module, factory)
        developer = create_developer(
            factory.client, state_dir=o.state_dir, account_id=ACCOUNT_ID, region=o.region, endpoint=endpoint
        )
        if organization is not None:  # the member's and the outsider's callers, as profiles beside the developer's
            organization = create_callers(
                organization,
                endpoint=endpoint,
                region=o.region,
                config_file=developer.config_file,
                credentials_file=developer.credentials_file,
            )
        for plugin in o.plugins:
            importlib.import_module(plugin)
        # From here on each of the app's functions calls AWS as its own role (FunctionCredentials: the session of the
        # function the invocation runs as, first in the chain of every client the app makes, so the environment is
        # never read by them); the stack's own clients (the factory's, made above) and test plugins' keep the root
        # user's credentials of the environment.
        for client in ("sqs", "sns", "events", "lambda", "secretsmanager", "s3"):
            factory.client(client)
        sessions = {  # Lambda names each session after the deployed function: <prefix>, <prefix>-<name>
            name: lambda_session(
                ACCOUNT_ID,
                o.region,
                provisioned.attributes[role_logical_id(name)]["Arn"],
                o.prefix if name == "api_handler" else f"{o.prefix}-{name}",
            )
            for name in functions.values()
        }
        credentials = FunctionCredentials(sessions)
        module.services.build_with(lambda: Services.from_environment(credentials=credentials))

        self._pump = EventPump(
            app,
            factory.client,
            PumpSettings(
                prefix=o.prefix,
                account_id=ACCOUNT_ID,
                region=o.region,
                retry_delay=o.retry_delay,
                async_configs=provisioned.async_configs,
            ),
            log=(lambda _line: None) if o.quiet else _print,
        )
        self._pump.wire()
        self._api.start()
        self._pump.start()
        self._start_rotation_schedules(provisioned)
        self.info = StackInfo(
            api_url=api_url,
            aws_endpoint=endpoint,
            region=o.region,
            account_id=ACCOUNT_ID,
            prefix=o.prefix,
            app_env=provisioned.app_environment(),
            developer=developer,
            schedules=self._pump.schedule_names,
            rotations=tuple(sorted(self._rotations)),
            dead_letter_queues=_dead_letter_queues(provisioned),
            organization=organization,
        )
        self._write_state(self.info)
        return self.info

    def _enforce_iam(self, root: Keys) -> None:
        """IAM enforced for every request of the embedded AWS from the start, as AWS enforces it (local.iam):
        conditions, resource and key policies, presigned links, and KMS tags and aliases counting for authorisation
        only five minutes after they are set (the longest AWS documents)."""
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        enforce.install()
        enforce.register_root(root.access_key_id, root.secret_access_key, ACCOUNT_ID)
        self._iam_options = enforce.configured(tag_authorization_delay_seconds=TAG_AUTHORIZATION_DELAY)
        self._iam_options.__enter__()
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0

    def _register_rotations(self, provisioned: Provisioned, module: Any, factory: ClientFactory) -> None:
        handlers = {
            f.name: getattr(module, f.handler_string.rsplit(".", 1)[1]) for f in module.app.pure_lambda_functions
        }
        for spec in provisioned.rotations:
            name = spec.function_arn.rsplit(":", 1)[1]
            if name not in handlers:
                raise RuntimeError(f"rotation of {spec.secret_id} names function {name}, which the app does not define")
            secret_name = factory.client("secretsmanager").describe_secret(SecretId=spec.secret_id)["Name"]
            self._rotations[secret_name] = (spec.function_arn, handlers[name])

    def _start_rotation_schedules(self, provisioned: Provisioned) -> None:
        """As Secrets Manager does: rotate when the schedule is created (unless told not to), then when due."""
        names = list(self._rotations)
        for spec, secret_name in zip(provisioned.rotations, names, strict=True):
            if spec.rotate_immediately:
                self._report_rotation(secret_name)
            if spec.period_seconds:
                thread = threading.Thread(
                    target=self._rotation_loop,
                    args=(secret_name, spec.period_seconds),
                    name=f"rotation:{secret_name}",
                    daemon=True,
                )
                thread.start()

    def _rotation_loop(self, secret_name: str, period: int) -> None:
        while not self._stopping.wait(period):
            self._report_rotation(secret_name)

    def _report_rotation(self, secret_name: str) -> None:
        status, payload = self._rotate(secret_name)
        _print(f"rotation {secret_name} -> {'ok' if status == 200 else payload}")

    def stop(self) -> None:
        self._stopping.set()
        if self._iam_options is not None:
            self._iam_options.__exit__(None, None, None)
            self._iam_options = None
        if self._pump is not None:
            self._pump.stop()
        if self._api is not None:
            self._api.stop()
        if self._moto is not None:
            self._moto.stop()
        (self.options.state_dir / "stack.json").unlink(missing_ok=True)

    def _write_state(self, info: StackInfo) -> None:
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.options.state_dir / "stack.json"
        path.write_text(json.dumps(info.to_json(), indent=2) + "\n")

    def control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """``/_local/…`` requests: ``GET status``, ``POST trigger/<schedule>``, ``POST rotate/<secret>``."""
        assert self._pump is not None
        command, _, argument = path.partition("?")[0].partition("/")
        if method == "GET" and command == "status":
            return 200, {
                "schedules": list(self._pump.schedule_names),
                "rotations": sorted(self._rotations),
                "deliveries": dict(self._pump.stats),
            }
        if method == "POST" and command == "trigger":
            if argument not in self._pump.schedule_names:
                return 404, {"error": "unknown_schedule", "schedules": list(self._pump.schedule_names)}
            return 200, {"schedule": argument, "ok": self._pump.fire(argument)}
        if method == "POST" and command == "rotate":
            return self._rotate(argument)
        return 404, {"error": "unknown_command", "commands": ["GET status", "POST trigger/NAME", "POST rotate/SECRET"]}

    def _rotate(self, secret_id: str) -> tuple[int, dict[str, Any]]:
        if secret_id not in self._rotations:
            return 404, {"error": "unknown_rotation", "rotations": sorted(self._rotations)}
        name, function = self._rotations[secret_id]
        with self._lock:  # Secrets Manager runs one rotation of a secret at a time
            try:
                result = self._driver.rotate(secret_id, function, function_arn=name)
            except RotationFailed as failed:
                return 500, {"error": "rotation_failed", "step": failed.step, "token": failed.token}
        return 200, {"secret": secret_id, "token": result.token, "resumed": result.resumed}


def _isolate_environment(endpoint: str, region: str, prefix: str, keys: Keys) -> None:
    """Point every SDK call of this process at the embedded AWS, never at a real account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            **keys.environment(),
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "CREDPORT_PREFIX": prefix,
            "CREDPORT_STAGE": "dev",
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        }
    )


def _dead_letter_queues(provisioned: Provisioned) -> dict[str, str]:
    return {
        logical: provisioned.attributes[logical]["QueueUrl"]
        for logical, kind in provisioned.types.items()
        if kind == "AWS::SQS::Queue" and logical.endswith("DeadLetterQueue")
    }


def _print(line: str) -> None:
    print(line, flush=True)


def _check_port_free(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) if ``port`` cannot be bound on ``host`` now (port 0: any free port, always)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds: TIME_WAIT is no conflict
        probe.bind((host, port))
