"""The composition root: every capability of a process, wired in one place.

Why it exists: the capabilities (tokens, sessions, auto-id, transfer) never import each other and hold no
process-wide state; what one needs of another (auto-id starts sessions, sessions ask the auto-id registry whether a
client is in good standing, both resolve callers' roles alike), which handler serves which S3 prefix and who hears
which key event is decided here, and nowhere else, so the whole wiring reads top to bottom in this file.

Each capability is built on first use (:func:`functools.cached_property`): a cold start pays only for what its
first request needs, and importing the app creates no AWS client. :class:`LazyServices` holds the one instance of a
process (``app.services``); tests build their own :class:`Services` and install it (``app.services.use(...)``), the
local stack replaces the builder (``app.services.build_with(...)``), instead of resetting module caches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from chalicelib.aws import AwsServices
from chalicelib.aws.clients import ClientFactory, ClientOptions
from chalicelib.config import Settings, get_settings

# Each capability's modules are imported by the builder that needs them, not here: a cold start imports only what
# its first request builds (a token needs neither auto-id, nor transfer, nor the S3 router, nor the recipient keys,
# and their imports cost tens of milliseconds). The names below are for the type checker only.
if TYPE_CHECKING:
    from chalicelib.autoid.clients import ClientRegistry
    from chalicelib.autoid.scheduled import ScheduledRotation
    from chalicelib.autoid.scope import ServingScope
    from chalicelib.autoid.service import AutoIdService
    from chalicelib.events.key_events import KeyEventBus
    from chalicelib.events.s3_objects import S3ObjectRouter
    from chalicelib.keys.recipient import RecipientKeyStore
    from chalicelib.role_arns import RoleArns
    from chalicelib.sessions.issuing import AutoIdSessions
    from chalicelib.sessions.service import SessionService
    from chalicelib.tokens.service import TokenService
    from chalicelib.transfer.importer import Importer
    from chalicelib.transfer.requests import TransferRequests
    from chalicelib.transfer.sending import Sender

__all__ = ["LazyServices", "Services", "capability"]

T = TypeVar("T")


class capability(Generic[T]):
    """``functools.cached_property`` that builds under the root's lock: the local stack serves requests on threads,
    and since Python 3.12 cached_property no longer locks, so two first requests could each build a capability
    (two caches of the same keys, one never invalidated). Re-entrant: building one capability builds others. Once
    built, the value sits in the instance's ``__dict__`` and is read with no lock and no call at all."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> capability[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object, owner: type | None = None) -> T | capability[T]:
        if instance is None:
            return self
        built: dict[str, Any] = instance.__dict__
        if self._name in built:
            return cast(T, built[self._name])
        with cast(Services, instance)._building:
            if self._name not in built:
                built[self._name] = self._build(instance)
            return cast(T, built[self._name])


