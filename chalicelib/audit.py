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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.filters import SuppressFilter
from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter

from chalicelib.config.environment import xray_trace_header
from chalicelib.emf import EmbeddedCount

__all__ = ["AuditLine", "PreparedFields"]

# The log_format templates the fast path fills in (Powertools' defaults); any other template takes the slow path.
_LEVEL, _LOCATION, _TIME = "%(levelname)s", "%(funcName)s:%(lineno)d", "%(asctime)s"
_RESERVED = frozenset(RESERVED_LOG_ATTRS)
_NO_KEYS: frozenset[str] = frozenset()
_ENCODE = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode
# What that encoder writes for a str (ensure_ascii=False): the C function, without building an encoder per call.
_STRING: Callable[[str], str] = json.encoder.encode_basestring


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
        self,
        logger: Logger,
        message: str,
        *,
        level: int = logging.INFO,
        clock: Callable[[], float] = time.time,
        counted: EmbeddedCount | None = None,
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
        self._counted = counted
        self._level = level
        self._level_name = logging.getLevelName(level)
        self._clock = clock
        self._stamp: tuple[int, str, str] = (-1, "", "")
        self._locations: dict[tuple[CodeType, int], str] = {}
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
            if self._counted is not None:
                self._counted.count()
            return
        handler = self._sole_handler()
        line = None
        if handler is not None:
            line = self._line(self._location(sys._getframe(1)), prepared, fields, handler.formatter)
        if handler is not None and line is not None and self._written(handler, line):
            return
        if self._counted is not None:
            self._counted.count()  # a record carries no EMF members: the count is a document of its own
        extra = {**prepared.fields, **fields} if prepared is not None else fields
        self._std.log(self._level, self._message, extra=extra, stacklevel=2)

    @staticmethod
    def _written(handler: logging.StreamHandler[Any], line: str) -> bool:
        """Write the line as the handler would; False where the stream refused it (a text that does not encode, a
        closed pipe): the record then goes through logging, whose handler reports the failure and carries on, as
        it does for any line, instead of failing the request that logged it."""
        handler.acquire()  # as logging.Handler.handle does: lines of concurrent requests are not interleaved
        try:
            stream = handler.stream
            stream.write(line + handler.terminator)
            if stream and hasattr(stream, "flush"):  # StreamHandler.flush's own test, under the lock held here
                stream.flush()
        except Exception:
            return False
        finally:
            handler.release()
        return True

    def _sole_handler(self) -> logging.StreamHandler[Any] | None:
        """The logger's JSON stream handler when it is the only one a record would reach, else None."""
        std = self._std
        if std.filters:
            return None
        handlers = std.handlers
        if len(handlers) != 1 or not _is_powertools_stream(handlers[0], self._level):
            return self._sole_handler_of_many()
        parent = std.parent if std.propagate else None
        while parent is not None:  # the ancestors' handlers: only ones silenced for this logger
            for handler in parent.handlers:
                if not _silenced_for(handler, std.name):
                    return None
            parent = parent.parent if parent.propagate else None
        return handlers[0]  # type: ignore[return-value]

    def _sole_handler_of_many(self) -> logging.StreamHandler[Any] | None:
        std = self._std
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
        layout = self._layout
        # The layout rendered for this formatter and its log_format as it is now; anything else: looked at again.
        if formatter is not self._formatter or layout is None or layout.snapshot != tuple(formatter.log_format.items()):
            layout = self._layout_for(formatter)
        if layout is None or layout.fill is None:
            return None
        context = formatter.thread_safe_get_current_keys()
        keys = layout.keys
        shared = prepared.keys if prepared is not None else _NO_KEYS
        # A key given twice (a field named like one of the format's keys, the context's or the prepared ones) takes
        # its first place with its last value in Powertools' line: Powertools writes that one. A reserved key in the
        # context has its template filled in by Powertools.
        if context and not (
            _RESERVED.isdisjoint(context)
            and keys.isdisjoint(context)
            and shared.isdisjoint(context)
            and context.keys().isdisjoint(fields)
        ):
            return None
        if not (keys.isdisjoint(fields) and shared.isdisjoint(fields) and keys.isdisjoint(shared)):
            return None
        members = _members(context) if context else ""
        if prepared is not None and prepared.encoded:
            members = f"{members},{prepared.encoded}" if members else prepared.encoded
        if fields:
            more = _members(fields)
            members = f"{members},{more}" if members and more else members or more
        trace = xray_trace_header()
        if trace:
            traced = '"xray_trace_id":' + _STRING(trace.split(";")[0].replace("Root=", ""))
            members = f"{members},{traced}" if members else traced
        now = self._clock()
        counted = self._counted
        if counted is not None:
            # The count rides on the line where the line holds its dimension (the format's own ``service``) and
            # neither of its two members; anywhere else it is a document of its own.
            if (
                layout.service == counted.service
                and counted.keys.isdisjoint(layout.keys)
                and counted.keys.isdisjoint(fields)
                and counted.keys.isdisjoint(shared)
                and counted.keys.isdisjoint(context)
            ):
                embedded = counted.members(now)
                if embedded is not None:
                    members = f"{members},{embedded}" if members else embedded
            else:
                counted.count()
        return layout.fill(location, self._timestamp(formatter, now)) + ("," + members + "}" if members else "}")

    def _location(self, caller: FrameType) -> str:
        """``"function:line"`` of the caller, JSON-encoded: one per call site, kept (a bounded cache)."""
        site = (caller.f_code, caller.f_lineno)
        encoded = self._locations.get(site)
        if encoded is None:
            encoded = _STRING(f"{caller.f_code.co_name}:{caller.f_lineno}")
            if len(self._locations) < 256:
                self._locations[site] = encoded
        return encoded

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
        return layout if layout.fill is not None else None

    def _timestamp(self, formatter: LambdaPowertoolsFormatter, now: float) -> str:
        """``2026-12-02 02:05:51,648+0000``, as Powertools' default format writes it, strftime'd once a second."""
        second = int(now)
        msecs = int((now - second) * 1000)  # as logging.LogRecord computes msecs
        stamp = self._stamp  # one tuple, replaced whole: threads read a consistent one without a lock
        if stamp[0] != second:
            converted = formatter.converter(now)
            date, zone = time.strftime("%Y-%m-%d %H:%M:%S", converted), time.strftime("%z", converted)
            stamp = self._stamp = (second, date, zone)
        return f"{stamp[1]},{msecs:03d}{stamp[2]}"


