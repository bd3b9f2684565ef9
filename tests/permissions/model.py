"""The catalog's vocabulary, and the names of one deployment (stage) as template.yaml and chalice make them.

A resource or context value in the catalog is a template with two kinds of holes:
- ``{name}``: a name the deployment fixes (``{prefix}``, ``{transfer_bucket}``, ``{account}``, ``{function}`` ...);
- ``<name>``: a part the code makes at run time (a client id, an object name, a key id, a secret's random suffix).
To evaluate, both are filled (``<name>`` with a sample from :data:`SAMPLES`); to recognise a real request
(:func:`tests.permissions.lookup.entry_for`), ``<name>`` matches any non-empty text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = [
    "FUNCTIONS",
    "REPO_ROOT",
    "SAMPLES",
    "Access",
    "Deployment",
    "Entry",
    "Key",
    "Value",
    "deployment",
    "render",
    "resource_regex",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every function of the app, each with its own role and policy file (tests/unit/test_policy_coverage.py checks the
# list against the app's functions, so a new one cannot be left out).
FUNCTIONS = (
    "api_handler",
    "auto_id",
    "bearer",
    "key_events",
    "rotate_autoid_keys",
    "rotate_session_key",
    "rotate_signing_keys",
    "rotate_transfer_secrets",
    "s3_object_events",
)
Value = str | bool | tuple[str, ...]

# What a run-time part looks like in one concrete request. Chosen to look like the real thing: a condition that
# tests its shape (``dynamodb:LeadingKeys`` against ``autoid-nonce#*``) sees what AWS would see.
SAMPLES: Mapping[str, str] = {
    "suffix": "AbCdEf",  # Secrets Manager appends "-" and six random characters to a secret's name
    "data-key-id": "0a1b2c3d-0000-4000-8000-00000000da7a",
    "signing-key-id": "5e1f2a3b-0000-4000-8000-0000000051a9",
    "old-signing-key-id": "5e1f2a3b-0000-4000-8000-0000000001d0",
    "slot": "current",
    "label": "8d6f1c2e-7a0b-4c55-9f11-3e2d1a0b9c8d/pending",
    "rotation": "8d6f1c2e-7a0b-4c55-9f11-3e2d1a0b9c8d",
    "client": "client-one",
    "file": "db.jwe",
    "version": "5c0b7e1d-4b2a-4f7e-9c3d-2a1b0c9d8e7f",
    "generation": "gen-2-0123456789abcdef.bin",
    "nonce": "bm9uY2UtMTIzNDU2Nzg5MA",
    "secret": "db-password",
    "object-version": "v:3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    "stream": "2025/01/01/[$LATEST]0123456789abcdef",
    "role-name": "reader",
    "caller-role": "team/ci-runner",  # a role with a path: GetRole's resource is the role's ARN, path included
    "role-path": "operators",  # an operator's role at a path (the OU-path lookup role may be at any)
}
_VARIABLE = re.compile(r"<([a-z-]+)>")


class Key(Enum):
    """Whose key policy gates a KMS request (KMS Developer Guide, "Key policies": the key policy is the gate)."""

    SIGNING = "signing"  # a token-signing key: chalicelib.tokens.kms_keys.signing_key_policy(its creator)
    DATA = "data"  # the deployment's data key: its KeyPolicy in template.yaml


@dataclass(frozen=True)
class Access:
    """One request AWS authorises for a call: IAM action, resource ARN, condition context."""

    action: str
    resource: str
    context: Mapping[str, Value] = field(default_factory=dict)
    key: Key | None = None


@dataclass(frozen=True)
class Entry:
    """One AWS call of the Lambda code (or of the Lambda service, with the function's role: ``site`` None).

    ``site`` is the adapter method holding ``aws_call(service, operation)``; ``callers`` the chalicelib functions on
    the way there (each must exist; the scan checks both). ``access`` empty means AWS checks no permission
    (``no_access`` says why)."""

    id: str
    service: str
    operation: str
    functions: frozenset[str]
    why: str
    access: tuple[Access, ...]
    site: str | None = None
    callers: tuple[str, ...] = ()
    no_access: str = ""
    # function -> another function whose token-signing key a moment old this call meets (see tests.permissions.check)
    key_made_by: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    """One stage's names (templates over ``{account}``/``{region}``) and the resource policies AWS evaluates too."""

    stage: str
    app_name: str
    names: Mapping[str, str]

    @property
    def prefix(self) -> str:
        return self.names["prefix"]

    def function_name(self, function: str) -> str:
        """The deployed name: ``<app>-<stage>`` for the API handler, ``<app>-<stage>-<name>`` otherwise (chalice)."""
        base = f"{self.app_name}-{self.stage}"
        return base if function == "api_handler" else f"{base}-{function}"

    def policy_file(self, function: str) -> Path:
        """The IAM policy chalice gives ``function``: its ``iam_policy_file``, else ``policy-<stage>.json``. Giving
        each function a policy of its own is a change to .chalice/config.json only."""
        name = self._setting(function, "iam_policy_file") or f"policy-{self.stage}.json"
        return REPO_ROOT / ".chalice" / str(name)

    def role_name(self, function: str) -> str:
        """The function's role as chalice names it. With ``autogen_policy`` false (credport's config) chalice makes
        one role *per function*, ``<app>-<stage>-<function>``, each holding the same policy file unless configured
        otherwise (chalice/deploy/appgraph.py, _create_role_reference; `chalice package` makes <Function>Role
        resources likewise). Only an autogenerated policy shares one role, ``<app>-<stage>``."""
        if self._setting(function, "autogen_policy") is False:
            return f"{self.app_name}-{self.stage}-{function}"
        return f"{self.app_name}-{self.stage}"

    def _setting(self, function: str | None, key: str) -> Any:
        """Chalice's precedence: the function's config in the stage, the stage, the function's top-level config,
        the top level (Chalice documentation, "Configuration File": lambda_functions)."""
        config = _chalice_config()
        stage = config["stages"][self.stage]
        layers = [stage.get("lambda_functions", {}).get(function, {}) if function else {}, stage]
        layers += [config.get("lambda_functions", {}).get(function, {}) if function else {}, config]
        return next((layer[key] for layer in layers if key in layer), None)

    def resource_policies(self, account: str, region: str) -> Mapping[str, Any]:
        """template.yaml's key and bucket policies, resolved for one account: ``"data-key"`` and each bucket's name."""
        return _resource_policies(self.prefix, account, region)


def render(text: str, deployment: Deployment, *, account: str, region: str, function: str) -> str:
    """A template with every hole filled: deployment names, then samples for the run-time parts."""
    names = {**deployment.names, "function": deployment.function_name(function)}
    filled = _fill(_fill(text, names), {"account": account, "region": region})
    return _VARIABLE.sub(lambda m: SAMPLES[m.group(1)], filled)


def resource_regex(text: str, deployment: Deployment, functions: frozenset[str]) -> re.Pattern[str]:
    """The concrete resources a template stands for, in any account and region, for any run-time part."""
    names = {**deployment.names, "function": "\x00function\x00"}
    filled = _fill(_fill(text, names), {"account": "\x00account\x00", "region": "\x00region\x00"})
    holes = {
        "\x00account\x00": r"\d{12}",
        "\x00region\x00": r"[a-z]{2}(?:-[a-z]+)+-\d",
        "\x00function\x00": "(?:" + "|".join(re.escape(deployment.function_name(f)) for f in sorted(functions)) + ")",
    }
    parts = re.split(r"(\x00[a-z]+\x00|<[a-z-]+>)", filled)
    pattern = "".join(holes.get(p, ".+") if p in holes or _VARIABLE.fullmatch(p) else re.escape(p) for p in parts)
    return re.compile(pattern)


class _Holes(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # left for the next pass


def _fill(text: str, values: Mapping[str, str]) -> str:
    return text.format_map(_Holes(values))


@functools.cache
def _chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    return config


@functools.cache
def _template_document() -> dict[str, Any]:
    from local.template import load_template

    return load_template(REPO_ROOT / "template.yaml")


def _template(prefix: str, account: str, region: str) -> Any:
    from local.template import Template

    document = _template_document()
    # The issuer plays no part in any name or policy; a valid one satisfies its AllowedPattern.
    parameters = {"Prefix": prefix, "Issuer": "https://issuer.example.com"}
    template = Template(document, parameters=parameters, account_id=account, region=region, stack_name=prefix)
    for logical_id, resource in template.resources.items():
        if resource["Type"] == "AWS::S3::Bucket":
            bucket = template.resolve(resource["Properties"]["BucketName"])
            template.attributes[logical_id] = {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
    return template


@functools.cache
def _resource_policies(prefix: str, account: str, region: str) -> Mapping[str, Any]:
    template = _template(prefix, account, region)
    resources = template.resources
    policies: dict[str, Any] = {"data-key": template.resolve(resources["DataKey"]["Properties"]["KeyPolicy"])}
    for logical_id, resource in resources.items():
        # Only what this parameter set deploys: a bucket policy under a false Condition is not in the stack.
        if resource["Type"] == "AWS::S3::BucketPolicy" and template.included(logical_id):
            bucket = template.resolve(resource["Properties"]["Bucket"])
            policies[str(bucket)] = template.resolve(resource["Properties"]["PolicyDocument"])
    return policies


# Names the catalog uses -> (logical id, property) in template.yaml.
_NAMES = {
    "transfer_bucket": ("TransferBucket", "BucketName"),
    "public_bucket": ("PublicBucket", "BucketName"),
    "state_table": ("StateTable", "TableName"),
    "notify_topic": ("NotifyTopic", "TopicName"),
    "key_events_topic": ("KeyEventsTopic", "TopicName"),
    "s3_events_queue": ("S3EventsQueue", "QueueName"),
    "async_dlq": ("AsyncDeadLetterQueue", "QueueName"),
    "data_alias": ("DataKeyAlias", "AliasName"),
    "session_key_secret": ("SessionKeySecret", "Name"),
    "autoid_session_key_secret": ("AutoIdSessionKeySecret", "Name"),
    "import_key_secret": ("ImportKeySecret", "Name"),
    "autoid_key_secret": ("AutoIdKeySecret", "Name"),
}


@functools.cache
def deployment(stage: str) -> Deployment:
    """The stage's deployment. Its prefix is ``<app>-<stage>``: chalice names the functions ``<app>-<stage>[-name]``
    and the stage's policy file is written for that prefix (the Logs statement depends on it)."""
    config = _chalice_config()
    if stage not in config["stages"]:
        raise KeyError(f"no stage {stage!r} in .chalice/config.json")
    prefix = f"{config['app_name']}-{stage}"
    # Resolved with the account and region left as holes: names stay templates over {account} and {region}.
    template = _template(prefix, "{account}", "{region}")
    names = {"prefix": prefix}
    for name, (logical_id, prop) in _NAMES.items():
        names[name] = str(template.resolve(template.resources[logical_id]["Properties"][prop]))
    return Deployment(stage=stage, app_name=str(config["app_name"]), names=names)
