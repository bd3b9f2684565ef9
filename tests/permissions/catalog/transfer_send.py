"""Secret transfer, sending side: client registrations (``clients/`` objects, via S3 events) and sends (``POST
/transfer/clients/{id}/send``, a registration's first send, the optional ``rotate_transfer_secrets`` schedule).

See :mod:`tests.permissions.catalog.transfer` for how S3 operations map to IAM actions.
"""

from __future__ import annotations

from chalicelib.transfer.importer import QUARANTINE
from chalicelib.transfer.sending import CLIENT_INDEX, CLIENTS, OUTBOX
from tests.permissions.catalog._common import (
    API,
    KEY_EVENTS,
    NOTIFY,
    ROTATE_TRANSFER,
    S3_EVENTS,
    TRANSFER_BUCKET,
    functions,
    item,
    maybe_missing,
    obj,
    secret,
    secret_read,
    secret_write,
    through_s3,
)
from tests.permissions.catalog.transfer import CLIENT_KEY, put_object
from tests.permissions.model import Access, Entry

# What a function needs for a transfer link: a session of the link-signer role (chalicelib/transfer/links.py).
LINK_SESSION = Access(
    "sts:AssumeRole",
    "arn:aws:iam::{account}:role/{prefix}-link-signer",
    {"sts:RoleSessionName": "credport-transfer-link"},
)

__all__ = ["ENTRIES"]

SENDERS = functions(API, ROTATE_TRANSFER, S3_EVENTS)
_SENDER = "chalicelib.transfer.sending.Sender"
CLIENT_SECRET = secret("{prefix}/transfer/<client>")
OUTBOX_FILE = obj("transfer_bucket", OUTBOX + "<client>/<version>.jwe")
CLIENT_FILE = obj("transfer_bucket", CLIENTS + "<client>/<file>")  # any other name under clients/
_PURGERS = (
    f"{_SENDER}.on_client_object",
    f"{_SENDER}._purge_private_key",
    f"{_SENDER}._purge_unproven",
    f"{_SENDER}._purge",
)
_INSPECTORS = (
    f"{_SENDER}.on_client_object",
    f"{_SENDER}._purge_unproven",
    f"{_SENDER}._purge",
    f"{_SENDER}._alarm_if_private",
)

