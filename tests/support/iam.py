"""IAM things moto needs set up as AWS has them."""

from __future__ import annotations

__all__ = ["existing_role", "existing_user"]


def existing_role(name: str, role_id: str, *, path: str = "/", account_id: str = "123456789012") -> str:
    """Create role ``name`` in moto with the unique id a test's caller identity carries (``AROA…`` before
    ``:session``), and return its ARN. credport reads a same-account caller's role with iam:GetRole and checks
    the id (chalicelib/role_arns.py); AWS picks role ids, moto a random one, so the test sets it."""
    import json

    import boto3
    from moto.iam.models import iam_backends

    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    arn = str(
        boto3.client("iam").create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
    )
    backend = iam_backends[account_id]["global"]
    role = backend.get_role(name)
    backend.roles[role_id] = backend.roles.pop(role.id)
    role.id = role_id
    return arn


def existing_user(
    name: str, user_id: str, *, path: str = "/", tags: dict[str, str] | None = None, account_id: str = "123456789012"
) -> str:
    """Create IAM user ``name`` in moto with the unique id a test's caller identity carries (``AIDA…``), and return
    its ARN. credport reads a same-account user with iam:GetUser for its tags and checks the id
    (chalicelib/role_arns.py); moto picks a random one, so the test sets it."""
    import boto3
    from moto.iam.models import iam_backends

    extra = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}
    arn = str(boto3.client("iam").create_user(UserName=name, Path=path, **extra)["User"]["Arn"])
    iam_backends[account_id]["global"].get_user(name).id = user_id
    return arn
