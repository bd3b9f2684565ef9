"""Sessions: the session keys' versions read by every bearer check, and their Secrets Manager rotation function.

Two keys: the session key signs every session but auto-id clients', the auto-id session key only theirs.
Readers: the API handler (``POST /session``, ``/session/refresh``, ``GET /session``) and the ``bearer`` authorizer;
an auto-id session's check also reads its client's record. ``auto_id`` reads the auto-id session key only.
``rotate_session_key`` rotates both: Secrets Manager invokes it with the secret's ARN as ``SecretId`` (Secrets
Manager User Guide, "Rotation by Lambda function": the function's role needs the secret's read/write actions and
the KMS key's, which is the data key here).
"""

from __future__ import annotations

from tests.permissions.catalog._common import (
    API,
    AUTO_ID,
    BEARER,
    KEY_EVENTS,
    ROTATE_SESSION,
    functions,
    item,
    secret,
    secret_read,
    secret_write,
)
from tests.permissions.model import Access, Entry

__all__ = ["ENTRIES"]

SESSION_KEY = secret("{session_key_secret}")
AUTOID_SESSION_KEY = secret("{autoid_session_key_secret}")
READERS = functions(API, BEARER)
# The auto-id session key is read by every verifier and by the code starting auto-id sessions (the auto_id
# function's POST /auto-id); the main session key never by the latter.
AUTOID_SESSION_READERS = functions(API, BEARER, AUTO_ID)
_STORE = "chalicelib.sessions.keys.SessionKeyStore"
_ROTATION = "chalicelib.sessions.rotation.SessionKeyRotation"
_CLIENTS = "autoid-clients"  # the auto-id registry's partition (chalicelib.autoid.clients._PARTITION)

ENTRIES = (
    Entry(
        id="sessions.keys.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=READERS,
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_STORE}._load",),
        why="when the current version took over (LastRotatedDate), which bounds the previous key's life",
        access=(Access("secretsmanager:DescribeSecret", SESSION_KEY),),
    ),
    Entry(
        id="sessions.keys.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=READERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_STORE}._load",),
        why="the AWSCURRENT and AWSPREVIOUS keys, every five minutes and on an unknown kid (rate-limited)",
        access=secret_read(SESSION_KEY),
    ),
    Entry(
        id="sessions.autoid-keys.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=AUTOID_SESSION_READERS,
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_STORE}._load",),
        why="the auto-id session key's LastRotatedDate, which bounds its previous version's life",
        access=(Access("secretsmanager:DescribeSecret", AUTOID_SESSION_KEY),),
    ),
    Entry(
        id="sessions.autoid-keys.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=AUTOID_SESSION_READERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_STORE}._load",),
        why="the auto-id session key (AWSCURRENT, AWSPREVIOUS): signs auto-id sessions, verifies them anywhere",
        access=secret_read(AUTOID_SESSION_KEY),
    ),
    Entry(
        id="sessions.autoid-clients.read",
        service="dynamodb",
        operation="GetItem",
        functions=READERS,
        site="chalicelib.aws.dynamodb.ItemTable.get",
        callers=(
            "chalicelib.sessions.revocation.CachedClientStanding._record",
            "chalicelib.autoid.clients.ClientRegistry.get",
        ),
        why="an auto-id session's client record (revoked? generation still accepted?), cached five minutes at most",
        access=(item("GetItem", _CLIENTS),),
    ),
    Entry(
        id="sessions.rotation.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_ROTATION}.handle",),
        why="each rotation step first checks the secret is a session key and the token one of its versions",
        access=tuple(Access("secretsmanager:DescribeSecret", key) for key in (SESSION_KEY, AUTOID_SESSION_KEY)),
    ),
    Entry(
        id="sessions.rotation.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_ROTATION}._create", f"{_ROTATION}._test"),
        why="createSecret looks for its AWSPENDING version; testSecret signs and verifies with it, against AWSCURRENT",
        access=secret_read(SESSION_KEY) + secret_read(AUTOID_SESSION_KEY),
    ),
    Entry(
        id="sessions.rotation.create",
        service="secretsmanager",
        operation="PutSecretValue",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.put_value",
        callers=(f"{_ROTATION}._create",),
        why="createSecret: the new AWSPENDING version (256 random bits) under the rotation's token",
        access=secret_write("PutSecretValue", SESSION_KEY) + secret_write("PutSecretValue", AUTOID_SESSION_KEY),
    ),
    Entry(
        id="sessions.rotation.finish",
        service="secretsmanager",
        operation="UpdateSecretVersionStage",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.move_stage",
        callers=(f"{_ROTATION}._finish",),
        why="finishSecret: AWSCURRENT moves to the new version",
        access=tuple(
            Access("secretsmanager:UpdateSecretVersionStage", key) for key in (SESSION_KEY, AUTOID_SESSION_KEY)
        ),
    ),
    Entry(
        id="sessions.rotation.announce",
        service="sns",
        operation="Publish",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.sns.Publisher.publish",
        callers=(f"{_ROTATION}._announce",),
        why="session-key-rotated: every container drops its cached keys",
        access=(Access("sns:Publish", KEY_EVENTS),),
    ),
)
