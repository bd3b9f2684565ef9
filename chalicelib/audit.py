"""Audit lines: one structured log line per security event (a token issued), at a fraction of a log call's cost.

A Powertools log call builds a ``LogRecord``, walks the stack for its location, copies the record's ``__dict__``,
formats the time with ``strftime`` and creates a JSON encoder, every time: ~45 us, more than the ES256 signature
of the token it reports. An :class:`AuditLine` is bound once to the logger and one message, and writes the same
line itself: the fields Powertools would write, in its order, through one pre-built encoder, the time formatted
once per second. It does so only where the logger's output is exactly that line: while every handler a record would
reach is the logger's own JSON stream handler (or one Powertools silenced for it, as in Lambda's root logger) and the
formatter is Powertools' default. Anywhere else (a test capturing records, an operator's extra handler, another
formatter) the line goes through ``logger.info`` like any other, so nothing that reads records misses one.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.filters import SuppressFilter
from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter

from chalicelib.config.environment import xray_trace_header

__all__ = ["AuditLine", "PreparedFields"]

# The log_format templates the fast path fills in (Powertools' defaults); any other template takes the slow path.
_LEVEL, _LOCATION, _TIME = "%(levelname)s", "%(funcName)s:%(lineno)d", "%(asctime)s"
_RESERVED = frozenset(RESERVED_LOG_ATTRS)
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class PreparedFields:
    """Fields many lines share, JSON-encoded once (:meth:`AuditLine.prepare`)."""

    fields: Mapping[str, Any]
    encoded: str  # the members, without braces ("" when none)
    keys: frozenset[str]


class AuditLine:
    """``line(**fields)`` logs ``message`` at ``level`` with ``fields``, as ``logger.info(message, extra=fields)``
    would (its location is the caller's), without a log record wherever nothing reads one."""

    def __init__(
        self, logger: Logger, message: str, *, level: int = logging.INFO, clock: Callable[[], float] = time.time
    ):
        try:
            json.loads(message)
        except ValueError:
            pass
        else:  # Powertools logs a message that parses as JSON as the parsed document: not an audit line's shape
            raise ValueError("an audit line's message is plain text")
        self._logger = logger
        self._std: logging.Logger = logger._logger
        self._message = message
        self._level = level
        self._level_name = logging.getLevelName(level)
        self._clock = clock
        self._second = -1
        self._stamp = ("", "")
        self._lock = threading.Lock()
        self._formatter: Any = None
        self._formatter_is_default = False
        self._layout: _Layout | None = None

    def prepare(self, **fields: Any) -> PreparedFields:
        """``fields`` encoded once, for the lines that share them (``line(prepared, **the_rest)``)."""
        kept = {key: value for key, value in fields.items() if value is not None}
        return PreparedFields(dict(fields), _ENCODE(kept)[1:-1], frozenset(fields))

    def __call__(self, prepared: PreparedFields | None = None, /, **fields: Any) -> None:
        std = self._std
        if not std.isEnabledFor(self._level):
            return
        handler = self._sole_handler()
        line = None
        if handler is not None:
            caller = sys._getframe(1)
            line = self._line(f"{caller.f_code.co_name}:{caller.f_lineno}", prepared, fields, handler.formatter)
        if handler is None or line is None:
            extra = {**prepared.fields, **fields} if prepared is not None else fields
            self._std.log(self._level, self._message, extra=extra, stacklevel=2)
            return
        handler.acquire()  # as logging.Handler.handle does: lines of concurrent requests are not interleaved
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        finally:
            handler.release()

    def _sole_handler(self) -> logging.StreamHandler[Any] | None:
        """The logger's JSON stream handler when it is the only one a record would reach, else None."""
        std = self._std
        if std.filters:
            return None
        found: logging.StreamHandler[Any] | None = None
        current: logging.Logger | None = std
        while current is not None:
            for handler in current.handlers:
                if current is std and found is None and _is_powertools_stream(handler, self._level):
                    found = handler  # type: ignore[assignment]
                elif not _silenced_for(handler, std.name):
                    return None
            if not current.propagate:
                break
            current = current.parent
        return found

    def _line(
        self, location: str, prepared: PreparedFields | None, fields: Mapping[str, Any], formatter: Any
    ) -> str | None:
        layout = self._layout_for(formatter)
        if layout is None:
            return None
        context = formatter.thread_safe_get_current_keys()
        if not _RESERVED.isdisjoint(context):
            return None  # Powertools fills a reserved key's template in even from the context
        shared = prepared.keys if prepared is not None else frozenset()
        # A key given twice (a field named like one of the format's keys, the context's or the prepared ones) takes
        # its first place with its last value in Powertools' line: Powertools writes that one.
        if not (layout.keys.isdisjoint(context) and layout.keys.isdisjoint(fields) and shared.isdisjoint(fields)):
            return None
        if not (shared.isdisjoint(context) and layout.keys.isdisjoint(shared) and context.keys().isdisjoint(fields)):
            return None
        trace = xray_trace_header()
        members = [
            _ENCODE({key: value for key, value in context.items() if value is not None})[1:-1] if context else "",
            prepared.encoded if prepared is not None else "",
            _ENCODE({key: value for key, value in fields.items() if value is not None})[1:-1] if fields else "",
            '"xray_trace_id":' + _ENCODE(trace.split(";")[0].replace("Root=", "")) if trace else "",
        ]
        pieces = [
            _ENCODE(location) if piece is _LOCATION else f'"{self._timestamp(formatter)}"' if piece is _TIME else piece
            for piece in layout.pieces
        ]
        body = ",".join(member for member in members if member)
        return "".join(pieces) + ("," + body + "}" if body else "}")

    def _layout_for(self, formatter: Any) -> _Layout | None:
        """The line's fixed part, rendered once for the formatter's current ``log_format`` (None: not a format this
        writes itself)."""
        if formatter is not self._formatter:  # checked once per formatter the logger is given
            self._formatter, self._formatter_is_default = formatter, _is_default_powertools(formatter)
            self._layout = None
        if not self._formatter_is_default:
            return None
        snapshot = tuple(formatter.log_format.items())
        layout = self._layout
        if layout is None or layout.snapshot != snapshot:
            layout = self._layout = _render(snapshot, self._message, self._level_name)
        return layout if layout.pieces else None

    def _timestamp(self, formatter: LambdaPowertoolsFormatter) -> str:
        """``2026-12-02 02:05:51,648+0000``, as Powertools' default format writes it, strftime'd once a second."""
        now = self._clock()
        second = int(now)
        msecs = int((now - second) * 1000)  # as logging.LogRecord computes msecs
        with self._lock:
            if second != self._second:
                converted = formatter.converter(now)
                self._stamp = (time.strftime("%Y-%m-%d %H:%M:%S", converted), time.strftime("%z", converted))
                self._second = second
            date, zone = self._stamp
        return f"{date},{msecs:03d}{zone}"


@dataclass(frozen=True)
class _Layout:
    """A line's JSON up to its extra keys: literal pieces, and the location and time slots between them."""

    snapshot: tuple[tuple[str, Any], ...]
    pieces: tuple[str, ...]  # empty: a template this does not fill (the line goes through Powertools)
    keys: frozenset[str]


def _render(snapshot: tuple[tuple[str, Any], ...], message: str, level_name: str) -> _Layout:
    """The fixed part as Powertools' formatter writes it: a reserved key's template filled in (the three its default
    format has), any other key's value as it is; a format this cannot write exactly gets no pieces (slow path)."""
    keys = {key for key, _ in snapshot}
    unwritable = _Layout(snapshot, (), frozenset())
    # Without "message" among the keys, Powertools writes it after the extra fields; an explicit xray_trace_id key
    # (None: left out, a value: written twice) changes what it writes at the end. Both are Powertools' to write.
    if "message" not in keys or "xray_trace_id" in keys:
        return unwritable
    pieces: list[str] = []
    for key, template in snapshot:
        name = _ENCODE(key) + ":"
        if key == "message":
            pieces.append(name + _ENCODE(message))
        elif template and key in RESERVED_LOG_ATTRS:  # Powertools fills these in from the record
            if template == _LEVEL:
                pieces.append(name + _ENCODE(level_name))
            elif template == _LOCATION:
                pieces += [name, _LOCATION]  # a slot: the module's own string, told apart by identity
            elif template == _TIME:
                pieces += [name, _TIME]
            else:
                return unwritable  # another template (or a % to format): Powertools fills it in
        elif template is not None:
            pieces.append(name + _ENCODE(template))  # any other key: its value as it is, "%(" and all
    joined: list[str] = []
    for piece in pieces:  # "{" and the commas between members; a slot's name and value are one member
        if piece is _LOCATION or piece is _TIME:
            joined.append(piece)
        else:
            joined.append(("{" if not joined else ",") + piece)
    return _Layout(snapshot, tuple(joined), frozenset(keys) | {"xray_trace_id"})


def _is_powertools_stream(handler: logging.Handler, level: int) -> bool:
    return (
        type(handler) is logging.StreamHandler
        and not handler.filters
        and handler.level <= level
        and isinstance(handler.formatter, LambdaPowertoolsFormatter)
    )


def _silenced_for(handler: logging.Handler, name: str) -> bool:
    """A handler Powertools gave a filter that drops this logger's records (Lambda's root handler)."""
    return any(isinstance(f, SuppressFilter) and f.logger in name for f in handler.filters)


def _default_serializer(serializer: Any) -> bool:
    keywords = getattr(serializer, "keywords", None)
    return (
        isinstance(serializer, functools.partial)
        and serializer.func is json.dumps
        and not serializer.args
        and keywords == {"default": str, "separators": (",", ":"), "indent": None, "ensure_ascii": False}
    )


def _is_default_powertools(formatter: Any) -> bool:
    return (
        type(formatter) is LambdaPowertoolsFormatter
        and formatter.datefmt is None
        and not formatter.use_rfc3339_iso8601
        and _default_serializer(formatter.json_serializer)
    )
