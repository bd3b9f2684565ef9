"""``credport autoid serve``: loopback only, the token, the container provider's document, caching and refresh.

The HTTP tests run the real server on a free loopback port and talk to it with requests and with botocore's own,
unmodified ``ContainerProvider``; the credentials come from a fake of our fetch (no broker here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.credentials import ContainerProvider
from botocore.exceptions import CredentialRetrievalError
from botocore.utils import ContainerMetadataFetcher

from client import cli
from client.autoid_serve import (
    PATH,
    CredentialSource,
    ServeError,
    _handler,
    _server_for,
    container_credentials,
    loopback_host,
)
from client.aws_call import CallError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def role_answer(expires: datetime, key: str = "ASIA1") -> dict[str, Any]:
    return {
        "credentials": {
            "AccessKeyId": key,
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": expires.isoformat(),
            "AssumedRoleArn": "arn:aws:sts::123456789012:assumed-role/r/autoid-c",
        }
    }


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert loopback_host(host) in {"127.0.0.1", "127.0.0.53", "::1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "169.254.170.2", "example.com", ""])  # noqa: S104
def test_any_other_host_is_refused_by_the_command_before_anything_listens(
    host: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["autoid", "serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--host", host]
    assert cli.main([*argv, "--bundle", str(tmp_path / "none.json"), "--state-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"credport: --host must be a loopback address (127.0.0.1 or ::1), not {host!r}"]
    assert list(tmp_path.iterdir()) == []  # no token file was written


def test_the_container_document_from_role_credentials_and_from_access_keys() -> None:
    expires = NOW + timedelta(hours=1)
    assert container_credentials(role_answer(expires), NOW) == {
        "AccessKeyId": "ASIA1",
        "SecretAccessKey": "s",
        "Token": "t",
        "Expiration": expires.isoformat(),
        "AccountId": "123456789012",
    }
    keys = {"secret": {"value": "AKIA2,y"}}
    assert container_credentials(keys, NOW) == {
        "AccessKeyId": "AKIA2",
        "SecretAccessKey": "y",
        "Token": "",  # botocore needs the field; an empty token signs without one
        "Expiration": (NOW + timedelta(hours=1)).isoformat(),
    }


def test_credentials_are_cached_until_five_minutes_before_they_end_and_kept_while_the_broker_is_down() -> None:
    clock = Clock()
    calls: list[datetime] = []
    down = False

    def fetch() -> dict[str, Any]:
        calls.append(clock.now)
        if down:
            raise requests.ConnectionError("refused")
        return role_answer(clock.now + timedelta(hours=1), key=f"ASIA{len(calls)}")

    source = CredentialSource(fetch, clock)
    assert source.current()["AccessKeyId"] == "ASIA1"
    clock.now += timedelta(minutes=54)
    assert source.current()["AccessKeyId"] == "ASIA1"  # 6 minutes left: still served
    assert len(calls) == 1
    clock.now += timedelta(minutes=2)  # 4 minutes left: refreshed
    assert source.current()["AccessKeyId"] == "ASIA2"
    assert source.refresh_due() == clock.now + timedelta(minutes=50)

    down = True
    clock.now += timedelta(minutes=57)  # 3 minutes left, broker down: what we hold is still good
    assert source.current()["AccessKeyId"] == "ASIA2"
    clock.now += timedelta(minutes=2, seconds=30)  # 30 s left: no longer handed out
    with pytest.raises(ServeError) as refused:
        source.current()
    assert (refused.value.status, refused.value.code) == (503, "broker_unreachable")


def test_a_broker_refusal_is_a_502_and_its_message_names_only_the_status() -> None:
    def fetch() -> dict[str, Any]:
        raise CallError(401, {"error": "authentication_failed", "message": "m"})

    with pytest.raises(ServeError) as refused:
        CredentialSource(fetch).current()
    assert (refused.value.status, refused.value.code, str(refused.value)) == (
        502,
        "broker_error",
        "the credport endpoint answered HTTP 401",
    )


def test_one_refresh_at_a_time() -> None:
    calls = []

    def slow_fetch() -> dict[str, Any]:
        calls.append(1)
        time.sleep(0.3)
        return role_answer(datetime.now(UTC) + timedelta(hours=1))

    source = CredentialSource(slow_fetch)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(source.current()["AccessKeyId"])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(calls), results) == (1, ["ASIA1"] * 8)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    source = CredentialSource(lambda: role_answer(datetime.now(UTC) + timedelta(hours=1)))
    server = _server_for("127.0.0.1", 0, _handler(source, "right-token"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = tmp_path / "token"
    token.write_text("right-token")
    yield f"http://127.0.0.1:{server.server_address[1]}{PATH}", token
    server.shutdown()
    server.server_close()


def test_the_token_is_required_and_only_get_on_the_path_answers(served: tuple[str, Path]) -> None:
    url, _ = served
    missing = requests.get(url, timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
    wrong = requests.get(url, headers={"Authorization": "right-token-not"}, timeout=5)
    assert (wrong.status_code, wrong.json()["error"]) == (403, "forbidden")
    assert "right-token" not in wrong.text
    good = requests.get(url, headers={"Authorization": "right-token"}, timeout=5)
    assert good.status_code == 200
    assert good.headers["Cache-Control"] == "no-store"
    assert set(good.json()) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    elsewhere = requests.get(
        url.replace(PATH, "/latest/meta-data"), headers={"Authorization": "right-token"}, timeout=5
    )
    assert elsewhere.status_code == 404
    posted = requests.post(url, headers={"Authorization": "right-token"}, timeout=5)
    assert posted.status_code == 405


def test_botocore_container_provider_reads_it_with_the_token_file_and_fails_with_a_wrong_one(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, token = served
    fetcher = ContainerMetadataFetcher(sleep=lambda _seconds: None)
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token)}
    credentials = ContainerProvider(environ, fetcher).load()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("ASIA1", "t")
    wrong = tmp_path / "wrong"
    wrong.write_text("guess")
    with pytest.raises(CredentialRetrievalError, match="403"):
        ContainerProvider({**environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(wrong)}, fetcher).load()


def test_a_missing_bundle_is_refused_at_start(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["autoid", "serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--bundle", str(tmp_path / "none")]
    assert cli.main([*argv, "--state-dir", str(tmp_path / "state")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("credport: ")
    assert "No such file" in err
    assert not (tmp_path / "state").exists()
