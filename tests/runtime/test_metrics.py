"""Prometheus text exposition format (0.0.4)."""

from __future__ import annotations

import pytest

from appliance.runtime.metrics import Metrics


def test_render() -> None:
    m = Metrics()
    c = m.counter("x_requests_total", "Requests.", ["path", "code"])
    c.inc(path="/a", code="200")
    c.inc(2, path='/b"\\\n', code="500")
    m.gauge("x_temp", "Temperature.", read=lambda: 21.5)
    g = m.gauge("x_up", "Up.", ["c"])
    g.set(1, c="web")
    assert m.render() == (
        "# HELP x_requests_total Requests.\n"
        "# TYPE x_requests_total counter\n"
        'x_requests_total{path="/a",code="200"} 1\n'
        'x_requests_total{path="/b\\"\\\\\\n",code="500"} 2\n'
        "# HELP x_temp Temperature.\n"
        "# TYPE x_temp gauge\n"
        "x_temp 21.5\n"
        "# HELP x_up Up.\n"
        "# TYPE x_up gauge\n"
        'x_up{c="web"} 1\n'
    )


def test_misuse_is_refused() -> None:
    m = Metrics()
    c = m.counter("a_total", "A.", ["l"])
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(other="x")
    with pytest.raises(ValueError, match="only go up"):
        c.inc(-1, l="x")
    with pytest.raises(ValueError, match="registered twice"):
        m.counter("a_total", "again")
    with pytest.raises(ValueError, match="invalid metric name"):
        m.gauge("bad-name", "x")
