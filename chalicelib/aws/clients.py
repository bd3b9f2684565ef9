"""Lazily created, shared boto3 clients.

No client exists until a handler first needs one, so importing the app stays cheap and tests can start
moto before any client is made. Endpoints come from botocore's own ``AWS_ENDPOINT_URL`` support, and
retries from botocore's ``standard`` retry mode: no hand-written retry loops anywhere.

Credentials: on AWS, botocore's own chain (each function runs in its own process, with its own role's
credentials). The one seam, ``ClientFactory(credentials=...)``, is for a process that runs several functions (the
local stack, the IAM-enforced tests): a botocore credentials object read at every signing, which signs as the role
of :data:`running_function`, the function the current invocation runs as (set per invocation, see
:func:`running_as`; the invocation middleware of chalicelib.observability sets it from the Lambda context).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["ClientFactory", "ClientOptions", "LazyClient", "running_as", "running_function"]

# The app function the current invocation runs as (chalice's name for it: api_handler, bearer, auto_id, ...).
running_function: ContextVar[str | None] = ContextVar("credport_running_function", default=None)


@contextlib.contextmanager
def running_as(function: str | None) -> Iterator[None]:
    """Run the body as one invocation of ``function`` (a context variable: each thread and task has its own)."""
    token = running_function.set(function)
    try:
        yield
    finally:
        running_function.reset(token)


@dataclass(frozen=True)
class ClientOptions:
    max_attempts: int = 3  # in all, the first request included
    timeout: float = 5.0
    region: str | None = None


class ClientFactory:
    """Creates each service's client once, on first use; safe to share between threads."""

    def __init__(self, options: ClientOptions | None = None, *, credentials: Any = None) -> None:
        self._options = options or ClientOptions()
        self._credentials = credentials  # a botocore Credentials object, or None: botocore's chain
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._session: Any = None

    @property
    def created(self) -> tuple[str, ...]:
        """Names of the services a client has been created for (tests prove laziness with it)."""
        return tuple(self._clients)

    def client(self, service: str) -> Any:
        existing = self._clients.get(service)
        if existing is not None:
            return existing
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._create(service)
            return self._clients[service]

    def client_as(self, service: str, access_key_id: str, secret_access_key: str, session_token: str) -> Any:
        """A new client (never shared) that signs with these temporary credentials instead of the function's."""
        return self._create(service, (access_key_id, secret_access_key, session_token))

    def _create(self, service: str, credentials: tuple[str, str, str] | None = None) -> Any:
        # botocore, not boto3: clients are all we use, and boto3's import (s3transfer and friends) would add
        # ~100 ms to every cold start. Imported here, so only code paths that call AWS pay for botocore.
        import botocore.session
        from botocore.config import Config

        if self._session is None:
            self._session = botocore.session.get_session()
            if self._credentials is not None:
                self._session.get_component("credential_provider").insert_before("env", _Given(self._credentials))
        config = Config(
            # total_max_attempts counts the first request; botocore's max_attempts would add one to it.
            retries={"mode": "standard", "total_max_attempts": self._options.max_attempts},
            connect_timeout=self._options.timeout,
            read_timeout=self._options.timeout,
            tcp_keepalive=True,
        )
        if service == "s3":
            # Presigned URLs must be SigV4: S3 refuses SigV2 for KMS-encrypted objects and for newer buckets.
            config = config.merge(Config(signature_version="s3v4"))
        if credentials is None:
            return self._session.create_client(service, region_name=self._options.region, config=config)
        key, secret, token = credentials
        return self._session.create_client(
            service,
            region_name=self._options.region,
            config=config,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )


class LazyClient:
    """One service's shared client as an adapter holds it: the factory creates the client at the first call made
    through it, not when the adapter is built. A cold start then pays (tens of milliseconds each) only for the clients
    its first request calls: the token service's key store holds a tagging adapter it uses only to make a key."""

    __slots__ = ("_factory", "_service")

    def __init__(self, factory: ClientFactory, service: str) -> None:
        self._factory = factory
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory.client(self._service), name)

    def __repr__(self) -> str:
        return f"LazyClient({self._service!r})"


class _Given:
    """The factory's credentials object as the first provider of botocore's chain (CredentialResolver asks each
    provider, by ``load``, for a credentials object; the signer then freezes it at every request)."""

    METHOD = "credport-given"

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials
