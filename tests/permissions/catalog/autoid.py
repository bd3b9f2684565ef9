"""Autonomous identification: ``POST /auto-id`` (the ``auto_id`` function), ``GET /auto-id/keys`` (the API handler)
and the ``rotate_autoid_keys`` schedule.

Enrolment, revocation and a single client's rotation or end of grace (``credport-admin autoid ...``) run with the
operator's credentials: not Lambda calls, not here (the schedule's rotation of every client is).
"""

from __future__ import annotations

from chalicelib.autoid import KEYS_OBJECT
from chalicelib.autoid.clients import ENTROPY_PREFIX
from tests.permissions.catalog._common import (
    API,
    AUTO_ID,
    KEY_EVENTS,
    ROTATE_AUTOID,
    TRANSFER_BUCKET,
    functions,
    item,
    obj,
    secret,
    secret_read,
    secret_write,
    through_s3,
)
from tests.permissions.model import Access, Entry

__all__ = ["ENTRIES"]

SERVER_KEY = secret("{autoid_key_secret}")
# Who reads the server keys: auto_id opens requests with them, GET /auto-id/keys serves them, the schedule rotates
# them. Only the latter two write: a fresh deployment's first key is made by the first GET /auto-id/keys (a request
# can only be sealed to a key that exists), or by the schedule; opening a request never creates one.
SERVERS = functions(API, AUTO_ID, ROTATE_AUTOID)
WRITERS = functions(API, ROTATE_AUTOID)
ENTROPY = obj("transfer_bucket", ENTROPY_PREFIX + "<client>/<generation>")
_KEYS = "chalicelib.keys.recipient.RecipientKeyStore"  # SERVER_KEYS
_REGISTRY = "chalicelib.autoid.clients.ClientRegistry"
_SERVICE = "chalicelib.autoid.service.AutoIdService"
_CLIENTS = "autoid-clients"  # the registry's partition (chalicelib.autoid.clients._PARTITION)