def _members(fields: Mapping[str, Any]) -> str:
    """``fields`` as the members of a JSON object (no braces), None values left out, byte for byte what
    ``_ENCODE`` writes: a str key and value through the encoder's own string function, anything else through the
    encoder. Most of a line's fields are strings, and building an encoder per dict costs more than the line."""
    members = []
    for key, value in fields.items():
        if value is None:
            continue
        if type(key) is not str:  # the encoder's key rules (numbers, bools, None as keys): its own business
            return _ENCODE({k: v for k, v in fields.items() if v is not None})[1:-1]
        members.append(_STRING(key) + ":" + (_STRING(value) if type(value) is str else _ENCODE(value)))
    return ",".join(members)


@dataclass(frozen=True)
class _Layout:
    """A line's JSON up to its extra keys: ``fill(location, time)`` writes it (None: a template this does not fill,
    the line goes through Powertools)."""

    snapshot: tuple[tuple[str, Any], ...]
    fill: Callable[[str, str], str] | None
    keys: frozenset[str]
    service: str | None = None  # the format's own ``service`` member, where it writes one


def _render(snapshot: tuple[tuple[str, Any], ...], message: str, level_name: str) -> _Layout:
    """The fixed part as Powertools' formatter writes it: a reserved key's template filled in (the three its default
    format has), any other key's value as it is; a format this cannot write exactly gets no pieces (slow path)."""
    keys = {key for key, _ in snapshot}
    unwritable = _Layout(snapshot, None, frozenset())
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
    # One %-template: the literal pieces (a % in them doubled), a %s where the location or the time goes.
    parts: list[str] = []
    slots: list[str] = []
    for piece in pieces:  # "{" and the commas between members; a slot's name and value are one member
        if piece is _LOCATION or piece is _TIME:
            parts.append("%s" if piece is _LOCATION else '"%s"')  # the location comes encoded, the time plain
            slots.append(piece)
        else:
            parts.append(("{" if not parts else ",") + piece.replace("%", "%%"))
    service = dict(snapshot).get("service")
    return _Layout(
        snapshot,
        _filler("".join(parts), tuple(slots)),
        frozenset(keys) | {"xray_trace_id"},
        service if isinstance(service, str) else None,
    )


def _filler(template: str, slots: tuple[str, ...]) -> Callable[[str, str], str]:
    if slots == (_LOCATION, _TIME):  # Powertools' default format: location, then time
        return lambda location, stamp: template % (location, stamp)
    return lambda location, stamp: template % tuple(location if slot is _LOCATION else stamp for slot in slots)


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
