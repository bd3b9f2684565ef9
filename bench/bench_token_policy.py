"""Token policy: one ``TokenPolicy.check`` against a 20-rule document (issue #18: at most 20 µs), which runs for
every token request a mint plan does not answer.

Three requests, each answered only once all 20 rules are accounted for: allowed by the last rule; matched by no rule
(refused without one); and refused by a rule whose principals match, after every later rule was ruled out. Every
rule has ARN patterns (exact-prefix and wildcard-in-the-account forms), an organization, principal tags, three
audiences, request-tag-key patterns. The policy's index (chalicelib/tokens/policy_index.py) rules out by the ARN's
resource the rules that cannot match, so only the rules whose resource prefix fits are checked in full; a policy
whose every rule matches any resource (``arn:aws:iam::*:*``) is checked rule by rule, as every policy was before.
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
        "refused, every rule tried": dataclasses.replace(svc, audiences=("https://x",)),
    }


def run(quick: bool = False) -> list[Figure]:
    number, repeat = (20, 1) if quick else (5000, 21)
    checked = policy()

    def check(request: MintRequest) -> None:
        try:  # noqa: SIM105 (contextlib.suppress would add its own cost to what is measured)
            checked.check(request)
        except PolicyRefusal:
            pass

    key = ECKey.import_key(ec.generate_private_key(ec.SECP384R1()))
    claims = {"sub": f"arn:aws:iam::{ACCOUNT}:role/ci/runner", "aud": "sts.amazonaws.com", "exp": 2_000_000_000}
    figures = []
    for (name, request), slug in zip(requests().items(), ("last_rule", "no_rule", "refused"), strict=True):
        measured = paired(
            functools.partial(check, request),
            lambda: jwt.encode({"alg": "ES384"}, claims, key, algorithms=["ES384"]),
            number=number,
            baseline_number=max(number // 10, 2),
            rounds=repeat,
            better="cheaper",
        )
        figures.append(
            Figure(
                key=f"tokens.policy.{slug}",
                name=f"token policy check, 20 rules: {name}",
                value=measured.subject * 1e6,
                unit="µs",
                baseline="joserfc jwt.encode ES384 (the token it guards)",
                baseline_value=measured.baseline * 1e6,
                # The target is absolute: the signature it guards is context, not a ratio to hold.
                rounds=measured.rounds,
                target=f"<= {TARGET_SECONDS * 1e6:.0f} µs",
                met=measured.subject <= TARGET_SECONDS,
            )
        )
    return figures
