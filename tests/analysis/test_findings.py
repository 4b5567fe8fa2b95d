"""Findings on small frames: each defect kind appears when the defect is there, and not
otherwise; the app's log line that explains it is found."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.app_logs import line_time, parse_log
from analysis.cli import main
from analysis.findings import (
    NO_FAULT,
    SERVER_ERROR,
    SLOW,
    UNGRACEFUL,
    Rules,
    error_shape,
    find,
    load_rules,
    to_text,
)
from analysis.load import InputError, empty_faults
from analysis.log_match import (
    LoggedRoute,
    explaining_record,
    path_pattern,
    route_record,
    signature,
)
from analysis.synthetic import write_run

T0 = 1_800_000_000.0
HTML_500 = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>"
JSON_503 = '{"error": {"code": "unavailable", "message": "redis is down"}}'
RULES = Rules(
    "test",
    outage_status=(503,),
    grace_s=5.0,
    slow_ms=None,
    route_slow_ms={("GET", "/api/health"): 1000.0},
    min_requests=3,
)


def req(
    t: float,
    name: str,
    status: int,
    method: str = "GET",
    ms: float = 10.0,
    body: str | None = None,
    ctype: str | None = None,
) -> dict[str, object]:
    failed = status >= 400 or status == 0
    return {
        "t_start": T0 + t,
        "name": name,
        "type": method,
        "latency_us": int(ms * 1000),
        "ok": not failed,
        "error": f"CatchResponseError: status {status}, expected 200" if failed else None,
        "status": status,
        "content_type": ctype if failed else None,
        "body": body if failed else None,
    }


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def window(start: float, end: float, what: str = "redis down") -> pd.DataFrame:
    return pd.DataFrame(
        {"start": [T0 + start], "end": [T0 + end], "link": ["redis"], "what": [what]}
    )


PUBLISH = "/api/vod/publish/[id]"


def test_a_500_outside_any_fault_is_a_server_error_with_its_count_share_and_shape() -> None:
    requests = frame(
        req(1.0, "/api/vods", 200),
        req(2.0, PUBLISH, 500, "POST", body=HTML_500, ctype="text/html; charset=utf-8"),
        req(3.0, PUBLISH, 500, "POST", body=HTML_500, ctype="text/html; charset=utf-8"),
        req(4.0, PUBLISH, 202, "POST"),
    )
    table = find(requests, empty_faults(), RULES, t0=T0)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.kind, row.endpoint, row.status, row["shape"]) == (
        SERVER_ERROR,
        f"POST {PUBLISH}",
        500,
        "html",
    )
    assert (row["count"], row.requests, row.fault) == (2, 3, NO_FAULT)
    assert row.share == pytest.approx(2 / 3)
    assert row.first_s == pytest.approx(2.0)


def test_a_clean_run_has_no_findings() -> None:
    requests = frame(*(req(t, "/api/vods", 200) for t in range(10)))
    assert find(requests, empty_faults(), RULES).empty
    assert to_text(find(requests, empty_faults(), RULES)) == "findings: none"


def test_a_json_503_during_an_outage_is_graceful_an_html_500_is_not() -> None:
    requests = frame(
        req(1.0, "/api/vods", 200),
        req(11.0, "/api/vods", 503, body=JSON_503, ctype="application/json"),
        req(12.0, "/api/me", 500, body=HTML_500, ctype="text/html"),
        req(13.0, "/api/shows", 503, body=HTML_500, ctype="text/html"),
        req(14.0, "/api/vods", 503, body=JSON_503, ctype="application/json"),
    )
    table = find(requests, window(10.0, 20.0), RULES)
    assert set(table["endpoint"]) == {"GET /api/me", "GET /api/shows"}
    assert set(table["kind"]) == {UNGRACEFUL}
    assert set(table["fault"]) == {"redis down"}
    assert set(table["shape"]) == {"html"}


def test_a_503_just_after_a_fault_belongs_to_it_but_one_long_after_is_a_server_error() -> None:
    requests = frame(
        req(22.0, "/api/vods", 503, body=JSON_503, ctype="application/json"),  # grace: 5 s
        req(40.0, "/api/vods", 503, body=JSON_503, ctype="application/json"),
        req(41.0, "/api/vods", 200),
    )
    table = find(requests, window(10.0, 20.0), RULES, t0=T0)
    assert list(table["kind"]) == [SERVER_ERROR]
    assert table.iloc[0]["count"] == 1 and table.iloc[0].first_s == pytest.approx(40.0)
    assert table.iloc[0].requests == 2  # the endpoint's requests outside the faults


def test_a_health_report_503_during_an_outage_is_graceful() -> None:
    report = '{"status": "degraded", "checks": {"redis": "down"}}'
    requests = frame(req(11.0, "/api/health", 503, body=report, ctype="application/json"))
    assert find(requests, window(10.0, 20.0), RULES).empty


def test_error_shape_any_accepts_an_outage_status_whatever_its_body() -> None:
    requests = frame(req(11.0, "/api/vods", 503, body=HTML_500, ctype="text/html"))
    assert not find(requests, window(10.0, 20.0), RULES).empty
    lenient = Rules(outage_status=(503,), error_shape="any")
    assert find(requests, window(10.0, 20.0), lenient).empty


def test_an_endpoint_slower_than_its_limit_is_slow_and_a_fast_one_is_not() -> None:
    health = [req(t, "/api/health", 200, ms=3000.0) for t in (1.0, 5.0, 9.0)]
    vods = [req(t, "/api/vods", 200, ms=4000.0) for t in (1.0, 2.0, 3.0)]  # no limit set
    table = find(frame(*health, *vods), empty_faults(), RULES, t0=T0)
    assert list(table["kind"]) == [SLOW]
    row = table.iloc[0]
    assert (row.endpoint, row.status, row["count"], row.requests) == ("GET /api/health", 200, 3, 3)
    assert row.detail == "p50 3000 ms > 1000 ms" and row.first_s == pytest.approx(1.0)
    fast = [req(t, "/api/health", 200, ms=900.0) for t in (1.0, 5.0, 9.0)]
    assert find(frame(*fast), empty_faults(), RULES).empty


def test_slow_needs_enough_requests_and_ignores_those_during_a_fault() -> None:
    few = [req(t, "/api/health", 200, ms=3000.0) for t in (1.0, 2.0)]
    assert find(frame(*few), empty_faults(), RULES).empty
    during = [req(t, "/api/health", 200, ms=3000.0) for t in (11.0, 12.0, 13.0)]
    calm = [req(t, "/api/health", 200, ms=20.0) for t in (1.0, 2.0, 3.0)]
    assert find(frame(*during, *calm), window(10.0, 20.0), RULES).empty


def test_workflow_entries_are_not_judged() -> None:
    requests = frame(*(req(t, "upload->published", 200, "WORKFLOW", ms=9000.0) for t in range(5)))
    assert find(requests, empty_faults(), Rules(slow_ms=1000.0, min_requests=1)).empty


def test_a_run_captured_without_status_columns_gets_them_from_the_error_text() -> None:
    requests = frame(req(1.0, PUBLISH, 500, "POST"), req(2.0, "/api/vods", 200)).drop(
        columns=["status", "content_type", "body"]
    )
    requests.loc[0, "error"] = f"CatchResponseError: status 500, expected 202 {HTML_500}"
    table = find(requests, empty_faults(), RULES)
    assert (table.iloc[0].status, table.iloc[0]["shape"]) == (500, "html")


@pytest.mark.parametrize(
    ("status", "ctype", "body", "shape"),
    [
        (503, "application/json", JSON_503, "json error"),
        (500, "application/json", '{"error": "boom", "message": "x"}', "json error"),
        (500, "application/json", '{"error": "' + "x" * 300, "json error"),  # cut short
        (500, "application/json", '{"detail": "x"}', "json"),
        (500, "text/html", HTML_500, "html"),
        (500, None, "<html>oops</html>", "html"),
        (500, "text/plain", "Internal Server Error", "text"),
        (500, "text/plain", "", "empty"),
        (0, None, None, "no answer"),
        (500, None, None, "unknown"),
    ],
)
def test_error_shape(status: int, ctype: str | None, body: str | None, shape: str) -> None:
    assert error_shape(status, ctype, body) == shape


# --- app logs ---------------------------------------------------------------------------


def local(t: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """`t` (seconds after T0) as an app logs it: local time, like Python's logging."""
    stamp = dt.datetime.fromtimestamp(T0 + t)
    return stamp.strftime(fmt) + (f",{stamp.microsecond // 1000:03d}" if "%S" in fmt[-2:] else "")


