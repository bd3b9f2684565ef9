"""``credport token`` for token service v2 (issue #18): the query it sends, the mistakes it refuses before any
round trip (one line, exit 2, no traceback, nothing sent), a query that repeats keys and holds tag keys with
``:/=+@`` and spaces signed so that API Gateway's SigV4 check (local/sigv4.py: botocore's signer over the
decoded and re-encoded query, as AWS does) accepts what the client sent, and ``credport verify``'s account of a token
with several audiences. The server is a real socket on 127.0.0.1 that records what arrived."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.tokens.exceptions import TokenRejected
from client import aws_call
from client.cli import main
from client.errors import Exit
from client.oidc import explain_rejection
from local.sigv4 import Principal, SignatureRejected, verify
from tests.conftest import ACCOUNT_ID, REGION

ANSWER = {"token": "eyJ.e30.sig", "token_type": "Bearer", "expires_in": 900}
# The key the brief names: every character SigV4 must percent-encode, and a space (%20, never '+').
AWKWARD_KEY = "a:b/c=d+e@f g"
ACCESS_KEY, SECRET_KEY = "AKIATOKENREQUEST0001", "token/request+secret"  # API Gateway's key id shape, unlike "testing"
CALLER = Principal(ACCESS_KEY, SECRET_KEY, None, f"arn:aws:iam::{ACCOUNT_ID}:user/ci", ACCOUNT_ID, "AIDACI")


@pytest.fixture(autouse=True)
def caller_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


class Seen:
    """What the test server answers (status, body) and what it received: the raw request target and headers."""

    def __init__(self) -> None:
        self.status, self.body = 200, json.dumps(ANSWER).encode()
        self.requests: list[tuple[str, dict[str, str]]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.requests.append((self.path, dict(self.headers.items())))
            self.send_response(seen.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(seen.body)))
            self.end_headers()
            self.wfile.write(seen.body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


class Lookup:
    def find(self, access_key: str, session_token: str | None) -> Principal | None:
        return CALLER if (access_key, session_token) == (CALLER.access_key, None) else None


def gateway_accepts(endpoint: str, target: str, headers: dict[str, str]) -> Principal:
    """API Gateway's IAM check on what arrived (local/sigv4.py): raises SignatureRejected on a mismatch."""
    return verify("GET", f"http://{urlsplit(endpoint).netloc}{target}", headers, b"", Lookup(), region=REGION)


def sent_query(seen: Seen) -> str:
    ((target, _),) = seen.requests
    return urlsplit(target).query


def decoded_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """``credport argv`` must fail as a usage error: exit 2, one stderr line, no traceback, nothing on stdout
    (argparse's own refusals exit through SystemExit, as the console script does; the client's checks return it)."""
    try:
        code = main(argv)
    except SystemExit as exited:
        code = exited.code  # type: ignore[assignment]
    assert code == Exit.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("credport: ")
    assert err.count("\n") == 1, err
    return err


# --- the query built -----------------------------------------------------------------------------------------


def test_every_option_becomes_its_pair_in_order(server: tuple[str, Seen], capsys: pytest.CaptureFixture[str]) -> None:
    url, seen = server
    argv = ["token", "--endpoint", url, "--aud", "A", "--aud", "B", "--alg", "ES384", "--tag", "team=x"]
    assert main([*argv, "--tag", "env=prod", "--ttl", "900"]) == Exit.OK
    assert capsys.readouterr().out == "eyJ.e30.sig\n"
    query = sent_query(seen)
    assert query == "aud=A&aud=B&alg=ES384&ttl=900&tag.team=x&tag.env=prod"
    assert decoded_pairs(query) == [
        ("aud", "A"),
        ("aud", "B"),
        ("alg", "ES384"),
        ("ttl", "900"),
        ("tag.team", "x"),
        ("tag.env", "prod"),
    ]
    ((target, headers),) = seen.requests
    assert gateway_accepts(url, target, headers) == CALLER


