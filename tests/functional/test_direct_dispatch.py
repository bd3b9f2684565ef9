"""Direct dispatch (chalicelib/dispatch.py) answers ``GET /token`` exactly as chalice's own dispatch would.

Every request is sent twice to the same app, against moto: once as Lambda invokes it (``app.app(event, context)``,
which dispatches the route directly) and once through chalice's ``Chalice.__call__`` itself. The two answers (status,
headers, body; a token compared by its header and claims, which differ only in jti and time), the log records and
the EMF documents they leave must be the same, for generated requests: query parameters allowed and refused, text
that is not valid Unicode, headers of any case (a Content-Type among them), identities with and without an ARN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from chalice.app import Chalice, RestAPIEventHandler
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import app as credport_app
from chalicelib.api import api_view
from chalicelib.dispatch import DirectChalice
from chalicelib.observability import metrics
from tests.functional.test_token_v2 import v2  # noqa: F401 (a fixture)
from tests.functional.test_tokens import ROLE_SESSION_ARN, caller_identity, decode
from tests.support import gateway_event

pytestmark = pytest.mark.usefixtures("callers_role", "v2")

CONTEXT = SimpleNamespace(aws_request_id="direct-dispatch-test", function_name="credport-dev", memory_limit_in_mb=512)
FIXTURES_OK = [HealthCheck.function_scoped_fixture]
TIMES = ("iat", "nbf", "exp", "jti")


class Recorder:
    """What one call left: the log records (level, message, extra keys) and the EMF documents (no timestamp)."""

    def __init__(self, caplog: pytest.LogCaptureFixture, emitted: list[str]) -> None:
        self._caplog, self._emitted = caplog, emitted

    def around(self, call: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], list[Any], list[Any]]:
        self._caplog.clear()
        self._emitted.clear()
        answer = call()
        records = [(r.levelname, r.getMessage(), _extra_keys(r)) for r in self._caplog.records if r.name == "credport"]
        documents = [json.loads(line) for line in self._emitted]
        for document in documents:
            del document["_aws"]["Timestamp"]
        return answer, records, documents


def _extra_keys(record: logging.LogRecord) -> list[str]:
    plain = set(vars(logging.makeLogRecord({})))
    return sorted(key for key in vars(record) if key not in plain and key not in {"message", "asctime"})


@pytest.fixture
def recorder(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """After a first token (which creates the signing keys): each call alike from then on."""
    first = credport_app.app(gateway_event("/token", caller_identity(), query=[("aud", "sts.amazonaws.com")]), CONTEXT)
    assert first["statusCode"] == 200, first["body"]
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    emitted: list[str] = []
    monkeypatch.setattr(metrics, "_write", emitted.append)
    return Recorder(caplog, emitted)


@pytest.fixture
def chalice_dispatches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each request chalice's own REST handler dispatched (a request dispatched directly never reaches it)."""
    seen: list[str] = []
    original = RestAPIEventHandler.__call__

    def counted(self: RestAPIEventHandler, event: Any, context: Any) -> Any:
        seen.append(str(event.get("requestContext", {}).get("resourcePath")))
        return original(self, event, context)

    monkeypatch.setattr(RestAPIEventHandler, "__call__", counted)
    return seen


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with a token replaced by what it says but its time and jti."""
    body = json.loads(answer["body"])
    if isinstance(body, dict) and "token" in body:
        header, claims, _ = decode(body["token"])
        body["token"] = (header, {k: v for k, v in claims.items() if k not in TIMES})
    return {**answer, "body": body}


def both(event: dict[str, Any], recorder: Recorder) -> tuple[Any, Any]:
    direct = recorder.around(lambda: credport_app.app(event, CONTEXT))
    through_chalice = recorder.around(lambda: Chalice.__call__(credport_app.app, event, CONTEXT))
    return (comparable(direct[0]), *direct[1:]), (comparable(through_chalice[0]), *through_chalice[1:])


QUERY_NAMES = st.sampled_from(["aud", "ttl", "alg", "tag.team", "tag.Team", "unknown", "aud ", "AUD"])
QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "sts.amazonaws.com",
            "https://a.example.com",
            "https://svc.example.org/x",
            "https://evil.example",
            "900",
            "3600",
            "-1",
            "1e3",
            "ES256",
            "RS256",
            "none",
            "HS256",
            "blue",
            "",
            "\ud800",
        ]
    ),
    st.text(max_size=12),
)
HEADER_NAMES = st.sampled_from(
    ["Content-Type", "content-type", "CONTENT-TYPE", "Accept", "User-Agent", "X-Amz-Date", "X-Forwarded-For", "\udcff"]
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["application/json", "text/plain", "image/png", "*/*", "", "\ud800"]),
    st.text(max_size=8),
    # Not what API Gateway sends, but what a hand-made event may hold: chalice's answer all the same.
    st.sampled_from([None, 5, True, ["application/json"], {"a": "b"}]),
)
IDENTITIES = st.sampled_from(
    [
        caller_identity(),
        caller_identity(None),
        caller_identity("not-an-arn"),
        caller_identity(ROLE_SESSION_ARN.replace("my-session", "other")),
        {"sourceIp": "203.0.113.7"},
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES_OK)
@given(
    query=st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
    identity=IDENTITIES,
)
@example(query=[("aud", "sts.amazonaws.com")], headers={}, identity=caller_identity())
@example(query=[("aud", "https://evil.example")], headers={}, identity=caller_identity())
@example(query=[("aud", "\ud800")], headers={}, identity=caller_identity())
@example(query=[], headers={"Content-Type": "text/plain"}, identity=caller_identity())
@example(query=[], headers={"accept": "image/png"}, identity=caller_identity())
@example(query=[("aud", "sts.amazonaws.com")], headers={"Accept": 5}, identity=caller_identity())  # type: ignore[dict-item]
@example(query=[("aud", "sts.amazonaws.com")], headers={"Accept": ["*/*"]}, identity=caller_identity())  # type: ignore[dict-item]
def test_a_token_request_is_answered_as_chalice_answers_it(
    query: list[tuple[str, str]], headers: dict[str, Any], identity: dict[str, Any], recorder: Recorder
) -> None:
    event = gateway_event("/token", identity, query=query, headers=headers)
    event["headers"] = headers or None  # as API Gateway sends a request without headers: null
    direct, through_chalice = both(event, recorder)
    assert direct == through_chalice


def test_the_usual_request_never_reaches_chalices_dispatch(chalice_dispatches: list[str], recorder: Recorder) -> None:
    event = gateway_event("/token", caller_identity(), query=[("aud", "sts.amazonaws.com")])
    answer, records, documents = recorder.around(lambda: credport_app.app(event, CONTEXT))
    assert answer["statusCode"] == 200, answer["body"]
    assert chalice_dispatches == []
    assert [message for _, message, _ in records] == ["token issued"]
    assert [list(d) for d in documents] == [["_aws", "service", "TokensIssued"]]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda e: e["headers"].update({"CoNtEnT-TyPe": "application/json"}), "a Content-Type is chalice's to match"),
        (lambda e: e["requestContext"].update({"httpMethod": "POST"}), "another method: chalice answers 405"),
        (lambda e: e["requestContext"].update({"resourcePath": "/whoami"}), "another route"),
    ],
)
def test_anything_else_goes_to_chalice(
    change: Callable[[dict[str, Any]], None], why: str, chalice_dispatches: list[str]
) -> None:
    event = gateway_event("/token", caller_identity(), query=[("aud", "sts.amazonaws.com")])
    change(event)
    credport_app.app(event, CONTEXT)
    assert len(chalice_dispatches) == 1, why


@pytest.fixture
def small_app() -> DirectChalice:
    app = DirectChalice(app_name="direct-dispatch-test")
    app.api.binary_types = []  # as credport's app: JSON only (chalice's default list sends every request its way)
    view = api_view(lambda: app.current_request)

    @app.route("/plain", methods=["GET"])
    @view
    def plain() -> dict[str, Any]:
        return {"ok": True, "n": 1, "text": "é"}

    @app.route("/cors", methods=["GET"], cors=True)
    @view
    def cors() -> dict[str, str]:
        return {}

    @app.route("/bare", methods=["GET"])
    def bare() -> dict[str, str]:
        return {}

    @app.route("/item/{name}", methods=["GET"])
    @view
    def item(name: str) -> dict[str, str]:
        return {"name": name}

    return app


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (("GET", "/missing"), "is not a route"),
        (("POST", "/plain"), "is not a route"),
        (("GET", "/bare"), "only an api_view"),
        (("GET", "/cors"), "CORS"),
        (("GET", "/item/{name}"), "path parameters"),
    ],
)
def test_a_route_chalice_must_dispatch_is_refused_when_named(
    small_app: DirectChalice, route: tuple[str, str], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        small_app.dispatch_directly([route])


def test_middleware_runs_in_chalices_order_even_when_registered_later(
    small_app: DirectChalice, chalice_dispatches: list[str]
) -> None:
    small_app.dispatch_directly([("GET", "/plain")])
    event = gateway_event("/plain", {"sourceIp": "203.0.113.7"})
    assert json.loads(small_app(event, CONTEXT)["body"]) == {"ok": True, "n": 1, "text": "é"}
    order: list[str] = []

    def named(name: str) -> Callable[[Any, Callable[[Any], Any]], Any]:
        def middleware(request: Any, get_response: Callable[[Any], Any]) -> Any:
            order.append(name)
            return get_response(request)

        return middleware

    small_app.register_middleware(named("all"), "all")
    small_app.register_middleware(named("http"), "http")
    small_app.register_middleware(named("s3"), "s3")  # not an HTTP middleware: never on a route
    direct = small_app(event, CONTEXT)
    assert chalice_dispatches == []
    through_chalice = Chalice.__call__(small_app, event, CONTEXT)
    assert chalice_dispatches == ["/plain"]
    assert order == ["all", "http", "all", "http"]
    assert direct == through_chalice
    assert direct["body"] == '{"ok":true,"n":1,"text":"\\u00e9"}'  # json.dumps's own spelling, as chalice's


def test_a_middleware_that_raises_gets_chalices_answer_and_its_text_is_never_logged(
    small_app: DirectChalice, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Any, get_response: Callable[[Any], Any]) -> Any:
        raise RuntimeError("secret text that is never logged")

    small_app.register_middleware(broken, "http")
    small_app.dispatch_directly([("GET", "/plain")])
    event = gateway_event("/plain", {"sourceIp": "203.0.113.7"})
    caplog.set_level(logging.INFO)
    direct = small_app(event, CONTEXT)
    (logged,) = caplog.records
    assert direct == Chalice.__call__(small_app, event, CONTEXT)
    assert direct["statusCode"] == 500
    # The one deliberate difference: chalice logs the traceback, text and all; direct dispatch by type and place.
    assert (logged.getMessage(), vars(logged)["error_type"]) == ("unhandled error", "RuntimeError")
    assert "secret text" not in repr(vars(logged))


@pytest.mark.parametrize("setting", ["debug", "binary_types"])
def test_an_app_in_debug_or_with_binary_types_is_dispatched_by_chalice(
    small_app: DirectChalice, setting: str, chalice_dispatches: list[str]
) -> None:
    small_app.dispatch_directly([("GET", "/plain")])
    if setting == "debug":
        small_app.debug = True
    else:
        small_app.api.binary_types = ["image/png"]
    small_app(gateway_event("/plain", {"sourceIp": "203.0.113.7"}), CONTEXT)
    assert chalice_dispatches == ["/plain"]