CLF_2 = dt.datetime.fromtimestamp(T0 + 2).strftime("%d/%b/%Y %H:%M:%S")  # werkzeug's access log
FLASK_LOG = f"""\
[{local(1.25)}] INFO in app: started
[{local(2.1)}] ERROR in app: Exception on /api/vod/publish/17 [POST]
Traceback (most recent call last):
  File "app.py", line 10, in publish
    return do()
AttributeError: 'NoneType' object has no attribute 'id'
127.0.0.1 - - [{CLF_2}] "POST /api/vod/publish/17 HTTP/1.1" 500 -
{local(3.0)} archivist.api GET /api/vods: redis unavailable: timeout
"""


def test_log_times_in_the_common_formats() -> None:
    assert line_time(f"{local(2.1)} x") == pytest.approx(T0 + 2.1)
    assert line_time(f"[{local(2.1)}] ERROR in app") == pytest.approx(T0 + 2.1)
    assert line_time(f'1.2.3.4 - - [{CLF_2}] "GET /" 200') == pytest.approx(T0 + 2)
    # T0 is 2027-01-15 08:00:00 UTC; explicit zones do not depend on the local one.
    assert line_time("2027-01-15T08:00:02Z msg") == pytest.approx(T0 + 2)
    assert line_time("2027-01-15T09:00:02.5+01:00 msg") == pytest.approx(T0 + 2.5)
    assert line_time("[2027-01-15 08:00:02 +0000] [1] [ERROR] x") == pytest.approx(T0 + 2)
    assert line_time('[15/Jan/2027:08:00:02 +0000] "GET /" 500') == pytest.approx(T0 + 2)
    # loguru's format, coloured on a console (the Flask Archivist logs this way)
    loguru = f"\x1b[32m{local(2.1)[:19]}\x1b[0m | \x1b[31mERROR   \x1b[0m | core.app:f:1 - boom"
    assert line_time(loguru) == pytest.approx(T0 + 2)
    assert parse_log(loguru)[0].is_error
    assert line_time('  File "app.py", line 10') is None


