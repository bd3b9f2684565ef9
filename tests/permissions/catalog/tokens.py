"""The token service: both signers (``kms``, ``envelope``), the key ring, and the signing-key rotation.

Who runs what: the API handler signs (``/token``), reads the keys (``/token``, JWKS, discovery) and, on a fresh
deployment or after an interrupted run, runs a whole rotation itself (``TokenService.issue``/``jwks`` ->
``KeyRotation.ensure_keys``, which resumes any unfinished run, a revocation included). The schedule
``rotate_signing_keys`` runs rotations (``KeyRotation.rotate``, resuming an unfinished run first). The operator's
``credport-admin token revoke-current`` starts revocations with the operator's own credentials: not a Lambda call,
but its steps are resumed by both functions, so they are here.

KMS: "Sign, GetPublicKey, DescribeKey ... addressed by alias are authorised on the key" (KMS Developer Guide,
"Using aliases to control access": the alias ARN is not the resource). CreateAlias/UpdateAlias/DeleteAlias need the
permission on the alias (IAM policy) and on the key(s): UpdateAlias on both the current and the new target (KMS API
Reference, "Required permissions" of each). CreateKey with Tags also needs kms:TagResource ("Permissions for tags").
"""

from __future__ import annotations

from chalicelib.org_paths import SESSION_NAME as ORG_LOOKUP_SESSION_NAME
from chalicelib.tokens.envelope_keys import secret_namespace
from chalicelib.tokens.rotation import OIDC_PREFIX
from tests.permissions.catalog._common import (
    API,
    KEY_EVENTS,
    ROTATE_SIGNING,
    SIGNING_ALIAS,
    SIGNING_KEY_TAGS,
    functions,
    item,
    maybe_missing,
    missing,
    obj,
    resource_tags,
    secret,
    secret_read,
    secret_write,
    signing,
)
from tests.permissions.model import Access, Entry

__all__ = ["ENTRIES"]

KEY_USERS = functions(API, ROTATE_SIGNING)
OLD_KEY = "arn:aws:kms:{region}:{account}:key/<old-signing-key-id>"
_KMS = "chalicelib.tokens.kms_keys.KmsKeyStore"
_ENVELOPE = "chalicelib.tokens.envelope_keys.EnvelopeKeyStore"
_ROTATION = "chalicelib.tokens.rotation.KeyRotation"
_REQUEST_TAGS = {f"aws:RequestTag/{k}": v for k, v in SIGNING_KEY_TAGS.items()}
_ENVELOPE_SECRET = secret(secret_namespace("{prefix}") + "<label>")
_ENVELOPE_TAGS = {"credport:prefix": "{prefix}", "credport:purpose": "token-signing"}
# A scheduled rotation (rotate_signing_keys) makes the new pending key; every API handler container re-reads the roles
# within its refresh interval (300 s), so it describes and opens that key while it is minutes old.
_AFTER_A_ROTATION = {API: ROTATE_SIGNING}
# The OU-path lookup's session (chalicelib/org_paths.py): the role is in the management account, whichever it is.
ORG_LOOKUP_SESSION = Access(
    "sts:AssumeRole",
    "arn:aws:iam::{account}:role/{prefix}-org-lookup",
    {"sts:RoleSessionName": ORG_LOOKUP_SESSION_NAME},
)
ORG_LOOKUP_SESSION_AT_A_PATH = Access(
    "sts:AssumeRole",
    "arn:aws:iam::{account}:role/<role-path>/{prefix}-org-lookup",
    {"sts:RoleSessionName": ORG_LOOKUP_SESSION_NAME},
)

