"""What the production parameter sets deploy for the issuer and the custom domains (template.yaml, resolved per set):
CloudFront with Origin Access Control in front of the private public bucket, certificates, alias records, the API's
base path mapping, the derived issuer; and the Rules that refuse the combinations AWS would not serve."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.tokens.discovery import openid_configuration
from chalicelib.tokens.rotation import OIDC_PREFIX
from local.provision import Provisioner
from local.template import Template, TemplateError, load_template
from tests.conftest import REPO_ROOT
from tests.deploy_parameter_sets import ACCOUNT_ID, REGION, A, B, C, resolved, rule_failures
from tests.unit.test_config import VALID

DOCUMENT = load_template(REPO_ROOT / "template.yaml")
CLOUDFRONT_HOSTED_ZONE = "Z2FDTNDATAQYW2"  # Route 53 API Reference, AliasTarget: every CloudFront distribution
ISSUER_RESOURCES = {
    "IssuerOriginAccessControl",
    "IssuerCachePolicy",
    "IssuerCdn",
    "PublicBucketPolicy",
    "IssuerCertificate",
    "IssuerRecordIpv4",
    "IssuerRecordIpv6",
}
API_DOMAIN_RESOURCES = {"ApiCertificate", "ApiDomainName", "ApiBasePathMapping", "ApiRecordIpv4"}


def deployed(parameters: dict[str, str]) -> dict[str, Any]:
    return resolved(DOCUMENT, parameters)


def value_of(expression: Any, parameters: dict[str, str], **attributes: dict[str, str]) -> Any:
    """An expression's value with these parameters (and the given resources' attributes), as CloudFormation has it."""
    template = Template(DOCUMENT, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    template.attributes.update(attributes)
    return template.resolve(expression)


def issuer_variable(document: dict[str, Any]) -> Any:
    return document["Globals"]["Function"]["Environment"]["Variables"]["CREDPORT_ISSUER"]


# (B) CloudFront, custom domains --------------------------------------------------------------------------------


def test_b_serves_the_issuer_documents_from_the_bucket_through_origin_access_control() -> None:
    resources = deployed(B)["Resources"]
    assert set(resources) >= ISSUER_RESOURCES | API_DOMAIN_RESOURCES
    oac = resources["IssuerOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    config = resources["IssuerCdn"]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    # The bucket's REST endpoint (not a website endpoint: OAC signs S3 API requests), no legacy OAI.
    assert origin["DomainName"] == {"Fn::GetAtt": ["PublicBucket", "RegionalDomainName"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["IssuerOriginAccessControl", "Id"]}
    behaviour = config["DefaultCacheBehavior"]
    assert config.get("CacheBehaviors", []) == []
    assert behaviour["TargetOriginId"] == origin["Id"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == behaviour["CachedMethods"] == ["GET", "HEAD"]
    assert behaviour["CachePolicyId"] == {"Ref": "IssuerCachePolicy"}
    # Its custom host, on a certificate CloudFront can use (us-east-1), TLS 1.2 and SNI.
    assert config["Aliases"] == [{"Fn::Sub": "${IssuerSubdomain}.${HostedZoneName}"}]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": {"Ref": "IssuerCertificate"},
        "SslSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }
    assert config["IPV6Enabled"] is True


def test_the_distribution_reaches_exactly_the_objects_the_rotation_publishes() -> None:
    """jwks_uri, under the issuer, is the distribution's path; OriginPath + that path is the object the rotation
    writes, and the bucket policy lets CloudFront read those two objects and nothing else."""
    resources = deployed(B)["Resources"]
    (origin,) = resources["IssuerCdn"]["Properties"]["DistributionConfig"]["Origins"]
    issuer = value_of(issuer_variable(DOCUMENT), B)
    discovery = openid_configuration(issuer, ["ES256"])
    assert discovery["issuer"] == "https://id.example.com"
    assert discovery["jwks_uri"].startswith("https://id.example.com/")  # on the distribution, not the API
    paths = [discovery["jwks_uri"].removeprefix(issuer), "/.well-known/openid-configuration"]
    objects = [(origin["OriginPath"] + path).lstrip("/") for path in paths]
    assert objects == [OIDC_PREFIX + "jwks.json", OIDC_PREFIX + "openid-configuration"]
    (statement,) = resources["PublicBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    arn = "arn:aws:s3:::credport-prod-public-123456789012"
    allowed = value_of(statement["Resource"], B, PublicBucket={"Arn": arn})
    assert sorted(allowed) == sorted(f"{arn}/{key}" for key in objects)


def test_b_bucket_policy_is_the_oac_statement_for_this_distribution_only() -> None:
    resources = deployed(B)["Resources"]
    policy = resources["PublicBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "PublicBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    condition = value_of(statement["Condition"], B, IssuerCdn={"Ref": "E2EXAMPLE"})
    assert condition == {"StringEquals": {"AWS:SourceArn": f"arn:aws:cloudfront::{ACCOUNT_ID}:distribution/E2EXAMPLE"}}
    # The bucket stays private: every public access block on, and no statement for anyone else.
    bucket = resources["PublicBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )


def test_b_cache_policy_keeps_documents_no_longer_than_their_max_age() -> None:
    config = deployed(B)["Resources"]["IssuerCachePolicy"]["Properties"]["CachePolicyConfig"]
    max_age = Settings.from_env(VALID).jwks_max_age  # CREDPORT_JWKS_MAX_AGE's default
    assert config["MinTTL"] == 0  # a shorter max-age on the object wins
    assert config["DefaultTTL"] == config["MaxTTL"] == max_age
    keyed = config["ParametersInCacheKeyAndForwardedToOrigin"]
    assert keyed["HeadersConfig"] == {"HeaderBehavior": "none"}
    assert keyed["QueryStringsConfig"] == {"QueryStringBehavior": "none"}


@pytest.mark.parametrize("parameters", [A, B, C], ids=["A", "B", "C"])
def test_the_rotation_counts_the_edge_cache_in_how_stale_a_jwks_can_be(parameters: dict[str, str]) -> None:
    """A relying party may fetch a copy the edge has held for its whole MaxTTL, then keep it for its own max-age:
    the functions are told the edge's MaxTTL, and the signing-key rotation adds it to the staleness it allows for."""
    document = deployed(parameters)
    variables = document["Globals"]["Function"]["Environment"]["Variables"]
    edge = value_of(
        DOCUMENT["Globals"]["Function"]["Environment"]["Variables"]["CREDPORT_JWKS_EDGE_MAX_AGE"], parameters
    )
    policy = document["Resources"].get("IssuerCachePolicy")
    assert "CREDPORT_JWKS_EDGE_MAX_AGE" in variables
    assert int(edge) == (policy["Properties"]["CachePolicyConfig"]["MaxTTL"] if policy else 0)
    settings = Settings.from_env({**VALID, "CREDPORT_JWKS_EDGE_MAX_AGE": str(edge)})
    assert settings.jwks_edge_max_age == int(edge)