def test_a_traceback_is_one_record_with_its_exception_as_last_line() -> None:
    records = parse_log(FLASK_LOG, "api.log")
    assert len(records) == 4
    tb = records[1]
    assert tb.first == f"[{local(2.1)}] ERROR in app: Exception on /api/vod/publish/17 [POST]"
    assert tb.last == "AttributeError: 'NoneType' object has no attribute 'id'"
    assert tb.is_error and not records[0].is_error


def test_the_explaining_record_names_the_endpoint_near_the_failure() -> None:
    records = parse_log(FLASK_LOG, "api.log")
    t = T0 + 2.0
    found = explaining_record(records, PUBLISH, 500, t, t + 0.2)
    assert found is records[1]
    # /api/vods is named only by the redis line; a minute later nothing explains anything.
    assert explaining_record(records, "/api/vods", 503, t, t + 0.2) is records[3]
    assert explaining_record(records, PUBLISH, 500, t + 60, t + 61) is None
    assert path_pattern(PUBLISH).search("POST /api/vod/publish/17 HTTP")
    assert not path_pattern("/api/vods").search("GET /api/vods/12")
    assert path_pattern("/api/vods/[id] (poll)").search("GET /api/vods/6: redis unavailable")


VOD = "core.api.routes.vod"
DIGITALFILES = "core.api.routes.digitalfiles"


