"""On the simulator's telemetry: every injected anomaly is caught at its pointing by its
check, and nothing alarms before it; clean simulated pointings raise no alarm."""

from __future__ import annotations

CHECK_OF = {"gain_jump": "calibration_lines", "hot_pixel": "pixels", "hk_excursion": "housekeeping"}


def statuses(graph) -> dict[str, int]:
    return {r["check"]: r["status"] for r in graph.target.reports}


def containing(truth, t: float) -> int:
    return next(i for i, p in enumerate(truth["pointings"]) if p["tstart"] <= t < p["tstop"])


def test_clean_simulation_raises_no_alarm(simulated_clean):
    truth, graphs = simulated_clean
    assert len(graphs) >= 3 and not truth["anomalies"]
    for p, graph in zip(truth["pointings"], graphs, strict=True):
        assert max(statuses(graph).values()) < 2, (p["id"], statuses(graph))
        assert graph.target.summary["calibration"] == "lines:511,59.3"


def test_each_anomaly_is_caught_at_its_pointing_by_its_check(simulated_anomalies):
    truth, graphs = simulated_anomalies
    assert {a["kind"] for a in truth["anomalies"]} == set(CHECK_OF)
    first = min(containing(truth, a["time"]) for a in truth["anomalies"])
    for graph in graphs[:first]:  # before anything was injected: not even a warning
        assert set(statuses(graph).values()) == {0}, statuses(graph)
    for anomaly in truth["anomalies"]:
        at = containing(truth, anomaly["time"])
        check = CHECK_OF[anomaly["kind"]]
        assert statuses(graphs[at])[check] == 2, (anomaly, statuses(graphs[at]))
        for earlier in graphs[:at]:
            assert statuses(earlier)[check] < 2, (anomaly, earlier.pointing)
        report = next(r for r in graphs[at].target.reports if r["check"] == check)
        if anomaly["kind"] == "hot_pixel":
            hot = [it for it in report["items"] if it["quantity"] == "hot_pixels" and it["status"]]
            assert [it["pixels"] for it in hot] == [[[anomaly["dety"], anomaly["detz"]]]]
        elif anomaly["kind"] == "hk_excursion":
            assert any(anomaly["parameter"] in m for m in report["alarms"])
        else:
            assert any(m.startswith("step_") for m in report["alarms"])
    # the other checks stay quiet where each anomaly is caught (no cross-talk)
    for anomaly in truth["anomalies"]:
        graph = graphs[containing(truth, anomaly["time"])]
        for other in ("module_rates", "shield_rate", "dead_time"):
            assert statuses(graph)[other] == 0, (anomaly["kind"], other)


def test_gain_after_the_jump_is_measured(simulated_anomalies):
    truth, graphs = simulated_anomalies
    jump = next(a for a in truth["anomalies"] if a["kind"] == "gain_jump")
    after = graphs[containing(truth, jump["time"]) + 2]
    assert abs(after.target.summary["gain"] - jump["factor"]) < 0.005
