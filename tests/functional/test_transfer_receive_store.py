"""``credport transfer receive --store``: the receiver, not the sender, decides where a received secret lands.

The sealed file is served over HTTP from 127.0.0.1 (as a link would be), opened with the receiver's key and stored
in Secrets Manager (moto) through the real store path (client/transfer.py). Without ``--name`` the sender's name goes
under ``credport/received/``; a name shaped like one of credport's own secrets (chalicelib/internal_secrets.py) is
refused before any AWS call, and so is an existing secret unless ``--overwrite``."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chalicelib.aws.clients import ClientFactory
from chalicelib.envelope import generate_recipient_key, seal
from chalicelib.internal_secrets import KINDS
from client.cli import main
from client.errors import Exit


class Files:
    def __init__(self) -> None:
        self.by_path: dict[str, bytes] = {}


@pytest.fixture
def links() -> Iterator[tuple[str, Files]]:
    files = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.by_path.get(self.path.split("?", 1)[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def receiver(tmp_path: Path) -> tuple[Any, Path]:
    key = generate_recipient_key(2048)
    assert key.private is not None
    pem = tmp_path / "receiver.pem"
    pem.write_bytes(bytes(key.private.as_pem(private=True)))
    return key, pem


def sent(links: tuple[str, Files], key: Any, name: str, value: str, version: str | None = None) -> str:
    """A link to a file sealed to ``key`` by a sender who chose ``name``."""
    base, files = links
    version = version or str(uuid.uuid4())
    document = {"client_id": "c1", "secret_name": name, "version_id": version, "value": value, "iat": 1}
    path = f"/outbox/c1/{version}.jwe"
    files.by_path[path] = seal(key, json.dumps(document).encode()).encode()
    return f"{base}{path}?X-Amz-Signature=0f0f"


def store(capsys: pytest.CaptureFixture[str], link: str, pem: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["transfer", "receive", link, "--key", str(pem), "--store", *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_without_name_the_senders_name_goes_under_the_receiving_prefix(
    factory: ClientFactory, links: tuple[str, Files], receiver: tuple[Any, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pem = receiver
    secrets = factory.client("secretsmanager")
    link = sent(links, key, "credport-prod/transfer/c1", "the value")
    code, out, _ = store(capsys, link, pem)
    assert code == Exit.OK
    stored = json.loads(out)
    name = "credport/received/credport-prod/transfer/c1"
    held = secrets.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert held["SecretString"] == "the value"
    assert (held["ARN"], held["VersionId"]) == (stored["stored"], stored["version_id"])
    assert [s["Name"] for s in secrets.list_secrets()["SecretList"]] == [name]

    assert store(capsys, link, pem)[0] == Exit.OK  # the same file again: nothing changes, no --overwrite needed
    assert len(secrets.list_secret_version_ids(SecretId=name)["Versions"]) == 1

    code, out, _ = store(capsys, link, pem, "--prefix", "team/inbox/")
    assert code == Exit.OK
    assert secrets.get_secret_value(SecretId="team/inbox/credport-prod/transfer/c1")["SecretString"] == "the value"


@pytest.mark.parametrize("kind", KINDS, ids=[kind.suffix for kind in KINDS])
@pytest.mark.parametrize("prefix", ["credport-dev", "credport-prod"])
def test_credports_own_secret_names_are_refused_before_any_aws_call(
    factory: ClientFactory,
    links: tuple[str, Files],
    receiver: tuple[Any, Path],
    capsys: pytest.CaptureFixture[str],
    kind: Any,
    prefix: str,
) -> None:
    key, pem = receiver
    secrets = factory.client("secretsmanager")
    name = kind.member(prefix, "k1") if kind.is_namespace else kind.name(prefix)
    secrets.create_secret(Name=name, SecretString="credport's own")
    for chosen in (["--name", name], ["--prefix", f"{prefix}/"]):
        sender_name = name.removeprefix(f"{prefix}/") if chosen[0] == "--prefix" else "anything"
        code, out, err = store(capsys, sent(links, key, sender_name, "attacker's value"), pem, *chosen)
        assert (code, out) == (Exit.USAGE, "")
        assert f"'{name}' is refused: it is shaped like credport's own secret <prefix>/{kind.suffix}" in err
    held = secrets.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert held["SecretString"] == "credport's own"
    assert len(secrets.list_secret_version_ids(SecretId=name)["Versions"]) == 1


def test_an_existing_secret_needs_overwrite(
    factory: ClientFactory, links: tuple[str, Files], receiver: tuple[Any, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pem = receiver
    secrets = factory.client("secretsmanager")
    secrets.create_secret(Name="app/db", SecretString="mine")
    link = sent(links, key, "db", "theirs")
    code, out, err = store(capsys, link, pem, "--name", "app/db")
    assert (code, out) == (Exit.USAGE, "")
    assert "the secret 'app/db' already exists: pass --overwrite" in err
    assert secrets.get_secret_value(SecretId="app/db", VersionStage="AWSCURRENT")["SecretString"] == "mine"
    assert store(capsys, link, pem, "--name", "app/db", "--overwrite")[0] == Exit.OK
    assert secrets.get_secret_value(SecretId="app/db", VersionStage="AWSCURRENT")["SecretString"] == "theirs"
    assert secrets.get_secret_value(SecretId="app/db", VersionStage="AWSPREVIOUS")["SecretString"] == "mine"


@pytest.mark.parametrize("sender_name", ["../escape", "/absolute", "spaces in it", "a\u202eb", ""])
def test_a_senders_name_that_is_not_a_secret_name_is_refused(
    factory: ClientFactory,
    links: tuple[str, Files],
    receiver: tuple[Any, Path],
    capsys: pytest.CaptureFixture[str],
    sender_name: str,
) -> None:
    key, pem = receiver
    code, out, err = store(capsys, sent(links, key, sender_name, "v"), pem)
    assert (code, out) == (Exit.REFUSED, "")
    assert "the sender's secret name" in err
    assert "pass --name" in err
    assert factory.client("secretsmanager").list_secrets()["SecretList"] == []