class Services:
    """One process's capabilities over one set of settings and AWS adapters (tests inject ``clock``)."""

    def __init__(self, settings: Settings, aws: AwsServices, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.aws = aws
        self.clock = clock
        self._building = threading.RLock()

    @classmethod
    def from_environment(cls, *, credentials: object = None, clock: Callable[[], float] = time.time) -> Services:
        """As a Lambda function runs: the settings of its environment, AWS through botocore's credential chain.
        ``credentials`` (a botocore credentials object) is for a process running several functions (the local
        stack signs each invocation as its function's role, see chalicelib.aws.clients); never set on AWS."""
        settings = get_settings()
        options = ClientOptions(settings.aws_max_attempts, settings.aws_timeout)
        return cls(settings, AwsServices(ClientFactory(options, credentials=credentials)), clock)

    def built(self, name: str) -> bool:
        """Whether the capability ``name`` exists yet: a key event drops caches only of what was built, and
        delivering one never builds anything."""
        return name in self.__dict__

    # --- shared between capabilities ------------------------------------------------------------------------------

    @capability
    def role_arns(self) -> RoleArns:
        """Callers' roles, resolved to their real ARNs: the same cache serves tokens and sessions."""
        from chalicelib.role_arns import role_arns_for

        return role_arns_for(self.settings, self.aws)

    @capability
    def autoid_registry(self) -> ClientRegistry:
        from chalicelib.autoid.clients import ClientRegistry

        s, r = self.settings, self.settings.resources
        return ClientRegistry(
            self.aws.table(r.state_table),
            self.aws.s3,
            bucket=r.transfer_bucket,
            kms_key_id=r.data_key_arn,
            grace_period=s.autoid_grace_period,
            scope=self._autoid_scope,
            clock=self.clock,
        )

    @capability
    def _autoid_scope(self) -> ServingScope:
        from chalicelib.autoid.scope import ServingScope

        return ServingScope(self.settings.prefix, self.settings.autoid_serving_prefixes)

    # --- tokens -------------------------------------------------------------------------------------------------

    @capability
    def tokens(self) -> TokenService:
        from chalicelib.org_paths import org_paths_for
        from chalicelib.tokens.service import TokenService

        org_paths = org_paths_for(self.settings, self.aws)
        return TokenService(
            self.settings, self.aws, roles=self.role_arns, ou_paths=org_paths.ou_path if org_paths else None
        )

    # --- sessions -----------------------------------------------------------------------------------------------

    @capability
    def sessions(self) -> SessionService:
        """Both session keys; auto-id sessions are checked against the auto-id registry's client records, cached
        no longer than the session keys."""
        from chalicelib.autoid.clients import ACTIVE
        from chalicelib.sessions.revocation import CachedClientStanding
        from chalicelib.sessions.service import SessionService

        standing = CachedClientStanding(self.autoid_registry, active_status=ACTIVE, clock=self.clock)
        return SessionService(self.settings, self.aws, autoid_clients=standing, roles=self.role_arns, clock=self.clock)

    # --- auto-id ------------------------------------------------------------------------------------------------

    @capability
    def autoid_server_keys(self) -> RecipientKeyStore:
        from chalicelib.keys.recipient import SERVER_KEYS, RecipientKeyStore

        return RecipientKeyStore(
            self.aws.secrets,
            self.settings.resources.autoid_key_secret_arn,
            SERVER_KEYS,
            grace_period=self.settings.autoid_grace_period,
            clock=self.clock,
        )

    @capability
    def autoid(self) -> AutoIdService:
        """The unauthenticated auto-id function's service. It starts sessions with the auto-id session key only:
        nothing built for it can read the main session key (or start another kind of session)."""
        from chalicelib.autoid.service import AutoIdService

        s, r = self.settings, self.settings.resources
        return AutoIdService(
            server_keys=self.autoid_server_keys,
            registry=self.autoid_registry,
            nonces=self.aws.table(r.state_table),
            secrets=self.aws.secrets,
            sts=self.aws.sts,
            start_session=self.autoid_sessions.start,
            scope=self._autoid_scope,
            credentials_ttl=s.autoid_credentials_ttl,
            clock=self.clock,
        )

    @capability
    def autoid_sessions(self) -> AutoIdSessions:
        """What auto-id gets of sessions: starting an auto-id client's session, with the auto-id session key only."""
        from chalicelib.sessions.issuing import AutoIdSessions

        return AutoIdSessions(self.settings, self.aws.secrets, clock=self.clock)

    @capability
    def autoid_rotation(self) -> ScheduledRotation:
        from chalicelib.autoid.scheduled import ScheduledRotation

        r = self.settings.resources
        return ScheduledRotation(
            self.autoid,
            self.aws.s3,
            self.aws.sns,
            public_bucket=r.public_bucket,
            key_events_topic=r.key_events_topic_arn,
        )

    # --- transfer -----------------------------------------------------------------------------------------------

    @capability
    def import_keys(self) -> RecipientKeyStore:
        from chalicelib.keys.recipient import IMPORT_KEY, RecipientKeyStore

        # No grace period: the previous import key (AWSPREVIOUS, a key rotated by hand) opens files as long as the
        # secret keeps it, as it always has.
        return RecipientKeyStore(self.aws.secrets, self.settings.resources.import_key_secret_arn, IMPORT_KEY)

    @capability
    def importer(self) -> Importer:
        from chalicelib.transfer.fates import ObjectFates
        from chalicelib.transfer.importer import Importer

        s, aws = self.settings, self.aws
        return Importer(
            aws.s3,
            aws.secrets,
            self.import_keys,
            bucket=s.resources.transfer_bucket,
            name_prefix=s.transfer_import_prefix,
            kms_key_id=s.resources.data_key_arn,
            fates=ObjectFates(aws.table(s.resources.state_table)),
        )

    @capability
    def sender(self) -> Sender:
        from chalicelib.aws.s3 import ObjectStore
        from chalicelib.transfer.fates import ObjectFates
        from chalicelib.transfer.links import LinkSigner
        from chalicelib.transfer.sending import Sender

        s, aws, r = self.settings, self.aws, self.settings.resources
        return Sender(
            aws.s3,
            aws.secrets,
            aws.table(r.state_table),
            aws.sns,
            bucket=r.transfer_bucket,
            prefix=s.prefix,
            notify_topic=r.notify_topic_arn,
            key_events_topic=r.key_events_topic_arn,
            links=LinkSigner(
                aws.sts,
                r.link_signer_role_arn,
                lambda c: ObjectStore(
                    aws.factory.client_as("s3", c.access_key_id, c.secret_access_key, c.session_token)
                ),
            ),
            link_ttl=s.transfer_link_ttl,
            kms_key_id=r.data_key_arn,
            fates=ObjectFates(aws.table(r.state_table)),
        )

    @capability
    def transfer(self) -> TransferRequests:
        from chalicelib.transfer.requests import TransferRequests

        return TransferRequests(
            importer=lambda: self.importer,
            sender=lambda: self.sender,
            link_store=lambda: self.aws.s3,
            bucket=self.settings.resources.transfer_bucket,
            rotation_days=self.settings.transfer_rotation_days,
        )

    # --- events: the one place S3 routes and key-event subscriptions are made --------------------------------------

    @capability
    def s3_routes(self) -> S3ObjectRouter:
        from chalicelib.events.s3_objects import S3ObjectRouter
        from chalicelib.transfer.importer import INBOX
        from chalicelib.transfer.sending import CLIENTS

        router = S3ObjectRouter()  # TransferRequests is providers only: registering builds no importer or sender
        router.register(INBOX, self.transfer.on_inbox_object)
        router.register(CLIENTS, self.transfer.on_client_object)
        return router

    @capability
    def key_events(self) -> KeyEventBus:
        from chalicelib.events.key_events import KeyEventBus

        bus = KeyEventBus()
        for event_type in ("signing-key-rotated", "signing-key-revoked"):
            bus.subscribe(event_type, self._signing_key_changed)
        bus.subscribe("session-key-rotated", self._session_key_rotated)
        bus.subscribe("autoid-keys-rotated", self._autoid_keys_rotated)
        return bus

    def _signing_key_changed(self, _event: Mapping[str, Any]) -> None:
        if self.built("tokens"):
            self.tokens.invalidate()

    def _session_key_rotated(self, _event: Mapping[str, Any]) -> None:
        from chalicelib.sessions.service import key_rotation_seen as session_key_rotation_seen

        # Every store holding a session key: the main service's two, and the one the auto-id function signs with.
        stores = [*((self.sessions.keys, self.sessions.autoid_keys) if self.built("sessions") else ())]
        if self.built("autoid_sessions"):
            stores.append(self.autoid_sessions.keys)
        session_key_rotation_seen(stores)

    def _autoid_keys_rotated(self, _event: Mapping[str, Any]) -> None:
        from chalicelib.autoid.scheduled import key_rotation_seen as autoid_key_rotation_seen

        # Counted and logged even where no auto-id service was built (nothing to drop then).
        autoid_key_rotation_seen(self.autoid if self.built("autoid") else None)


class LazyServices:
    """The process's one :class:`Services`, built by ``build`` on first call (thread-safe: the local stack serves
    requests on several threads). ``use`` installs another (tests); ``build_with`` replaces the
    builder; ``on_serve`` hooks run on every instance this starts serving (the end-to-end tests' plugin wires its
    own S3 routes and key-event listeners into the app's with it)."""

    def __init__(self, build: Callable[[], Services]) -> None:
        self._build = build
        self._services: Services | None = None
        self._hooks: list[Callable[[Services], None]] = []
        self._lock = threading.Lock()

    def __call__(self) -> Services:
        services = self._services
        if services is not None:
            return services
        with self._lock:
            if self._services is None:
                self._services = self._serving(self._build())
            return self._services

    @property
    def built(self) -> Services | None:
        return self._services

    def use(self, services: Services | None) -> None:
        """Serve ``services`` from now on (None: build a new one on the next call)."""
        with self._lock:
            self._services = None if services is None else self._serving(services)

    def build_with(self, build: Callable[[], Services]) -> None:
        """Build with ``build`` from now on; the instance served so far is dropped."""
        with self._lock:
            self._build, self._services = build, None

    def on_serve(self, hook: Callable[[Services], None]) -> None:
        with self._lock:
            self._hooks.append(hook)
            if self._services is not None:
                hook(self._services)

    def _serving(self, services: Services) -> Services:
        for hook in self._hooks:
            hook(services)
        return services
