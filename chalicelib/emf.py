"""CloudWatch metrics as EMF log lines: the invocation's counts gathered in memory, written as one document at its end.

CloudWatch Logs turns each line in the Embedded Metric Format into metrics (CloudWatch User Guide, "Specification:
Embedded metric format"): a ``_aws`` directive naming the namespace, the dimension sets and each metric's name
and unit, then one member per dimension and per metric, a metric's member holding its values (at most 100).
This writes what Powertools' ``Metrics`` writes (the same document, byte for byte) for the one thing credport
does with metrics, counting, at a fraction of its cost per request: a count is a list append, and the document's
directive is rendered once per set of metric names rather than rebuilt and validated at every flush.

Powertools' switches are honoured (:func:`chalicelib.config.environment.metrics_disabled`):
``POWERTOOLS_METRICS_DISABLED`` (or ``POWERTOOLS_DEV`` with it unset) writes nothing. Unlike Powertools, a
disabled flush still empties the set, so a long-running local stack does not keep every count of its life in
memory.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from chalicelib.config.environment import metrics_disabled

__all__ = ["MAX_VALUES", "EmbeddedCount", "EmfMetrics", "MetricUnit", "metrics_disabled"]

MAX_VALUES = 100  # EMF: at most 100 metrics per document and 100 values per metric
# A metric or dimension name written into the directive as is: no character JSON would escape.
_NAME = re.compile(r"[A-Za-z0-9_.:/#-]{1,255}")


class MetricUnit(StrEnum):
    Count = "Count"


_UNIT_NAMES: dict[str, str] = {unit.value: unit.value for unit in MetricUnit}  # a member hashes as its value


class EmfMetrics:
    """One namespace, one ``service`` dimension; ``add_metric`` during an invocation, ``flush_metrics`` at its end.
    ``metric_set`` has Powertools' shape (``{name: {"Unit", "StorageResolution", "Value": [...]}}``)."""

    def __init__(
        self,
        namespace: str,
        service: str,
        *,
        clock: Callable[[], float] = time.time,
        write: Callable[[str], object] | None = None,
    ) -> None:
        _check_name(namespace)
        _check_name(service)
        self.namespace = namespace
        self.service = service
        self.metric_set: dict[str, dict[str, Any]] = {}
        self._dimensions = {"service": service}
        self._names: set[str] = set()
        self._clock = clock
        self._write = write
        self._lock = threading.Lock()  # the local stack serves requests on threads
        # (metric names and units, dimension names and values) -> the document, a slot for its time and values
        self._rendered: dict[tuple[Any, ...], str] = {}

    def add_metric(self, *, name: str, unit: MetricUnit | str, value: float) -> None:
        unit_name = _UNIT_NAMES.get(unit) if type(unit) is MetricUnit or type(unit) is str else None
        if unit_name is None:
            unit_name = MetricUnit(unit).value  # not a unit: the enum's own ValueError
        # The one value credport counts with passes at no cost; anything else is checked.
        if (value != 1 or type(value) is not int) and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise ValueError(f"a metric value is a finite number, not {value!r}")
        if name not in self._names:
            _check_name(name)
            if len(self._names) < 256:  # names come from code: few; checked once each
                self._names.add(name)
        with self._lock:
            metric = self.metric_set.get(name)
            if metric is None:
                values = [float(value)]
                self.metric_set[name] = {"Unit": unit_name, "StorageResolution": 60, "Value": values}
            else:
                metric["Unit"] = unit_name
                values = metric["Value"]
                values.append(float(value))
            full = len(values) == MAX_VALUES or len(self.metric_set) == MAX_VALUES
        if full:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Write the gathered counts as one document (nothing when there are none), and start afresh."""
        with self._lock:
            taken, self.metric_set = self.metric_set, {}
        if not taken or metrics_disabled():
            return
        self._emit(taken, self._dimensions)

    def embedded_count(self, name: str) -> EmbeddedCount:
        """One count of ``name`` per line of another JSON log writer (:class:`EmbeddedCount`)."""
        return EmbeddedCount(self, name)

    def count_once(self, name: str, **dimensions: str) -> None:
        """One count of ``name`` as a document of its own with these dimensions (and ``service``): never on the
        invocation's other metrics, whose one dimension set an alarm on them names."""
        _check_name(name)
        for key, value in dimensions.items():
            _check_name(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"dimension {key} needs a value")
        if not metrics_disabled():
            metric = {"Unit": MetricUnit.Count.value, "StorageResolution": 60, "Value": [1.0]}
            self._emit({name: metric}, {"service": self.service, **dimensions})

    def _emit(self, metric_set: dict[str, dict[str, Any]], dimensions: dict[str, str]) -> None:
        key: tuple[Any, ...]
        if len(metric_set) == 1 and dimensions is self._dimensions:  # an invocation's count of one thing: most
            ((name, metric),) = metric_set.items()
            key = (name, metric["Unit"])
            definitions: tuple[tuple[str, str], ...] = (key,)
        else:
            definitions = tuple([(name, metric["Unit"]) for name, metric in metric_set.items()])
            key = (definitions, *dimensions.items())
        template = self._rendered.get(key)
        if template is None:
            directive = _directive(self.namespace, list(dimensions), definitions)
            members = json.dumps(dimensions, separators=(",", ":"))[1:-1].replace("%", "%%")
            # The line with a slot for the time and one for the values (a % in a dimension's value kept as is).
            template = f'{{"_aws":{{"Timestamp":%d,"CloudWatchMetrics":[{directive}]}},{members},%s}}'
            if len(self._rendered) < 256:  # a bounded cache: the names come from code, the sets are few
                self._rendered[key] = template
        # Names are checked to need no escaping and values are finite floats, whose repr is their JSON.
        values = ",".join([f'"{name}":[{",".join(map(repr, metric["Value"]))}]' for name, metric in metric_set.items()])
        (self._write or _stdout)(template % (int(self._clock() * 1000), values))


