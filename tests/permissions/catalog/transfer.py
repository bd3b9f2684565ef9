"""Secret transfer, receiving side: the import key, imports (``POST /transfer/import``, files in ``inbox/``), the
quarantine of files that can never be processed, and the fate of each event's object. The sending side (client
registrations, sends) is :mod:`tests.permissions.catalog.transfer_send`.

S3 (S3 API Reference, each operation's "Permissions"): HeadObject is authorised as s3:GetObject; ListObjectsV2 as
s3:ListBucket and ListObjectVersions as s3:ListBucketVersions on the bucket, with ``s3:prefix`` the request's Prefix;
DeleteObject with a VersionId as s3:DeleteObjectVersion; CopyObject as s3:GetObject on the source and s3:PutObject on
the destination. Every object of the transfer bucket is SSE-KMS under the data key (the bucket's default encryption),
whether or not the request names the key, so reading it needs kms:Decrypt and writing it kms:GenerateDataKey.
A presigned link is authorised when it is used, as the signer: the recipient's GET is s3:GetObject by the function.
"""

from __future__ import annotations

from chalicelib.transfer.importer import INBOX, PROCESSED, QUARANTINE
from chalicelib.transfer.sending import CLIENTS
from tests.permissions.catalog._common import (
    API,
    S3_EVENTS,
    functions,
    item,
    maybe_missing,
    missing,
    obj,
    resource_tags,
    secret,
    secret_read,
    secret_write,
    through_s3,
)
from tests.permissions.model import Access, Entry, Value

__all__ = ["CLIENT_KEY", "ENTRIES", "put_object"]

IMPORTERS = functions(API, S3_EVENTS)
_IMPORTER = "chalicelib.transfer.importer.Importer"
_IMPORT_KEYS = "chalicelib.keys.recipient.RecipientKeyStore"  # IMPORT_KEY
_FATES = "chalicelib.transfer.fates.ObjectFates"
IMPORT_KEY = secret("{import_key_secret}")
IMPORTED = secret("{prefix}/imported/<secret>")  # CREDPORT_TRANSFER_IMPORT_PREFIX's default: <prefix>/imported/
INBOX_FILE = obj("transfer_bucket", INBOX + "<file>")
CLIENT_KEY = obj("transfer_bucket", CLIENTS + "<client>/public.pem")
SSE_KMS = {"s3:x-amz-server-side-encryption": "aws:kms"}
# The keys S3 events name (template.yaml): inbox files, and anything under clients/.
_EVENT_KEYS = (INBOX + "<file>", CLIENTS + "<client>/public.pem", CLIENTS + "<client>/<file>")
_IMPORTED_TAGS: dict[str, Value] = {"aws:RequestTag/credport:imported": "true", "aws:TagKeys": ("credport:imported",)}


def put_object(key: str) -> tuple[Access, ...]:
    return (Access("s3:PutObject", obj("transfer_bucket", key), SSE_KMS), through_s3("GenerateDataKey"))


def _copy(source: str, target: str) -> tuple[Access, ...]:
    return (
        Access("s3:GetObject", source),
        through_s3("Decrypt"),
        Access("s3:PutObject", obj("transfer_bucket", target), SSE_KMS),
        through_s3("GenerateDataKey"),
    )