ENTRIES = (
    # --- the kms signer -------------------------------------------------------------------------------------------
    Entry(
        id="tokens.kms.roles",
        service="kms",
        operation="DescribeKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.describe",
        callers=(f"{_KMS}.roles", "chalicelib.aws.kms.KeyService.alias_target"),
        why="which key holds each role: DescribeKey of alias/<prefix>/signing/{previous,current,pending}, at the "
        "start of each rotation",
        access=(signing("DescribeKey", by_alias=True),),
        key_made_by=_AFTER_A_ROTATION,
    ),
    Entry(
        id="tokens.kms.usable-keys",
        service="kms",
        operation="GetPublicKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.public_key",
        callers=(f"{_KMS}.roles", f"{_KMS}._usable_roles", "chalicelib.aws.kms.KeyService.usable_public_key"),
        why="the key ring (tokens, JWKS, discovery): GetPublicKey of alias/<prefix>/signing/{previous,current,"
        "pending}, the key behind each alias that can sign and its public half in one call",
        access=(signing("GetPublicKey", by_alias=True),),
        key_made_by=_AFTER_A_ROTATION,
    ),
    Entry(
        id="tokens.kms.revoke-state",
        service="kms",
        operation="DescribeKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.describe",
        callers=(f"{_KMS}.revoke",),
        why="a resumed revocation checks the revoked key's state before disabling it",
        access=(signing("DescribeKey"),),
    ),
    Entry(
        id="tokens.kms.public-key",
        service="kms",
        operation="GetPublicKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.public_key",
        callers=(f"{_KMS}.open",),
        why="opening a key the roles' lookup did not just read (its public half; the key ring's keys come with it)",
        access=(signing("GetPublicKey"),),
        key_made_by=_AFTER_A_ROTATION,
    ),
    Entry(
        id="tokens.kms.sign",
        service="kms",
        operation="Sign",
        functions=functions(API),
        site="chalicelib.aws.kms.KeyService.sign",
        callers=(f"{_KMS}._signer",),
        why="one KMS Sign per token (GET /token), with the current key",
        access=(signing("Sign"),),
    ),
    Entry(
        id="tokens.kms.find-unrecorded",
        service="tag",
        operation="GetResources",
        functions=KEY_USERS,
        site="chalicelib.aws.tagging.TaggedResources.find",
        callers=(f"{_KMS}.create",),
        why="before creating a key, one made under the same label whose creation was not journaled (a crash) is looked "
        "for by its tags; tag:GetResources has no resource-level permission (Resource *)",
        access=(Access("tag:GetResources", "*"),),
    ),
    Entry(
        id="tokens.kms.found-describe",
        service="kms",
        operation="DescribeKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.describe",
        callers=(f"{_KMS}.create", f"{_KMS}._made_here"),
        why="a key found by credport's tags is adopted only if it is an enabled signing key of the configured spec",
        access=(signing("DescribeKey"),),
        key_made_by=_AFTER_A_ROTATION,
    ),
    Entry(
        id="tokens.kms.found-policy",
        service="kms",
        operation="GetKeyPolicy",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.key_policy",
        callers=(f"{_KMS}.create", f"{_KMS}._made_here"),
        why="... and only if its key policy is exactly the one credport writes (tags alone can be copied)",
        access=(signing("GetKeyPolicy"),),
        key_made_by=_AFTER_A_ROTATION,
    ),
    Entry(
        id="tokens.kms.caller",
        service="sts",
        operation="GetCallerIdentity",
        functions=KEY_USERS,
        site="chalicelib.aws.sts.Sts.caller_identity",
        callers=("chalicelib.tokens.service._caller_arn",),
        why="the new key's key policy grants its creator: the function's own role, from GetCallerIdentity",
        access=(),
        no_access="STS API Reference, GetCallerIdentity: 'No permissions are required to perform this operation'",
    ),
    Entry(
        id="tokens.kms.create",
        service="kms",
        operation="CreateKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.create_key",
        callers=(f"{_KMS}.create",),
        why="a rotation's (or the bootstrap's) new key, tagged credport:prefix/purpose/label, with a key policy "
        "granting its creator (chalicelib.tokens.kms_keys.signing_key_policy)",
        access=tuple(
            Access(
                action,
                "*",
                {
                    **_REQUEST_TAGS,
                    "aws:TagKeys": tuple(SIGNING_KEY_TAGS),
                    "kms:KeySpec": "RSA_2048",
                    "kms:KeyUsage": "SIGN_VERIFY",
                },
            )
            for action in ("kms:CreateKey", "kms:TagResource")
        ),
    ),
    Entry(
        id="tokens.kms.update-alias",
        service="kms",
        operation="UpdateAlias",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.set_alias",
        callers=(f"{_KMS}.point",),
        why="moving a role to another key: previous <- current <- pending <- the new key",
        access=(
            Access("kms:UpdateAlias", SIGNING_ALIAS),
            signing("UpdateAlias"),  # the new target
            signing("UpdateAlias", OLD_KEY),  # the alias's current target
        ),
    ),
    Entry(
        id="tokens.kms.create-alias",
        service="kms",
        operation="CreateAlias",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.set_alias",
        callers=(f"{_KMS}.point",),
        why="the first time a role gets a key (bootstrap), UpdateAlias answers NotFound and the alias is created",
        access=(Access("kms:CreateAlias", SIGNING_ALIAS), signing("CreateAlias")),
    ),
    Entry(
        id="tokens.kms.delete-alias",
        service="kms",
        operation="DeleteAlias",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.delete_alias",
        callers=(f"{_KMS}.point",),
        why="a revocation of a key that was already previous drops the previous role",
        access=(Access("kms:DeleteAlias", SIGNING_ALIAS), signing("DeleteAlias", OLD_KEY)),
    ),
    Entry(
        id="tokens.kms.disable",
        service="kms",
        operation="DisableKey",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.disable",
        callers=(f"{_KMS}.revoke",),
        why="a resumed revocation stops the revoked key signing at once",
        access=(signing("DisableKey", OLD_KEY),),
    ),
    Entry(
        id="tokens.kms.retire",
        service="kms",
        operation="ScheduleKeyDeletion",
        functions=KEY_USERS,
        site="chalicelib.aws.kms.KeyService.schedule_deletion",
        callers=(f"{_KMS}.retire",),
        why="the key leaving the previous role (or a revoked one) is scheduled for deletion in 7 days",
        access=(signing("ScheduleKeyDeletion", OLD_KEY),),
    ),
    Entry(
        id="tokens.caller-role",
        service="iam",
        operation="GetRole",
        functions=functions(API),
        site="chalicelib.aws.iam.Iam.get_role",
        callers=("chalicelib.role_arns.RoleArns._read_role",),
        why="a caller's role of credport's own account: its real ARN (path included) for the token's or the session's "
        "sub, and its tags (principal_tags), once per role and container (GET /token, POST /session)",
        access=(Access("iam:GetRole", "arn:aws:iam::{account}:role/<caller-role>"),),
    ),
    Entry(
        id="tokens.caller-user",
        service="iam",
        operation="GetUser",
        functions=functions(API),
        site="chalicelib.aws.iam.Iam.get_user",
        callers=("chalicelib.role_arns.RoleArns._read_user",),
        why="a caller that is an IAM user of credport's own account: its tags (principal_tags) and unique id, once per "
        "user and container (GET /token, POST /session). GetUser reads the function's own account only",
        # <caller-role>'s sample is a path and a name ("team/ci-runner"), a user's as much as a role's.
        access=(Access("iam:GetUser", "arn:aws:iam::{account}:user/<caller-role>"),),
    ),
    Entry(
        id="tokens.org-path.session",
        service="sts",
        operation="AssumeRole",
        functions=functions(API),
        site="chalicelib.aws.sts.Sts.assume_role",
        callers=("chalicelib.org_paths.OrgPaths._organizations",),
        why="with CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN: a session of the operator's lookup role, named "
        "<prefix>-org-lookup (any path; in the organization's management account), for the caller account's OU path "
        "(ou_path). Its trust policy must trust this function's role; it is the operator's, not in this repository",
        access=(ORG_LOOKUP_SESSION, ORG_LOOKUP_SESSION_AT_A_PATH),
    ),
    Entry(
        id="tokens.org-path.parents",
        service="organizations",
        operation="ListParents",
        functions=functions(API),
        site="chalicelib.aws.organizations.Organizations.parent",
        callers=("chalicelib.org_paths.OrgPaths._lookup",),
        why="the caller account's parent, then each OU's, up to the root, signed with the lookup role's session: "
        "authorised by that role's policy in the management account (the operator's), not this function's; what this "
        "function needs for it is to assume the role",
        access=(ORG_LOOKUP_SESSION,),
    ),
    # --- the rotation, whichever the signer -----------------------------------------------------------------------
    Entry(
        id="tokens.rotation.journal-read",
        service="dynamodb",
        operation="GetItem",
        functions=KEY_USERS,
        site="chalicelib.aws.dynamodb.ItemTable.get",
        callers=(f"{_ROTATION}._journal",),
        why="the rotation journal (pk signing-keys): the plan and the step reached",
        access=(item("GetItem", "signing-keys"),),
    ),
    Entry(
        id="tokens.rotation.journal-write",
        service="dynamodb",
        operation="PutItem",
        functions=KEY_USERS,
        site="chalicelib.aws.dynamodb.ItemTable.put",
        callers=(f"{_ROTATION}._write",),
        why="each step advances the journal with a conditional put (optimistic version)",
        access=(item("PutItem", "signing-keys"),),
    ),
    Entry(
        id="tokens.rotation.publish",
        service="s3",
        operation="PutObject",
        functions=KEY_USERS,
        site="chalicelib.aws.s3.ObjectStore.put",
        callers=(f"{_ROTATION}.publish",),
        why="the JWKS and discovery documents, to the public bucket (SSE-S3: no KMS key) for the issuer's CDN",
        access=tuple(
            Access("s3:PutObject", obj("public_bucket", OIDC_PREFIX + name))
            for name in ("jwks.json", "openid-configuration")
        ),
    ),
    Entry(
        id="tokens.rotation.announce",
        service="sns",
        operation="Publish",
        functions=KEY_USERS,
        site="chalicelib.aws.sns.Publisher.publish",
        callers=(f"{_ROTATION}._step_announce", f"{_ROTATION}._alarm"),
        why="signing-key-rotated/-revoked to every container, and the alarm of a failed step. The topic is encrypted "
        "with the AWS managed key aws/sns, whose key policy lets every principal of the account use it through SNS",
        access=(Access("sns:Publish", KEY_EVENTS),),
    ),
    # --- the envelope signer --------------------------------------------------------------------------------------
    Entry(
        id="tokens.envelope.roles",
        service="dynamodb",
        operation="GetItem",
        functions=KEY_USERS,
        site="chalicelib.aws.dynamodb.ItemTable.get",
        callers=(f"{_ENVELOPE}.roles",),
        why="which secret holds each role: one item (pk signing-keys, sk envelope-roles)",
        access=(item("GetItem", "signing-keys"),),
    ),
    Entry(
        id="tokens.envelope.point",
        service="dynamodb",
        operation="PutItem",
        functions=KEY_USERS,
        site="chalicelib.aws.dynamodb.ItemTable.put",
        callers=(f"{_ENVELOPE}.point",),
        why="a rotation moves every role at once by writing the roles item whole",
        access=(item("PutItem", "signing-keys"),),
    ),
    Entry(
        id="tokens.envelope.open",
        service="secretsmanager",
        operation="GetSecretValue",
        functions=KEY_USERS,
        site="chalicelib.aws.secrets.SecretStore.get_value",
        callers=(f"{_ENVELOPE}.open",),
        why="each envelope key's private PEM, once per container (encrypted under the data key)",
        access=secret_read(_ENVELOPE_SECRET, tags=_ENVELOPE_TAGS),
    ),
    Entry(
        id="tokens.envelope.find-unrecorded",
        service="secretsmanager",
        operation="DescribeSecret",
        functions=KEY_USERS,
        site="chalicelib.aws.secrets.SecretStore.describe",
        callers=(f"{_ENVELOPE}.create",),
        why="a key secret made under the same label before (a crash before the journal write) is found by its name",
        access=maybe_missing("secretsmanager:DescribeSecret", _ENVELOPE_SECRET, resource_tags(_ENVELOPE_TAGS)),
    ),
    Entry(
        id="tokens.envelope.create",
        service="secretsmanager",
        operation="CreateSecret",
        functions=KEY_USERS,
        site="chalicelib.aws.secrets.SecretStore.create",
        callers=(f"{_ENVELOPE}.create",),
        why="a new envelope key: its secret, under the data key, tagged credport:prefix/purpose (CreateSecret with "
        "Tags also needs secretsmanager:TagResource: Secrets Manager API Reference, CreateSecret)",
        access=(
            *secret_write(
                "CreateSecret",
                _ENVELOPE_SECRET,
                {
                    **{f"aws:RequestTag/{k}": v for k, v in _ENVELOPE_TAGS.items()},
                    "aws:TagKeys": tuple(_ENVELOPE_TAGS),
                },
            ),
            Access(
                "secretsmanager:TagResource",
                missing(_ENVELOPE_SECRET),
                {
                    **{f"aws:RequestTag/{k}": v for k, v in _ENVELOPE_TAGS.items()},
                    "aws:TagKeys": tuple(_ENVELOPE_TAGS),
                },
            ),
        ),
    ),
    Entry(
        id="tokens.envelope.retire",
        service="secretsmanager",
        operation="DeleteSecret",
        functions=KEY_USERS,
        site="chalicelib.aws.secrets.SecretStore.delete",
        callers=(f"{_ENVELOPE}.retire",),
        why="a retired or revoked envelope key's secret is scheduled for deletion (7-day recovery window)",
        access=(Access("secretsmanager:DeleteSecret", _ENVELOPE_SECRET, resource_tags(_ENVELOPE_TAGS)),),
    ),
)
