"""Sessions: the session key's versions read by every bearer check, and its Secrets Manager rotation function.

Readers: the API handler (``POST /session``, ``/session/refresh``, ``GET /session``, and the session an auto-id
answer starts) and the ``bearer`` authorizer. ``rotate_session_key`` is invoked by Secrets Manager with the secret's
ARN as ``SecretId`` (Secrets Manager User Guide, "Rotation by Lambda function": the function's role needs the
secret's read/write actions and the KMS key's, which is the data key here).
"""

from __future__ import annotations

from tests.permissions.catalog._common import (
    API,
    BEARER,
    KEY_EVENTS,
    ROTATE_SESSION,
    functions,
    secret,
    secret_read,
    secret_write,
)
from tests.permissions.model import Access, Entry

__all__ = ["ENTRIES"]

SESSION_KEY = secret("{session_key_secret}")
READERS = functions(API, BEARER)
_STORE = "chalicelib.sessions.keys.SessionKeyStore"
_ROTATION = "chalicelib.sessions.rotation.SessionKeyRotation"

ENTRIES = (
    Entry(
        id="sessions.keys.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=READERS,
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_STORE}._reload",),
        why="when the current version took over (LastRotatedDate), which bounds the previous key's life",
        access=(Access("secretsmanager:DescribeSecret", SESSION_KEY),),
    ),
    Entry(
        id="sessions.keys.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=READERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_STORE}._reload",),
        why="the AWSCURRENT and AWSPREVIOUS keys, every five minutes and on an unknown kid (rate-limited)",
        access=secret_read(SESSION_KEY),
    ),
    Entry(
        id="sessions.rotation.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_ROTATION}.handle",),
        why="each rotation step first checks the secret is the session key and the token one of its versions",
        access=(Access("secretsmanager:DescribeSecret", SESSION_KEY),),
    ),
    Entry(
        id="sessions.rotation.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_ROTATION}._create", f"{_ROTATION}._test"),
        why="createSecret looks for its AWSPENDING version; testSecret signs and verifies with it, against AWSCURRENT",
        access=secret_read(SESSION_KEY),
    ),
    Entry(
        id="sessions.rotation.create",
        service="secretsmanager",
        operation="PutSecretValue",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.put_value",
        callers=(f"{_ROTATION}._create",),
        why="createSecret: the new AWSPENDING version (256 random bits) under the rotation's token",
        access=secret_write("PutSecretValue", SESSION_KEY),
    ),
    Entry(
        id="sessions.rotation.finish",
        service="secretsmanager",
        operation="UpdateSecretVersionStage",
        functions=functions(ROTATE_SESSION),
        site="chalicelib.aws.secrets.SecretStore.move_stage",
        callers=(f"{_ROTATION}._finish",),
        why="finishSecret: AWSCURRENT moves to the new version",
        access=(Access("secretsmanager:UpdateSecretVersionStage", SESSION_KEY),),
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
