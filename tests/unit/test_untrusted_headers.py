"""Hostile signing headers and numerals: the SigV4 parser and the gateway's header readers answer every input with
a value or their own refusal (carrying the status to answer), never another exception.

Python's ``int()``/``strptime`` accept Unicode digits (Arabic-Indic, fullwidth), '_', signs and Unicode whitespace,
``isdigit()`` is true for superscripts ``int()`` refuses, and ``datetime`` arithmetic overflows near year 9999: each
of those once reached the parsers (local/sigv4.py, local/headers.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from local.headers import HeaderRefused, amz_date, amz_stamp, content_length, decimal, http_date
from local.sigv4 import ParsedSignature, Principal, SignatureRejected, parse_signature, verify
from tests.unit.test_sigv4 import (
    BASE,
    CREDENTIAL,
    HOST,
    INCOMPLETE,
    INVALID,
    LOOKUP,
    REGION,
    SIGNED_AT,
    STAMP,
    USER,
    authorization,
    frozen_signing_clock,  # noqa: F401  (autouse: botocore signs at SIGNED_AT)
    presign,
    rejected,
    sign,
)

LIMIT = 10 * 1024 * 1024
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ISO_BASIC = "Date must be in ISO-8601 'basic format'"
# Everything st.text() can draw, surrogates included (representable in a Python str, never on the wire).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
# 20240115 in Arabic-Indic and in fullwidth digits: int() reads both as 20240115, strptime's %Y their first four.
ARABIC = "\u0662\u0660\u0662\u0664\u0660\u0661\u0661\u0665"
FULLWIDTH = "\uff12\uff10\uff12\uff14\uff10\uff11\uff11\uff15"


T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def attempt(call: Callable[[], T], refusal: type[E]) -> T | E:
    """The call's result, or its refusal of type ``refusal``; any other exception fails the test."""
    try:
        return call()
    except refusal as error:
        return error


def parse_refused(headers: dict[str, str], url: str = BASE + "/api/keys") -> SignatureRejected:
    with pytest.raises(SignatureRejected) as info:
        parse_signature("GET", url, {"Host": HOST, **headers})
    assert info.value.status == 403
    return info.value


# --- X-Amz-Date -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param(ARABIC + "T120000Z", id="arabic-indic-digits"),
        pytest.param(ARABIC[:4] + "0115T120000Z", id="arabic-indic-year"),  # strptime's %Y reads it as 2024
        pytest.param(FULLWIDTH[:4] + "0115T120000Z", id="fullwidth-year"),
        pytest.param(FULLWIDTH + "T\uff11\uff12\uff10\uff10\uff10\uff10Z", id="fullwidth-digits"),
        pytest.param("\u00b2\u2070\u00b2\u20740115T120000Z", id="superscript-digits"),
        pytest.param("20240115T120000Z\x85", id="trailing-next-line"),
        pytest.param("\xa020240115T120000Z", id="leading-no-break-space"),
        pytest.param("20240115T120000Z\n", id="trailing-newline"),
        pytest.param("00000115T120000Z", id="year-zero"),
        pytest.param("20241315T120000Z", id="month-13"),
        pytest.param("20240230T120000Z", id="february-30"),
        pytest.param("20240115T246000Z", id="hour-24"),
        pytest.param("+20240115T120000Z", id="leading-plus"),
        pytest.param("2024_0115T120000Z", id="underscore"),
        pytest.param("2024-01-15T12:00:00Z", id="extended-format"),
        pytest.param("20240115T120000", id="no-zulu"),
        pytest.param("9" * 5000, id="5000-digits"),
        pytest.param("1" + "0" * 100, id="10**100"),
        pytest.param(STAMP + "," + STAMP, id="repeated-and-joined"),
    ],
)
def test_a_malformed_x_amz_date_is_refused_as_not_iso_basic(stamp: str) -> None:
    error = parse_refused({"X-Amz-Date": stamp, "Authorization": authorization()})
    assert (error.error_type, error.message.partition(".")[0]) == (INCOMPLETE, ISO_BASIC)
    assert error.message.endswith("See http://docs.aws.amazon.com/general/latest/gr/sigv4-date-handling.html")


def test_the_same_header_in_two_spellings_is_refused_not_one_of_them_picked() -> None:
    headers = {"X-Amz-Date": STAMP, "x-amz-date": "20240115T120001Z", "Authorization": authorization()}
    assert parse_refused(headers).message.startswith(ISO_BASIC)