def _directive(namespace: str, dimension_names: list[str], definitions: tuple[tuple[str, str], ...]) -> str:
    """A document's ``CloudWatchMetrics`` entry as JSON, a % in it doubled (it goes into a %-template)."""
    return json.dumps(
        {
            "Namespace": namespace,
            "Dimensions": [dimension_names],
            "Metrics": [{"Name": name, "Unit": unit} for name, unit in definitions],
        },
        separators=(",", ":"),
    ).replace("%", "%%")


class EmbeddedCount:
    """One count of ``name`` carried by a JSON log line of another writer, instead of a document of its own.

    An EMF document is any JSON log event with an ``_aws`` member: its other members are the event's own, and each
    dimension and metric the directive names is a top-level member (CloudWatch User Guide, "Specification: Embedded
    metric format"). A line that already holds ``service`` (credport's log lines do: Powertools' format writes it)
    carries the count with two members more, ``_aws`` and ``name``: one line instead of two per event counted, and
    the count never without its line. :meth:`members` gives them (the directive :class:`EmfMetrics` would write,
    for this one metric); where a writer cannot carry them, :meth:`count` adds the count to the invocation's set."""

    def __init__(self, metrics: EmfMetrics, name: str) -> None:
        _check_name(name)
        self.name = name
        self.service = metrics.service  # the value the line's ``service`` member must have
        self.keys = frozenset({"_aws", name})  # members the line may not hold already
        self._metrics = metrics
        directive = _directive(metrics.namespace, ["service"], ((name, MetricUnit.Count.value),))
        self._template = f'"_aws":{{"Timestamp":%d,"CloudWatchMetrics":[{directive}]}},"{name}":[1.0]'

    def members(self, now: float) -> str | None:
        """The two members for a line written at ``now`` (seconds); None while metrics are off
        (``POWERTOOLS_METRICS_DISABLED``), when nothing is counted."""
        return None if metrics_disabled() else self._template % int(now * 1000)

    def count(self) -> None:
        """The count, as a document of the invocation's own (a line that cannot carry it)."""
        self._metrics.add_metric(name=self.name, unit=MetricUnit.Count, value=1)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"not a metric, dimension or namespace name: {name!r}")


def _stdout(line: str) -> None:
    # Looked up at each call, as print() does: a redirected sys.stdout (tests, the benchmarks) gets the line.
    sys.stdout.write(line + "\n")
