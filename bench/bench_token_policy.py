"""Token policy: one ``TokenPolicy.check`` against a 20-rule document (issue #18: at most 20 µs), which runs for
every token request a mint plan does not answer.

Three requests, each answered only once all 20 rules are accounted for: allowed by the last rule; matched by no rule
(refused without one); and refused by a rule whose principals match, no later rule allowing it. The first 19 rules
have two ARN patterns each (an exact prefix, and a wildcard in the account), an organization, principal tags, three
audiences, an algorithm and request-tag-key patterns; the last, ``ci``, one ARN pattern, principal tags, two
audiences and request-tag-key patterns. The policy's index (chalicelib/tokens/policy_index.py) rules out by the
caller's ARN the rules whose patterns cannot match it, so only the rest are checked in full (here one rule or none).

A fourth figure, with no target, shows the case the index cannot narrow: 20 rules without ARN patterns, all
matching the caller, the first 19 refusing the audience and the last allowing it: every rule is checked in full.
The baseline, for scale, is what the same request costs to sign: joserfc ``jwt.encode`` ES384.
"""

from __future__ import annotations

import dataclasses
import functools
import json

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from bench.harness import Figure, paired
from chalicelib.tokens.policy import MintRequest, TokenPolicy
from chalicelib.tokens.policy_errors import PolicyRefusal

TARGET_SECONDS = 20e-6
NO_TARGET = "none: the worst case, for scale"
ACCOUNT, ORG = "111122223333", "o-a1b2c3d4e5"


def policy() -> TokenPolicy:
    rules = [
        {
            "name": f"team-{i}",
            "principals": {
                "arn": [f"arn:aws:iam::{ACCOUNT}:role/team{i}/*", f"arn:aws:iam::*:role/svc-{i}-*"],
                "org_id": [ORG],
                "principal_tags": {"team": [f"t{i}", "shared"]},
            },
            "audiences": [f"https://svc{i}.example.com", "sts.amazonaws.com", f"https://api{i}.example.org/*"],
            "max_ttl": 900,
            "algorithms": ["ES384"],
            "request_tag_keys": ["team", "env-*"],
        }
        for i in range(19)
    ]
    rules.append(
        {
            "name": "ci",
            "principals": {"arn": [f"arn:aws:iam::{ACCOUNT}:role/ci/*"], "principal_tags": {"team": ["build"]}},
            "audiences": ["https://a.example.com", "https://b.example.com/*"],
            "max_ttl": 900,
            "request_tag_keys": ["team", "env-*"],
        }
    )
    document = json.dumps({"version": "credport-token-policy/1", "rules": rules})
    return TokenPolicy.from_json(document, source="bench", max_ttl=3600, algorithms=["RS256", "ES384"])


def requests() -> dict[str, MintRequest]:
    ci = MintRequest(
        subject=f"arn:aws:iam::{ACCOUNT}:role/ci/runner",
        account=ACCOUNT,
        org_id=ORG,
        principal_tags={"Team": "build", "cost-center": "42"},
        audiences=("https://b.example.com/x",),
        ttl=600,
        algorithm="ES384",
        tag_keys=("env-prod", "team"),
    )
    other = dataclasses.replace(ci, subject="arn:aws:iam::444455556666:role/other", account="444455556666")
    svc = dataclasses.replace(ci, subject=f"arn:aws:iam::{ACCOUNT}:role/svc-3-a", principal_tags={"team": "shared"})
    return {
        "allowed by the last of 20 rules": ci,
        "no rule matches the principal": dataclasses.replace(other, principal_tags=None),
        "refused by a matching rule, no later rule allowing": dataclasses.replace(svc, audiences=("https://x",)),
    }


def unnarrowed_policy() -> TokenPolicy:
    """20 rules the index cannot narrow (no ARN pattern): all match the ``ci`` caller, only the last allows it."""
    rules = [
        {
            "name": f"everyone-{i}",
            "principals": {"org_id": [ORG], "principal_tags": {"team": ["build", "shared"]}},
            "audiences": [f"https://svc{i}.example.com", f"https://api{i}.example.org/*"],
            "max_ttl": 900,
            "request_tag_keys": ["team", "env-*"],
        }
        for i in range(19)
    ]
    rules.append({"name": "last", "principals": {}, "audiences": ["https://b.example.com/*"], "max_ttl": 900})
    document = json.dumps({"version": "credport-token-policy/1", "rules": rules})
    return TokenPolicy.from_json(document, source="bench", max_ttl=3600, algorithms=["RS256", "ES384"])


def run(quick: bool = False) -> list[Figure]:
    number, repeat = (20, 1) if quick else (5000, 21)
    checked = policy()

    def check(checked: TokenPolicy, request: MintRequest) -> None:
        try:  # noqa: SIM105 (contextlib.suppress would add its own cost to what is measured)
            checked.check(request)
        except PolicyRefusal:
            pass

    key = ECKey.import_key(ec.generate_private_key(ec.SECP384R1()))
    claims = {"sub": f"arn:aws:iam::{ACCOUNT}:role/ci/runner", "aud": "sts.amazonaws.com", "exp": 2_000_000_000}
    figures = []
    asked = requests()
    cases = [
        (checked, f"20 rules: {name}", request, slug)
        for (name, request), slug in zip(asked.items(), ("last_rule", "no_rule", "refused"), strict=True)
    ]
    unnarrowed, ci = unnarrowed_policy(), asked["allowed by the last of 20 rules"]
    assert unnarrowed.check(ci) == "last", "the worst case must walk every rule"
    name = "20 rules without ARN patterns, all matching (the index cannot narrow): allowed by the last"
    cases.append((unnarrowed, name, ci, "unnarrowed"))
    for checked_policy, name, request, slug in cases:
        measured = paired(
            functools.partial(check, checked_policy, request),
            lambda: jwt.encode({"alg": "ES384"}, claims, key, algorithms=["ES384"]),
            number=number,
            baseline_number=max(number // 10, 2),
            rounds=repeat,
            better="cheaper",
        )
        figures.append(
            Figure(
                key=f"tokens.policy.{slug}",
                name=f"token policy check, {name}",
                value=measured.subject * 1e6,
                unit="µs",
                baseline="joserfc jwt.encode ES384 (the token it guards)",
                baseline_value=measured.baseline * 1e6,
                # The target is absolute: the signature it guards is context, not a ratio to hold.
                rounds=measured.rounds,
                target=NO_TARGET if slug == "unnarrowed" else f"<= {TARGET_SECONDS * 1e6:.0f} µs",
                met=None if slug == "unnarrowed" else measured.subject <= TARGET_SECONDS,
            )
        )
    return figures
