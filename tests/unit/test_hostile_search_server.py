"""The search server against hostile and careless clients (issue 25, item 3): every request gets a status
and a JSON body, checked against ``openapi.json``; parameters outside their declared range are 400s naming
the field, the range and the value; sizes, connections, time and the request log are capped. Each defense
has a test with it switched off, showing what got through before. Real servers on 127.0.0.1 port 0; raw
sockets for malformed requests."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from crucible.pipelines.browse.search import server as server_mod
from crucible.pipelines.browse.search import spec as spec_mod
from crucible.pipelines.browse.search.backends import BackendError
from crucible.pipelines.browse.search.spec import Limits
from tests.support.search_fuzz import KEY
from tests.support.search_wire import (
    RecordingBackend,
    conforms,
    exchange,
    get,
    post_json,
    read_reply,
    request,
    serving,
    small_local,
)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return small_local(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def srv(local):
    with serving(local) as s:
        yield s


def _bad(reply, field, status=400):
    """A status-``status`` answer naming ``field``, conforming to the description; returns the body."""
    assert reply.status == status, (reply.status, reply.body[:300])
    body = reply.json()
    assert body["status"] == status and body["field"] == field and body["error"].startswith(field), body
    assert "Traceback" not in body["error"]
    return body


def _conforming(path, method, reply):
    problems = conforms(path, method, reply)
    assert not problems, problems
    return reply


# -- parameters: declared type and range -------------------------------------------------------
@pytest.mark.parametrize("topk", [-1, 0, 2**63, 1e300, 51, "3", True, None, [3]])
def test_retrieve_topk_outside_its_range_is_a_400_naming_field_range_and_value(srv, topk):
    r = _conforming("/retrieve", "POST", post_json(srv.port, "/retrieve", {"queries": ["Belgium"], "topk": topk}))
    body = _bad(r, "topk")
    assert body["allowed"] == {"type": "integer", "minimum": 1, "maximum": 50}
    shown = {2**63: "9223372036854775808", "[3]": "<array of 1 items>"}
    assert body["value"] == shown.get(topk if topk == 2**63 else str(topk), topk)


@pytest.mark.parametrize("raw", [b"Infinity", b"-Infinity", b"NaN"])
def test_non_numbers_infinity_and_nan_are_refused_as_json(srv, raw):
    r = post_json(srv.port, "/retrieve", b'{"queries": ["x"], "topk": ' + raw + b"}")
    assert "not a JSON number" in _bad(r, "body")["error"]


@pytest.mark.parametrize("count", ["-1", "0", "9223372036854775808", "1e300", "Infinity", "abc", "", "101"])
def test_searxng_count_outside_its_range_is_a_400(srv, count):
    r = _conforming("/search", "GET", get(srv.port, f"/search?q=Belgium&format=json&count={count}"))
    body = _bad(r, "count")
    number = count.lstrip("-").isdigit() and abs(int(count)) < 2**63
    assert body["allowed"]["maximum"] == 100 and body["value"] == (int(count) if number else count)


@pytest.mark.parametrize("target,field", [
    ("/brave/res/v1/web/search?q=x&count=21", "count"), ("/brave/res/v1/web/search?q=x&offset=10", "offset"),
    ("/search?q=x&format=html", "format"), ("/search?format=json", "q"), ("/search?q=x", "format"),
    ("/search?q=x&q=y&format=json", "q"), ("/page", "url"), ("/search?q=" + "x" * 2049 + "&format=json", "q"),
])
def test_get_parameters_are_checked_against_the_description(srv, target, field):
    r = _conforming(target.split("?")[0], "GET", get(srv.port, target, {"X-Subscription-Token": KEY}))
    _bad(r, field)


@pytest.mark.parametrize("path,body,field", [
    ("/serper/search", {"q": "x", "num": 0}, "num"), ("/serper/search", {"q": "x", "num": 101}, "num"),
    ("/serper/search", {"num": 3}, "q"), ("/tavily/search", {"query": "x", "max_results": 100_000_000}, "max_results"),
    ("/tavily/search", {"query": "x", "search_depth": "deep"}, "search_depth"),
    ("/retrieve", {"queries": ["q"] * 17}, "queries"), ("/retrieve", {"queries": []}, "queries"),
    ("/retrieve", {"queries": ["ok", 5]}, "queries[1]"), ("/retrieve", {"queries": ["x"], "return_scores": "yes"},
                                                          "return_scores"),
])
def test_body_parameters_are_checked_against_the_description(srv, path, body, field):
    r = _conforming(path, "POST", post_json(srv.port, path, body, {"X-API-KEY": KEY, "Authorization": f"Bearer {KEY}"}))
    _bad(r, field)


@pytest.mark.parametrize("raw,says", [
    (b"[1, 2]", "got an array"), (b"1", "got a number"), (b'"x"', "got a string"), (b"null", "got null"),
    (b"true", "got a boolean"), (b"", "got an empty body"),
    (b'{"queries": ["\xff"]}', "not valid UTF-8"), (b'{"queries": ', "not valid JSON"),
    (b'{"queries": ' + b"[" * 50_000 + b"]" * 10, "nested too deeply"), (b'{"topk": 1' + b"0" * 5000 + b"}", "JSON"),
])
def test_a_body_that_is_not_a_json_object_is_a_400(srv, raw, says):
    assert says in _bad(post_json(srv.port, "/retrieve", raw), "body")["error"]


def test_a_lone_surrogate_is_refused_before_it_reaches_the_index(srv):
    r = post_json(srv.port, "/retrieve", b'{"queries": ["ok", "\\ud800"]}')
    assert "lone surrogate" in _bad(r, "queries[1]")["error"]


def test_a_body_that_is_a_lone_surrogate_string_is_echoed_escaped_not_dropped(srv):
    """Found by the five-minute fuzz (seed 33): echoing the value broke the answer's encoding."""
    r = post_json(srv.port, "/serper/search", b'"\\udbff"', {"X-API-KEY": KEY})
    assert _bad(r, "body")["value"] == "\\udbff"


