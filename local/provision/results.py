"""What provisioning produced: every resource's attributes and the outputs, and what the template asks of the local
stack beyond creating resources (rotation schedules, gateway responses, the API's resource policy, async invoke
settings, proxy routes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.config import STACK_OUTPUTS
from local.apidef import GatewayResponse, ProxyRoute

__all__ = ["AsyncInvokeConfig", "Provisioned", "RotationSpec"]


@dataclass(frozen=True)
class RotationSpec:
    """A secret the template puts on a rotation schedule, and the app function that rotates it."""

    secret_id: str
    function_arn: str
    period_seconds: int | None  # None: rotate on request only (cron schedules)
    rotate_immediately: bool


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """A function's asynchronous invocation settings (Lambda EventInvokeConfig): how many retries after the
    first attempt, and the queue that receives the invocation record once every attempt failed."""

    max_retries: int
    on_failure_queue_url: str | None


@dataclass(frozen=True)
class Provisioned:
    attributes: Mapping[str, Mapping[str, str]]  # logical id -> {"Ref": …, "Arn": …}
    types: Mapping[str, str]  # logical id -> resource type
    outputs: Mapping[str, str]
    notes: tuple[str, ...] = ()  # where the local stack knowingly differs from AWS
    rotations: tuple[RotationSpec, ...] = ()
    gateway_responses: Mapping[str, GatewayResponse] = field(default_factory=dict)  # from the API's definition
    api_resource_policy: Mapping[str, Any] | None = None  # the API's resource policy, from its definition
    async_configs: Mapping[str, AsyncInvokeConfig] = field(default_factory=dict)  # by the app's function name
    # Methods the API's definition integrates with a function of their own (POST /auto-id), by (METHOD, path).
    proxy_routes: Mapping[tuple[str, str], ProxyRoute] = field(default_factory=dict)

    def app_environment(self) -> dict[str, str]:
        """The env vars a function gets from the template (what Globals and the outputs hold)."""
        return {env: self.outputs[name] for env, name in STACK_OUTPUTS.items()}
