"""The secret-hygiene checker: a canary secret (and any other secret a test watches) looked for in every form it
could leak in, in everything collected: log records and lines, output streams, and what
:mod:`tests.support.hygiene_stack` collects from the flows. Used by ``tests/functional/test_secret_hygiene.py``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import secrets
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chalicelib.observability import logger

__all__ = ["CANARY", "MAX_LOG_LINE", "Hygiene", "capturing", "encodings", "windows"]

CANARY = "canary-" + secrets.token_hex(16)
MAX_LOG_LINE = 4096
WHOLE_EVENT_MARKERS = (
    "requestContext",
    "multiValueHeaders",
    "isBase64Encoded",
    "Records",
    "receiptHandle",
    "eventSourceARN",
    "TopicArn",
    "statusCode",
    "authorizationToken",
    "methodArn",
)
WINDOW, STRIDE = 24, 12  # a leaked run of WINDOW + STRIDE - 1 base64 characters of a large secret is found


# --- what a leak looks like ------------------------------------------------------------------------------------


def encodings(secret: bytes) -> set[str]:
    """The secret as text, hex, and base64/base64url (padded, unpadded, and the characters that encode only its
    bytes when it sits at byte offset 0, 1 or 2 of a longer encoded value)."""
    forms = {secret.hex()}
    with contextlib.suppress(UnicodeDecodeError):
        forms.add(secret.decode("utf-8"))
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(secret).decode("ascii")
        forms |= {whole, whole.rstrip("=")}
        for offset in range(3):
            text = encode(b"\0" * offset + secret).decode("ascii")
            end = offset + len(secret)
            # Skip the characters that mix in the bytes before; stop before those that mix in the bytes after.
            forms.add(text[(0, 2, 3)[offset] : 4 * (end // 3) + (0, 1, 2)[end % 3]])
    return {form for form in forms if len(form) >= 12}


def windows(secret: bytes) -> set[str]:
    """For large secrets (entropy, private keys): every STRIDE-th WINDOW-character run of its base64 at each of
    the three alignments (a haystack is searched with base64url turned into base64)."""
    found: set[str] = set()
    for offset in range(3):
        text = base64.b64encode(secret[offset:]).decode("ascii")
        found.update(text[i : i + WINDOW] for i in range(0, len(text) - WINDOW + 1, STRIDE))
    return found


_URL_TO_STD = str.maketrans("-_", "+/")


class Hygiene:
    """Captures every log record and output stream, collects what flows produce, and finds the watched secrets."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.stream = io.StringIO()
        self.exact: dict[str, str] = {}  # needle -> label
        self.windows: dict[str, str] = {}  # window -> label
        self.collected: list[tuple[str, str, frozenset[str]]] = []  # (where, text, labels allowed there)
        self.flows: set[str] = set()
        self.watch("canary", CANARY)

    # Watching -------------------------------------------------------------------------------------------------

    def watch(self, label: str, secret: str | bytes) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(raw) > 256:
            self.windows.update(dict.fromkeys(windows(raw), label))
        else:
            self.exact.update(dict.fromkeys(encodings(raw), label))

    def watch_token(self, label: str, token: str) -> None:
        """A bearer credential: the whole token and its signature (header and claims are not secret)."""
        self.exact[token] = label
        self.exact[token.rsplit(".", 1)[-1]] = label

    def watch_pem(self, label: str, pem: str | bytes) -> None:
        """A private key: its private numbers only (the public ones are published, and rightly found)."""
        key = serialization.load_pem_private_key(pem.encode("ascii") if isinstance(pem, str) else pem, None)
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.private_numbers()
            private: tuple[int, ...] = (numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            private = (key.private_numbers().private_value,)
        else:
            raise AssertionError(f"a {type(key).__name__} to watch")
        for number in private:
            self.watch(label, number.to_bytes((number.bit_length() + 7) // 8, "big"))

    # Collecting -----------------------------------------------------------------------------------------------

    def collect(self, where: str, value: Any, *, allow: Iterable[str] = ()) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=repr)
        self.collected.append((where, text, frozenset(allow)))

    def exception(self, where: str, exc: BaseException) -> None:
        """What Lambda logs for an error a handler lets out: message, type and stack, with every cause."""
        self.collect(f"exception from {where}", "".join(traceback.format_exception(exc)) + repr(exc))

    # Finding --------------------------------------------------------------------------------------------------

    def log_lines(self) -> list[str]:
        formatter = logger.registered_formatter
        return [formatter.format(record) for record in self.records]

    def leaks(self) -> list[str]:
        sources: list[tuple[str, str, frozenset[str]]] = [
            *((f"log line {line}", line, frozenset()) for line in self.log_lines()),
            *((f"log record {vars(r)!r}", repr(vars(r)), frozenset()) for r in self.records),
            ("stdout (logger stream)", self.stream.getvalue(), frozenset()),
            *self.collected,
        ]
        found = []
        for where, text, allowed in sources:
            labels = self._find(text) - allowed
            if labels:
                found.append(f"{sorted(labels)} in {where[:300]}")
        return found

    def _find(self, text: str) -> set[str]:
        labels = {label for needle, label in self.exact.items() if needle in text}
        if self.windows:
            haystack = text.translate(_URL_TO_STD)
            labels |= {
                self.windows[haystack[i : i + WINDOW]]
                for i in range(len(haystack) - WINDOW + 1)
                if haystack[i : i + WINDOW] in self.windows
            }
        return labels

    def whole_events_logged(self) -> list[str]:
        problems = []
        for line in self.log_lines():
            if len(line) > MAX_LOG_LINE:
                problems.append(f"a {len(line)}-character log line: {line[:200]}")
            problems += [f"{marker!r} in log line {line[:300]}" for marker in WHOLE_EVENT_MARKERS if marker in line]
        return problems

    def assert_clean(self, capfd: pytest.CaptureFixture[str]) -> None:
        out, err = capfd.readouterr()
        self.collect("stdout", out)
        self.collect("stderr", err)
        assert self.records, "no log record was captured: the capture is broken"
        assert not self.leaks(), "\n".join(self.leaks())
        assert not self.whole_events_logged(), "\n".join(self.whole_events_logged())


class _Capture(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        if all(record is not seen for seen in self._records):
            self._records.append(record)


@contextlib.contextmanager
def capturing() -> Iterator[Hygiene]:
    """credport's logger at DEBUG, every record captured (on it and on the root logger), and the logger's own
    stdout stream (Powertools writes JSON lines there) redirected into a buffer for the duration."""
    result = Hygiene()
    capture = _Capture(result.records)
    credport_logger, root = logging.getLogger("credport"), logging.getLogger()
    level = credport_logger.level
    streams = [h for h in credport_logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.setStream(result.stream) for h in streams]
    credport_logger.setLevel(logging.DEBUG)
    credport_logger.addHandler(capture)
    root.addHandler(capture)
    try:
        yield result
    finally:
        root.removeHandler(capture)
        credport_logger.removeHandler(capture)
        credport_logger.setLevel(level)
        for handler, stream in zip(streams, previous, strict=True):
            if stream is not None:
                handler.setStream(stream)
