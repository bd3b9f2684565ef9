"""``POST /transfer/import`` with a link: only presigned GETs of the transfer bucket's own objects under ``inbox/`` or
``links/`` are fetched, bucket and key checked after parsing (path-style and virtual-hosted, percent-decoding and
dot segments), never another bucket on the same endpoint and never a non-S3 path.

The HTTP client is replaced by a recorder: a refused link must never be fetched, an accepted one is fetched at the
URL rebuilt from the checked parts (served here from moto). Hypothesis feeds arbitrary Unicode to the parser.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
import pytest
from botocore.config import Config
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib import transfer
from chalicelib.aws import AwsServices
from chalicelib.aws.s3 import ObjectStore
from chalicelib.config import get_settings
from chalicelib.transfer.fetch import LINK_PREFIXES, Endpoint, LinkRefused, endpoint_of, parse_link
from tests.functional.test_transfer_import import import_call, sealed
from tests.functional.test_transfer_import import importer as importer  # noqa: PLC0414 (the fixture, re-exported)

BUCKET = "credport-dev-transfer-123456789012"
SIGV4 = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "ab" * 32
)
AWS = Endpoint("https", frozenset({"s3.amazonaws.com", "s3.us-east-1.amazonaws.com"}), 443)
LOCAL = Endpoint("http", frozenset({"127.0.0.1"}), 4566)


@dataclass
class FakeResponse:
    body: bytes
    status: int = 200
    released: bool = field(default=False)

    def read(self, amount: int) -> bytes:
        return self.body[:amount]

    def release_conn(self) -> None:
        self.released = True


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch, aws: AwsServices) -> list[str]:
    """Every URL the service fetches; each is served from moto's transfer bucket (by the key in its path)."""
    import urllib3

    urls: list[str] = []

    def request(_self: Any, method: str, url: str, **kwargs: Any) -> FakeResponse:
        assert (method, kwargs.get("redirect")) == ("GET", False)
        urls.append(url)
        path = urlsplit(url).path
        key = path.split("/", 2)[2] if path.startswith(f"/{BUCKET}/") else path[1:]
        from urllib.parse import unquote

        return FakeResponse(aws.s3.get(BUCKET, unquote(key)).body)

    monkeypatch.setattr(urllib3.PoolManager, "request", request)
    return urls


def link(host: str, path: str, query: str = SIGV4, scheme: str = "https") -> str:
    return f"{scheme}://{host}{path}?{query}"


# --- accepted: the transfer bucket's inbox/ and links/, in every addressing form -------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe"),  # virtual-hosted, as botocore presigns here
        link(f"{BUCKET}.s3.us-east-1.amazonaws.com", "/links/db.jwe"),  # virtual-hosted, regional
        link("s3.us-east-1.amazonaws.com", f"/{BUCKET}/links/db.jwe"),  # path-style, regional
        link("s3.amazonaws.com", f"/{BUCKET}/links/db.jwe"),  # path-style, global
        link("S3.AmazonAWS.com", f"/{BUCKET}/links/db.jwe"),  # host names are case-insensitive
    ],
    ids=["virtual", "virtual-regional", "path-regional", "path-global", "host-case"],
)
def test_a_link_to_the_transfer_bucket_imports(
    importer: transfer.Importer, aws: AwsServices, fetched: list[str], url: str
) -> None:
    aws.s3.put(BUCKET, "links/db.jwe", sealed({"secret_name": "credport-dev/imported/linked", "value": "v"}))
    status, body = import_call({"url": url})
    assert (status, body.get("secret_name")) == (200, "credport-dev/imported/linked"), body
    (url_fetched,) = fetched
    assert urlsplit(url_fetched).hostname == urlsplit(url).hostname.lower()  # type: ignore[union-attr]


def test_a_link_botocore_presigned_for_any_key_round_trips(importer: transfer.Importer, aws: AwsServices) -> None:
    store = ObjectStore(aws.factory.client("s3"))
    for key in ("inbox/a b+c~d.jwe", "links/ключ/файл (1).jwe", "links/%2e%2e/x.jwe", "inbox/😀.jwe"):
        target = parse_link(store.presign_get(BUCKET, key, expires_in=60), endpoint_of(store, BUCKET), BUCKET)
        assert (target.bucket, target.key) == (BUCKET, key)


# --- refused: which check, and never fetched -----------------------------------------------------------------------