@pytest.mark.parametrize("stamp", ["99991231T235959Z", "00010101T000000Z"])
def test_a_date_at_the_ends_of_the_calendar_is_refused_by_the_clock(stamp: str) -> None:
    credential = CREDENTIAL.replace("20240115", stamp[:8])
    headers = {"Host": HOST, "X-Amz-Date": stamp, "Authorization": authorization(Credential=credential)}
    message = rejected(INVALID, "GET", BASE + "/api/keys", headers).message
    assert message.startswith("Signature not yet current" if stamp > STAMP else "Signature expired")
    assert stamp in message


@pytest.mark.parametrize("stamp", ["99991231T235959Z", "00010101T000000Z"])
def test_a_presigned_link_at_the_ends_of_the_calendar_is_refused_not_overflowed(stamp: str) -> None:
    url = presign(expires=604800).replace(STAMP, stamp).replace("%2F20240115%2F", f"%2F{stamp[:8]}%2F")
    error = rejected(INVALID, "GET", url, {"Host": HOST})
    assert error.message.startswith("Signature not yet current" if stamp > STAMP else "Signature expired")


def test_signature_not_yet_current_says_what_it_compared_as_aws_does() -> None:
    url, headers = sign("GET")
    message = rejected(INVALID, "GET", url, headers, now=SIGNED_AT - dt.timedelta(hours=1)).message
    assert message == (
        "Signature not yet current: 20240115T120000Z is still later than 20240115T111500Z (20240115T110000Z + 15 min.)"
    )


# --- Date (instead of X-Amz-Date) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "date",
    [
        pytest.param("Mon, 01 Jan 0001 00:00:00 +0100", id="year-1-east-of-utc"),
        pytest.param("Fri, 31 Dec 9999 23:59:59 -2359", id="year-9999-west-of-utc"),
        pytest.param(f"Mon, 15 Jan {ARABIC[:4]} 12:00:00 GMT", id="arabic-indic-year"),
        pytest.param("Mon, 15 Jan \uff12\uff10\uff12\uff14 12:00:00 GMT", id="fullwidth-year"),
        pytest.param("Mon, 15 Jan 99999999999999999999 12:00:00 GMT", id="huge-year"),
        pytest.param("Mon, 15 Jan 2024 12:00:00 +0100", id="not-utc"),
        pytest.param("Mon, 32 Jan 2024 12:00:00 GMT", id="day-32"),
        pytest.param("20240115T120000Z", id="amz-format"),
        pytest.param("Mon, 15 Jan 2024 12:00:00 GMT, Mon, 15 Jan 2024 12:00:00 GMT", id="repeated-and-joined"),
    ],
)
def test_a_malformed_date_header_is_refused_as_not_iso_basic(date: str) -> None:
    error = parse_refused({"Date": date, "Authorization": authorization()})
    assert (error.error_type, error.message.partition(".")[0]) == (INCOMPLETE, ISO_BASIC)


@pytest.mark.parametrize(
    "date", ["Mon, 15 Jan 2024 12:00:00 GMT", "Mon, 15 Jan 2024 12:00:00 -0000", "15 Jan 2024 12:00:00 UTC"]
)
def test_a_utc_date_header_is_read(date: str) -> None:
    assert parse_signature("GET", BASE + "/", {"Date": date, "Authorization": authorization()}).amz_date == SIGNED_AT


# --- X-Amz-Expires --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        pytest.param("\u0663\u0660\u0660", "X-Amz-Expires should be a number", id="arabic-indic-digits"),
        pytest.param("\uff13\uff10\uff10", "X-Amz-Expires should be a number", id="fullwidth-digits"),
        pytest.param("\u00b3\u2070\u2070", "X-Amz-Expires should be a number", id="superscript-digits"),
        pytest.param("+300", "X-Amz-Expires should be a number", id="leading-plus"),
        pytest.param("-1", "X-Amz-Expires should be a number", id="negative"),
        pytest.param(" 300", "X-Amz-Expires should be a number", id="leading-space"),
        pytest.param("3_00", "X-Amz-Expires should be a number", id="underscore"),
        pytest.param("300.0", "X-Amz-Expires should be a number", id="decimal-point"),
        pytest.param("0x12c", "X-Amz-Expires should be a number", id="hex"),
        pytest.param("", "X-Amz-Expires should be a number", id="empty"),
        pytest.param("9" * 5000, "X-Amz-Expires must be from 1 to 604800.", id="5000-digits"),
        pytest.param("1" + "0" * 100, "X-Amz-Expires must be from 1 to 604800.", id="10**100"),
        pytest.param("0", "X-Amz-Expires must be from 1 to 604800.", id="zero"),
    ],
)
def test_a_malformed_x_amz_expires_is_refused(expires: str, message: str) -> None:
    url = re.sub(r"X-Amz-Expires=[0-9]+", lambda _: "X-Amz-Expires=" + _quote(expires), presign())
    error = parse_refused({}, url)
    assert (error.error_type, error.message) == (INCOMPLETE, message)