def test_switched_off_escaping_of_echoed_values_drops_the_connection(srv, monkeypatch):
    monkeypatch.setattr(spec_mod, "shown", lambda value: value)
    monkeypatch.setattr(server_mod, "_dumps", lambda obj: json.dumps(obj, ensure_ascii=False).encode())
    r = post_json(srv.port, "/serper/search", b'"\\udbff"', {"X-API-KEY": KEY})
    assert r.status is None  # the answer could not be encoded: no answer at all


@pytest.mark.parametrize("query", ["q=%ff%fe&format=json", "&".join(["a=1"] * 40) + "&q=x&format=json"])
def test_a_query_string_not_utf8_or_with_too_many_fields_is_a_400(srv, query):
    _bad(get(srv.port, "/search?" + query), "query string")


def test_switched_off_validation_passes_100_million_results_to_the_backend(monkeypatch):
    backend = RecordingBackend(most=1000)
    with serving(backend) as s:
        body = {"query": "x", "max_results": 100_000_000}
        assert post_json(s.port, "/tavily/search", body, {"Authorization": "Bearer k"}).status == 400
        assert backend.asked == []
        monkeypatch.setattr(spec_mod.Operation, "check", lambda self, obj: {**obj, "search_depth": "basic"})
        r = post_json(s.port, "/tavily/search", body, {"Authorization": "Bearer k"})
    assert r.status == 200 and backend.asked == [100_000_000] and len(r.json()["results"]) == 1000


