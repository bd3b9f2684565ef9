"""local/iam/conditions.py: the condition operators, set qualifiers and policy variables, on vectors taken from the
AWS documentation (each table names its page), and the refusals (unknown operator, unknown key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from local.iam.conditions import Unresolved, UnsupportedCondition, conditions_hold, normalize_context


def holds(block: dict[str, Any], context: dict[str, Any] | None = None, *, variables: bool = True) -> bool:
    return conditions_hold(block, normalize_context(context or {}), variables=variables)


MISSING: dict[str, Any] = {}

# IAM User Guide, "IAM JSON policy elements: Condition operators" (one vector per example of the page).
OPERATOR_PAGE = [
    # String: the principal must carry the tag job-category=iamuser-admin; a missing tag fails.
    (
        {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        True,
    ),
    (
        {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        {"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"},
        False,
    ),
    ({"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, MISSING, False),
    (
        {"StringEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
        {"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"},
        True,
    ),
    # String with a policy variable: the S3 "home directory" listing (s3:prefix "", "home/", "home/${aws:username}/").
    (
        {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}},
        {"s3:prefix": "home/David/", "aws:username": "David"},
        True,
    ),
    (
        {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}},
        {"s3:prefix": "home/Adele/", "aws:username": "David"},
        False,
    ),
    (
        {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/"]}},
        {"s3:prefix": "", "aws:username": "David"},
        True,
    ),
    # Numeric: list up to 10 objects at a time.
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, True),
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, False),
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, MISSING, False),
    # Bool: the TLS-only Deny matches plain HTTP only.
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": False}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": True}, False),
    # Binary: compared byte for byte with the base64 value of the policy.
    (
        {"BinaryEquals": {"kms:EncryptionContext:blob": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}},
        {"kms:EncryptionContext:blob": b"BinaryValueInBase64"},
        True,
    ),
    (
        {"BinaryEquals": {"kms:EncryptionContext:blob": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}},
        {"kms:EncryptionContext:blob": b"other"},
        False,
    ),
    # IP address: 203.0.113.0/24, and IPv4 mixed with IPv6.
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.7"}, True),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.7"}, False),
    (
        {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]}},
        {"aws:SourceIp": "2001:db8:1234:5678::1"},
        True,
    ),
    ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "198.51.100.7"}, True),
    # ARN: the SQS queue policy for SNS (ArnEquals aws:SourceArn), and the page's StringLike-vs-ArnLike example.
    (
        {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}},
        {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"},
        True,
    ),
    ({"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-2:123456789012:TOPIC-ID"}}, MISSING, False),
    (
        {"StringLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}},
        {"aws:SourceArn": "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"},
        True,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}},
        {"aws:SourceArn": "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"},
        False,
    ),
    (
        {"ArnLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}},
        {"aws:SourceArn": "arn:aws:someservice:us-east-2:111122223333:finance/a/b.txt"},
        True,
    ),
    # "If the key ... is not present ... the condition is false. If the policy condition requires that the key is
    # not matched, such as StringNotLike or ArnNotLike, and the right key is not present, the condition is true."
    ({"StringNotLike": {"aws:SourceArn": "arn:aws:sns:*"}}, MISSING, True),
    ({"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}, MISSING, True),
    # ...IfExists: a missing key holds; a present key is checked. A Deny with StringNotEqualsIfExists still denies a
    # request whose key is missing.
    ({"StringLikeIfExists": {"aws:ResourceTag/size": ["t1.*", "t2.*", "m3.*"]}}, MISSING, True),
    (
        {"StringLikeIfExists": {"aws:ResourceTag/size": ["t1.*", "t2.*", "m3.*"]}},
        {"aws:ResourceTag/size": "t2.micro"},
        True,
    ),
    (
        {"StringLikeIfExists": {"aws:ResourceTag/size": ["t1.*", "t2.*", "m3.*"]}},
        {"aws:ResourceTag/size": "c5.large"},
        False,
    ),
    ({"StringNotEqualsIfExists": {"aws:ResourceTag/team": "blue"}}, MISSING, True),
    # Null: "true" the key is absent, "false" it is present.
    ({"Null": {"aws:ResourceTag/team": "true"}}, MISSING, True),
    ({"Null": {"aws:ResourceTag/team": "true"}}, {"aws:ResourceTag/team": "blue"}, False),
    ({"Null": {"aws:ResourceTag/team": "false"}}, {"aws:ResourceTag/team": "blue"}, True),
]

# IAM User Guide, "AWS: Allows access based on date and time" (aws:CurrentTime between two dates), and Date forms.
DATES = [
    (
        {
            "DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"},
            "DateLessThan": {"aws:CurrentTime": "2020-06-30T23:59:59Z"},
        },
        {"aws:CurrentTime": datetime(2020, 5, 1, tzinfo=UTC)},
        True,
    ),
    (
        {
            "DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"},
            "DateLessThan": {"aws:CurrentTime": "2020-06-30T23:59:59Z"},
        },
        {"aws:CurrentTime": datetime(2020, 7, 1, tzinfo=UTC)},
        False,
    ),
    ({"DateLessThan": {"aws:EpochTime": "1700000000"}}, {"aws:EpochTime": 1699999999}, True),
    ({"DateEquals": {"aws:CurrentTime": "2020-04-01"}}, {"aws:CurrentTime": "2020-04-01T00:00:00Z"}, True),
    ({"DateNotEquals": {"aws:CurrentTime": "2020-04-01"}}, MISSING, True),
]

# IAM User Guide, "Conditions with multiple context keys or values": operators AND, keys AND, values OR, and the
# values of a negated operator NOR.
MULTIPLE = [
    (
        {
            "StringEquals": {
                "aws:PrincipalTag/department": ["finance", "hr"],
                "aws:PrincipalTag/role": ["audit", "security"],
            }
        },
        {"aws:PrincipalTag/department": "hr", "aws:PrincipalTag/role": "audit"},
        True,
    ),
    (
        {
            "StringEquals": {
                "aws:PrincipalTag/department": ["finance", "hr"],
                "aws:PrincipalTag/role": ["audit", "security"],
            }
        },
        {"aws:PrincipalTag/department": "hr"},
        False,
    ),
    (
        {
            "StringEquals": {"aws:PrincipalTag/department": "hr"},
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::222222222222:user/*"},
        },
        {"aws:PrincipalTag/department": "hr", "aws:PrincipalArn": "arn:aws:iam::333333333333:user/x"},
        False,
    ),
    ({"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}, {"aws:PrincipalTag/role": "audit"}, False),
    (
        {"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}},
        {"aws:PrincipalTag/role": "security"},
        False,
    ),
    ({"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}}, {"aws:PrincipalTag/role": "dev"}, True),
]

# IAM User Guide, "Multivalued context key examples" (the Deny with ForAllValues:StringNotLike aws:TagKeys "key1*",
# its table) and "Creating a condition that tests multiple key values (set operations)" (the DynamoDB Thread table:
# ForAllValues:StringLike / ForAnyValue:StringLike over the requested attributes; an empty set: ForAllValues true,
# ForAnyValue false).
MULTIVALUED = [
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key1:legal"]}, False),
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key1:hr", "key1:personnel"]}, False),
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key2:audit"]}, True),
    ({"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, MISSING, True),
    (
        {"ForAllValues:StringLike": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
        {"dynamodb:Attributes": ["PostDateTime", "Message"]},
        True,
    ),
    (
        {"ForAllValues:StringLike": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
        {"dynamodb:Attributes": ["PostDateTime", "UserName"]},
        False,
    ),
    (
        {"ForAllValues:StringLike": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
        {"dynamodb:Attributes": []},
        True,
    ),
    (
        {"ForAnyValue:StringLike": {"dynamodb:Attributes": ["ID", "PostDateTime"]}},
        {"dynamodb:Attributes": ["UserName", "Message", "PostDateTime"]},
        True,
    ),
    (
        {"ForAnyValue:StringLike": {"dynamodb:Attributes": ["ID", "PostDateTime"]}},
        {"dynamodb:Attributes": ["UserName"]},
        False,
    ),
    ({"ForAnyValue:StringLike": {"dynamodb:Attributes": ["ID", "PostDateTime"]}}, {"dynamodb:Attributes": []}, False),
    ({"ForAnyValue:StringLike": {"dynamodb:Attributes": ["ID", "PostDateTime"]}}, MISSING, False),
    # Negated operators under a qualifier: per request value, NOR over the policy values.
    ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a", "c"]}, True),
    ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a", "b"]}, False),
    # Without a qualifier, one requested value is compared as a single-valued key.
    ({"StringEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["a"]}, True),
    ({"StringNotEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["b"]}, True),
    # ...IfExists with a qualifier: a missing key holds.
    ({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "a"}}, MISSING, True),
]

# KMS Developer Guide, "Use aliases to control access to KMS keys" / "kms:ResourceAliases": enable or disable keys
# only when all their aliases include "Test" (ForAllValues) and they have at least one (ForAnyValue); "Without the
# ForAnyValue condition, this policy statement would have allowed the principal to use KMS keys that had no aliases."
ALIASES = {
    "ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
    "ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
}
KMS = [
    (ALIASES, {"kms:ResourceAliases": ["alias/Test-1"]}, True),
    (ALIASES, {"kms:ResourceAliases": ["alias/Test-1", "alias/Production"]}, False),
    (ALIASES, {"kms:ResourceAliases": []}, False),
    ({"ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]}}, {"kms:ResourceAliases": []}, True),
    # KMS Developer Guide, "kms:ViaService": only through EC2 or RDS in us-west-2; a direct call has no kms:ViaService.
    (
        {"StringEquals": {"kms:ViaService": ["ec2.us-west-2.amazonaws.com", "rds.us-west-2.amazonaws.com"]}},
        {"kms:ViaService": "rds.us-west-2.amazonaws.com"},
        True,
    ),
    (
        {"StringEquals": {"kms:ViaService": ["ec2.us-west-2.amazonaws.com", "rds.us-west-2.amazonaws.com"]}},
        MISSING,
        False,
    ),
    (
        {"StringEquals": {"kms:ViaService": ["ec2.us-west-2.amazonaws.com", "rds.us-west-2.amazonaws.com"]}},
        {"kms:ViaService": "s3.us-west-2.amazonaws.com"},
        False,
    ),
]

# Amazon DynamoDB Developer Guide, "Using IAM policy conditions for fine-grained access control": items whose
# partition key is the caller's web-identity id (the page's ${www.amazon.com:user_id}, here the Cognito form).
LEADING_KEYS = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${cognito-identity.amazonaws.com:sub}"]}}
DYNAMODB = [
    (
        LEADING_KEYS,
        {"dynamodb:LeadingKeys": ["us-east-1:1234"], "cognito-identity.amazonaws.com:sub": "us-east-1:1234"},
        True,
    ),
    (
        LEADING_KEYS,
        {"dynamodb:LeadingKeys": ["us-east-1:9999"], "cognito-identity.amazonaws.com:sub": "us-east-1:1234"},
        False,
    ),
]


@pytest.mark.parametrize(
    ("block", "context", "expected"), [*OPERATOR_PAGE, *DATES, *MULTIPLE, *MULTIVALUED, *KMS, *DYNAMODB]
)
def test_documented_vectors(block: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert holds(block, context) is expected


def test_key_names_are_case_insensitive_values_are_not() -> None:
    # "Key names are case-insensitive. For example, aws:CurrentTime is equivalent to AWS:currenttime."
    assert holds({"StringEquals": {"AWS:PRINCIPALTAG/Team": "blue"}}, {"aws:PrincipalTag/team": "blue"})
    assert not holds({"StringEquals": {"aws:PrincipalTag/team": "Blue"}}, {"aws:PrincipalTag/team": "blue"})
    assert holds({"stringequals": {"aws:PrincipalTag/team": "blue"}}, {"aws:PrincipalTag/team": "blue"})


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("a${*}b", "a*b", True),  # ${*}: a literal asterisk, not a wildcard
        ("a${*}b", "axxb", False),
        ("a*b", "axxb", True),
        ("a${?}", "a?", True),
        ("a${?}", "ab", False),
        ("a?", "ab", True),
        ("${$}{x}", "${x}", True),
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("team-${aws:PrincipalTag/team, 'none'}", "team-none", True),  # a default value for a missing variable
    ],
)
def test_wildcards_and_special_variables(pattern: str, value: str, expected: bool) -> None:
    assert holds({"StringLike": {"aws:ResourceTag/x": pattern}}, {"aws:ResourceTag/x": value}) is expected


def test_variables_resolve_only_from_version_2012_10_17() -> None:
    block = {"StringEquals": {"s3:prefix": "${aws:username}"}}
    assert holds(block, {"s3:prefix": "David", "aws:username": "David"})
    assert not holds(block, {"s3:prefix": "David", "aws:username": "David"}, variables=False)
    assert holds(block, {"s3:prefix": "${aws:username}"}, variables=False)


def test_a_variable_value_is_literal_in_a_like_pattern() -> None:
    assert not holds({"StringLike": {"s3:prefix": "${aws:username}"}}, {"s3:prefix": "David", "aws:username": "*"})


def test_an_unresolved_variable_is_reported_not_matched() -> None:
    with pytest.raises(Unresolved):
        holds({"StringEquals": {"s3:prefix": "home/${aws:username}/"}}, {"s3:prefix": "home//"})


def test_arn_like_matches_component_by_component() -> None:
    role = "arn:aws:iam::111122223333:role/team/deploy"
    assert holds({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, {"aws:PrincipalArn": role})
    assert not holds({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, {"aws:PrincipalArn": role})
    assert not holds({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*"}}, {"aws:PrincipalArn": role})  # 4 parts
    assert holds({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, {"aws:PrincipalArn": role})


@pytest.mark.parametrize(
    "operator",
    ["StringEqualz", "StringMatches", "ForSomeValues:StringEquals", "NullIfExists", "ForAnyValue:Null", "IfExists"],
)
def test_an_unknown_operator_raises(operator: str) -> None:
    with pytest.raises(UnsupportedCondition, match="condition"):
        holds({operator: {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["a"]})


@pytest.mark.parametrize(
    "key",
    [
        "ec2:InstanceType",
        "aws:RequestedRegion",
        "kms:GrantIsForAWSResource",
        "aws:ResourceTag/",
        "www.amazon.com:user_id",
    ],
)
def test_an_unknown_key_raises_even_when_it_would_not_decide(key: str) -> None:
    # The IfExists form would hold for a missing key: the refusal is about the key, never a silent match or miss.
    with pytest.raises(UnsupportedCondition, match="not supported"):
        holds({"StringEqualsIfExists": {key: "x"}})
    with pytest.raises(UnsupportedCondition, match="not supported"):
        holds({"StringEquals": {"aws:TagKeys": "a"}, "StringNotEquals": {key: "x"}}, {"aws:TagKeys": ["b"]})


def test_an_unknown_key_in_a_variable_raises() -> None:
    with pytest.raises(UnsupportedCondition, match="not supported"):
        holds({"StringEquals": {"s3:prefix": "${www.amazon.com:user_id}"}}, {"s3:prefix": "x"})


@pytest.mark.parametrize(
    ("block", "what"),
    [
        ({"NumericEquals": {"s3:max-keys": "ten"}}, "numeric"),
        ({"DateLessThan": {"aws:CurrentTime": "yesterday"}}, "date"),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/33"}}, "CIDR"),
        ({"Bool": {"aws:SecureTransport": "yes"}}, "Bool"),
        ({"BinaryEquals": {"aws:ResourceTag/b": "not base64!"}}, "base64"),
    ],
)
def test_a_malformed_policy_value_raises(block: dict[str, Any], what: str) -> None:
    with pytest.raises(UnsupportedCondition, match=what):
        holds(block, {"s3:max-keys": "1", "aws:CurrentTime": datetime.now(UTC), "aws:SourceIp": "203.0.113.1"})


def test_a_malformed_request_value_does_not_match() -> None:
    assert not holds({"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "ten"})
    assert not holds({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "localhost"})


@pytest.mark.parametrize("operator", ["StringEquals", "StringNotEquals", "StringLike", "StringNotLike"])
def test_an_unqualified_operator_over_several_values_is_refused_not_guessed(operator: str) -> None:
    """AWS asks for ForAllValues/ForAnyValue on a multivalued key ("Multivalued context keys") and documents no
    reading of an unqualified operator over several values: a guess could make a Deny apply less often."""
    with pytest.raises(UnsupportedCondition, match="needs ForAllValues or ForAnyValue"):
        holds({operator: {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["a", "b"]})
