"""The token service v2 settings (issue #18): enabled algorithms, the legacy one, claims layout and namespace,
the policy file's place, the Organizations lookup role."""

from __future__ import annotations

import pytest

from chalicelib.config import Env
from tests.unit.test_config import problems, settings


def test_defaults() -> None:
    s = settings()
    assert s.token_algorithms == ("RS256", "ES384")
    assert s.token_legacy_algorithm == "RS256"
    assert s.token_claims == "namespaced"
    assert s.token_claims_namespace == "http://127.0.0.1:8000/"
    assert s.token_policy_file is None
    assert s.organization_lookup_role_arn is None


def test_the_namespace_follows_the_issuer() -> None:
    assert settings(**{Env.ISSUER: "https://id.example.com"}).token_claims_namespace == "https://id.example.com/"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ES384", ("ES384",)), ("ES256, RS256", ("ES256", "RS256")), ("RS256,ES256,ES384", ("RS256", "ES256", "ES384"))],
)
def test_algorithms_in_the_order_given(raw: str, expected: tuple[str, ...]) -> None:
    assert settings(**{Env.TOKEN_ALGORITHMS: raw}).token_algorithms == expected


@pytest.mark.parametrize("raw", ["HS256", "none", "RS256,RS256", "PS256", "rs256", ",", "ES512"])
def test_algorithms_outside_the_registry_or_repeated_are_refused(raw: str) -> None:
    assert [p for p in problems(**{Env.TOKEN_ALGORITHMS: raw}) if p.startswith(Env.TOKEN_ALGORITHMS)]


def test_the_legacy_variable_is_a_one_item_list_whose_keys_keep_their_names() -> None:
    s = settings(**{Env.TOKEN_ALGORITHM: "ES256"})
    assert (s.token_algorithms, s.token_legacy_algorithm) == (("ES256",), "ES256")
    s = settings(**{Env.TOKEN_ALGORITHM: "ES256", Env.TOKEN_ALGORITHMS: "ES256,ES384"})
    assert (s.token_algorithms, s.token_legacy_algorithm) == (("ES256", "ES384"), "ES256")
    (problem,) = problems(**{Env.TOKEN_ALGORITHM: "ES256", Env.TOKEN_ALGORITHMS: "RS256"})
    assert problem.startswith(f"{Env.TOKEN_ALGORITHM}: must be one of {Env.TOKEN_ALGORITHMS}")


def test_claims_layout_and_namespace() -> None:
    assert settings(**{Env.TOKEN_CLAIMS: "flat"}).token_claims == "flat"
    assert problems(**{Env.TOKEN_CLAIMS: "nested"})[0].startswith(Env.TOKEN_CLAIMS)
    assert settings(**{Env.TOKEN_CLAIMS_NAMESPACE: "urn:example:aws"}).token_claims_namespace == "urn:example:aws"
    for bad in ("http://example.com/", "aws", "https://has space", "urn:x"):
        assert problems(**{Env.TOKEN_CLAIMS_NAMESPACE: bad})[0].startswith(Env.TOKEN_CLAIMS_NAMESPACE)


@pytest.mark.parametrize(
    "raw",
    [".chalice/token-policy.json", "/etc/policy.json", "chalicelib/../x.json", "chalicelib/p.yaml", "chalicelib/"],
)
def test_the_policy_file_must_be_shipped_in_chalicelib(raw: str) -> None:
    (problem,) = problems(**{Env.TOKEN_POLICY_FILE: raw})
    assert problem.startswith(f"{Env.TOKEN_POLICY_FILE}: must be a .json file under chalicelib/")


def test_the_organization_lookup_role_is_the_one_the_policy_may_assume() -> None:
    ok = "arn:aws:iam::999999999999:role/ops/credport-dev-org-lookup"
    assert settings(**{Env.ORGANIZATION_LOOKUP_ROLE_ARN: ok}).organization_lookup_role_arn == ok
    (problem,) = problems(**{Env.ORGANIZATION_LOOKUP_ROLE_ARN: "arn:aws:iam::999999999999:role/org-reader"})
    assert "must name a role credport-dev-org-lookup" in problem
    assert problems(**{Env.ORGANIZATION_LOOKUP_ROLE_ARN: "not-an-arn"})[0].startswith(Env.ORGANIZATION_LOOKUP_ROLE_ARN)