ENTRIES = (
    # --- registrations --------------------------------------------------------------------------------------------
    Entry(
        id="transfer.clients.read",
        service="s3",
        operation="GetObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.get",
        callers=_INSPECTORS,
        why="a client's uploaded public key (clients/<id>/public.pem), or any other file under clients/: exactly "
        "the version its S3 event names (GetObject with VersionId: s3:GetObjectVersion; the latest, s3:GetObject, "
        "only for an event without one), read up to the inspection limit to judge what it holds; and before a "
        "purge of a file that held no private key, each other version it removes, so a private key among them "
        "still raises the alarm",
        access=(
            Access("s3:GetObjectVersion", CLIENT_KEY),
            Access("s3:GetObjectVersion", CLIENT_FILE),
            Access("s3:GetObject", CLIENT_KEY),
            Access("s3:GetObject", CLIENT_FILE),
            through_s3("Decrypt"),
        ),
    ),
    Entry(
        id="transfer.clients.alarm",
        service="sns",
        operation="Publish",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.sns.Publisher.publish",
        callers=(*_INSPECTORS, f"{_SENDER}._purge_private_key", f"{_SENDER}._alarm"),
        why="a private key uploaded by mistake (in the version an event names, or in another version a purge "
        "removes): the alarm on the key-events topic, before the purge",
        access=(Access("sns:Publish", KEY_EVENTS),),
    ),
    Entry(
        id="transfer.clients.purge-list",
        service="s3",
        operation="ListObjectVersions",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.purge",
        callers=_PURGERS,
        why="every version of an uploaded private key, or of a file that cannot be proven harmless (too large to "
        "inspect, not provably public), under any name in clients/ (Prefix = its exact key)",
        access=(
            Access("s3:ListBucketVersions", TRANSFER_BUCKET, {"s3:prefix": CLIENTS + "<client>/public.pem"}),
            Access("s3:ListBucketVersions", TRANSFER_BUCKET, {"s3:prefix": CLIENTS + "<client>/<file>"}),
        ),
    ),
    Entry(
        id="transfer.clients.purge-delete",
        service="s3",
        operation="DeleteObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.purge",
        callers=_PURGERS,
        why="each version (and delete marker) of the purged file, by VersionId: s3:DeleteObjectVersion",
        access=(Access("s3:DeleteObjectVersion", CLIENT_KEY), Access("s3:DeleteObjectVersion", CLIENT_FILE)),
    ),
    Entry(
        id="transfer.clients.purge-record",
        service="s3",
        operation="PutObject",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=(f"{_SENDER}.on_client_object", f"{_SENDER}._purge_unproven"),
        why="a file purged unproven (anything but a valid public key at clients/<id>/public.pem: nothing under "
        "clients/ is ever copied) leaves a record (reason, size and version, no content) before its purge",
        access=put_object(QUARANTINE + CLIENTS + "<client>/<file>.error.json"),
    ),
    Entry(
        id="transfer.clients.register",
        service="dynamodb",
        operation="PutItem",
        functions=functions(S3_EVENTS),
        site="chalicelib.aws.dynamodb.ItemTable.put",
        callers=(f"{_SENDER}.on_client_object",),
        why="the client's profile (its public key) and its entry in the client index",
        access=(item("PutItem", "transfer-client#<client>"), item("PutItem", CLIENT_INDEX)),
    ),
    # --- sends ----------------------------------------------------------------------------------------------------
    Entry(
        id="transfer.send.profile",
        service="dynamodb",
        operation="GetItem",
        functions=SENDERS,
        site="chalicelib.aws.dynamodb.ItemTable.get",
        callers=(f"{_SENDER}.send",),
        why="the client's registered public key",
        access=(item("GetItem", "transfer-client#<client>"),),
    ),
    Entry(
        id="transfer.send.describe",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=SENDERS,
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_SENDER}._version_to_send",),
        why="the client's secret: its versions and stages (an unfinished send's AWSPENDING version is finished)",
        access=maybe_missing("secretsmanager:DescribeSecret", CLIENT_SECRET),
    ),
    Entry(
        id="transfer.send.create",
        service="secretsmanager",
        operation="CreateSecret",
        functions=SENDERS,
        site="chalicelib.aws.secrets.SecretStore.create",
        callers=(f"{_SENDER}._version_to_send",),
        why="a new client's secret, under the data key (no tags)",
        access=secret_write("CreateSecret", CLIENT_SECRET),
    ),
    Entry(
        id="transfer.send.new-version",
        service="secretsmanager",
        operation="PutSecretValue",
        functions=SENDERS,
        site="chalicelib.aws.secrets.SecretStore.put_value",
        callers=(f"{_SENDER}._version_to_send",),
        why="the value to send, staged AWSPENDING until its sealed copy exists",
        access=secret_write("PutSecretValue", CLIENT_SECRET),
    ),
    Entry(
        id="transfer.send.read",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=SENDERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_SENDER}.send",),
        why="the value of exactly the version being sent, to seal it",
        access=secret_read(CLIENT_SECRET),
    ),
    Entry(
        id="transfer.send.seal",
        service="s3",
        operation="PutObject",
        functions=SENDERS,
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=(f"{_SENDER}.send",),
        why="the sealed copy, outbox/<client>/<version>.jwe",
        access=put_object(OUTBOX + "<client>/<version>.jwe"),
    ),
    Entry(
        id="transfer.send.promote",
        service="secretsmanager",
        operation="UpdateSecretVersionStage",
        functions=SENDERS,
        site="chalicelib.aws.secrets.SecretStore.move_stage",
        callers=(f"{_SENDER}.send",),
        why="the sealed version becomes AWSCURRENT",
        access=(Access("secretsmanager:UpdateSecretVersionStage", CLIENT_SECRET),),
    ),
    Entry(
        id="transfer.send.finish",
        service="secretsmanager",
        operation="UpdateSecretVersionStage",
        functions=SENDERS,
        site="chalicelib.aws.secrets.SecretStore.remove_stage",
        callers=(f"{_SENDER}.send",),
        why="announced: the version loses AWSPENDING, the send is finished",
        access=(Access("secretsmanager:UpdateSecretVersionStage", CLIENT_SECRET),),
    ),
    Entry(
        id="transfer.send.link-session",
        service="sts",
        operation="AssumeRole",
        functions=SENDERS,
        site="chalicelib.aws.sts.Sts.assume_role",
        callers=(f"{_SENDER}.send", "chalicelib.transfer.links.LinkSigner.link"),
        why="a session of the link-signer role made for the link's lifetime (chained from Lambda's: an hour at most), "
        "so the link dies when it says; its trust delegates to IAM, hence this permission",
        access=(LINK_SESSION,),
    ),
    Entry(
        id="transfer.send.link",
        service="s3",
        operation="PresignGetObject",
        functions=SENDERS,
        site="chalicelib.aws.s3.ObjectStore.presign_get",
        callers=(f"{_SENDER}.send", "chalicelib.transfer.links.LinkSigner.link"),
        why="the link in the notification, signed locally with the link-signer session: the recipient's GET is "
        "authorised as that role (template.yaml LinkSignerRole: outbox/ files only), not as this function; what "
        "this function needs for it is to assume the role",
        access=(LINK_SESSION,),
    ),
    Entry(
        id="transfer.send.notify",
        service="sns",
        operation="Publish",
        functions=SENDERS,
        site="chalicelib.aws.sns.Publisher.publish",
        callers=(f"{_SENDER}.send",),
        why="the notification (the link, never the secret), filtered per client by its client_id attribute",
        access=(Access("sns:Publish", NOTIFY),),
    ),
    Entry(
        id="transfer.rotate.clients",
        service="dynamodb",
        operation="Query",
        functions=functions(ROTATE_TRANSFER),
        site="chalicelib.aws.dynamodb.ItemTable.query",
        callers=(f"{_SENDER}.rotate_all",),
        why="the scheduled rotation lists every registered client (pk transfer-clients)",
        access=(item("Query", CLIENT_INDEX),),
    ),
    Entry(
        id="transfer.fetch.origin",
        service="s3",
        operation="PresignGetObject",
        functions=functions(API),
        site="chalicelib.aws.s3.ObjectStore.presign_get",
        callers=("chalicelib.transfer.fetch.endpoint_of",),
        why="POST /transfer/import with a link: a probe URL is presigned only to learn the S3 endpoint's origin",
        access=(),
        no_access="presigning is local (no request); the probe URL is parsed, never fetched. The caller's own link "
        "is fetched over HTTPS and authorised as the caller who presigned it, not as this function",
    ),
)
