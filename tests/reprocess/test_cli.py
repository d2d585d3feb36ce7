"""``nrt reprocess`` end to end: JSON progress, skipping what is cached, selection, errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from nrt.cli import main

GRAPH = "tests.reprocess.graph:pointing_graph"


def invoke(*args: str):
    result = CliRunner().invoke(main, ["reprocess", *args], catch_exceptions=False)
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result, lines


def test_json_progress_then_nothing_left_to_do(cluster):
    args = ["--pointings", "050000010010,050000020010", "--graph", GRAPH]
    result, lines = invoke(*args, "--scheduler", cluster.scheduler_address, "--json")
    assert result.exit_code == 0, result.output
    start = {"event": "start", "pointings": 2, "targets": 2, "workers": 2}
    assert lines[0].items() >= start.items()
    elements = [x for x in lines if x["event"] == "element"]
    assert len(elements) == 11 and all(x["status"] == "ok" for x in elements)
    assert sorted(x["done"] for x in elements) == list(range(1, 12))
    assert {x["pointing"] for x in elements if x["element"] == "Summary"} == {
        "050000010010",
        "050000020010",
    }
    assert lines[-1]["event"] == "summary" and lines[-1]["submitted"] == 11

    listed = CliRunner().invoke(main, ["cache", "ls", "--element", "Summary", "--json"])
    assert len(listed.output.splitlines()) == 2, "the client recorded the results in the index"

    result, lines = invoke(*args, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0
    assert lines[-1]["submitted"] == 0 and lines[-1]["held"] == 2


def test_dates_and_element_selection(cluster):
    result, lines = invoke(
        "--from", "2002-10-17", "--to", "2002-10-18", "--elements", "Events", "--graph", GRAPH,
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert lines[0]["pointings"] == 4
    assert {x["element"] for x in lines if x["event"] == "element"} == {"Events"}
    assert lines[-1]["submitted"] == 4


def test_local_cluster_when_no_scheduler_is_given():
    result, lines = invoke("--pointings", "060000010010", "--graph", GRAPH, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert lines[0]["workers"] == 2
    assert lines[-1]["submitted"] == 6 and lines[-1]["errors"] == 0


def test_bad_invocations_say_what_to_do():
    result, _ = invoke("--pointings", "A", "--from", "2020-01-01", "--to", "2020-01-02")
    assert result.exit_code == 2 and "either --pointings or --from and --to" in result.output
    result, _ = invoke("--pointings", "A", "--graph", "no.such.module:f")
    assert result.exit_code == 2 and "cannot load no.such.module:f" in result.output
    result, _ = invoke("--pointings", "A", "--graph", GRAPH, "--elements", "Nope")
    assert result.exit_code == 2
    assert "no element named Nope" in result.output and "Summary" in result.output
    result, _ = invoke("--from", "yesterday", "--to", "2020-01-02", "--graph", GRAPH)
    assert result.exit_code == 2 and "not an ISO date" in result.output


def test_worker_scratch_cache_needs_irods_as_the_shared_store(tmp_path):
    result, _ = invoke(
        "--pointings", "A", "--graph", GRAPH, "--worker-cache-dir", str(tmp_path / "scratch")
    )
    assert result.exit_code == 2 and "NRT_IRODS_COLLECTION" in result.output


def test_element_errors_give_exit_status_1(cluster):
    result, lines = invoke(
        "--pointings", "090000010010", "--graph", "tests.reprocess.graph:broken_graph",
        "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert result.exit_code == 1
    errors = [x for x in lines if x.get("status") == "error"]
    assert len(errors) == 1 and "bad channel in 090000010010" in errors[0]["error"]
    assert lines[-1]["errors"] == 1 and lines[-1]["ok"] == 1  # Events was fine
