"""Settings: one frozen object built once from the environment.

Every environment variable the app reads is named in :class:`Env`; nothing else in the code base reads the process
environment for configuration, and within this package only :mod:`chalicelib.config.environment` does. Parsing
collects every problem before failing, so a misconfigured deployment reports all of its mistakes in one error.

- :mod:`~chalicelib.config.names`: the variables' names, and the stack outputs that fill the resource names.
- :mod:`~chalicelib.config.parsers`: one parser per kind of value (and the audience rules).
- :mod:`~chalicelib.config.reader`: reading a mapping while collecting every problem.
- :mod:`~chalicelib.config.settings`: :class:`Settings`, its parse, and the rules between settings.
- :mod:`~chalicelib.config.environment`: the cached process-wide settings and the import-time readers.

app.py imports this package at cold start: keep its imports to the standard library and small chalicelib modules.
"""

from __future__ import annotations

from .environment import (
    autoid_rotation_days,
    deployment_prefix,
    get_settings,
    key_events_topic_name,
    on_lambda,
    reset_settings,
    s3_events_queue_name,
    signing_key_rotation_days,
    transfer_rotation_days,
    under_chalice_cli,
)
from .names import STACK_OUTPUTS, Env
from .parsers import TOKEN_SIGNERS, audience_matches, is_valid_audience
from .settings import DEFAULT_PREFIX, MAX_LINK_TTL, ROLE_CHAINING_MAX_SECONDS, ResourceNames, Settings

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_LINK_TTL",
    "ROLE_CHAINING_MAX_SECONDS",
    "STACK_OUTPUTS",
    "TOKEN_SIGNERS",
    "Env",
    "ResourceNames",
    "Settings",
    "audience_matches",
    "autoid_rotation_days",
    "deployment_prefix",
    "get_settings",
    "is_valid_audience",
    "key_events_topic_name",
    "on_lambda",
    "reset_settings",
    "s3_events_queue_name",
    "signing_key_rotation_days",
    "transfer_rotation_days",
    "under_chalice_cli",
]
