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

__all__ = ["MAX_VALUES", "EmfMetrics", "MetricUnit", "metrics_disabled"]

MAX_VALUES = 100  # EMF: at most 100 metrics per document and 100 values per metric
# A metric or dimension name written into the directive as is: no character JSON would escape.
_NAME = re.compile(r"[A-Za-z0-9_.:/#-]{1,255}")


class MetricUnit(StrEnum):
    Count = "Count"


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
        self._clock = clock
        self._write = write
        self._lock = threading.Lock()  # the local stack serves requests on threads
        # (metric names and units, dimension names and values) -> the document's directive and dimension members
        self._rendered: dict[tuple[Any, ...], tuple[str, str]] = {}

    def add_metric(self, *, name: str, unit: MetricUnit | str, value: float) -> None:
        unit_name = unit.value if type(unit) is MetricUnit else MetricUnit(unit).value
        if name not in self.metric_set:
            _check_name(name)
        # The one value credport counts with passes at no cost; anything else is checked.
        if (value != 1 or type(value) is not int) and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise ValueError(f"a metric value is a finite number, not {value!r}")
        with self._lock:
            metric = self.metric_set.setdefault(name, {"Unit": unit_name, "StorageResolution": 60, "Value": []})
            metric["Unit"] = unit_name
            metric["Value"].append(float(value))
            full = len(self.metric_set) == MAX_VALUES or len(metric["Value"]) == MAX_VALUES
        if full:
            self.flush_metrics()

    def flush_metrics(self) -> None:
        """Write the gathered counts as one document (nothing when there are none), and start afresh."""
        with self._lock:
            taken, self.metric_set = self.metric_set, {}
        if not taken or metrics_disabled():
            return
        self._emit(taken, {"service": self.service})

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
        definitions = tuple((name, metric["Unit"]) for name, metric in metric_set.items())
        key = (definitions, tuple(dimensions.items()))
        rendered = self._rendered.get(key)
        if rendered is None:
            directive = json.dumps(
                {
                    "Namespace": self.namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in definitions],
                },
                separators=(",", ":"),
            )
            rendered = directive, json.dumps(dimensions, separators=(",", ":"))[1:-1]
            if len(self._rendered) < 256:  # a bounded cache: the names come from code, the sets are few
                self._rendered[key] = rendered
        directive, members = rendered
        timestamp = int(self._clock() * 1000)
        # Names are checked to need no escaping and values are finite floats, whose repr is their JSON.
        values = ",".join(f'"{name}":[{",".join(map(repr, metric["Value"]))}]' for name, metric in metric_set.items())
        line = f'{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":[{directive}]}},{members},{values}}}'
        (self._write or _stdout)(line)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"not a metric, dimension or namespace name: {name!r}")


def _stdout(line: str) -> None:
    # Looked up at each call, as print() does: a redirected sys.stdout (tests, the benchmarks) gets the line.
    sys.stdout.write(line + "\n")
