"""Transfer: imports per second (decrypt + validate + store, stores in memory), against one JWE
RSA-OAEP-256/A256GCM decrypt with joserfc and the same RSA-4096 key.

``Importer.import_bytes`` is what both the inbox handler and ``POST /transfer/import`` run once the file's
bytes are in hand: the file's SHA-256 (its idempotency token), the envelope policy, the decrypt, payload
validation, and the store. Each import is of a distinct file, as in real use.
"""

from __future__ import annotations

import json
from typing import cast

from joserfc import jwe
from joserfc.jwe import JWERegistry

from bench.harness import Figure, paired
from bench.memory import MemoryObjects, MemorySecrets
from chalicelib.aws.s3 import ObjectStore
from chalicelib.aws.secrets import SecretStore
from chalicelib.envelope import seal
from chalicelib.keys.recipient import IMPORT_KEY, RecipientKeyStore
from chalicelib.transfer.importer import Importer

TARGET = 0.6


def run(quick: bool = False) -> list[Figure]:
    number, rounds = (5, 1) if quick else (40, 15)
    store = cast(SecretStore, MemorySecrets())
    keys = RecipientKeyStore(store, "arn:bench-import-key", IMPORT_KEY)
    importer = Importer(
        cast(ObjectStore, MemoryObjects()),
        store,
        keys,
        bucket="bench",
        name_prefix="credport-bench/imported/",
        kms_key_id="k",
    )
    recipient = keys.current()
    files: list[bytes] = []
    counter = iter(range(10**9))

    def prepare() -> None:
        files.clear()
        for _ in range(number):
            document = {"secret_name": f"credport-bench/imported/s{next(counter)}", "value": "v" * 256}
            files.append(seal(recipient, json.dumps(document).encode()).encode())

    def import_one() -> None:
        importer.import_bytes(files.pop(), source="bench")

    private = recipient.private  # bound once: mypy does not carry the narrowing into the lambda
    assert private is not None
    registry = JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"])
    prepare()
    sample = files[0].decode()
    measured = paired(
        import_one,
        lambda: jwe.decrypt_compact(sample, private, registry=registry),
        number=number,
        rounds=rounds,
        better="faster",
        setup=prepare,
    )
    return [
        Figure(
            key="transfer.import",
            name="transfer imports/s (decrypt + store, stores in memory)",
            value=1 / measured.subject,
            unit="ops/s",
            baseline="one JWE RSA-OAEP-256 decrypt, RSA-4096 (joserfc)",
            baseline_value=1 / measured.baseline,
            ratio=measured.ratio,
            spread=measured.spread,
            rounds=measured.rounds,
            target=f">= {TARGET}x",
            met=measured.ratio >= TARGET,
        )
    ]
