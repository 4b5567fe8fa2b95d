"""Findings grouped by cause, on small frames: fifteen routes failing for one reason are one
cause with its routes, each route keeps its own row and its own handler's log line."""

from __future__ import annotations

import json
from pathlib import Path

from analysis.causes import by_cause
from analysis.cli import main
from analysis.findings import SLOW, UNGRACEFUL, Rules, find, to_records, to_text
from analysis.html import findings_section
from analysis.log_match import signature
from analysis.synthetic import write_run
from tests.analysis.test_findings import HTML_500, T0, frame, local, req, window

PUBLISH = ("POST", "/api/vod/publish/[id]")
RULES = Rules(
    "test",
    outage_status=(503,),
    grace_s=5.0,
    slow_ms=1000.0,
    min_requests=3,
    handlers={PUBLISH: ("core.api.routes.vod:publish_to_vod",)},
)
REDIS = "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Refused."
ROUTES = ("/api/browse", "/api/queue", "/api/member-cities")


def flask_traceback(t: float, path: str, method: str = "GET", error: str = REDIS) -> str:
    return (
        f"[{local(t)}] ERROR in app: Exception on {path} [{method}]\n"
        "Traceback (most recent call last):\n"
        f'  File "/srv/flask/app.py", line 880, in full_dispatch_request\n{error}\n'
    )


def redis_down_run() -> tuple[object, str]:
    """Three routes answer an HTML 500 during a Redis outage (one cause), publish a JSON 500
    of its own (another cause), health is slow outside the fault (its own cause)."""
    rows, log = [], ""
    for i, path in enumerate(ROUTES):
        for k in range(2 + i):
            t = 11.0 + i + 2 * k
            rows.append(req(t, path, 500, body=HTML_500, ctype="text/html"))
            log += flask_traceback(t + 0.1, path)
    rows.append(req(12.5, "/api/vod/publish/[id]", 500, "POST", body='{"error": "boom"}'))
    log += (
        f"{local(12.6)} | ERROR    | core.api.routes.vod:publish_to_vod:98 - Error publishing"
        " to VOD: Error 111 connecting to localhost:6379\n"
    )
    rows += [req(1.0 + k, "/api/health", 200, ms=3000.0) for k in range(4)]
    return frame(*rows), log


def test_one_cause_of_many_routes_is_one_row_with_its_routes_and_counts() -> None:
    from analysis.app_logs import parse_log

    requests, log = redis_down_run()
    table = find(requests, window(10.0, 20.0), RULES, parse_log(log, "api.log"), T0)
    assert len(table) == 5  # the per-route rows stay
    causes = by_cause(table)
    assert len(causes) == 3, causes.to_string()
    [redis] = causes[causes["rows"] == 3].itertuples(index=False)
    assert redis.kind == UNGRACEFUL and redis.status == 500 and redis.shape == "html"
    assert sorted(redis.endpoints) == sorted(f"GET {p}" for p in ROUTES)
    assert redis.count == 2 + 3 + 4 and redis.fault == "redis down"
    assert redis.signature == signature("", REDIS)
    # Each route's row quotes the traceback of its own path, not a neighbour's.
    for row in table[table["cause"] == redis.cause].itertuples(index=False):
        assert f"Exception on {row.endpoint.split()[1]} [GET]" in row.log_line, row
    assert set(causes["kind"]) == {UNGRACEFUL, SLOW}


def test_the_cli_prints_one_line_per_cause_then_its_routes_indented() -> None:
    from analysis.app_logs import parse_log

    requests, log = redis_down_run()
    text = to_text(find(requests, window(10.0, 20.0), RULES, parse_log(log, "api.log"), T0))
    lines = text.splitlines()
    assert lines[0] == "findings: 5 in 3 cause(s)"
    head = [i for i, line in enumerate(lines) if line.startswith("  ungraceful   3 routes")]
    assert len(head) == 1, text
    i = head[0]
    assert "9 of 9 (100%)" in lines[i] and "redis down" in lines[i]
    assert lines[i + 1].endswith(signature("", REDIS))
    assert lines[i + 2] == "      routes: " + ", ".join(f"GET {p}" for p in reversed(ROUTES))
    per_route = lines[i + 3 : i + 6]
    for path, line in zip(reversed(ROUTES), per_route, strict=True):
        assert line.startswith(f"      - GET {path} ") and f"Exception on {path} [GET]" in line
    # A cause of one route reads as one finding did before.
    assert any(line.startswith("  ungraceful   POST /api/vod/publish/[id]") for line in lines)
    assert any("core.api.routes.vod:publish_to_vod:98" in line for line in lines)


def test_a_route_whose_handler_logged_nothing_says_so() -> None:
    from analysis.app_logs import parse_log

    requests = frame(req(12.0, "/api/queue", 500, body=HTML_500, ctype="text/html"))
    log = flask_traceback(12.1, "/api/browse")  # a neighbour's traceback, same second
    table = find(requests, window(10.0, 20.0), RULES, parse_log(log, "api.log"), T0)
    row = table.iloc[0]
    assert row.log_line == "" and row.log_note.startswith("no line of this route")
    assert "      log: no line of this route" in to_text(table)
    # Without any log there is nothing to say about lines.
    assert find(requests, window(10.0, 20.0), RULES, (), T0).iloc[0].log_note == ""


def test_the_html_report_folds_a_cause_of_several_routes_in_details() -> None:
    from analysis.app_logs import parse_log

    requests, log = redis_down_run()
    table = find(requests, window(10.0, 20.0), RULES, parse_log(log, "api.log"), T0)
    html = "".join(findings_section(table))
    assert html.count("<details>") == 1 and "the 3 routes, one row each" in html
    assert "5 findings in 3 cause(s)" in html
    for path in ROUTES:
        assert f"Exception on {path} [GET]" in html


def test_json_keeps_per_route_rows_each_with_its_cause(tmp_path: Path, capsys) -> None:
    requests, log = redis_down_run()
    run = write_run(tmp_path / "run", requests)
    (tmp_path / "api.log").write_text(log)
    args = ["findings", str(run), "--json", "--app-log", str(tmp_path / "api.log")]
    assert main(args) == 0
    records = json.loads(capsys.readouterr().out)
    redis = [r for r in records if r["shape"] == "html"]
    assert len(redis) == 3 and len({r["cause"] for r in redis}) == 1
    [publish] = [r for r in records if r["endpoint"] == "POST /api/vod/publish/[id]"]
    assert publish["cause"] != redis[0]["cause"]
    assert to_records(find(requests, window(10.0, 20.0), RULES))[0]["cause"]
