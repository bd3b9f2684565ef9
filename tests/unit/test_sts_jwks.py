"""The embedded STS's default key resolver: OIDC discovery then JWKS, from loopback addresses only, bounded,
no redirects, briefly cached (local/iam/jwks.py). Each test runs a test IdP on 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import urllib3.util.connection

from local.iam.jwks import MAX_DOCUMENT_BYTES, IdpUnreachable, KeysUnavailable, LoopbackJwksResolver
from tests.idp import served
from tests.support import Clock


def test_discovery_then_jwks_then_the_cache() -> None:
    clock = Clock(1000.0)
    resolver = LoopbackJwksResolver(ttl=30, min_refresh=1, clock=clock)
    with served() as (idp, _):
        assert resolver(idp.issuer) == idp.jwks
        assert idp.hits == 2  # the discovery document, then the JWKS it names
        clock.advance(29)
        assert resolver(idp.issuer) == idp.jwks
        assert idp.hits == 2  # cached
        clock.advance(1)
        resolver(idp.issuer)
        assert idp.hits == 4  # the cache lasts ttl seconds


def test_refresh_after_a_rotation_is_rate_limited() -> None:
    clock = Clock(1000.0)
    resolver = LoopbackJwksResolver(ttl=30, min_refresh=1, clock=clock)
    with served() as (idp, _):
        resolver(idp.issuer)
        assert resolver.refresh(idp.issuer) is False  # the keys are younger than min_refresh: kept
        clock.advance(1)
        assert resolver.refresh(idp.issuer) is True
        resolver(idp.issuer)
        assert idp.hits == 4


@pytest.mark.parametrize(
    "issuer",
    [
        "https://example.com",  # the internet: never
        "http://localhost:9",  # a name: no resolution, so nothing can point it elsewhere
        "http://10.0.0.1:8000",  # private, not loopback
        "ftp://127.0.0.1:21",
    ],
)
def test_only_loopback_ip_literals_are_ever_contacted(issuer: str) -> None:
    with pytest.raises(KeysUnavailable, match="only fetches keys from loopback addresses"):
        LoopbackJwksResolver(timeout=0.2)(issuer)


def test_a_jwks_uri_off_loopback_is_not_followed() -> None:
    off: dict[str, object] = {}
    with served(documents=off) as (idp, _):
        # A discovery document naming this issuer (known once the port is) and a JWKS on the internet.
        off["/.well-known/openid-configuration"] = {"issuer": idp.issuer, "jwks_uri": "https://keys.example.com/j"}
        with pytest.raises(KeysUnavailable, match="only fetches keys from loopback addresses"):
            LoopbackJwksResolver()(idp.issuer)
    assert idp.hits == 1  # the discovery document only: the JWKS URI was never contacted


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address requests (urllib3) connects to; anything but 127.0.0.1 is refused before any lookup, so a
    resolver that would leave this machine is seen doing so without the network ever being touched."""
    made: list[tuple[str, int]] = []
    connect = urllib3.util.connection.create_connection

    def watched(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        made.append(address)
        if address[0] != "127.0.0.1":
            raise OSError(f"the test refuses to connect to {address[0]}")
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", watched)
    return made


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "http://evil.example\\@{authority}/jwks.json",  # urlsplit: 127.0.0.1; urllib3 (requests): evil.example
        "http://evil.example\\@127.0.0.2/jwks.json",
        "http://{authority}\\@127.0.0.2/jwks.json",  # urlsplit: 127.0.0.2; urllib3: the IdP, path /%5C@...
        "http://user:pw@{authority}/jwks.json",  # userinfo: refused whatever the host
        "http://evil.example@{authority}/jwks.json",
        "http://{authority}/jwks.json#x",
        "http://{authority}/jwks.json\\",
        "http://{authority}/jwks json",
        "http://127.0.0.1:99999/jwks.json",
    ],
)
def test_a_jwks_uri_two_parsers_could_read_differently_is_not_followed(
    connections: list[tuple[str, int]], jwks_uri: str
) -> None:
    off: dict[str, object] = {}
    with served(documents=off) as (idp, server):
        authority = idp.issuer.removeprefix("http://")
        off["/.well-known/openid-configuration"] = {
            "issuer": idp.issuer,
            "jwks_uri": jwks_uri.format(authority=authority),
        }
        with pytest.raises(KeysUnavailable, match="only fetches keys from loopback addresses"):
            LoopbackJwksResolver(timeout=1)(idp.issuer)
    assert idp.hits == 1  # the discovery document only: the JWKS URI was never contacted
    assert connections == [("127.0.0.1", server.server_address[1])]  # and nowhere else either


def test_keys_are_fetched_from_the_checked_address_itself(connections: list[tuple[str, int]]) -> None:
    with served() as (idp, server):
        assert LoopbackJwksResolver()(idp.issuer) == idp.jwks
    assert connections == [("127.0.0.1", server.server_address[1])] * 2


def test_discovery_naming_another_issuer_is_refused() -> None:
    lying = {"/.well-known/openid-configuration": {"issuer": "https://elsewhere.example", "jwks_uri": "x"}}
    with served(documents=lying) as (idp, _), pytest.raises(KeysUnavailable, match="names another issuer"):
        LoopbackJwksResolver()(idp.issuer)


def test_a_document_that_is_not_json_is_unusable() -> None:
    not_json = {"/.well-known/openid-configuration": (200, b"<html>")}
    with served(documents=not_json) as (idp, _), pytest.raises(KeysUnavailable, match="did not answer JSON"):
        LoopbackJwksResolver()(idp.issuer)


def test_redirects_are_not_followed() -> None:
    redirect = {"/.well-known/openid-configuration": (302, b"https://example.com/.well-known/openid-configuration")}
    with served(documents=redirect) as (idp, _), pytest.raises(KeysUnavailable, match="HTTP 302"):
        LoopbackJwksResolver()(idp.issuer)


def test_documents_are_bounded() -> None:
    huge = {"/jwks.json": (200, b'{"keys": [], "pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}')}
    with served(documents=huge) as (idp, _), pytest.raises(KeysUnavailable, match="more than 65536 bytes"):
        LoopbackJwksResolver()(idp.issuer)


def test_a_jwks_without_keys_is_unusable() -> None:
    with served(documents={"/jwks.json": {"nokeys": True}}) as (idp, _), pytest.raises(KeysUnavailable):
        LoopbackJwksResolver()(idp.issuer)


def test_an_issuer_nobody_listens_on_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(IdpUnreachable):
            LoopbackJwksResolver(timeout=1)(f"http://127.0.0.1:{port}")