def test_no_option_sends_no_query(server: tuple[str, Seen], capsys: pytest.CaptureFixture[str]) -> None:
    url, seen = server
    assert main(["token", "--endpoint", url, "--json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out) == ANSWER
    ((target, headers),) = seen.requests
    assert target == "/token"
    assert gateway_accepts(url, target, headers) == CALLER


@pytest.mark.parametrize(
    ("tag", "pair"),
    [
        ("k=a=b", ("tag.k", "a=b")),  # split at the FIRST '=': the value keeps the rest
        ("k=", ("tag.k", "")),  # an empty value is a value (AWS tag values are 0..256 characters)
        ("k==", ("tag.k", "=")),
        ("a:b/c=d+e@f g", ("tag.a:b/c", "d+e@f g")),
        ("ключ=значение", ("tag.ключ", "значение")),  # unicode letters are the server's to judge, sent as UTF-8
    ],
)
def test_a_tag_is_split_at_its_first_equals_sign(
    server: tuple[str, Seen], capsys: pytest.CaptureFixture[str], tag: str, pair: tuple[str, str]
) -> None:
    url, seen = server
    assert main(["token", "--endpoint", url, "--tag", tag]) == Exit.OK
    capsys.readouterr()
    assert decoded_pairs(sent_query(seen)) == [pair]


def test_the_service_limits_themselves_are_sent(server: tuple[str, Seen], capsys: pytest.CaptureFixture[str]) -> None:
    url, seen = server
    audiences = [a for i in range(10) for a in ("--aud", f"aud-{i}")]
    tags = [t for i in range(50) for t in ("--tag", f"k{i}=v{i}")]
    assert main(["token", "--endpoint", url, *audiences, *tags]) == Exit.OK
    capsys.readouterr()
    pairs = decoded_pairs(sent_query(seen))
    assert [v for k, v in pairs if k == "aud"] == [f"aud-{i}" for i in range(10)]
    assert len([k for k, _ in pairs if k.startswith("tag.")]) == 50


# --- mistakes refused before any round trip ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--tag", "team"], "--tag 'team' is not KEY=VALUE (for an empty value: KEY=)"),
        (["--tag", "=x"], "--tag '=x' has an empty key"),
        (["--tag", "="], "--tag '=' has an empty key"),
        (["--tag", "ok=1", "--tag", "bad"], "--tag 'bad' is not KEY=VALUE"),
        ([a for i in range(11) for a in ("--aud", f"a{i}")], "--aud given 11 times: a token has at most 10 audiences"),
        ([t for i in range(51) for t in ("--tag", f"k{i}=v")], "--tag given 51 times: a token request has at most 50"),
    ],
    ids=["no-equals", "empty-key", "only-equals", "second-tag", "11-audiences", "51-tags"],
)
def test_a_structural_mistake_is_a_usage_error_and_nothing_is_sent(
    server: tuple[str, Seen], capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    url, seen = server
    err = usage_error(capsys, ["token", "--endpoint", url, *extra])
    assert said in err
    assert err.rstrip().endswith("(see credport token --help)")
    assert seen.requests == []


def test_the_mistake_is_reported_before_a_missing_endpoint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDPORT_ENDPOINT", raising=False)
    assert "--tag 'x' is not KEY=VALUE" in usage_error(capsys, ["token", "--tag", "x"])


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--alg", "HS256"], "argument --alg: invalid choice: 'HS256'"),
        (["--alg", "es256"], "argument --alg: invalid choice: 'es256'"),
        (["--ttl", "15m"], "argument --ttl: invalid int value: '15m'"),
        (["--tag", "k=\udcff"], "argument --tag is not valid UTF-8 text"),  # argv bytes that were not UTF-8
    ],
)
def test_argparse_refusals_are_one_line_too(
    server: tuple[str, Seen], capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    url, seen = server
    assert said in usage_error(capsys, ["token", "--endpoint", url, *extra])
    assert seen.requests == []


def test_the_servers_tag_refusal_is_one_line(server: tuple[str, Seen], capsys: pytest.CaptureFixture[str]) -> None:
    """The tag grammar is the server's: the client sends aws:x and prints the 400 as it came, exit 3."""
    url, seen = server
    seen.status = 400
    seen.body = json.dumps({"error": "invalid_tag", "message": "tag key 'aws:x' uses a reserved prefix"}).encode()
    assert main(["token", "--endpoint", url, "--tag", "aws:x=1"]) == Exit.REFUSED
    out, err = capsys.readouterr()
    assert (out, err.count("\n"), "Traceback" in err) == ("", 1, False)
    assert "400 Bad Request: invalid_tag: tag key 'aws:x' uses a reserved prefix" in err
    assert decoded_pairs(sent_query(seen)) == [("tag.aws:x", "1")]


def test_help_names_the_new_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["token", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for said in (
        "--aud AUDIENCE",
        "{RS256,ES256,ES384}",
        "the deployment decides which are enabled",
        "--tag KEY=VALUE",
    ):
        assert said in text


# --- the signature covers exactly what is sent ---------------------------------------------------------------

PAIRS = [("aud", "https://b.example/x y"), ("aud", "a"), (f"tag.{AWKWARD_KEY}", "v=w +x@y"), ("ttl", "900")]


def canonical_query(*, url: str, params: list[tuple[str, str]] | None = None) -> str:
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "execute-api", REGION)
    canonical: str = auth.canonical_query_string(AWSRequest(method="GET", url=url, params=params or {}))
    return canonical


def test_repeated_keys_and_an_awkward_tag_key_are_signed_as_sent(server: tuple[str, Seen]) -> None:
    url, seen = server
    answer = aws_call.signed_request("GET", url, "/token", query=PAIRS)
    assert answer == ANSWER
    ((target, headers),) = seen.requests
    query = urlsplit(target).query
    assert decoded_pairs(query) == PAIRS  # every pair arrived, repeats and order kept
    assert "+" not in query  # a space is %20: '+' would read as a space or as a plus, not as what was signed
    assert "%20" in query
    # The canonical query string the client signed (botocore reads it from the URL) is the one SigV4 defines for
    # these pairs (botocore encoding the pairs itself), and the one the gateway computes from what arrived.
    from_pairs = canonical_query(url=f"{url}/token", params=PAIRS)
    assert canonical_query(url=f"{url}{target}") == from_pairs
    assert from_pairs.startswith(
        "aud=a&aud=https%3A%2F%2Fb.example%2Fx%20y&tag.a%3Ab%2Fc%3Dd%2Be%40f%20g=v%3Dw%20%2Bx%40y"
    )
    assert gateway_accepts(url, target, headers) == CALLER


def test_a_mapping_query_is_still_taken(server: tuple[str, Seen]) -> None:
    url, seen = server
    assert aws_call.signed_request("GET", url, "/token", query={"aud": "x y", "ttl": "60"}) == ANSWER
    ((target, headers),) = seen.requests
    assert decoded_pairs(urlsplit(target).query) == [("aud", "x y"), ("ttl", "60")]
    assert gateway_accepts(url, target, headers) == CALLER


def test_the_form_encoding_it_replaced_would_be_refused(server: tuple[str, Seen]) -> None:
    """The control: urlencode's default (quote_plus, '+' for a space) signed as is fails the gateway's check, so the
    test above would catch a return to it."""
    url, _ = server
    request = AWSRequest(method="GET", url=f"{url}/token?{urlencode(PAIRS)}")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "execute-api", REGION).add_auth(request)
    target = urlsplit(request.url).path + "?" + urlsplit(request.url).query
    with pytest.raises(SignatureRejected) as refused:
        gateway_accepts(url, target, dict(request.headers))
    assert refused.value.error_type == "InvalidSignatureException"