ENTRIES = (
    Entry(
        id="autoid.server-keys.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=SERVERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_KEYS}._read_stage",),
        why="the server keys (current and in grace): requests are sealed to them; GET /auto-id/keys serves them",
        access=secret_read(SERVER_KEY),
    ),
    Entry(
        id="autoid.server-keys.write",
        service="secretsmanager",
        operation="PutSecretValue",
        functions=WRITERS,
        site="chalicelib.aws.secrets.SecretStore.put_value",
        callers=(f"{_KEYS}.rotate", f"{_KEYS}._bootstrap"),
        why="a rotation's new key list, or a fresh deployment's first key (replacing the placeholder)",
        access=secret_write("PutSecretValue", SERVER_KEY),
    ),
    Entry(
        id="autoid.registry.read",
        service="dynamodb",
        operation="GetItem",
        functions=functions(AUTO_ID, ROTATE_AUTOID),
        site="chalicelib.aws.dynamodb.ItemTable.get",
        callers=(f"{_REGISTRY}.get",),
        why="the client's record on every request (revocation takes effect at once), and before its rotation",
        access=(item("GetItem", _CLIENTS),),
    ),
    Entry(
        id="autoid.registry.list",
        service="dynamodb",
        operation="Query",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.dynamodb.ItemTable.query",
        callers=(f"{_REGISTRY}.all",),
        why="the schedule rotates every enrolled client",
        access=(item("Query", _CLIENTS),),
    ),
    Entry(
        id="autoid.registry.save",
        service="dynamodb",
        operation="PutItem",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.dynamodb.ItemTable.put",
        callers=(f"{_REGISTRY}._save",),
        why="the rotated record, conditional on its revision",
        access=(item("PutItem", _CLIENTS),),
    ),
    Entry(
        id="autoid.entropy.read",
        service="s3",
        operation="GetObject",
        functions=functions(AUTO_ID),
        site="chalicelib.aws.s3.ObjectStore.get",
        callers=(f"{_REGISTRY}.entropy",),
        why="the generation the request's proof is over (and the current one, sent to a client still on an old one)",
        access=(Access("s3:GetObject", ENTROPY), through_s3("Decrypt")),
    ),
    Entry(
        id="autoid.entropy.write",
        service="s3",
        operation="PutObject",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=(f"{_REGISTRY}._write_generation",),
        why="a client's new generation (1 MiB from the CSPRNG), SSE-KMS under the data key",
        access=(
            Access("s3:PutObject", ENTROPY, {"s3:x-amz-server-side-encryption": "aws:kms"}),
            through_s3("GenerateDataKey"),
        ),
    ),
    Entry(
        id="autoid.entropy.list",
        service="s3",
        operation="ListObjectsV2",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.s3.ObjectStore.list_keys",
        callers=(f"{_REGISTRY}._delete_unused",),
        why="the client's generation objects, to purge those its record no longer names",
        access=(Access("s3:ListBucket", TRANSFER_BUCKET, {"s3:prefix": ENTROPY_PREFIX + "<client>/"}),),
    ),
    Entry(
        id="autoid.entropy.purge-list",
        service="s3",
        operation="ListObjectVersions",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.s3.ObjectStore.purge",
        callers=(f"{_REGISTRY}._delete_unused",),
        why="every version of a generation past its grace (Prefix = its exact key)",
        access=(
            Access("s3:ListBucketVersions", TRANSFER_BUCKET, {"s3:prefix": ENTROPY_PREFIX + "<client>/<generation>"}),
        ),
    ),
    Entry(
        id="autoid.entropy.purge-delete",
        service="s3",
        operation="DeleteObject",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.s3.ObjectStore.purge",
        callers=(f"{_REGISTRY}._delete_unused",),
        why="each version of it, by VersionId: s3:DeleteObjectVersion",
        access=(Access("s3:DeleteObjectVersion", ENTROPY),),
    ),
    Entry(
        id="autoid.nonce.record",
        service="dynamodb",
        operation="PutItem",
        functions=functions(AUTO_ID),
        site="chalicelib.aws.dynamodb.ItemTable.put",
        callers=(f"{_SERVICE}._authenticate",),
        why="the single-use nonce, a conditional put once the proof holds",
        access=(item("PutItem", "autoid-nonce#<client>#<nonce>"),),
    ),
    Entry(
        id="autoid.nonce.release",
        service="dynamodb",
        operation="DeleteItem",
        functions=functions(AUTO_ID),
        site="chalicelib.aws.dynamodb.ItemTable.delete",
        callers=(f"{_SERVICE}.identify",),
        why="a request that failed with a 503 after its nonce was recorded gives it back, so its retry may pass",
        access=(item("DeleteItem", "autoid-nonce#<client>#<nonce>"),),
    ),
    Entry(
        id="autoid.serve.secret",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=functions(AUTO_ID),
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_SERVICE}._credential", f"{_SERVICE}._secret"),
        why="a secret a client's policy allows, under <prefix>/autoid/. The operator creates it, under Secrets "
        "Manager's default key aws/secretsmanager, whose key policy lets every principal of the account use it through "
        "Secrets Manager: no KMS permission in the role (README 'Autonomous identification')",
        access=secret_read(secret("{prefix}/autoid/<secret>"), data_key=False),
    ),
    Entry(
        id="autoid.serve.imported",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=functions(AUTO_ID),
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_SERVICE}._credential", f"{_SERVICE}._secret"),
        why="or an imported secret (<prefix>/imported/), which the import wrote under the data key",
        access=secret_read(secret("{prefix}/imported/<secret>"), tags={"credport:imported": "true"}),
    ),
    Entry(
        id="autoid.serve.role",
        service="sts",
        operation="AssumeRole",
        functions=functions(AUTO_ID),
        site="chalicelib.aws.sts.Sts.assume_role",
        callers=(f"{_SERVICE}._credential",),
        why="or a role a client's policy allows, named <prefix>-autoid-* (any path, any account). The role's trust "
        "policy must trust the auto_id function's role too; it is the operator's, not in this repository",
        access=(
            Access(
                "sts:AssumeRole",
                "arn:aws:iam::{account}:role/{prefix}-autoid-<role-name>",
                {"sts:RoleSessionName": "autoid-<client>"},
            ),
        ),
    ),
    Entry(
        id="autoid.rotate.publish",
        service="s3",
        operation="PutObject",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=("chalicelib.autoid.scheduled.ScheduledRotation._rotate",),
        why="the new server JWKS, to the public bucket (SSE-S3)",
        access=(Access("s3:PutObject", obj("public_bucket", KEYS_OBJECT)),),
    ),
    Entry(
        id="autoid.rotate.announce",
        service="sns",
        operation="Publish",
        functions=functions(ROTATE_AUTOID),
        site="chalicelib.aws.sns.Publisher.publish",
        callers=("chalicelib.autoid.scheduled.ScheduledRotation._rotate",),
        why="autoid-keys-rotated: every container drops its cached server keys",
        access=(Access("sns:Publish", KEY_EVENTS),),
    ),
)