def test_x_amz_expires_with_leading_zeros_is_a_number() -> None:
    url = presign(expires=300).replace("X-Amz-Expires=300", "X-Amz-Expires=0000000000300")
    assert parse_signature("GET", url, {"Host": HOST}).presigned_expires == 300


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


# --- Authorization ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        pytest.param("\x85" + authorization(), "Unsupported authorization type", id="leading-next-line"),
        pytest.param("\u2003" + authorization(), "Unsupported authorization type", id="leading-em-space"),
        pytest.param(authorization().replace(" ", "\xa0", 1), "Unsupported authorization type", id="nbsp"),
        pytest.param(authorization() + ", " + authorization(), "not a SigV4 parameter", id="repeated-joined"),
        pytest.param(authorization() + ", garbage", "not a valid key=value pair", id="no-equal-sign"),
        pytest.param(authorization() + ", Signature=" + "b" * 64, "given more than once", id="repeated-signature"),
        pytest.param(authorization() + ", Extra=1", "is not a SigV4 parameter", id="unknown-parameter"),
        pytest.param(authorization(Credential=CREDENTIAL + "\n"), "Credential", id="credential-newline"),
        pytest.param(authorization(Signature="\uff41" * 64), "signature", id="fullwidth-signature"),
    ],
)
def test_an_authorization_with_odd_unicode_or_repeats_is_incomplete(auth: str, message: str) -> None:
    error = parse_refused({"X-Amz-Date": STAMP, "Authorization": auth})
    assert error.error_type == INCOMPLETE
    assert message.lower() in error.message.lower()


# --- properties -----------------------------------------------------------------------------------------------

NAMES = st.sampled_from(["Authorization", "X-Amz-Date", "Date", "X-Amz-Security-Token", "x-amz-date", "Host"])
QUERY = st.sampled_from(["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature"])


@FUZZ
@given(headers=st.dictionaries(NAMES | ANY_TEXT, ANY_TEXT, max_size=6), query=st.lists(st.tuples(QUERY, ANY_TEXT)))
@example(headers={"Authorization": authorization(), "X-Amz-Date": ARABIC + "T120000Z"}, query=[])
@example(headers={}, query=[("X-Amz-Expires", "\u00b2")])
def test_parse_signature_returns_or_refuses_with_403(headers: dict[str, str], query: list[tuple[str, str]]) -> None:
    from urllib.parse import urlencode

    url = BASE + "/api/keys?" + urlencode(query, errors="surrogatepass")
    parsed = attempt(lambda: parse_signature("GET", url, headers), SignatureRejected)
    if isinstance(parsed, SignatureRejected):
        assert parsed.status == 403
        assert parsed.error_type
        assert parsed.message
        return
    assert isinstance(parsed, ParsedSignature)
    assert amz_stamp(parsed.amz_date).isascii()


# The server's clock is trusted: any instant around the signing time, from 1970 to 2100.
CLOCK = st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)) | st.just(SIGNED_AT)


def _mutations() -> st.SearchStrategy[tuple[str, Any]]:
    return st.tuples(st.sampled_from(["header", "query", "url-tail"]), st.tuples(NAMES | QUERY, ANY_TEXT))


@FUZZ
@given(how=_mutations(), now=CLOCK, presigned=st.booleans())
def test_verify_on_a_mutated_genuine_request_returns_or_refuses(
    how: tuple[str, Any], now: dt.datetime, presigned: bool
) -> None:
    where, (name, value) = how
    if presigned:
        url, headers = presign(params={"a": "1"}), {"Host": HOST}
    else:
        url, headers = sign("GET", params={"a": "1"}, headers={"X-Tenant": "t"})
    if where == "header":
        headers = {**headers, name: value}
    elif where == "query":
        url = url + "&" + _quote(name) + "=" + _quote(value.encode("utf-8", "surrogatepass").decode("latin-1"))
    else:
        url = url + value
    principal = attempt(lambda: verify("GET", url, headers, b"", LOOKUP, region=REGION, now=now), SignatureRejected)
    if isinstance(principal, SignatureRejected):
        assert principal.status == 403
        return
    assert principal == USER


