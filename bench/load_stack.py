"""The load run's calls on its own local stack (started by :mod:`local.launcher`): SigV4 signing, the JWKS as
a relying party holds it, sessions, and the auto-id client it enrols (see :mod:`bench.load`)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.autoid.protocol import Want
from chalicelib.tokens.exceptions import TokenRejected
from chalicelib.tokens.verify import TokenVerifier
from client.autoid import fetch
from local.launcher import REPO_ROOT, RunningStack

__all__ = [
    "BIN",
    "REPO_ROOT",
    "TIMEOUT",
    "Jwks",
    "Prepared",
    "Signer",
    "enroll_autoid",
    "prepare",
    "run_command",
    "start_session",
]

BIN = Path(sys.executable).parent
TIMEOUT = 30.0


# Calls ----------------------------------------------------------------------------------------------------


def kid_of(token: str) -> str:
    header = token.split(".", 1)[0]
    document = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return str(document.get("kid"))


class Signer:
    def __init__(self, credentials: Credentials, region: str) -> None:
        self._auth = SigV4Auth(credentials, "execute-api", region)

    def headers(self, method: str, url: str) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=b"")
        self._auth.add_auth(request)
        return dict(request.headers)


class Jwks:
    """A relying party's copy of the stack's JWKS, refetched every ``refresh_every`` seconds (a cache always
    younger than one rotation), verified with credport's own verifier.

    A key is published one rotation before it signs, so a token must verify against the copy held when it
    was requested. One that verifies only against a JWKS fetched afterwards was signed by a key published
    late: a relying party with a fresh cache refuses it, so it counts as a rejected valid token too.
    """

    def __init__(self, api: str, *, refresh_every: float = 1.0) -> None:
        self._api = api
        self._refresh_every = refresh_every
        self._stop = threading.Event()
        self.fetches = 0
        self.fetch_errors: list[dict[str, Any]] = []
        self._verifier: TokenVerifier = self._load()
        self._thread = threading.Thread(target=self._refresh, name="jwks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT + 5)

    def _load(self) -> TokenVerifier:
        response = requests.get(f"{self._api}/.well-known/jwks.json", timeout=TIMEOUT)
        response.raise_for_status()
        self.fetches += 1
        return TokenVerifier(response.json(), issuer=self._api)

    def _refresh(self) -> None:
        while not self._stop.wait(self._refresh_every):
            try:
                self._verifier = self._load()
            except (requests.RequestException, ValueError) as error:
                failure = {"op": "jwks", "at": round(time.time(), 3), "rejected": False}
                self.fetch_errors.append({**failure, "error": f"GET /.well-known/jwks.json: {error!r}"[:300]})

    def snapshot(self) -> TokenVerifier:
        return self._verifier

    def refused(self, token: str, held: TokenVerifier) -> str | None:
        """Why ``token`` is refused by ``held`` (the copy taken before it was requested); None if it is not."""
        try:
            held.verify(token)
            return None
        except TokenRejected as first:
            reason = str(first)
        try:
            self._load().verify(token)
        except TokenRejected as second:
            return f"the issued token does not verify: {second}"
        return f"signed by key {kid_of(token)}, absent from the JWKS served before it was requested ({reason})"


def start_session(api: str, signer: Signer, http: requests.Session) -> str:
    url = f"{api}/session"
    response = http.post(url, headers=signer.headers("POST", url), timeout=TIMEOUT)
    if response.status_code != 200:
        raise RuntimeError(f"POST /session -> {response.status_code} {response.text[:200]}")
    return str(response.json()["token"])


# Preparing ------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    client_id: str
    secret_id: str
    secret_value: str
    bundles: list[Path]
    sessions: list[str]
    session_secret: str


def run_command(stack: RunningStack, args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO_ROOT, env=stack.env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def enroll_autoid(stack: RunningStack, client_id: str, bundle: Path, *policy: str) -> None:
    """The operator's enrolment, ``credport-admin autoid enroll CLIENT_ID POLICY... --out BUNDLE --local``: the
    client's bundle (0600) at ``bundle``; ``policy`` is what it may get (``--secret NAME``, ``--role ARN``)."""
    command = [str(BIN / "credport-admin"), "autoid", "enroll", client_id, *policy, "--out", str(bundle), "--local"]
    result = run_command(stack, command)
    if result.returncode != 0:
        raise RuntimeError(f"credport-admin autoid enroll failed: {result.stderr.strip()}")


def prepare(stack: RunningStack, workdir: Path, workers: int, signer: Signer) -> Prepared:
    """A secret, an auto-id client allowed to read it (a bundle per worker), a session per worker; one warm-up
    call of each kind (a container's first call loads its keys: not what a load run measures)."""
    prefix = str(stack.info["prefix"])
    secret_id = f"{prefix}/autoid/load-{uuid.uuid4().hex[:8]}"
    secret_value = f"load-{uuid.uuid4().hex}"
    stack.client("secretsmanager").create_secret(Name=secret_id, SecretString=secret_value)
    client_id = f"load-{uuid.uuid4().hex[:10]}"
    enrolled_dir = workdir / "enrolled"
    enrolled_dir.mkdir(mode=0o700)
    enrolled = enrolled_dir / "bundle.json"
    enroll_autoid(stack, client_id, enrolled, "--secret", secret_id)
    answer = fetch(enrolled, Want(secret_id=secret_id), timeout=TIMEOUT)
    if answer.get("secret", {}).get("value") != secret_value:
        raise RuntimeError("the warm-up auto-id call did not return the secret")
    bundles = []
    for index in range(workers):
        home = workdir / f"worker-{index}"
        home.mkdir(mode=0o700)
        bundles.append(Path(shutil.copy2(enrolled, home / "bundle.json")))
    http = requests.Session()
    url = f"{stack.api}/token"
    warm = http.get(url, headers=signer.headers("GET", url), timeout=TIMEOUT)
    if warm.status_code != 200:
        raise RuntimeError(f"the warm-up GET /token answered {warm.status_code}: {warm.text[:200]}")
    sessions = [start_session(stack.api, signer, http) for _ in range(workers)]
    # The load's sessions are IAM callers' sessions, signed with the main session key (the auto-id key signs only
    # auto-id clients' sessions): that is the key the run rotates under load.
    session_secrets = [name for name in stack.info["rotations"] if name.endswith("/session-key")]
    if len(session_secrets) != 1:
        raise RuntimeError(f"expected one main session-key rotation, the stack has {stack.info['rotations']}")
    return Prepared(client_id, secret_id, secret_value, bundles, sessions, session_secrets[0])


# Running --------------------------------------------------------------------------------------------------
