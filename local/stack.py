"""The local stack: embedded AWS, provisioning from template.yaml, the API, the event pump, rotation.

One process, started in the foreground by ``make run`` (``python -m local``) or from pytest on free ports.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.aws.clients import ClientFactory, ClientOptions
from chalicelib.config import Env, reset_settings
from chalicelib.services import Services
from local import kms_key_material, kms_key_state, kms_sign, s3_notifications
from local.control import ControlRoutes
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
from local.notifications import NotificationLog
from local.organization import LocalOrganization, create_callers, create_organization
from local.ports import PORT_HINT, BoundAwsServer, PortUnavailable, binding, check_ports
from local.provision import GatewayResponse, Provisioned, Provisioner, ProxyRoute, app_functions
from local.pump import EventPump, PumpSettings
from local.rotation import LocalRotations
from local.state import StateDir, read_state
from local.template import Template, load_template

__all__ = ["DEFAULT_STATE_DIR", "REPO_ROOT", "LocalStack", "StackInfo", "StackOptions", "read_state"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_AUDIENCES = "sts.amazonaws.com,https://*"  # unless CREDPORT_TOKEN_AUDIENCES says otherwise
TAG_AUTHORIZATION_DELAY = 300  # seconds: KMS Developer Guide, ABAC ("up to five minutes")


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    aws_port: int = 4566
    api_port: int = 8000
    prefix: str = "credport-dev"
    region: str = "us-east-1"
    state_dir: Path = DEFAULT_STATE_DIR
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


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self._moto: BoundAwsServer | None = None
        self._api: ApiServer | None = None
        self._api_started = False  # ApiServer.stop() waits for a serve loop: one never started has none
        self._state = StateDir(options.state_dir)
        self._notifications = NotificationLog()
        self._pump: EventPump | None = None
        self._stopping = threading.Event()
        self._rotations = LocalRotations(ACCOUNT_ID, options.region, _print, self._stopping)
        self._gateway_responses: dict[str, GatewayResponse] = {}
        self._proxy_routes: dict[tuple[str, str], ProxyRoute] = {}
        self._iam_options: Any = None
        self._control: ControlRoutes | None = None
        self.info: StackInfo | None = None

    def start(self) -> StackInfo:
        """Start everything, or raise (StateDirInUse, PortUnavailable, ...) having started nothing that outlives
        :meth:`stop`. The state dir and both ports are checked before anything else."""
        o = self.options
        state_dirs = self._preflight()
        root = self._emulate()
        self._moto = BoundAwsServer(ip_address=o.host, port=o.aws_port, state_dirs=state_dirs)
        self._moto.start()  # binds here: a port taken since the check raises PortUnavailable, never waits
        endpoint = "http://{}:{}".format(*self._moto.get_host_and_port())
        _isolate_environment(endpoint, o.region, o.prefix, root)

        module = importlib.import_module("app")  # after CREDPORT_PREFIX is set: it names queues and topics
        app = make_thread_safe(module.app)
        with binding("API", o.host, o.api_port, state_dirs):
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
        # A developer's stack: AWS's audience and any https one (README "Token service"); a deployment lists its own.
        os.environ.setdefault(Env.TOKEN_AUDIENCES, LOCAL_AUDIENCES)
        for note in provisioned.notes:
            _print(f"note: {note}")
        reset_settings()

        secrets_manager = factory.client("secretsmanager")
        self._rotations.register(
            provisioned.rotations, module, lambda secret: secrets_manager.describe_secret(SecretId=secret)["Name"]
        )
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
        self._serve(api_url)
        self._rotations.start_schedules(provisioned.rotations)
        self.info = StackInfo(
            api_url=api_url,
            aws_endpoint=endpoint,
            region=o.region,
            account_id=ACCOUNT_ID,
            prefix=o.prefix,
            app_env=provisioned.app_environment(),
            developer=developer,
            schedules=self._pump.schedule_names,
            rotations=self._rotations.names,
            dead_letter_queues=_dead_letter_queues(provisioned),
            organization=organization,
        )
        self._state.write(self.info.to_json())
        return self.info

    def _serve(self, api_url: str) -> None:
        """Open the API (and its control routes) and start delivering events."""
        assert self._api is not None
        assert self._pump is not None
        self._control = ControlRoutes(
            pump=self._pump,
            rotate=self._rotations.rotate,
            rotations=lambda: self._rotations.names,
            notifications=self._notifications,
            topics=self._topics,
            identity={"pid": os.getpid(), "state_dir": str(self.options.state_dir.resolve()), "api_url": api_url},
        )
        self._api.start()
        self._api_started = True
        self._pump.start()

    def _preflight(self) -> tuple[Path, ...]:
        """Before anything starts: the state dir is ours (StateDirInUse), both ports are free (PortUnavailable).
        Returns the state dirs where a stack holding our ports may have said so."""
        o = self.options
        for note in self._state.claim():
            _print(f"note: {note}")
        state_dirs = (o.state_dir, DEFAULT_STATE_DIR)
        if o.api_port and o.api_port == o.aws_port:
            raise PortUnavailable(f"the API and the embedded AWS cannot share port {o.api_port}; {PORT_HINT}")
        check_ports(o.host, {"API": o.api_port, "embedded AWS": o.aws_port}, state_dirs)
        return state_dirs

    def _emulate(self) -> Keys:
        """What the embedded AWS does beyond moto (in this process, before it serves); the root user's keys."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call drowns the app's logs
        install_sts()  # the embedded STS checks roles, trust policies and web identity tokens as AWS does
        s3_notifications.install()  # notifications name the object's version, as S3's do for a versioned bucket
        kms_sign.install()  # KMS Sign/Verify honour MessageType and refuse a message over 4096 bytes, as AWS does
        kms_key_state.install()  # Encrypt, Decrypt, data keys and MACs refuse a key that is not Enabled, as AWS does
        kms_key_material.install()  # a symmetric key gets no RSA key at CreateKey (moto made one, ~0.1 s each)
        self._notifications.install()  # what SNS publishes, for `python -m local notifications`
        root = root_keys()
        self._enforce_iam(root)
        return root

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

    def stop(self) -> None:
        """Stop whatever started (also after a failed or interrupted start); each part even if another failed.
        ``stack.json`` goes only if it is still the one this stack wrote."""
        self._stopping.set()
        steps: list[Any] = [self._iam_exit, self._pump and self._pump.stop]
        if self._api is not None:
            steps.append(self._api.stop if self._api_started else self._api_close)
        steps += [self._moto and self._moto.stop, self._notifications.uninstall, self._state.release]
        for step in steps:
            if step:
                with contextlib.suppress(Exception):
                    step()

    def abandon(self) -> None:
        """Before the process leaves in the middle of a start (``os._exit``, from a signal handler): remove
        ``stack.json`` if this stack wrote it. Nothing else outlives the process: the kernel closes the ports and
        drops the state dir's lock, and the embedded AWS lives in memory."""
        self._state.release()

    def _iam_exit(self) -> None:
        if self._iam_options is not None:
            self._iam_options.__exit__(None, None, None)
            self._iam_options = None

    def _api_close(self) -> None:
        assert self._api is not None
        self._api.close()

    def control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """``/_local/…`` requests (:mod:`local.control`); 503 until the stack is up."""
        if self._control is None:
            return 503, {"error": "starting"}
        return self._control(method, path, body)

    def _topics(self) -> list[str]:
        from moto.sns.models import sns_backends

        return list(sns_backends[ACCOUNT_ID][self.options.region].topics)


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
