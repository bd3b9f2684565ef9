"""template.yaml's parameters refuse what AWS refuses: a rotation faster than Secrets Manager allows, and a
deployed stack without a real https issuer. The local Template applies AllowedPattern as CloudFormation does."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from local.template import Template, TemplateError, load_template
from tests.conftest import REPO_ROOT

DOCUMENT = load_template(REPO_ROOT / "template.yaml")
ISSUER = "https://id.example.com"


def stack(**parameters: str) -> Template:
    return Template(DOCUMENT, parameters=parameters, account_id="123456789012", region="us-east-1", stack_name="s")


def refused(name: str, value: str, **others: str) -> None:
    with pytest.raises(TemplateError, match=rf"^parameter {name}=.* does not match its AllowedPattern$"):
        stack(**{name: value, **others})


# Secrets Manager rotates at most every four hours (RotationRulesType.ScheduleExpression; Secrets Manager User
# Guide, "Rotation schedules"): rate() in hours or days up to 999, cron() with 0 minutes and a * year.

TOO_OFTEN_OR_INVALID = [
    "rate(1 hour)",
    "rate(3 hours)",
    "rate(0 hours)",
    "rate(0 days)",
    "rate(30 minutes)",
    "rate(1 minute)",
    "rate(1000 days)",  # beyond the 999-day maximum
    "rate(04 hours)",
    "rate(7 days) ",
    "cron(0 * * * ? *)",  # every hour
    "cron(0 */2 * * ? *)",
    "cron(0 */3 * * ? *)",
    "cron(0 */7 * * ? *)",  # 0, 7, 14, 21, then 00:00 again: three hours
    "cron(0 0/11 * * ? *)",  # 0, 11, 22, then 00:00: two hours
    "cron(0 1-3 * * ? *)",
    "cron(0 0,2 * * ? *)",
    "cron(*/5 8 * * ? *)",  # minutes must be 0
    "cron(30 8 * * ? *)",
    "cron(0 8 * * ? 2030)",  # the year must be *
    "cron(0 24 * * ? *)",
    "cron(rate(1 hour))",
    "",
]

AWS_DOCUMENTED = [
    "rate(4 hours)",
    "rate(12 hours)",
    "rate(23 hours)",
    "rate(1 day)",
    "rate(10 days)",
    "rate(999 days)",
    "cron(0 4/12 * * ? *)",
    "cron(0 8/8 * * ? *)",
    "cron(0 2/10 * * ? *)",
    "cron(0 8 1/7 * ? *)",
    "cron(0 0 ? * SUN#1 *)",
    "cron(0 16 L * ? *)",
    "cron(0 10 ? * MON-FRI *)",
]


@pytest.mark.parametrize("expression", TOO_OFTEN_OR_INVALID)
def test_a_rotation_schedule_aws_refuses_is_refused(expression: str) -> None:
    refused("SessionKeyRotationSchedule", expression, Issuer=ISSUER)


@pytest.mark.parametrize("expression", AWS_DOCUMENTED)
def test_documented_rotation_schedules_are_accepted(expression: str) -> None:
    assert stack(Issuer=ISSUER, SessionKeyRotationSchedule=expression).parameters["SessionKeyRotationSchedule"] == (
        expression
    )


def _firing_hours(field: str) -> list[int]:
    """The hours of a day a cron hours field fires at (the subset of cron syntax this test generates)."""
    if "," in field:
        return sorted({hour for part in field.split(",") for hour in _firing_hours(part)})
    if "/" in field:
        start, step = field.split("/")
        return list(range(0 if start == "*" else int(start), 24, int(step)))
    if "-" in field:
        low, high = field.split("-")
        return list(range(int(low), int(high) + 1))
    return list(range(24)) if field == "*" else [int(field)]


def _shortest_gap(hours: list[int]) -> int:
    """Hours between firings, the gap from the day's last firing to the next day's first included."""
    gaps = [b - a for a, b in itertools.pairwise(hours)] + [24 + hours[0] - hours[-1]]
    return min(gaps)


def _hour_fields() -> list[str]:
    starts = [str(h) for h in range(24)] + ["*"]
    fields = [*starts, *(f"{s}/{step}" for s in starts for step in range(1, 24))]
    fields += [f"{a}-{a + span}" for a in range(0, 20, 3) for span in (1, 3, 4)]
    fields += ["0,4", "0,3", "4,16", "2,12,22", "0,12,20"]
    return fields


def test_every_accepted_cron_fires_four_hours_apart_or_more() -> None:
    """Over every hours field of the forms H, H/S, */S, ranges and lists: an accepted expression never fires
    twice within four hours; and every H/S that fires more than once a day, all gaps >= 4 h, is accepted
    (what stays refused fires once a day, as the plain H form does; lists and ranges are refused)."""
    pattern = DOCUMENT["Parameters"]["SessionKeyRotationSchedule"]["AllowedPattern"]
    for field in _hour_fields():
        hours = _firing_hours(field)
        accepted = re.fullmatch(pattern, f"cron(0 {field} * * ? *)") is not None
        if accepted:
            assert _shortest_gap(hours) >= 4, field
        elif "/" in field and len(hours) > 1 and _shortest_gap(hours) >= 4:
            pytest.fail(f"{field} fires every 4 hours or less often, yet is refused")
        elif "/" not in field and "-" not in field and "," not in field and field != "*":
            pytest.fail(f"{field}: a single hour is refused")


# The issuer: a deployed stack must name its real https issuer; only the local stack uses http loopback.

ISSUER_SPEC: dict[str, Any] = DOCUMENT["Parameters"]["Issuer"]


def test_without_cloudfront_a_deploy_must_name_its_issuer() -> None:
    # The Default is "" only so that IssuerDistribution=cloudfront can omit it; the Rules refuse it otherwise.
    assert ISSUER_SPEC["Default"] == ""
    assert stack().rule_failures() == [
        "IssuerIsNamedWithoutCloudFront: Issuer is required (the https URL relying parties fetch discovery and JWKS "
        "from)."
    ]
    assert stack(Issuer=ISSUER).rule_failures() == []


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:8000",  # the local stack's own issuer: a deployed stack must never keep it
        "http://localhost:8000",
        "http://id.example.com",
        "https://localhost",
        "https://localhost:8443/tenant",
        "https://127.0.0.1",
        "https://127.0.0.1:8443",
        "https://[::1]:8443",
        "https://id.example.com/",
        "https://id.example.com/tenant/",
        "https://id.example.com?x=1",
        "https://id.example.com#f",
        "https://user@id.example.com",
        "ftp://id.example.com",
    ],
)
def test_cloudformation_refuses_an_issuer_that_is_not_https_or_is_loopback(issuer: str) -> None:
    assert re.fullmatch(ISSUER_SPEC["AllowedPattern"], issuer) is None


@pytest.mark.parametrize(
    "issuer",
    [
        # IAM's CreateOpenIDConnectProvider: the URL "should not contain a port number".
        "https://id.example.com:8443",
        "https://id.example.com:443",
        "https://id.example.com:8443/tenant",
        # Loopback in any case, with a trailing dot, or a name under localhost (RFC 6761).
        "https://LOCALHOST",
        "https://LocalHost/tenant",
        "https://localhost.",
        "https://localhost./tenant",
        "https://LOCALHOST.",
        "https://idp.localhost",
        "https://idp.LOCALHOST.",
        "https://127.0.0.1.",
        "https://127.1",
        "https://127.0.0.1./tenant",
        "https://[::1]",
        "https://[::1]/tenant",
        # What could spell a host in another way than it reads.
        "https://local%68ost",
        "https://id.example.com\\@localhost",
    ],
)
def test_cloudformation_refuses_an_issuer_with_a_port_or_any_spelling_of_loopback(issuer: str) -> None:
    assert re.fullmatch(ISSUER_SPEC["AllowedPattern"], issuer) is None
    refused("Issuer", issuer)


@pytest.mark.parametrize(
    "issuer",
    [
        ISSUER,
        "https://id.example.com/tenant-a",
        "https://ID.Example.com",
        "https://localhost.example.com",  # localhost is a label of the name, not the name
        "https://notlocalhost.example",
        "https://127.example.com",
    ],
)
def test_an_https_issuer_is_accepted_without_any_waiver(issuer: str) -> None:
    template = stack(Issuer=issuer)
    assert template.parameters["Issuer"] == issuer
    assert template.waived == []


def test_the_local_stack_waives_the_issuer_pattern_for_loopback_http_only_and_says_so() -> None:
    template = stack(Issuer="http://127.0.0.1:8000")
    assert template.waived == [
        "parameter Issuer=http://127.0.0.1:8000: an http loopback issuer (AWS stacks take https only), "
        "accepted against its AllowedPattern"
    ]
    refused("Issuer", "http://id.example.com")
    refused("Issuer", "https://localhost:8443")  # the waiver is for the local stack's http, not for loopback https
    refused("SessionKeyRotationSchedule", "rate(1 hour)", Issuer="http://127.0.0.1:8000")  # no other waiver