def test_an_error_its_handler_logged_beats_a_nearer_error_of_another_route() -> None:
    """The Flask app logs its handler (publish_to_vod), not the path, for a publish 500."""
    near = local(2.0)
    log = (
        f"{near} | ERROR    | {DIGITALFILES}:get_digital_file:185 - Error "
        "retrieving digital file 0ce9: Object of type MetaData is not JSON serializable\n"
        f"{local(2.3)} | ERROR    | {VOD}:publish_to_vod:98 - Error publishing"
        " to VOD: 404 Not Found\n"
        f"{local(2.4)} | ERROR    | {VOD}:get_vod_sync_status:182 - 'VODService' object"
        " has no attribute 'get_publishing_status'\n"
    )
    records = parse_log(log, "api.log")
    t = T0 + 2.0
    publish = (f"{VOD}:publish_to_vod",)
    sync = (f"{VOD}:get_vod_sync_status",)
    assert explaining_record(records, PUBLISH, 500, t, t + 0.1, "POST", publish) is records[1]
    assert (
        explaining_record(records, "/api/vod/sync-status", 500, t, t + 0.1, "GET", sync)
        is (records[2])
    )
    # A route whose handler logged nothing in its window gets no line, not the nearest
    # error of another route; nor does a route whose handler the profile does not name.
    browse = ("core.api.routes.browse:browse",)
    assert explaining_record(records, "/api/browse", 500, t, t + 0.1, "GET", browse) is None
    assert explaining_record(records, PUBLISH, 500, t, t + 0.1, "POST") is None


def test_a_neighbours_line_is_never_quoted_even_when_it_is_the_only_error() -> None:
    """The defect of today's demo: publish's 500 quoted sync-status's line (its handler's
    name holds neither ``publish`` nor the path), ``GET /api/[id]`` quoted health's."""
    log = (
        f"{local(2.0)} | ERROR    | {VOD}:get_vod_sync_status:182 - Error getting VOD sync"
        " status: 'VODService' object has no attribute 'get_publishing_status'\n"
        f"[{local(2.1)}] ERROR in app: Exception on /api/health [GET]\n"
        "Traceback (most recent call last):\n"
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379.\n"
    )
    records = parse_log(log, "api.log")
    t = T0 + 2.0
    publish = (f"{VOD}:publish_to_vod",)
    assert explaining_record(records, PUBLISH, 500, t, t + 0.1, "POST", publish) is None
    # /api/health fits the pattern of /api/[id], but it is the health route's path.
    get_file = (f"{DIGITALFILES}:get_digital_file",)
    others = [LoggedRoute("GET", "/api/health"), LoggedRoute("GET", "/api/[id]", get_file)]
    assert explaining_record(records, "/api/[id]", 500, t, t + 0.1, "GET", get_file, others) is None
    assert (
        explaining_record(records, "/api/health", 500, t, t + 0.1, "GET", (), others)
        is (records[1])
    )
    # ... and a path no more specific route claims is the id route's.
    mine = parse_log(f"[{local(2.1)}] ERROR in app: Exception on /api/0ce9a1 [GET]", "api.log")
    assert (
        explaining_record(mine, "/api/[id]", 500, t, t + 0.1, "GET", get_file, others) is (mine[0])
    )


def test_a_line_in_the_window_of_a_later_failure_of_the_same_row_is_found() -> None:
    """A finding's window is every failing request of its row, not only the first one."""
    log = f"{local(30.0)} | ERROR    | {VOD}:publish_to_vod:98 - Error publishing to VOD\n"
    records = parse_log(log, "api.log")
    route = LoggedRoute("POST", PUBLISH, (f"{VOD}:publish_to_vod",))
    starts = np.array([T0 + 2.0, T0 + 29.8])
    assert route_record(records, route, [route], 500, starts, starts + 0.1) is records[0]
    assert route_record(records, route, [route], 500, starts[:1], starts[:1] + 0.1) is None


def test_of_a_routes_own_lines_the_one_at_its_first_failure_is_quoted() -> None:
    """sync-status answers a JSON 500 its handler logs all the time; under Redis down also
    HTML 500s, which Flask logs as "Exception on <path>". The HTML row quotes the latter."""
    sync = LoggedRoute("GET", "/api/vod/sync-status", (f"{VOD}:get_vod_sync_status",))
    log = (
        f"[{local(2.05)}] ERROR in app: Exception on /api/vod/sync-status [GET]\n"
        "Traceback (most recent call last):\n"
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379.\n"
        f"{local(9.0)} | ERROR    | {VOD}:get_vod_sync_status:182 - Error getting VOD sync"
        " status: 'VODService' object has no attribute 'get_publishing_status'\n"
    )
    records = parse_log(log, "api.log")
    starts = np.array([T0 + 2.0, T0 + 8.9])  # the HTML 500s: the first, and one beside the log
    assert route_record(records, sync, [sync], 500, starts, starts + 0.1) is records[0]


