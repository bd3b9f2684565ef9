"""Workload side of auto-id: a bundle file (entropy, server keys, endpoint) in, one credential out.

The bundle is one JSON file, 0600, replaced atomically: the entropy generation and its number always change
together, and a newer generation received from the server is saved before the credential is handed on, so
the next start uses it. Where the bundle cannot be rewritten (a read-only ``/etc/credport``) the news goes to a
state file instead (:mod:`client.autoid_state`), and the credential is handed on all the same; a state file only
ever reaches the bundle after the server accepted its generation. Concurrent runs
(an SDK calling ``credential_process`` from several processes) serialise request and save on a lock per bundle
and never replace a newer generation with an older one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from chalicelib import base64url
from chalicelib.autoid.protocol import ENTROPY_BYTES, Want, build_request
from chalicelib.envelope import EnvelopeError, RecipientKey, decrypt_direct, seal
from chalicelib.untrusted import loads
from client.errors import CliError, Exit
from client.private_file import write_private_json

__all__ = [
    "DEFAULT_BUNDLE",
    "Bundle",
    "BundleError",
    "credential_process",
    "fetch",
    "write_bundle",
]

DEFAULT_BUNDLE = Path(os.environ.get("CREDPORT_AUTOID_BUNDLE", Path.home() / ".credport" / "autoid.json"))
SERVER_KEY_BITS = 4096
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # an answer carrying a new 1 MiB generation is about 1.9 MB
MAX_BUNDLE_BYTES = 4 * 1024 * 1024  # a 1 MiB generation is 1.4 MB of base64


class BundleError(CliError):
    """The bundle (or what the server sent for it) cannot be used; a configuration problem unless told otherwise."""

    exit_code = Exit.CONFIG


@dataclass(frozen=True)
class Bundle:
    client_id: str
    endpoint: str
    generation: int
    server_keys: dict[str, Any]
    entropy: bytes = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> Bundle:
        """The bundle at ``path``: a regular file (a directory, FIFO or device is a usage error, and a FIFO never
        blocks the call), 0600 or stricter."""
        from client.owned_files import Untrusted, read_regular

        try:
            data, status = read_regular(path, max_bytes=MAX_BUNDLE_BYTES)
        except Untrusted as error:
            raise BundleError(error.strerror or str(error), Exit.USAGE) from None
        except ValueError:
            raise BundleError(f"{path} is not an auto-id bundle (it is too large)") from None
        if status.st_mode & 0o077:
            raise BundleError(f"{path} is readable by others; it must be 0600")
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: bytes, path: Path) -> Bundle:
        try:
            document = json.loads(data)
            entropy = _unb64(document["entropy"])
            bundle = cls(
                client_id=str(document["client_id"]),
                endpoint=str(document["endpoint"]),
                generation=int(document["gen"]),
                server_keys=dict(document["server_keys"]),
                entropy=entropy,
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BundleError(f"{path} is not an auto-id bundle") from None
        if len(entropy) != ENTROPY_BYTES:
            raise BundleError(f"{path} holds {len(entropy)} bytes of entropy, not {ENTROPY_BYTES}")
        return bundle

    def document(self) -> dict[str, Any]:
        return {
            "v": 1,
            "client_id": self.client_id,
            "endpoint": self.endpoint,
            "gen": self.generation,
            "server_keys": self.server_keys,
            "entropy": base64url.text(self.entropy),
        }

    def server_key(self) -> RecipientKey:
        """The current server key from the pinned JWKS; its kid must be its own RFC 7638 thumbprint."""
        kid = self.server_keys.get("current_kid")
        for jwk in self.server_keys.get("keys", []):
            if jwk.get("kid") != kid:
                continue
            try:
                public = RSAKey.import_key({k: v for k, v in jwk.items() if k in ("kty", "n", "e")})
            except (JoseError, ValueError, TypeError):
                break
            if public.thumbprint() != kid or public.raw_value.key_size < SERVER_KEY_BITS:
                break
            return RecipientKey(kid=kid, public=public)
        raise BundleError("the bundle's server keys hold no usable current RSA-4096 key")


def write_bundle(path: Path, bundle: Bundle) -> None:
    """Atomically replace the bundle; 0600 from its first byte (the entropy is the client's credential)."""
    write_private_json(path, bundle.document(), prefix=".autoid-")


def fetch(
    path: Path,
    want: Want,
    *,
    endpoint: str | None = None,
    timeout: float = 10,
    state_dir: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One credential for the bundle at ``path``; a newer generation or server JWKS in the answer is saved (in the
    bundle, else in the state directory: :mod:`client.autoid_state`), and so is a state the server accepted. The
    request and the save run under the bundle's lock, so concurrent calls never both download a generation, nor
    save an older one over a newer."""
    from client.autoid_state import BundleFiles, default_state_dir, stderr_warning

    files = BundleFiles(path, state_dir or default_state_dir(), warn or stderr_warning)
    return files.call(lambda bundle: _request(bundle, want, endpoint=endpoint, timeout=timeout))


def _request(bundle: Bundle, want: Want, *, endpoint: str | None, timeout: float) -> dict[str, Any]:
    from client.aws_call import CallError
    from client.http import bounded_request

    document, response_key = build_request(bundle.client_id, bundle.generation, bundle.entropy, want)
    envelope = seal(bundle.server_key(), json.dumps(document).encode())
    url = (endpoint or bundle.endpoint).rstrip("/") + "/auto-id"
    response = bounded_request("POST", url, json={"jwe": envelope}, timeout=timeout, max_bytes=MAX_ANSWER_BYTES)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code != 200:
        raise CallError.of(response, body)
    try:
        answer = loads(decrypt_direct(body["jwe"], response_key, max_bytes=MAX_ANSWER_BYTES))
    except (EnvelopeError, KeyError, TypeError, ValueError):  # UntrustedInput is a ValueError
        raise BundleError("the server's answer could not be opened", Exit.UNAVAILABLE) from None
    if not isinstance(answer, dict):
        raise BundleError("the server's answer could not be opened", Exit.UNAVAILABLE)
    return answer


def credential_process(answer: dict[str, Any]) -> dict[str, Any]:
    """The AWS SDK ``credential_process`` document: from assumed-role credentials, or from a secret holding
    ``{"AccessKeyId", "SecretAccessKey"}`` (optionally ``SessionToken``, ``Expiration``) or ``"AKID,SECRET"``."""
    if "credentials" in answer:
        creds = answer["credentials"]
        return {
            "Version": 1,
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"],
            "Expiration": creds["Expiration"],
        }
    value = answer.get("secret", {}).get("value")
    if not isinstance(value, str):
        raise BundleError("the secret is not text, so it cannot be AWS credentials")
    result: dict[str, Any] = {"Version": 1}
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and {"AccessKeyId", "SecretAccessKey"} <= set(parsed):
        result.update(
            {k: parsed[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration") if k in parsed}
        )
    elif parsed is None and value.count(",") == 1 and all(part.strip() for part in value.split(",")):
        access_key, secret_key = (part.strip() for part in value.split(","))
        result.update(AccessKeyId=access_key, SecretAccessKey=secret_key)
    else:
        raise BundleError('the secret holds neither {"AccessKeyId", "SecretAccessKey"} nor "AKID,SECRET"')
    return result


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