def test_b_certificates_and_alias_records() -> None:
    resources = deployed(B)["Resources"]
    for logical_id, host in (("IssuerCertificate", "id.example.com"), ("ApiCertificate", "api.example.com")):
        certificate = value_of(resources[logical_id]["Properties"], B)
        assert certificate == {
            "DomainName": host,
            "ValidationMethod": "DNS",
            "DomainValidationOptions": [{"DomainName": host, "HostedZoneId": B["HostedZoneId"]}],
        }
    for logical_id, kind in (("IssuerRecordIpv4", "A"), ("IssuerRecordIpv6", "AAAA")):
        record = resources[logical_id]["Properties"]
        assert value_of(record["Name"], B) == "id.example.com."
        assert (record["Type"], value_of(record["HostedZoneId"], B)) == (kind, B["HostedZoneId"])
        assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["IssuerCdn", "DomainName"]}
        assert record["AliasTarget"]["HostedZoneId"] == CLOUDFRONT_HOSTED_ZONE
    api = resources["ApiRecordIpv4"]["Properties"]
    assert (value_of(api["Name"], B), api["Type"]) == ("api.example.com.", "A")
    assert api["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["ApiDomainName", "RegionalDomainName"]}
    assert api["AliasTarget"]["HostedZoneId"] == {"Fn::GetAtt": ["ApiDomainName", "RegionalHostedZoneId"]}
    domain = resources["ApiDomainName"]["Properties"]
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert (domain["SecurityPolicy"], domain["RegionalCertificateArn"]) == ("TLS_1_2", {"Ref": "ApiCertificate"})


def test_b_maps_the_api_domain_root_to_chalices_api_and_stage() -> None:
    mapping = deployed(B)["Resources"]["ApiBasePathMapping"]
    assert mapping["Metadata"]["credport"]["needs-app"] is True  # wire-app makes it on the chalice deploy path
    assert mapping["Properties"] == {
        "DomainName": {"Ref": "ApiDomainName"},
        "RestApiId": {"Ref": "RestAPI"},
        "Stage": {"Ref": "RestAPI.Stage"},  # SAM's reference to its generated stage: created after it
    }  # no BasePath: https://api.example.com/token, the routes as the app declares them


def test_b_issuer_is_the_distributions_url_everywhere_it_is_read() -> None:
    document = deployed(B)
    assert value_of(issuer_variable(document), B) == "https://id.example.com"
    assert document["Outputs"]["Issuer"]["Value"] == issuer_variable(document)  # stage-env's CREDPORT_ISSUER
    assert document["Outputs"]["IssuerUrl"]["Value"] == issuer_variable(document)
    assert value_of(document["Outputs"]["ApiUrl"]["Value"], B) == "https://api.example.com"


def test_cloudfront_without_a_domain_is_the_cloudfront_name_on_cloudfronts_certificate() -> None:
    parameters = {"Prefix": "credport-prod", "IssuerDistribution": "cloudfront"}
    assert rule_failures(DOCUMENT, parameters) == []
    document = deployed(parameters)
    assert set(document["Resources"]) & ISSUER_RESOURCES == ISSUER_RESOURCES - {
        "IssuerCertificate",
        "IssuerRecordIpv4",
        "IssuerRecordIpv6",
    }
    config = document["Resources"]["IssuerCdn"]["Properties"]["DistributionConfig"]
    assert "Aliases" not in config
    assert config["ViewerCertificate"] == {"CloudFrontDefaultCertificate": True}
    issuer = value_of(issuer_variable(document), parameters, IssuerCdn={"DomainName": "d111111abcdef8.cloudfront.net"})
    assert issuer == "https://d111111abcdef8.cloudfront.net"


def test_a_given_certificate_replaces_the_one_the_stack_would_make() -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    parameters = {**B, "IssuerCertificateArn": arn}
    assert rule_failures(DOCUMENT, parameters, region="eu-west-1") == []
    document = resolved(DOCUMENT, parameters, region="eu-west-1")
    assert "IssuerCertificate" not in document["Resources"]
    viewer = document["Resources"]["IssuerCdn"]["Properties"]["DistributionConfig"]["ViewerCertificate"]
    assert viewer["AcmCertificateArn"] == {"Ref": "IssuerCertificateArn"}


# (A), (C): today's stack ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameters", [A, C], ids=["defaults", "existing-waf-organization"])
def test_without_cloudfront_nothing_of_it_exists_and_the_bucket_is_as_today(parameters: dict[str, str]) -> None:
    document = deployed(parameters)
    assert not set(document["Resources"]) & (ISSUER_RESOURCES | API_DOMAIN_RESOURCES)
    assert document["Resources"]["PublicBucket"] == DOCUMENT["Resources"]["PublicBucket"]
    assert issuer_variable(document) == {"Ref": "Issuer"}
    assert value_of(issuer_variable(document), parameters) == "https://id.example.com"
    assert "ApiUrl" not in document["Outputs"]


# The Rules: refused before CloudFormation touches a resource, and by the local stack alike -------------------

ZONE = {"HostedZoneId": B["HostedZoneId"], "HostedZoneName": "example.com"}
CLOUDFRONT = {"Prefix": "credport-prod", "IssuerDistribution": "cloudfront"}


@pytest.mark.parametrize("parameters", [A, B, C], ids=["A", "B", "C"])
def test_the_three_parameter_sets_pass_the_rules(parameters: dict[str, str]) -> None:
    assert rule_failures(DOCUMENT, parameters) == []


@pytest.mark.parametrize(
    ("parameters", "region", "rules"),
    [
        ({**A, **ZONE, "IssuerSubdomain": "id"}, REGION, ["IssuerDomainNeedsCloudFront"]),
        ({**CLOUDFRONT, "Issuer": "https://id.example.com"}, REGION, ["IssuerIsTheDistribution"]),
        ({"Prefix": "credport-prod"}, REGION, ["IssuerIsNamedWithoutCloudFront"]),
        ({**CLOUDFRONT, **ZONE, "IssuerSubdomain": "id"}, "eu-west-1", ["IssuerCertificateInUsEast1"]),
        ({**A, "ApiSubdomain": "api"}, REGION, ["DomainsNeedTheHostedZone"]),
        (
            {**A, "IssuerCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/" + "0" * 36},
            REGION,
            ["IssuerCertificateNeedsTheDomain"],
        ),
        ({**B, "ApiSubdomain": B["IssuerSubdomain"]}, REGION, ["IssuerAndApiHostsDiffer"]),
    ],
    ids=[
        "issuer-domain-without-cloudfront",
        "issuer-given-with-cloudfront",
        "no-issuer-without-cloudfront",
        "issuer-domain-outside-us-east-1",
        "api-domain-without-zone",
        "certificate-without-domain",
        "one-host-for-issuer-and-api",
    ],
)
def test_the_rules_refuse_what_aws_would_not_serve(parameters: dict[str, str], region: str, rules: list[str]) -> None:
    failures = rule_failures(DOCUMENT, parameters, region=region)
    assert [failure.split(":", 1)[0] for failure in failures] == rules
    # The local stack refuses them too, before it creates anything.
    template = Template(DOCUMENT, parameters=parameters, account_id=ACCOUNT_ID, region=region, stack_name="s")
    with pytest.raises(TemplateError, match=f"Rules refuse these parameters: {rules[0]}"):
        Provisioner(template, lambda service: pytest.fail(f"{service} called")).provision()


def test_the_certificate_arn_must_be_an_acm_certificate_in_us_east_1() -> None:
    pattern = DOCUMENT["Parameters"]["IssuerCertificateArn"]["AllowedPattern"]
    template = {"Parameters": {"IssuerCertificateArn": {"Type": "String", "AllowedPattern": pattern}}}

    def stack(arn: str) -> Template:
        parameters = {"IssuerCertificateArn": arn}
        return Template(template, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="s")

    good = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    assert stack(good).parameters["IssuerCertificateArn"] == good
    with pytest.raises(TemplateError, match="AllowedPattern"):
        stack(good.replace("us-east-1", "eu-west-1"))


@pytest.mark.parametrize("parameters", [A, B, C], ids=["A", "B", "C"])
def test_the_distribution_to_invalidate_after_a_revocation_is_an_output(parameters: dict[str, str]) -> None:
    """SECURITY.md: a revoked key leaves the edge's copy of the JWKS only when it is invalidated (or expires)."""
    outputs = deployed(parameters)["Outputs"]
    if parameters.get("IssuerDistribution") == "cloudfront":
        assert outputs["IssuerDistributionId"]["Value"] == {"Ref": "IssuerCdn"}
    else:
        assert "IssuerDistributionId" not in outputs