def test_the_signature_of_a_line_drops_times_ids_numbers_and_paths() -> None:
    a = signature(
        f"[{local(2.1)}] ERROR in app: Exception on /api/browse [GET]",
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Refused.",
    )
    b = signature(
        f"[{local(9.7)}] ERROR in app: Exception on /api/vod/publish/17 [POST]",
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Refused.",
    )
    assert a == b == "redis.exceptions.ConnectionError: Error # connecting to localhost:#. Refused."
    one = signature(f"{local(2.0)} | ERROR    | {DIGITALFILES}:get_digital_file:185 - file 0ce9ab1")
    two = signature(f"{local(5.0)} | ERROR    | {DIGITALFILES}:get_digital_file:190 - file 77ff001")
    assert one == two == f"{DIGITALFILES}:get_digital_file - file <id>"
    assert signature("GET /api/vods/6: redis unavailable") == signature(
        "POST /api/upload: redis unavailable"
    )
    assert signature("x: connection refused") != signature("x: no attribute 'get_status'")


def test_a_finding_carries_the_first_log_line_and_the_exception() -> None:
    requests = frame(req(2.0, PUBLISH, 500, "POST", body=HTML_500, ctype="text/html"))
    table = find(requests, empty_faults(), RULES, parse_log(FLASK_LOG, "api.log"))
    row = table.iloc[0]
    assert row.log_source == "api.log"
    assert "Exception on /api/vod/publish/17" in row.log_line
    assert row.log_last.startswith("AttributeError")
    assert f"log api.log: [{local(2.1)}] ERROR" in to_text(table)


# --- rules --------------------------------------------------------------------------------


def test_the_profiles_rules_name_routes_by_key() -> None:
    rules = load_rules("archivist-flask")
    assert rules.slow_limit("GET", "/api/health") == 1000.0
    assert rules.outage_status == (503,) and rules.error_shape == "json"


def test_a_limit_for_an_unknown_route_is_a_clear_error(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[auth]\nmode = "none"\n[routes]\nhealth = "GET /api/health"\n'
        "[findings.route_slow_ms]\nhelth = 1000\n"
    )
    with pytest.raises(InputError, match="'helth' is not a route; known: health"):
        load_rules(str(profile))
    profile.write_text(
        '[auth]\nmode = "none"\n[routes]\nhealth = "GET /api/health"\n[findings]\nslow = 1\n'
    )
    with pytest.raises(InputError, match="unknown keys slow"):
        load_rules(str(profile))


def test_handlers_name_routes_by_key_and_a_bad_one_is_a_clear_error(tmp_path: Path) -> None:
    rules = load_rules("archivist-flask")
    assert rules.handlers[("POST", PUBLISH)] == ("core.api.routes.vod:publish_to_vod",)
    head = '[auth]\nmode = "none"\n[routes]\nhealth = "GET /api/health"\n[findings.handlers]\n'
    profile = tmp_path / "p.toml"
    profile.write_text(head + 'helth = "m:api_health"\n')
    with pytest.raises(InputError, match="handlers: 'helth' not a route; known: health"):
        load_rules(str(profile))
    profile.write_text(head + "health = 3\n")
    with pytest.raises(InputError, match='handlers: 3: expected "module:function"'):
        load_rules(str(profile))
    profile.write_text(head + 'health = "core.metrics:api health"\n')
    with pytest.raises(InputError, match=r"'core\.metrics:api health': expected"):
        load_rules(str(profile))
    profile.write_text(head + 'health = ["core.metrics:api_health", "api_health_quick"]\n')
    assert load_rules(str(profile)).handlers[("GET", "/api/health")] == (
        "core.metrics:api_health",
        "api_health_quick",
    )


