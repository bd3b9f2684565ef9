"""Create in the embedded AWS every resource template.yaml declares, the way CloudFormation would.

Each resource type has one creator, and each creator names the properties it applies. A type or a
property the local stack does not know is an error, never silently skipped: if the template grows, the
local stack must grow with it (a test keeps the two in step).

- :mod:`~local.provision.provisioner`: the :class:`Provisioner` and :data:`CREATORS`, one creator per resource type.
- :mod:`~local.provision.results`: what provisioning produced (:class:`Provisioned`).
- :mod:`~local.provision.properties`: how a creator reads properties (strictly).
- The creators, by service: :mod:`~local.provision.keys` (KMS, Secrets Manager), :mod:`~local.provision.storage`
  (S3, DynamoDB), :mod:`~local.provision.messaging` (SQS, SNS, CloudWatch alarms), :mod:`~local.provision.monitoring`
  (the alarm topic's policy and subscriptions, EventBridge rules, the dashboard), :mod:`~local.provision.functions`
  (the app's functions, roles and REST API).
"""

from __future__ import annotations

from local.apidef import GatewayResponse, ProxyRoute

from .provisioner import CREATORS, Provisioner, app_functions
from .results import AsyncInvokeConfig, Provisioned, RotationSpec

__all__ = [
    "CREATORS",
    "AsyncInvokeConfig",
    "GatewayResponse",
    "Provisioned",
    "Provisioner",
    "ProxyRoute",
    "RotationSpec",
    "app_functions",
]
