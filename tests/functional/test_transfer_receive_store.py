"""``credport transfer receive --store``: the receiver, not the sender, decides where a received secret lands.

The sealed file is served over HTTP from 127.0.0.1 (as a link would be), opened with the receiver's key and stored
in Secrets Manager (moto) through the real store path (client/transfer.py). Without ``--name`` the sender's name goes
under ``credport/received/``; a name shaped like one of credport's own secrets (chalicelib/internal_secrets.py) is
refused before any AWS call, and so is a receiving prefix reaching a name-space credport serves or imports into; an
existing secret is replaced only under a ``--name`` given in full with ``--overwrite``."""

from __future__ import annotations

import json
import re
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
from client.transfer import MANAGED_NAMESPACES


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
    code, out, err = store(capsys, sent(links, key, "anything", "attacker's value"), pem, "--name", name)
    assert (code, out) == (Exit.USAGE, "")
    assert f"'{name}' is refused: it is shaped like credport's own secret <prefix>/{kind.suffix}" in err
    # The deployment's own prefix as a receiving prefix: refused as a prefix, whatever the sender's name.
    code, out, err = store(
        capsys, sent(links, key, name.removeprefix(f"{prefix}/"), "x"), pem, "--prefix", f"{prefix}/"
    )
    assert (code, out) == (Exit.USAGE, "")
    assert f"--prefix '{prefix}/' is refused: names under it can be credport's own (" in err
    assert f"<prefix>/{kind.suffix}" in err
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


def test_the_managed_namespaces_are_the_settings_defaults() -> None:
    """The name-spaces a receiving prefix may never reach are those credport serves from and imports into: the
    defaults of CREDPORT_AUTOID_SERVING_PREFIXES and CREDPORT_TRANSFER_IMPORT_PREFIX, for any deployment prefix."""
    from chalicelib.config import settings
    from tests.conftest import REPO_ROOT

    source = (REPO_ROOT / "chalicelib" / "config" / "settings.py").read_text()
    defaults = set(re.findall(r"\{prefix or DEFAULT_PREFIX\}/([A-Za-z0-9_-]+/)", source))
    assert defaults == set(MANAGED_NAMESPACES)
    assert settings.DEFAULT_PREFIX  # the deployment prefix those defaults are built on


@pytest.mark.parametrize("prefix", ["credport-dev/autoid/", "credport-prod/imported/x/", "credport-dev/", "team/"])
def test_a_sender_cannot_overwrite_a_served_secret(
    factory: ClientFactory,
    links: tuple[str, Files],
    receiver: tuple[Any, Path],
    capsys: pytest.CaptureFixture[str],
    prefix: str,
) -> None:
    """The hostile review's case: a sender names ``ci-token``, the receiver runs --prefix credport-dev/autoid/
    --overwrite, and auto-id then served the sender's value. --overwrite needs --name; the prefix is refused."""
    key, pem = receiver
    secrets = factory.client("secretsmanager")
    served = "credport-dev/autoid/ci-token"
    secrets.create_secret(Name=served, SecretString="the real token")
    link = sent(links, key, served.removeprefix(prefix) if served.startswith(prefix) else "ci-token", "attacker's")
    code, out, err = store(capsys, link, pem, "--prefix", prefix, "--overwrite")
    assert (code, out) == (Exit.USAGE, "")
    assert "--overwrite needs --name: only a secret you name in full is ever replaced" in err
    code, out, err = store(capsys, link, pem, "--prefix", prefix)
    assert (code, out) == (Exit.USAGE, "")
    assert f"--prefix '{prefix}' is refused: names under it can be credport's own" in err
    assert secrets.get_secret_value(SecretId=served)["SecretString"] == "the real token"
    assert len(secrets.list_secret_version_ids(SecretId=served)["Versions"]) == 1
    assert [s["Name"] for s in secrets.list_secrets()["SecretList"]] == [served]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("/", "must be a Secrets Manager name prefix ending with '/' (not starting with one"),
        ("", "must be a Secrets Manager name prefix ending with '/'"),
        ("team/inbox", "must be a Secrets Manager name prefix ending with '/'"),
        ("/team/inbox/", "must be a Secrets Manager name prefix ending with '/' (not starting with one"),
        ("team/in box/", "must be a Secrets Manager name prefix"),
        ("team//inbox/", "has an empty, '.' or '..' segment"),
        ("team/../inbox/", "has an empty, '.' or '..' segment"),
        ("x/token-signing/k/", "is refused: names under it can be credport's own (<prefix>/token-signing/)"),
    ],
)
def test_a_receiving_prefix_is_checked_before_any_aws_call(
    factory: ClientFactory,
    links: tuple[str, Files],
    receiver: tuple[Any, Path],
    capsys: pytest.CaptureFixture[str],
    prefix: str,
    expected: str,
) -> None:
    key, pem = receiver
    code, out, err = store(capsys, sent(links, key, "db", "v"), pem, "--prefix", prefix)
    assert (code, out) == (Exit.USAGE, "")
    assert f"--prefix {prefix!r} " in err
    assert expected in err
    assert factory.client("secretsmanager").list_secrets()["SecretList"] == []


def test_a_derived_name_never_replaces_a_secret(
    factory: ClientFactory, links: tuple[str, Files], receiver: tuple[Any, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pem = receiver
    secrets = factory.client("secretsmanager")
    name = "credport/received/db"
    secrets.create_secret(Name=name, SecretString="mine")
    code, out, err = store(capsys, sent(links, key, "db", "theirs"), pem)
    assert (code, out) == (Exit.USAGE, "")
    assert f"the secret '{name}' already exists and a received name never replaces one" in err
    assert f"pass --name {name} --overwrite" in err
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "mine"
    # What the message says to do works: the receiver names it in full.
    link = sent(links, key, "db", "theirs")
    assert store(capsys, link, pem, "--name", name, "--overwrite")[0] == Exit.OK
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "theirs"


@pytest.mark.parametrize("chosen", [[], ["--name", "credport/received/db"]], ids=["derived", "named"])
def test_a_forged_version_id_stores_nothing_and_says_so(
    factory: ClientFactory,
    links: tuple[str, Files],
    receiver: tuple[Any, Path],
    capsys: pytest.CaptureFixture[str],
    chosen: list[str],
) -> None:
    """A sender who copies the existing version's id into the file used to get "stored" back while nothing was
    written; the value held is what is compared now."""
    key, pem = receiver
    secrets = factory.client("secretsmanager")
    name = "credport/received/db"
    existing = secrets.create_secret(Name=name, SecretString="mine")["VersionId"]
    code, out, err = store(capsys, sent(links, key, "db", "theirs", version=existing), pem, *chosen)
    assert (code, out) == (Exit.USAGE, "")
    assert f"the secret '{name}' already exists" in err
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "mine"
    # The same value again is the no-op the shortcut was for: reported stored, no new version.
    code, out, _ = store(capsys, sent(links, key, "db", "mine"), pem, *chosen)
    assert code == Exit.OK
    assert json.loads(out)["version_id"] == existing
    assert len(secrets.list_secret_version_ids(SecretId=name)["Versions"]) == 1
