"""The workload side of auto-id: the bundle file, saving news from the server, credential_process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from chalicelib.autoid.protocol import ENTROPY_BYTES
from chalicelib.envelope import generate_recipient_key
from client.autoid import Bundle, BundleError, credential_process, write_bundle
from client.autoid_state import BundleFiles

KEY = generate_recipient_key(4096)
OTHER_KEY = generate_recipient_key(4096)


def jwks(*keys: object) -> dict[str, object]:
    return {"keys": [k.public_jwk() for k in keys], "current_kid": keys[0].kid}  # type: ignore[attr-defined]


def bundle(tmp_path: Path, generation: int = 1) -> Path:
    path = tmp_path / "b" / "autoid.json"
    write_bundle(path, Bundle("c-1", "http://127.0.0.1:1", generation, jwks(KEY), os.urandom(ENTROPY_BYTES)))
    return path


def test_a_bundle_round_trips_and_is_private_from_its_first_byte(tmp_path: Path) -> None:
    path = bundle(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = Bundle.load(path)
    assert (loaded.client_id, loaded.generation, loaded.server_key().kid) == ("c-1", 1, KEY.kid)
    assert "entropy" not in repr(loaded)  # the credential never shows in a repr or a traceback
    path.chmod(0o644)
    with pytest.raises(BundleError, match="0600"):
        Bundle.load(path)


def test_a_pinned_key_whose_kid_is_not_its_thumbprint_is_refused(tmp_path: Path) -> None:
    forged = {"keys": [{**OTHER_KEY.public_jwk(), "kid": KEY.kid}], "current_kid": KEY.kid}
    with pytest.raises(BundleError, match="usable"):
        Bundle("c", "e", 1, forged, b"").server_key()
    small = generate_recipient_key(2048)
    with pytest.raises(BundleError, match="usable"):
        Bundle("c", "e", 1, jwks(small), b"").server_key()


def _save_news(path: Path, answer: dict[str, Any]) -> None:
    files = BundleFiles(path, path.parent / "state", warn=pytest.fail)  # a writable bundle: nothing to warn about
    files.call(lambda _bundle: answer)  # the server answers ``answer``


def test_news_from_the_server_is_saved_atomically_and_never_goes_backwards(tmp_path: Path) -> None:
    path = bundle(tmp_path, generation=3)
    newer = os.urandom(ENTROPY_BYTES)
    import base64

    data = base64.urlsafe_b64encode(newer).rstrip(b"=").decode()
    answer = {"secret": {}, "entropy": {"gen": 2, "data": data}}
    _save_news(path, answer)
    assert Bundle.load(path).generation == 3  # an older generation never replaces a newer one
    assert "entropy" not in answer  # the news is taken out of the answer handed to the caller
    _save_news(path, {"entropy": {"gen": 4, "data": data}, "server_keys": jwks(OTHER_KEY, KEY)})
    saved = Bundle.load(path)
    assert (saved.generation, saved.entropy, saved.server_key().kid) == (4, newer, OTHER_KEY.kid)
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["autoid.json", "autoid.json.lock"]  # no temp left
    assert path.with_name("autoid.json.lock").stat().st_mode & 0o777 == 0o600
    with pytest.raises(BundleError, match="malformed"):
        _save_news(path, {"entropy": {"gen": 5, "data": "AAAA"}})
    assert Bundle.load(path).generation == 4


def test_credential_process_from_role_credentials_and_from_secrets() -> None:
    role = {
        "credentials": {
            "AccessKeyId": "ASIA1",
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": "2026-11-24T20:00:00+00:00",
            "AssumedRoleArn": "arn",
        }
    }
    assert credential_process(role) == {
        "Version": 1,
        "AccessKeyId": "ASIA1",
        "SecretAccessKey": "s",
        "SessionToken": "t",
        "Expiration": "2026-11-24T20:00:00+00:00",
    }
    as_json = {"secret": {"value": json.dumps({"AccessKeyId": "AKIA1", "SecretAccessKey": "x", "Other": 1})}}
    assert credential_process(as_json) == {"Version": 1, "AccessKeyId": "AKIA1", "SecretAccessKey": "x"}
    legacy = {"secret": {"value": "AKIA2, y"}}
    assert credential_process(legacy) == {"Version": 1, "AccessKeyId": "AKIA2", "SecretAccessKey": "y"}
    for value in ("just-a-password", "a,b,c", ",x", json.dumps({"AccessKeyId": "only"})):
        with pytest.raises(BundleError, match="neither"):
            credential_process({"secret": {"value": value}})
    with pytest.raises(BundleError, match="not text"):
        credential_process({"secret": {"value_base64": "AAAA"}})
