"""The health model's derived states and its summary lines."""

from __future__ import annotations

from appliance.runtime.health import Health, HealthSnapshot, Status


def test_states_and_summary() -> None:
    now = [100.0]
    health = Health(clock=lambda: now[0])
    web = health.reporter("web")
    sip = health.reporter("sip")
    snap = health.snapshot()
    assert (snap.ready, snap.alive, snap.overall) == (False, True, "starting")
    web.ok("listening")
    sip.degraded("upstream unreachable")
    snap = health.snapshot()
    assert (snap.ready, snap.alive, snap.overall) == (True, True, "degraded")
    assert snap.summary() == "Degraded: sip degraded: upstream unreachable"
    sip.failed("task crashed")
    snap = health.snapshot()
    assert (snap.ready, snap.alive, snap.overall) == (False, False, "failed")
    assert snap.problems() == ["sip failed: task crashed"]
    sip.ok()
    assert health.snapshot().summary() == "Serving: 2 components ok"


def test_listeners_hear_changes_only() -> None:
    health = Health()
    seen: list[HealthSnapshot] = []
    health.subscribe(seen.append)
    reporter = health.reporter("x")
    reporter.ok("a")
    reporter.ok("a")
    reporter.ok("b")
    assert [s.components[0].detail for s in seen] == ["a", "b"]


def test_since_is_kept_while_status_stays() -> None:
    now = [1.0]
    health = Health(clock=lambda: now[0])
    reporter = health.reporter("x")
    reporter.ok("a")
    now[0] = 5.0
    reporter.ok("b")
    assert health.snapshot().components[0].since == 1.0
    reporter.failed("c")
    assert health.snapshot().components[0].since == 5.0
    assert health.snapshot().components[0].status is Status.FAILED
