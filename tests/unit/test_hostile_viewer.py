"""`crucible view` against a careless or hostile client (issue 25, item 3): the real server on 127.0.0.1
port 0 over a real small store (two commits through the store's commit writer), raw sockets for what a
browser would never send. Each defense has a test where it must refuse and a test with it switched off
showing what gets through without it."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from pipelines.view import guard, openapi, params, queries
from pipelines.view import server as S
from pipelines.view.server import ViewServer
from tests.support import view_fuzz as F

REPO = Path(__file__).resolve().parents[2]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "store"
    F.build_store(str(out))
    return out


@pytest.fixture(scope="module")
def before(store):
    return _digest(store)


@pytest.fixture(scope="module")
def srv(store, before):
    with ViewServer(str(store), port=0) as s:
        yield s


def port(s: ViewServer) -> int:
    return s.httpd.server_address[1]


def get(s: ViewServer, target: str, **kw) -> F.Raw:
    return F.get(port(s), target, **kw)


def text(r: F.Raw) -> str:
    return r.body.decode("utf-8")


def ids(r: F.Raw, table: str) -> list[str]:
    return re.findall(rf'<td><a href="/{table}/([^"]+)"', text(r))


def err(r: F.Raw) -> str:
    m = re.search(r"<p class='err'>(.*?)</p>", text(r), re.S)
    return html.unescape(m.group(1)) if m else ""


# ------------------------------------------------------------------ ?reason= (DuckDB 2.0 refused the lambda)

def test_reason_filter_answers_on_this_duckdb(srv):
    r = get(srv, "/browse_trajectories?reason=rl")
    assert r.status == 200, err(r)
    assert ids(r, "browse_trajectories") == ["t0000", "t0003", "t0006", "t0009"]
    assert ids(get(srv, "/browse_trajectories?reason=sft%3A%20leak"), "browse_trajectories") == [
        "t0001", "t0004", "t0007", "t0010"]
    assert ids(get(srv, "/browse_trajectories?reason=%25"), "browse_trajectories") == []  # a prefix, not a pattern


def test_reason_filter_switched_off_to_the_old_lambda_fails_every_request(srv, monkeypatch):
    old = queries.where_clause

    def lambda_sql(table, args):
        sql, binds = old(table, args)
        return sql.replace("EXISTS (SELECT 1 FROM (SELECT unnest(drop_reasons) AS r) WHERE starts_with(r, ?))",
                           "len(list_filter(drop_reasons, r -> starts_with(r, ?))) > 0"), binds

    monkeypatch.setattr(queries, "where_clause", lambda_sql)
    r = get(srv, "/browse_trajectories?reason=rl")
    assert r.status == 500 and "lambda" in err(r).lower()


def test_reason_is_not_a_parameter_of_a_table_without_drop_reasons(srv):
    r = get(srv, "/questions?reason=x")
    assert r.status == 400 and "unknown parameter 'reason'" in err(r)


# ------------------------------------------------------------------ declared types and ranges

@pytest.mark.parametrize("offset", ["99999999999999999999", str(2**63), "-1", "1e3", "abc", "1.5", " 1", "١",
                                    "10000001"])
def test_offset_outside_its_range_is_a_400_naming_it(srv, offset):
    r = F.get(port(srv), "/questions?offset=" + quote(offset))
    assert r.status == 400
    assert "offset must be an integer from 0 to 10000000" in err(r)


def test_offset_at_the_cap_is_an_empty_page(srv):
    r = get(srv, "/questions?offset=10000000")
    assert r.status == 200 and ids(r, "questions") == [] and "rows 0–10000000 of 12" in text(r)


def test_offset_check_switched_off_lets_duckdb_see_the_raw_number(srv, monkeypatch):
    monkeypatch.setattr(params.Param, "parse", lambda self, raw: raw)
    r = get(srv, "/questions?offset=99999999999999999999")
    assert r.status == 400 and "Conversion Error" in err(r)  # DuckDB's own words: the value reached the SQL


def test_unknown_parameter_is_a_400_listing_the_known_ones(srv):
    r = get(srv, "/browse_trajectories?verdcit=correct")
    assert r.status == 400
    assert "unknown parameter 'verdcit'" in err(r) and "verdict" in err(r)


def test_unknown_parameter_switched_off_shows_every_row_for_a_typo(srv, monkeypatch):
    old = params.validate
    monkeypatch.setattr(params, "validate", lambda ps, q, where: old(
        ps, {k: v for k, v in q.items() if k in {p.name for p in ps}}, where))
    r = get(srv, "/browse_trajectories?verdcit=correct")
    assert r.status == 200 and len(ids(r, "browse_trajectories")) == 12


def test_a_parameter_given_twice_is_a_400(srv):
    r = get(srv, "/questions?split=rl&split=sft")
    assert r.status == 400 and "given twice" in err(r)


@pytest.mark.parametrize("target, msg", [
    ("/questions?hops=abc", "hops must be an integer"),
    ("/questions?hops=%D9%A3", "hops must be an integer"),  # an Arabic-Indic digit, which int() takes
    ("/swe_trajectories?resolved=yes", "resolved must be one of true, false"),
    ("/questions?sort=lineage", "sort must be one of"),  # a list of structs: not sortable
    ("/browse_trajectories?sort=traj_id%3Bdrop", "sort must be one of"),
    ("/questions?desc=2", "desc must be one of 0, 1"),
])
def test_typed_filters_refuse_values_of_the_wrong_type(srv, target, msg):
    r = get(srv, target)
    assert r.status == 400 and msg in err(r)


def test_typed_filters_take_values_of_their_type(srv):
    assert ids(get(srv, "/questions?hops=3"), "questions") == ["q0001", "q0004", "q0007", "q0010"]
    r = get(srv, "/swe_trajectories?resolved=true")
    assert r.status == 200 and len(ids(r, "swe_trajectories")) == 12
    assert get(srv, "/questions?hops=&split=").status == 200  # the form's "any": empty means absent


@pytest.mark.parametrize("target, msg", [
    ("/search?q=" + "x" * 201, "q is 201 characters; at most 200"),
    ("/questions?split=" + "x" * 501, "split is 501 characters; at most 500"),
    ("/browse_trajectories?reason=" + "r" * 201, "reason is 201 characters; at most 200"),
    ("/questions/" + "k" * 501, "a row key is at most 500 characters"),
    ("/questions?" + "&".join(f"p{i}=1" for i in range(40)), "more than 32 query parameters"),
])
def test_text_sizes_and_counts_are_capped(srv, target, msg):
    r = get(srv, target)
    assert r.status == 400 and msg in err(r)


@pytest.mark.parametrize("target", ["/search?q=%ff%fe", "/questions/%c3%28", "/questions?split=%80"])
def test_percent_escapes_that_are_not_utf8_are_a_400(srv, target):
    r = get(srv, target)
    assert r.status == 400 and "not UTF-8" in err(r)


def test_raw_bytes_outside_ascii_in_the_target_are_a_400(srv):
    r = F.raw_request(port(srv), b"GET /search?q=\xc3\xa9 HTTP/1.0\r\n\r\n")
    assert r.status == 400 and "printable ASCII" in err(r)


def test_odd_keys_are_a_404_not_an_error(srv):
    for key in ["%2F..%2F..%2Fetc%2Fpasswd", "%00", "q0001%27%20OR%20%271%27%3D%271", "%E2%80%A8"]:
        r = get(srv, "/questions/" + key)
        assert r.status == 404 and r.body, key
    assert get(srv, "/questions/q0001/compare/more").status == 404
    assert get(srv, "/no_such_table").status == 404


# ------------------------------------------------------------------ LIKE wildcards

@pytest.mark.parametrize("q, want", [("%25", ["q0003"]), ("_", ["q0004"]), ("e_c", ["q0004"]), ("%5C", ["q0005"]),
                                     ("50%25%20OF", ["q0003"]), ("currency%2011", ["q0011"])])
def test_search_matches_wildcards_literally(srv, q, want):
    r = get(srv, "/search?q=" + q)
    assert r.status == 200
    assert re.findall(r'<li><a href="/questions/(q\d+)"', text(r)) == want


def test_search_with_escaping_switched_off_matches_every_row(srv, monkeypatch):
    monkeypatch.setattr(queries, "like_pattern", lambda t: f"%{t}%")
    r = get(srv, "/search?q=_")
    assert "questions (12)" in text(r)


def test_search_text_is_escaped_in_the_page(srv):
    r = get(srv, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert r.status == 200 and "<script>alert" not in text(r) and "&lt;script&gt;alert(1)" in text(r)


# ------------------------------------------------------------------ store errors become pages

@pytest.fixture(scope="module")
def damaged(store, tmp_path_factory):
    out = F.copy_store(str(store), str(tmp_path_factory.mktemp("damaged") / "store"))
    F.damage_data_page(F.shard(out, "browse_trajectories"))
    with ViewServer(out, port=0) as s:
        yield s


def _in_damaged_shard(s) -> str:
    import pyarrow.parquet as pq

    return pq.read_table(F.shard(s.store.out_dir, "browse_trajectories"), columns=["traj_id"]).column(0)[0].as_py()


def test_a_bad_data_page_is_a_500_naming_the_shard_then_a_banner_everywhere(damaged):
    bad = _in_damaged_shard(damaged)
    r = get(damaged, f"/browse_trajectories/{bad}")
    assert r.status == 500
    assert "crucible store check" in err(r) and "--quarantine" in err(r)
    name = Path(F.shard(damaged.store.out_dir, "browse_trajectories")).name
    for target in ("/", "/questions", "/search?q=x", "/nope"):
        page = text(get(damaged, target))
        assert "role='alert'" in page and name in page, target


def test_store_errors_switched_off_drop_the_connection_without_an_answer(damaged, monkeypatch):
    monkeypatch.setattr(S, "CAUGHT", ())
    r = get(damaged, f"/browse_trajectories/{_in_damaged_shard(damaged)}")
    assert r.status is None and r.body == b""


def test_a_page_that_fails_to_render_is_a_500_with_a_body(srv, monkeypatch):
    def broken(cur):
        raise KeyError("verdict")

    monkeypatch.setattr(S.P, "index_page", broken)
    r = get(srv, "/")
    assert r.status == 500 and "KeyError" in err(r) and "Traceback" not in text(r)


@pytest.fixture(scope="module")
def truncated(store, tmp_path_factory):
    out = F.copy_store(str(store), str(tmp_path_factory.mktemp("truncated") / "store"))
    path = F.shard(out, "questions")
    os.truncate(path, os.path.getsize(path) - 20)
    with ViewServer(out, port=0) as s:
        yield s, Path(path).name


def test_a_shard_left_out_is_named_in_a_banner_on_every_page(truncated):
    s, name = truncated
    r = get(s, "/questions")
    assert r.status == 200 and len(ids(r, "questions")) == 6
    assert "role='alert'" in text(r) and name in text(r) and "crucible store check" in text(r)
    assert name in text(get(s, "/swe_instances"))


def test_banner_switched_off_shows_fewer_rows_without_a_word(truncated, monkeypatch):
    s, name = truncated
    monkeypatch.setattr(S.Store, "warnings", lambda self: [])
    r = get(s, "/questions")
    assert len(ids(r, "questions")) == 6 and name not in text(r) and "role='alert'" not in text(r)


# ------------------------------------------------------------------ the Host header (DNS rebinding)

@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "localhost:1", "[::2]:{port}", "localhost:{port}x", "0.0.0.0:{port}"])
def test_a_host_that_is_not_this_server_is_a_421_without_store_data(srv, host):
    r = get(srv, "/", host=host.format(port=port(srv)))
    assert r.status == 421 and "answers only to Host" in err(r)
    assert "questions</a>: 12" not in text(r)


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "127.0.0.1", "LOCALHOST"])
def test_loopback_hosts_are_served(srv, host):
    r = get(srv, "/", host=host.format(port=port(srv)))
    assert r.status == 200 and "questions</a>: 12" in text(r)


def test_host_check_switched_off_serves_the_store_to_a_rebinding_page(srv, monkeypatch):
    monkeypatch.setattr(srv.httpd, "check_host", lambda *a: None)
    r = get(srv, "/", host="evil.example")
    assert r.status == 200 and "questions</a>: 12" in text(r)


def test_host_missing_or_twice(srv):
    assert F.raw_request(port(srv), b"GET / HTTP/1.1\r\n\r\n").status == 400  # 1.1 needs one
    assert F.raw_request(port(srv), b"GET / HTTP/1.0\r\n\r\n").status == 200  # 1.0 may leave it out
    two = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
    r = F.raw_request(port(srv), two)
    assert r.status == 400 and "more than one Host" in err(r)


# ------------------------------------------------------------------ malformed requests, methods, bodies

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /\r\n\r\n",  # an HTTP/0.9 request line: the stdlib would answer without a status line
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.x\r\n\r\n",
    b"GET / HTTP/1.0 extra\r\n\r\n",
    b"   \r\n\r\n",
    b"\x00\x01\x02\xff\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"GET / HTTP/1.0\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
    b"GET x HTTP/1.0\r\n\r\n",
    b"GET /?" + b"&" * 100 + b" HTTP/1.0\r\n\r\n",
    b"BREW /pot HTTP/1.0\r\n\r\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=lambda d: repr(d[:24]))
def test_malformed_requests_get_a_status_and_a_body(srv, data):
    r = F.raw_request(port(srv), data)
    assert r.status is not None and 400 <= r.status < 600, r.head[:80]
    assert r.body and r.headers["content-length"] == str(len(r.body))


def test_stdlib_error_answers_switched_off_lose_the_status_line(srv, monkeypatch):
    monkeypatch.setattr(guard.Handler, "send_error", BaseHTTPRequestHandler.send_error)
    r = F.raw_request(port(srv), b"GARBAGE\r\n\r\n")
    assert r.status is None and b"Bad request syntax" in r.body  # a body with no status line or headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_methods_other_than_get_and_head_are_a_405_with_allow(srv, method):
    r = get(srv, "/questions", method=method)
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD" and r.body


def test_head_has_the_headers_of_get_and_no_body(srv):
    r = get(srv, "/questions", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert int(r.headers["content-length"]) == len(get(srv, "/questions").body)


@pytest.mark.parametrize("extra, status", [
    ("Content-Length: 5\r\n", 413), ("Content-Length: abc\r\n", 400), ("Content-Length: -1\r\n", 400),
    ("Content-Length: 1000000\r\n", 413), ("Content-Length: 1\r\nContent-Length: 2\r\n", 400),
    ("Transfer-Encoding: chunked\r\n", 413)])
def test_a_request_body_is_refused_at_once_without_waiting_for_it(srv, extra, status):
    with socket.create_connection(("127.0.0.1", port(srv)), timeout=10) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: localhost\r\n{extra}\r\nhel".encode())  # less than announced; open
        r = F.read_answer(s)
    assert r.status == status and r.body


def test_every_answer_carries_the_security_headers(srv):
    for target in ("/", "/nope", "/questions?offset=x"):
        r = get(srv, target)
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["connection"] == "close"


def test_the_inline_script_is_allowed_by_its_hash(srv):
    import base64

    body = text(get(srv, "/"))
    script = re.search(r"<script>(.*?)</script>", body, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in get(srv, "/").headers["content-security-policy"]


# ------------------------------------------------------------------ slow clients, bounded connections

def _trickle(p: int, data: bytes, pause: float, stop: threading.Event) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", p), timeout=15)

    def send():
        for b in data:
            if stop.is_set():
                return
            try:
                s.send(bytes([b]))
            except OSError:
                return
            time.sleep(pause)

    threading.Thread(target=send, daemon=True).start()
    return s


def test_a_client_trickling_its_headers_is_cut_off_with_a_408(store):
    stop = threading.Event()
    with ViewServer(str(store), port=0, request_timeout=1.0) as s:
        sock = _trickle(port(s), b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"z" * 200, 0.05, stop)
        try:
            r = F.read_answer(sock)
        finally:
            stop.set()
            sock.close()
    assert r.status == 408 and "did not arrive in time" in err(r)


def test_timeout_switched_off_keeps_a_trickling_client_forever(store):
    stop = threading.Event()
    with ViewServer(str(store), port=0, request_timeout=None) as s:
        sock = _trickle(port(s), b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"z" * 200, 0.05, stop)
        sock.settimeout(3)
        try:
            with pytest.raises(TimeoutError):
                sock.recv(100)  # after 3 s (three times the other test's limit): still no answer
        finally:
            stop.set()
            sock.close()


def _served_after(s, tries: int = 50) -> int | None:
    for _ in range(tries):  # the slots come back as the idle handlers see their clients close
        r = get(s, "/")
        if r.status != 503:
            return r.status
        time.sleep(0.1)
    return 503


def test_connections_past_the_cap_get_a_503_and_slots_come_back(store):
    with ViewServer(str(store), port=0, max_connections=2) as s:
        idle = [socket.create_connection(("127.0.0.1", port(s))) for _ in range(2)]
        time.sleep(0.2)  # let the server accept both
        r = get(s, "/")
        assert r.status == 503 and r.headers["retry-after"] == "1" and r.body
        for c in idle:
            c.close()
        assert _served_after(s) == 200


def test_connection_cap_switched_off_gives_every_client_a_thread(store):
    with ViewServer(str(store), port=0, max_connections=None) as s:
        idle = [socket.create_connection(("127.0.0.1", port(s))) for _ in range(2)]
        try:
            assert get(s, "/").status == 200
            assert s.httpd.slots is None
        finally:
            for c in idle:
                c.close()


def test_threads_do_not_pile_up_after_many_requests(srv):
    base = threading.active_count()
    for i in range(60):
        get(srv, f"/questions?offset={i}")
    for _ in range(50):
        if threading.active_count() <= base + 1:
            break
        time.sleep(0.1)
    assert threading.active_count() <= base + 1


# ------------------------------------------------------------------ --port

@pytest.mark.parametrize("value", ["70000", "-1", "65536", "abc", "1e3"])
def test_port_outside_0_65535_is_a_usage_error(value, capsys):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["view", "--out", "nowhere", "--port", value])
    assert exc.value.code == 2
    errtext = capsys.readouterr().err
    assert "usage: crucible view" in errtext and ("0..65535" in errtext or "0 to 65535" in errtext)
    assert "Traceback" not in errtext


def test_port_check_switched_off_is_a_traceback(store, monkeypatch):
    from pipelines.cli import main
    from pipelines.commands import view_cmd

    monkeypatch.setattr(view_cmd, "port_number", int)
    with pytest.raises(OverflowError):
        main(["view", "--out", str(store), "--port", "70000"])


# ------------------------------------------------------------------ the OpenAPI description

def test_openapi_is_served_and_the_docs_copy_is_current(srv):
    r = get(srv, "/openapi.json")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    doc = json.loads(r.body)
    assert doc == openapi.document()
    assert json.loads((REPO / "docs" / "view.openapi.json").read_text()) == doc, \
        "run: python -m pipelines.view.openapi > docs/view.openapi.json"
    assert doc["openapi"].startswith("3.")


def test_every_documented_route_answers_200_with_a_known_key(srv):
    doc = openapi.document()
    keys = {"questions": "q0001", "browse_trajectories": "t0001", "swe_instances": "demo__repo-1",
            "swe_validations": "demo__repo-1", "swe_trajectories": "st0001", "sandbox_surveys": "sv1",
            "swe_grades": "g0001", "failures": "f0001"}
    for path in doc["paths"]:
        table = path.split("/")[1]
        r = get(srv, path.replace("{key}", keys.get(table, "")))
        assert r.status == 200, (path, err(r))


@pytest.fixture(scope="module")
def known_keys():
    return {"questions": ["q0001", "q0003"], "browse_trajectories": ["t0002"], "swe_instances": ["demo__repo-1"],
            "failures": ["f0001"]}


@seed(25)
@settings(max_examples=150, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_requests_from_the_openapi_document_get_what_it_says(srv, known_keys, data):
    doc = openapi.document()
    c = data.draw(F.case(doc, known_keys))
    r = get(srv, c.target)
    assert F.problems(doc, c, r) == []


@seed(25)
@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(line=st.binary(min_size=1, max_size=300).filter(lambda b: not b[:1].isspace()),
       headers=st.lists(st.binary(max_size=60), max_size=5))
def test_fuzz_raw_bytes_always_get_a_status_line(srv, line, headers):
    data = line + b"\r\n" + b"".join(h.replace(b"\n", b"") + b"\r\n" for h in headers) + b"\r\n"
    r = F.raw_request(port(srv), data)
    assert r.status is not None and r.body, (data[:80], r.head[:80])


# ------------------------------------------------------------------ nothing written

def test_the_store_is_byte_identical_after_all_of_the_above(store, before, srv):
    get(srv, "/")
    assert _digest(store) == before
