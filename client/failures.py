"""What a known failure means for the person at the terminal: its exit code and one line saying what happened and
what to do. The classes, not the cases: every requests and botocore failure, every credport error, every file a
command could not read. Nothing here echoes a credential: URLs are shown without their query (a presigned link's
signature is a credential), AWS messages are cut short, and none comes from a call that carries a secret value.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from client.errors import CliError, Exit

__all__ = ["describe", "safe_url"]

_NOT_AUTHORIZED = re.compile(r"not authorized to perform:? ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")
_BAD_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
        "InvalidAccessKeyId",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"})


def safe_url(url: str) -> str:
    """``url`` without its query, fragment or user info: what was called, never a signature or a password (also
    for a URL that does not parse: an unclosed '[', a port out of range)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        host, port = "", None
    if not (host and parts.scheme):
        rest = url.split("?", 1)[0].split("#", 1)[0]
        scheme, separator, rest = rest.rpartition("://")
        return f"{scheme}{separator}{rest.rsplit('@', 1)[-1]}"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def describe(error: BaseException) -> tuple[Exit, str] | None:
    """The exit code and message for a failure a user can act on; None for anything else (a bug)."""
    if isinstance(error, CliError):
        return error.exit_code, str(error)
    for describer in (_botocore, _requests, _credport):  # botocore first: some of its errors are requests' too
        found = describer(error)
        if found is not None:
            return found
    if isinstance(error, OSError):
        return _file(error)
    setting = _aws_setting(error)
    if setting is not None:
        return setting
    if isinstance(error, UnicodeError):
        return Exit.USAGE, f"not valid UTF-8 text ({type(error).__name__})"
    if isinstance(error, json.JSONDecodeError):  # a file named on the command line (a --config) that is not JSON
        return Exit.USAGE, f"not JSON ({error.msg}, line {error.lineno})"
    return None  # any other ValueError is a bug of ours, not the user's input: an internal error


def _aws_setting(error: BaseException) -> tuple[Exit, str] | None:
    """botocore converts its settings (AWS_MAX_ATTEMPTS, AWS_METADATA_SERVICE_TIMEOUT, a profile's max_attempts, …)
    when a client or a credential lookup first needs them, and a value that is not of the setting's type fails there
    as a plain ValueError. Its traceback says which: the provider chain that found the value names the variable
    (or the profile's key)."""
    if not isinstance(error, ValueError) or isinstance(error, UnicodeError):
        return None
    frame, found, inside = error.__traceback__, None, False
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_filename.replace("\\", "/").endswith("botocore/configprovider.py"):
            inside = True
            provider = frame.tb_frame.f_locals.get("provider")
            variable = getattr(provider, "_name", None)
            key = getattr(provider, "_config_var_name", None)
            if isinstance(variable, str):
                found = f"${variable}"
            elif isinstance(key, str):
                found = f"the AWS profile's {key}"
        frame = frame.tb_next
    if not inside:
        return None
    what = found or "an AWS setting (an AWS_* variable or ~/.aws/config)"
    return Exit.CONFIG, f"{what} has a value botocore cannot use ({_short(str(error))}): fix it or unset it"


def _file(error: OSError) -> tuple[Exit, str]:
    """A file named on the command line (or its folder) that cannot be read or written."""
    reason = error.strerror or str(error) or type(error).__name__
    return Exit.USAGE, f"cannot use {error.filename}: {reason}" if error.filename else reason


def _chain(error: BaseException) -> list[BaseException]:
    """The exception and what it wraps (urllib3 keeps the cause in ``reason`` and in ``args``), nearest first."""
    seen: list[BaseException] = []
    pending: list[Any] = [error]
    while pending and len(seen) < 12:
        item = pending.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        pending.extend([getattr(item, "reason", None), *item.args, item.__cause__, item.__context__])
    return seen


def _requests(error: BaseException) -> tuple[Exit, str] | None:
    try:
        import requests
    except ImportError:  # pragma: no cover - requests is a dependency of the client
        return None
    if not isinstance(error, requests.RequestException):
        return None
    request = getattr(error, "request", None)
    url = safe_url(str(getattr(request, "url", "") or ""))
    method = str(getattr(request, "method", "") or "")
    called = f"{method} {url}".strip()
    host = urlsplit(url).netloc or "the service"
    malformed = requests.exceptions.InvalidURL | requests.exceptions.MissingSchema | requests.exceptions.InvalidSchema
    if isinstance(error, malformed):
        return Exit.USAGE, f"not an http(s) URL: {safe_url(str(error.args[0]) if error.args else called)}"
    chain = _chain(error)
    if isinstance(error, requests.exceptions.SSLError):
        reason = next((_ssl_reason(e) for e in chain if isinstance(e, ssl.SSLError)), "TLS handshake failed")
        return Exit.UNAVAILABLE, f"TLS error talking to {host} ({reason}; {called}): is the URL right?"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return Exit.UNAVAILABLE, f"timed out connecting to {host} ({called}): is the URL right and the service up?"
    if isinstance(error, requests.exceptions.Timeout):
        return Exit.UNAVAILABLE, f"{host} did not answer in time ({called}): retry later"
    if isinstance(error, requests.ConnectionError):
        if any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError" for e in chain):
            return Exit.UNAVAILABLE, f"cannot resolve the host {urlsplit(url).hostname} ({called}): is the URL right?"
        if any(isinstance(e, ConnectionRefusedError) for e in chain):
            reason = "connection refused"
        elif any(isinstance(e, ConnectionResetError) for e in chain):
            reason = "connection reset"
        else:
            reason = "connection failed"
        return Exit.UNAVAILABLE, f"cannot reach {host} ({reason}; {called}): is the URL right and the service up?"
    return Exit.UNAVAILABLE, f"{called or 'the request'} failed ({type(error).__name__}): retry later"


