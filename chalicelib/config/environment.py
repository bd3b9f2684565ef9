"""The one module that reads the process environment (``os.environ``): the process-wide :class:`Settings`, parsed
once on first use, and the few values event-source decorators need at import time, before any Settings exist.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping

from .names import Env
from .parsers import integer, parse_prefix
from .settings import DEFAULT_PREFIX, Settings

__all__ = [
    "autoid_rotation_days",
    "deployment_prefix",
    "get_settings",
    "key_events_topic_name",
    "metrics_disabled",
    "on_lambda",
    "process_env",
    "reset_settings",
    "s3_events_queue_name",
    "signing_key_rotation_days",
    "token_policy_limits",
    "transfer_rotation_days",
    "under_chalice_cli",
    "xray_trace_header",
]

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use (never at import time)."""
    return Settings.from_env(os.environ)


def reset_settings() -> None:
    """Forget the cached settings (tests, and the local stack after it provisions)."""
    get_settings.cache_clear()


def deployment_prefix(environ: Mapping[str, str] | None = None) -> str:
    """The name prefix, needed at import time by event-source decorators (queue and topic names)."""
    raw = (environ if environ is not None else os.environ).get(Env.PREFIX, "").strip() or DEFAULT_PREFIX
    return parse_prefix(raw)


def _import_time_integer(environ: Mapping[str, str] | None, name: str, default: str, low: int, high: int) -> int:
    # Read before Settings exist (decorators run at import), with the same default and bounds Settings uses.
    raw = (environ if environ is not None else os.environ).get(name, "").strip() or default
    return integer(low, high)(raw)


def signing_key_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """The signing-key rotation period, needed at import time by the schedule decorator."""
    return _import_time_integer(environ, Env.SIGNING_KEY_ROTATION_DAYS, "90", 1, 365)


def transfer_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """Days between scheduled rotations of every transfer client's secret (0: off), at import time."""
    return _import_time_integer(environ, Env.TRANSFER_ROTATION_DAYS, "0", 0, 365)


def autoid_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """Days between scheduled auto-id rotations (server key and entropy), needed at import time."""
    return _import_time_integer(environ, Env.AUTOID_ROTATION_DAYS, "1", 1, 365)


def process_env(name: str) -> str | None:
    """``os.environ.get(name)``, at a fraction of its cost: what a warm request reads (the trace header, Powertools'
    metrics switch, chalice's CLI flag). ``os.environ.get`` runs four Python functions and, for a variable that
    is not set, raises and catches a KeyError: ~1 us each, 3% of a warm ES256 ``/token`` per read. On POSIX,
    ``os.environ`` keeps the environment in ``_data`` (bytes to bytes, updated by every assignment and deletion
    through ``os.environ``, monkeypatch's included) and reads a variable as ``_data[name.encode()]`` decoded the
    same way (CPython's os.py, ``_Environ``); this reads it there. Anywhere else (another platform, an
    ``os.environ`` replaced by another mapping) it asks ``os.environ`` itself."""
    environ = os.environ
    if type(environ) is not os._Environ or os.name != "posix":
        return environ.get(name)
    # How os.environ encodes names and values on POSIX (os.py): the file system encoding, surrogateescape.
    encoding = sys.getfilesystemencoding()
    raw = environ._data.get(name.encode(encoding, "surrogateescape"))  # type: ignore[attr-defined]
    return None if raw is None else raw.decode(encoding, "surrogateescape")


def under_chalice_cli(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the app runs under chalice's own CLI (``chalice local``), which sets ``AWS_CHALICE_CLI_MODE`` for the
    app to tell (chalice/cli/__init__.py). Never on Lambda: ``AWS_LAMBDA_FUNCTION_NAME`` is a reserved variable
    Lambda always sets, so a function given the chalice flag by mistake still answers as on Lambda."""
    if environ is None:
        return process_env("AWS_CHALICE_CLI_MODE") == "true" and process_env("AWS_LAMBDA_FUNCTION_NAME") is None
    return environ.get("AWS_CHALICE_CLI_MODE") == "true" and "AWS_LAMBDA_FUNCTION_NAME" not in environ


def on_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a Lambda execution environment: ``AWS_LAMBDA_FUNCTION_NAME`` is a reserved variable
    Lambda always sets (Lambda Developer Guide, "Defined runtime environment variables"); the local stack, chalice's
    CLI and the tests do not."""
    return "AWS_LAMBDA_FUNCTION_NAME" in (os.environ if environ is None else environ)


def token_policy_limits(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The raw CREDPORT_TOKEN_MAX_TTL and CREDPORT_TOKEN_ALGORITHMS of this process (empty when unset): the token
    policy checker's defaults, so it checks a document against the limits the function will have."""
    env = os.environ if environ is None else environ
    return env.get(Env.TOKEN_MAX_TTL, "").strip(), env.get(Env.TOKEN_ALGORITHMS, "").strip()


def s3_events_queue_name(prefix: str) -> str:
    return f"{prefix}-s3-events"


def key_events_topic_name(prefix: str) -> str:
    return f"{prefix}-key-events"


def metrics_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """Powertools' switch for EMF metrics, which credport's writer honours: ``POWERTOOLS_METRICS_DISABLED`` when
    set, else ``POWERTOOLS_DEV`` (read at each flush, as Powertools reads it)."""
    read = process_env if environ is None else environ.get
    disabled = read("POWERTOOLS_METRICS_DISABLED")
    if disabled is not None:
        return disabled.strip().lower() in _TRUE
    return (read("POWERTOOLS_DEV") or "false").strip().lower() in _TRUE


def xray_trace_header(environ: Mapping[str, str] | None = None) -> str | None:
    """The invocation's X-Ray trace header, where Lambda puts it (``_X_AMZN_TRACE_ID``, set per invocation)."""
    return process_env("_X_AMZN_TRACE_ID") if environ is None else environ.get("_X_AMZN_TRACE_ID")
