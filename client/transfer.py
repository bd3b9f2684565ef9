"""Receiving a secret someone sent you: download the sealed file, open it with your private key, keep it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from chalicelib.envelope import MAX_ENVELOPE_BYTES, EnvelopeError, open_envelope, private_key_from_pem
from chalicelib.untrusted import UntrustedInput, loads

__all__ = ["ReceiveError", "receive", "store"]


class ReceiveError(Exception):
    pass


def receive(url: str, private_pem: bytes, *, timeout: float = 30) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost"}):
        raise ReceiveError("the link must be https")
    response = requests.get(url, timeout=timeout, allow_redirects=False, stream=True)
    body = response.raw.read(MAX_ENVELOPE_BYTES + 1, decode_content=True)
    if response.status_code != 200:
        raise ReceiveError(f"the link answered HTTP {response.status_code} (expired?)")
    if len(body) > MAX_ENVELOPE_BYTES:
        raise ReceiveError("the file is too large")
    try:
        key = private_key_from_pem(private_pem)
        # Strict: a value with a lone surrogate would otherwise fail inside botocore when --store sends it.
        document = loads(open_envelope(body.decode("ascii", "replace"), {key.kid: key}).plaintext)
    except EnvelopeError as error:
        raise ReceiveError(f"the file cannot be opened with this key ({error.reason})") from None
    except UntrustedInput:
        raise ReceiveError("the file does not hold a credport secret") from None
    if not isinstance(document, dict) or not all(isinstance(document.get(k), str) for k in ("secret_name", "value")):
        raise ReceiveError("the file does not hold a credport secret")
    return document


def store(document: dict[str, Any], *, name: str | None = None, profile: str | None = None) -> tuple[str, str]:
    """Create the secret, or add a version; the sender's version id makes storing the same file idempotent."""
    import boto3

    client = boto3.session.Session(profile_name=profile).client("secretsmanager")
    secret_name = name or str(document["secret_name"])
    token = str(document["version_id"])
    try:
        response = client.create_secret(Name=secret_name, SecretString=document["value"], ClientRequestToken=token)
    except client.exceptions.ResourceExistsException:
        response = client.put_secret_value(
            SecretId=secret_name, SecretString=document["value"], ClientRequestToken=token
        )
    return str(response["ARN"]), str(response["VersionId"])