def _ssl_reason(error: ssl.SSLError) -> str:
    verify = getattr(error, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    return str(getattr(error, "reason", None) or type(error).__name__)


def _botocore(error: BaseException) -> tuple[Exit, str] | None:
    try:
        from botocore import exceptions as boto
    except ImportError:  # pragma: no cover - botocore comes with boto3, a dependency
        return None
    if isinstance(error, boto.ClientError):
        return _client_error(error)
    if isinstance(error, boto.ProfileNotFound):
        profile = error.kwargs.get("profile", "")
        return Exit.CONFIG, (
            f"AWS profile {profile!r} is not configured: check --profile or $AWS_PROFILE (profiles are the"
            " [profile NAME] sections of $AWS_CONFIG_FILE, default ~/.aws/config)"
        )
    if isinstance(error, boto.NoCredentialsError):
        return Exit.CONFIG, (
            "no AWS credentials found: pass --profile, set AWS_PROFILE (or AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY), or run with an instance or task role"
        )
    if isinstance(error, boto.NoRegionError):
        return Exit.CONFIG, "no AWS region: pass --region, or set AWS_DEFAULT_REGION or a region in the AWS profile"
    if isinstance(error, boto.PartialCredentialsError | boto.CredentialRetrievalError):
        return Exit.CONFIG, f"the AWS credentials cannot be used: {error}"
    sso = tuple(getattr(boto, name) for name in ("TokenRetrievalError", "SSOError") if hasattr(boto, name))
    if sso and isinstance(error, sso):
        return Exit.CONFIG, f"the AWS credentials cannot be used ({type(error).__name__}): run aws sso login again?"
    if isinstance(error, boto.ConnectionError | boto.ConnectTimeoutError | boto.ReadTimeoutError):
        return Exit.UNAVAILABLE, f"cannot reach AWS ({error}): retry later, or check AWS_ENDPOINT_URL and --region"
    if isinstance(error, boto.BotoCoreError):
        return Exit.CONFIG, f"AWS client error ({type(error).__name__}): {error}"
    return None


def _client_error(error: Any) -> tuple[Exit, str]:
    """AWS answered no. Its message is shown (cut short) unless the call carried a secret value (Secrets Manager
    writes): those say only the error code."""
    details = error.response.get("Error", {})
    code = str(details.get("Code") or "Unknown")
    message = str(details.get("Message") or "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    operation = str(getattr(error, "operation_name", "") or "the call")
    shown = "" if "Secret" in operation else _short(message)
    if code == "ValidationError" and "does not exist" in message and "Stack" in operation:
        return Exit.CONFIG, f"{shown or 'no such stack'}: check --stack and --region (or AWS_REGION)"
    if code in _DENIED or "not authorized" in message:
        found = _NOT_AUTHORIZED.search(message)
        action = f"perform {found.group(1)}" if found else f"call {operation}"
        return Exit.REFUSED, f"AWS refused {operation} ({code}): your identity may not {action}"
    if code in _BAD_CREDENTIALS:
        return Exit.CONFIG, (
            f"AWS refused the credentials ({code}) calling {operation}: refresh them or pick another --profile"
        )
    if status == 429 or status >= 500 or "Throttl" in code or code.endswith("Unavailable"):
        return Exit.UNAVAILABLE, f"AWS failed {operation} ({code}): retry later"
    return Exit.REFUSED, f"AWS refused {operation} ({code}){': ' + shown if shown else ''}"


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:199] + "…"


def _credport(error: BaseException) -> tuple[Exit, str] | None:
    """A credport error raised by the capability code an admin command runs: an AWS failure is described by its
    botocore cause (which names the operation and the code); the rest by its status."""
    try:
        from chalicelib.errors import ConfigError, CredportError
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(error, CredportError):
        return None
    if hasattr(error, "aws_code") and error.__cause__ is not None:
        cause = _botocore(error.__cause__)
        if cause is not None:
            return cause
    if isinstance(error, ConfigError):
        return Exit.CONFIG, f"the stack's configuration is invalid: {error.message}"
    if error.status >= 500:
        return Exit.UNAVAILABLE, f"{error.message} ({error.code}): retry later"
    if error.status == 400:  # what the operator asked for is malformed (a policy, a name)
        return Exit.USAGE, error.message
    return Exit.REFUSED, error.message
