"""The name of every environment variable credport reads, and the stack output that fills each resource name."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["STACK_OUTPUTS", "Env"]


class Env:
    """The name of every environment variable credport reads (names, not secrets: hence the noqa on S105)."""

    PREFIX = "CREDPORT_PREFIX"
    STAGE = "CREDPORT_STAGE"
    ISSUER = "CREDPORT_ISSUER"
    # Resource names, filled from template.yaml (Globals on SAM, stack outputs for `chalice deploy`).
    TRANSFER_BUCKET = "CREDPORT_TRANSFER_BUCKET"
    PUBLIC_BUCKET = "CREDPORT_PUBLIC_BUCKET"
    NOTIFY_TOPIC_ARN = "CREDPORT_NOTIFY_TOPIC_ARN"
    KEY_EVENTS_TOPIC_ARN = "CREDPORT_KEY_EVENTS_TOPIC_ARN"
    STATE_TABLE = "CREDPORT_STATE_TABLE"
    DATA_KEY_ARN = "CREDPORT_DATA_KEY_ARN"
    SESSION_KEY_SECRET_ARN = "CREDPORT_SESSION_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    IMPORT_KEY_SECRET_ARN = "CREDPORT_IMPORT_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    AUTOID_KEY_SECRET_ARN = "CREDPORT_AUTOID_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    AUTOID_SESSION_KEY_SECRET_ARN = "CREDPORT_AUTOID_SESSION_KEY_SECRET_ARN"  # noqa: S105 (a name, not a secret)
    LINK_SIGNER_ROLE_ARN = "CREDPORT_LINK_SIGNER_ROLE_ARN"
    # Token service.
    TOKEN_AUDIENCES = "CREDPORT_TOKEN_AUDIENCES"  # noqa: S105
    TOKEN_DEFAULT_AUDIENCE = "CREDPORT_TOKEN_DEFAULT_AUDIENCE"  # noqa: S105
    TOKEN_EXCLUSIVE_AUDIENCES = "CREDPORT_TOKEN_EXCLUSIVE_AUDIENCES"  # noqa: S105
    TOKEN_DEFAULT_TTL = "CREDPORT_TOKEN_DEFAULT_TTL"  # noqa: S105
    TOKEN_MAX_TTL = "CREDPORT_TOKEN_MAX_TTL"  # noqa: S105
    TOKEN_MIN_TTL = "CREDPORT_TOKEN_MIN_TTL"  # noqa: S105
    TOKEN_ALGORITHMS = "CREDPORT_TOKEN_ALGORITHMS"  # noqa: S105
    TOKEN_ALGORITHM = "CREDPORT_TOKEN_ALGORITHM"  # noqa: S105 (before v2: one algorithm; its keys keep their names)
    TOKEN_CLAIMS = "CREDPORT_TOKEN_CLAIMS"  # noqa: S105
    TOKEN_CLAIMS_NAMESPACE = "CREDPORT_TOKEN_CLAIMS_NAMESPACE"  # noqa: S105
    TOKEN_POLICY_FILE = "CREDPORT_TOKEN_POLICY_FILE"  # noqa: S105
    ORGANIZATION_LOOKUP_ROLE_ARN = "CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN"
    TOKEN_SIGNER = "CREDPORT_TOKEN_SIGNER"  # noqa: S105
    TOKEN_ORGANIZATION_ID = "CREDPORT_TOKEN_ORGANIZATION_ID"  # noqa: S105
    SIGNING_KEY_ROTATION_DAYS = "CREDPORT_SIGNING_KEY_ROTATION_DAYS"
    JWKS_MAX_AGE = "CREDPORT_JWKS_MAX_AGE"
    JWKS_EDGE_MAX_AGE = "CREDPORT_JWKS_EDGE_MAX_AGE"
    # Sessions.
    SESSION_TOKEN_TTL = "CREDPORT_SESSION_TOKEN_TTL"  # noqa: S105
    SESSION_MAX_AGE = "CREDPORT_SESSION_MAX_AGE"
    SESSION_REFRESH_WINDOW = "CREDPORT_SESSION_REFRESH_WINDOW"
    # Autonomous identification and transfer.
    AUTOID_GRACE_PERIOD = "CREDPORT_AUTOID_GRACE_PERIOD"
    AUTOID_ROTATION_DAYS = "CREDPORT_AUTOID_ROTATION_DAYS"
    AUTOID_CREDENTIALS_TTL = "CREDPORT_AUTOID_CREDENTIALS_TTL"
    AUTOID_SERVING_PREFIXES = "CREDPORT_AUTOID_SERVING_PREFIXES"
    TRANSFER_LINK_TTL = "CREDPORT_TRANSFER_LINK_TTL"
    TRANSFER_IMPORT_PREFIX = "CREDPORT_TRANSFER_IMPORT_PREFIX"
    TRANSFER_ROTATION_DAYS = "CREDPORT_TRANSFER_ROTATION_DAYS"
    # AWS client behaviour.
    AWS_MAX_ATTEMPTS = "CREDPORT_AWS_MAX_ATTEMPTS"
    AWS_TIMEOUT = "CREDPORT_AWS_TIMEOUT"


# Env var -> the template.yaml output holding its value (the same expression as its entry in Globals).
STACK_OUTPUTS: Mapping[str, str] = {
    Env.PREFIX: "Prefix",
    Env.ISSUER: "Issuer",
    Env.TOKEN_SIGNER: "TokenSigner",
    Env.TRANSFER_BUCKET: "TransferBucketName",
    Env.PUBLIC_BUCKET: "PublicBucketName",
    Env.NOTIFY_TOPIC_ARN: "NotifyTopicArn",
    Env.KEY_EVENTS_TOPIC_ARN: "KeyEventsTopicArn",
    Env.STATE_TABLE: "StateTableName",
    Env.DATA_KEY_ARN: "DataKeyArn",
    Env.SESSION_KEY_SECRET_ARN: "SessionKeySecretArn",
    Env.IMPORT_KEY_SECRET_ARN: "ImportKeySecretArn",
    Env.AUTOID_KEY_SECRET_ARN: "AutoIdKeySecretArn",
    Env.AUTOID_SESSION_KEY_SECRET_ARN: "AutoIdSessionKeySecretArn",
    Env.LINK_SIGNER_ROLE_ARN: "LinkSignerRoleArn",
    Env.TOKEN_ORGANIZATION_ID: "TokenOrganizationId",  # template parameter OrganizationId
    Env.JWKS_EDGE_MAX_AGE: "JwksEdgeMaxAge",  # the issuer distribution's cache MaxTTL (IssuerDistribution)
}
