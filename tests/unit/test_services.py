"""The composition root without AWS: what it builds when, and how the process's one instance is held."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

from chalicelib.aws import AwsServices, ClientFactory
from chalicelib.services import LazyServices, Services
from chalicelib.transfer import CLIENTS, INBOX
from tests.unit.test_config import VALID


class NoClients(ClientFactory):
    """A factory that refuses to create any client: building a capability may not call AWS."""

    def _create(self, service: str, credentials: Any = None) -> Any:
        raise AssertionError(f"a {service} client was created")


def services() -> Services:
    from chalicelib.config import Settings

    return Services(Settings.from_env(VALID), AwsServices(NoClients()))


def test_a_root_builds_nothing_until_asked() -> None:
    root = services()
    assert not [name for name in ("tokens", "sessions", "autoid", "importer", "sender") if root.built(name)]


def test_routes_and_key_events_are_wired_without_building_a_capability() -> None:
    root = services()
    assert set(root.s3_routes.prefixes) == {INBOX, CLIENTS}
    for event_type in ("signing-key-rotated", "signing-key-revoked", "session-key-rotated", "autoid-keys-rotated"):
        assert root.key_events.deliver(json.dumps({"type": event_type})) == 1
    assert not [name for name in ("tokens", "sessions", "autoid", "importer", "sender") if root.built(name)]


def test_a_key_event_drops_the_cached_keys_of_a_built_capability() -> None:
    root = services()
    dropped: list[str] = []
    keyring = SimpleNamespace(invalidate=lambda: dropped.append("t"))
    root.__dict__["tokens"] = SimpleNamespace(keyring=keyring)  # as if built
    root.key_events.deliver(json.dumps({"type": "signing-key-rotated"}))
    assert dropped == ["t"]


def test_capabilities_share_what_the_root_shares() -> None:
    root = services()
    assert root.role_arns is root.role_arns
    assert root.transfer is root.transfer


def test_lazy_services_build_once_install_and_rebuild() -> None:
    built: list[Services] = []

    def build() -> Services:
        built.append(services())
        return built[-1]

    lazy = LazyServices(build)
    assert lazy.built is None
    threads = [threading.Thread(target=lazy) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert lazy() is built[0]
    assert lazy.built is built[0]

    mine = services()
    lazy.use(mine)
    assert lazy() is mine
    lazy.use(None)
    assert lazy() is built[1]
    lazy.build_with(lambda: mine)
    assert lazy.built is None
    assert lazy() is mine


def test_serve_hooks_run_on_every_instance_served() -> None:
    lazy, seen = LazyServices(services), list[Services]()
    first = lazy()
    lazy.on_serve(seen.append)  # applied to the one already served
    other = services()
    lazy.use(other)
    lazy.use(None)
    third = lazy()
    assert seen == [first, other, third]
