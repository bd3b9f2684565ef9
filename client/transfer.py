"""Receiving a secret someone sent you: download the sealed file, open it with your private key, keep it.

The name a secret is stored under is the receiver's choice, never the sender's alone: without ``--name`` the
sender's name (checked like any untrusted name) goes under a receiving prefix (``credport/received/`` by default),
and whatever the name, one shaped like a secret credport itself keeps (``<prefix>/session-key``,
``<prefix>/token-signing/…``: chalicelib/internal_secrets.py, for any deployment prefix, since this account's
deployments' prefixes are not known here) is refused. A name the receiver did not write in full (prefix + sender's
name) never falls in a name-space credport serves or imports into (``<prefix>/autoid/``, ``<prefix>/imported/``)
and never replaces a secret: only ``--name NAME --overwrite`` adds a version to an existing one. Storing the same
value again is a no-op (the value held is compared, in constant time; the sender's version id is not trusted).
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import urlsplit

from chalicelib.internal_secrets import internal_kind, reaching_kinds
from chalicelib.untrusted import TextKind, UntrustedInput, check_text, loads
from client.errors import CliError, Exit
from client.failures import safe_url
from client.http import AnswerTooLarge, bounded_request

__all__ = ["DEFAULT_RECEIVED_PREFIX", "MANAGED_NAMESPACES", "ReceiveError", "receive", "store", "stored_name"]

DEFAULT_RECEIVED_PREFIX = "credport/received/"
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")  # Secrets Manager's own rule (CreateSecret, Name)
# Where credport itself puts secrets or serves them from, under a deployment's prefix: the defaults of
# CREDPORT_AUTOID_SERVING_PREFIXES and CREDPORT_TRANSFER_IMPORT_PREFIX (chalicelib/config/settings.py; a unit test
# keeps the two equal). Every deployment prefix counts: this account's are not known here.
MANAGED_NAMESPACES = ("autoid/", "imported/")
_S3_ERROR = re.compile(rb"<Code>([A-Za-z]{1,64})</Code>")


class ReceiveError(CliError):
    """The link, the file or the name cannot be used: which, and what to do, in the message."""

    exit_code = Exit.REFUSED


def receive(url: str, private_pem: bytes, *, timeout: float = 30) -> dict[str, Any]:
    # Here, not at the top: ``credport`` imports this module for its --help, and JOSE costs a tenth of a second.
    from chalicelib.envelope import MAX_ENVELOPE_BYTES, EnvelopeError, open_envelope, private_key_from_pem

    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost"}):
        raise ReceiveError("the link must be https (http only for localhost)", Exit.USAGE)
    try:
        key = private_key_from_pem(private_pem)
    except EnvelopeError as error:
        raise ReceiveError(f"--key is not a usable RSA private key ({error.reason})", Exit.USAGE) from None
    try:
        response = bounded_request(
            "GET", url, timeout=timeout, max_bytes=MAX_ENVELOPE_BYTES, hint="is the link complete? ask the sender"
        )
    except AnswerTooLarge:
        raise ReceiveError(f"the file is larger than {MAX_ENVELOPE_BYTES} bytes: not a credport envelope") from None
    body = response.content
    if response.status_code != 200:
        found = _S3_ERROR.search(body[:4096])
        code = f", {found.group(1).decode()}" if found else ""
        exit_code = Exit.UNAVAILABLE if response.status_code >= 500 else Exit.REFUSED
        raise ReceiveError(
            f"the link ({safe_url(url)}) answered HTTP {response.status_code}{code}: it may have expired; ask the"
            " sender for a new one",
            exit_code,
        )
    try:
        # Strict: a value with a lone surrogate would otherwise fail inside botocore when --store sends it.
        document = loads(open_envelope(body.decode("ascii", "replace"), {key.kid: key}).plaintext)
    except EnvelopeError as error:
        raise ReceiveError(f"the file cannot be opened with this --key ({error.reason})") from None
    except UntrustedInput:
        raise ReceiveError("the file does not hold a credport secret") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(k), str) for k in ("secret_name", "value")):
        raise ReceiveError("the file does not hold a credport secret")
    return document


def stored_name(document: dict[str, Any], *, name: str | None, prefix: str = DEFAULT_RECEIVED_PREFIX) -> str:
    """The name to store ``document`` under: ``name``, else ``prefix`` + the sender's name; refused (usage error,
    naming the refused name) if it is not a Secrets Manager name or is shaped like one of credport's own secrets,
    and, for a name the receiver did not write in full, if it falls in a name-space credport manages."""
    if name is None:
        _check_prefix(prefix)
        sender = str(document.get("secret_name", ""))
        try:
            check_text(sender, TextKind.NAME, max_chars=512)
        except UntrustedInput as refused:
            raise ReceiveError(f"the sender's secret name is refused ({refused.reason}): pass --name") from None
        if not _SECRET_NAME.fullmatch(sender) or "//" in sender or sender.startswith("/") or _dots(sender):
            raise ReceiveError(f"the sender's secret name {sender!r} is not a usable secret name: pass --name")
        name, origin = prefix + sender, "the received name"
    else:
        origin = "--name"
    if not _SECRET_NAME.fullmatch(name):
        raise ReceiveError(
            f"{origin} {name!r} is not a Secrets Manager name (1-512 of A-Z a-z 0-9 / _ + = . @ -)", Exit.USAGE
        )
    kind = internal_kind(name.split("/", 1)[0], name)
    if kind is not None:
        raise ReceiveError(
            f"{origin} {name!r} is refused: it is shaped like credport's own secret <prefix>/{kind.suffix}"
            " (never overwritten by a received file): choose another --name or --prefix",
            Exit.USAGE,
        )
    managed = _managed_namespace(name)
    if origin != "--name" and managed is not None:
        raise ReceiveError(
            f"{origin} {name!r} is refused: it falls under <prefix>/{managed}, a name-space credport serves or"
            " imports into; a received file lands there only under a --name you write in full",
            Exit.USAGE,
        )
    return name


def _dots(name: str) -> bool:
    return any(part in (".", "..") for part in name.split("/"))


def _managed_namespace(name: str) -> str | None:
    """The managed name-space (``<prefix>/autoid/``, ``<prefix>/imported/``) ``name`` falls in, for any prefix."""
    first, _, rest = name.partition("/")
    return next((suffix for suffix in MANAGED_NAMESPACES if first and rest.startswith(suffix)), None)


def _check_prefix(prefix: str) -> None:
    """A receiving prefix is a name-space of the receiver's own: never one credport creates secrets in or serves
    from (nor a parent of one: for any deployment prefix, ``X/`` holds ``X/autoid/``), so no sender's name can land
    on a secret credport hands to workloads."""
    if not prefix or not prefix.endswith("/") or prefix.startswith("/") or not _SECRET_NAME.fullmatch(prefix):
        raise ReceiveError(
            f"--prefix {prefix!r} must be a Secrets Manager name prefix ending with '/' (not starting with one;"
            " 1-512 of A-Z a-z 0-9 / _ + = . @ -)",
            Exit.USAGE,
        )
    if "//" in prefix or _dots(prefix.rstrip("/")):
        raise ReceiveError(f"--prefix {prefix!r} has an empty, '.' or '..' segment", Exit.USAGE)
    deployment = prefix.split("/", 1)[0]
    reached = [kind.suffix for kind in reaching_kinds(deployment, prefix)]
    reached += [s for s in MANAGED_NAMESPACES if _reaches(f"{deployment}/{s}", prefix)]
    if reached:
        shown = ", ".join(f"<prefix>/{suffix}" for suffix in reached)
        raise ReceiveError(
            f"--prefix {prefix!r} is refused: names under it can be credport's own ({shown}); choose a prefix of"
            f" your own, two segments or more (default {DEFAULT_RECEIVED_PREFIX})",
            Exit.USAGE,
        )


def _reaches(namespace: str, prefix: str) -> bool:
    return namespace.startswith(prefix) or prefix.startswith(namespace)


def store(
    document: dict[str, Any],
    *,
    name: str | None = None,
    prefix: str = DEFAULT_RECEIVED_PREFIX,
    overwrite: bool = False,
    profile: str | None = None,
    region: str | None = None,
) -> tuple[str, str]:
    """Create the secret. An existing one already holding this value is the answer (storing a file twice is a
    no-op: the value is compared, never the sender's version id, which a sender chooses); else it gets a new version
    only with ``overwrite``, which needs ``name``: a secret the receiver did not name in full is never replaced."""
    import boto3

    if overwrite and name is None:
        raise ReceiveError("--overwrite needs --name: only a secret you name in full is ever replaced", Exit.USAGE)
    secret_name = stored_name(document, name=name, prefix=prefix)
    value = str(document["value"])
    client = boto3.session.Session(profile_name=profile, region_name=region).client("secretsmanager")
    try:  # no ClientRequestToken of ours: botocore makes a fresh one, so no earlier version can be matched
        response = client.create_secret(Name=secret_name, SecretString=value)
        return str(response["ARN"]), str(response["VersionId"])
    except client.exceptions.ResourceExistsException:
        pass
    held = _holding(client, secret_name, value)
    if held is not None:
        return held
    if name is None:
        raise ReceiveError(
            f"the secret {secret_name!r} already exists and a received name never replaces one: to replace it,"
            f" pass --name {secret_name} --overwrite",
            Exit.USAGE,
        )
    if not overwrite:
        raise ReceiveError(
            f"the secret {secret_name!r} already exists: pass --overwrite to add this as its new version (the"
            " current one is kept as AWSPREVIOUS), or choose another --name",
            Exit.USAGE,
        )
    response = client.put_secret_value(SecretId=secret_name, SecretString=value)
    return str(response["ARN"]), str(response["VersionId"])


def _holding(client: Any, secret_name: str, value: str) -> tuple[str, str] | None:
    """(ARN, version id) of ``secret_name``'s current version if it holds ``value`` already (compared in constant
    time); None otherwise, or when it cannot be read (then it is treated as another value)."""
    from botocore.exceptions import ClientError

    try:
        current = client.get_secret_value(SecretId=secret_name, VersionStage="AWSCURRENT")
    except ClientError:
        return None
    held = current.get("SecretString")
    if isinstance(held, str) and hmac.compare_digest(held.encode(), value.encode()):
        return str(current["ARN"]), str(current["VersionId"])
    return None
