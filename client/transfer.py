"""Receiving a secret someone sent you: download the sealed file, open it with your private key, keep it.

The name a secret is stored under is the receiver's choice, never the sender's alone: without ``--name`` the
sender's name (checked like any untrusted name) goes under a receiving prefix (``credport/received/`` by default),
and whatever the name, one shaped like a secret credport itself keeps (``<prefix>/session-key``,
``<prefix>/token-signing/…``: chalicelib/internal_secrets.py, for any deployment prefix, since this account's
deployments' prefixes are not known here) is refused. An existing secret gets a new version only with
``overwrite``; storing the same file again is a no-op (the sender's version id is the ClientRequestToken).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

import requests

from chalicelib.internal_secrets import internal_kind
from chalicelib.untrusted import TextKind, UntrustedInput, check_text, loads
from client.errors import CliError, Exit
from client.failures import safe_url

__all__ = ["DEFAULT_RECEIVED_PREFIX", "ReceiveError", "receive", "store", "stored_name"]

DEFAULT_RECEIVED_PREFIX = "credport/received/"
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")  # Secrets Manager's own rule (CreateSecret, Name)
_REQUEST_TOKEN = re.compile(r"[A-Za-z0-9-]{32,64}")  # a ClientRequestToken
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
    response = requests.get(url, timeout=timeout, allow_redirects=False, stream=True)
    body = response.raw.read(MAX_ENVELOPE_BYTES + 1, decode_content=True)
    if response.status_code != 200:
        found = _S3_ERROR.search(body[:4096])
        code = f", {found.group(1).decode()}" if found else ""
        exit_code = Exit.UNAVAILABLE if response.status_code >= 500 else Exit.REFUSED
        raise ReceiveError(
            f"the link ({safe_url(url)}) answered HTTP {response.status_code}{code}: it may have expired; ask the"
            " sender for a new one",
            exit_code,
        )
    if len(body) > MAX_ENVELOPE_BYTES:
        raise ReceiveError("the file is too large to be a credport envelope")
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
    naming the refused name) if it is not a Secrets Manager name or is shaped like one of credport's own secrets."""
    if name is None:
        if not _SECRET_NAME.fullmatch(prefix) or not prefix.endswith("/"):
            raise ReceiveError(f"--prefix {prefix!r} must be a Secrets Manager name prefix ending with '/'", Exit.USAGE)
        sender = str(document.get("secret_name", ""))
        try:
            check_text(sender, TextKind.NAME, max_chars=512)
        except UntrustedInput as refused:
            raise ReceiveError(f"the sender's secret name is refused ({refused.reason}): pass --name") from None
        if not _SECRET_NAME.fullmatch(sender) or ".." in sender or sender.startswith("/"):
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
    return name


def store(
    document: dict[str, Any],
    *,
    name: str | None = None,
    prefix: str = DEFAULT_RECEIVED_PREFIX,
    overwrite: bool = False,
    profile: str | None = None,
    region: str | None = None,
) -> tuple[str, str]:
    """Create the secret; add a version to an existing one only with ``overwrite``. The sender's version id makes
    storing the same file idempotent (the version already there is the answer)."""
    import boto3

    secret_name = stored_name(document, name=name, prefix=prefix)
    client = boto3.session.Session(profile_name=profile, region_name=region).client("secretsmanager")
    version = str(document.get("version_id", ""))
    if not _REQUEST_TOKEN.fullmatch(version):  # a file sealed by hand: the same file still stores once
        version = hashlib.sha256(f"{document['secret_name']}\0{document['value']}".encode()).hexdigest()[:64]
    try:
        response = client.create_secret(Name=secret_name, SecretString=document["value"], ClientRequestToken=version)
    except client.exceptions.ResourceExistsException:
        held = client.describe_secret(SecretId=secret_name)
        if version in held.get("VersionIdsToStages", {}):
            return str(held["ARN"]), version
        if not overwrite:
            raise ReceiveError(
                f"the secret {secret_name!r} already exists: pass --overwrite to add this as its new version (the"
                " current one is kept as AWSPREVIOUS), or choose another --name",
                Exit.USAGE,
            ) from None
        response = client.put_secret_value(
            SecretId=secret_name, SecretString=document["value"], ClientRequestToken=version
        )
    return str(response["ARN"]), str(response["VersionId"])