# --- command line -------------------------------------------------------------------------


def run_folder(tmp_path: Path) -> Path:
    rows = [req(float(t), "/api/vods", 200) for t in range(20)]
    rows += [req(float(t), PUBLISH, 500, "POST", body=HTML_500, ctype="text/html") for t in (3, 4)]
    log = tmp_path / "api.log"
    log.write_text(FLASK_LOG)
    meta = {"start": T0, "options": {"routes": "archivist-flask"}}
    return write_run(tmp_path / "run", pd.DataFrame(rows), meta=meta)


def test_cli_reports_findings_and_fails_only_when_asked(tmp_path: Path, capsys) -> None:
    run = run_folder(tmp_path)
    assert main(["findings", str(run)]) == 0
    out = capsys.readouterr().out
    assert "profile archivist-flask" in out
    assert f"server error POST {PUBLISH}" in " ".join(out.split())
    assert "2 of 2 (100%)" in out
    assert main(["findings", str(run), "--fail-on-findings"]) == 1
    capsys.readouterr()
    assert main(["findings", str(run), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["status"], r["count"], r["shape"]) for r in rows] == [
        (SERVER_ERROR, 500, 2, "html")
    ]


def test_cli_without_findings_exits_0_even_when_failing_on_them(tmp_path: Path, capsys) -> None:
    rows = [req(float(t), "/api/vods", 200) for t in range(20)]
    run = write_run(tmp_path / "run", pd.DataFrame(rows), meta={"start": T0})
    assert main(["findings", str(run), "--fail-on-findings"]) == 0
    assert "findings: none" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    run = run_folder(tmp_path)
    assert main(["findings", str(tmp_path / "nope")]) == 2
    assert main(["findings", str(run), "--app-log", str(tmp_path / "missing.log")]) == 2
    assert main(["findings", str(run), "--routes", "no-such-profile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "missing.log: no such file" in err[1] and "no such profile" in err[2]


def test_the_html_report_has_a_findings_section(tmp_path: Path) -> None:
    run = run_folder(tmp_path)
    out = tmp_path / "r.html"
    assert (
        main(["report", str(run), "--out", str(out), "--app-log", str(tmp_path / "api.log")]) == 0
    )
    html = out.read_text()
    section = html[html.index("<h2>Findings</h2>") :]
    assert f"<code>POST {PUBLISH}</code>" in section
    assert "Exception on /api/vod/publish/17 [POST]" in section


def test_a_report_whose_findings_cannot_be_computed_still_is_written(tmp_path: Path) -> None:
    rows = [req(float(t), "/api/vods", 200) for t in range(5)]
    meta = {"start": T0, "options": {"routes": "gone-profile"}}
    run = write_run(tmp_path / "run", pd.DataFrame(rows), meta=meta)
    out = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    html = out.read_text()
    assert "<p>Not computed: --routes &#x27;gone-profile&#x27;: no such profile" in html


def test_a_steady_defect_answered_again_during_a_fault_is_not_ungraceful() -> None:
    """publish answers a JSON 500 whatever happens (a server error, reported once); under
    a fault the same JSON 500 is that defect again, but its HTML 500 is the fault's doing."""
    json_500 = '{"error": "publish failed"}'
    requests = frame(
        req(1.0, PUBLISH, 500, "POST", body=json_500, ctype="application/json"),
        req(2.0, PUBLISH, 500, "POST", body=json_500, ctype="application/json"),
        req(11.0, PUBLISH, 500, "POST", body=json_500, ctype="application/json"),
        req(12.0, PUBLISH, 500, "POST", body=HTML_500, ctype="text/html"),
        req(13.0, "/api/me", 500, body=json_500, ctype="application/json"),
    )
    table = find(requests, window(10.0, 20.0), RULES)
    rows = {(r.kind, r.endpoint, r["shape"], r["count"]) for _, r in table.iterrows()}
    assert rows == {
        (SERVER_ERROR, f"POST {PUBLISH}", "json error", 2),
        (UNGRACEFUL, f"POST {PUBLISH}", "html", 1),
        (UNGRACEFUL, "GET /api/me", "json error", 1),  # never failed outside the fault
    }