REFUSALS = {
    "another bucket, virtual-hosted": (link("other-bucket.s3.amazonaws.com", "/links/db.jwe"), "origin"),
    "another bucket, path-style on the same endpoint": (
        link("s3.amazonaws.com", "/other-bucket/links/db.jwe"),
        "bucket",
    ),
    "a bucket whose name extends ours": (link("s3.amazonaws.com", f"/{BUCKET}x/links/db.jwe"), "bucket"),
    "dot segments to another bucket": (link("s3.amazonaws.com", f"/{BUCKET}/../other-bucket/links/db.jwe"), "path"),
    "dot segments out of the prefix": (link(f"{BUCKET}.s3.amazonaws.com", "/links/../outbox/c/v.jwe"), "path"),
    "encoded dot segments": (link(f"{BUCKET}.s3.amazonaws.com", "/links/%2e%2e/outbox/c/v.jwe"), "path"),
    "encoded dot segments, upper case": (link(f"{BUCKET}.s3.amazonaws.com", "/links/%2E%2E/outbox/v.jwe"), "path"),
    "an encoded slash": (link("s3.amazonaws.com", f"/{BUCKET}%2Flinks/db.jwe"), "path"),
    "an encoded bucket name": (link("s3.amazonaws.com", "/%63redport-dev-transfer-123456789012/links/db.jwe"), "path"),
    "an empty segment": (link(f"{BUCKET}.s3.amazonaws.com", "/links//db.jwe"), "path"),
    "a backslash": (link(f"{BUCKET}.s3.amazonaws.com", "/links\\..\\outbox/v.jwe"), "syntax"),
    "outbox/ (sealed to clients)": (link(f"{BUCKET}.s3.amazonaws.com", "/outbox/c/v.jwe"), "prefix"),
    "clients/": (link(f"{BUCKET}.s3.amazonaws.com", "/clients/c/public.pem"), "prefix"),
    "autoid/ (entropy)": (link(f"{BUCKET}.s3.amazonaws.com", "/autoid/c/gen.bin"), "prefix"),
    "the bucket itself": (link(f"{BUCKET}.s3.amazonaws.com", "/"), "path"),
    "a prefix alone": (link("s3.amazonaws.com", f"/{BUCKET}/inbox"), "prefix"),
    "no signature": (
        link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe", SIGV4.split("&X-Amz-Signature", maxsplit=1)[0]),
        "presign",
    ),
    "no query": (f"https://{BUCKET}.s3.amazonaws.com/links/db.jwe", "presign"),
    "a duplicated parameter": (
        link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe", SIGV4 + "&X-Amz-Expires=1"),
        "presign",
    ),
    "another operation's parameter": (
        link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe", SIGV4 + "&uploads="),
        "presign",
    ),
    "signed for another service": (
        link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe", SIGV4.replace("%2Fs3%2F", "%2Fexecute-api%2F")),
        "presign",
    ),
    "more signed headers": (
        link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe", SIGV4.replace("=host&", "=host%3Brange&")),
        "presign",
    ),
    "user and password": (link(f"u:p@{BUCKET}.s3.amazonaws.com", "/links/db.jwe"), "origin"),
    "another port": (link(f"{BUCKET}.s3.amazonaws.com:8443", "/links/db.jwe"), "origin"),
    "plain http": (link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe", scheme="http"), "origin"),
    "a trailing dot": (link(f"{BUCKET}.s3.amazonaws.com.", "/links/db.jwe"), "origin"),
    "a look-alike host": (link(f"{BUCKET}.s3.amazonaws.com.evil.example", "/links/db.jwe"), "origin"),
    "a fragment": (link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe") + "#x", "syntax"),
    "non-ASCII": (link(f"{BUCKET}.s3.\u0430mazonaws.com", "/links/db.jwe"), "syntax"),  # a Cyrillic a
    "the metadata service": ("http://169.254.169.254/latest/meta-data/", "origin"),
    "a file": ("file:///etc/passwd", "origin"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_names_its_check(case: str) -> None:
    url, reason = REFUSALS[case]
    with pytest.raises(LinkRefused) as refused:
        parse_link(url, AWS, BUCKET)
    assert refused.value.reason == reason
    assert url not in refused.value.message


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_post_import_refuses_and_never_fetches(importer: transfer.Importer, fetched: list[str], case: str) -> None:
    status, body = import_call({"url": REFUSALS[case][0]})
    assert (status, body["error"]) == (400, "link_refused")
    assert fetched == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (link("127.0.0.1:4566", f"/{BUCKET}/inbox/db.jwe", scheme="http"), None),
        (link("127.0.0.1:4566", "/other-bucket/inbox/db.jwe", scheme="http"), "bucket"),
        (link("127.0.0.1:4566", "/moto-api/reset", scheme="http"), "bucket"),  # the local AWS serves more than S3
        (link("127.0.0.1:4566", f"/{BUCKET}/../moto-api/reset", scheme="http"), "path"),
        (link("localhost:4566", f"/{BUCKET}/inbox/db.jwe", scheme="http"), "origin"),
        # "<bucket>.<IP address>" is no DNS name: never fetchable, so refused as a link, not tried as a 503.
        (link(f"{BUCKET}.127.0.0.1:4566", "/inbox/db.jwe", scheme="http"), "origin"),
    ],
)
def test_the_local_endpoint_form(url: str, reason: str | None) -> None:
    if reason is None:
        assert parse_link(url, LOCAL, BUCKET).key == "inbox/db.jwe"
        return
    with pytest.raises(LinkRefused) as refused:
        parse_link(url, LOCAL, BUCKET)
    assert refused.value.reason == reason


# --- hypothesis: whatever the text, an accepted link names our bucket, a link prefix, and re-parses to itself -------


def _accepted_invariants(url: str, endpoint: Endpoint) -> None:
    try:
        target = parse_link(url, endpoint, BUCKET)
    except LinkRefused:
        return
    assert target.bucket == BUCKET
    assert target.key.startswith(LINK_PREFIXES)
    assert not {".", "..", ""} & set(target.key.split("/"))
    parts = urlsplit(target.url)
    assert parts.hostname in endpoint.hosts or parts.hostname in {f"{BUCKET}.{h}" for h in endpoint.hosts}
    assert parse_link(target.url, endpoint, BUCKET) == target  # the URL fetched says exactly what was checked


URL_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


@settings(max_examples=500, deadline=None)
@given(URL_TEXT)
@example(link(f"{BUCKET}.s3.amazonaws.com", "/links/db.jwe"))
def test_arbitrary_text_is_refused_or_names_our_bucket(url: str) -> None:
    _accepted_invariants(url, AWS)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(
        [f"https://{BUCKET}.s3.amazonaws.com/", f"https://s3.amazonaws.com/{BUCKET}/", "https://s3.amazonaws.com/"]
    ),
    st.lists(
        st.sampled_from(["links", "inbox", "outbox", "..", ".", "%2e%2e", "%2F", "%2f", "", BUCKET, "other"])
        | URL_TEXT,
        max_size=6,
    ),
)
def test_arbitrary_paths_are_refused_or_name_our_bucket(base: str, segments: list[str]) -> None:
    _accepted_invariants(base + "/".join(segments) + "?" + SIGV4, AWS)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(LINK_PREFIXES),
    st.lists(
        st.text(st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/"), min_size=1, max_size=20).filter(
            lambda s: s not in (".", "..")
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_any_unicode_key_presigned_by_botocore_is_accepted_exactly(prefix: str, segments: list[str]) -> None:
    key = prefix + "/".join(segments)
    for store in _botocore_stores():
        url = store.presign_get(BUCKET, key, expires_in=60)
        target = parse_link(url, endpoint_of(store, BUCKET), BUCKET)
        assert (target.bucket, target.key) == (BUCKET, key)
        assert quote(key, safe="/~") in target.url


@functools.cache
def _botocore_stores() -> tuple[ObjectStore, ...]:
    """botocore's own presigner, virtual-hosted (AWS) and path-style (the local endpoint); nothing is sent."""
    session = botocore.session.get_session()
    return tuple(
        ObjectStore(
            session.create_client(
                "s3",
                region_name="us-east-1",
                aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                aws_secret_access_key="secret",
                config=Config(signature_version="s3v4"),
                endpoint_url=endpoint,
            )
        )
        for endpoint in (None, "http://127.0.0.1:4566")
    )


def test_the_service_endpoint_is_read_from_its_own_client(importer: transfer.Importer, aws: AwsServices) -> None:
    endpoint = endpoint_of(ObjectStore(aws.factory.client("s3")), get_settings().resources.transfer_bucket)
    assert endpoint == AWS
    assert json.dumps(sorted(endpoint.hosts))
