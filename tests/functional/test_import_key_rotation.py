"""The import key rotated by hand (a new AWSCURRENT version): a warm container opens files sealed to the new key at
once, because it looks the envelope's kid up in the store, which re-reads the secret for a kid it has not seen."""

from __future__ import annotations

import json
import uuid

import pytest

from chalicelib.envelope import generate_recipient_key, seal
from chalicelib.keys import recipient as recipient_module
from chalicelib.services import Services


@pytest.fixture(autouse=True)
def small_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recipient_module, "generate_recipient_key", lambda: generate_recipient_key(2048))


@pytest.mark.parametrize("form", ["legacy", "document"])
def test_a_file_sealed_to_a_key_rotated_by_hand_imports_in_a_warm_container(services: Services, form: str) -> None:
    old = services.import_keys.current()  # a warm container: the keys are cached for minutes
    new = generate_recipient_key(2048)
    assert new.private is not None
    pem = new.private.as_pem(private=True).decode("ascii")
    value = (
        {"v": 1, "private_pem": pem}
        if form == "legacy"
        else {
            "v": 1,
            "rotation_id": "by-hand",
            "keys": [{"kid": new.kid, "created_at": 1, "retired_at": None, "private_pem": pem}],
        }
    )
    services.aws.secrets.put_value(
        services.settings.resources.import_key_secret_arn, json.dumps(value), client_request_token=str(uuid.uuid4())
    )
    bucket = services.settings.resources.transfer_bucket
    document = {"secret_name": "credport-dev/imported/after-rotation", "value": "v"}
    services.aws.s3.put(bucket, "inbox/after.jwe", seal(new, json.dumps(document).encode()).encode())
    receipt = services.importer.import_object("inbox/after.jwe")
    assert receipt is not None, sorted(services.aws.s3.list_keys(bucket, "quarantine/"))
    assert services.aws.secrets.get_value("credport-dev/imported/after-rotation").value == "v"
    assert services.import_keys.current_kid() == new.kid != old.kid  # the re-read also moved the current key


def test_made_up_kids_cost_one_read_per_interval_before_the_first_server_key(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh deployment (the template's placeholder in the auto-id key secret): unauthenticated requests naming
    made-up kids must not each cost Secrets Manager reads."""
    import base64

    from tests.support import proxy_post

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    calls: list[str] = []
    adapter = type(services.aws.secrets)
    original = adapter.get_value

    def counting(self: object, secret_id: str, **kwargs: object) -> object:
        calls.append(secret_id)
        return original(self, secret_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(adapter, "get_value", counting)
    for n in range(20):
        header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": f"made-up-{n}"}
        jwe = ".".join([b64(json.dumps(header).encode()), b64(b"k" * 512), b64(b"i" * 12), b64(b"c"), b64(b"t" * 16)])
        assert proxy_post("/auto-id", json.dumps({"jwe": jwe})).status_code == 401
    server_key_reads = [c for c in calls if c == services.settings.resources.autoid_key_secret_arn]
    assert len(server_key_reads) <= 2, f"{len(server_key_reads)} reads for 20 unauthenticated requests"