# --- verify: a token with several audiences ------------------------------------------------------------------


def unsigned_token(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


ISSUER = "https://issuer.example"


@pytest.mark.parametrize(
    ("aud", "said"),
    [
        (["a", "b"], "invalid token: its audiences are 'a', 'b', not --aud 'c' (refused by the aud check: aud)"),
        (["a"], "invalid token: its audience is ['a'], not --aud 'c'"),
        ("a", "invalid token: its audience is 'a', not --aud 'c'"),
        ([], "invalid token: its audience is an empty array, not --aud 'c'"),
    ],
)
def test_the_found_audiences_are_shown_readably(aud: Any, said: str) -> None:
    token = unsigned_token({"iss": ISSUER, "aud": aud})
    assert explain_rejection(token, TokenRejected("aud"), issuer=ISSUER, audience="c").startswith(said)


def test_a_long_audience_array_is_cut_at_whole_entries() -> None:
    audiences = [f"https://service-{i}.example/{'p' * 40}" for i in range(10)]
    token = unsigned_token({"iss": ISSUER, "aud": audiences})
    text = explain_rejection(token, TokenRejected("aud"), issuer=ISSUER, audience="c")
    assert text.startswith(f"invalid token: its audiences are {audiences[0]!r}, ")
    assert ", … (10 in all), not --aud 'c'" in text
    assert audiences[-1] not in text
    assert len(text) < 400


def test_an_array_naming_the_audience_asked_for_is_not_called_another_audience() -> None:
    token = unsigned_token({"iss": ISSUER, "aud": ["a", "c"]})
    text = explain_rejection(token, TokenRejected("aud", "aud not allowed"), issuer=ISSUER, audience="c")
    assert text == "invalid token (refused by the aud check: aud not allowed)"


def test_out_writes_the_token_alone_0600_and_replaces_it_whole(
    server: tuple[str, Seen], capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    """An AWS_WEB_IDENTITY_TOKEN_FILE: the SDKs send the file as it is, so no newline; a refresh replaces it."""
    import stat

    url, _ = server
    target = tmp_path / "web" / "token"
    assert main(["token", "--endpoint", url, "--out", str(target)]) == Exit.OK
    assert capsys.readouterr().out == ""
    assert target.read_text() == "eyJ.e30.sig"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.stat().st_ino
    assert main(["token", "--endpoint", url, "--out", str(target), "--json"]) == Exit.OK
    answer = json.loads(capsys.readouterr().out)
    assert "token" not in answer
    assert answer["out"] == str(target)
    assert target.stat().st_ino != before  # renamed over, never rewritten in place
    assert list(target.parent.iterdir()) == [target]


def test_an_empty_aud_is_a_usage_error_not_the_default_audience(
    server: tuple[str, Seen], capsys: pytest.CaptureFixture[str]
) -> None:
    url, seen = server
    assert main(["token", "--endpoint", url, "--aud", ""]) == Exit.USAGE
    assert capsys.readouterr().err.startswith("credport: --aud is empty")
    assert seen.requests == []
