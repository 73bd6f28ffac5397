"""A small metrics registry rendered in the Prometheus text exposition format (0.0.4)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

LabelValues = tuple[str, ...]
Sample = float | Mapping[LabelValues, float]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metric:
    """A family of samples sharing a name, help text, type and label names."""

    kind = "untyped"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Iterable[str] = (),
        read: Callable[[], Sample] | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.values: dict[LabelValues, float] = {}
        self.read = read

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labels)

    def samples(self) -> Mapping[LabelValues, float]:
        """Current values by label values (read from the callback when there is one)."""
        if self.read is None:
            return self.values
        value = self.read()
        if isinstance(value, Mapping):
            return value
        return {(): float(value)}

    def render(self) -> list[str]:
        """Exposition lines for this family."""
        lines = [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for key, value in sorted(self.samples().items()):
            if self.labels:
                pairs = ",".join(
                    f'{n}="{_escape(v)}"' for n, v in zip(self.labels, key, strict=True)
                )
                lines.append(f"{self.name}{{{pairs}}} {_number(value)}")
            else:
                lines.append(f"{self.name} {_number(value)}")
        return lines


class Counter(Metric):
    """A value that only goes up (counted here, or read from a monotonic source)."""

    kind = "counter"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (never negative)."""
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount


class Gauge(Metric):
    """A value that goes up and down, set directly or read from a callback at scrape time."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        """Set the value for these labels."""
        self.values[self._key(labels)] = value


class Metrics:
    """The registry every subsystem adds its metrics to."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Metric:
        if metric.name in self._families:
            raise ValueError(f"metric {metric.name} registered twice")
        self._families[metric.name] = metric
        return metric

    def counter(
        self,
        name: str,
        help_text: str,
        labels: Iterable[str] = (),
        read: Callable[[], Sample] | None = None,
    ) -> Counter:
        """Register a counter, optionally read by a callback when scraped."""
        metric = Counter(name, help_text, labels, read)
        self._add(metric)
        return metric

    def gauge(
        self,
        name: str,
        help_text: str,
        labels: Iterable[str] = (),
        read: Callable[[], Sample] | None = None,
    ) -> Gauge:
        """Register a gauge, optionally read by a callback when scraped."""
        metric = Gauge(name, help_text, labels, read)
        self._add(metric)
        return metric

    def render(self) -> str:
        """The whole registry in the text exposition format."""
        lines: list[str] = []
        for metric in self._families.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