@FUZZ
@given(values=st.lists(ANY_TEXT | st.integers(min_value=0).map(str), max_size=3))
@example(values=["\u00b2"])
@example(values=["1" * 5000])
@example(values=["-1"])
def test_content_length_returns_a_length_or_refuses_with_400_or_413(values: list[str]) -> None:
    length = attempt(lambda: content_length(values, LIMIT), HeaderRefused)
    if isinstance(length, HeaderRefused):
        assert (length.status, length.message) in {(400, "Bad Request"), (413, "Request Too Long")}
        return
    assert 0 <= length <= LIMIT
    assert not values or (len(values) == 1 and values[0].strip(" \t").isascii())


@FUZZ
@given(text=ANY_TEXT | st.from_regex(r"[0-9]{8}T[0-9]{6}Z", fullmatch=True))
def test_amz_date_reads_only_what_it_writes_back(text: str) -> None:
    when = amz_date(text)
    assert when is None or amz_stamp(when) == text


@FUZZ
@given(text=ANY_TEXT)
def test_http_date_never_raises(text: str) -> None:
    when = http_date(text)
    assert when is None or when.tzinfo == dt.UTC


@FUZZ
@given(text=ANY_TEXT | st.integers(min_value=0, max_value=10**30).map(str), cap=st.integers(0, 10**9))
def test_decimal_is_int_on_ascii_digits_only(text: str, cap: int) -> None:
    value = decimal(text, cap)
    if not re.fullmatch(r"[0-9]+", text):
        assert value is None
    else:
        assert value == min(int(text), cap + 1)


# --- content length ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "status", "reason"),
    [
        (["\u0663"], 400, "not a decimal"),
        (["\uff13"], 400, "not a decimal"),
        (["\u00b2"], 400, "not a decimal"),
        (["-1"], 400, "not a decimal"),
        (["+5"], 400, "not a decimal"),
        (["1_0"], 400, "not a decimal"),
        (["5 5"], 400, "not a decimal"),
        (["\xa05"], 400, "not a decimal"),
        ([""], 400, "not a decimal"),
        (["5", "5"], 400, "more than once"),
        (["1" + "0" * 100], 413, "over"),
        (["9" * 5000], 413, "over"),
        ([str(LIMIT + 1)], 413, "over"),
    ],
)
def test_a_bad_content_length_is_refused(values: list[str], status: int, reason: str) -> None:
    with pytest.raises(HeaderRefused) as refused:
        content_length(values, LIMIT)
    assert (refused.value.status, reason in refused.value.reason) == (status, True)


@pytest.mark.parametrize(
    ("values", "length"), [([], 0), (["0"], 0), ([" 12\t"], 12), (["007"], 7), ([str(LIMIT)], LIMIT)]
)
def test_a_good_content_length_is_read(values: list[str], length: int) -> None:
    assert content_length(values, LIMIT) == length


# --- the gateway's last resort ------------------------------------------------------------------------------------


def test_a_failure_inside_the_gateway_is_a_json_500_not_a_dropped_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the gateway's own code raises (here: the signature check), the client gets API Gateway's 500."""
    import http.client

    from chalice.app import Chalice, IAMAuthorizer

    from local import gateway, gateway_auth

    app = Chalice("broken")

    @app.route("/x", authorizer=IAMAuthorizer())
    def x() -> dict[str, str]:
        return {}

    def broken(*_args: object, **_kwargs: object) -> Principal:
        raise RuntimeError("the gateway's own bug")

    monkeypatch.setattr(gateway_auth, "verify", broken)
    server = gateway.ApiServer(
        gateway.make_thread_safe(app), host="127.0.0.1", port=0, credentials=LOOKUP, account_id="1", region=REGION
    )
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/x", headers={"Authorization": authorization(), "X-Amz-Date": STAMP})
        answer = connection.getresponse()
        assert (answer.status, json.loads(answer.read())) == (500, {"message": "Internal server error"})
        assert answer.headers["x-amzn-RequestId"]
        connection.close()
    finally:
        server.stop()