# -- framing, sizes, time ------------------------------------------------------------------------
@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1e3", "5, 5"])
def test_a_content_length_that_is_not_a_byte_count_is_a_400_not_a_hang(srv, length):
    r = exchange(srv.port, f"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
    assert _bad(r, "Content-Length")["allowed"]["maximum"] == Limits.from_spec().max_body_bytes and r.closes


def test_a_body_shorter_than_its_content_length_is_408_when_the_client_waits(srv):
    r = exchange(srv.port, b"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{}")
    assert r.status == 408 and "not received in time" in r.json()["error"] and r.closes


def test_a_body_shorter_than_its_content_length_is_400_when_the_client_stops_sending(srv):
    r = exchange(srv.port, b"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{}", True)
    assert "ended after 2 of the 100 bytes" in _bad(r, "body")["error"]


def test_a_half_sent_request_line_is_408_and_an_idle_connection_is_closed_without_a_word(srv):
    assert exchange(srv.port, b"GET /hea").status == 408
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        assert s.recv(100) == b""  # nothing was asked: closed after the read timeout, no answer owed


def test_switched_off_read_timeout_leaves_a_slow_client_hanging(local):
    with serving(local, read_timeout_s=None, request_deadline_s=None) as s:
        r = exchange(s.port, b"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{}",
                     timeout=1.5)
    assert r.status is None and r.error == "timeout"


def _trickle(port, n, every=0.1):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        for _ in range(n):  # a header byte at a time, each well inside the read timeout
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(every)
        s.settimeout(0.2)  # shorter than the read timeout: an answer now is the deadline's
        return read_reply(s)


def test_a_slow_loris_is_cut_off_by_the_request_deadline(local):
    with serving(local, read_timeout_s=0.5, request_deadline_s=0.6) as s:
        assert _trickle(s.port, 12).status == 408


def test_switched_off_request_deadline_lets_a_slow_loris_hold_the_connection(local):
    with serving(local, read_timeout_s=0.5, request_deadline_s=None) as s:
        r = _trickle(s.port, 12)
    assert r.status is None and r.error == "timeout"  # still waiting for the headers' end


def test_a_body_over_the_cap_is_413_without_reading_it(srv):
    r = exchange(srv.port, b"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9999999\r\n\r\n"
                 + b"x" * 300_000)
    body = _conforming("/retrieve", "POST", r).json()
    assert r.status == 413 and body["field"] == "Content-Length" and body["value"] == 9999999 and r.closes


def test_switched_off_body_cap_reads_a_megabyte(local):
    with serving(local, max_body_bytes=None) as s:
        r = post_json(s.port, "/retrieve", {"queries": ["x"], "pad": "y" * 1_000_000})
    assert r.status == 200


def test_chunked_bodies_are_411(srv):
    r = exchange(srv.port, b"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"2\r\n{}\r\n0\r\n\r\n")
    assert _conforming("/retrieve", "POST", r).status == 411 and r.json()["field"] == "Transfer-Encoding"


def test_a_60kb_path_is_414(srv):
    r = get(srv.port, "/search?format=json&q=" + "a" * 60_000)
    assert r.status == 414 and r.json()["status"] == 414


def test_switched_off_request_line_cap_lets_a_60kb_path_through(local):
    with serving(local, max_request_line_bytes=None) as s:
        r = get(s.port, "/search?format=json&q=" + "a" * 60_000)
    assert r.status == 400 and r.json()["field"] == "q"  # reached the handler: only the q length stops it


@pytest.mark.parametrize("headers", [["X-A: " + "a" * 70_000], [f"X-{i}: v" for i in range(101)],
                                     [f"X-{i}: " + "v" * 760 for i in range(90)]])
def test_too_many_or_too_long_headers_are_431(srv, headers):
    data = ("GET /health HTTP/1.1\r\nHost: localhost\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode()
    r = exchange(srv.port, data)
    assert r.status == 431 and r.json()["status"] == 431


def test_switched_off_head_cap_reads_69kb_of_headers(local):
    with serving(local, max_head_bytes=None) as s:
        r = exchange(s.port, ("GET /health HTTP/1.1\r\nHost: localhost\r\n" + "".join(
            f"X-{i}: {'v' * 760}\r\n" for i in range(90)) + "\r\n").encode())
    assert r.status == 200


def test_a_response_over_the_cap_is_a_400_asking_for_fewer_results():
    with serving(RecordingBackend(snippet_chars=10_000), max_response_bytes=100_000) as s:
        r = post_json(s.port, "/retrieve", {"queries": ["a", "b", "c"], "topk": 50})
        assert "ask for fewer results" in _bad(r, "response")["error"]
    with serving(RecordingBackend(snippet_chars=10_000), max_response_bytes=None) as s:  # switched off
        r = post_json(s.port, "/retrieve", {"queries": ["a", "b", "c"], "topk": 50})
    assert r.status == 200 and len(r.body) > 1_500_000


# -- Host, paths, methods, protocol ---------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8899", "127.0.0.1.evil.example", "localhost.evil",
                                  "0.0.0.0", "[::2]:80"])
def test_a_host_that_is_not_loopback_is_421_dns_rebinding(srv, host):
    r = _conforming("/health", "GET", get(srv.port, "/health", host=host))
    assert r.status == 421 and r.json()["field"] == "Host" and r.json()["value"] == host


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:1", "LOCALHOST", "[::1]:8899", "::1"])
def test_loopback_hosts_are_served(srv, host):
    assert get(srv.port, "/health", host=host).status == 200


def test_a_missing_or_doubled_host_is_a_400(srv):
    _bad(get(srv.port, "/health", host=None), "Host")
    r = exchange(srv.port, b"GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
    _bad(r, "Host")


def test_switched_off_host_check_serves_a_rebinding_page(local, monkeypatch):
    monkeypatch.setattr(server_mod._Handler, "_check_host", lambda self: None)
    with serving(local) as s:
        r = get(s.port, "/search?q=Belgium&format=json", host="evil.example")
    assert r.status == 200 and r.json()["results"]


def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(srv):
    r = _conforming("/nope", "GET", get(srv.port, "/nope"))
    assert r.status == 404 and "/retrieve" in r.json()["allowed"]["enum"]
    r = _conforming("/search", "POST", post_json(srv.port, "/search", {"q": "x"}))
    assert r.status == 405 and r.headers["allow"] == "GET"
    r = exchange(srv.port, request("FOO", "/retrieve"))
    assert r.status == 405 and r.headers["allow"] == "POST"
    r = exchange(srv.port, request("HEAD", "/health"))
    assert r.status == 405 and r.body == b""  # HEAD: the headers only


@pytest.mark.parametrize("data,status", [(b"GET /\r\n\r\n", 400), (b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
                                         (b"GET / HTTP/x.y\r\n\r\n", 400), (b"\r\n\r\n", 400),
                                         (b"GET / HTTP/0.9\r\nHost: localhost\r\n\r\n", 505)])
def test_malformed_request_lines_get_a_status_line_and_a_json_body(srv, data, status):
    r = exchange(srv.port, data, half_close=True)
    assert r.status == status and r.json()["status"] == status


def test_an_unknown_page_is_a_json_404(srv):
    r = _conforming("/page", "GET", get(srv.port, "/page?url=https://kb.local/none"))
    assert r.status == 404 and r.json()["field"] == "url"


# -- the last resort, bounded state, connections -----------------------------------------------------
@pytest.mark.parametrize("exc,status", [(RuntimeError("boom"), 500), (BackendError("upstream down"), 502),
                                        (type("PanicException", (BaseException,), {})("tantivy panicked"), 500)])
def test_a_failing_backend_is_a_status_and_body_never_a_traceback(exc, status, caplog):
    with serving(RecordingBackend(fail=exc)) as s:
        r = post_json(s.port, "/retrieve", {"queries": ["x"]})
        again = get(s.port, "/health")
    assert r.status == status and "Traceback" not in r.body.decode() and again.status == 200
    assert ("upstream down" in r.json()["error"]) if status == 502 else ("PanicException" in r.json()["error"]
                                                                         or "RuntimeError" in r.json()["error"])
    assert status == 502 or "Traceback" in caplog.text  # the traceback goes to the server log


def test_switched_off_last_resort_drops_the_connection(monkeypatch):
    def broken(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(server_mod._Handler, "_respond", broken)
    with serving(RecordingBackend()) as s:
        r = get(s.port, "/health")
    assert r.status is None  # what every unexpected error did before: no answer at all


def test_the_request_log_is_bounded(srv):
    srv.requests.clear()
    for _ in range(600):
        get(srv.port, "/search?format=json&q=" + "a" * 20_000)
    assert len(srv.requests) == Limits.from_spec().request_log
    assert max(len(p) for _, p in srv.requests) <= 200


def test_switched_off_request_log_keeps_every_request(local):
    with serving(local, request_log=None) as s:
        for _ in range(300):
            get(s.port, "/health")
    assert len(s.requests) == 300


def _hold(port, n):
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    for sock in socks:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # started, never finished
    time.sleep(0.1)
    return socks


def test_one_connection_over_the_cap_is_503(local):
    with serving(local, max_connections=2, read_timeout_s=5, request_deadline_s=5) as s:
        held = _hold(s.port, 2)
        r = get(s.port, "/health")
        for sock in held:
            sock.close()
    assert r.status == 503 and r.json()["status"] == 503 and r.headers["retry-after"] == "1"


def test_switched_off_connection_cap_starts_a_thread_per_connection(local):
    def handlers() -> set[threading.Thread]:  # connection threads; other tests' threads may end meanwhile, so count new ones
        return {t for t in threading.enumerate() if t.name.endswith("(process_request_thread)")}

    with serving(local, max_connections=None, read_timeout_s=5, request_deadline_s=5) as s:
        before = handlers()
        held = _hold(s.port, 20)
        r = get(s.port, "/health")
        for _ in range(100):  # the accept loop starts one thread per connection, however many
            if len(handlers() - before) >= 20:
                break
            time.sleep(0.05)
        grew = len(handlers() - before)
        for sock in held:
            sock.close()
    assert r.status == 200 and grew >= 20


def test_keep_alive_survives_a_400_and_serves_the_next_request(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        body = b'{"queries": ["x"], "topk": -1}'
        s.sendall(b"POST /retrieve HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        first = read_reply(s)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        second = read_reply(s)
    assert first.status == 400 and not first.closes and second.status == 200
