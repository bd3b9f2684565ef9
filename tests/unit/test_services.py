"""The composition root without AWS: what it builds when, and how the process's one instance is held."""

from __future__ import annotations

import functools
import json
import threading
from types import SimpleNamespace
from typing import Any

from chalicelib.aws import AwsServices, ClientFactory
from chalicelib.services import LazyServices, Services
from chalicelib.tokens.service import TokenService
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
    """Every enabled algorithm's key ring: each algorithm has a key set of its own, all rotated by one run."""
    root = services()
    dropped: list[str] = []
    keyrings = {alg: SimpleNamespace(invalidate=functools.partial(dropped.append, alg)) for alg in ("RS256", "ES384")}
    tokens = SimpleNamespace(keyrings=keyrings)
    tokens.invalidate = functools.partial(TokenService.invalidate, tokens)  # type: ignore[arg-type]  # the real one
    root.__dict__["tokens"] = tokens  # as if built
    root.key_events.deliver(json.dumps({"type": "signing-key-rotated"}))
    assert dropped == ["RS256", "ES384"]


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


def test_a_capability_is_built_once_when_two_threads_ask_at_once(monkeypatch: Any) -> None:
    """The local stack serves on threads: two first requests must share one capability (one cache of keys, the
    one a key event invalidates), whatever Python's cached_property does about locking."""
    root = services()
    built: list[object] = []
    started = threading.Barrier(2)
    original = Services.role_arns._build  # type: ignore[attr-defined]

    def slow_build(instance: Services) -> Any:
        built.append(instance)
        threading.Event().wait(0.05)  # wide window: the second thread arrives while the first builds
        return original(instance)

    monkeypatch.setattr(Services.role_arns, "_build", slow_build)
    results: list[object] = []

    def ask() -> None:
        started.wait()
        results.append(root.role_arns)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert results[0] is results[1]


def test_a_session_key_event_drops_every_session_key_store_built() -> None:
    """The main service's two stores, and the one the auto-id function starts sessions with."""
    root = services()
    dropped: list[str] = []

    def store(name: str) -> SimpleNamespace:
        return SimpleNamespace(invalidate=lambda: dropped.append(name))

    root.__dict__["sessions"] = SimpleNamespace(keys=store("main"), autoid_keys=store("autoid"))  # as if built
    root.__dict__["autoid_sessions"] = SimpleNamespace(keys=store("autoid-function"))
    root.key_events.deliver(json.dumps({"type": "session-key-rotated"}))
    assert sorted(dropped) == ["autoid", "autoid-function", "main"]