ENTRIES = (
    # --- the import key -------------------------------------------------------------------------------------------
    Entry(
        id="transfer.import-key.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=IMPORTERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_IMPORT_KEYS}._read_stage",),
        why="the import key pair (AWSCURRENT and AWSPREVIOUS): GET /transfer/import-key and every import",
        access=secret_read(IMPORT_KEY),
    ),
    Entry(
        id="transfer.import-key.bootstrap",
        service="secretsmanager",
        operation="PutSecretValue",
        functions=IMPORTERS,
        site="chalicelib.aws.secrets.SecretStore.put_value",
        callers=(f"{_IMPORT_KEYS}._bootstrap",),
        why="a fresh deployment's first import key replaces the template's placeholder (one deterministic version)",
        access=secret_write("PutSecretValue", IMPORT_KEY),
    ),
    # --- imports --------------------------------------------------------------------------------------------------
    Entry(
        id="transfer.import.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=IMPORTERS,
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_IMPORTER}.import_envelope", "chalicelib.aws.secrets.SecretStore.create_or_add_version"),
        why="does the imported secret exist (then a new version) or not (then it is created)",
        access=maybe_missing("secretsmanager:DescribeSecret", IMPORTED, resource_tags({"credport:imported": "true"})),
    ),
    Entry(
        id="transfer.import.create",
        service="secretsmanager",
        operation="CreateSecret",
        functions=IMPORTERS,
        site="chalicelib.aws.secrets.SecretStore.create",
        callers=(f"{_IMPORTER}.import_envelope", "chalicelib.aws.secrets.SecretStore.create_or_add_version"),
        why="a new imported secret, under the data key, tagged credport:imported (so TagResource too)",
        access=(
            *secret_write("CreateSecret", IMPORTED, _IMPORTED_TAGS),
            Access("secretsmanager:TagResource", missing(IMPORTED), _IMPORTED_TAGS),
        ),
    ),
    Entry(
        id="transfer.import.new-version",
        service="secretsmanager",
        operation="PutSecretValue",
        functions=IMPORTERS,
        site="chalicelib.aws.secrets.SecretStore.put_value",
        callers=(f"{_IMPORTER}.import_envelope", "chalicelib.aws.secrets.SecretStore.create_or_add_version"),
        why="a new version of an existing imported secret (the file's SHA-256 is its ClientRequestToken)",
        access=secret_write("PutSecretValue", IMPORTED, resource_tags({"credport:imported": "true"})),
    ),
    Entry(
        id="transfer.inbox.read",
        service="s3",
        operation="GetObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.get",
        callers=(f"{_IMPORTER}.import_object",),
        why="the inbox file an S3 event names",
        access=(Access("s3:GetObject", INBOX_FILE), through_s3("Decrypt")),
    ),
    Entry(
        id="transfer.inbox.receipt",
        service="s3",
        operation="PutObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=(f"{_IMPORTER}.import_object",),
        why="the import's receipt (ARN and version, never the value) beside the processed file",
        access=put_object(PROCESSED + "<file>.receipt.json"),
    ),
    Entry(
        id="transfer.inbox.move-copy",
        service="s3",
        operation="CopyObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.copy",
        callers=(f"{_IMPORTER}.import_object", "chalicelib.aws.s3.ObjectStore.move"),
        why="an imported file moves to processed/ (copy, then delete)",
        access=_copy(INBOX_FILE, PROCESSED + "<file>"),
    ),
    Entry(
        id="transfer.inbox.move-delete",
        service="s3",
        operation="DeleteObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.delete",
        callers=(f"{_IMPORTER}.import_object", "chalicelib.aws.s3.ObjectStore.move"),
        why="the moved file leaves inbox/ (a delete marker: the bucket is versioned)",
        access=(Access("s3:DeleteObject", INBOX_FILE),),
    ),
    Entry(
        id="transfer.quarantine.reason",
        service="s3",
        operation="PutObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=("chalicelib.transfer.importer.quarantine",),
        why="a file that can never be processed: its reason first, as <destination>.error.json",
        access=put_object(QUARANTINE + "<file>.error.json"),
    ),
    Entry(
        id="transfer.quarantine.copy",
        service="s3",
        operation="CopyObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.copy",
        callers=("chalicelib.transfer.importer.quarantine", "chalicelib.aws.s3.ObjectStore.move"),
        why="then the file itself moves to quarantine/ (an inbox file: nothing under clients/ is ever copied)",
        access=_copy(INBOX_FILE, QUARANTINE + "<file>"),
    ),
    Entry(
        id="transfer.quarantine.delete",
        service="s3",
        operation="DeleteObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.delete",
        callers=("chalicelib.transfer.importer.quarantine", "chalicelib.aws.s3.ObjectStore.move"),
        why="the quarantined file leaves inbox/",
        access=(Access("s3:DeleteObject", INBOX_FILE),),
    ),
    Entry(
        id="transfer.fates.record",
        service="dynamodb",
        operation="PutItem",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.dynamodb.ItemTable.put",
        callers=(f"{_FATES}.record",),
        why="what became of an event's object version (imported, quarantined, purged), before it is moved or purged",
        access=tuple(item("PutItem", f"transfer-object#{key}") for key in _EVENT_KEYS),
    ),
    Entry(
        id="transfer.fates.read",
        service="dynamodb",
        operation="GetItem",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.dynamodb.ItemTable.get",
        callers=(f"{_FATES}.fate",),
        why="a redelivered event whose object reads 403 (gone, or denied: S3 cannot say without s3:ListBucket)",
        access=tuple(item("GetItem", f"transfer-object#{key}") for key in _EVENT_KEYS),
    ),
)
